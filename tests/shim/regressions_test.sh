#!/bin/bash
# Regression checks for bugs a review found in the shim (state.cpp,
# handlers.hpp) and the core, each with a real program and numbered like the
# review:
#   1 exec of a static program (it cannot load the shim) from a shimmed shell
#   2 /dev/stderr is a descriptor, not a path to replace
#   3 '..' after a symlinked directory is resolved by the kernel's rules
#   4 O_CREAT|O_EXCL on a dangling symlink: EEXIST, its target not created
#   5 a matched FIFO, O_WRONLY|O_NONBLOCK, no reader: ENXIO, no hang
#   6 dup2 onto one of the shim's own descriptors
#   7 nested replacements of one file: the lock survives a close loop
#   8 exec with two pending replacements sharing one lock: no double close
#   9 an fdopen'd stream whose buffered write fails at exit: old content kept,
#     and exit status 1 though main returns 0 (check 29)
#  10 exec hand-over of a replacement with 250 descriptors
#  11 exec into an environment without rules still commits
#  12 fork from a multi-threaded program while another thread opens/closes
#  13 the program's descriptor is the temp itself: the number open(2) would
#     give, the program's own O_CLOEXEC choice, an unlinked O_TMPFILE
#  14 append-only (chattr +a) and immutable (chattr +i) targets: bash's
#     '>>' appends in place, '>' fails with EPERM as without the shim, the
#     old content and inode stay
#  15 many and long rules (past the rule set's built-in room for 8 patterns
#     and 512 bytes): the last rule still matches, the last exclusion wins
#  16 a program that lowers RLIMIT_NOFILE below the shim's descriptor floor
#     (ulimit -n 512; the floor was 768) still writes matched files, also
#     through a shell's `exec 3>` (the shim's descriptors stay high)
#  17 a program's own sticky bit and access time of exactly 1970-01-01 on
#     its file (set by a child through /dev/fd) is not a child's error mark
#  18 nobody writes root's mode-666 file in a sticky 1777 directory: the
#     rename is refused (EPERM), so it is written in place, as without the shim
#  19 overlayfs: a hard-linked lower file, whose first open for writing
#     copies it up to a new inode, is written as without the shim (it
#     failed with EAGAIN: the copy-up was taken for a file swapped in)
#  20 a file-size limit (prlimit --fsize) below a file's size: an update
#     within the limit (dd conv=notrunc, truncate) works as without the
#     shim (the seed's copy of the whole file was killed by SIGXFSZ inside
#     the open), for a file replaced and a hard-linked (staged) one; the
#     shim's log past the limit gets no line (it killed the program too)
#  21 an append-only directory (chattr +a): no rename over its files, no
#     removal: targets are written in place and only their lock files stay,
#     where every write left a temp name (a copy of the content) for good
#  22 a pending file renamed away by another process (logrotate's mv), then
#     created anew by its opener: the new file is written, as plainly (the
#     new open joined the pending replacement, whose commit was refused)
#  23 a parent holding a file open while its exec'd child (no descriptor of
#     it inherited: subprocess's close_fds) writes it: under --lock-only the
#     child writes in place, as plainly; under a replace rule its open fails
#     at once with EDEADLK; both used to wait for the parent's lock forever
#  24 a program that locks a matched, existing empty file it opened for
#     writing (flock, lockf: a lock file of its own) locks that file, which a
#     plain process then finds locked; it locked the temp, which excluded
#     nobody
#  25 a descriptor limit that leaves no room for the replacement's own
#     descriptors beside the program's (ulimit -n 4 to 8, lowered in the
#     shell or before the shim was loaded): `echo new > f` writes f or
#     fails at its open, f keeping its old content; the shell's next dup
#     used to fail and its close commit f empty (replace, hard-linked,
#     lock-only; flock and dotlock; a new file was left empty), and at 4 the lock file stayed (no descriptor left to
#     remove it through). With room to spare (8) f is written, as plainly
#  26 sparse content written over a hard-linked (staged, in place) target:
#     cp --sparse=always of a 64 MiB file with 8 KiB of data, onto a sparse
#     target and onto a dense one, allocates what plain cp does (the
#     in-place write reserved and wrote all 64 MiB, ENOSPC where plain cp
#     fits) and leaves the same content (zeros under the holes)
#  27 an append to a sparse file (echo >> of 64 MiB with 4 KiB of data)
#     where the seed cannot share extents (no reflink): the replacement
#     keeps the holes (its copy wrote all 64 MiB of zeros)
#  28 a hard-linked (staged) target whose blocks all lie past its new
#     content (8 MiB, data only in its last 2 MiB) on a nearly full tmpfs:
#     `dd of=f bs=1M count=1` keeps f's old content whole and fails at its
#     close (its plain run fits: O_TRUNC frees the old blocks). The
#     reservation was skipped because the target had as many blocks as the
#     new content's size, so the in-place write stopped at ENOSPC half way
#  29 the same full disk, the commit left to the program's exit (python,
#     f still open, sys.exit(0), os._exit(0) or the end of the script, a
#     return from main): old content kept, and the exit status 1 (it was
#     0: a script testing $? took the write as done)
#  30 quick_exit(0) with a replacement pending: committed, as the plain
#     run's write is in the file (libc's quick_exit calls its own _exit,
#     unseen: the replacement was dropped)
#  31 another user's file at the per-target temp name (".f._pending~~") in a
#     sticky 1777 directory stays when root writes f: it was taken for a
#     leftover of a killed holder (a regular file with one link) and removed
#  32 as 28, but the target's holes are hidden by blocks preallocated past
#     its end (fallocate -n: 4 MiB, data in its last 1 MiB, 3 MiB past the
#     end): its block count says dense, so the reservation was skipped and
#     the in-place write stopped at ENOSPC half way (f torn)
#  33 a shell's redirection when no descriptor number is free (limit 16,
#     every number taken): the dup2 onto the shim's lock fails (EMFILE; its
#     lock has nowhere to go), and the close of the file opened for it,
#     nothing written, keeps the target's old content (it committed an
#     empty file)
#  34 the shim's own descriptors look closed to the calls a program asks
#     whether a number is open with (fcntl F_GETFD/F_DUPFD, dup, dup2 from
#     it: EBADF, as without the shim): they succeeded and handed the
#     program copies of the lock and the temp (dash, saving a number before
#     a redirection onto it under a small limit, then failed the redirection);
#     nor can a write, ftruncate or close through such a stale number reach
#     them (a write went into the lock file, which then stayed behind as
#     somebody's data, and into the temp; close returned 0)
#  35 dash under ulimit -n 14 redirecting a group's stdout and stderr to two
#     matched files: the shim's descriptors take the numbers dash saves its
#     own at (10 and up), the second redirection fails with EMFILE, and the
#     first file, opened with O_TRUNC, nothing written, was committed empty
#     (both files lost their content; plain dash writes both)
#  36 bash writes d/f.txt through a descriptor while the directory is
#     renamed (mv d d2): d2/f.txt gets the write, as plainly (the commit was
#     refused, ESTALE, and the write dropped), and our lock file does not
#     stay behind as d2/f.txt.lock, which git and others take for a lock held
#  37 as 33, but the program goes on writing into the file whose dup2 was
#     refused (the plain run's dup2 succeeds and the write lands): the
#     write is committed at its close (the refused dup2 poisoned the
#     replacement, and the close dropped the line the program wrote)
#  38 an exec into an image that does not load the shim (an environment
#     without LD_PRELOAD) after the program met EMFILE: the replacement on
#     its stdout, empty, is committed before the exec and the new image
#     writes into the file (it was refused as still empty, and what the new
#     image wrote went into the discarded temp: exit 0, old content)
#  39 a child (os.fork, subprocess.Popen, os.posix_spawn) given the
#     descriptor of a replacement the opener met EMFILE over writes into it
#     after the opener's last close: its write lands in the file (the
#     opener's close refused the replacement as still empty, its close
#     failed, and what the child wrote went into the discarded temp)
#  40 a program that lowers its open-file limit below the shim's
#     descriptors, meets EMFILE on its own opens, and then closes the file
#     it opened with O_TRUNC, meaning it empty: the file is emptied, as by
#     the plain run (the shim's descriptors took none of its numbers, yet
#     the close failed and the file kept its old content)
#  41 as 39, the child forked by the image before an exec, the replacement
#     handed over to the new image (WRAP_LOCKFILE_PENDING), which meets
#     EMFILE and closes it: the child's later write lands (the new image
#     refused it as still empty)
#  42 flock(1)'s idiom on the matched target's own lock file,
#     `( flock 9; echo new > f ) 9>>f.lock`, and a program that flock()s
#     f.lock itself (exclusive or shared): f is replaced under the
#     program's own lock, which another writer meets (it used to wait for
#     that lock, held by the waiting process's own descriptor, for ever); a
#     rename onto f likewise
#  43 as 42, the lock's holder runs two appenders of f at once (both hold
#     its description: `( flock 9; a >> f & b >> f; wait ) 9>>f.lock`):
#     both lines land, as plainly (each appended to a copy of the old f,
#     without our lock, and the second commit dropped the first one's line)
#  44 as 42 while the shim holds another lock of the program's: a shell
#     with g's replacement pending on a descriptor (`exec 3>g`) writes f
#     under its own lock on f.lock: f and g are both written, as plainly
#     (it waited for its own lock for ever: the check was off while the
#     library held any other lock in the process)
#  45 a program whose stdio write met a full disk (tr under bash, which
#     opens the redirection in the child it execs: that image commits):
#     its fclose() and the shim's line say ENOSPC, as the write did; they
#     said "Input/output error" (a stream's error flag carries no errno)
#  46 threads appending to one file while others rewrite their own: no
#     append is lost (the library's lock of one thread, at a number another
#     thread had just closed, or copied above the floor and not yet marked,
#     was taken for the program's own lock, and an append went in place
#     without our lock)
#  47 a vfork child that dup2()s onto the shim's lock descriptor of its
#     parent's pending replacement: the parent keeps its lock (another
#     thread's write waits for it and lands after it) and releases it
#     (the child's move aside pointed the parent's lock at a copy only the
#     child had: the other thread wrote as if under the program's own lock
#     and its content was lost, and the parent's lock descriptor leaked)
#  48 flock(1)'s idiom on a lock file whose file the rule matches too
#     (`$d/*` covers counter and counter.lock): the program's flock meets
#     a plain process holding counter.lock and the program's run ends as
#     plainly, and counter.lock keeps its inode (counter.lock was replaced:
#     the flock fell on its temp, so it excluded nobody, and the commit put
#     a new inode beside the one the plain process held locked)
# The C programs they run are built by meson (tests/shim/helpers/, and the
# exec probes of tests/shim/meson.build); only the static probe may be
# missing (no static libc), which skips check 1.
# Every check asserts on the file system (content, inode, link count, the
# entries left in the directory) or on an exit status / errno.
# Usage: regressions_test.sh ATOMICALLY PRELOAD_OBJECT PROBE_DIR HELPER_DIR
# Exit: 0 pass, 1 fail, 77 a check could not run (its SKIP line says why).
usage="regressions_test.sh ATOMICALLY PRELOAD_OBJECT PROBE_DIR HELPER_DIR"
source "$(dirname "$0")/lib.sh"

