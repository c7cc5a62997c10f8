# GlusterFS harness for the shared-fs suite: one glusterd in a private
# network namespace on loopback only, volumes each mounted twice by two
# separate FUSE clients (two mount points = two hosts).
#
# Source it first thing; it re-runs the sourcing script in a private mount
# namespace with its own tmpfs on /run, /var/lib/glusterd and a private
# /var/log/glusterfs, so that gluster's sockets, pid files and state never
# touch the machine's and vanish with the namespace. Then:
#     gfs_start                     glusterd up (netns, volfile)
#     gfs_volume NAME MODE [replica] create, start and mount twice;
#                                   MODE default | coherent | cached (the
#                                   default with FUSE caches of 60 s)
#     gfs_mount NAME a|b            the mount point of client a or b
# Teardown (mounts, clients, bricks, glusterd, netns, sockets, brick dirs)
# runs from the EXIT trap, also when a check failed or the script was
# interrupted; a reaper does it when the script was killed (SIGKILL). Exit: 0 pass, 1 fail, 77 skip with the reason.
set -u

gfs_skip() { echo "SKIP: $*"; exit 77; }

# Before re-executing: everything whose absence is a reason to skip.
gfs_check_machine() {
    [ "$(id -u)" -eq 0 ] || gfs_skip "needs root (network namespace, FUSE mounts, glusterd)"
    [ -c /dev/fuse ] || gfs_skip "no /dev/fuse"
    grep -qw fuse /proc/filesystems || gfs_skip "the kernel has no FUSE"
    local b
    for b in glusterd gluster glusterfs glusterfsd ip nsenter unshare setfattr; do
        command -v "$b" >/dev/null 2>&1 || gfs_skip "$b not installed (packages in tools/packages.d/shared-fs.list)"
    done
    [ -e /proc/self/ns/net ] || gfs_skip "the kernel has no network namespaces"
}

# The reaper (see gfs_start): after the test process is gone without its
# EXIT trap (SIGKILL from a test runner's timeout), end what it started.
if [ -n "${WLF_GFS_REAP:-}" ]; then
    read -r main dir ns <<<"$WLF_GFS_REAP"
    while kill -0 "$main" 2>/dev/null; do sleep 0.5; done
    [ -d "$dir" ] || exit 0
    killed=()
    for f in "$dir"/*/client-*.pid /run/gluster/vols/*/*.pid /run/gluster/shd/*/*.pid "$dir/glusterd.pid"; do
        [ -f "$f" ] && p=$(cat "$f") && kill -KILL "$p" 2>/dev/null && killed+=("$p")
    done
    # SIGKILL is not the end yet: wait (10 s at most) until each has exited,
    # so that once the directory is gone none of them runs.
    for p in "${killed[@]}"; do
        for _ in $(seq 100); do
            state=$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)
            [ -n "$state" ] && [ "$state" != Z ] || break
            sleep 0.1
        done
    done
    for m in "$dir"/*/m[ab]; do umount -l "$m" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
    rm -rf "$dir"
    exit 0
fi

if [ -z "${WLF_GFS_PRIVATE:-}" ]; then
    gfs_check_machine
    unshare --mount --propagation private true 2>/dev/null || gfs_skip "cannot create a mount namespace"
    WLF_GFS_PRIVATE=1 exec unshare --mount --propagation private bash "$0" "$@"
fi

export LC_ALL=C
gfs_ns=wlf-gfs-$$
gfs_dir=$(mktemp -d "${TMPDIR:-/tmp}/wlf-gfs.XXXXXX") || exit 1
gfs_dir=$(cd "$gfs_dir" && pwd -P)
gfs_nsenter=(nsenter "--net=/run/netns/$gfs_ns")
gfs_pids=()      # client processes (from their pid files)
gfs_mounts=()
gfs_netns_up=0
gfs_setup_started=$(date +%s%N)

gfs_log() { echo "gluster: $*"; }

