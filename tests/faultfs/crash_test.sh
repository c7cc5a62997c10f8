#!/bin/bash
# Crash states of one replacement: each writer replaces a file on faultfs
# between the marks "begin" and "committed"; faultfs_crashcheck replays the
# log under each crash model (posix: strict POSIX durability; ext4: adds
# auto_da_alloc and in-order journal commits; harsh: non-atomic renames and
# torn writes; see crashcheck.cpp) and checks every crash state. The real
# core, and a real program under the shim, must give no violation under any
# model; each mutant of the core (one fsync compiled out) must give at least
# one under posix and harsh, and under ext4 exactly where ext4 does not
# cover for it: the check has teeth. A temp fsync that faultfs drops (reports
# success, syncs nothing) must give violations under every model: the
# harness sees the lie, which no user-space program can defend against.
# Usage: crash_test.sh FAULTFS|none CRASHCHECK PRELOAD_OBJECT DRIVER NAME=MUTANT_DRIVER...
. "$(dirname "$0")/crash_lib.sh" "$@"

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
    case ${m%%=*} in
    # ext4's auto_da_alloc flushes the data of a file renamed onto an
    # existing name: the missing temp fsync is covered there (only there).
    no_temp_fsync) expect="violations clean violations" ;;
    # A step of durability batch only: batch_crash_test.sh.
    no_batch_dir_sync) continue ;;
    *) expect=violations ;;
    esac
    run_case "mutant ${m%%=*}" "$expect" old new driver_write "${m#*=}" new
done

# A lying fsync: faultfs reports success for the temp's fsync and syncs
# nothing. The writer succeeds (it cannot tell), and the checker must find
# states where the committed target lacks its data. No user-space program
# can defend against this; the case proves the harness models it.
rule="fault fsync GLOB*~~ OK drop"
run_case "core, temp fsync dropped" violations old new driver_write "$driver" new
run_case "core, new file, temp fsync dropped" violations - new driver_write "$driver" new
rule=

kill -0 "$fs_pid" 2>/dev/null || fail "faultfs died: $(cat "$tmp/faultfs.log")"
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "PASS: $n cases"
