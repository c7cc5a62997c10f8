#!/bin/bash
# End-to-end checks of the shim with real, unmodified programs: shells
# (redirections, appends, exec hand-over), coreutils, gzip, tar, python3,
# perl; metadata (symlinks, mode, owner, umask); open flags (O_EXCL,
# O_NOFOLLOW, no O_CREAT); unmatched paths; lock-only and exclude rules.
# Every program runs both under the launcher and with a raw LD_PRELOAD.
# The standard for a replacement: the path names a new inode with the new
# content, and a reader that had the old file open still reads the old
# content, unchanged; nothing but the target is left in the directory.
# Usage: programs_test.sh ATOMICALLY PRELOAD_OBJECT
# Exit: 0 pass, 1 fail, 77 a check could not run (its SKIP line says why).
usage="programs_test.sh ATOMICALLY PRELOAD_OBJECT"
. "$(dirname "$0")/lib.sh"

# ---- shells: bash and dash ----
for sh in bash dash; do
    if ! have "$sh"; then
        skip_check "$sh checks" "$sh not installed"
        continue
    fi
    for mode in "${modes[@]}"; do
        t="$sh/$mode"
        newdir "$sh-$mode"

        # `>` from a builtin: the shell itself opens, dup2s onto 1, restores.
        printf 'old\n' >f
        arm f
        shim "$mode" "$d/f" "$sh" -c 'echo new > f'
        expect_status "$t '>'" 0 $?
        expect_replaced "$t '>'" f $'new\n'

        # `>>`: starts from the current content.
        arm f
        shim "$mode" "$d/f" "$sh" -c 'echo more >> f'
        expect_status "$t '>>'" 0 $?
        expect_replaced "$t '>>'" f $'new\nmore\n'

        # `prog > file` with external programs: fork, open, dup2, execve
        # (the child is the opener); the replacement is handed over to the
        # new image, which commits. The second form is the last command, so
        # the shell may exec it in place without forking.
        arm f
        shim "$mode" "$d/f" "$sh" -c '/bin/echo external > f; true'
        expect_status "$t '/bin/echo > f'" 0 $?
        expect_replaced "$t '/bin/echo > f'" f $'external\n'
        arm f
        shim "$mode" "$d/f" "$sh" -c 'seq 3 > f'
        expect_status "$t 'seq > f'" 0 $?
        expect_replaced "$t 'seq > f'" f $'1\n2\n3\n'

        # exec survival: the shell's own stdout becomes the pending
        # replacement, then the shell execs an external program that keeps
        # writing to it; its exit commits both writers' output.
        arm f
        shim "$mode" "$d/f" "$sh" -c 'exec > f; echo one; exec /bin/echo two'
        expect_status "$t 'exec > f; exec /bin/echo'" 0 $?
        expect_replaced "$t 'exec > f; exec /bin/echo'" f $'one\ntwo\n'

        # A group: one open, two writers (a builtin and a child process).
        arm f
        shim "$mode" "$d/f" "$sh" -c '{ echo a; /bin/echo b; seq 2; } > f'
        expect_status "$t '{ a; b; } > f'" 0 $?
        expect_replaced "$t '{ a; b; } > f'" f $'a\nb\n1\n2\n'

        # A new file through a shell redirect.
        clear_log
        shim "$mode" "$d/new" "$sh" -c 'echo fresh > new'
        expect_status "$t new file" 0 $?
        expect_content "$t new file" new $'fresh\n'
        expect_committed "$t new file" "$d/new"

        expect_entries "$t" "$d" f new
    done
done

