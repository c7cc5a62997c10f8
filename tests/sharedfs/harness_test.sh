#!/usr/bin/env bash
# The GlusterFS harness (lib.sh) itself: a default and a coherent volume,
# each mounted by two clients that see each other's files; flock and rename across the clients behave as the
# tests expect; and a run that fails, is interrupted or is killed (SIGKILL,
# as a runner's timeout does) leaves nothing behind: no daemon, no mount, no
# network namespace, no socket, no brick.
# Usage: harness_test.sh CLIENT PLAIN ATOMICALLY PRELOAD
here=$(cd "$(dirname "$0")" && pwd)

# Child mode: set up one volume, report what exists, then end badly.
if [ "${1:-}" = child ]; then
    how=$2 report=$3
    # shellcheck source=lib.sh
    . "$here/lib.sh"
    gfs_start
    gfs_volume v default
    {
        echo "dir $gfs_dir"
        echo "netns $(stat -L -c %i "/run/netns/$gfs_ns")"
        echo "pids $(gfs_daemon_pids | tr '\n' ' ')"
    } >"$report"
    case $how in
        fail) exit 1 ;;
        term) kill -TERM $$; sleep 10; exit 0 ;;
        kill) kill -KILL $$ ;;  # no trap runs: the reaper's turn
    esac
fi

# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=checks.sh
. "$here/checks.sh"
atomically=$(realpath "$3") || exit 1
export WRAP_LOCKFILE_PRELOAD
WRAP_LOCKFILE_PRELOAD=$(realpath "$4") || exit 1
unset WRAP_LOCKFILE_LOCK_BACKEND WRAP_LOCKFILE_KEEP_LOCK_FILES WRAP_LOCKFILE_RULES WRAP_LOCKFILE_CONFIG LD_PRELOAD

# The timed setup of all three configurations is the exclusion test's.
gfs_start
gfs_volume def default
gfs_volume coh coherent
echo "setup of glusterd and two volumes: $(gfs_elapsed) ms"

for v in def coh; do
    ma=$(gfs_mount $v a)
    mb=$(gfs_mount $v b)
    [ "$(stat -f -c %t "$ma")" = 65735546 ] || fail "$v: mount a is not FUSE"
    [ "$(stat -c %d "$ma")" != "$(stat -c %d "$mb")" ] || fail "$v: both mount points are one client"
    # A lock taken through one client excludes the other.
    echo x >"$ma/f"
    flock -n "$ma/f" flock -n "$mb/f" true && fail "$v: flock on mount b ignored the lock held through mount a"
    flock -n "$ma/f" true || fail "$v: flock on an unlocked file failed"
    # The shim's default (auto) takes flock here (Gluster's lock manager
    # sees it across clients): an empty lock file, kept on a shared file system.
    echo old >"$ma/g"
    "$atomically" --rule "$ma/g" -- sh -c 'exec 3>"$1"; if [ -s "$1.lock" ]; then cat "$1.lock"
        elif [ -e "$1.lock" ]; then echo empty; else echo none; fi >"$2"; echo new >&3' sh "$ma/g" "$gfs_dir/seen-$v"
    [ "$(cat "$gfs_dir/seen-$v")" = empty ] || fail "$v: auto took '$(cat "$gfs_dir/seen-$v")', expected flock's empty lock file"
    [ "$(cat "$mb/g" 2>/dev/null)" = new ] || [ "$(cat "$ma/g")" = new ] || fail "$v: g not replaced"
    [ -e "$ma/g.lock" ] || fail "$v: flock's lock file removed on GlusterFS"
done

# Teardown after a failing and after an interrupted run.
for how in fail term kill; do
    report=$gfs_dir/child-$how
    env -u WLF_GFS_PRIVATE bash "$0" child "$how" "$report" >"$report.out" 2>&1
    rc=$?
    [ -s "$report" ] || { fail "$how: the child did not set up ($(tail -n 3 "$report.out"))"; continue; }
    [ "$rc" -ne 0 ] || fail "$how: the child's failure became exit 0"
    cdir=$(awk '$1 == "dir" { print $2 }' "$report")
    cns=$(awk '$1 == "netns" { print $2 }' "$report")
    cpids=$(awk '$1 == "pids" { $1 = ""; print }' "$report")
    for i in $(seq 100); do [ -e "$cdir" ] || break; sleep 0.1; done
    [ ! -e "$cdir" ] || fail "$how: the work directory $cdir (bricks, state) is left"
    # The reaper waits for what it killed before it removes the directory:
    # once that is gone, no daemon may run (gone, or a zombie nobody reaped).
    for p in $cpids; do
        state=$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)
        [ -n "$state" ] && [ "$state" != Z ] \
            && fail "$how: gluster process $p still runs (state $state): $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
    done
    [ "$(echo "$cpids" | wc -w)" -ge 4 ] || fail "$how: expected glusterd, a brick and two clients, got pids: $cpids"
    if grep -q "$cdir" /proc/self/mountinfo; then fail "$how: a mount of $cdir is left"; fi
    for l in /proc/[0-9]*/ns/net; do
        [ "$(stat -L -c %i "$l" 2>/dev/null)" = "$cns" ] && fail "$how: a process is still in the child's network namespace ($l)" && break
    done
done
# The child's sockets lived in its own /run; ours must be here now (and go).
[ -S /run/glusterd.socket ] || fail "glusterd's socket is not in the private /run"

finish
