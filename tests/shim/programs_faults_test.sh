#!/bin/bash
# End-to-end checks of the shim's failure paths with real, unmodified
# programs: a full file system (ENOSPC: dd through write(2), head through
# stdio, which clears the stream's error before it exits), a writer killed with SIGKILL while
# its replacement is pending, _exit (which commits), and the interplay with flock(1) (waiting
# for a holder, and giving up after --timeout). In every failure the target
# keeps its old content byte for byte and no temporary file is left.
# Ordering is by fifos and by observing the kernel's lock table, never by
# sleeping.
# Usage: programs_faults_test.sh ATOMICALLY PRELOAD_OBJECT HELPER_DIR
# Exit: 0 pass, 1 fail, 77 a check could not run (its SKIP line says why).
usage="programs_faults_test.sh ATOMICALLY PRELOAD_OBJECT HELPER_DIR"
. "$(dirname "$0")/lib.sh"
helpers=$(realpath "${3:?usage: $usage}") || exit 1

# start MODE GLOBS COMMAND [ARG]...: like `shim`, in the background, with the
# command itself (not a subshell) as $!, so it can be killed and waited for.
start() {
    local mode=$1 globs=$2
    shift 2
    case $mode in
    launcher) "$atomically" --rule "$globs" -- "$@" & ;;
    preload) LD_PRELOAD=$preload WRAP_LOCKFILE_RULES=$globs "$@" & ;;
    esac
    bg_pids+=($!)
}

# namespace_result NAME STATUS WHY: the exit status of a check's script in
# a private mount namespace as the check's result (77: it could not run, WHY).
namespace_result() {
    case $2 in
    0) ;;
    77) skip_check "$1" "$3" ;;
    *) fail "$1: see above (status $2)" ;;
    esac
}

# ---- a full file system: the write error discards the replacement ----
# A 256 KiB tmpfs in a private mount namespace (nothing leaks to the host)
# holds a 10 KiB file; dd then tries to write 1 MiB over it.
tmpfs_check() {
    local mode=$1 t="ENOSPC/$1"
    newdir "enospc-$mode"
    mkdir mnt
    head -c 10240 /dev/urandom >ref
    # Everything below runs in the namespace; FAIL lines come back on stdout.
    unshare -m bash -s -- "$mode" "$d" "$atomically" "$preload" <<'EOF'
mode=$1 d=$2 atomically=$3 preload=$4
failed=0
fail() {
    echo "FAIL: ENOSPC/$mode: $*"
    failed=1
}
mount -t tmpfs -o size=256k,mode=0755 wlf-e2e "$d/mnt" || exit 77
cd "$d/mnt" || exit 1
cp ../ref f
ino=$(stat -c %i f)
exec 8<f
shim() {
    case $mode in
    launcher) "$atomically" --rule "$d/mnt/f" -- "$@" ;;
    preload) LD_PRELOAD=$preload WRAP_LOCKFILE_RULES=$d/mnt/f "$@" ;;
    esac
}
shim dd if=/dev/zero of=f bs=64k count=16 2>../dd.err
rc=$?
[ "$rc" -ne 0 ] || fail "dd exited 0 on a full file system"
cmp -s f ../ref || fail "f lost its old content"
[ "$(stat -c %i f)" = "$ino" ] || fail "f was replaced"
cmp -s /dev/fd/8 ../ref || fail "the old inode changed under its reader"
[ "$(ls -A)" = f ] || fail "left behind: $(ls -A | tr '\n' ' ')"
grep -q "No space left on device" ../dd.err || fail "dd did not report ENOSPC: $(cat ../dd.err)"
grep -qF "'$d/mnt/f' not replaced, old content kept" ../dd.err ||
    fail "the shim did not say it kept the old content: $(cat ../dd.err)"