# ---- coreutils, gzip, tar ----
for mode in "${modes[@]}"; do
    t="coreutils/$mode"
    newdir "coreutils-$mode"
    mkdir src
    printf 'source content\n' >src/s
    seq 1000 >src/big

    # cp to a new file, then over an existing one.
    clear_log
    shim "$mode" "$d/c*" cp src/s cnew
    expect_status "$t cp new" 0 $?
    expect_content "$t cp new" cnew $'source content\n'
    expect_committed "$t cp new" "$d/cnew"
    printf 'old copy target\n' >cold
    arm cold
    shim "$mode" "$d/c*" cp src/s cold
    expect_status "$t cp overwrite" 0 $?
    expect_replaced "$t cp overwrite" cold $'source content\n'

    # dd truncates (ftruncate on the fd, which is the temp) unless notrunc.
    printf 'AAAAAAAAAAAAAAAAAAAA\n' >dd1
    arm dd1
    printf 'bbb' | shim "$mode" "$d/dd*" dd of=dd1 status=none
    expect_status "$t dd" 0 $?
    expect_replaced "$t dd" dd1 'bbb'
    printf 'AAAAAAAAAAAAAAAAAAAA\n' >dd2
    arm dd2
    printf 'bbb' | shim "$mode" "$d/dd*" dd of=dd2 conv=notrunc status=none
    expect_status "$t dd conv=notrunc" 0 $?
    expect_replaced "$t dd conv=notrunc" dd2 $'bbbAAAAAAAAAAAAAAAAA\n'

    # tee, and tee -a.
    printf 'old tee\n' >tee1
    arm tee1
    printf 'teed\n' | shim "$mode" "$d/tee1" tee tee1 >tee.out
    expect_status "$t tee" 0 $?
    expect_replaced "$t tee" tee1 $'teed\n'
    expect_content "$t tee stdout" tee.out $'teed\n'
    arm tee1
    printf 'again\n' | shim "$mode" "$d/tee1" tee -a tee1 >/dev/null
    expect_status "$t tee -a" 0 $?
    expect_replaced "$t tee -a" tee1 $'teed\nagain\n'

    # install -m 0640 over an existing 0644 file.
    printf 'old installed\n' >inst
    arm inst
    shim "$mode" "$d/inst" install -m 0640 src/s inst
    expect_status "$t install" 0 $?
    expect_replaced "$t install" inst $'source content\n'
    [ "$(stat -c %a inst)" = 640 ] || fail "$t install: mode $(stat -c %a inst), want 640"

    # gzip -c > f.gz, round trip.
    printf 'not gzip\n' >z.gz
    arm z.gz
    shim "$mode" "$d/*.gz" sh -c 'gzip -c src/big > z.gz'
    expect_status "$t gzip -c" 0 $?
    [ "$(ino z.gz)" != "$old_ino" ] || fail "$t gzip -c: z.gz written in place"
    printf 'not gzip\n' | cmp -s - /dev/fd/8 || fail "$t gzip -c: the old z.gz changed under its reader"
    disarm
    gunzip -c z.gz | cmp -s - src/big || fail "$t gzip -c: gunzip does not give the original back"

    expect_entries "$t" "$d" src cnew cold dd1 dd2 tee1 tee.out inst z.gz
    expect_entries "$t" "$d/src" s big

    # tar -xf into a directory under a '<dir>/**' rule: every file is a
    # replacement; extract twice (the second time over existing files).
    mkdir -p tree/a/b tree/c
    printf 'one\n' >tree/one
    seq 500 >tree/a/two
    printf 'three\n' >tree/a/b/three
    : >tree/c/empty
    chmod 0600 tree/a/two
    chmod 0751 tree/a/b/three
    touch -d '2001-02-03 04:05:06' tree/one tree/a/two
    tar -cf tree.tar -C tree .
    mkdir out
    for round in 1 2; do
        clear_log
        shim "$mode" "$d/out/**" tar -xf tree.tar -C out
        expect_status "$t tar -xf round $round" 0 $?
        for f in one a/two a/b/three c/empty; do
            expect_committed "$t tar -xf round $round" "$d/out/$f"
        done
        diff -r tree out >/dev/null || fail "$t tar -xf round $round: extracted tree differs: $(diff -r tree out 2>&1 | head -3)"
        for f in one a/two a/b/three c/empty; do
            [ "$(stat -c '%a %Y' "out/$f")" = "$(stat -c '%a %Y' "tree/$f")" ] ||
                fail "$t tar -xf round $round: out/$f has mode, mtime $(stat -c '%a %Y' "out/$f"), want $(stat -c '%a %Y' "tree/$f")"
        done
        left=$(cd out && find . | sort | tr '\n' ' ')
        want=$(cd tree && find . | sort | tr '\n' ' ')
        [ "$left" = "$want" ] || fail "$t tar -xf round $round: out holds [$left], want [$want]"
    done
    # --overwrite opens the existing file (O_TRUNC) instead of unlinking it
    # first, so the inode shows the replacement.
    printf 'locally changed\n' >out/one
    arm out/one
    shim "$mode" "$d/out/**" tar --overwrite -xf tree.tar -C out ./one
    expect_status "$t tar --overwrite -xf" 0 $?
    expect_replaced "$t tar --overwrite -xf" out/one $'one\n'
