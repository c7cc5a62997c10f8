#!/bin/bash
# The preload object's side of bad configuration and limits (docs/design.md, "The shim";
# the launcher's side is launcher_test.sh): a WRAP_LOCKFILE_CONFIG that is a
# FIFO, a device, a directory or has a NUL byte never hangs a program and adds
# no rule at all, with one line naming the variable and the file (and line);
# a WRAP_LOCKFILE_TIMEOUT outside the launcher's grammar is ignored the same
# way (the wait is then unbounded: nothing is lost); a matched file whose
# absolute path is longer than PATH_MAX is refused with ENAMETOOLONG and one
# line, never written in place.
# Usage: config_test.sh ATOMICALLY PRELOAD_OBJECT
# Exit: 0 pass, 1 fail.
usage="config_test.sh ATOMICALLY PRELOAD_OBJECT"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# expect_one_line NAME FILE WORD...: FILE holds exactly one line, naming every WORD.
expect_one_line() {
    local name=$1 file=$2 w
    shift 2
    [ "$(wc -l <"$file")" -eq 1 ] || fail "$name: want one line on stderr, got: $(cat "$file")"
    for w in "$@"; do
        grep -qF -- "$w" "$file" || fail "$name: stderr does not name '$w': $(cat "$file")"
    done
}

# ---- config files that are not regular, or hold a NUL ----
newdir config
mkfifo fifo.conf
mkdir dir.conf
printf 'replace *.txt\nreplace *.c\000.h\n' >nul.conf
for conf in "$d/fifo.conf" /dev/null "$d/dir.conf" "$d/nul.conf"; do
    echo old >out.txt
    arm out.txt
    # Only the inner shell loads the shim: one program, one line.
    timeout 10 sh -c 'WRAP_LOCKFILE_CONFIG=$0 LD_PRELOAD=$1 exec sh -c "echo new >out.txt"' "$conf" "$preload" 2>err
    rc=$?
    [ "$rc" -ne 124 ] || fail "config $conf: the program hung in the shim's constructor"
    expect_status "config $conf" 0 "$rc"
    expect_one_line "config $conf" err WRAP_LOCKFILE_CONFIG "$conf"
    # No rule from it: out.txt, which its first line matches, is written in place.
    expect_content "config $conf" out.txt $'new\n'
    [ "$(ino out.txt)" = "$old_ino" ] || fail "config $conf: some of its rules were used (out.txt replaced)"
    disarm
done
grep -qF "$d/nul.conf:2" err || fail "config with a NUL: the line is not named: $(cat err)"

# ---- WRAP_LOCKFILE_TIMEOUT: the launcher's grammar ----
newdir timeout
for t in 0x10 1e1 ' 2' 1. 10000000000; do
    WRAP_LOCKFILE_TIMEOUT=$t LD_PRELOAD=$preload /bin/true 2>err
    expect_one_line "timeout '$t'" err WRAP_LOCKFILE_TIMEOUT "'$t'"
done
# Ignored, not read as 0.1 s (as strtod did): the writer still waits for the holder.
# The writers get no descriptor of the holder's (9>&-): one that holds the
# lock's description holds the lock itself and does not wait for it.
echo old >out.txt
exec 9>out.txt.lock
flock 9
WRAP_LOCKFILE_TIMEOUT=1e-1 WRAP_LOCKFILE_RULES='*.txt' LD_PRELOAD=$preload \
    timeout 1 sh -c 'echo new >out.txt' 9>&- 2>/dev/null
expect_status "timeout 1e-1 ignored: the writer waits" 124 $?
WRAP_LOCKFILE_TIMEOUT=0.1 WRAP_LOCKFILE_RULES='*.txt' LD_PRELOAD=$preload \
    timeout 10 sh -c 'echo new >out.txt' 9>&- 2>/dev/null
expect_status "timeout 0.1: the writer gives up" 2 $?
exec 9>&-
expect_content "timeouts" out.txt $'old\n'

# ---- a matched path longer than PATH_MAX ----
newdir deep
top=$d
long=$(printf 'd%.0s' {1..200})
for _ in $(seq 25); do
    mkdir "$long" && cd "$long" || exit 1
done
echo old >out.txt
echo old >out.log
for rules in '*.txt' "$top/**/*.txt"; do
    arm out.txt
    LD_PRELOAD=$preload WRAP_LOCKFILE_RULES=$rules sh -c 'echo new >out.txt' 2>err
    rc=$?
    [ "$rc" -ne 0 ] || fail "deep path, rule $rules: the write succeeded"
    grep -q 'File name too long' err || fail "deep path, rule $rules: not refused with ENAMETOOLONG: $(cat err)"
    grep -qF "wrap_lockfile: 'out.txt'" err || fail "deep path, rule $rules: the shim did not name it: $(cat err)"
    expect_unchanged "deep path, rule $rules" out.txt
    expect_entries "deep path, rule $rules" . err out.log out.txt
done
# Unmatched under the same rules: written as the program asked, silently.
LD_PRELOAD=$preload WRAP_LOCKFILE_RULES="$top/**/*.txt" sh -c 'echo new >out.log' 2>err
expect_status "deep path, unmatched" 0 $?
expect_content "deep path, unmatched" out.log $'new\n'
[ ! -s err ] || fail "deep path, unmatched: stderr: $(cat err)"
cd "$top" && rm -rf "$long"

finish