# head (coreutils) writes through stdio, whose writes bypass write(), and
# clears the stream's error before it exits: the failure counts all the same.
shim sh -c 'head -c 1048576 /dev/zero > f' 2>../head.err
rc=$?
[ "$rc" -ne 0 ] || fail "head exited 0 on a full file system"
cmp -s f ../ref || fail "head: f lost its old content ($(stat -c %s f) bytes now)"
[ "$(stat -c %i f)" = "$ino" ] || fail "head: f was replaced"
[ "$(ls -A)" = f ] || fail "head: left behind: $(ls -A | tr '\n' ' ')"
grep -qF "'$d/mnt/f' not replaced, old content kept" ../head.err ||
    fail "head: the shim did not say it kept the old content: $(cat ../head.err)"
# A hard-linked target is staged in memory and written in place at the
# commit, so the program's writes never meet the full disk: the commit
# reserves the space first and, when it cannot, leaves the old content
# whole (a plain run leaves it truncated and torn). dd checks its close;
# the shell, which commits its redirection, does not (it exits 0).
ln f f.link
shim dd if=/dev/zero of=f bs=64k count=16 2>../staged.err
rc=$?
[ "$rc" -ne 0 ] || fail "staged: dd exited 0 though nothing it wrote reached f"
cmp -s f ../ref || fail "staged: f lost its old content ($(stat -c %s f) bytes now)"
[ "$(stat -c %i.%h f)" = "$ino.2" ] || fail "staged: f is not the same hard-linked inode ($(stat -c %i.%h f))"
[ "$(ls -A | tr '\n' ' ')" = "f f.link " ] || fail "staged: left behind: $(ls -A | tr '\n' ' ')"
grep -qF "'$d/mnt/f' not replaced, old content kept" ../staged.err ||
    fail "staged: the shim did not say it kept the old content: $(cat ../staged.err)"
# The writes themselves fail as they would plainly (the blocks are reserved
# in the target as the memfd takes them): a writer that checks write() but
# not close() exits 1, as its plain run does, and not 0.
shim /usr/bin/python3 -c '
import os, sys
fd = os.open("f", os.O_WRONLY | os.O_TRUNC)
data = bytes(1048576)
while data:
    data = data[os.write(fd, data):]
try:
    os.close(fd)
except OSError:
    pass
' 2>../staged-py.err
rc=$?
[ "$rc" -ne 0 ] || fail "staged: a writer that does not check close() exited 0 though nothing it wrote reached f"
grep -q "No space left on device" ../staged-py.err || fail "staged: the write did not fail with ENOSPC: $(cat ../staged-py.err)"
cmp -s f ../ref || fail "staged, python: f lost its old content ($(stat -c %s f) bytes now)"
shim sh -c 'head -c 1048576 /dev/zero > f' 2>../staged-sh.err
cmp -s f ../ref || fail "staged, shell: f lost its old content ($(stat -c %s f) bytes now)"
grep -qF "'$d/mnt/f' not replaced, old content kept" ../staged-sh.err ||
    fail "staged, shell: the shim did not say it kept the old content: $(cat ../staged-sh.err)"
rm f.link
# The discarded temp's space is free again: a small replacement fits.
exec 8<&-
shim sh -c 'echo small > f' || fail "a small write after the failure failed"
[ "$(cat f)" = small ] || fail "the small write did not land"
[ "$(stat -c %i f)" != "$ino" ] || fail "the small write was not a replacement"
[ "$(ls -A)" = f ] || fail "left behind after the small write: $(ls -A | tr '\n' ' ')"
# --lock-only: the program writes f itself, so a failed append leaves in f
# what fit, as a plain run does, and the shim says that much, not "old
# content kept".
lock_only() {
    case $mode in
    launcher) "$atomically" --lock-only "$d/mnt/f" -- "$@" ;;
    preload) LD_PRELOAD=$preload WRAP_LOCKFILE_LOCK_ONLY=$d/mnt/f "$@" ;;
    esac
}
cp ../ref f
ino=$(stat -c %i f)
lock_only bash -c 'seq 1 100000 >> f' 2>../lock-only.err
rc=$?
[ "$rc" -ne 0 ] || fail "lock-only: seq exited 0 on a full file system"
cmp -s -n 10240 f ../ref || fail "lock-only: f's old 10240 bytes changed"
[ "$(stat -c %s f)" -gt 10240 ] || fail "lock-only: what fit of the append is not in f (plainly it is)"
[ "$(stat -c %i f)" = "$ino" ] || fail "lock-only: f was replaced"
[ "$(ls -A)" = f ] || fail "lock-only: left behind: $(ls -A | tr '\n' ' ')"
grep -qF "'$d/mnt/f' written in place, perhaps partly" ../lock-only.err ||
    fail "lock-only: the shim did not say f was written in place: $(cat ../lock-only.err)"