# run GLOBS COMMAND [ARG]...: COMMAND under the shim (raw LD_PRELOAD) with
# replace rules GLOBS, bounded by $limit s (default 20) so that a hang fails
# instead of stalling the suite (timeout exits 124 then).
run() {
    local globs=$1
    shift
    LD_PRELOAD=$preload WRAP_LOCKFILE_RULES=$globs timeout "${limit:-20}" "$@"
}

# Each check's messages start with its number; the summary lists the
# numbers of the checks that failed.
failed_checks=()
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
    local n=${1%% *}
    [[ " ${failed_checks[*]} " == *" $n "* ]] || failed_checks+=("$n")
}

# The C programs are built by meson: exec_probe (writes "hello") and its
# static build in PROBE_DIR, the rest in HELPER_DIR (tests/shim/helpers/,
# each described at its top).
probes=$(realpath "${3:?usage: $usage}") || exit 1
helpers=$(realpath "${4:?usage: $usage}") || exit 1

# ---- 1: exec of a static program from a shimmed shell ----
# The shell's child opens out.txt (a pending replacement on fd 1) and execs
# a program that cannot load the shim: nobody after the exec would commit,
# so the replacement must be committed before the exec and the program
# write straight into the new file.
if [ -x "$probes/exec_probe_static" ]; then
    newdir c1
    printf 'old\n' >out.txt
    run '*.txt' bash -c "'$probes/exec_probe_static' > out.txt"
    expect_status "1 static exec" 0 $?
    expect_content "1 static exec" out.txt $'hello\n'
    expect_entries "1 static exec" "$d" out.txt
else
    skip_check "1 static exec" "exec_probe_static was not built (no static libc: libc6-dev)"
fi

# ---- 2: /dev/stderr is not followed into the real file ----
# fd 2 appends to x.log (rule '*.log'); `>> /dev/stderr` must write through
# that descriptor, not replace x.log, which would cut off the outer writers.
newdir c2
(
    echo line1 >&2
    run '*.log' bash -c 'echo line2 >> /dev/stderr; echo line3 >&2'
    echo line4 >&2
) 2>>x.log
expect_content "2 /dev/stderr" x.log $'line1\nline2\nline3\nline4\n'
expect_entries "2 /dev/stderr" "$d" x.log

# ---- 3: '..' after a symlinked directory ----
# lnk -> real/sub, so lnk/../f.txt is real/f.txt for the kernel, not ./f.txt.
newdir c3
mkdir -p real/sub
ln -s real/sub lnk
printf 'keep\n' >f.txt
printf 'old\n' >real/f.txt
run '*.txt' bash -c 'echo new > lnk/../f.txt'
expect_status "3 lnk/.." 0 $?
expect_content "3 lnk/.." real/f.txt $'new\n'
expect_content "3 lnk/.." f.txt $'keep\n'
expect_entries "3 lnk/.." "$d" f.txt lnk real
expect_entries "3 lnk/.." "$d/real" f.txt sub

# ---- 4: O_CREAT|O_EXCL on a dangling symlink ----
newdir c4
ln -s "$d/victim.txt" trap.txt
out=$(run '*.txt' "$python3" -c '
import errno, os
try:
    fd = os.open("trap.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b"x"); os.close(fd); print("opened")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
' 2>&1)
[ "$out" = EEXIST ] || fail "4 O_EXCL on a dangling symlink: got '$out', want EEXIST"
[ -e victim.txt ] && fail "4 O_EXCL on a dangling symlink: the link's target victim.txt was created"
[ -L trap.txt ] || fail "4 O_EXCL on a dangling symlink: trap.txt is no longer a symlink"
expect_entries "4 O_EXCL on a dangling symlink" "$d" trap.txt

# ---- 5: a matched FIFO, O_WRONLY|O_NONBLOCK, no reader ----
newdir c5
mkfifo p.txt
out=$(limit=10 run '*.txt' "$python3" -c '
import errno, os
try:
    fd = os.open("p.txt", os.O_WRONLY | os.O_NONBLOCK); print("opened")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
' 2>&1)
rc=$?
[ $rc -eq 124 ] && out="a hang (killed after 10 s)"
[ "$out" = ENXIO ] || fail "5 FIFO O_NONBLOCK: got '$out', want ENXIO at once"
[ -p p.txt ] || fail "5 FIFO O_NONBLOCK: p.txt is no longer a FIFO"
expect_entries "5 FIFO O_NONBLOCK" "$d" p.txt

# ---- 6: dup2 onto one of the shim's internal descriptors ----
# Whatever the shim then does with the replacement, the target must hold the
# program's content or its old content, and the unrelated file must not be
# linked in (same inode, one link, same content).
for which in temp lock; do
    t="6 dup2 onto the internal $which fd"
    newdir "c6-$which"
    printf 'other content\n' >other.dat
    printf 'old target\n' >target.txt
    other_ino=$(ino other.dat)
    run '*.txt' "$helpers/dup2_onto_shim_fd" "$which" 2>err
    rc=$?
    [ $rc -eq 11 ] && fail "$t: $(cat err)"
    [ $rc -eq 124 ] && fail "$t: hung"
    contents target.txt
    [ "$REPLY" = $'new content\n' ] || [ "$REPLY" = $'old target\n' ] ||
        fail "$t: target.txt holds '$(printf %q "$REPLY")', want the new or the old content"
    expect_content "$t" other.dat $'other content\n'
    [ "$(ino other.dat)" = "$other_ino" ] || fail "$t: other.dat changed inode"
    [ "$(stat -c %h other.dat)" = 1 ] || fail "$t: other.dat has $(stat -c %h other.dat) links, want 1"
    [ "$(ino target.txt)" != "$other_ino" ] || fail "$t: target.txt is other.dat's inode"
done

# ---- 7: nested replacements of one file keep the lock ----
# Status bits of the helper: 2 the lock was free after the first commit, 4
# free after the close loop, both while the second replacement was pending.
t="7 nested replacements"
newdir c7
printf 'old\n' >n.txt
run '*.txt' "$helpers/nested_replace"
rc=$?
case $rc in
0) ;;
2) fail "$t: the lock of n.txt was free after the first commit, with the second replacement pending" ;;
4) fail "$t: the lock of n.txt was free after the close loop, with the second replacement pending" ;;
6) fail "$t: the lock of n.txt was free after the first commit and after the close loop" ;;
*) fail "$t: exit status $rc" ;;
esac
expect_content "$t" n.txt $'B\n'
expect_entries "$t" "$d" n.txt

