#!/bin/bash
# Descriptor lifetimes libc does not show, and what a pending replacement
# costs in descriptors (README "Guarantees" and "Limits"):
#  - closes through syscall(SYS_close) (libuv's way) commit at once and free
#    the lock; closes by the raw system call instruction, unseen by any
#    interposer, commit when the number comes back from an open, a dup or at
#    exit, and before the next replacement of the same file looks at it;
#  - Node.js: writeFileSync of two files, appendFileSync x3,
#    fs.promises.writeFile, createWriteStream; the lock is free right after
#    writeFileSync returns;
#  - a pending replacement holds the program's descriptor plus two of the
#    library's (temp, lock); python3 under `ulimit -n 16` keeps 4 matched
#    files open at once;
#  - dup2 onto the shim's own descriptor with no room to move it is refused,
#    with the descriptor's number in the message, and the write still lands;
#  - open flags that change how data is written are on the program's
#    descriptor (F_GETFL), and an O_DIRECT write the kernel refuses
#    (unaligned) is refused under the shim too: new, existing (seeded),
#    appended and hard-linked (staged) targets, on the test directory's file
#    system and on /dev/shm, as a plain run gives, and by a second open
#    with O_DIRECT (a join) or F_SETFL, where a staged one refuses what
#    its memfd would wrongly take; an O_SYNC or O_DSYNC
#    open is committed with its fsyncs under WRAP_LOCKFILE_FSYNC=none; an
#    O_DIRECT write onto a single-file bind mount (committed in place) ends
#    as the plain run's, never half old.
# Usage: descriptors_test.sh ATOMICALLY PRELOAD_OBJECT HELPER_DIR
# Exit: 0 pass, 1 fail, 77 a check could not run (its SKIP line says why).
usage="descriptors_test.sh ATOMICALLY PRELOAD_OBJECT HELPER_DIR"
. "$(dirname "$0")/lib.sh"
helpers=$(realpath "${3:?$usage}") || exit 1

# fresh NAME: a new directory with a.json and b.json holding "old".
fresh() {
    newdir "$1"
    echo old >a.json
    echo old >b.json
}

# ---- syscall(SYS_close) and raw closes, C helpers ----
for mode in "${modes[@]}"; do
    fresh "syscall-$mode"
    out=$(shim "$mode" '*.json' "$helpers/unseen_close" syscall 2>err)
    expect_status "syscall(SYS_close)/$mode" 0 $?
    expect_content "syscall(SYS_close)/$mode" a.json $'A\n'
    expect_content "syscall(SYS_close)/$mode" b.json $'B\n'
    [ "$out" = "lock: free" ] || fail "syscall(SYS_close)/$mode: a.json's lock after its close: $out $(cat err)"
    expect_entries "syscall(SYS_close)/$mode" . a.json b.json err
done

fresh raw
shim launcher '*.json' "$helpers/unseen_close" raw 2>err
expect_status "raw close" 0 $?
expect_content "raw close, number reused by the next open" a.json $'A\n'
expect_content "raw close, committed at exit" b.json $'B\n'
grep -q 'numbers differ' err && skip_check "raw close" "the kernel gave b.json another number: $(cat err)"
expect_entries "raw close" . a.json b.json err

fresh reuse
shim launcher '*.json' "$helpers/unseen_close" reuse 2>err
expect_status "raw close, read-only reopen" 0 $?
expect_content "raw close, read-only reopen" a.json $'A\n'
# A shell run right after the reopen already saw the new content.
expect_content "raw close, read-only reopen: committed at the reopen" a.seen $'A\n'
expect_entries "raw close, read-only reopen" . a.json a.seen b.json err

fresh append
echo 0 >c.json
shim launcher '*.json' "$helpers/unseen_close" append 2>err
expect_status "raw close, appends" 0 $?
expect_content "raw close, three appends keep all three" c.json $'0\n1\n2\n3\n'
expect_entries "raw close, appends" . a.json b.json c.json err