! grep -q "old content kept" ../lock-only.err || fail "lock-only: the shim said the old content was kept: $(cat ../lock-only.err)"
exit $failed
EOF
    namespace_result "$t" $? "cannot mount a tmpfs in a private mount namespace"
    [ -z "$(ls -A mnt)" ] || fail "$t: the tmpfs mount leaked out of its namespace"
}
if ! is_root; then
    skip_check "ENOSPC checks" "need root to mount a tmpfs"
elif ! have unshare; then
    skip_check "ENOSPC checks" "unshare(1) not installed"
else
    for mode in "${modes[@]}"; do tmpfs_check "$mode"; done
fi

# ---- another user's file on a full disk ----
# nobody updates one byte of root's 0666 file in a sticky directory on a
# full tmpfs: plainly it needs no new block. A replacement could not be
# given root's ownership, so the file is written in place from a copy in
# memory; it used to be copied onto the full disk first, and the open failed
# with ENOSPC.
foreign_full_check() {
    local t="ENOSPC/another user's file"
    newdir foreign-full
    mkdir mnt
    chmod 711 "$tmp" "$d"  # nobody reaches the mount by absolute path
    unshare -m bash -s -- "$d" "$atomically" <<'EOF'
d=$1 atomically=$2
failed=0
fail() {
    echo "FAIL: ENOSPC/another user's file: $*"
    failed=1
}
for how in plain shim; do
    mount -t tmpfs -o size=256k,mode=1777 wlf-e2e "$d/mnt" || exit 77
    cd "$d/mnt" || exit 1
    head -c 10240 /dev/zero | tr '\0' o >f
    chmod 666 f
    head -c 1M /dev/zero >fill 2>/dev/null
    pre=()
    [ $how = shim ] && pre=("$atomically" --rule "$d/mnt/f" --)
    printf X | env -u WRAP_LOCKFILE_LOG setpriv --reuid=nobody --regid=nogroup --clear-groups "${pre[@]}" \
        dd of=f conv=notrunc status=none 2>"$d/$how.err"
    echo "$? $(stat -c '%s %h %U %i' f) $(md5sum <f | cut -c1-12) $(ls -A | tr '\n' ' ')" >"$d/$how.out"
    cd "$d" && umount "$d/mnt"
done
[ "$(cat "$d/shim.out")" = "$(cat "$d/plain.out")" ] ||
    fail "exit, size, links, owner, inode, content, entries: $(cat "$d/shim.out") under the shim ($(cat "$d/shim.err")), $(cat "$d/plain.out") plainly"
exit $failed
EOF
    namespace_result "$t" $? "cannot mount a tmpfs in a private mount namespace"
}
if ! is_root || ! have unshare || ! have setpriv; then
    skip_check "ENOSPC/another user's file" "needs root, unshare(1) and setpriv(1)"
else
    foreign_full_check
fi