# ---- 8: exec with two pending replacements sharing one lock ----
# Helper status 2/3: the program's own descriptor was closed (or replaced)
# when fd 2's replacement was committed: a double close of the shared lock.
t="8 exec with two replacements of one file"
newdir c8
printf 'old\n' >f.txt
printf 'mine\n' >mine.dat
run '*.txt' bash -c "exec '$helpers/two_pending' > f.txt 2> f.txt"
rc=$?
case $rc in
0) ;;
2 | 3) fail "$t: the program's own descriptor was closed by the shim (double close of the lock fd)" ;;
*) fail "$t: exit status $rc" ;;
esac
expect_content "$t" f.txt $'err\n'
expect_entries "$t" "$d" f.txt mine.dat

# ---- 9: an fdopen'd stream whose buffered write fails at exit ----
t="9 fdopen stream, EFBIG at exit"
newdir c9
head -c 5000 /dev/zero | tr '\0' o >big.txt
cp big.txt "$tmp/c9.ref"
run '*.txt' "$helpers/stream_efbig" 2>err
# Its main returns 0; what it wrote is not in place: 1 (check 29).
expect_status "$t" 1 $?
cmp -s big.txt "$tmp/c9.ref" ||
    fail "$t: big.txt lost its old 5000 bytes (now $(stat -c %s big.txt) bytes): a failed write was committed"
expect_entries "$t" "$d" big.txt err

# ---- 10: exec hand-over of a replacement with 250 descriptors ----
t="10 exec with 250 descriptors"
newdir c10
printf 'old\n' >many.txt
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 300 ]; then
    skip_check "$t" "ulimit -n is $(ulimit -n)"
else
    run '*.txt' "$helpers/many_fds"
    rc=$?
    case $rc in
    0) ;;
    2) fail "$t: closing fds 3..199 committed while fds 200..253 were still open" ;;
    *) fail "$t: exit status $rc" ;;
    esac
    expect_content "$t" many.txt 'first-half second-half
'
    expect_entries "$t" "$d" many.txt
fi

# ---- 11: exec into an environment without rules ----
# env (shimmed, with rules) takes over the shell's pending out5.txt, then
# execs a program whose environment has no rules: someone must commit.
t="11 exec into no rules"
newdir c11
printf 'old\n' >out5.txt
run '*.txt' bash -c "exec env -u WRAP_LOCKFILE_RULES '$probes/exec_probe' > out5.txt"
expect_status "$t" 0 $?
expect_content "$t" out5.txt $'hello\n'
expect_entries "$t" "$d" out5.txt

# ---- 12: fork from a multi-threaded program ----
t="12 fork with threads"
newdir c12
out=$(WRAP_LOCKFILE_FSYNC=none LD_PRELOAD=$preload WRAP_LOCKFILE_RULES='*.txt' \
    timeout 60 "$helpers/fork_threads" 200 2>&1)
rc=$?
case $rc in
0) ;;
124) fail "$t: hung (killed after 60 s)" ;;
*) fail "$t: exit status $rc: $out" ;;
esac
expect_content "$t" c.txt $'child\n'

# ---- 13: the program's descriptor is the temp itself ----
# With fsync none (no directory descriptor) and full (one, kept out of the
# way), with and without O_CLOEXEC: open(2) gives fd 3, the lowest free
# number; FD_CLOEXEC is what the program asked for; the descriptor is an
# unlinked O_TMPFILE (st_nlink 0 to the file system; skipped without
# O_TMPFILE) while t.txt keeps its old content; after close t.txt is that file with the new content
# and nothing else is left.
for sync in none full; do
    for cx in cloexec plain; do
        t="13 temp descriptor (fsync $sync, $cx)"
        newdir "c13-$sync-$cx"
        printf 'old\n' >t.txt
        out=$(WRAP_LOCKFILE_FSYNC=$sync run '*.txt' "$helpers/temp_fd" "$cx" 2>"$tmp/c13.err")
        rc=$?
        if [ $rc -ne 0 ]; then
            fail "$t: exit status $rc: $(cat "$tmp/c13.err")"
            continue
        fi
        read -r fd want cloexec nlink fd_ino tmpfile old_seen <<<"$out"
        [ "$fd" = 3 ] || fail "$t: open gave fd $fd, want 3"
        [ "$fd" = "$want" ] || fail "$t: open gave fd $fd, the lowest free number was $want"
        want_cloexec=0
        [ "$cx" = cloexec ] && want_cloexec=1
        [ "$cloexec" = "$want_cloexec" ] || fail "$t: FD_CLOEXEC is $cloexec, want $want_cloexec"
        if [ "$tmpfile" = 1 ]; then
            [ "$nlink" = 0 ] || fail "$t: the descriptor's file has $nlink links, want 0 (the O_TMPFILE itself)"
        else
            skip_check "$t" "no O_TMPFILE here, link count not checked"
        fi
        [ "$old_seen" = 1 ] || fail "$t: t.txt did not hold its old content while the replacement was pending"
        expect_content "$t" t.txt $'new\n'
        [ "$(ino t.txt)" = "$fd_ino" ] || fail "$t: t.txt is inode $(ino t.txt), not the file the program wrote ($fd_ino)"
        expect_entries "$t" "$d" t.txt
    done
done

# ---- 14: append-only and immutable targets ----
# Before the target was read with statx, an append-only file was replaced
# by rename at commit (refused: the appended line was lost at close) and
# '>' was not refused at open.
newdir c14
printf 'old\n' >log.txt
printf 'old\n' >frozen.txt
if ! chattr +a log.txt 2>/dev/null || ! chattr +i frozen.txt 2>/dev/null; then
    chattr -a log.txt 2>/dev/null
    skip_check "14" "chattr +a/+i not supported here (needs root and a file system with attributes)"
else
    before=$(ino log.txt)
    run '*.txt' bash -c 'echo tail >> log.txt' 2>"$tmp/c14.err" || fail "14 append: '>>' failed: $(cat "$tmp/c14.err")"
    expect_content "14 append" log.txt $'old\ntail\n'
    [ "$(ino log.txt)" = "$before" ] || fail "14 append: log.txt changed inode (replaced, not appended in place)"
    run '*.txt' bash -c 'echo new > log.txt' 2>"$tmp/c14.err" && fail "14 append: '>' onto an append-only file succeeded"
    grep -q 'Operation not permitted' "$tmp/c14.err" || fail "14 append: '>' did not fail with EPERM: $(cat "$tmp/c14.err")"
    expect_content "14 append" log.txt $'old\ntail\n'
    before=$(ino frozen.txt)
    run '*.txt' bash -c 'echo new > frozen.txt' 2>"$tmp/c14.err" && fail "14 immutable: '>' onto an immutable file succeeded"
    grep -q 'Operation not permitted' "$tmp/c14.err" || fail "14 immutable: '>' did not fail with EPERM: $(cat "$tmp/c14.err")"
    run '*.txt' bash -c 'echo more >> frozen.txt' 2>/dev/null && fail "14 immutable: '>>' onto an immutable file succeeded"
    expect_content "14 immutable" frozen.txt $'old\n'
    [ "$(ino frozen.txt)" = "$before" ] || fail "14 immutable: frozen.txt changed inode"
    chattr -a log.txt
    chattr -i frozen.txt
    expect_entries "14" "$d" frozen.txt log.txt
fi

# ---- 15: many and long rules ----
# keep.txt matches only the 13th rule; skip.dat matches the first rule and
# only the 11th exclusion takes it out again.
newdir c15
long=$(printf 'x%.0s' $(seq 600))
rules="*.dat;a2;a3;a4;a5;a6;a7;a8;a9;a10;$long*;a12;keep.txt"
printf 'old\n' >keep.txt
printf 'old\n' >skip.dat
before_keep=$(ino keep.txt)
before_skip=$(ino skip.dat)
LD_PRELOAD=$preload WRAP_LOCKFILE_RULES=$rules WRAP_LOCKFILE_EXCLUDE="e1;e2;e3;e4;e5;e6;e7;e8;e9;$long;skip.dat" \
    timeout 20 bash -c 'echo new > keep.txt; echo new > skip.dat' || fail "15 rules: the writes failed"