fresh pipe
shim launcher '*.json' "$helpers/unseen_close" pipe 2>err
expect_status "raw close, pipe takes the number" 0 $?
expect_content "raw close, pipe takes the number" a.json $'A\n'
expect_content "raw close, pipe takes the number" b.json $'B\n'
expect_entries "raw close, pipe takes the number" . a.json b.json err

fresh sysdup
out=$(shim launcher '*.json' "$helpers/unseen_close" sysdup 2>err)
expect_status "syscall(SYS_dup)" 0 $?
[ "$(echo $out)" = "lock: held lock: free" ] ||
    fail "syscall(SYS_dup): the lock after closing the original, then the duplicate: $(echo $out), want held, free"
expect_content "syscall(SYS_dup)" a.json $'A\n'
expect_entries "syscall(SYS_dup)" . a.json b.json err

fresh openat2
ln -s b.json l.json
arm a.json
out=$(shim launcher '*.json' "$helpers/unseen_close" openat2 2>err)
expect_status "syscall(SYS_openat2)" 0 $?
expect_replaced "syscall(SYS_openat2)" a.json $'A\n'
[ "$out" = "openat2 link: Too many levels of symbolic links" ] ||
    fail "syscall(SYS_openat2) RESOLVE_NO_SYMLINKS through a link: $out, want ELOOP as without the shim"
expect_content "syscall(SYS_openat2) RESOLVE_NO_SYMLINKS" b.json $'old\n'
expect_entries "syscall(SYS_openat2)" . a.json b.json err l.json

# A rename through syscall() onto a matched target waits for its lock: with
# the lock held elsewhere and no waiting, it is refused and a.json stays.
fresh rename
mkfifo hold ready
flock a.json.lock -c 'echo locked >ready; read -r _ <hold' &
bg_pids+=($!)
if await ready "syscall(SYS_rename)"; then
    out=$(WRAP_LOCKFILE_TIMEOUT=0 shim launcher '*.json' "$helpers/unseen_close" rename 2>err)
    [ "$out" = "rename: Resource temporarily unavailable" ] ||
        fail "syscall(SYS_rename) onto a locked target: $out $(cat err), want EAGAIN"
    expect_content "syscall(SYS_rename) onto a locked target" a.json $'old\n'
    signal hold
    wait
    out=$(shim launcher '*.json' "$helpers/unseen_close" rename 2>err)
    [ "$out" = "rename: ok" ] || fail "syscall(SYS_rename): $out $(cat err)"
    expect_content "syscall(SYS_rename)" a.json $'R\n'
fi

fresh execve
shim launcher '*.json' "$helpers/unseen_close" execve 2>err
expect_status "syscall(SYS_execve)" 0 $?
expect_content "syscall(SYS_execve): the new image commits" a.json $'A\n'
expect_entries "syscall(SYS_execve)" . a.json b.json err

# The shim's own lock descriptor closed behind its back, its number handed
# out again: the replacement can no longer be trusted; its close fails,
# the old content stays, and a line names the descriptor.
fresh internal
out=$(shim launcher '*.json' "$helpers/unseen_close" internal 2>err)
status=$?
if [ "$status" -eq 77 ]; then
    skip_check "lock descriptor closed behind the shim's back" "no descriptor names a.json.lock"
else
    lock=$(sed -n 's/^lock //p' <<<"$out")
    grep -qx 'close: Bad file descriptor' <<<"$out" || fail "lock descriptor closed unseen: $(echo $out), want EBADF"
    grep -q "descriptor $lock of the pending replacement of '$d/a.json' was closed behind" err ||
        fail "lock descriptor closed unseen: no line names descriptor $lock: $(cat err)"
    expect_content "lock descriptor closed unseen" a.json $'old\n'
    expect_entries "lock descriptor closed unseen" . a.json b.json err
fi

# ---- Node.js ----
if have node; then
    fresh node
    echo old >c.json
    shim launcher '*.json' node -e '