# ---- a staged target on a full ext4: the failed reservation is undone ----
# ext4 keeps the blocks a failing fallocate got (tmpfs gives them back
# itself) and moves the mtime: the commit gives both back, so the failed
# write leaves the disk as full as it was and the target as it was.
staged_ext4_check() {
    local t="ENOSPC/staged ext4"
    newdir staged-ext4
    mkdir mnt
    truncate -s 8M img
    mkfs.ext4 -q -F img >/dev/null 2>&1 || { skip_check "$t" "mkfs.ext4 failed"; return; }
    unshare -m bash -s -- "$d" "$atomically" <<'EOF'
d=$1 atomically=$2
failed=0
fail() {
    echo "FAIL: ENOSPC/staged ext4: $*"
    failed=1
}
mount -o loop "$d/img" "$d/mnt" 2>/dev/null || exit 77
cd "$d/mnt" || exit 1
head -c 300000 /dev/urandom >f
cp f ../ref
ln f f.link
touch -d @1000000000 f
head -c "$(($(df -B1 --output=avail . | tail -1) - 200000))" /dev/zero >filler
sync
before="$(stat -c '%i %h %b %Y' f) $(df -B1 --output=avail . | tail -1)"
"$atomically" --rule "$d/mnt/f" -- dd if=/dev/zero of=f bs=64k count=32 2>../dd.err
rc=$?
sync
after="$(stat -c '%i %h %b %Y' f) $(df -B1 --output=avail . | tail -1)"
[ "$rc" -ne 0 ] || fail "dd exited 0 though nothing it wrote reached f"
cmp -s f ../ref || fail "f lost its old content ($(stat -c %s f) bytes now)"
[ "$after" = "$before" ] || fail "inode, links, blocks, mtime, free space: $before before, $after after"
grep -qF "'$d/mnt/f' not replaced, old content kept" ../dd.err ||
    fail "the shim did not say it kept the old content: $(cat ../dd.err)"
exit $failed
EOF
    namespace_result "$t" $? "cannot loop-mount an ext4 image in a private mount namespace"
}
if ! is_root; then
    skip_check "ENOSPC/staged ext4" "need root to loop-mount an ext4 image"
elif ! have unshare || ! have mkfs.ext4; then
    skip_check "ENOSPC/staged ext4" "unshare(1) or mkfs.ext4 not installed"
else
    staged_ext4_check
fi

# ---- SIGKILL while a replacement is pending ----
# pending_checks NAME: a writer has the replacement of f (armed) pending:
# the target is untouched and its lock is held.
pending_checks() {
    local t=$1
    [ "$(ino f)" = "$old_ino" ] || fail "$t: f was replaced before the writer finished"
    expect_content "$t: while pending" f "$old_content"
    [ -e f.lock ] || fail "$t: no f.lock while the replacement is pending"
    flock -n f.lock true && fail "$t: f.lock is not locked while the replacement is pending"
}
# after_kill NAME PID: kill -9 the writer; nothing committed, no temp left,
# and the next writer gets the lock at once (--timeout 0: one try).
after_kill() {
    local t=$1 pid=$2 rc
    kill -9 "$pid"
    # (braces: the shell's "Killed" notice is noise here)
    { wait "$pid"; } 2>/dev/null
    rc=$?
    expect_status "$t: killed writer" 137 "$rc"
    expect_unchanged "$t" f
    # A killed process cannot unlink its lock file; the kernel dropped the
    # lock itself. Anything else (a temp file) must not be there.
    local left
    left=$(ls -A | grep -vxE 'f|f\.lock|ready|block' | tr '\n' ' ')
    [ -z "$left" ] || fail "$t: left behind: $left"
    arm f
    "$atomically" --timeout 0 --rule "$d/f" -- sh -c 'echo after > f'
    expect_status "$t: next writer, --timeout 0" 0 $?
    expect_replaced "$t: next writer" f $'after\n'
    expect_entries "$t: after the next writer" "$d" f ready block
}

newdir kill-bash
t="SIGKILL/bash+exec/launcher"
mkfifo ready block
printf 'old content\n' >f
arm f
# The shell opens f, writes, hands the replacement over to cat by exec, and
# cat blocks reading the fifo nobody writes.
start launcher "$d/f" bash -c 'exec > f; echo partial; echo ready > ready; exec cat block'
pid=$!
if await ready "$t"; then
    pending_checks "$t"
    after_kill "$t" "$pid"
