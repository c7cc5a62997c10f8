#!/usr/bin/env bash
# freopen(3) of a matched path reads its mode as glibc does: "wx" on an
# existing file fails with EEXIST and leaves it as it was, 'e' sets
# close-on-exec, "r+" writes over the start of the old content. Each case
# runs plainly and under the shim (launcher and raw preload), in fresh
# directories; both must give the same status and the same file.
# Usage: freopen_test.sh ATOMICALLY PRELOAD_OBJECT HELPER_DIR
usage="freopen_test.sh ATOMICALLY PRELOAD_OBJECT HELPER_DIR"
. "$(dirname "$0")/lib.sh"
helpers=$(realpath "${3:?$usage}") || exit 1

# case_ MODE WANT_STATUS WANT_CONTENT [absent]: f holds "old content" before
# (or does not exist with "absent").
case_() {
    local fmode=$1 want_status=$2 want=$3 absent=${4:-} mode rc
    newdir "plain-${fmode//[^A-Za-z0-9]/_}$absent"
    [ -n "$absent" ] || printf 'old content\n' >f
    "$helpers/freopen_mode" "$fmode" f 2>err
    expect_status "freopen $fmode/plain" "$want_status" $?
    if [ -n "$want" ]; then expect_content "freopen $fmode/plain" f "$want"; fi
    for mode in "${modes[@]}"; do
        local t="freopen $fmode/$mode"
        newdir "$mode-${fmode//[^A-Za-z0-9]/_}$absent"
        [ -n "$absent" ] || printf 'old content\n' >f
        [ -n "$absent" ] || arm f
        shim "$mode" "$d/f" "$helpers/freopen_mode" "$fmode" f 2>err
        rc=$?
        expect_status "$t" "$want_status" "$rc"
        if [ "$want_status" = 10 ]; then
            expect_unchanged "$t" f
        elif [ -n "$absent" ]; then
            expect_content "$t" f "$want"
        else
            expect_replaced "$t" f "$want"
        fi
        expect_entries "$t: nothing left behind" "$d" f err
    done
}

case_ wx 10 $'old content\n'
case_ w+x 10 $'old content\n'
case_ wx 0 $'new\n' absent
case_ we 0 $'new\n'
case_ w 0 $'new\n'
case_ ae 0 $'old content\nnew\n'
case_ r+ 0 $'new\ncontent\n'

finish