done

# ---- python3 and perl ----
if [ -z "$python3" ]; then
    skip_check "python3 checks" "python3 not installed"
fi
for mode in "${modes[@]}"; do
    if [ -n "$python3" ]; then
        t="python3/$mode"
        newdir "python-$mode"
        printf 'hello world\n' >p
        arm p
        shim "$mode" "$d/p" "$python3" -c "open('p', 'w').write('written\n')"
        expect_status "$t 'w'" 0 $?
        expect_replaced "$t 'w'" p $'written\n'
        arm p
        shim "$mode" "$d/p" "$python3" -c "open('p', 'a').write('appended\n')"
        expect_status "$t 'a'" 0 $?
        expect_replaced "$t 'a'" p $'written\nappended\n'
        # r+: reads the old content through the temp, overwrites in the middle.
        arm p
        shim "$mode" "$d/p" "$python3" -c "
f = open('p', 'r+')
assert f.read() == 'written\nappended\n', 'r+ does not start from the old content'
f.seek(0)
f.write('W')
f.close()"
        expect_status "$t 'r+'" 0 $?
        expect_replaced "$t 'r+'" p $'Written\nappended\n'
        # 'r+' does not create; 'x' does, once.
        clear_log
        shim "$mode" "$d/*" "$python3" -c "
try:
    open('missing', 'r+')
except FileNotFoundError:
    pass
else:
    raise SystemExit('r+ on a missing file did not fail')
open('excl', 'x').write('x\n')"
        expect_status "$t 'r+' missing, 'x' new" 0 $?
        expect_content "$t 'x' new" excl $'x\n'
        expect_committed "$t 'x' new" "$d/excl"
        expect_entries "$t" "$d" p excl
    fi

    if have perl; then
        t="perl/$mode"
        newdir "perl-$mode"
        printf 'old perl\n' >pl
        arm pl
        shim "$mode" "$d/pl" perl -e 'open(my $f, ">", "pl") or die "$!"; print $f "perl new\n"; close($f) or die "$!"'
        expect_status "$t '>'" 0 $?
        expect_replaced "$t '>'" pl $'perl new\n'
        arm pl
        # No explicit close: perl's global destruction / exit commits.
        shim "$mode" "$d/pl" perl -e 'open(F, ">>", "pl") or die "$!"; print F "perl more\n";'
        expect_status "$t '>>'" 0 $?
        expect_replaced "$t '>>'" pl $'perl new\nperl more\n'
        expect_entries "$t" "$d" pl
    else
        skip_check "perl checks" "perl not installed"
    fi
done

# ---- symlinks: the link stays a link, the target is replaced ----
for mode in "${modes[@]}"; do
    t="symlink/$mode"
    newdir "symlink-$mode"
    mkdir real
    printf 'target old\n' >real/target
    ln -s real/target link
    # The rule names the link's path.
    arm real/target
    shim "$mode" "$d/link" sh -c 'echo via link > link'
    expect_status "$t rule on link" 0 $?
    [ -L link ] || fail "$t rule on link: link is no longer a symlink"
    [ "$(readlink link)" = real/target ] || fail "$t rule on link: link now points to $(readlink link)"
    expect_replaced "$t rule on link" real/target $'via link\n'
    # The rule names the target's path only.
    arm real/target
    shim "$mode" "$d/real/target" sh -c 'echo via target rule > link'
    expect_status "$t rule on target" 0 $?
    [ -L link ] && [ "$(readlink link)" = real/target ] || fail "$t rule on target: link changed"
    expect_replaced "$t rule on target" real/target $'via target rule\n'
    expect_entries "$t" "$d" real link
    expect_entries "$t" "$d/real" target
