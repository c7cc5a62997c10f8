#!/bin/bash
# Injected faults on every step of a replacement, through faultfs, for the
# core C API (driver) and for real programs under the shim. After a fault the
# writer reports an error, the target is byte-for-byte the old content, no
# temp file is left in the backing directory, and the lock is released (no
# lock file; a second writer with timeout 0 succeeds). Exceptions, each
# asserted as such: a failing fsyncdir after the rename (docs/design.md, step 7:
# reported, new content in place); a rename that fails after it happened;
# and the documented fallbacks (rename EBUSY, temp creation EACCES) that
# commit in place. Then: faultfs's kill (SIGKILL to the writer mid-step)
# and delay (a second writer meets the lock while the first sleeps inside
# its fsync). A dropped fsync that lies (drop with OK) is crash_test.sh's.
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

# --- a stale handle is retried: GlusterFS answers EBADFD (77) for a target -----
# another client replaced; under the lock the writer stats and opens again
# (README "Shared file systems"). faultfs is FUSE: a shared file system.
for op in open; do
    n=$((n + 1)); d=stale$n
    mkdir "$mnt/$d" && printf old >"$mnt/$d/f" || exit 1
    ctl "fault $op $d/f 77 count=1"
    out=$(write_append "$d" 2>&1); rc=$?
    ctl clear
    [ $rc -eq 0 ] || fail "EBADFD once on $op of the target: exit $rc: $out"
    expect_content "$backing/$d/f" oldnew "EBADFD once on $op of the target"
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
    "fsync *~~ EIO drop old"
    "fsync *~~ EIO delay=20 old"
    "write *~~ EIO delay=20 old"
    "create *~~ ENOSPC - old"
    "create *~~ EDQUOT - old"
    "create f.lock EIO - old"
    "chmod *~~ EPERM - old"
    "rename *~~ EIO - old"
    "rename *~~ EXDEV - old"
    "rename *~~ EIO after new-err"
    "fsyncdir @ EIO - new-err"
    "fsyncdir @ EIO after new-err"
    "fsyncdir @ EIO drop new-err"
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
                # The step (wlf_error.step) tells what became of the target.
                if [ "$op" = fsyncdir ]; then
                    [[ "$out" == *" step=fsync_dir" ]] || fail "$what: step is not fsync_dir: $out"
                elif [ "$expect" = old ]; then
                    case $out in
                    *" step=fsync_dir" | *" step=in_place" | *" step=unlock" | *" step=none")
                        fail "$what: the step says the target changed: $out" ;;
                    esac
                fi
            else
                [[ "$out" == *"${message[$err]}"* ]] || fail "$what: program output lacks '${message[$err]}': $out"
                # The shim words its message from the step: replaced, or kept.
                if [ "$op" = fsyncdir ]; then
                    [[ "$out" == *"replaced, but not durably"* ]] || fail "$what: the shim did not say so: $out"
                fi
            fi
        fi
        [ "$(stat -c %a "$backing/$d/f")" = 640 ] || fail "$what: mode is $(stat -c %a "$backing/$d/f")"
        expect_only "$backing/$d" "$what" f
        out=$("$driver" --timeout 0 write "$mnt/$d/f" again 2>&1) || fail "$what: second writer: $out"
        expect_content "$backing/$d/f" again "$what, second writer"
    done
done

# --- the program's own fsync fails once ----------------------------------------
# dd conv=fsync sees EIO from its fsync of the temp; the commit's fsync later
# succeeds (count=1), and the kernel reports a writeback error once per open
# file, which the shim's duplicate shares: only the shim watching the
# program's fsync keeps the old content.
for sync in fsync fdatasync; do
    n=$((n + 1)); d=c$n
    mkdir "$mnt/$d" && printf old >"$mnt/$d/f" || exit 1
    ctl "fault fsync $d/*~~ EIO count=1"
    out=$(LD_PRELOAD=$preload WRAP_LOCKFILE_RULES='*' dd if="$tmp/src" of="$mnt/$d/f" conv=$sync status=none 2>&1)
    rc=$?
    ctl clear
    [ $rc -ne 0 ] || fail "dd conv=$sync with a failing fsync: exited 0: $out"
    expect_content "$backing/$d/f" old "dd conv=$sync with a failing fsync"
    expect_only "$backing/$d" "dd conv=$sync with a failing fsync" f
done