const fs = require("fs"), cp = require("child_process");
fs.writeFileSync("a.json", "A\n");
// Another process takes the lock at once: absent, or free for flock -n.
const r = cp.spawnSync("sh", ["-c", "test ! -e a.json.lock || flock -n a.json.lock true"]);
fs.writeFileSync("lock.status", String(r.status));
fs.writeFileSync("b.json", "B\n");
for (const n of ["1", "2", "3"]) fs.appendFileSync("c.json", n + "\n");
fs.promises.writeFile("p.json", "P\n").then(() => {
    const w = fs.createWriteStream("s.json");
    w.write("S1\n");
    w.end("S2\n");
});' 2>err
    expect_status "node" 0 $?
    expect_content "node writeFileSync" a.json $'A\n'
    expect_content "node writeFileSync" b.json $'B\n'
    expect_content "node appendFileSync x3" c.json $'old\n1\n2\n3\n'
    expect_content "node fs.promises.writeFile" p.json $'P\n'
    expect_content "node createWriteStream" s.json $'S1\nS2\n'
    expect_content "node: the lock is free after writeFileSync" lock.status 0
    expect_entries "node" . a.json b.json c.json err lock.status p.json s.json
else
    skip_check "node" "not installed"
fi

# ---- descriptors per pending replacement ----
for durability in full none; do
    newdir "fds-$durability"
    echo old >t
    out=$(WRAP_LOCKFILE_FSYNC=$durability shim launcher "$d/t" "$helpers/pending_fds" t 2>err)
    expect_status "descriptors/$durability" 0 $?
    before=$(sed -n 's/^before //p' <<<"$out")
    pending=$(sed -n 's/^pending //p' <<<"$out")
    after=$(sed -n 's/^after //p' <<<"$out")
    # The program's own, the temp's duplicate and the lock.
    [ -n "$before" ] && [ "$((pending - before))" -eq 3 ] ||
        fail "descriptors/$durability: a pending replacement takes $((pending - before)), want 3 ($(echo $out))"
    [ "$after" = "$before" ] || fail "descriptors/$durability: $after descriptors after the commit, $before before"
    expect_content "descriptors/$durability" t $'new\n'
done

newdir ulimit
# No log (its file is one more descriptor of the shim's): 3 + 4 x 3 of 16,
# which leaves python the one free number a replacement's open asks for.
(
    ulimit -n 16
    unset WRAP_LOCKFILE_LOG
    shim launcher '*.txt' "$python3" -c '
files = [open("f%d.txt" % i, "w") for i in range(4)]
for i, f in enumerate(files):
    f.write("x%d\n" % i)
for f in files:
    f.close()
for i in range(8):
    with open("g.txt", "a") as f:
        f.write("%d" % i)
'
) 2>err
expect_status "python3 under ulimit -n 16" 0 $?
for i in 0 1 2 3; do expect_content "python3 under ulimit -n 16" f$i.txt "x$i"$'\n'; done
expect_content "python3 under ulimit -n 16, in sequence" g.txt 01234567
expect_entries "python3 under ulimit -n 16" . err f0.txt f1.txt f2.txt f3.txt g.txt

# ---- dup2 onto the shim's own descriptor, no room above its floor ----
# The shim's descriptor moves wherever there is room (here below the floor):
# dup2 succeeds as it does plainly. Refusing it would fail a shell's
# redirection after its truncating open, and the shell would then commit an
# empty file. Only with no free number at all is dup2 refused (EMFILE).
for room in low none; do
    t="dup2 onto the lock descriptor, room $room"
    newdir "dup2-$room"
    echo old >t
    out=$(shim launcher "$d/t" "$helpers/dup2_internal" t ${room/low/} 2>err)
    status=$?
    if [ "$status" -eq 77 ]; then
        skip_check "$t" "$out"
        continue
    fi
    expect_status "$t" 0 "$status"
    lock=$(sed -n 's/^lock //p' <<<"$out")
    if [ "$room" = low ]; then
        grep -qx 'dup2: ok' <<<"$out" || fail "$t: $(echo $out), want dup2 to succeed"
        [ ! -s err ] || fail "$t: the shim complained: $(cat err)"
    else
        grep -qx 'dup2: Too many open files' <<<"$out" || fail "$t: $(echo $out), want EMFILE"
        grep -q "cannot move descriptor $lock out of the way" err ||
            fail "$t: the message does not name descriptor $lock: $(cat err)"
    fi
    expect_content "$t" t $'new\n'
    expect_entries "$t" . err t
