#!/usr/bin/env bash
# The shim's lock when none is chosen (auto, README "Shared file systems"):
# dotlock on a mount where flock stays on this host although other hosts
# share the files, flock elsewhere. Real mounts in a private mount
# namespace: a tmpfs and a bind mount of it (local: flock, lock file gone
# afterwards); two sshfs clients of one directory (sftp-server as their
# "ssh", no network, coherent options): dotlock, and writers on both
# clients under the shim lose no update. (GlusterFS: harness_test.sh; NFS needs nfsd in the kernel.)
# Usage: lock_auto_test.sh CLIENT PLAIN ATOMICALLY PRELOAD
set -u
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (mounts)"; exit 77; }
if [ -z "${WLF_AUTO_PRIVATE:-}" ]; then
    unshare --mount --propagation private true 2>/dev/null || { echo "SKIP: cannot create a mount namespace"; exit 77; }
    WLF_AUTO_PRIVATE=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
plain=$(realpath "$2") || exit 1
atomically=$(realpath "$3") || exit 1
export WRAP_LOCKFILE_PRELOAD
WRAP_LOCKFILE_PRELOAD=$(realpath "$4") || exit 1
unset WRAP_LOCKFILE_RULES WRAP_LOCKFILE_LOCK_ONLY WRAP_LOCKFILE_EXCLUDE WRAP_LOCKFILE_CONFIG WRAP_LOCKFILE_TIMEOUT \
    WRAP_LOCKFILE_FSYNC WRAP_LOCKFILE_LOG WRAP_LOCKFILE_PENDING WRAP_LOCKFILE_LOCK_BACKEND WRAP_LOCKFILE_KEEP_LOCK_FILES LD_PRELOAD
# shellcheck source=checks.sh
. "$(dirname "$0")/checks.sh"
scratch_dir
mounts=()
cleanup() {
    local m
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    scratch_cleanup
}
trap cleanup EXIT

# look DIR [ATOMICALLY-OPTIONS...]: what DIR/f.lock holds while a program
# under the shim writes DIR/f ("empty" for flock's lock file, a dotlock's
# line, or "none").
look() {
    local d=$1
    shift
    echo old >"$d/f"
    "$atomically" --rule "$d/f" "$@" -- sh -c 'exec 3>"$1/f"; if [ ! -e "$1/f.lock" ]; then echo none
        elif [ -s "$1/f.lock" ]; then cat "$1/f.lock"; else echo empty; fi >"$2"; echo new >&3; exec 3>&-' \
        sh "$d" "$tmp/seen"
    [ "$(cat "$d/f")" = new ] || fail "$d: f not replaced"
    cat "$tmp/seen"
}
dotlock_line='^[0-9]+ host=[^ ]+ boot=[^ ]+ pidns=[0-9]+$'

# Local: a tmpfs and a bind mount of it.
mkdir local bind
mount -t tmpfs wlf-auto "$tmp/local" || { fail "tmpfs mount"; finish; }
mounts+=("$tmp/local")
mount --bind "$tmp/local" "$tmp/bind" && mounts=("$tmp/bind" "${mounts[@]}") || fail "bind mount"
for d in local bind; do
    seen=$(look "$tmp/$d")
    [ "$seen" = empty ] || fail "$d (tmpfs): auto took '$seen', expected flock's empty lock file"
    [ ! -e "$tmp/$d/f.lock" ] || fail "$d (tmpfs): flock's lock file left on a local file system"
done

# sshfs: two clients of one directory.
sftp=
for s in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server /usr/lib/ssh/sftp-server; do
    [ -x "$s" ] && sftp=$s && break
done
if ! command -v sshfs >/dev/null || [ -z "$sftp" ] || [ ! -c /dev/fuse ]; then
    echo "SKIP (sshfs checks): sshfs, sftp-server (openssh-sftp-server) or /dev/fuse missing"
    finish
fi
printf '#!/bin/sh\nexec %s\n' "$sftp" >fake-ssh
chmod +x fake-ssh
mkdir export sa sb
# Coherent, as GlusterFS's coherent configuration: without these sshfs
# serves one client's cached attributes, names and pages of a file the
# other replaced for up to 20 s, and read-modify-write loses updates under
# any lock (README "Shared file systems").
for c in sa sb; do
    sshfs -o ssh_command="$tmp/fake-ssh",dir_cache=no,attr_timeout=0,entry_timeout=0,negative_timeout=0,direct_io \
        "x:$tmp/export" "$tmp/$c" || { fail "sshfs mount $c"; finish; }
    mounts=("$tmp/$c" "${mounts[@]}")
done
[ "$(awk -v m="$tmp/sa" '$5 == m { for (i = 7; $i != "-"; i++); print $(i + 1) }' /proc/self/mountinfo)" = fuse.sshfs ] \
    || fail "sa is not listed as fuse.sshfs in mountinfo"
# Why: flock on one sshfs client does not exclude the other.
echo x >sa/probe
if flock -n sa/probe flock -n sb/probe true; then
    echo "note: flock through sshfs client a does not exclude client b (it stays on this host)"
