#!/bin/bash
# End-to-end checks of the `atomically` launcher: validation before anything
# runs (exit 125), command lookup (126/127), the command's own exit status,
# refusal of programs the shim could not protect, and the environment the
# command receives.
# Usage: launcher_test.sh ATOMICALLY PRELOAD_OBJECT PROBE_DIR HELPER_DIR
# PROBE_DIR holds meson-built programs the preload cannot load (exec_probe*),
# HELPER_DIR libempty_preload.so (tests/shim/helpers/).
# Exit: 0 pass, 1 fail, 77 a check could not run (its SKIP line says why).
set -u
usage="usage: launcher_test.sh ATOMICALLY PRELOAD_OBJECT PROBE_DIR HELPER_DIR"
[ $# -eq 4 ] || { echo "$usage" >&2; exit 1; }
atomically=$(realpath "$1") || exit 1
preload=$(realpath "$2") || exit 1
probes=$(realpath "$3") || exit 1
helpers=$(realpath "$4") || exit 1
# fail, skip_check, finish.
# shellcheck source=../checks.sh
. "$(dirname "$0")/../checks.sh"

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
cwd=$(pwd -P)

export WRAP_LOCKFILE_PRELOAD=$preload
# The test controls these; inherited values would change the expectations.
unset WRAP_LOCKFILE_RULES WRAP_LOCKFILE_LOCK_ONLY WRAP_LOCKFILE_EXCLUDE WRAP_LOCKFILE_CONFIG \
    WRAP_LOCKFILE_TIMEOUT WRAP_LOCKFILE_FSYNC WRAP_LOCKFILE_LOG LD_PRELOAD

# expect_refused NAME WORD... -- ARGS...: atomically must exit 125, print one
# "atomically: " line mentioning every WORD, and not run the command, which
# would create ./ran.
expect_refused() {
    local name=$1
    shift
    local words=()
    while [ "$1" != "--" ]; do
        words+=("$1")
        shift
    done
    shift
    rm -f ran
    "$atomically" "$@" 2>err
    local rc=$?
    [ "$rc" -eq 125 ] || fail "$name: exit $rc, want 125"
    [ ! -e ran ] || fail "$name: the command ran"
    [ "$(wc -l <err)" -eq 1 ] || fail "$name: want one line on stderr, got: $(cat err)"
    grep -q '^atomically: ' err || fail "$name: message lacks the 'atomically: ' prefix: $(cat err)"
    local w
    for w in "${words[@]}"; do
        grep -qF -- "$w" err || fail "$name: message does not mention '$w': $(cat err)"
    done
}

# expect_status NAME WANT ARGS...: atomically exits WANT.
expect_status() {
    local name=$1 want=$2
    shift 2
    "$atomically" "$@" >out 2>err
    local rc=$?
    [ "$rc" -eq "$want" ] || fail "$name: exit $rc, want $want (stderr: $(cat err))"
}

# ---- validation: 125 and nothing run ----
expect_refused "malformed glob" --rule '[bad' -- --rule '[bad' -- touch ran
expect_refused "malformed glob, = form" --lock-only 'x/[bad' -- --lock-only='x/[bad' -- touch ran
expect_refused "malformed timeout" --timeout abc -- --timeout abc -- touch ran
expect_refused "negative timeout" --timeout -1 -- --timeout -1 -- touch ran
expect_refused "nan timeout" --timeout nan -- --timeout nan -- touch ran
expect_refused "inf timeout" --timeout inf -- --timeout inf -- touch ran
# One grammar, the preload object's too: plain decimal seconds, bounded.
for t in 0x10 1e1 ' 2' '2 ' 1. .5 +1 1,5 ''; do
    expect_refused "timeout '$t'" --timeout "'$t'" "non-negative decimal" -- --timeout "$t" -- touch ran
    WRAP_LOCKFILE_TIMEOUT=$t expect_refused "inherited timeout '$t'" WRAP_LOCKFILE_TIMEOUT -- -- touch ran
done
expect_refused "huge timeout" --timeout 10000000000 "too large" -- --timeout 10000000000 -- touch ran
expect_refused "timeout just above the bound" "too large" -- --timeout 1000000000.5 -- touch ran
for t in 0 0.5 007 1000000000; do
    expect_status "timeout $t" 0 --timeout "$t" -- true
done
expect_refused "bad fsync" --fsync sometimes -- --fsync sometimes -- touch ran
expect_refused "missing config" --config "$cwd/nope.conf" -- --config nope.conf -- touch ran
printf 'replace *.txt\nlock-only [oops\n' >bad.conf
expect_refused "malformed config line" "$cwd/bad.conf:2" '[oops' -- --config bad.conf -- touch ran
# Never blocks on, or reads from, anything but a regular file.
mkfifo fifo.conf
timeout 10 "$atomically" --config fifo.conf -- true 2>/dev/null
[ $? -ne 124 ] || fail "FIFO config: the launcher hung on it"
expect_refused "FIFO config" "$cwd/fifo.conf" "is a FIFO" -- --config fifo.conf -- touch ran
WRAP_LOCKFILE_CONFIG=$cwd/fifo.conf expect_refused "inherited FIFO config" WRAP_LOCKFILE_CONFIG "is a FIFO" -- -- touch ran
expect_refused "device config" /dev/null "is a character device" -- --config /dev/null -- touch ran
mkdir conf.d
expect_refused "directory config" "$cwd/conf.d" "is a directory" -- --config conf.d -- touch ran
# A NUL would silently end the rule early.
printf 'replace *.txt
replace *.c\000.h
' >nul.conf
expect_refused "config with a NUL byte" "$cwd/nul.conf:2" "NUL" -- --config nul.conf -- touch ran
expect_refused "unknown option" --frobnicate -- --frobnicate -- touch ran
WRAP_LOCKFILE_TIMEOUT=abc expect_refused "inherited timeout" WRAP_LOCKFILE_TIMEOUT abc -- -- touch ran
WRAP_LOCKFILE_RULES='ok;[bad' expect_refused "inherited glob" WRAP_LOCKFILE_RULES '[bad' -- -- touch ran
WRAP_LOCKFILE_PRELOAD=$cwd/bad.conf expect_refused "preload that does not load" \
    "cannot load the preload object $cwd/bad.conf" -- --rule '*.txt' -- touch ran

# ---- command lookup: 126 and 127 ----
expect_status "missing command" 127 no-such-command-xyz
grep -q '^atomically: no-such-command-xyz: No such file or directory$' err || fail "missing command: message: $(cat err)"
expect_status "missing path" 127 ./no-such-file
printf '#!/bin/sh\ntouch ran\n' >noexec
chmod 644 noexec
rm -f ran
expect_status "non-executable file" 126 ./noexec
[ ! -e ran ] || fail "non-executable file: it ran"
mkdir adir
expect_status "directory" 126 ./adir

# ---- the command's own status, in place of the launcher ----
expect_status "exit status" 42 sh -c 'exit 42'
expect_status "exit status without --" 0 true
expect_status "killed by a signal" 141 -- sh -c 'kill -PIPE $$'
"$atomically" -- sh -c 'echo $$' >pid &
launcher_pid=$!
wait "$launcher_pid"
[ "$(cat pid)" = "$launcher_pid" ] || fail "exec in place: the command ran as pid $(cat pid), not $launcher_pid"

# ---- programs the shim could not protect ----
cp /bin/true suid
chmod u+s suid
expect_refused "setuid program" "$cwd/suid" --allow-unprotected setuid -- "$cwd/suid"
expect_status "setuid program, allowed" 0 --allow-unprotected "$cwd/suid"
grep -q '^atomically: warning: ' err || fail "setuid program, allowed: no warning: $(cat err)"

# Built by meson: statically linked, another ELF class, another libc's loader.
static=$probes/exec_probe_static
if [ -x "$static" ]; then
    expect_refused "static program" "$static" "statically linked" --allow-unprotected -- "$static"
    expect_status "static program, allowed" 0 --allow-unprotected "$static"
    grep -qx hello out || fail "static program, allowed: it did not run: $(cat out)"
    grep -q '^atomically: warning: ' err || fail "static program, allowed: no warning: $(cat err)"
    printf '#!%s\n' "$static" >static-script
    chmod +x static-script
    expect_refused "script with a static interpreter" "$static" -- ./static-script
else
    skip_check "static checks" "no exec_probe_static (no static libc: libc6-dev)"
fi
if [ -x "$probes/exec_probe32" ]; then
    expect_refused "32-bit program" "$probes/exec_probe32" "32-bit" --allow-unprotected -- "$probes/exec_probe32"
    expect_status "32-bit program, allowed" 0 --allow-unprotected "$probes/exec_probe32"
else
    skip_check "32-bit program" "no exec_probe32 (gcc-multilib missing: meson found no working cc -m32)"
fi
if [ -x "$probes/exec_probe_musl" ]; then
    expect_refused "musl program" "$probes/exec_probe_musl" "ld-musl" --allow-unprotected -- "$probes/exec_probe_musl"
    printf '#!%s\n' "$probes/exec_probe_musl" >musl-script
    chmod +x musl-script
    expect_refused "script with a musl interpreter" "$probes/exec_probe_musl" "ld-musl" -- ./musl-script
else
    skip_check "musl program" "no exec_probe_musl (musl-tools missing: no musl-gcc)"
fi
expect_status "dynamic glibc program" 0 "$probes/exec_probe"

printf '#!/bin/sh\ntouch ran\n' >script
chmod +x script
rm -f ran
expect_status "script with a dynamic interpreter" 0 ./script
[ -e ran ] || fail "script with a dynamic interpreter: it did not run"

# ---- the environment the command sees ----
# value NAME: the value of NAME in ./out (an `env` listing), or "<unset>".
value() {
    local line
    line=$(grep -m1 "^$1=" out) || {
        echo "<unset>"
        return
    }
    echo "${line#*=}"
}
expect_value() {
    local got
    got=$(value "$1")
    [ "$got" = "$2" ] || fail "$3: $1='$got', want '$2'"
}

other=$helpers/libempty_preload.so
LD_PRELOAD=$other expect_status "environment" 0 --rule 'a;b' --lock-only 'x/*.log' --timeout 0.5 --fsync none -- env
expect_value WRAP_LOCKFILE_RULES 'a;b' "environment"
expect_value WRAP_LOCKFILE_LOCK_ONLY "$cwd/x/*.log" "environment"
expect_value WRAP_LOCKFILE_EXCLUDE '<unset>' "environment"
expect_value WRAP_LOCKFILE_TIMEOUT 0.5 "environment"
expect_value WRAP_LOCKFILE_FSYNC none "environment"
expect_value WRAP_LOCKFILE_LOG '<unset>' "environment"
expect_value LD_PRELOAD "$preload:$other" "environment"

expect_status "fsync batch" 0 --rule a --fsync batch -- env
expect_value WRAP_LOCKFILE_FSYNC batch "fsync batch"
WRAP_LOCKFILE_FSYNC=batch expect_status "inherited fsync batch" 0 --rule a -- env
expect_value WRAP_LOCKFILE_FSYNC batch "inherited fsync batch"

LD_PRELOAD=$preload expect_status "preload already listed" 0 -- env
expect_value LD_PRELOAD "$preload" "preload already listed"

WRAP_LOCKFILE_RULES='old' WRAP_LOCKFILE_EXCLUDE='keep/*.tmp' \
    expect_status "appending" 0 --rule=new --rule '../up/*.c' --exclude '*.bak' -- env
expect_value WRAP_LOCKFILE_RULES "old;new;$(dirname "$cwd")/up/*.c" "appending"
expect_value WRAP_LOCKFILE_EXCLUDE 'keep/*.tmp;*.bak' "appending"

printf '# rules\nreplace *.txt\n\nexclude /tmp/x\n' >good.conf
expect_status "config and log" 0 --config good.conf --log my.log -v -- env
expect_value WRAP_LOCKFILE_CONFIG "$cwd/good.conf" "config and log"
expect_value WRAP_LOCKFILE_LOG "$cwd/my.log" "config and log"
expect_status "verbose" 0 -v env
expect_value WRAP_LOCKFILE_LOG stderr "verbose"

expect_status "version" 0 --version
grep -q '^atomically (wrap_lockfile) [0-9]' out || fail "version: $(cat out)"

finish