done

# ---- mode, owner, umask ----
for mode in "${modes[@]}"; do
    t="metadata/$mode"
    newdir "metadata-$mode"
    for m in 640 600; do
        printf 'mode %s\n' "$m" >"m$m"
        chmod "$m" "m$m"
        arm "m$m"
        shim "$mode" "$d/m*" sh -c "echo rewritten > m$m"
        expect_status "$t mode $m" 0 $?
        expect_replaced "$t mode $m" "m$m" $'rewritten\n'
        [ "$(stat -c %a "m$m")" = "$m" ] || fail "$t mode $m: now $(stat -c %a "m$m")"
    done
    if is_root; then
        printf 'owned\n' >owned
        chown 1234:5678 owned
        chmod 0640 owned
        arm owned
        shim "$mode" "$d/owned" sh -c 'echo rewritten by root > owned'
        expect_status "$t owner" 0 $?
        expect_replaced "$t owner" owned $'rewritten by root\n'
        [ "$(stat -c %u:%g:%a owned)" = 1234:5678:640 ] ||
            fail "$t owner: now $(stat -c %u:%g:%a owned), want 1234:5678:640"
    else
        skip_check "$t owner" "needs root to chown"
        printf 'owned\n' >owned
    fi
    # A new file gets 0666 & ~umask, like a plain open(2).
    clear_log
    (umask 027 && shim "$mode" "$d/fresh*" sh -c 'echo new > fresh1')
    expect_status "$t umask 027" 0 $?
    expect_committed "$t umask 027" "$d/fresh1"
    [ "$(stat -c %a fresh1)" = 640 ] || fail "$t umask 027: new file has mode $(stat -c %a fresh1), want 640"
    # A mode given to open(2) is masked too.
    (umask 077 && shim "$mode" "$d/fresh*" "${python3:-false}" -c "import os; os.close(os.open('fresh2', os.O_WRONLY | os.O_CREAT, 0o644))")
    expect_status "$t umask 077, mode 0644" 0 $?
    expect_committed "$t umask 077, mode 0644" "$d/fresh2"
    [ "$(stat -c %a fresh2 2>/dev/null)" = 600 ] ||
        fail "$t umask 077, mode 0644: new file has mode $(stat -c %a fresh2 2>&1), want 600"
    expect_entries "$t" "$d" m640 m600 owned fresh1 fresh2
done

# ---- open flags: O_EXCL, O_NOFOLLOW ----
for mode in "${modes[@]}"; do
    t="flags/$mode"
    newdir "flags-$mode"
    printf 'existing\n' >e
    # bash's noclobber opens with O_EXCL: the redirect must fail.
    arm e
    shim "$mode" "$d/e" bash -c 'set -C; echo clobbered > e' 2>err
    rc=$?
    [ "$rc" -ne 0 ] || fail "$t set -C: exit 0, want a failure"
    expect_unchanged "$t set -C" e
    if [ -n "$python3" ]; then
        arm e
        shim "$mode" "$d/e" "$python3" -c "
try:
    open('e', 'x')
except FileExistsError:
    pass
else:
    raise SystemExit('no FileExistsError')"
        expect_status "$t python 'x' existing" 0 $?
        expect_unchanged "$t python 'x' existing" e
        # O_NOFOLLOW on a symlink: ELOOP, as for a plain open.
        ln -s e elink
        arm e
        shim "$mode" "$d/e*" "$python3" -c "
import errno, os
try:
    os.open('elink', os.O_WRONLY | os.O_NOFOLLOW)
except OSError as e:
    if e.errno != errno.ELOOP: raise