fi

if [ -n "$python3" ]; then
    newdir kill-python
    t="SIGKILL/python3/preload"
    mkfifo ready block
    printf 'old content\n' >f
    arm f
    start preload "$d/f" "$python3" -c "
f = open('f', 'w')
f.write('partial')
f.flush()
open('ready', 'w').write('ready\n')
open('block').read()"
    pid=$!
    if await ready "$t"; then
        pending_checks "$t"
        after_kill "$t" "$pid"
    fi

    # ---- a forked child's _exit leaves its parent's replacement alone ----
    for mode in "${modes[@]}"; do
        newdir "fork-exit-$mode"
        t="fork+_exit/$mode"
        printf 'old content\n' >f
        arm f
        shim "$mode" "$d/f" "$python3" -c "
import fcntl, os
f = open('f', 'w')
f.write('parent')
f.flush()
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
assert os.path.exists('f.lock'), 'the child removed the lock file'
with open('f.lock') as probe:
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass
    else:
        raise SystemExit('the child unlocked the parent\'s lock')
f.write(' more')
f.close()"
        expect_status "$t" 0 $?
        expect_replaced "$t" f 'parent more'
        expect_entries "$t" "$d" f
    done

    # ---- _exit: what went through write() is committed (stdio not
    # flushed), as a plain _exit leaves it (more in exit_test.sh) ----
    for mode in "${modes[@]}"; do
        newdir "exit-$mode"
        t="_exit/$mode"
        printf 'old content\n' >f
        arm f
        shim "$mode" "$d/f" "$python3" -c "import os; f = open('f', 'w'); f.write('x'); f.flush(); os._exit(0)"
        expect_status "$t" 0 $?
        expect_replaced "$t" f x
        expect_entries "$t" "$d" f
        # The lock is free.
        arm f
        "$atomically" --timeout 0 --rule "$d/f" -- sh -c 'echo after > f'
        expect_status "$t: next writer, --timeout 0" 0 $?
        expect_replaced "$t: next writer" f $'after\n'
    done
else
    skip_check "SIGKILL/python3 and _exit checks" "python3 not installed"
fi

# ---- exec hand-over: pending until the last image exits ----
# dash opens f, writes, execs cat, which copies a fifo into f: until cat
# exits the target is untouched and locked; then both writes land at once.
if have dash; then
    newdir exec-dash
    t="exec hand-over/dash/preload"
    mkfifo ready go
    printf 'old content\n' >f
    arm f
    start preload "$d/f" dash -c 'exec > f; echo one; echo ready > ready; exec cat go'
    pid=$!
    if await ready "$t"; then
        pending_checks "$t"
        signal go
        wait "$pid"
        expect_status "$t" 0 $?
        expect_replaced "$t" f $'one\ngo\n'
        expect_entries "$t" "$d" f ready go
    fi
fi

# ---- vfork: the child's _exit must not touch the parent's replacement ----
newdir vfork
t="vfork+_exit"
printf 'old content\n' >f
arm f
shim launcher "$d/f" "$helpers/vfork_exit"
rc=$?
case $rc in
4) fail "$t: the child's _exit removed the parent's f.lock" ;;
5) fail "$t: the child's _exit released the parent's lock" ;;
*) expect_status "$t" 0 $rc ;;
esac
expect_replaced "$t" f 'parent more'
expect_entries "$t" "$d" f