fi
seen=$(look "$tmp/sa" --timeout 10)  # a dotlock that cannot tell it won fails, not hangs
echo "$seen" | grep -Eq "$dotlock_line" || fail "sshfs: auto took '$seen', expected a dotlock"
[ ! -e sa/f.lock ] || fail "sshfs: the dotlock was left"
seen=$(look "$tmp/sa" --lock-backend flock)
[ "$seen" = empty ] || fail "sshfs: --lock-backend flock took '$seen'"
rm -f sa/f.lock
seen=$(WRAP_LOCKFILE_LOCK_BACKEND=auto look "$tmp/sb" --timeout 10)
echo "$seen" | grep -Eq "$dotlock_line" || fail "sshfs: WRAP_LOCKFILE_LOCK_BACKEND=auto took '$seen'"

# A mount made over a directory the shim's probe already locked in: the
# probe's guess of the mount (its last directories) is wrong now. It must
# notice by the lock file it creates, remove that file (on sshfs a leftover
# empty f.lock would read as a dotlock nobody holds and nobody breaks) and
# take the dotlock. One shell writes over/f, sshfs is mounted over "over",
# the same shell writes over/f again.
mkdir over export2
echo old >over/f
mkfifo go done
"$atomically" --rule "$tmp/over/f" --timeout 10 -- bash -c '
    echo one >"$1/over/f"; echo "first=$?" >"$1/rc"
    echo x >"$1/done"; read -r x <"$1/go"
    echo two >"$1/over/f"; echo "second=$?" >>"$1/rc"' sh "$tmp" &
writer=$!
bg+=("$writer")
read -r x <done
sshfs -o ssh_command="$tmp/fake-ssh",dir_cache=no,attr_timeout=0,entry_timeout=0,negative_timeout=0,direct_io \
    "x:$tmp/export2" "$tmp/over" || { fail "sshfs mount over"; finish; }
mounts=("$tmp/over" "${mounts[@]}")
echo y >go
wait "$writer" || fail "mount over: the writer failed"
[ "$(tr '\n' ' ' <rc)" = "first=0 second=0 " ] || fail "mount over: writes gave $(tr '\n' ' ' <rc)"
[ "$(cat export2/f 2>/dev/null)" = two ] || fail "mount over: the second write did not reach sshfs"
[ ! -e export2/f.lock ] || fail "mount over: $(stat -c '%A size %s' export2/f.lock) f.lock left on sshfs"
umount "$tmp/over" && mounts=("${mounts[@]:1}")
[ "$(cat over/f)" = one ] || fail "mount over: the first write is not in the directory below"
[ ! -e over/f.lock ] || fail "mount over: f.lock left in the directory below"

# A lock taken while mountinfo cannot be read gets flock (nothing to tell
# the mount by); that answer must not stick to the directory: the next
# file there, with mountinfo readable again, gets the dotlock.
rm -f go done
mkfifo go done
"$atomically" --rule "$tmp/sa/*" --timeout 10 -- bash -c '
    kind() { if [ -s "$1.lock" ]; then echo dotlock; elif [ -e "$1.lock" ]; then echo flock; else echo none; fi; }
    echo $$ >"$1/done"; read -r x <"$1/go"
    exec 3>"$1/sa/a"; kind "$1/sa/a" >"$1/kind-a"; exec 3>&-
    echo x >"$1/done"; read -r x <"$1/go"
    exec 3>"$1/sa/b"; kind "$1/sa/b" >"$1/kind-b"; exec 3>&-' sh "$tmp" &
writer=$!
bg+=("$writer")
read -r spid <done
# /proc/PID/mem reads fail (EIO) at offset 0: mountinfo unreadable for that shell only.
if mount --bind "/proc/$spid/mem" "/proc/$spid/mountinfo"; then
    echo y >go
    read -r x <done
    umount "/proc/$spid/mountinfo"
    echo y >go
    wait "$writer" || fail "unreadable mountinfo: the writer failed"
    [ "$(cat kind-a)" = flock ] || fail "unreadable mountinfo: a took '$(cat kind-a)', expected flock (no answer)"
    [ "$(cat kind-b)" = dotlock ] || fail "unreadable mountinfo: b took '$(cat kind-b)' after mountinfo came back"
else
    kill "$writer"
    skip_check "unreadable mountinfo" "cannot bind-mount over /proc/$spid/mountinfo"
fi
rm -f sa/a sa/b sa/a.lock

# Writers on both clients, nothing chosen: every update survives.
"$plain" init sa/file || fail "init"
pids=()
per=2 n=15
for c in sa sb; do
    for i in $(seq "$per"); do
        "$atomically" --rule "$tmp/$c/file" --timeout 60 -- "$plain" rmw "$tmp/$c/file" "$c$i" "$n" >"out-$c$i" &
        pids+=($!)
    done
done
dead=0
for p in "${pids[@]}"; do wait "$p" || dead=$((dead + 1)); done
ok=$(cat out-* | sed -n 's/.*ok=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
seq_a=$("$plain" check sa/file | cut -d' ' -f1)
seq_e=$("$plain" check export/file | cut -d' ' -f1)
echo "result: sshfs auto, ${per}x$n per client: writes ok=$ok, final sequence $seq_e (export) $seq_a (client a)"
[ "$dead" -eq 0 ] || fail "sshfs: $dead writers failed"
[ "$ok" -eq $((2 * per * n)) ] || fail "sshfs: $ok of $((2 * per * n)) writes succeeded"
[ "$seq_e" = "$ok" ] || fail "sshfs: the file holds sequence $seq_e after $ok writes (lost updates)"
[ ! -e export/file.lock ] || fail "sshfs: file.lock left"

finish