expect_content "15 rules" keep.txt $'new\n'
expect_content "15 rules" skip.dat $'new\n'
[ "$(ino keep.txt)" != "$before_keep" ] || fail "15 rules: keep.txt (13th rule) was written in place, not replaced"
[ "$(ino skip.dat)" = "$before_skip" ] || fail "15 rules: skip.dat (11th exclusion) was replaced"
expect_entries "15 rules" "$d" keep.txt skip.dat

# ---- 16: open-file limit lowered below the descriptor floor ----
newdir c16
printf 'old\n' >a.txt
before=$(ino a.txt)
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt 1024 ]; then
    skip_check "16" "hard open-file limit below 1024, the floor is lower already"
else
    run '*.txt' bash -c 'ulimit -n 1024 && ulimit -n 512 && echo hi > a.txt' 2>"$tmp/c16.err" ||
        fail "16 rlimit: writing after ulimit -n 512 failed: $(cat "$tmp/c16.err")"
    expect_content "16 rlimit" a.txt $'hi\n'
    [ "$(ino a.txt)" != "$before" ] || fail "16 rlimit: a.txt was not replaced"
    expect_entries "16 rlimit" "$d" a.txt
    # The shim's descriptors go to 3/4 of the lowered limit, not to the
    # lowest numbers, where the shell's `exec 3>` would need to move them.
    printf 'old\n' >b.txt
    run '*.txt' bash -c 'ulimit -n 1024 && ulimit -n 512 && exec 3>b.txt && echo new >&3 && exec 3>&-' \
        2>"$tmp/c16b.err" || fail "16 rlimit, exec 3>: the shell failed: $(cat "$tmp/c16b.err")"
    expect_content "16 rlimit, exec 3>" b.txt $'new\n'
    [ ! -s "$tmp/c16b.err" ] || fail "16 rlimit, exec 3>: $(cat "$tmp/c16b.err")"
    expect_entries "16 rlimit, exec 3>" "$d" a.txt b.txt
fi

# ---- 17: the program's own sticky bit and 1970 access time ----
# touch and chmod are children of the shell that opened a.txt: their marks
# look like child_errors.cpp's, but the access time has no errno in it.
newdir c17
printf 'old\n' >a.txt
before=$(ino a.txt)
run '*.txt' bash -c 'exec 3>a.txt && echo new >&3 && touch -a -d @0 /dev/fd/3 && chmod 1644 /dev/fd/3 && exec 3>&-' \
    2>"$tmp/c17.err" || fail "17 sticky: the shell failed: $(cat "$tmp/c17.err")"
[ "$(stat -c '%a %X' a.txt)" = "1644 0" ] || fail "17 sticky: a.txt has mode/atime $(stat -c '%a %X' a.txt), not 1644 0"
expect_content "17 sticky" a.txt $'new\n'
[ "$(ino a.txt)" != "$before" ] || fail "17 sticky: a.txt was not replaced"
expect_entries "17 sticky" "$d" a.txt

# ---- 18: another user's writable file in a sticky directory ----
if ! is_root; then
    skip_check "18" "needs root to write as nobody"
else
    # Outside $tmp, whose parents nobody may not be able to search.
    sd=$(mktemp -d /tmp/wlf-c18.XXXXXX) || exit 1
    chmod 1777 "$sd"
    printf 'old\n' >"$sd/a.txt"
    chmod 666 "$sd/a.txt"
    before=$(ino "$sd/a.txt")
    (cd "$sd" && WRAP_LOCKFILE_LOG= run '*.txt' setpriv --reuid=65534 --regid=65534 --clear-groups -- bash -c 'echo new > a.txt') \
        2>"$tmp/c18.err" || fail "18 sticky dir: nobody's write failed: $(cat "$tmp/c18.err")"
    [ -s "$tmp/c18.err" ] && fail "18 sticky dir: $(cat "$tmp/c18.err")"
    expect_content "18 sticky dir" "$sd/a.txt" $'new\n'
    [ "$(stat -c '%U %a %i' "$sd/a.txt")" = "root 666 $before" ] ||
        fail "18 sticky dir: a.txt is $(stat -c '%U %a %i' "$sd/a.txt")"
    expect_entries "18 sticky dir" "$sd" a.txt
    rm -rf "$sd"
fi

# ---- 19: overlayfs copy-up of a hard-linked lower file ----
if ! is_root || ! have unshare; then
    skip_check "19" "needs root and unshare(1) for an overlay mount"
else
    for how in plain shim; do
        o=$tmp/c19-$how
        mkdir -p "$o/lower" "$o/upper" "$o/work" "$o/merged"
        printf 'old\n' >"$o/lower/a.txt"
        ln "$o/lower/a.txt" "$o/lower/b.txt"
        pre=()
        [ $how = shim ] && pre=(env LD_PRELOAD="$preload" WRAP_LOCKFILE_RULES='*.txt')
        unshare -m --propagation private bash -c '
            mount -t overlay overlay -o "lowerdir=$1/lower,upperdir=$1/upper,workdir=$1/work" "$1/merged" || exit 77
            cd "$1/merged" && shift && "$@" sh -c "echo new >a.txt && echo more >>b.txt" &&
            cat a.txt b.txt >../seen && ls -A >../entries' sh "$o" "${pre[@]}" >"$o/out" 2>&1
        echo "$?" >"$o/rc"
    done
    if [ "$(cat "$tmp/c19-plain/rc")" = 77 ]; then
        skip_check "19" "no overlay mount here: $(cat "$tmp/c19-plain/out")"
    else
        [ "$(cat "$tmp/c19-shim/rc")" = "$(cat "$tmp/c19-plain/rc")" ] ||
            fail "19 overlay: exit $(cat "$tmp/c19-shim/rc") under the shim, $(cat "$tmp/c19-plain/rc") plainly: $(cat "$tmp/c19-shim/out")"
        cmp -s "$tmp/c19-plain/seen" "$tmp/c19-shim/seen" ||
            fail "19 overlay: the files hold $(cat "$tmp/c19-shim/seen" 2>/dev/null | tr '\n' '|'), plainly $(tr '\n' '|' <"$tmp/c19-plain/seen")"
        cmp -s "$tmp/c19-plain/entries" "$tmp/c19-shim/entries" ||
            fail "19 overlay: entries $(tr '\n' ' ' <"$tmp/c19-shim/entries" 2>/dev/null), plainly $(tr '\n' ' ' <"$tmp/c19-plain/entries")"
    fi
fi

# ---- 20: a file-size limit below the file's size ----
if ! have prlimit; then
    skip_check "20" "prlimit (util-linux) not installed"
else
    # The shim's log, already past the limit, gets no line: a write there
    # would kill the program with SIGXFSZ too.
    head -c 8192 /dev/zero >"$tmp/c20.log"
    for linked in no yes; do
        for cmd in 'dd if=/dev/zero of=f.txt bs=1 count=10 conv=notrunc status=none' 'truncate -s 5 f.txt'; do
            t="20 fsize, linked $linked, ${cmd%% *}"
            for how in plain shim; do
                newdir "c20-$how"
                head -c 10240 /dev/zero | tr '\0' o >f.txt
                [ $linked = yes ] && ln f.txt g.txt
                if [ $how = shim ]; then
                    WRAP_LOCKFILE_LOG=$tmp/c20.log run '*.txt' prlimit --fsize=4096 sh -c "$cmd" 2>err
                else
                    prlimit --fsize=4096 sh -c "$cmd" 2>err
                fi
                echo "$? $(stat -c '%s %h' f.txt) $(md5sum <f.txt | cut -c1-12) $(ls -A | tr '\n' ' ')" >"$tmp/c20-$how.out"
            done
            [ "$(cat "$tmp/c20-shim.out")" = "$(cat "$tmp/c20-plain.out")" ] ||
                fail "$t: exit, size, links, content, entries: $(cat "$tmp/c20-shim.out") under the shim, $(cat "$tmp/c20-plain.out") plainly"
        done
    done
fi

# ---- 21: an append-only directory ----
newdir c21
printf 'old\n' >a.txt
printf 'log\n' >b.txt
if ! is_root || ! have chattr || ! chattr +a . 2>/dev/null; then
    skip_check "21" "needs root and a file system with chattr +a here"