else:
    raise SystemExit('no ELOOP')"
        expect_status "$t O_NOFOLLOW symlink" 0 $?
        expect_unchanged "$t O_NOFOLLOW symlink" e
        [ -L elink ] || fail "$t O_NOFOLLOW: elink is no longer a symlink"
        rm elink
    fi
    expect_entries "$t" "$d" e err
done

# ---- unmatched paths are untouched ----
for mode in "${modes[@]}"; do
    t="unmatched/$mode"
    newdir "unmatched-$mode"
    printf 'u\n' >u.txt
    printf 'm\n' >m.conf
    u_ino=$(ino u.txt)
    arm m.conf
    # The same processes write a matched file, which proves the shim was active.
    shim "$mode" "*.conf" bash -c 'echo u2 > u.txt; echo m2 > m.conf; /bin/echo u3 >> u.txt'
    expect_status "$t" 0 $?
    expect_replaced "$t matched" m.conf $'m2\n'
    expect_content "$t unmatched" u.txt $'u2\nu3\n'
    [ "$(ino u.txt)" = "$u_ino" ] || fail "$t: the unmatched u.txt was replaced"
    expect_entries "$t" "$d" u.txt m.conf
done

# ---- relative paths and directory descriptors are resolved ----
# A rule with '/' matches the absolute path, whatever the working directory
# or the directory descriptor the program opened the file through.
if [ -n "$python3" ]; then
    for mode in "${modes[@]}"; do
        t="dirfd/$mode"
        newdir "dirfd-$mode"
        mkdir sub other
        printf 'old\n' >sub/f
        arm sub/f
        (cd other && shim "$mode" "$d/sub/f" "$python3" -c "
import os
dfd = os.open('../sub', os.O_RDONLY | os.O_DIRECTORY)
fd = os.open('f', os.O_WRONLY | os.O_TRUNC, dir_fd=dfd)
os.write(fd, b'via dirfd\\n')
os.close(fd)
")
        expect_status "$t" 0 $?
        expect_replaced "$t" sub/f $'via dirfd\n'
        arm sub/f
        (cd other && shim "$mode" "$d/sub/f" bash -c 'echo relative > ../sub/./f')
        expect_status "$t relative" 0 $?
        expect_replaced "$t relative" sub/f $'relative\n'
        expect_entries "$t" "$d/sub" f
    done
fi

# ---- lock-only and exclude rules ----
for mode in "${modes[@]}"; do
    t="lock-only/$mode"
    newdir "lockonly-$mode"
    printf 'line 1\n' >app.log
    printf 'x\n' >skip.conf
    log_ino=$(ino app.log)
    skip_ino=$(ino skip.conf)
    clear_log
    if [ "$mode" = launcher ]; then
        "$atomically" --lock-only '*.log' --rule '*.conf' --exclude 'skip.*' -- bash -c 'echo line 2 >> app.log; echo y > skip.conf'
    else
        LD_PRELOAD=$preload WRAP_LOCKFILE_LOCK_ONLY='*.log' WRAP_LOCKFILE_RULES='*.conf' WRAP_LOCKFILE_EXCLUDE='skip.*' \
            bash -c 'echo line 2 >> app.log; echo y > skip.conf'
    fi
    expect_status "$t" 0 $?
    # Written in place (same inode) under the lock, which is then removed.
    expect_content "$t" app.log $'line 1\nline 2\n'
    [ "$(ino app.log)" = "$log_ino" ] || fail "$t: app.log was replaced, want an in-place write"
    grep -qxF "wrap_lockfile: committed '$d/app.log' (in place, not atomic)" "$WRAP_LOCKFILE_LOG" ||
        fail "$t: the shim did not take app.log as lock-only (log: $(tr '\n' '|' <"$WRAP_LOCKFILE_LOG"))"
    # Excluded, although a replace rule matches too.
    expect_content "$t exclude" skip.conf $'y\n'
    [ "$(ino skip.conf)" = "$skip_ino" ] || fail "$t exclude: skip.conf was replaced"
    expect_entries "$t" "$d" app.log skip.conf
done

finish