# ---- flock(1) holds f.lock ----
# flock(1) keeps its lock file (it must: it does not verify the path), so
# the shim's waiter finds the same inode at f.lock when it gets the lock.
if have flock; then
    for mode in "${modes[@]}"; do
        newdir "flock-$mode"
        t="flock/$mode"
        mkfifo held release
        printf 'old content\n' >f
        flock f.lock -c 'echo held > held; read x < release' &
        holder=$!
        bg_pids+=("$holder")
        await held "$t" || continue

        # A writer waits for the holder, and commits once it lets go.
        arm f
        start "$mode" "$d/f" bash -c 'echo new > f'
        writer=$!
        if blocked_on_flock "$writer"; then
            [ "$(ino f)" = "$old_ino" ] && [ "$(cat f)" = "old content" ] ||
                fail "$t: the writer committed while flock(1) held the lock"
        else
            fail "$t: the writer never waited for f.lock (/proc/locks: $(cat /proc/locks | tr '\n' '|'))"
        fi
        signal release
        wait "$holder"
        expect_status "$t: flock(1)" 0 $?
        wait "$writer"
        expect_status "$t: waiting writer" 0 $?
        expect_replaced "$t: waiting writer" f $'new\n'
        # flock(1) created f.lock, so it is not the shim's to remove: it stays.
        expect_entries "$t" "$d" f f.lock held release
        rm f.lock

        # With a timeout the writer gives up, says which file, and leaves it.
        flock f.lock -c 'echo held > held; read x < release' &
        holder=$!
        bg_pids+=("$holder")
        await held "$t" || continue
        arm f
        if [ "$mode" = launcher ]; then
            "$atomically" --timeout 0.5 --rule "$d/f" -- bash -c 'echo timed out > f' 2>err
        elif [ -n "$python3" ]; then
            WRAP_LOCKFILE_TIMEOUT=0.5 shim preload "$d/f" "$python3" -c "open('f', 'w').write('timed out')" 2>err
        else
            WRAP_LOCKFILE_TIMEOUT=0.5 shim preload "$d/f" dash -c 'echo timed out > f' 2>err
        fi
        rc=$?
        [ "$rc" -ne 0 ] || fail "$t --timeout 0.5: the writer exited 0"
        grep -qF "'$d/f'" err || fail "$t --timeout 0.5: stderr does not name '$d/f': $(cat err)"
        expect_unchanged "$t --timeout 0.5" f
        signal release
        wait "$holder"
        expect_entries "$t --timeout 0.5" "$d" f f.lock held release err
    done
else
    skip_check "flock(1) checks" "flock not installed"
fi

# ---- rename onto a matched target runs under its lock ----
# mv(1) renames a file it wrote elsewhere over the target: that rename must
# wait for the target's lock like the shim's own commits, and give up with a
# timeout, leaving the target alone.
if have flock; then
    for mode in "${modes[@]}"; do
        newdir "rename-$mode"
        t="rename/$mode"
        mkfifo held release
        printf 'old content\n' >f
        printf 'moved in\n' >incoming
        flock f.lock -c 'echo held > held; read x < release' &
        holder=$!
        bg_pids+=("$holder")
        await held "$t" || continue
        arm f
        start "$mode" "$d/f" mv incoming f
        mover=$!
        if blocked_on_flock "$mover"; then
            [ "$(ino f)" = "$old_ino" ] && [ -e incoming ] || fail "$t: mv renamed while flock(1) held f.lock"
        else
            fail "$t: mv never waited for f.lock"
        fi
        signal release
        wait "$holder"
        wait "$mover"
        expect_status "$t: waiting mv" 0 $?
        expect_replaced "$t: waiting mv" f $'moved in\n'
        [ -e incoming ] && fail "$t: incoming still exists after mv"

        printf 'second\n' >incoming
        flock f.lock -c 'echo held > held; read x < release' &
        holder=$!
        bg_pids+=("$holder")
        await held "$t" || continue
        arm f
        WRAP_LOCKFILE_TIMEOUT=0.5 shim "$mode" "$d/f" mv incoming f 2>err
        rc=$?
        [ "$rc" -ne 0 ] || fail "$t timeout: mv exited 0 although f.lock stayed held"
        grep -qF "'$d/f'" err || fail "$t timeout: stderr does not name '$d/f': $(cat err)"
        expect_unchanged "$t timeout" f
        [ -e incoming ] || fail "$t timeout: incoming vanished"
        signal release
        wait "$holder"
    done
fi

finish
