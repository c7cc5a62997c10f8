#!/bin/bash
# A hostile swap at a step boundary, with faultfs's delay as the barrier:
# the writer sleeps inside one operation, the target's name is swapped
# meanwhile, and nothing the writer does next may reach the file swapped in.
#   lock-only: the core judges the target with the program's own open, closes
#   that descriptor (its flush is delayed) and opens the target again for the
#   writes. Swapped in between: a symlink to another file, or another file
#   renamed over the name. That file is neither truncated nor written, the
#   file judged keeps its content, and the write fails.
# Usage: swap_test.sh FAULTFS|none DRIVER
usage="swap_test.sh FAULTFS|none DRIVER"
[ $# -eq 2 ] || { echo "usage: $usage" >&2; exit 1; }
faultfs=$1
driver=$(realpath "$2") || exit 1
. "$(dirname "$0")/lib.sh"

mount_faultfs threaded

n=0
for how in symlink rename; do
    n=$((n + 1)); d=lock-only-$how
    mkdir "$mnt/$d" && printf old >"$mnt/$d/f" && printf victim >"$mnt/$d/victim" || exit 1
    ctl reset-log "fault flush $d/f OK delay=3000 count=1"
    "$driver" --lock-only write "$mnt/$d/f" new >"$tmp/$d.out" 2>&1 &
    writer=$!
    if await_delay "$d/f" flush; then
        mv "$mnt/$d/f" "$mnt/$d/judged"
        if [ $how = symlink ]; then ln -s victim "$mnt/$d/f"; else cp "$mnt/$d/victim" "$mnt/$d/f"; fi
    fi
    wait $writer
    rc=$?
    ctl clear
    [ $rc -ne 0 ] || fail "$d: the write succeeded: $(cat "$tmp/$d.out")"
    expect_content "$backing/$d/victim" victim "$d: the file the symlink leads to"
    [ $how = rename ] && expect_content "$backing/$d/f" victim "$d: the file renamed over the name"
    expect_content "$backing/$d/judged" old "$d: the file judged"
done

kill -0 "$fs_pid" 2>/dev/null || fail "faultfs died: $(cat "$tmp/faultfs.log")"
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "PASS: $n cases"
