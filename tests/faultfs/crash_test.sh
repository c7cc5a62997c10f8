#!/bin/bash
# Crash states of one replacement: each writer replaces a file on faultfs
# between the marks "begin" and "committed"; faultfs_crashcheck replays the
# log under a strict POSIX durability model and checks every crash state
# (see crashcheck.cpp). The real core, and a real program under the shim,
# must give no violation; each mutant of the core (one fsync compiled out)
# must give at least one: the check has teeth.
# Usage: crash_test.sh FAULTFS|none CRASHCHECK PRELOAD_OBJECT DRIVER NAME=MUTANT_DRIVER...
usage="crash_test.sh FAULTFS|none CRASHCHECK PRELOAD_OBJECT DRIVER NAME=MUTANT_DRIVER..."
[ $# -ge 4 ] || { echo "usage: $usage" >&2; exit 1; }
faultfs=$1
crashcheck=$(realpath "$2") || exit 1
preload=$(realpath "$3") || exit 1
driver=$(realpath "$4") || exit 1
shift 4
mutants=("$@")
. "$(dirname "$0")/lib.sh"

mount_faultfs
printf new >"$tmp/src"
n=0

# run_case WHAT EXPECT OLD(-: none) NEW WRITER...: WRITER gets the target
# path appended. EXPECT: clean (no violation) or violations.
run_case() {
    local what=$1 expect=$2 old=$3 new=$4; shift 4
    n=$((n + 1))
    local d=k$n old_args=(--old "$old") mode=640
    # The log starts empty, so the model sees the old file being made.
    ctl reset-log
    mkdir "$mnt/$d" || exit 1
    if [ "$old" = - ]; then
        old_args=(--old-absent)
        mode=644
    else
        "$driver" write "$mnt/$d/f" "$old" >/dev/null && chmod 640 "$mnt/$d/f" || { fail "$what: setup"; return; }
    fi
    # The model takes everything before "begin" as durable: make it so.
    sync -f "$backing" || exit 1
    ctl "mark begin"
    local out
    out=$("$@" "$mnt/$d/f" 2>&1) || { fail "$what: the writer failed: $out"; return; }
    ctl "mark committed"
    dump_log >"$tmp/$d.log"
    out=$("$crashcheck" "$tmp/$d.log" --target "$d/f" "${old_args[@]}" --new "$new" --mode $mode)
    local rc=$?
    echo "$what: $(echo "$out" | tail -1)"
    case $expect:$rc in
    clean:0 | violations:1) ;;
    clean:*) fail "$what: exit $rc, expected no violation:"; echo "$out"; cat "$tmp/$d.log" ;;
    *) fail "$what: exit $rc, expected violations:"; echo "$out" ;;
    esac
}

shim() { LD_PRELOAD=$preload WRAP_LOCKFILE_RULES='*' "$@"; }
driver_write() { "$1" write "$3" "$2"; }
driver_append() { "$1" append "$3" "$2"; }

run_case "core, replace" clean old new driver_write "$driver" new
run_case "core, append" clean old oldnew driver_append "$driver" new
run_case "core, new file" clean - new driver_write "$driver" new
run_case "shim, cp" clean old new shim cp "$tmp/src"
run_case "shim, cp, new file" clean - new shim cp "$tmp/src"
[ ${#mutants[@]} -gt 0 ] || fail "no mutant drivers given"
for m in "${mutants[@]}"; do
    run_case "mutant ${m%%=*}" violations old new driver_write "${m#*=}" new
done

kill -0 "$fs_pid" 2>/dev/null || fail "faultfs died: $(cat "$tmp/faultfs.log")"
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "PASS: $n cases"
