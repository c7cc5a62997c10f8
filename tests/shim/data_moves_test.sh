#!/bin/bash
# Every way data gets into a pending replacement is watched for errors
# (README "Guarantees"): on a full tmpfs, each data move a C program can make
# (copy_file_range, sendfile(64), splice, fallocate(64), posix_fallocate(64),
# ftruncate(64) past RLIMIT_FSIZE, and the same through syscall(2)) and the
# real cp, cat (under dash and bash, with and without exec), install, dd,
# python3's shutil.copyfile and tee: the program's close fails or it exits
# non-zero, the target keeps its old content and inode, and no temp is left.
# Usage: data_moves_test.sh ATOMICALLY PRELOAD_OBJECT HELPER_DIR
# Exit: 0 pass, 1 fail, 77 a check could not run (its SKIP line says why).
usage="data_moves_test.sh ATOMICALLY PRELOAD_OBJECT HELPER_DIR"
. "$(dirname "$0")/lib.sh"
helpers=$(realpath "${3:?$usage}") || exit 1

is_root || skip_all "a full file system needs a tmpfs mount (root)"
have unshare || skip_all "unshare(1) not installed"

newdir moves
mkdir mnt
# Everything below runs in a private mount namespace (nothing leaks to the
# host); FAIL lines come back on stdout. What it skips is counted here.
[ -x "$python3" ] || skip_check "python3 shutil.copyfile" "no python3"
unshare -m bash -s -- "$d" "$atomically" "$helpers" "$python3" <<'EOF_NS'
d=$1 atomically=$2 helpers=$3 python3=$4
failed=0
fail() {
    echo "FAIL: $*"
    failed=1
}
mount -t tmpfs -o size=3m,mode=0755 wlf-moves "$d/mnt" || exit 77
cd "$d/mnt" || exit 1
# The source on the same file system (copy_file_range gives EXDEV across
# them): 2 MiB of 3, so that no copy of it fits.
head -c 2097152 /dev/urandom >big
shim() { "$atomically" --rule "$d/mnt/t" -- "$@"; }

# kept NAME STATUS: after a failed writer, t is the old file, untouched, and
# nothing is left beside it.
kept() {
    local name=$1 status=$2
    [ "$status" -ne 0 ] || fail "$name: exited 0 on a full file system"
    [ "$(cat t)" = old ] || fail "$name: t lost its old content ($(stat -c %s t) bytes now)"
    [ "$(stat -c %i t)" = "$ino" ] || fail "$name: t was replaced"
    [ "$(ls -A | tr '\n' ' ')" = "big t " ] || fail "$name: left behind: $(ls -A | tr '\n' ' ')"
}
arm() {
    rm -f t
    echo old >t
    ino=$(stat -c %i t)
}

for call in copy_file_range sendfile sendfile64 splice fallocate fallocate64 posix_fallocate \
    posix_fallocate64 ftruncate ftruncate64 sys_copy_file_range sys_sendfile sys_splice sys_fallocate \
    sys_ftruncate sys_write; do
    arm
    out=$(shim "$helpers/data_move" "$call" t big 2>"$d/err")
    status=$?
    kept "$call" "$status"
    # The program saw the move fail, and close reported it again.
    case $out in
    *"move: "*"close: "*) ;;
    *) fail "$call: want the move and the close to fail, got: $(echo $out) $(cat "$d/err")" ;;
    esac
    grep -q "not replaced, old content kept" "$d/err" || fail "$call: the shim did not say so: $(cat "$d/err")"
done

# The real programs. install removes the destination first (with or without
# the shim); what must not happen is a truncated file in its place.
arm
shim cp big t 2>"$d/err"
kept "cp" $?
arm
shim sh -c 'cat "$1" > t' sh big 2>"$d/err"
kept "cat under dash" $?
arm
shim bash -c 'cat "$1" > t; exit $?' bash big 2>"$d/err"
kept "cat under bash" $?
arm
shim sh -c 'exec cat "$1" > t' sh big 2>"$d/err"
kept "exec cat" $?
arm
shim dd if=big of=t bs=64k status=none 2>"$d/err"
kept "dd" $?
arm
shim dd if=big of=t bs=64k conv=notrunc,fsync status=none 2>"$d/err"
kept "dd conv=notrunc,fsync" $?
arm
shim tee t <big >/dev/null 2>"$d/err"
kept "tee" $?
if [ -x "$python3" ]; then
    arm
    shim "$python3" -c 'import shutil, sys; shutil.copyfile(sys.argv[1], "t")' big 2>"$d/err"
    kept "python3 shutil.copyfile" $?
fi
arm
shim install -m 644 big t 2>"$d/err"
status=$?
[ "$status" -ne 0 ] || fail "install: exited 0 on a full file system"
[ ! -e t ] || [ "$(cat t)" = old ] || fail "install: a truncated t ($(stat -c %s t) bytes) is in place"
[ -z "$(ls -A | grep -vx -e t -e big)" ] || fail "install: left behind: $(ls -A | tr '\n' ' ')"

# The space of every discarded temp is free again: a small write fits.
arm
shim sh -c 'echo small > t' || fail "a small write after the failures failed"
[ "$(cat t)" = small ] || fail "the small write did not land"
[ "$(ls -A | tr '\n' ' ')" = "big t " ] || fail "left behind after the small write: $(ls -A | tr '\n' ' ')"
exit $failed
EOF_NS
rc=$?
case $rc in
0) ;;
77) skip_all "cannot mount a tmpfs in a private mount namespace" ;;
*) fail "see above (status $rc)" ;;
esac
[ -z "$(ls -A mnt)" ] || fail "the tmpfs mount leaked out of its namespace"
finish
