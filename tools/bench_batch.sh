#!/usr/bin/env bash
# tools/bench_batch.sh BUILD_DIR — durability batch against a program that
# fsyncs each file it writes (README "Performance"): 2,000 files of 4 KiB in
# 20 directories on a fresh ext4 on a loop device, written by bench/many_files
#   fsync-each   without the shim, fsync(2) of each file before its close
#                (its data durable, its names not: no directory fsync);
#   shim batch   under `atomically --fsync batch` (no fsync of its own);
#   shim full    under `atomically --fsync full`.
# For each: the median wall time of the whole process (exit included: batch
# syncs its directories there) over WLF_BENCH_REPS interleaved rounds
# (default 5), its CPU time (user+system, /usr/bin/time: on a busy machine
# the wall time follows the CPU share), and the device flushes per file ("flush requests completed",
# field 16 of /sys/block/loopN/stat; kernel >= 5.5). Prints a Markdown
# section on stdout; tools/bench.sh appends it to its table. Needs root,
# losetup and mkfs.ext4; without them it prints why and exits 0 (a benchmark,
# not a test). Cleans up the mount, the loop device and its file (trap).
set -euo pipefail

die() { echo "tools/bench_batch.sh: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: tools/bench_batch.sh BUILD_DIR"
BUILD=$(cd "$1" 2>/dev/null && pwd) || die "no such build directory: $1"
WRITER="$BUILD/bench/many_files"
ATOMICALLY="$BUILD/shim/linux/atomically"
REPS=${WLF_BENCH_REPS:-5}
NFILES=2000 NDIRS=20 SIZE=4096

section() { echo "### k. durability batch: $NFILES files of 4 KiB in $NDIRS directories, ext4 on a loop device"; echo; }
skip() { section; echo "Not measured: $*"; echo; echo "tools/bench_batch.sh: not measured: $*" >&2; exit 0; }
for f in "$WRITER" "$ATOMICALLY"; do [ -x "$f" ] || die "missing $f (configure with -Dbenchmarks=true and build first)"; done
[ "$(id -u)" -eq 0 ] || skip "needs root (a loop device)"
for t in losetup mkfs.ext4 /usr/bin/time; do command -v $t >/dev/null || skip "$t not found"; done

WORK=$(mktemp -d "$BUILD/bench/batch.XXXXXX")
LOOPDEV="" MNT="$WORK/mnt"
cleanup() {
  mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
  [ -n "$LOOPDEV" ] && losetup -d "$LOOPDEV"
  rm -rf "$WORK"
}
trap cleanup EXIT
truncate -s 1G "$WORK/fs.img"
LOOPDEV=$(losetup -f --show "$WORK/fs.img") || skip "no free loop device"
mkfs.ext4 -q -F "$LOOPDEV" >/dev/null 2>&1 || skip "mkfs.ext4 failed"
mkdir "$MNT"
mount "$LOOPDEV" "$MNT" || skip "cannot mount ext4 from $LOOPDEV"
STAT=/sys/block/$(basename "$LOOPDEV")/stat
[ "$(wc -w <"$STAT")" -ge 16 ] || skip "$STAT has no flush counter (kernel < 5.5)"
flushes() { awk '{print $16}' "$STAT"; }

# one VARIANT: prints "WALL_NS FLUSHES CPU_S"
one() {
  local run="$MNT/run" t0 t1 f0 f1 timed=(/usr/bin/time -f "%U %S" -o "$WORK/cpu")
  rm -rf "$run"; mkdir "$run"
  "$WRITER" "$run" 1 $NDIRS 0 >/dev/null  # the directories exist before the clock starts
  rm -f "$run"/d00/f0000
  sync -f "$MNT"
  f0=$(flushes) t0=$(date +%s%N)
  case $1 in
  fsync-each) "${timed[@]}" "$WRITER" --fsync "$run" $NFILES $NDIRS $SIZE >/dev/null ;;
  batch | full) "${timed[@]}" "$ATOMICALLY" --rule "$run/**" --fsync "$1" -- "$WRITER" "$run" $NFILES $NDIRS $SIZE >/dev/null ;;
  esac
  t1=$(date +%s%N) f1=$(flushes)
  [ "$(find "$run" -type f | wc -l)" -eq $NFILES ] || die "$1: expected $NFILES files in $run"
  echo "$((t1 - t0)) $((f1 - f0)) $(awk '{print $1 + $2}' "$WORK/cpu")"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
variants=(fsync-each batch full)
declare -A wall flush cpu
for v in "${variants[@]}"; do wall[$v]="" flush[$v]="" cpu[$v]=""; done
one batch >/dev/null  # warm-up
for ((i = 0; i < REPS; i++)); do
  for v in "${variants[@]}"; do
    read -r w f c < <(one $v)
    wall[$v]+=" $w" flush[$v]+=" $f" cpu[$v]+=" $c"
    echo "  batch bench round $i: $v ${w} ns, $f flushes, ${c} s CPU" >&2
  done
done

section
echo "Median of $REPS interleaved rounds; wall time of the whole process (exit included); flush requests"
echo "completed from $STAT. A device without FUA (a loop device; this VM's disk too) completes two"
echo "flush requests per journal commit (before and after the commit block), so the last column counts"
echo "in units of what one fsync of one new file costs: fsync-each's flushes per file."
echo
echo "| writer | wall | vs fsync-each | CPU (user+sys) | flush requests per file | in fsync-each's units | README target |"
echo "|---|---:|---:|---:|---:|---:|---|"
base=$(median ${wall[fsync-each]}) unit=$(median ${flush[fsync-each]})
for v in "${variants[@]}"; do
  w=$(median ${wall[$v]}) f=$(median ${flush[$v]}) c=$(median ${cpu[$v]})
  target="—"
  [ $v = batch ] && target="≤ 1.05 flushes, ≤ 1.00x wall"
  awk -v v="$v" -v w="$w" -v b="$base" -v f="$f" -v u="$unit" -v c="$c" -v n=$NFILES -v t="$target" 'BEGIN {
    name = v == "fsync-each" ? "fsync-each (no shim, fsync per file)" : "shim, --fsync " v
    printf "| %s | %.2f s | %.2fx | %.2f s | %.3f | %.3f | %s |\n", name, w / 1e9, w / b, c, f / n, f / u, t }'
done
echo