done

# ---- open flags on the program's descriptor: O_DIRECT, O_SYNC, O_DSYNC, O_NOATIME ----
# flags_probe FILE: each flag in turn, four opens of FILE (new, existing
# without O_TRUNC, O_APPEND, hard-linked when LINKED is set): what F_GETFL
# shows, what an unaligned and an aligned (mmap'ed buffer) write give, the
# content after the close.
cat >"$tmp/flags_probe.py" <<'PY'
import fcntl, mmap, os, sys
path = sys.argv[1]
for name in ("O_DIRECT", "O_SYNC", "O_DSYNC", "O_NOATIME"):
    flag = getattr(os, name)
    for how, extra in (("new", os.O_TRUNC), ("existing", 0), ("append", os.O_APPEND)):
        if how == "new" and os.path.exists(path) and not os.environ.get("LINKED"):
            os.unlink(path)
        tag = name + " " + how
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | extra | flag, 0o644)
        except OSError as e:
            print(tag, "open", e.errno)
            continue
        print(tag, "F_GETFL", bool(fcntl.fcntl(fd, fcntl.F_GETFL) & flag))
        try:
            os.write(fd, b"x" * 10)
            print(tag, "unaligned write ok")
        except OSError as e:
            print(tag, "unaligned write", e.errno)
        buf = mmap.mmap(-1, 4096)
        buf.write(tag.encode().ljust(4096, b"."))
        if not extra & os.O_APPEND:
            os.lseek(fd, 0, os.SEEK_SET)
        try:
            print(tag, "aligned write", os.write(fd, buf))
        except OSError as e:
            print(tag, "aligned write", e.errno)
        os.close(fd)
        with open(path, "rb") as f:
            data = f.read()
        print(tag, "content", len(data), data[:16], data[-16:])
PY
flags_probe() { "$python3" "$tmp/flags_probe.py" "$@"; }
flag_dirs=("$tmp")
[ -d /dev/shm ] && [ -w /dev/shm ] && [ "$(stat -f -c %T /dev/shm)" = tmpfs ] && flag_dirs+=(/dev/shm)
for base in "${flag_dirs[@]}"; do
    for linked in "" 1; do
        name="open flags in $base${linked:+, hard-linked}"
        where=$(mktemp -d "$base/flags.XXXXXX") || exit 1
        cd "$where" || exit 1
        : >f.dat
        [ -n "$linked" ] && ln f.dat other
        LINKED=$linked flags_probe f.dat >plain.out 2>&1
        contents plain.out
        want=$REPLY
        for mode in "${modes[@]}"; do
            : >f.dat
            LINKED=$linked shim "$mode" '*.dat' "$python3" "$tmp/flags_probe.py" f.dat >shim.out 2>err
            expect_status "$name/$mode" 0 $?
            contents shim.out
            # A staged (hard-linked) target's memfd cannot carry O_SYNC or
            # O_DSYNC (docs/design.md, "Open flags"): all else must match.
            if [ -n "$linked" ]; then
                REPLY=$(grep -v -E '^O_D?SYNC .* F_GETFL' shim.out)
                want=$(grep -v -E '^O_D?SYNC .* F_GETFL' plain.out)
            fi
            [ "$REPLY" = "$want" ] || fail "$name/$mode: the shim run differs from the plain run: $(diff plain.out shim.out | head -20 | tr '\n' ' ') $(cat err)"
            [ -n "$linked" ] && [ "$(ino f.dat)" != "$(ino other)" ] && fail "$name/$mode: f.dat lost its link"
        done
        cd "$tmp" && rm -rf "$where"
    done
done

# O_DIRECT onto a single-file bind mount (the rename is refused: EBUSY, so
# the commit writes in place): the library's read-back of the temp goes
# without O_DIRECT, so an unaligned end is copied whole, never half the
# target new and half old. Root, in a mount namespace of its own.
if is_root && have unshare; then
    newdir direct-bind
    cat >probe.py <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC | os.O_DIRECT)
