#!/bin/bash
# Injected faults on every step of a replacement, through faultfs, for the
# core C API (driver) and for real programs under the shim. After a fault the
# writer reports an error, the target is byte-for-byte the old content, no
# temp file is left in the backing directory, and the lock is released (no
# lock file; a second writer with timeout 0 succeeds). Exceptions, each
# asserted as such: a failing fsyncdir after the rename (DESIGN section 4:
# reported, new content in place); a rename that fails after it happened;
# and the documented fallbacks (rename EBUSY, temp creation EACCES) that
# commit in place.
# Usage: fault_test.sh FAULTFS|none DRIVER PRELOAD_OBJECT
usage="fault_test.sh FAULTFS|none DRIVER PRELOAD_OBJECT"
[ $# -eq 3 ] || { echo "usage: $usage" >&2; exit 1; }
faultfs=$1
driver=$(realpath "$2") || exit 1
preload=$(realpath "$3") || exit 1
. "$(dirname "$0")/lib.sh"

mount_faultfs

declare -A message=(
    [EIO]="Input/output error" [ENOSPC]="No space left on device" [EDQUOT]="Disk quota exceeded"
    [EXDEV]="Invalid cross-device link" [EACCES]="Permission denied" [EPERM]="Operation not permitted"
)

# The writers, each: WRITER DIR -> writes "new" to DIR/f (append: adds it).
write_driver() { "$driver" write "$mnt/$1/f" new; }
write_append() { "$driver" append "$mnt/$1/f" new; }
write_cp() { LD_PRELOAD=$preload WRAP_LOCKFILE_RULES='*' cp "$tmp/src" "$mnt/$1/f"; }
# The redirection is opened by the shell and committed by cat after execve.
write_shell() { LD_PRELOAD=$preload WRAP_LOCKFILE_RULES='*' sh -c 'exec cat "$1" > "$2"' sh "$tmp/src" "$mnt/$1/f"; }
printf new >"$tmp/src"

# --- the log itself ---------------------------------------------------------
mkdir "$mnt/log" || exit 1
"$driver" write "$mnt/log/f" old >/dev/null || fail "log: setup write"
ctl reset-log "mark start"
"$driver" write "$mnt/log/f" new >/dev/null || fail "log: write"
ctl "mark done"
dump_log >"$tmp/log.txt"
# The replacement's steps, in order, on the temp's inode then the directory.
steps=$(awk '$2 ~ /^(mark|rename|fsyncdir)$/ || ($2 ~ /^(create|write|fsync|unlink)$/ && $3 ~ /~~$/) {print $2}' \
    "$tmp/log.txt" | tr '\n' ' ')
[ "$steps" = "mark create write fsync rename fsyncdir mark " ] ||
    { fail "log: replacement steps are [$steps]"; cat "$tmp/log.txt"; }
temp_ino=$(awk '$2 == "create" && $3 ~ /~~$/ {sub("ino=", "", $4); print $4}' "$tmp/log.txt")
renamed_ino=$(awk '$2 == "rename" {for (i = 3; i <= NF; i++) if ($i ~ /^ino=/) {sub("ino=", "", $i); print $i}}' \
    "$tmp/log.txt")
[ -n "$temp_ino" ] && [ "$temp_ino" = "$renamed_ino" ] && [ "$temp_ino" = "$(stat -c %i "$backing/log/f")" ] ||
    fail "log: the temp's inode ($temp_ino) is not the one renamed ($renamed_ino) and now the target"
grep -q ' write path=log/.f.*~~ .* off=0 len=3 res=3 data=6e6577$' "$tmp/log.txt" ||
    fail "log: write of 'new' not recorded"

# --- short writes are not errors: the writers retry ----------------------------
n=0
for writer in driver append cp shell; do
    n=$((n + 1)); d=short$n
    mkdir "$mnt/$d" && printf old >"$mnt/$d/f" || exit 1
    ctl "fault write $d/*~~ OK short=1"
    out=$("write_$writer" "$d" 2>&1); rc=$?
    ctl clear
    [ $rc -eq 0 ] || fail "short write, $writer: exit $rc: $out"
    expect_content "$backing/$d/f" "$([ $writer = append ] && echo oldnew || echo new)" "short write, $writer"
    expect_only "$backing/$d" "short write, $writer" f
done

# --- faults -----------------------------------------------------------------
# OP GLOB(relative to the case dir; @ = the dir itself) ERRNO OPTIONS EXPECT
#   EXPECT: old      error, old content
#           new-err  error, new content (the step failed after the rename)
#           new-ok   success, new content (a documented in-place fallback)
cases=(
    "write *~~ EIO - old"
    "write *~~ ENOSPC - old"
    "write *~~ EDQUOT - old"
    "write *~~ EIO after old"
    "write *~~ ENOSPC nth=2 old"
    "fsync *~~ EIO - old"
    "fsync *~~ EIO after old"
    "create *~~ ENOSPC - old"
    "create *~~ EDQUOT - old"
    "create f.lock EIO - old"
    "chmod *~~ EPERM - old"
    "rename *~~ EIO - old"
    "rename *~~ EXDEV - old"
    "rename *~~ EIO after new-err"
    "fsyncdir @ EIO - new-err"
    "fsyncdir @ EIO after new-err"
    "rename *~~ EBUSY - new-ok"
    "create *~~ EACCES - new-ok"
)
for c in "${cases[@]}"; do
    read -r op glob err opts expect <<<"$c"
    [ "$opts" = - ] && opts=
    for writer in driver append cp shell; do
        # Only an append writes the temp twice (the copied old content, then
        # the new): the other writers never reach a second write.
        if [ "$opts" = nth=2 ] && [ $writer != append ]; then continue; fi
        n=$((n + 1)); d=c$n
        what="$op $glob $err $opts, $writer"
        mkdir "$mnt/$d" && printf old >"$mnt/$d/f" && chmod 640 "$mnt/$d/f" || exit 1
        ino_before=$(stat -c %i "$backing/$d/f")
        g=$d/$glob; [ "$glob" = @ ] && g=$d
        ctl "fault $op $g $err $opts"
        out=$("write_$writer" "$d" 2>&1); rc=$?
        ctl clear
        new=new; [ $writer = append ] && new=oldnew
        case $expect in
        old)
            expect_content "$backing/$d/f" old "$what" ;;
        new-*)
            expect_content "$backing/$d/f" "$new" "$what" ;;
        esac
        if [ "$expect" = new-ok ]; then
            [ $rc -eq 0 ] || fail "$what: exit $rc: $out"
            # In place: the same inode, as the fallback promises.
            [ "$(stat -c %i "$backing/$d/f")" = "$ino_before" ] || fail "$what: not written in place"
        else
            [ $rc -ne 0 ] || fail "$what: the writer succeeded: $out"
            if [ $writer = driver ] || [ $writer = append ]; then
                [[ "$out" == *"errno="*" $err"* ]] || fail "$what: driver output lacks $err: $out"
            else
                [[ "$out" == *"${message[$err]}"* ]] || fail "$what: program output lacks '${message[$err]}': $out"
            fi
        fi
        [ "$(stat -c %a "$backing/$d/f")" = 640 ] || fail "$what: mode is $(stat -c %a "$backing/$d/f")"
        expect_only "$backing/$d" "$what" f
        out=$("$driver" --timeout 0 write "$mnt/$d/f" again 2>&1) || fail "$what: second writer: $out"
        expect_content "$backing/$d/f" again "$what, second writer"
    done
done

# Faultfs itself must have stayed up throughout.
kill -0 "$fs_pid" 2>/dev/null || fail "faultfs died: $(cat "$tmp/faultfs.log")"
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "PASS: $n cases"