# --- SIGKILL mid-replacement ---------------------------------------------------
# faultfs kills the writer at a step, before doing it (or, "after", once it
# is done). The target keeps its old bytes and mode (the new once the rename
# happened), and the lock is free: a second writer with timeout 0 succeeds.
# Leftovers: FUSE has no O_TMPFILE, so the core uses a named temp, which a
# SIGKILL necessarily leaves behind (nothing runs to unlink it), as it may
# leave the lock file; both must be recognisable, nothing else may be there.
# The temp of a lock holder has the per-target name ".f._pending~~": the
# next writer (who holds the lock, so the killed one is gone) removes it,
# and the lock file goes at its release: after it, f is alone.
# OP GLOB OPTIONS(- none) EXPECT(old|new) TEMP(temp: a temp must be left)
kills=(
    "create f.lock - old -"
    "create *~~ - old -"
    "write *~~ - old temp"
    "fsync *~~ - old temp"
    "rename *~~ - old temp"
    "rename *~~ after new -"
    "fsyncdir @ - new -"
)
for c in "${kills[@]}"; do
    read -r op glob opts expect temp <<<"$c"
    [ "$opts" = - ] && opts=
    for writer in driver cp; do
        n=$((n + 1)); d=k$n
        what="kill at $op $glob $opts, $writer"
        mkdir "$mnt/$d" && printf old >"$mnt/$d/f" && chmod 640 "$mnt/$d/f" || exit 1
        g=$d/$glob; [ "$glob" = @ ] && g=$d
        ctl "fault $op $g OK kill $opts"
        out=$("write_$writer" "$d" 2>&1); rc=$?
        ctl clear
        [ $rc -eq 137 ] || fail "$what: exit $rc, expected 137 (SIGKILL): $out"
        expect_content "$backing/$d/f" "$expect" "$what"
        [ "$(stat -c %a "$backing/$d/f")" = 640 ] || fail "$what: mode is $(stat -c %a "$backing/$d/f")"
        temps=0
        for e in $(cd "$backing/$d" && ls -A); do
            case $e in
            f | f.lock) ;;
            .f._pending~~) temps=$((temps + 1)) ;;
            *) fail "$what: unrecognisable leftover '$e'" ;;
            esac
        done
        if [ "$temp" = temp ] && [ $temps -ne 1 ]; then fail "$what: $temps temps left, expected the killed one"; fi
        if [ "$temp" = - ] && [ $temps -ne 0 ]; then fail "$what: $temps temps left, expected none"; fi
        out=$("$driver" --timeout 0 write "$mnt/$d/f" again 2>&1) || fail "$what: second writer: $out"
        expect_content "$backing/$d/f" again "$what, second writer"
        expect_only "$backing/$d" "$what, after the second writer" f
    done
done
dump_log | grep -Eq ' fault=killed( |$)' || fail "kill: no fault=killed in the log"
dump_log | grep -Eq ' fault=killed-after( |$)' || fail "kill: no fault=killed-after in the log"

# --- a held dotlock whose lookups answer a stale handle ------------------------
# A shared file system's client answers ESTALE, or EBADFD (GlusterFS's FUSE
# client), for a lock file that its holder on another client removed between
# the lookup and the attributes. A waiter takes that as "not free yet", as
# it takes ENOENT: here the lookups of a live holder's lock (liblockfile's
# "<pid>" of this shell) answer so three times in a row, and the waiter
# reports the lock held when its timeout ends; nothing else is touched.
n=$((n + 1)); d=stale
mkdir "$mnt/$d" && printf old >"$mnt/$d/f" && echo $$ >"$mnt/$d/f.lock" || exit 1
for e in EBADFD ESTALE; do
    ctl "fault getattr $d/f.lock $e count=3"
    out=$("$driver" --backend dotlock --timeout 0.3 write "$mnt/$d/f" new 2>&1); rc=$?
    ctl clear
    [ $rc -eq 1 ] && [[ "$out" == *" ETIMEDOUT step=lock"* ]] ||
        fail "stale $e: a held dotlock's stale lookup is not a wait that times out: $out"
done
expect_content "$backing/$d/f" old "stale"
expect_content "$backing/$d/f.lock" "$$
" "stale lock"
rm "$mnt/$d/f.lock"
out=$("$driver" --backend dotlock --timeout 0 write "$mnt/$d/f" new 2>&1) || fail "stale: free lock not taken: $out"
expect_content "$backing/$d/f" new "stale"
expect_only "$backing/$d" "stale" f