buf = mmap.mmap(-1, 1 << 20)
buf.write(b"A" * (1 << 20))
print("write", os.write(fd, buf), os.write(fd, memoryview(buf)[:4096]))
os.ftruncate(fd, (1 << 20) + 100)
os.close(fd)
print("close ok")
PY
    for run in plain shim; do
        head -c 2097152 /dev/zero | tr '\0' o >src.$run
        : >t.$run.dat
        if [ $run = plain ]; then pre=(); else pre=(env LD_PRELOAD="$preload" WRAP_LOCKFILE_RULES='*.dat'); fi
        unshare -m --propagation private bash -c 'mount --bind "$1" "$2" || exit 77; shift 2; "$@"' sh \
            "src.$run" "t.$run.dat" "${pre[@]}" "$python3" probe.py "t.$run.dat" >out.$run 2>err.$run
        echo "rc $?" >>out.$run
    done
    if grep -q '^rc 77' out.plain; then
        skip_check "O_DIRECT onto a bind mount" "mount --bind failed: $(cat err.plain)"
    else
        contents out.plain
        want=$REPLY
        contents out.shim
        [ "$REPLY" = "$want" ] || fail "O_DIRECT onto a bind mount: shim run $(echo $REPLY) $(cat err.shim), plain $(echo $want)"
        cmp -s src.plain src.shim || fail "O_DIRECT onto a bind mount: the file holds $(tr -s Ao <src.shim | head -c 40) ($(stat -c %s src.shim) bytes), plain $(tr -s Ao <src.plain | head -c 40) ($(stat -c %s src.plain) bytes)"
    fi
    # A file of a file system without direct I/O (ramfs) bound over a name
    # in one with it: the kernel refuses O_DIRECT on the file (EINVAL), and
    # so does the shim, although the temp's file system would take it.
    cat >probe2.py <<'PY'
import os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC | os.O_DIRECT)
    print("open ok", os.write(fd, b"x" * 10))
    os.close(fd)
except OSError as e:
    print("errno", e.errno)
PY
    for run in plain shim; do
        : >r.$run.dat
        if [ $run = plain ]; then pre=(); else pre=(env LD_PRELOAD="$preload" WRAP_LOCKFILE_RULES='*.dat'); fi
        unshare -m --propagation private bash -c 'mkdir -p ram && mount -t ramfs ramfs ram && echo old >ram/f &&
            mount --bind ram/f "$1" || exit 77; shift; "$@"; cat ram/f' sh "r.$run.dat" "${pre[@]}" "$python3" probe2.py "r.$run.dat" \
            >out2.$run 2>&1
        echo "rc $?" >>out2.$run
    done
    if grep -q '^rc 77' out2.plain; then
        skip_check "O_DIRECT onto a ramfs file bound in" "mount failed: $(cat out2.plain)"
    else
        cmp -s out2.plain out2.shim ||
            fail "O_DIRECT onto a ramfs file bound in: shim $(tr '\n' '|' <out2.shim), plain $(tr '\n' '|' <out2.plain)"
    fi
else
    skip_check "O_DIRECT onto a bind mount" "needs root and unshare(1)"
fi

# O_DIRECT on a second descriptor of a pending file (a second open with it,
# which joins the first), and by F_SETFL on the first. A replacement by
# rename gives the kernel's answers (its temp lies beside the target), and
# so does a staged (hard-linked) one's join on tmpfs (its memfd is tmpfs
# too). Elsewhere the memfd would take the unaligned writes the target's
# file system refuses (EINVAL on ext4): that join is refused with EINVAL and
# a line on stderr, and nothing the kernel refused is written. F_SETFL on
# the staged descriptor, a memfd without direct I/O, is refused (EINVAL) by
# the kernel itself.
cat >"$tmp/direct_join.py" <<'PY'
import fcntl, os, sys
path, how = sys.argv[1:3]
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
os.write(fd, b"one\n")
def write(tag, to, data):
    try:
        print(tag, os.write(to, data))
    except OSError as e:
        print(tag, "errno", e.errno)