else
    for round in 1 2; do
        run '*.txt' sh -c "echo new$round >a.txt && echo more$round >>b.txt && echo n$round >c$round.txt" 2>"$tmp/c21.err"
        rc=$?
        [ "$rc" = 0 ] || fail "21 append-only directory, round $round: exit $rc: $(cat "$tmp/c21.err")"
    done
    entries=$(ls -A | tr '\n' ' ')
    chattr -a .
    [ "$entries" = "a.txt a.txt.lock b.txt b.txt.lock c1.txt c1.txt.lock c2.txt c2.txt.lock " ] ||
        fail "21 append-only directory: entries $entries (a temp name left, or a lock file missing)"
    expect_content "21 append-only directory" a.txt $'new2\n'
    expect_content "21 append-only directory" b.txt $'log\nmore1\nmore2\n'
    expect_content "21 append-only directory" c2.txt $'n2\n'
fi

# ---- 22: a pending file renamed away, then made anew ----
newdir c22
printf 'old\n' >log
run 'log' bash -c 'exec 3>>log && echo a >&3 && mv log log.1 && echo fresh >log && exec 3>&-' 2>"$tmp/c22.err"
rc=$?
[ "$rc" = 0 ] || fail "22 renamed away: exit $rc: $(cat "$tmp/c22.err")"
expect_content "22 renamed away, the new file" log $'fresh\n'
expect_entries "22 renamed away" "$d" log log.1

# ---- 23: a child writing the file its parent holds open ----
newdir c23
cat >"$tmp/c23.py" <<'PY'
import subprocess
with open("log", "a") as f:
    f.write("parent start\n")
    f.flush()
    r = subprocess.run(["sh", "-c", "echo child >> log"])
    f.write("parent done %d\n" % r.returncode)
PY
for kind in lock-only replace; do
    printf 'old\n' >log
    if [ $kind = lock-only ]; then
        WRAP_LOCKFILE_LOCK_ONLY=$d/log limit=20 run '' "$python3" "$tmp/c23.py" 2>"$tmp/c23.err"
    else
        limit=20 run "$d/log" "$python3" "$tmp/c23.py" 2>"$tmp/c23.err"
    fi
    rc=$?
    [ "$rc" = 0 ] || fail "23 child of the holder, $kind: exit $rc (124: it hung): $(cat "$tmp/c23.err")"
    if [ $kind = lock-only ]; then
        expect_content "23 child of the holder, $kind" log $'old\nparent start\nchild\nparent done 0\n'
    else
        # The child's open refused (sh says so and exits 2); the parent's writes land.
        expect_content "23 child of the holder, $kind" log $'old\nparent start\nparent done 2\n'
        grep -q "Resource deadlock avoided" "$tmp/c23.err" || fail "23 child of the holder, $kind: no EDEADLK: $(cat "$tmp/c23.err")"
    fi
    expect_entries "23 child of the holder, $kind" "$d" log
done

# ---- 24: a lock file of the program's own, matched ----
newdir c24
if ! have flock; then
    skip_check "24" "flock(1) (util-linux) not installed"
else
    : >old.lock
    : >new.lock
    ino=$(stat -c %i old.lock)
    run '*.lock' "$python3" -c '
import fcntl, subprocess, sys
# A plain process (no shim) tries the same kind of lock without waiting.
probe = "import fcntl, sys\nf = open(sys.argv[1], \"a\")\ntry:\n    getattr(fcntl, sys.argv[2])(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n    sys.exit(1)"
for name, kind in (("old.lock", "flock"), ("new.lock", "lockf")):
    with open(name, "a") as f:
        getattr(fcntl, kind)(f, fcntl.LOCK_EX)
        rc = subprocess.run(["env", "-u", "LD_PRELOAD", sys.executable, "-c", probe, name, kind]).returncode
        print(name, "excluded" if rc == 1 else "NOT EXCLUDED (%d)" % rc)
' >"$tmp/c24.out" 2>"$tmp/c24.err"
    rc=$?
    [ "$rc" = 0 ] || fail "24 own lock file: exit $rc: $(cat "$tmp/c24.err")"
    [ "$(cat "$tmp/c24.out")" = $'old.lock excluded\nnew.lock excluded' ] ||
        fail "24 own lock file: $(tr '\n' ' ' <"$tmp/c24.out")"
    [ "$(stat -c %i old.lock)" = "$ino" ] || fail "24 own lock file: old.lock was replaced by a new inode"
    expect_entries "24 own lock file" "$d" new.lock old.lock
fi

# ---- 25: a descriptor limit with no room for the replacement ----
newdir c25
# Only 0, 1 and 2 open, whatever the test runner passed down, and no log
# (the shim's log file is a descriptor too): the room counted below is then
# the limit's.
closefds='for p in /proc/self/fd/*; do p=${p##*/}; [ "$p" -gt 2 ] && eval "exec $p>&-"; done 2>/dev/null;'
for kind in replace hard-linked lock-only dotlock dotlock-lock-only new new-lock-only; do
    backend=
    [[ $kind = dotlock* ]] && backend=dotlock
    for when in lowered at-load; do
        for n in 4 5 6 7 8; do
            what="25 ulimit -n $n ($when), $kind"
            rm -f f f2
            [[ $kind = new* ]] || printf 'old\n' >f
            [ $kind = hard-linked ] && ln f f2
            rules=$d/f lock_only=
            [[ $kind = *lock-only ]] && rules= lock_only=$d/f
            if [ $when = lowered ]; then
                WRAP_LOCKFILE_LOG= WRAP_LOCKFILE_LOCK_BACKEND=$backend WRAP_LOCKFILE_LOCK_ONLY=$lock_only run "$rules" bash -c "$closefds ulimit -n $n; echo new > f" 2>"$tmp/c25.err"
            else
                # The shim is loaded under the small limit (its floor 3/4 of it).
                bash -c "$closefds ulimit -n $n; exec env LD_PRELOAD=$preload WRAP_LOCKFILE_LOG= WRAP_LOCKFILE_LOCK_BACKEND='$backend' WRAP_LOCKFILE_RULES='$rules' \
                    WRAP_LOCKFILE_LOCK_ONLY='$lock_only' bash -c 'echo new > f'" 2>"$tmp/c25.err"
            fi
            rc=$?
            if [[ $kind = new* ]] && [ ! -e f ]; then
                [ "$rc" != 0 ] || fail "$what: f not created, but exit 0"
                [ "$n" -lt 8 ] || fail "$what: refused with room to spare: $(cat "$tmp/c25.err")"
                expect_entries "$what" "$d"
                continue
            fi
            contents f
            if [ "$REPLY" = $'new\n' ]; then
                [ "$rc" = 0 ] || fail "$what: f written, but exit $rc: $(cat "$tmp/c25.err")"
            elif [ "$REPLY" = $'old\n' ]; then
                [ "$rc" != 0 ] || fail "$what: f not written, but exit 0"
                [ "$n" -lt 8 ] || fail "$what: refused with room to spare: $(cat "$tmp/c25.err")"
            else
                fail "$what: f holds '$(printf %q "$REPLY")' (exit $rc): $(cat "$tmp/c25.err")"
            fi
            if [ $kind = hard-linked ]; then
                expect_entries "$what" "$d" f f2
                [ "$(stat -c %h f)" = 2 ] || fail "$what: f lost its second link"
            else
                expect_entries "$what" "$d" f
            fi
        done
    done
done

# ---- 26, 27: sparse content ----
# Blocks allocated (stat %b, 512-byte units) and content under the shim and
# plainly, side by side; the content's 8 KiB of data sits at 1 MiB and at
# its end. Where the file system here keeps no holes at all, there is
# nothing to compare.
newdir c26
truncate -s 64M probe
if [ "$(stat -c %b probe)" -gt 1024 ]; then
    skip_check "26, 27" "$d does not keep holes in a truncated file"
