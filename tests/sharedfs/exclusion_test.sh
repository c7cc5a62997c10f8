#!/usr/bin/env bash
# Mutual exclusion across two GlusterFS clients: processes on both mounts
# increment one counter under mylockfile, for each backend (flock, dotlock),
# in the default and the coherent configuration, and once on a replica-2
# volume. Each critical section appends "enter PID" / "leave PID" to a local
# log; the records must alternate (zero overlaps), the counter must read the
# exact total on both mounts (zero lost updates), and every process must
# exit 0 (none died).
# Usage: exclusion_test.sh CLIENT PLAIN ATOMICALLY PRELOAD
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
client=$(realpath "$1") || exit 1

# shellcheck source=checks.sh
. "$here/checks.sh"

gfs_start
gfs_volume def default
gfs_volume coh coherent
gfs_volume rep coherent replica
setup_ms=$(gfs_elapsed)
echo "setup: ${setup_ms} ms"
# Under 15 s: 3-4 s idle, 7 s at load 17 on 2 cores since gsyncd is a stub
# (lib.sh; before, glusterd's start alone took 12 s at that load).
[ "$setup_ms" -lt 15000 ] || fail "setup took ${setup_ms} ms, over 15 s (load $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores)"

# Replica 2: both bricks hold what one client wrote.
echo both >"$(gfs_mount rep a)/r"
n=$(cat "$gfs_dir"/bricks/rep-*/r 2>/dev/null | grep -c both)
[ "$n" -eq 2 ] || fail "replica-2 volume: the file is on $n of 2 bricks"

# overlaps LOG: critical sections that began while another was open.
overlaps() {
    awk '$1 == "enter" { if (open != "") bad++; open = $2 }
         $1 == "leave" { if (open != $2) bad++; open = "" }
         END { print bad + 0 }' "$1"
}

# value FILE: the counter as this client reads it. The default configuration
# answers ESTALE or ENOENT for about a second after the other client
# replaced the file; a reader retries like an NFS client (bounded, 5 s).
value() {
    local i v
    for i in $(seq 50); do
        v=$(cat "$1" 2>/dev/null) && [ -n "$v" ] && { echo $((10#$v)); return; }
        sleep 0.1
    done
    echo -1
}

# run VOLUME BACKEND PER_MOUNT N
run() {
    local vol=$1 backend=$2 per=$3 n=$4 c i ma mb dir pids=() dead=0 expect log t0 t1
    ma=$(gfs_mount "$vol" a)
    mb=$(gfs_mount "$vol" b)
    dir=count-$backend
    mkdir "$ma/$dir" && printf '%010d\n' 0 >"$ma/$dir/counter" || { fail "$vol/$backend: setup"; return; }
    log=$gfs_dir/overlap-$vol-$backend.log
    : >"$log"
    t0=$(date +%s%N)
    for c in a b; do
        for i in $(seq "$per"); do
            m=$(gfs_mount "$vol" "$c")
            "$client" count "$backend" "$m/$dir/data" "$m/$dir/counter" "$log" "$n" \
                2>"$gfs_dir/client-$vol-$backend-$c$i.err" &
            pids+=("$!:$c$i")
        done
    done
    # A process that died says why on the report's first lines (stdout),
    # not in a stderr that a long report cuts.
    local p rc
    for p in "${pids[@]}"; do
        wait "${p%%:*}" && continue
        rc=$?
        dead=$((dead + 1))
        fail "$vol/$backend: process ${p#*:} exited $rc: $(tail -n 3 "$gfs_dir/client-$vol-$backend-${p#*:}.err" | tr '\n' ' ')"
    done
    t1=$(date +%s%N)
    expect=$((2 * per * n))
    local va vb ov enters
    va=$(value "$ma/$dir/counter")
    vb=$(value "$mb/$dir/counter")
    ov=$(overlaps "$log")
    enters=$(grep -c '^enter' "$log")
    printf 'result: %-4s %-8s %dx%d per mount: counter a=%d b=%d of %d, sections=%d, overlaps=%d, died=%d, %d ms\n' \
        "$vol" "$backend" "$per" "$n" "$va" "$vb" "$expect" "$enters" "$ov" "$dead" $(( (t1 - t0) / 1000000 ))
    [ "$dead" -eq 0 ] || fail "$vol/$backend: $dead of $((2 * per)) processes died"
    [ "$ov" -eq 0 ] || fail "$vol/$backend: $ov overlapping critical sections"
    [ "$va" -eq "$expect" ] || fail "$vol/$backend: counter on mount a is $va, expected $expect"
    [ "$vb" -eq "$expect" ] || fail "$vol/$backend: counter on mount b is $vb, expected $expect"
    [ "$enters" -eq "$va" ] || fail "$vol/$backend: $enters critical sections but the counter holds $va (lost updates)"
    # flock keeps its lock file on a shared file system; a dotlock goes.
    if [ "$backend" = flock ]; then
        [ -f "$ma/$dir/data.lock" ] || fail "$vol/flock: the lock file was removed on a shared file system"
    else
        [ ! -e "$ma/$dir/data.lock" ] || fail "$vol/dotlock: the lock file was left"
    fi
}

# The default configuration caches attributes and entries for a second, so
# its runs are smaller (ESTALE retries cost that second); see README.
# Sizes (per mount x increments) keep the suite under 3 minutes on a busy
# 2-core machine: a dotlock section costs about 8 round trips to the brick,
# a replica-2 one twice a plain one. WLF_GFS_RUNS="vol:backend:PERxN ..."
# picks other runs.
for r in ${WLF_GFS_RUNS:-coh:flock:4x100 coh:dotlock:4x100 def:flock:2x25 def:dotlock:2x25 rep:flock:2x10}; do
    IFS=: read -r vol backend size <<<"$r"
    run "$vol" "$backend" "${size%x*}" "${size#*x}"
done

finish