try:
    if how == "join":
        second = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_DIRECT)
    else:
        second = fd
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_DIRECT)
    print(how, "ok")
    write("unaligned write", second, b"two\n")
    if second != fd:
        os.close(second)
except OSError as e:
    print(how, "errno", e.errno)
os.close(fd)
print("content", open(path, "rb").read())
PY
refusing_fs=
for base in "${flag_dirs[@]}"; do
    for linked in "" 1; do
        for how in join setfl; do
            name="O_DIRECT $how in $base${linked:+, hard-linked}"
            where=$(mktemp -d "$base/direct.XXXXXX") || exit 1
            cd "$where" || exit 1
            echo old >f.dat
            [ -n "$linked" ] && ln f.dat other
            "$python3" "$tmp/direct_join.py" f.dat $how >plain.out 2>&1
            echo old >f.dat
            shim launcher '*.dat' "$python3" "$tmp/direct_join.py" f.dat $how >shim.out 2>err
            expect_status "$name" 0 $?
            grep -qx 'unaligned write errno 22' plain.out && [ $how = join ] && refusing_fs=1
            if [ -n "$linked" ] && { [ $how = setfl ] || grep -qx 'unaligned write errno 22' plain.out; }; then
                grep -qx "$how errno 22" shim.out || fail "$name: O_DIRECT was not refused: $(tr '\n' ' ' <shim.out)"
                grep -qxF "content b'old\none\n'" shim.out ||
                    fail "$name: the file holds what the kernel refused: $(tr '\n' ' ' <shim.out)"
                [ $how = setfl ] || grep -q "wrap_lockfile: .*f.dat.*O_DIRECT" err ||
                    fail "$name: no line on stderr: $(cat err)"
            else
                cmp -s plain.out shim.out ||
                    fail "$name: the shim run differs from the plain run: $(diff plain.out shim.out | tr '\n' ' ') $(cat err)"
            fi
            [ -n "$linked" ] && [ "$(ino f.dat)" != "$(ino other)" ] && fail "$name: f.dat lost its link"
            cd "$tmp" && rm -rf "$where"
        done
    done
done
[ -n "$refusing_fs" ] || skip_check "O_DIRECT join refused" "no file system here refuses unaligned direct writes (${flag_dirs[*]})"

# Durability: under WRAP_LOCKFILE_FSYNC=none a plain write-open commits with
# no fsync; an O_SYNC or O_DSYNC open gets the temp's and the directory's.
if have strace; then
    newdir sync-durability
    echo old >s.dat
    # join-O_SYNC: a plain write-open first, then a second open of the
    # pending file with O_SYNC (it joins the first), written through.
    for flag in O_WRONLY O_SYNC O_DSYNC join-O_SYNC; do
        rm -f trace
        WRAP_LOCKFILE_FSYNC=none strace -f -qq -o trace -e trace=fsync,fdatasync \
            env LD_PRELOAD="$preload" WRAP_LOCKFILE_RULES='*.dat' "$python3" -c '
import os, sys
name = sys.argv[1]
first = os.open("s.dat", os.O_WRONLY | os.O_TRUNC | (getattr(os, name) if name.startswith("O_D") or name == "O_SYNC" else 0))
fd = os.open("s.dat", os.O_WRONLY | os.O_SYNC) if name == "join-O_SYNC" else first
os.write(fd, b"new\n")
if fd != first:
    os.close(fd)
os.close(first)' "$flag" 2>err
        expect_status "fsync none, $flag" 0 $?
        expect_content "fsync none, $flag" s.dat $'new\n'
        n=$(grep -c -E '^[0-9]+ +f(data)?sync\(' trace)
        if [ "$flag" = O_WRONLY ]; then
            [ "$n" -eq 0 ] || fail "fsync none, plain write-open: $n fsyncs, want none: $(cat trace)"
        else
            [ "$n" -ge 2 ] || fail "fsync none, $flag: $n fsyncs, want the temp's and the directory's: $(cat trace)"
        fi
        echo old >s.dat
    done
else
    skip_check "O_SYNC durability" "no strace (tools/packages.d/descriptors.list installs it)"
fi

finish