else
    sparse_src() {
        truncate -s 64M "$1"
        printf 'one\n' | dd of="$1" bs=4096 seek=256 conv=notrunc status=none
        printf 'two\n' | dd of="$1" bs=4096 seek=16383 conv=notrunc status=none
    }
    for target in sparse dense; do
        t="26 cp --sparse=always onto a hard-linked $target target"
        for how in plain shim; do
            newdir "c26-$target-$how"
            sparse_src src
            if [ $target = sparse ]; then truncate -s 32M f; else head -c 2M /dev/urandom >f; fi
            ln f g
            if [ $how = shim ]; then run "$d/f" cp --sparse=always src f 2>err; else cp --sparse=always src f 2>err; fi
            echo "$? $(stat -c '%s %h' f) $(md5sum <f | cut -c1-12) $(ls -A | tr '\n' ' ')" >"$tmp/c26-$how.out"
            stat -c %b f >"$tmp/c26-$how.blocks"
            cmp -s f src || fail "$t ($how): f differs from src"
        done
        [ "$(cat "$tmp/c26-shim.out")" = "$(cat "$tmp/c26-plain.out")" ] ||
            fail "$t: exit, size, links, content, entries: $(cat "$tmp/c26-shim.out") under the shim, $(cat "$tmp/c26-plain.out") plainly"
        # The data's blocks and a little metadata: plain cp's and 64 KiB.
        [ "$(cat "$tmp/c26-shim.blocks")" -le $(($(cat "$tmp/c26-plain.blocks") + 128)) ] ||
            fail "$t: $(cat "$tmp/c26-shim.blocks") blocks under the shim, $(cat "$tmp/c26-plain.blocks") plainly"
    done

    t="27 echo >> a sparse file"
    for how in plain shim; do
        newdir "c27-$how"
        sparse_src f
        if [ $how = shim ]; then run "$d/f" bash -c 'echo three >> f' 2>err; else bash -c 'echo three >> f' 2>err; fi
        echo "$? $(stat -c %s f) $(md5sum <f | cut -c1-12) $(ls -A | tr '\n' ' ')" >"$tmp/c27-$how.out"
        stat -c %b f >"$tmp/c27-$how.blocks"
    done
    [ "$(cat "$tmp/c27-shim.out")" = "$(cat "$tmp/c27-plain.out")" ] ||
        fail "$t: exit, size, content, entries: $(cat "$tmp/c27-shim.out") under the shim, $(cat "$tmp/c27-plain.out") plainly"
    [ "$(cat "$tmp/c27-shim.blocks")" -le $(($(cat "$tmp/c27-plain.blocks") + 128)) ] ||
        fail "$t: $(cat "$tmp/c27-shim.blocks") blocks under the shim, $(cat "$tmp/c27-plain.blocks") plainly"
fi

# ---- 28, 29: a full disk and a target whose blocks lie past its new content ----
# full_disk_run DIR PROGRAM [ARG]...: in a private 4 MiB tmpfs, f is 8 MiB
# with data in its last 2 MiB and a second link g, and 648 KiB are free;
# PROGRAM runs there (1 MiB of new content fits only once O_TRUNC has freed
# f's blocks). DIR gets rc, old.md5, now.md5, stat (f and g), entries; DIR/status
# is 77 when no tmpfs could be mounted. $layout, when set, is another
# (tmpfs size in MiB, then the commands that make f and fill the disk).
full_disk_layout='4 truncate -s 8M f && head -c 2M /dev/urandom | dd of=f bs=1M seek=6 conv=notrunc status=none && ln f g &&
    md5sum <f >../old.md5 && head -c 1400K /dev/zero >fill'
full_disk_run() {
    local o=$1 layout=${layout:-$full_disk_layout}
    shift
    mkdir -p "$o/mnt"
    unshare -m --propagation private bash -c '
        o=$1 size=$2 setup=$3; shift 3
        mount -t tmpfs -o size=${size}m tmpfs "$o/mnt" || exit 77
        cd "$o/mnt" || exit 1
        eval "$setup" || exit 77
        "$@"
        echo $? >../rc
        md5sum <f >../now.md5
        stat -c "%s %h %i" f g >../stat
        ls -A >../entries' sh "$o" "${layout%% *}" "${layout#* }" "$@" >"$o/out" 2>&1
    echo "$?" >"$o/status"
}
# full_disk_check NAME DIR [OLD_SIZE]: f either kept its old content (of
# OLD_SIZE bytes, 8 MiB by default) whole and the program failed, or holds
# 1 MiB and the program succeeded; nothing left.
full_disk_check() {
    local t=$1 o=$2 old=${3:-8388608}
    if cmp -s "$o/old.md5" "$o/now.md5"; then
        [ "$(cat "$o/rc")" != 0 ] || fail "$t: f kept its old content, but the program exited 0"
        [ "$(awk '{print $1, $2}' "$o/stat" | sort -u)" = "$old 2" ] || fail "$t: f and g: $(cat "$o/stat")"
    elif [ "$(head -c 7 "$o/stat")" = 1048576 ]; then
        [ "$(cat "$o/rc")" = 0 ] || fail "$t: f written, but the program exited $(cat "$o/rc")"
    else
        fail "$t: f torn ($(tr '\n' ' ' <"$o/stat"), exit $(cat "$o/rc")): $(cat "$o/out")"
    fi
    [ "$(cat "$o/entries" 2>/dev/null)" = $'f\nfill\ng' ] || fail "$t: entries $(tr '\n' ' ' <"$o/entries" 2>/dev/null)"
}
if ! is_root || ! have unshare; then
    skip_check "28, 29" "needs root and unshare(1) for a small tmpfs"