# --- a dotlock's own files answer a stale handle ------------------------------
# Any one lookup of the lock file or of the writer's dotlock temporary
# (".lk<pid>...") answering a stale handle twice (the kernel looks a name
# up twice): the writer (one try) may succeed or fail, but it leaves
# neither file behind, and the old or the new content whole. Before, a
# stale look right after the writer's link() made it report the lock held
# (or the error) with its lock file left in place, where a live writer's
# blocks every other one; a stale create or unlink of the temporary left
# the temporary; and a stale unlink at the release left the lock file.
for glob in f.lock '.lk*'; do
    for nth in $(seq 10); do
        n=$((n + 1)); d=stale-dotlock-$n
        mkdir "$mnt/$d" && printf old >"$mnt/$d/f" || exit 1
        ctl "fault getattr $d/$glob EBADFD nth=$nth count=2"
        out=$("$driver" --backend dotlock --timeout 0 write "$mnt/$d/f" new 2>&1); rc=$?
        ctl clear
        expect_content "$backing/$d/f" "$([ $rc -eq 0 ] && echo new || echo old)" "stale dotlock $glob nth=$nth: $out"
        expect_only "$backing/$d" "stale dotlock $glob nth=$nth: $out" f
    done
done

# --- a flock lock file answers a stale handle -----------------------------------
# The same for the flock backend, whose lock file stays on a shared file
# system (faultfs is FUSE): any one lookup or stat of the existing f.lock
# answering EBADFD twice is retried, at the lock and at the commit's check
# that the lock file is still ours, and the write succeeds. Before, a stale
# fstat or lstat of the locked file failed the lock, and a stale look at
# the commit failed it as "the directory was renamed or replaced".
for nth in $(seq 12); do
    n=$((n + 1)); d=stale-flock-$n
    mkdir "$mnt/$d" && printf old >"$mnt/$d/f" || exit 1
    "$driver" --backend flock write "$mnt/$d/f" old >/dev/null || fail "stale flock nth=$nth: setup write"
    ctl "fault getattr $d/f.lock EBADFD nth=$nth count=2"
    out=$("$driver" --backend flock --timeout 0 write "$mnt/$d/f" new 2>&1) || fail "stale flock nth=$nth: $out"
    ctl clear
    expect_content "$backing/$d/f" new "stale flock nth=$nth"
    expect_only "$backing/$d" "stale flock nth=$nth" f
done

# --- a flock lock file hidden by a cached negative entry ---------------------
# For half a second every lookup and stat of the existing f.lock answers
# ENOENT, as a shared file system's cached negative entry does until the
# cache times out, while O_EXCL finds the file (EEXIST). The lock waits
# that out and the write succeeds. Before, the open's 1000 tries in a row
# were over within milliseconds: ENOLCK, "lock file keeps changing".
n=$((n + 1)); d=negative
mkdir "$mnt/$d" && printf old >"$mnt/$d/f" || exit 1
"$driver" --backend flock write "$mnt/$d/f" old >/dev/null || fail "negative entry: setup write"
[ -e "$backing/$d/f.lock" ] || fail "negative entry: no lock file kept on faultfs (a FUSE mount)"
ctl "fault getattr $d/f.lock ENOENT for=500"
out=$("$driver" --backend flock write "$mnt/$d/f" new 2>&1) || fail "negative entry: $out"
ctl clear
expect_content "$backing/$d/f" new "negative entry"
expect_only "$backing/$d" "negative entry" f

