#!/bin/bash
# One coherent file (README "The shim", docs/design.md): while a program has
# a replacement of F pending, it (and its children sharing the descriptor)
# sees F as the file it is writing; other processes see the old F until the
# commit. Checked with coherent_probe (every stat/access entry, read-opens,
# a forked child) and with the real programs that check what they wrote:
# vim/ex, crudini, sqlite3, cat, tar, node. Each program runs twice in fresh
# directories, plainly and under the shim, and the exit status, stdout,
# stderr and final tree are compared. Also: logrotate-style copytruncate
# under --rule (a documented limit) and under --lock-only (the right way).
# And a second write-open of a file the program already has open (shell
# redirections, tee, truncate, two SQLite connections): one file; and an
# unlink, rename or link of a file it has open.
# Usage: coherent_test.sh ATOMICALLY PRELOAD_OBJECT COHERENT_PROBE
# Exit: 0 pass, 1 fail, 77 a check could not run (its SKIP line says why).
usage="coherent_test.sh ATOMICALLY PRELOAD_OBJECT COHERENT_PROBE"
. "$(dirname "$0")/lib.sh"
probe=$(realpath "${3:-}") || { echo "usage: $usage" >&2; exit 1; }

# ---- coherent_probe: every libc entry, in the opener and a forked child ----
newdir probe-plain
echo old >f && ln -s f l
"$probe" identity f n l
expect_status "probe plain" 0 $?
for mode in "${modes[@]}"; do
    t="probe/$mode"
    newdir "probe-$mode"
    echo old >f && ln -s f l
    arm f
    clear_log
    shim "$mode" "$d/f;$d/n" "$probe" identity f n l
    expect_status "$t" 0 $?
    expect_replaced "$t" f $'pending\n'
    expect_content "$t" n $'new\n'
    expect_committed "$t" "$d/n"
    expect_entries "$t" . f l n sub
done

# Renames and links onto a file being written, plainly and under the shim.
newdir renames-plain
"$probe" renames f
expect_status "renames plain" 0 $?
for mode in "${modes[@]}"; do
    newdir "renames-$mode"
    shim "$mode" "$d/f" "$probe" renames f
    expect_status "renames/$mode" 0 $?
    expect_content "renames/$mode" f $'renamed\n'
    expect_entries "renames/$mode" . f
done

# Other processes see the old F until the commit; the writer reads its own.
newdir hold
echo old >f
old_ino=$(ino f)
coproc HOLD { shim launcher "$d/f" "$probe" hold f; }
hold_pid=$HOLD_PID hold_in=${HOLD[1]} hold_out=${HOLD[0]}
bg_pids+=("$hold_pid")
line=""
read -r -t 10 line <&"$hold_out"
[ "$line" = ready ] || fail "hold: the writer did not start (got '$line')"
expect_content "hold: another process" f $'old\n'
[ "$(ino f)" = "$old_ino" ] || fail "hold: another process sees a new inode before the commit"
# A process under the shim that does not hold the descriptor sees the old F too.
seen=$(shim launcher "$d/f" cat f)
[ "$seen" = old ] || fail "hold: another shimmed process read '$seen', want 'old'"
echo go >&"$hold_in"
line=""
read -r -t 10 line <&"$hold_out"
[ "$line" = pending ] || fail "hold: the writer read '$line' from its own file, want 'pending'"
wait "$hold_pid"
expect_content "hold: after the commit" f $'pending\n'

