#!/bin/bash
# Crash states of durability batch, and of a program's own rename onto a
# matched target (README "Durability"; docs/design.md, "Batch durability").
# As crash_test.sh: each writer runs between the marks "begin" and
# "committed" on faultfs, and faultfs_crashcheck replays the log under the
# posix, ext4 and harsh models. Batch fsyncs each temp before its name
# appears and defers the directory fsyncs: at every point each target holds
# exactly its old or its new content, and from the "committed" mark on
# (after the program has exited, or, where the program writes the mark
# itself, after its own fsync or wlf_sync_pending()) only the new one. The
# mutants prove the check has teeth: without the temp fsync (violations but
# under ext4, whose auto_da_alloc covers a rename onto an existing name),
# and without the deferred directory fsyncs (violations everywhere).
# sed -i and perl -i rename their own temps onto the target: under the shim
# with --fsync full or batch no violation; without the shim, violations.
# Usage: batch_crash_test.sh FAULTFS|none CRASHCHECK PRELOAD_OBJECT DRIVER NAME=MUTANT_DRIVER...
command -v perl >/dev/null || { echo "SKIP: perl is not installed"; exit 77; }
. "$(dirname "$0")/crash_lib.sh" "$@"
control=$mnt/.faultfs-control

# Rules "f;g": the control file must stay out of the shim's hands.
shim_with() { local fsync=$1; shift; LD_PRELOAD=$preload WRAP_LOCKFILE_RULES='f;g' WRAP_LOCKFILE_FSYNC=$fsync "$@"; }
core_batch() { "$1" --fsync batch write "$3" "$2"; }
# perl_write HOW PATH...: one process writes "new" into each path with
# open/print/close, then leaves by HOW: exit, _exit, exec (of true), or
# sync (fsync of a descriptor, then it writes the "committed" mark itself).
perl_write() {
    perl -MPOSIX -MIO::Handle -e '
        my ($how, $control, @paths) = @ARGV;
        for my $p (@paths) { open(my $f, ">", $p) or die "$p: $!"; print $f "new"; close($f) or die "$p: $!"; }
        if ($how eq "sync") {
            open(my $d, "<", $paths[0]) or die; $d->sync or die "fsync: $!";
            open(my $c, ">>", $control) or die; print $c "mark committed\n"; close($c) or die;
        }
        POSIX::_exit(0) if $how eq "_exit";
        exec("true") or die "exec: $!" if $how eq "exec";
        exit 0;' "$@"
}

# ---- the core C API
run_case "core, batch, replace" clean old new core_batch "$driver" new
run_case "core, batch, new file" clean - new core_batch "$driver" new
targets=(a/f a/g b/f)
run_case "core, batch, 3 files in 2 directories" clean old new "$driver" --fsync batch write-all new
run_case "core, batch, 3 files, wlf_sync_pending then _exit" clean old new \
    "$driver" --fsync batch write-sync-exit "$control" new
# More directories than the registry's 64 slots: flushed early, never dropped.
targets=()
for i in $(seq 70); do targets+=("d$i/f"); done
run_case "core, batch, 70 directories, wlf_sync_pending then _exit" clean old new \
    "$driver" --fsync batch write-sync-exit "$control" new
targets=(f)
[ ${#mutants[@]} -gt 0 ] || fail "no mutant drivers given"
for m in "${mutants[@]}"; do
    case ${m%%=*} in
    no_temp_fsync) expect="violations clean violations" ;;
    no_dir_fsync) expect=clean ;;  # full's own directory fsync: not batch's
    *) expect=violations ;;
    esac
    run_case "mutant ${m%%=*}, batch" "$expect" old new core_batch "${m#*=}" new
done
for m in "${mutants[@]}"; do
    [ "${m%%=*}" = no_batch_dir_sync ] || continue
    targets=(a/f b/f)
    run_case "mutant ${m%%=*}, wlf_sync_pending then _exit" violations old new \
        "${m#*=}" --fsync batch write-sync-exit "$control" new
    targets=(f)
done

# ---- the shim: one process, several files, each way out of it
run_case "shim batch, cp" clean old new shim_with batch cp "$tmp/src"
run_case "shim batch, cp, new file" clean - new shim_with batch cp "$tmp/src"
targets=(a/f a/g b/f)
for how in exit _exit exec sync; do
    run_case "shim batch, perl writes 3 files in 2 directories, then $how" clean old new \
        shim_with batch perl_write $how "$control"
done
run_case "shim batch, 3 new files, then _exit" clean - new shim_with batch perl_write _exit "$control"
targets=(f)

# ---- a program's own rename onto a matched target
# Without the shim nothing fsyncs: violations under every model.
allow=('sed*')
old_mode=600
run_case "sed -i without the shim" violations old new sed -i s/old/new/
run_case "shim full, sed -i" clean old new shim_with full sed -i s/old/new/
run_case "shim batch, sed -i" clean old new shim_with batch sed -i s/old/new/
allow=('XX*')
old_mode=640
run_case "perl -i without the shim" violations old new perl -i -pe s/old/new/
run_case "shim full, perl -i" clean old new shim_with full perl -i -pe s/old/new/
run_case "shim batch, perl -i" clean old new shim_with batch perl -i -pe s/old/new/
allow=()
old_mode=640

# A failing fsync of the renamed file refuses the program's rename: the old
# content stays, and the program hears of it (sed exits non-zero).
mkdir "$mnt/eio" && printf old >"$mnt/eio/f" || exit 1
ctl "fault fsync eio/sed* EIO"
shim_with full sed -i s/old/new/ "$mnt/eio/f" 2>"$tmp/eio.err" && fail "sed -i, renamed file's fsync EIO: sed succeeded"
ctl clear
expect_content "$backing/eio/f" old "sed -i, renamed file's fsync EIO"

kill -0 "$fs_pid" 2>/dev/null || fail "faultfs died: $(cat "$tmp/faultfs.log")"
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "PASS: $n cases"