# --- delay: a second writer meets the lock ------------------------------------
# Threaded, so the first writer's delayed fsync holds up nobody else. The
# second writer (timeout 0) starts once faultfs has logged that the first is
# sleeping in its temp's fsync (it holds the lock by then); the log must show
# the second writer's whole run between the start and the end of that fsync.
kill -0 "$fs_pid" 2>/dev/null || fail "faultfs died: $(cat "$tmp/faultfs.log")"
unmount
mount_faultfs threaded
n=$((n + 1)); d=dl
mkdir "$mnt/$d" && printf old >"$mnt/$d/f" || exit 1
ctl reset-log "fault fsync $d/*~~ OK delay=2000"
"$driver" write "$mnt/$d/f" first >"$tmp/first.out" 2>&1 &
first=$!
await_delay "$d/.f.*~~" fsync
ctl "mark second-start"
out=$("$driver" --timeout 0 write "$mnt/$d/f" second 2>&1); rc=$?
ctl "mark second-end"
wait $first; rc1=$?
ctl clear
dump_log >"$tmp/delay.log"
[ $rc1 -eq 0 ] || fail "delay: the first writer failed: $(cat "$tmp/first.out")"
[ $rc -ne 0 ] || fail "delay: the second writer succeeded while the first held the lock: $out"
[[ "$out" == *"errno="*" EAGAIN"* ]] || fail "delay: the second writer's error is not EAGAIN: $out"
order=$(awk -v d="$d" '$2 == "delay" {print "delay"}
    $2 == "mark" {sub("label=", "", $3); print $3}
    $2 == "fsync" && $3 ~ "^path=" d "/\\.f\\..*~~$" {print "fsync-end"}' "$tmp/delay.log" | tr '\n' ' ')
[ "$order" = "delay second-start second-end fsync-end " ] ||
    { fail "delay: log order is [$order], expected the second writer inside the first's fsync"; cat "$tmp/delay.log"; }
grep -q " fsync path=$d/.f.*~~ .* fault=delayed" "$tmp/delay.log" || fail "delay: fsync not logged as delayed"
expect_content "$backing/$d/f" first "delay"
expect_only "$backing/$d" "delay" f
out=$("$driver" --timeout 0 write "$mnt/$d/f" again 2>&1) || fail "delay: lock not free afterwards: $out"

# --- a target replaced meanwhile, its lookup at the commit stale --------------
# A writer that does not lock renames another file over the target while
# the replacement is pending (here: in the backing directory, while the
# first writer sleeps in its temp's fsync), and the commit's look at the
# target answers a stale handle (EBADFD from GlusterFS, ESTALE): that is no
# sign of the file looked at under the lock. Looked at again, it is not:
# the commit fails with ESTALE and the other writer's file stays
# (docs/design.md, step 7).
# As many faults as the commit's one fstatat meets: the kernel looks a name
# up twice, and once more after ESTALE (retry_estale).
for fault in EBADFD:2 ESTALE:3; do
    e=${fault%:*}
    n=$((n + 1)); d=stale-commit-$e
    mkdir "$mnt/$d" && printf old >"$mnt/$d/f" || exit 1
    ctl reset-log "fault fsync $d/*~~ OK delay=500"
    "$driver" write "$mnt/$d/f" new >"$tmp/stale-commit.out" 2>&1 &
    writer=$!
    await_delay "$d/.f.*~~" fsync
    printf theirs >"$backing/$d/g" && mv "$backing/$d/g" "$backing/$d/f" || exit 1
    ctl "fault getattr $d/f $e count=${fault#*:}"
    wait $writer; rc=$?
    ctl clear
    out=$(cat "$tmp/stale-commit.out")
    [ $rc -eq 1 ] && [[ "$out" == *" ESTALE step=rename" ]] ||
        fail "stale commit $e: a replaced target's stale lookup is not a refused commit: exit $rc: $out"
    expect_content "$backing/$d/f" theirs "stale commit $e"
    expect_only "$backing/$d" "stale commit $e" f
done

# --- the lock's choice meets a stale directory ---------------------------------
# Mounted as fuse.sshfs, where the lock choice (WLF_LOCK_AUTO) takes a
# dotlock: flock would stay on this client (README "Shared file systems").
# The choice looks at the lock file's directory; a stale handle there
# (EBADFD from GlusterFS, ESTALE) is no answer about the mount. Taken for
# "cannot be told" (flock), the writer's probe locked a lock file of its
# own with flock, which stays on a shared file system: every dotlock
# writer after it took that file for a lock held, for good.
kill -0 "$fs_pid" 2>/dev/null || fail "faultfs died: $(cat "$tmp/faultfs.log")"
unmount
mount_faultfs subtype=sshfs
for fault in EBADFD:2 ESTALE:3; do
    e=${fault%:*}
    n=$((n + 1)); d=stale-choice-$e
    mkdir "$mnt/$d" && printf old >"$mnt/$d/f" || exit 1
    ctl "fault getattr $d $e count=${fault#*:}"
    out=$("$driver" --backend auto --timeout 0 write "$mnt/$d/f" new 2>&1) || fail "stale choice $e: $out"
    ctl clear
    expect_content "$backing/$d/f" new "stale choice $e"
    [ ! -e "$backing/$d/f.lock" ] || fail "stale choice $e: a lock file stayed on a dotlock mount"
    out=$("$driver" --backend dotlock --timeout 0 write "$mnt/$d/f" again 2>&1) ||
        fail "stale choice $e: the next dotlock writer: $out"
    expect_content "$backing/$d/f" again "stale choice $e, the next dotlock writer"
done

# Faultfs itself must have stayed up throughout.
kill -0 "$fs_pid" 2>/dev/null || fail "faultfs died: $(cat "$tmp/faultfs.log")"
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "PASS: $n cases"