# ---- plain vs shim: run NAME's setup and command in two fresh directories ----
# compare NAME RULE COMMAND...: `setup` (a function the caller defines) runs
# first in each; RULE is a glob relative to the directory. Status, stdout,
# stderr (the directory's path replaced by "D") and the final tree (names,
# types, modes, content) must be equal. Leaves $plain and $shimmed set.
tree() {
    local f
    find . -mindepth 1 | LC_ALL=C sort | while read -r f; do
        printf '%s %s\n' "$f" "$(stat -c %A "$f")"
        [ -f "$f" ] && ! [ -L "$f" ] && sha256sum <"$f"
        [ -L "$f" ] && readlink "$f"
    done
}
run_in() {
    local dir=$1
    shift
    newdir "$dir"
    setup
    "$@" >"$tmp/$dir.out" 2>"$tmp/$dir.err"
    echo $? >"$tmp/$dir.status"
    sed -i "s|$d|D|g" "$tmp/$dir.out" "$tmp/$dir.err"
    tree >"$tmp/$dir.tree"
}
compare() {
    local name=$1 rule=$2 key=${1//[^A-Za-z0-9]/_}
    shift 2
    plain=$tmp/$key-plain shimmed=$tmp/$key-shim
    run_in "$key-plain" "$@"
    run_in "$key-shim" "$atomically" --rule "$tmp/$key-shim/$rule" -- "$@"
    local what
    for what in status out err tree; do
        cmp -s "$plain.$what" "$shimmed.$what" ||
            fail "$name: $what differs from the plain run: $(diff "$plain.$what" "$shimmed.$what" | head -n 8 | tr '\n' '|')"
    done
}

# ---- vim and ex: E949 "File changed while writing" compares the inode ----
# vim stat()ed before the open with the descriptor's fstat.
if have vim; then
    setup() { printf 'a\nb\n' >f; }
    for opt in "" "set backupcopy=yes" "set backupcopy=no" "set backupcopy=auto nowritebackup"; do
        compare "vim ${opt:-defaults}" f vim -es -N -u NONE ${opt:+-c "$opt"} -c '%s/a/A/' -c wq f
        expect_content "vim ${opt:-defaults}" "$shimmed/f" $'A\nb\n'
        compare "ex ${opt:-defaults}" f ex -s -u NONE ${opt:+-c "$opt"} -c '%s/b/B/' -c wq f
        expect_content "ex ${opt:-defaults}" "$shimmed/f" $'a\nB\n'
    done
else
    skip_check "vim checks" "vim not installed"
fi

# ---- crudini: locks F through an open descriptor, renames a temp over it,
# and loops until the descriptor and the path are the same file ----
if have crudini; then
    setup() { printf '[s]\nk = 1\nj = 2\n' >f.ini; }
    compare "crudini --set" f.ini timeout 20 crudini --set f.ini s k v
    expect_content "crudini --set" "$shimmed/f.ini" $'[s]\nk = v\nj = 2\n'
    compare "crudini --del" f.ini timeout 20 crudini --del f.ini s j
    expect_content "crudini --del" "$shimmed/f.ini" $'[s]\nk = 1\n'
else
    skip_check "crudini checks" "crudini not installed"
fi

# ---- sqlite3: works on a matched database (README: the database is replaced
# as a whole when sqlite3 closes it; other processes see the old one) ----
if have sqlite3; then
    setup() { sqlite3 d.db 'create table t(x); insert into t values (1);'; }
    compare "sqlite3 insert" d.db sqlite3 d.db 'insert into t values (2); select count(*) from t;'
    check=$(sqlite3 "$shimmed/d.db" 'pragma integrity_check; select group_concat(x) from t;')
    [ "$check" = $'ok\n1,2' ] || fail "sqlite3 insert: after the run: '$check'"
    setup() { :; }
    compare "sqlite3 new db" n.db sqlite3 n.db 'create table t(x); insert into t values (5); select * from t;'
    check=$(sqlite3 "$shimmed/n.db" 'pragma integrity_check; select x from t;')
    [ "$check" = $'ok\n5' ] || fail "sqlite3 new db: after the run: '$check'"
    setup() { sqlite3 w.db 'pragma journal_mode=wal; create table t(x); insert into t values (1);' >/dev/null; }
    compare "sqlite3 wal" w.db sqlite3 w.db 'insert into t values (2); select count(*) from t;'
    # Committed at close: a process started while sqlite3 has the database
    # open sees the old one (plainly it would see the insert).
    newdir sqlite-open
    sqlite3 d.db 'create table t(x); insert into t values (1);'
    out=$("$atomically" --rule "$d/d.db" -- sqlite3 d.db 'insert into t values (2);' \
        ".shell env -u LD_PRELOAD sqlite3 $d/d.db 'select count(*) from t'" 'select count(*) from t;')
    [ "$out" = $'1\n2' ] || fail "sqlite3 while open: outside/inside counts '$(echo $out)', want '1 2'"
    [ "$(sqlite3 d.db 'select count(*) from t')" = 2 ] || fail "sqlite3 while open: not committed at close"
    expect_entries "sqlite3 while open" . d.db
else
    skip_check "sqlite3 checks" "sqlite3 not installed"
fi

# ---- cat and tar compare the output's identity with their inputs' ----
setup() { printf 'x\n' >f; }
compare "cat f >> f" f sh -c 'cat f >> f'
expect_content "cat f >> f" "$shimmed/f" $'x\n'
grep -q 'input file is output file' "$shimmed.err" || fail "cat f >> f: no 'input file is output file'"
compare "bash: cat f >> f" f bash -c 'cat f >> f'
if have tar; then
    # The archive exists: tar skips it. (A new archive is not in the
    # directory listing, with or without the shim.) Under the shim the lock
    # file of the pending archive is in the directory too: README's limits.
    setup() { mkdir d && echo a >d/a && tar -cf d/out.tar d/a; }
    newdir tar-plain && setup && tar -cf d/out.tar d 2>"$tmp/tar.plain.err"
    plain_status=$? plain_list=$(tar -tf d/out.tar | LC_ALL=C sort | tr '\n' ' ')
    newdir tar-shim && setup && "$atomically" --rule "$d/d/out.tar" -- tar -cf d/out.tar d 2>"$tmp/tar.shim.err"
    expect_status "tar -cf d/out.tar d" "$plain_status" $?
    cmp -s "$tmp/tar.plain.err" "$tmp/tar.shim.err" ||
        fail "tar -cf d/out.tar d: stderr '$(cat "$tmp/tar.shim.err")', plainly '$(cat "$tmp/tar.plain.err")'"
    grep -q 'file is the archive; not dumped' "$tmp/tar.shim.err" || fail "tar: no 'file is the archive; not dumped'"
    list=$(tar -tf d/out.tar | grep -v '^d/out.tar.lock$' | LC_ALL=C sort | tr '\n' ' ')
    [ "$list" = "$plain_list" ] || fail "tar -cf d/out.tar d: archive holds '$list', plainly '$plain_list'"
    expect_entries "tar -cf d/out.tar d" d a out.tar
else
    skip_check "tar checks" "tar not installed"
fi

# ---- node: read-after-write in one process; libuv's fs.statSync calls
# statx through syscall(), which reaches the identity handlers ----
if have node; then
    setup() { echo old >a.json; }
    compare "node read-after-write" a.json node -e '
        const fs = require("fs");
        fs.writeFileSync("a.json", "A\n");
        process.stdout.write(fs.readFileSync("a.json", "utf8"));'
    expect_content "node read-after-write" "$shimmed/a.json" $'A\n'
    # While pending: the path's size is what was written, and it is the
    # descriptor's file (same device and inode).
    compare "node statSync while pending" a.json node -e '
        const fs = require("fs");
        const fd = fs.openSync("a.json", "w");
        fs.writeSync(fd, "pending!\n");
        const p = fs.statSync("a.json"), d = fs.fstatSync(fd);
        console.log(p.size, p.ino === d.ino && p.dev === d.dev, p.nlink >= 1);
        fs.closeSync(fd);'
    expect_content "node statSync while pending" "$shimmed/a.json" $'pending!\n'
else
    skip_check "node checks" "node not installed"
fi

# ---- metadata by path while pending: chmod, utime, chown, xattrs act on
# the pending file and reach F at the commit (git chmod()s its open X.lock) ----
if [ -x "$python3" ]; then
    for existing in 0 1; do
        setup() { if [ "$existing" = 1 ]; then echo old >m; chmod 644 m; fi; }
        compare "metadata by path (existing=$existing)" m "$python3" -c '
import os, sys
f = open("m", "w")
f.write("new\n")
f.flush()
os.chmod("m", 0o640)
os.utime("m", (1000000000, 1200000000))
os.chown("m", os.getuid(), os.getgid())
try:
    os.setxattr("m", "user.wlf", b"v")
    os.removexattr("m", "user.wlf")
    os.setxattr("m", "user.kept", b"k")
except OSError as e:
    pass  # no user xattrs here: plain and shimmed runs both skip
st = os.stat("m")
print(oct(st.st_mode & 0o7777), int(st.st_atime), int(st.st_mtime), os.path.exists("m"))
f.close()
st = os.stat("m")
print(oct(st.st_mode & 0o7777), int(st.st_atime), int(st.st_mtime))
try:
    print(os.listxattr("m"), os.getxattr("m", "user.kept"))
except OSError as e:
    print("xattrs:", e.errno)'
        m=$tmp/metadata_by_path__existing_${existing}_-shim/m
        [ "$(stat -c '%a %Y' "$m")" = "640 1200000000" ] ||
            fail "metadata by path (existing=$existing): m is $(stat -c '%a %Y' "$m"), want 640 1200000000"
        expect_content "metadata by path (existing=$existing)" "$m" $'new\n'
    done
else
    skip_check "metadata by path" "python3 not installed"
fi

# Somebody else's F (root's, mode 666, in a directory nobody may write):
# nobody may write it but not chmod it or set its times; the replacement's
# temp is nobody's own, but the answer must be F's (EPERM), as without the shim.
if is_root && [ -x "$python3" ] && have setpriv; then
    as_nobody() { env -u WRAP_LOCKFILE_LOG setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
    chmod 711 "$tmp"  # nobody reaches its directories by absolute path
    code='import os
f = open("F", "w")
f.write("n\n")
f.flush()
for name, call in (("chmod", lambda: os.chmod("F", 0o600)), ("utime", lambda: os.utime("F", (1, 1))),
                   ("chown", lambda: os.chown("F", -1, 65534)), ("utime now", lambda: os.utime("F"))):
    try:
        call()
        print(name, "ok")
    except OSError as e:
        print(name, e.errno)
f.close()'
    for run in plain shim; do
        newdir "foreign-owner-$run"
        chown nobody "$d"
        printf 'old\n' >F
        chmod 666 F
        if [ $run = plain ]; then
            as_nobody "$python3" -c "$code" >"$tmp/foreign-$run.out" 2>&1
        else
            as_nobody "$atomically" --rule "$d/F" -- "$python3" -c "$code" >"$tmp/foreign-$run.out" 2>&1
        fi
        echo "status $?" >>"$tmp/foreign-$run.out"
        expect_content "metadata of a foreign F/$run" F $'n\n'
    done
    cmp -s "$tmp/foreign-plain.out" "$tmp/foreign-shim.out" ||
        fail "metadata of a foreign F: $(diff "$tmp/foreign-plain.out" "$tmp/foreign-shim.out" | tr '\n' '|')"
    grep -q "^chmod 1$" "$tmp/foreign-plain.out" || fail "metadata of a foreign F: plain chmod was not refused: $(cat "$tmp/foreign-plain.out")"
    [ "$(stat -c %a "$tmp/foreign-owner-shim/F")" = 666 ] || fail "metadata of a foreign F: mode changed to $(stat -c %a "$tmp/foreign-owner-shim/F")"
else
    skip_check "metadata of a foreign F" "needs root, python3 and setpriv"
fi

# ---- a second write-open of a file the program has open: one file ----
# Without the shim both descriptors are the same file; as two replacements
# the last close would drop everything written through the other.
setup() { echo start >log; }
compare "exec >>log 2>>log" log bash -c 'exec >>log 2>>log; echo out; echo err >&2; echo out2'
expect_content "exec >>log 2>>log" "$shimmed/log" $'start\nout\nerr\nout2\n'
compare "{ ...; echo b >>log; } >>log" log bash -c '{ echo a; echo b >>log; echo c; } >>log'
expect_content "{ ...; echo b >>log; } >>log" "$shimmed/log" $'start\na\nb\nc\n'
compare "tee -a log log" log sh -c 'seq 3 | tee -a log log >/dev/null'
expect_content "tee -a log log" "$shimmed/log" $'start\n1\n2\n3\n1\n2\n3\n'
# A child that opens the file its parent shell holds: the same file, not a
# wait for the lock its parent holds (a hang: bounded here by timeout).
compare "exec >>log; child >>log" log timeout 20 bash -c 'exec >>log 2>&1; echo one; ls -d / >>log; echo two >>log; echo three'
expect_content "exec >>log; child >>log" "$shimmed/log" $'start\none\n/\ntwo\nthree\n'
if [ -x "$python3" ]; then
    # O_TRUNC of the second open empties what the first wrote; truncate(2)
    # of the open file; O_EXCL of a file only pending so far: EEXIST.
    compare "second opens (python)" '*' "$python3" -c '
import os
a = os.open("log", os.O_WRONLY | os.O_TRUNC)
os.write(a, b"first\n")
b = os.open("log", os.O_WRONLY | os.O_TRUNC)
os.write(b, b"second\n")
os.write(a, b"+a\n")
os.truncate("log", 8)
os.close(b)
os.close(a)
n = os.open("new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(n, b"claimed\n")
try:
    os.open("new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    print("second O_EXCL open succeeded")
except FileExistsError:
    print("EEXIST")
os.close(n)
'
    expect_content "second opens (python): log" "$shimmed/log" second+a
    expect_content "second opens (python): new" "$shimmed/new" $'claimed\n'
    if have sqlite3; then
        # Two connections of one process (a pool): both transactions stay.
        setup() { sqlite3 t.db 'create table t(x);'; }
        compare "sqlite: two connections in one process" t.db "$python3" -c '
import sqlite3
a = sqlite3.connect("t.db"); b = sqlite3.connect("t.db")
a.execute("insert into t values (1)"); a.commit()
b.execute("insert into t values (2)"); b.commit()
a.close(); b.close()
'
        check=$(sqlite3 "$shimmed/t.db" 'pragma integrity_check; select group_concat(x) from t;')
        [ "$check" = $'ok\n1,2' ] || fail "sqlite: two connections in one process: after the run: '$check'"
    fi
else
    skip_check "second opens (python)" "python3 not installed"
fi

# ---- a hard-linked target (staged, written in place at the close) ----
# fstat of the descriptor shows F (device, inode, links, mode), not the
# staging memfd: vim's E949 check and SQLite's unlinked-database check pass.
setup() { printf '1\n2\n3\n' >f && ln f g; }
if have vim; then
    compare "vim, hard-linked file" f vim -es -N -u NONE -c '%s/2/TWO/' -c wq f
    expect_content "vim, hard-linked file: the other link" "$shimmed/g" $'1\nTWO\n3\n'
fi
if have sqlite3; then
    setup() { sqlite3 d.db 'create table t(x);' && ln d.db e.db; }
    compare "sqlite3, hard-linked database" d.db sqlite3 d.db 'insert into t values (7); select count(*) from t;'
    check=$(sqlite3 "$shimmed/e.db" 'pragma integrity_check; select group_concat(x) from t;')
    [ "$check" = $'ok\n7' ] || fail "sqlite3, hard-linked database: through the other link: '$check'"
fi
if [ -x "$python3" ]; then
    setup() { echo old >f && ln f g; }
    compare "hard-linked file: fstat and read back" f "$python3" -c '
import os
fd = os.open("f", os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"mine\n")
a, b = os.fstat(fd), os.stat("f")
print((a.st_dev, a.st_ino, a.st_nlink, oct(a.st_mode)) == (b.st_dev, b.st_ino, b.st_nlink, oct(b.st_mode)), a.st_nlink)
print(open("f").read(), end="")
os.close(fd)
'
fi

# ---- the program unlinks, renames or links a file it has open ----
# Unlinked: its content is gone, as without the shim (a new file too, and
# unlink succeeds). Renamed or linked away: the name moves (or links) what it
# wrote, later writes land there, and a new file at the old name is its own.
if [ -x "$python3" ]; then
    setup() { echo old >f; echo old >r; }
    compare "unlink, rename, link of open files (python)" '*' "$python3" -c '
import os, tempfile
a = open("f", "w"); a.write("gone"); a.flush()
os.unlink("f"); a.write(" too"); a.close()
n = open("n", "w"); n.write("never"); n.flush()
os.unlink("n"); n.close()
t = tempfile.NamedTemporaryFile("w", dir=".", delete=False)
t.write("via temp"); t.flush()
os.replace(t.name, "target"); t.write("+after"); t.close()
r = open("r", "a"); r.write("orig"); r.flush()
os.rename("r", "r.1")
with open("r", "w") as fresh: fresh.write("fresh")
r.write("+more"); r.close()
l = open("l", "w"); l.write("linked"); l.flush()
os.link("l", "l2"); l.write("+later"); l.close()
print(sorted(os.listdir(".")))
'
    expect_content "unlink/rename/link: target" "$shimmed/target" "via temp+after"
    expect_content "unlink/rename/link: r" "$shimmed/r" fresh
    expect_content "unlink/rename/link: r.1" "$shimmed/r.1" $'old\norig+more'
    expect_content "unlink/rename/link: l2" "$shimmed/l2" "linked+later"
    expect_entries "unlink/rename/link" "$shimmed" l l2 r r.1 target
else
    skip_check "unlink, rename, link of open files" "python3 not installed"
fi

# ---- copytruncate while a daemon appends (README's warning) ----
# The daemon holds log open (O_APPEND) and writes one line before and one
# after the rotation. Under --rule, `truncate` replaces log: the daemon's
# later line goes to the orphaned inode (the documented limit). Under
# --lock-only, log is truncated in place and the daemon's later line lands
# in it, as without the shim.
for how in rule lock-only; do
    newdir "copytruncate-$how"
    mkfifo go done
    (exec 3>>log && echo before >&3 && echo >done && read -r _ <go && echo after >&3 && echo >done) &
    bg_pids+=($!)
    await done "copytruncate $how: first line"
    "$atomically" "--$how" "$d/log" -- sh -c 'cp log log.1 && truncate -s 0 log'
    expect_status "copytruncate $how" 0 $?
    signal go
    await done "copytruncate $how: second line"
    expect_content "copytruncate $how: log.1" log.1 $'before\n'
    if [ "$how" = lock-only ]; then
        expect_content "copytruncate --lock-only: log" log $'after\n'
    else
        expect_content "copytruncate --rule (documented loss): log" log ''
    fi
    expect_entries "copytruncate $how" . done go log log.1
done

finish
