#!/bin/bash
# A shimmed shell that execs into a program which cannot load the preload
# object (`sh -c 'exec ./prog > out.txt'`): the pending replacement of
# out.txt must commit before the exec, since nobody after it would. Every
# reason the loader has is tried: static, set-id, file capabilities, another
# ELF class (32-bit), another machine, another libc's loader (musl), and
# '#!' scripts (nested too) run by such programs. Each run is compared with
# the same command under the preload object without rules: the same exit
# status and content, and nothing left beside out.txt (no out.txt.lock, no
# temp file). The probes are built by meson (tests/shim/meson.build); one
# that is missing skips its checks, naming the package.
# Usage: exec_test.sh ATOMICALLY PRELOAD_OBJECT PROBE_DIR
# Exit: 0 pass, 1 fail, 77 a check could not run (its SKIP line says why).
usage="exec_test.sh ATOMICALLY PRELOAD_OBJECT PROBE_DIR"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
probes=$(realpath "${3:?usage: $usage}") || exit 1

bin=$tmp/bin
mkdir -p "$bin"

# probe NAME WHAT WHY: the probe's path in $prog, or false (with a SKIP line).
probe() {
    prog=$probes/$1
    [ -x "$prog" ] && return 0
    skip_check "$2" "$prog was not built ($3)"
    return 1
}

# world NAME PROGRAM: the outcome of `sh -c 'exec PROGRAM > out.txt'` over an
# old out.txt with the preload object loaded but no rule: status in $want_rc,
# content in $want_content.
world() {
    newdir "$1.world"
    echo old >out.txt
    LD_PRELOAD=$preload sh -c 'exec "$0" >out.txt' "$2" 2>/dev/null
    want_rc=$?
    contents out.txt
    want_content=$REPLY
}

# check NAME PROGRAM: the same under the shim with a rule matching out.txt,
# through the launcher (with --allow-unprotected: the shell itself is
# protected, what it execs need not be) and with a raw LD_PRELOAD.
check() {
    local name=$1 program=$2 mode rc
    world "$name" "$program"
    for mode in launcher preload; do
        newdir "$name.$mode"
        echo old >out.txt
        clear_log
        case $mode in
        launcher) "$atomically" --rule '*.txt' -- sh -c 'exec "$0" >out.txt' "$program" 2>err ;;
        preload) LD_PRELOAD=$preload WRAP_LOCKFILE_RULES='*.txt' sh -c 'exec "$0" >out.txt' "$program" 2>err ;;
        esac
        rc=$?
        expect_status "$name ($mode)" "$want_rc" "$rc"
        expect_content "$name ($mode)" out.txt "$want_content"
        expect_entries "$name ($mode)" "$d" err out.txt
        expect_committed "$name ($mode)" "$d/out.txt"
    done
}

multilib="gcc-multilib missing: meson found no working cc -m32"
musl="musl-tools missing: no musl-gcc"

# The baseline: a program that loads the shim takes the replacement over.
# Always built: missing, it is a broken build, not something to skip.
native=$probes/exec_probe
if [ -x "$native" ]; then
    check dynamic "$native"
else
    fail "dynamic: $native was not built"
    native=
fi
if probe exec_probe_static "static" "no static libc: libc6-dev"; then
    check static "$prog"
fi
if probe exec_probe32 "32-bit" "$multilib"; then
    check 32-bit "$prog"
    printf '#!%s\n' "$prog" >"$bin/script32"
    chmod +x "$bin/script32"
    check "script run by a 32-bit program" "$bin/script32"
    printf '#!%s\n' "$bin/script32" >"$bin/script-script32"
    chmod +x "$bin/script-script32"
    check "script run by a script run by a 32-bit program" "$bin/script-script32"
fi
if probe exec_probe_musl "musl" "$musl"; then
    check musl "$prog"
    printf '#!%s\n' "$prog" >"$bin/script-musl"
    chmod +x "$bin/script-musl"
    check "script run by a musl program" "$bin/script-musl"
fi
if [ -n "${native:-}" ]; then
    cp "$native" "$bin/setuid" && chmod u+s "$bin/setuid"
    check setuid "$bin/setuid"
    cp "$native" "$bin/setgid" && chmod g+sx "$bin/setgid"
    check setgid "$bin/setgid"
    # e_machine (offset 18, little-endian) set to EM_AARCH64: the kernel
    # refuses it (ENOEXEC) or a binfmt_misc emulator runs it; either way our
    # x86-64 object is not loaded into it.
    cp "$native" "$bin/aarch64"
    printf '\267\000' | dd of="$bin/aarch64" bs=1 seek=18 conv=notrunc status=none
    check "foreign machine" "$bin/aarch64"
    if is_root && have setcap; then
        cp "$native" "$bin/caps" && setcap cap_net_bind_service+ep "$bin/caps"
        check "file capabilities" "$bin/caps"
    else
        skip_check "file capabilities" "needs root and setcap (libcap2-bin)"
    fi
fi

finish