# Private state directories: gluster writes sockets to /run, pid files to
# /run/gluster, state to /var/lib/glusterd, brick logs to /var/log/glusterfs.
mount -t tmpfs -o mode=755 wlf-gfs-run /run || { echo "FAIL: tmpfs on /run"; exit 1; }
mkdir -p /run/gluster /var/lib/glusterd /var/log/glusterfs "$gfs_dir/state" "$gfs_dir/log" "$gfs_dir/bricks" || exit 1
mount -t tmpfs wlf-gfs-lib /var/lib/glusterd || { echo "FAIL: tmpfs on /var/lib/glusterd"; exit 1; }
mount --bind "$gfs_dir/log" /var/log/glusterfs || { echo "FAIL: bind /var/log/glusterfs"; exit 1; }

# glusterd's start runs gsyncd (geo-replication, a Python program) several
# times: 1-2 s on an idle machine, 12 s at load 18, most of the setup. No
# test uses geo-replication: in this namespace gsyncd is a stub that answers
# its version check at once.
for g in /usr/lib/*/glusterfs/gsyncd /usr/libexec/glusterfs/gsyncd /usr/lib/glusterfs/gsyncd; do
    [ -f "$g" ] || continue
    printf '#!/bin/sh\necho "gsyncd.py (stub: no geo-replication in the shared-fs tests)"\n' >"$gfs_dir/gsyncd"
    chmod +x "$gfs_dir/gsyncd"
    mount --bind "$gfs_dir/gsyncd" "$g" || { echo "FAIL: bind the gsyncd stub over $g"; exit 1; }
done

# Bricks keep gluster's metadata in trusted.* extended attributes.
setfattr -n trusted.wlf-probe -v 1 "$gfs_dir/bricks" 2>/dev/null \
    || { rm -rf "$gfs_dir"; gfs_skip "$gfs_dir has no trusted.* extended attributes (bricks need them)"; }
setfattr -x trusted.wlf-probe "$gfs_dir/bricks"

# gfs_wait_gone PID...: until none of them exists (SIGKILL after 5 s).
gfs_wait_gone() {
    local p i
    for p in "$@"; do
        for i in $(seq 50); do
            kill -0 "$p" 2>/dev/null || continue 2
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null
    done
}

# Every gluster daemon of this run: clients, bricks, self-heal, glusterd.
gfs_daemon_pids() {
    local f
    for f in "${gfs_pids[@]}" /run/gluster/vols/*/*.pid /run/gluster/shd/*/*.pid /run/gluster/*.pid "$gfs_dir/glusterd.pid"; do
        [ -f "$f" ] && cat "$f"
    done
}

gfs_teardown() {
    local rc=$? m pids
    trap - EXIT INT TERM
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -d "$gfs_dir/log" ]; then
        # What the clients and bricks complained about, for the failure report.
        grep -rh ' [EC] \[' "$gfs_dir/log" 2>/dev/null | tail -n 15 | sed 's/^/gluster log: /'
    fi
    for m in "${gfs_mounts[@]}"; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done
    pids=$(gfs_daemon_pids)
    # shellcheck disable=SC2086 # one pid a word
    [ -n "$pids" ] && kill -TERM $pids 2>/dev/null
    # shellcheck disable=SC2086
    [ -n "$pids" ] && gfs_wait_gone $pids
    [ "$gfs_netns_up" -eq 1 ] && ip netns del "$gfs_ns"
    rm -f /run/glusterd.socket /run/gluster/*.socket
    umount /var/log/glusterfs 2>/dev/null
    cd / && rm -rf "$gfs_dir"
    exit "$rc"
}
trap gfs_teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

gfs_start() {
    # In its own session, so that a runner killing the test's process group
    # does not kill it too; quiet, so that it holds no pipe of the runner.
    WLF_GFS_REAP="$$ $gfs_dir $gfs_ns" setsid bash "${BASH_SOURCE[0]}" </dev/null >/dev/null 2>&1 &
    ip netns add "$gfs_ns" || { echo "FAIL: ip netns add $gfs_ns"; exit 1; }
    gfs_netns_up=1
    ip -n "$gfs_ns" link set lo up || { echo "FAIL: lo up in $gfs_ns"; exit 1; }
    cat >"$gfs_dir/glusterd.vol" <<EOF
volume management
    type mgmt/glusterd
    option working-directory $gfs_dir/state
    option transport-type socket
    option transport.socket.bind-address 127.0.0.1
    option transport.socket.listen-port 24007
    option ping-timeout 0
end-volume
EOF
    "${gfs_nsenter[@]}" glusterd -f "$gfs_dir/glusterd.vol" -p "$gfs_dir/glusterd.pid" -l "$gfs_dir/log/glusterd.log" \
        || { echo "FAIL: glusterd did not start"; exit 1; }
    local i
    for i in $(seq 100); do
        gfs_cli volume list >/dev/null 2>&1 && { gfs_log "glusterd answers after $(gfs_elapsed) ms"; return 0; }
        sleep 0.1
    done
    echo "FAIL: glusterd did not answer within 10 s"
    exit 1
}

gfs_cli() { "${gfs_nsenter[@]}" gluster --mode=script "$@"; }

gfs_mount() { echo "$gfs_dir/$1/m$2"; }

# gfs_volume NAME default|coherent [replica]
gfs_volume() {
    local name=$1 mode=$2 layout=${3:-} bricks=() topts=() c
    mkdir -p "$gfs_dir/$name/ma" "$gfs_dir/$name/mb" || exit 1
    if [ "$layout" = replica ]; then
        bricks=(replica 2 "127.1:$gfs_dir/bricks/$name-1" "127.1:$gfs_dir/bricks/$name-2")
    else
        bricks=("127.1:$gfs_dir/bricks/$name-1")
    fi
    # The CLI refuses 127.0.0.1 and localhost as brick hosts; 127.1 is the same address.
    gfs_cli volume create "$name" "${bricks[@]}" force >/dev/null || { echo "FAIL: volume create $name"; exit 1; }
    case $mode in
        default) ;;
        cached) topts=(--attribute-timeout=60 --entry-timeout=60) ;;
        coherent)
            gfs_cli volume set "$name" performance.stat-prefetch off >/dev/null \
                || { echo "FAIL: stat-prefetch off on $name"; exit 1; }
            topts=(--attribute-timeout=0 --entry-timeout=0 --negative-timeout=0)
            ;;
        *) echo "FAIL: gfs_volume: mode $mode"; exit 1 ;;
    esac
    gfs_cli volume start "$name" >/dev/null || { echo "FAIL: volume start $name"; exit 1; }
    for c in a b; do
        local m pidf=$gfs_dir/$name/client-$c.pid
        m=$(gfs_mount "$name" "$c")
        "${gfs_nsenter[@]}" glusterfs --volfile-server=127.0.0.1 --volfile-id="$name" "${topts[@]}" \
            --pid-file="$pidf" -l "$gfs_dir/log/$name-client-$c.log" "$m" \
            || { echo "FAIL: mount $name on client $c"; exit 1; }
        gfs_pids+=("$pidf")
        gfs_mounts+=("$m")
    done
    # The clients mount asynchronously; a file written on one must be seen on the other.
    local i ma mb
    ma=$(gfs_mount "$name" a)
    mb=$(gfs_mount "$name" b)
    for i in $(seq 100); do
        if [ "$(stat -f -c %t "$ma" 2>/dev/null)" = 65735546 ] && [ "$(stat -f -c %t "$mb" 2>/dev/null)" = 65735546 ] \
            && echo "$name" >"$ma/.wlf-hello" 2>/dev/null && [ "$(cat "$mb/.wlf-hello" 2>/dev/null)" = "$name" ]; then
            rm -f "$ma/.wlf-hello"
            gfs_log "volume $name ($mode${layout:+, $layout}) on two clients after $(gfs_elapsed) ms"
            return 0
        fi
        sleep 0.1
    done
    echo "FAIL: volume $name not usable on both clients within 10 s"
    exit 1
}

# Seconds since the harness began (for the under-15-s setup check).
gfs_elapsed() { echo $(( ($(date +%s%N) - gfs_setup_started) / 1000000 )); }
