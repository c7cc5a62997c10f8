#!/usr/bin/env bash
# _exit and _Exit in the process that opened a replacement commit it, as a
# normal exit does but without flushing stdio: the target then holds what a
# plain _exit leaves on disk (what went through write()). dash leaves
# through _exit: `sh -c 'exec > f; echo new'` must not keep the old f.
# Killed (SIGKILL): nothing committed, and nothing left after the next write
# (programs_faults_test.sh). Each case runs plainly and under the shim
# (launcher and raw preload), in fresh directories.
# Usage: exit_test.sh ATOMICALLY PRELOAD_OBJECT HELPER_DIR
usage="exit_test.sh ATOMICALLY PRELOAD_OBJECT HELPER_DIR"
. "$(dirname "$0")/lib.sh"
helpers=$(realpath "${3:?$usage}") || exit 1

# case NAME WANT_STATUS WANT_CONTENT COMMAND...: f holds "old" before.
case_() {
    local name=$1 want_status=$2 want=$3 mode rc
    shift 3
    newdir "plain-${name//[^A-Za-z0-9]/_}"
    printf 'old\n' >f
    "$@" 2>err
    rc=$?
    expect_status "$name/plain" "$want_status" "$rc"
    expect_content "$name/plain" f "$want"
    for mode in "${modes[@]}"; do
        newdir "$mode-${name//[^A-Za-z0-9]/_}"
        printf 'old\n' >f
        arm f
        clear_log
        shim "$mode" "$d/f" "$@" 2>err
        rc=$?
        expect_status "$name/$mode" "$want_status" "$rc"
        expect_replaced "$name/$mode" f "$want"
        expect_committed "$name/$mode" "$d/f"
        expect_entries "$name/$mode: nothing left behind" "$d" f err
        [ -s err ] && fail "$name/$mode: stderr: $(cat err)"
        # The lock is free.
        "$atomically" --timeout 0 --rule "$d/f" -- sh -c 'echo after > f'
        expect_status "$name/$mode: next writer, --timeout 0" 0 $?
        expect_content "$name/$mode: next writer" f $'after\n'
    done
}

for how in _exit _Exit signal; do
    case_ "helper $how" 3 $'new\n' "$helpers/exit_write" "$how" f
done
# _exit from a signal handler that interrupted the shim itself (SIGXFSZ in
# the in-place commit of a hard-linked file, see the helper): f, still
# pending, is not committed, its lock file is gone and stderr names it.
for mode in "${modes[@]}"; do
    newdir "busy-$mode"
    t="_exit inside the shim/$mode"
    printf 'old\n' >f
    printf 'linked\n' >L
    ln L L2
    arm f
    shim "$mode" "$d/f;$d/L" "$helpers/exit_write" busy f L 2>err
    expect_status "$t" 3 $?
    expect_unchanged "$t" f
    [ -e f.lock ] && fail "$t: f.lock left behind"
    grep -qF "_exit while the shim was busy: '$d/f' not replaced, old content kept" err ||
        fail "$t: stderr does not name f: $(cat err)"
    [ "$(wc -l <err)" -eq 1 ] || fail "$t: want one line on stderr: $(cat err)"
done

if have dash; then
    case_ "dash exec >" 0 $'new\n' dash -c 'exec > f; echo new'
    case_ "dash exec >>" 0 $'old\nnew\n' dash -c 'exec >> f; echo new'
    case_ "dash exec 3>" 0 $'new\n' dash -c 'exec 3> f; echo new >&3'
else
    skip_check "dash checks" "dash not installed"
fi
if [ -x "$python3" ]; then
    # Flushed: through write(); the rest stays in python's buffer.
    case_ "python3 os._exit" 0 $'x\n' "$python3" -c "import os; f = open('f', 'w'); f.write('x\n'); f.flush(); f.write('lost'); os._exit(0)"
else
    skip_check "python3 os._exit" "python3 not installed"
fi

finish