else
    full_disk_run "$tmp/c28-plain" dd if=/dev/urandom of=f bs=1M count=1 status=none
    full_disk_run "$tmp/c28-shim" env LD_PRELOAD="$preload" WRAP_LOCKFILE_RULES="$tmp/c28-shim/mnt/f" WRAP_LOCKFILE_FSYNC=none \
        dd if=/dev/urandom of=f bs=1M count=1 status=none
    if [ "$(cat "$tmp/c28-plain/status")" = 77 ]; then
        skip_check "28, 29" "no tmpfs mount here: $(cat "$tmp/c28-plain/out")"
    else
        [ "$(cat "$tmp/c28-plain/rc")" = 0 ] && [ "$(head -c 7 "$tmp/c28-plain/stat")" = 1048576 ] ||
            fail "28 full disk: the plain run did not fit (exit $(cat "$tmp/c28-plain/rc"), $(cat "$tmp/c28-plain/stat")): $(cat "$tmp/c28-plain/out")"
        full_disk_check "28 full disk, dd" "$tmp/c28-shim"
        # 29: the commit at exit, with f still open: through exit(), _exit()
        # and a return from main (python's, after its last statement).
        for how in 'sys.exit(0)' 'os._exit(0)' 'pass'; do
            o=$tmp/c29-${how%%(*}
            full_disk_run "$o" env LD_PRELOAD="$preload" WRAP_LOCKFILE_RULES="$o/mnt/f" WRAP_LOCKFILE_FSYNC=none \
                python3 -c "import os, sys; fd = os.open('f', os.O_WRONLY | os.O_TRUNC); os.write(fd, os.urandom(1 << 20)); $how"
            full_disk_check "29 full disk, commit at $how" "$o"
        done
        # 32: f's holes hidden behind blocks preallocated past its end.
        layout='6 truncate -s 4M f && head -c 1M /dev/urandom | dd of=f bs=1M seek=3 conv=notrunc status=none &&
            fallocate -n -o 4M -l 3M f && ln f g && md5sum <f >../old.md5 && head -c 1536K /dev/zero >fill'
        for how in plain shim; do
            pre=()
            [ $how = shim ] && pre=(env LD_PRELOAD="$preload" WRAP_LOCKFILE_RULES="$tmp/c32-$how/mnt/f" WRAP_LOCKFILE_FSYNC=none)
            layout=$layout full_disk_run "$tmp/c32-$how" "${pre[@]}" dd if=/dev/urandom of=f bs=1M count=1 status=none
        done
        if [ "$(cat "$tmp/c32-plain/status")" = 77 ]; then
            skip_check "32" "no fallocate -n here: $(cat "$tmp/c32-plain/out")"
        else
            [ "$(cat "$tmp/c32-plain/rc")" = 0 ] && [ "$(head -c 7 "$tmp/c32-plain/stat")" = 1048576 ] ||
                fail "32 full disk, preallocated: the plain run did not fit (exit $(cat "$tmp/c32-plain/rc"), $(cat "$tmp/c32-plain/stat")): $(cat "$tmp/c32-plain/out")"
            full_disk_check "32 full disk, preallocated past the end" "$tmp/c32-shim" 4194304
        fi
    fi
fi

# ---- 30: quick_exit with a replacement pending ----
# libc's quick_exit calls its own _exit, which the shim does not see: the
# replacement was dropped, where the plain run's write is in the file.
for how in plain shim; do
    newdir "c30-$how"
    printf 'old\n' >f
    pre=()
    [ $how = shim ] && pre=(env LD_PRELOAD="$preload" WRAP_LOCKFILE_RULES="$d/f")
    "${pre[@]}" python3 -c 'import ctypes, os; fd = os.open("f", os.O_WRONLY | os.O_TRUNC); os.write(fd, b"new\n"); ctypes.CDLL(None).quick_exit(0)' 2>err
    echo "$? $(cat f) $(ls -A | tr '\n' ' ')" >"$tmp/c30-$how.out"
done
[ "$(cat "$tmp/c30-shim.out")" = "$(cat "$tmp/c30-plain.out")" ] ||
    fail "30 quick_exit: exit, content, entries: $(cat "$tmp/c30-shim.out") under the shim, $(cat "$tmp/c30-plain.out") plainly"

# ---- 31: another user's file at the per-target temp name ----
if ! is_root; then
    skip_check "31" "needs root to plant a file as nobody"
else
    sd=$(mktemp -d /tmp/wlf-c31.XXXXXX) || exit 1
    chmod 1777 "$sd"
    printf 'old\n' >"$sd/f"
    setpriv --reuid=65534 --regid=65534 --clear-groups -- sh -c "echo foreign > '$sd/.f._pending~~'" ||
        fail "31 foreign temp name: nobody could not write the file"
    (cd "$sd" && WRAP_LOCKFILE_LOG= run "$sd/f" bash -c 'echo new > f') 2>"$tmp/c31.err" ||
        fail "31 foreign temp name: the write failed: $(cat "$tmp/c31.err")"
    expect_content "31 foreign temp name" "$sd/f" $'new\n'
    expect_content "31 foreign temp name" "$sd/.f._pending~~" $'foreign\n'
    expect_entries "31 foreign temp name" "$sd" .f._pending~~ f
    rm -rf "$sd"
fi

# refused_dup2 NAME DIR MODE OUT CONTENT: dup2_onto_shim_fd MODE (full,
# full-write) in a new DIR; its report must be OUT and target.txt must hold
# CONTENT, other.dat unchanged, nothing else left.
refused_dup2() {
    local t=$1 rc
    newdir "$2"
    printf 'other content\n' >other.dat
    printf 'old target\n' >target.txt
    run '*.txt' "$helpers/dup2_onto_shim_fd" "$3" >out 2>err
    rc=$?
    [ $rc -eq 0 ] || fail "$t: exit $rc (14: the dup2 found room), $(cat out) $(cat err)"
    [ "$(cat out)" = "$4" ] || fail "$t: '$(cat out)', want '$4'"
    expect_content "$t" target.txt "$5"
    expect_content "$t" other.dat $'other content\n'
    rm -f out err
    expect_entries "$t" "$d" other.dat target.txt
}

# ---- 33: dup2 onto the shim's lock with no number free ----
# The dup2 is refused and the close fails: nothing written, old content kept.
refused_dup2 "33 dup2 with no free number" c33 full "dup2 -1 EMFILE close -1" $'old target\n'

# ---- 34: the shim's own descriptors look closed ----
t="34 the shim's descriptors look closed"
newdir c34
printf 'old target\n' >target.txt
run '*.txt' "$helpers/dup2_onto_shim_fd" probe >out 2>err
rc=$?
[ $rc -eq 0 ] || fail "$t: exit $rc: $(cat err)"
grep -qx closed out || fail "$t: $(tr '\n' ' ' <out)"
expect_content "$t" target.txt $'new content\n'
rm -f out err
expect_entries "$t" "$d" target.txt

# ---- 35: a redirection that fails for want of descriptors ----
# The plain run writes both files. Under the shim each file holds what the
# plain run wrote or its old content, never an empty file.
t="35 redirection out of descriptors"
newdir c35
printf 'olda\n' >a.txt
printf 'oldb\n' >b.txt
# Only 0, 1 and 2 open, as under meson: which redirection fails depends on
# the numbers that are free.
run '*.txt' python3 -c 'import os, sys; os.closerange(3, 65536); os.execvp(sys.argv[1], sys.argv[1:])' \
    dash -c 'ulimit -n 14; { echo A; echo B >&2; } >a.txt 2>b.txt' 2>"$tmp/c35.err"
contents a.txt
[ "$REPLY" = $'A\n' ] || [ "$REPLY" = $'olda\n' ] || fail "$t: a.txt holds '$(printf %q "$REPLY")', want 'A' or its old content"
contents b.txt
[ "$REPLY" = $'B\n' ] || [ "$REPLY" = $'oldb\n' ] || fail "$t: b.txt holds '$(printf %q "$REPLY")', want 'B' or its old content"
expect_entries "$t" "$d" a.txt b.txt

# ---- 36: the directory renamed while a write is pending ----
t="36 directory renamed while pending"
newdir c36
mkdir d
printf 'old\n' >d/f.txt
run '*.txt' bash -c 'exec 3>d/f.txt; mv d d2; echo new >&3; exec 3>&-' 2>"$tmp/c36.err"
expect_content "$t" d2/f.txt $'new\n'
expect_entries "$t" "$d/d2" f.txt
expect_entries "$t" "$d" d2

# ---- 37: writes after a dup2 refused with no number free ----
# The dup2 is refused, the write after it lands: the close succeeds.
refused_dup2 "37 writes after a refused dup2" c37 full-write "dup2 -1 EMFILE close 0" $'new content\n'

# ---- 38: exec without the shim after an EMFILE ----
t="38 exec without the shim after EMFILE"
newdir c38
printf 'old\n' >a.txt
run '*.txt' "$python3" -c '
import errno, os, resource
resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
fd = os.open("a.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.dup2(fd, 1)
os.close(fd)
fds = []
try:
    while True:
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    assert e.errno == errno.EMFILE, e
for f in fds:
    os.close(f)
os.execve("/bin/sh", ["sh", "-c", "echo hello"], {"PATH": "/usr/bin:/bin"})
' 2>"$tmp/c38.err"
expect_status "$t" 0 $?
expect_content "$t" a.txt $'hello\n'
expect_entries "$t" "$d" a.txt

# ---- 39: a child writes after the opener's last close ----
for how in fork popen spawn; do
    t="39 a child ($how) writes after the last close"
    newdir "c39$how"
    printf 'old\n' >a.txt
    run '*.txt' "$python3" -c '
import errno, os, resource, subprocess, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
f = open("a.txt", "w")
fds = []
try:
    while True:
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    assert e.errno == errno.EMFILE, e
for x in fds:
    os.close(x)
r, w = os.pipe()
child = ["sh", "-c", "read x; echo hello"]
if sys.argv[1] == "fork":
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 3)
        os.write(f.fileno(), b"hello\n")
        os._exit(0)
elif sys.argv[1] == "popen":
    pid = subprocess.Popen(child, stdin=r, stdout=f).pid
else:
    pid = os.posix_spawnp("sh", child, os.environ, file_actions=[
        (os.POSIX_SPAWN_DUP2, r, 0), (os.POSIX_SPAWN_DUP2, f.fileno(), 1)])
os.close(r)
f.close()  # the opener last close: the child has written nothing yet
os.write(w, b"go\n")
os.close(w)
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
' "$how" 2>"$tmp/c39.err"
    expect_status "$t" 0 $?
    expect_content "$t" a.txt $'hello\n'
    expect_entries "$t" "$d" a.txt
done

# ---- 40: an EMFILE the shim's descriptors had no part in ----
t="40 EMFILE below the shim's descriptors"
newdir c40
printf 'old\n' >a.txt
# The shim's descriptors from 768 up (a limit of 1024 at its load), the
# program's limit then 64.
if (ulimit -Sn 1024) 2>/dev/null; then
    run '*.txt' bash -c 'ulimit -Sn 1024; exec "$0" -c "$1"' "$python3" '
import errno, os, resource
fd = os.open("a.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
fds = []
try:
    while True:
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    assert e.errno == errno.EMFILE, e
for x in fds:
    os.close(x)
os.close(fd)
' 2>"$tmp/c40.err"
    expect_status "$t" 0 $?
    expect_content "$t" a.txt ""
    expect_entries "$t" "$d" a.txt
else
    skip_check "$t" "no open-file limit of 1024 to be had"
fi

# ---- 41: a child of the image before an exec writes after the last close ----
t="41 a child of the image before exec writes after the last close"
newdir c41
printf 'old\n' >a.txt
# Run as itself twice: the first image opens a.txt on fd 1, forks the child
# (waiting on a pipe), and execs the second, which meets EMFILE and closes
# fd 1 before it lets the child write.
printf '%s\n' '
import errno, os, resource, sys
if len(sys.argv) == 1:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    r, w = os.pipe()
    fd = os.open("a.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.close(fd)
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 3)
        os.write(1, b"hello\n")
        os._exit(0)
    os.close(r)
    os.set_inheritable(w, True)
    os.execv(sys.executable, [sys.executable, sys.argv[0], str(w), str(pid)])
w, pid = int(sys.argv[1]), int(sys.argv[2])
fds = []
try:
    while True:
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    assert e.errno == errno.EMFILE, e
for x in fds:
    os.close(x)
try:
    os.close(1)  # the last close: the child has written nothing yet
finally:
    os.write(w, b"go\n")
    os.close(w)
    st = os.waitpid(pid, 0)[1]
sys.exit(os.waitstatus_to_exitcode(st))
' >handed.py
run 'a.txt' "$python3" handed.py 2>"$tmp/c41.err"
expect_status "$t" 0 $?
expect_content "$t" a.txt $'hello\n'
rm -f handed.py
expect_entries "$t" "$d" a.txt

# ---- 42: the program holds the target's lock itself ----
t="42 the program flocks f.lock itself"
newdir c42
printf 'old\n' >f
mkfifo reached go
ino=$(stat -c %i f)
# bash's subshell opens f.lock on 9, flock(1) (gone by then) locks it;
# inside that section the subshell writes f, says so and waits.
limit=30 run "$d/f" bash -c '( flock 9; echo new > f; echo written >reached; read -r x <go ) 9>>f.lock' &
holder=$!
if await reached "$t"; then
    expect_content "$t" f $'new\n'
    [ "$(stat -c %i f)" != "$ino" ] || fail "$t: f was written in place, not replaced"
    # Another writer meets the program's lock (it excludes, as plainly).
    WRAP_LOCKFILE_TIMEOUT=0 run "$d/f" sh -c 'echo other > f' 2>"$tmp/c42.err"
    [ $? -ne 0 ] || fail "$t: a second writer got past the program's lock"
    expect_content "$t" f $'new\n'
    signal go
fi
wait $holder
expect_status "$t" 0 $?
expect_content "$t" f $'new\n'
# A program that flock()s f.lock through its own descriptor, then writes and
# renames onto f (python: open, flock, write f, a temp renamed over f).
run "$d/f" "$python3" -c '
import fcntl, os
fd = os.open("f.lock", os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
with open("f", "w") as f:
    f.write("python\n")
with open("f.tmp", "w") as f:
    f.write("renamed\n")
os.rename("f.tmp", "f")
' 2>"$tmp/c42.err"
expect_status "$t (python)" 0 $?
expect_content "$t (python)" f $'renamed\n'
# Held shared (flock -s): ours would wait for it as long.
run "$d/f" bash -c '( flock -s 9; echo shared > f ) 9>>f.lock' 2>"$tmp/c42.err"
expect_status "$t (shared)" 0 $?
expect_content "$t (shared)" f $'shared\n'
rm -f reached go
expect_entries "$t" "$d" f f.lock

# ---- 43: two appenders under the program's own lock ----
t="43 two appenders under the program's own lock"
newdir c43
printf 'old\n' >f
# Each opens f for appending, says so (opened.a, opened.b), and writes its
# line once both have it open.
append='
import os, sys, time
f = open("f", "a")
open("opened." + sys.argv[1], "w").close()
while not os.path.exists("go"):
    time.sleep(0.01)
f.write(sys.argv[1] + "\n")
f.close()
'
run "$d/f" bash -c '( flock 9; "$0" -c "$1" a & "$0" -c "$1" b & wait ) 9>>f.lock' \
    "$python3" "$append" 2>"$tmp/c43.err" &
writers=$!
for i in $(seq 500); do
    [ -e opened.a ] && [ -e opened.b ] && break
    sleep 0.02
done
: >go
wait $writers
expect_status "$t" 0 $?
contents f
[ "$REPLY" = $'old\na\nb\n' ] || [ "$REPLY" = $'old\nb\na\n' ] ||
    fail "$t: f holds '$(printf %q "$REPLY")', want old and both lines"
rm -f go opened.a opened.b
expect_entries "$t" "$d" f f.lock

# ---- 44: the program's own lock while the shim holds another ----
t="44 the program's own lock while another replacement is pending"
newdir c44
printf 'old\n' >f
printf 'old g\n' >g
limit=10 run "$d/[fg]" bash -c 'exec 3>g; echo pending >&3; ( flock 9; echo new > f ) 9>>f.lock; echo more >&3; exec 3>&-' \
    2>"$tmp/c44.err"
expect_status "$t" 0 $?
expect_content "$t" f $'new\n'
expect_content "$t" g $'pending\nmore\n'
expect_entries "$t" "$d" f f.lock g

# ---- 45: a stdio write that met a full disk ----
t="45 a stdio write that met a full disk"
if ! is_root || ! have unshare; then
    skip_check "45" "needs root and unshare(1) for a small tmpfs"
else
    # 1 MiB: f's 300 KiB and 300 KiB of fill leave room for the new 600 KiB
    # only once O_TRUNC has freed f's blocks (plainly), not beside them.
    head -c 600K /dev/zero | tr '\0' a >"$tmp/c45.src"
    for how in plain shim; do
        pre=()
        [ $how = shim ] && pre=(env LD_PRELOAD="$preload" WRAP_LOCKFILE_RULES="$tmp/c45-$how/mnt/f" WRAP_LOCKFILE_FSYNC=none)
        layout='1 head -c 300K /dev/urandom >f && md5sum <f >../old.md5 && head -c 300K /dev/zero >fill' \
            full_disk_run "$tmp/c45-$how" "${pre[@]}" bash -c 'tr a b <"$0" >f' "$tmp/c45.src"
    done
    if [ "$(cat "$tmp/c45-plain/status")" = 77 ]; then
        skip_check "45" "no tmpfs mount here: $(cat "$tmp/c45-plain/out")"
    else
        [ "$(cat "$tmp/c45-plain/rc")" = 0 ] && [ "$(cut -d' ' -f1 "$tmp/c45-plain/stat")" = 614400 ] ||
            fail "$t: the plain run did not fit (exit $(cat "$tmp/c45-plain/rc")): $(cat "$tmp/c45-plain/out")"
        o=$tmp/c45-shim
        [ "$(cat "$o/rc")" != 0 ] || fail "$t: exit 0 under the shim"
        cmp -s "$o/old.md5" "$o/now.md5" || fail "$t: f lost its old content"
        [ "$(cat "$o/entries")" = $'f\nfill' ] || fail "$t: entries $(tr '\n' ' ' <"$o/entries")"
        # tr reports its fclose()'s errno (the commit's), and the shim its own.
        grep -q "Input/output error" "$o/out" && fail "$t: reported as an I/O error: $(cat "$o/out")"
        [ "$(grep -c "No space left on device" "$o/out")" -ge 3 ] ||
            fail "$t: ENOSPC not reported by the write, the close and the shim: $(cat "$o/out")"
    fi
fi

# ---- 46: the library's locks of other threads are never the program's ----
t="46 threads appending while others rewrite"
newdir c46
for round in 1 2 3; do
    rm -f x y*
    limit=60 run "$d/*" "$helpers/thread_appends" "$d" 200 4 6 2>"$tmp/c46.err"
    expect_status "$t (round $round)" 0 $?
    for id in 0 1 2 3; do
        got=$(grep -c "^$id " x 2>/dev/null)
        [ "$got" = 200 ] || fail "$t (round $round): thread $id has $got of its 200 lines in x"
    done
done
expect_entries "$t" "$d" x y0 y1 y2 y3 y4 y5

# ---- 47: a vfork child's dup2 onto the parent's lock descriptor ----
t="47 a vfork child's dup2 onto the shim's lock descriptor"
newdir c47
limit=30 run "$d/*" "$helpers/vfork_dup2" "$d" 2>"$tmp/c47.err"
expect_status "$t" 0 $?
expect_content "$t" x $'two\n'
expect_entries "$t" "$d" x

# ---- 48: a lock file whose file the rule matches too ----
t="48 flock(1)'s lock file under a rule matching its file"
newdir c48
printf '1\n' >counter
: >counter.lock
lock_ino=$(ino counter.lock)
mkfifo ready go
flock counter.lock sh -c 'echo >ready; read x <go' &
holder=$!
read -r _ <ready
idiom='( flock -n 9 || exit 3; echo 2 > counter ) 9>>counter.lock'
bash -c "$idiom" 2>"$tmp/c48.plain.err"
expect_status "$t (plain, held)" 3 $?
WRAP_LOCKFILE_TIMEOUT=1 limit=10 run "$d/*" bash -c "$idiom" 2>"$tmp/c48.err"
expect_status "$t (held)" 3 $?
expect_content "$t (held)" counter $'1\n'
echo >go
wait $holder
[ "$(ino counter.lock)" = "$lock_ino" ] || fail "$t: counter.lock was replaced while a plain process held it"
limit=10 run "$d/*" bash -c "${idiom/-n /}" 2>"$tmp/c48.err"
expect_status "$t (free)" 0 $?
expect_content "$t (free)" counter $'2\n'
[ "$(ino counter.lock)" = "$lock_ino" ] || fail "$t: counter.lock was replaced"
expect_entries "$t" "$d" counter counter.lock go ready

[ ${#failed_checks[@]} -gt 0 ] && echo "failed checks: ${failed_checks[*]}"
finish
