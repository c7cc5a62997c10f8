#!/usr/bin/env bash
# tools/bench.sh BUILD_DIR — run the benchmarks of a build configured with
# -Dbenchmarks=true and print a Markdown table of ratios (ours / floor), each
# pair measured side by side in the same run. Also writes the table to
# BUILD_DIR/bench/results.md. Installs nothing (tools/dev bench did).
#
# Benchmarks are not tests: nothing here fails on a time. The "target" column
# only says whether a ratio is within what README promises.
#
# Knobs (environment): WLF_BENCH_REPS (repetitions, default 5; the
# interleaved A/B loops of sections a-c take at least 15: on a shared VM
# single pairs scatter by +-30%),
# WLF_BENCH_SCALE (multiplies loop counts, default 1).
set -euo pipefail

die() { echo "tools/bench.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: tools/bench.sh BUILD_DIR"
BUILD=$(cd "$1" 2>/dev/null && pwd) || die "no such build directory: $1"
PRELOAD="$BUILD/shim/linux/preload/libwrap_lockfile_preload.so"
LOOP="$BUILD/bench/shim_loop"
CORE="$BUILD/bench/core_bench"
LOCKLOOP="$BUILD/bench/lock_loop"
OUTDIR="$BUILD/bench"
REPS=${WLF_BENCH_REPS:-5}
AB_REPS=$((REPS > 15 ? REPS : 15))
SCALE=${WLF_BENCH_SCALE:-1}

for f in "$PRELOAD" "$LOOP" "$CORE" "$LOCKLOOP"; do
  [ -e "$f" ] || die "missing $f (configure with -Dbenchmarks=true and build first)"
done
for t in hyperfine python3; do
  command -v "$t" >/dev/null || die "$t not found (tools/dev bench installs it)"
done

# ---- scratch directories: one on tmpfs, one on the build's disk ----------

WORK=$(mktemp -d "$OUTDIR/run.XXXXXX")
TMPFS=""
MOUNTED=""
cleanup() {
  [ -n "$MOUNTED" ] && umount "$MOUNTED" 2>/dev/null || true
  [ -n "$TMPFS" ] && rm -rf "$TMPFS"
  rm -rf "$WORK"
}
trap cleanup EXIT

# (head -1: with stacked mounts, e.g. a tmpfs over /dev/shm, findmnt prints one line per mount.)
fstype() { { findmnt -n -o FSTYPE -T "$1" 2>/dev/null || stat -f -c %T "$1"; } | head -n 1; }

if [ "$(fstype /dev/shm 2>/dev/null || true)" = tmpfs ] && [ -w /dev/shm ]; then
  TMPFS=$(mktemp -d /dev/shm/wlf-bench.XXXXXX)
elif [ -z "${WLF_BENCH_IN_NS:-}" ] && [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then
  # No usable /dev/shm: a private tmpfs in a mount namespace of our own.
  rm -rf "$WORK"
  trap - EXIT
  WLF_BENCH_IN_NS=1 exec unshare -m --propagation private "$0" "$BUILD"
elif [ -n "${WLF_BENCH_IN_NS:-}" ]; then
  mkdir "$WORK/tmpfs"
  mount -t tmpfs -o size=512m tmpfs "$WORK/tmpfs" || die "cannot mount a tmpfs"
  MOUNTED="$WORK/tmpfs"
  TMPFS="$WORK/tmpfs/d"
  mkdir "$TMPFS"
else
  die "no tmpfs available: /dev/shm is not tmpfs and unshare -m needs root"
fi
DISK="$WORK/disk"
mkdir -p "$DISK"

RESULTS="$WORK/results.tsv"   # section, name, ours_ns, floor_ns, ours_cpu_ns, floor_cpu_ns, target
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Interleaved A/B: runs A then B, REPS times, and records the medians of
# the wall and CPU times each printed (shim_loop prints "WALL_NS CPU_NS").
#   ab SECTION NAME TARGET -- A-COMMAND... -- B-COMMAND...
ab() {
  local section=$1 name=$2 target=$3
  shift 3
  [ "$1" = -- ] || die "ab: expected --"
  shift
  local a=() b=()
  while [ "$1" != -- ]; do a+=("$1"); shift; done
  shift
  b=("$@")
  local as=() bs=() ac=() bc=() i x y
  # Warm-up, and fail early.
  "${a[@]}" >/dev/null || die "failed: ${a[*]}"
  "${b[@]}" >/dev/null || die "failed: ${b[*]}"
  for ((i = 0; i < AB_REPS; i++)); do
    x=$("${a[@]}") || die "failed: ${a[*]}"
    y=$("${b[@]}") || die "failed: ${b[*]}"
    as+=("${x%% *}") ac+=("${x##* }")
    bs+=("${y%% *}") bc+=("${y##* }")
  done
  record "$section" "$name" "$(median "${as[@]}")" "$(median "${bs[@]}")" \
    "$(median "${ac[@]}")" "$(median "${bc[@]}")" "$target"
  echo "  $name: ours ${as[*]} | floor ${bs[*]} (wall ns)" >&2
}

NOMATCH='*.wlf-bench-never-matches'
SHIM=(env "LD_PRELOAD=$PRELOAD" "WRAP_LOCKFILE_RULES=$NOMATCH")
SHIM_W=(env "LD_PRELOAD=$PRELOAD" "WRAP_LOCKFILE_RULES=*.dat" WRAP_LOCKFILE_FSYNC=none)

# ---- sanity: the shim is loaded, passes the unmatched open through, takes the matched one

log=$("${SHIM[@]}" WRAP_LOCKFILE_LOG=stderr "$LOOP" open-close 1 "$TMPFS/sanity" 2>&1 >/dev/null)
[ -z "$log" ] || die "unmatched open was not passed through: $log"
log=$("${SHIM_W[@]}" WRAP_LOCKFILE_LOG=stderr "$LOOP" write-loop 1 "$TMPFS/sanity.dat" 2>&1 >/dev/null)
case "$log" in *"committed '$TMPFS/sanity.dat'"*) ;; *) die "matched write was not replaced by the shim: $log" ;; esac
rm -f "$TMPFS"/sanity*

# ---- a. process startup ---------------------------------------------------

echo "a. startup of /bin/true (hyperfine)" >&2
# hyperfine runs one command after the other; on a busy machine that drift
# lands in the ratio. So: REPS short rounds, alternating which command goes
# first, and the median over rounds of each command's mean.
for ((i = 0; i < REPS; i++)); do
  cmds=(-n preload "env 'LD_PRELOAD=$PRELOAD' 'WRAP_LOCKFILE_RULES=$NOMATCH' /bin/true" -n bare "env /bin/true")
  [ $((i % 2)) -eq 1 ] && cmds=("${cmds[@]:3:3}" "${cmds[@]:0:3}")
  hyperfine -N --warmup 10 --runs $((60 * SCALE)) --style none --export-json "$WORK/startup.$i.json" \
    "${cmds[@]}" >/dev/null 2>&1 || die "hyperfine failed"
done
read -r pre bare pre_cpu bare_cpu < <(python3 -c '
import glob, json, statistics, sys
wall = {"preload": [], "bare": []}
cpu = {"preload": [], "bare": []}
for f in sorted(glob.glob(sys.argv[1] + "/startup.*.json")):
    for x in json.load(open(f))["results"]:
        wall[x["command"]].append(x["mean"])
        cpu[x["command"]].append(x["user"] + x["system"])
m = lambda d, k: statistics.median(d[k]) * 1e9
print(m(wall, "preload"), m(wall, "bare"), m(cpu, "preload"), m(cpu, "bare"))' "$WORK")
record "startup" "/bin/true via env(1), hyperfine, median of $REPS alternating rounds' means (env exec on both sides)" \
  "$pre" "$bare" "$pre_cpu" "$bare_cpu" "1.20"
# The same without env(1) diluting the ratio: posix_spawn + wait, interleaved.
N=$((300 * SCALE))
ab "startup" "/bin/true, posix_spawn+wait loop (no env), median of $AB_REPS" "1.20" \
  -- "$LOOP" spawn "$N" /bin/true "LD_PRELOAD=$PRELOAD" "WRAP_LOCKFILE_RULES=$NOMATCH" \
  -- "$LOOP" spawn "$N" /bin/true

# ---- b. unmatched open+close ---------------------------------------------

echo "b. unmatched open+close on tmpfs" >&2
N=$((100000 * SCALE))
ab "unmatched" "open(O_WRONLY|O_CREAT)+close, absolute path, rules set" "1.10" \
  -- "${SHIM[@]}" "$LOOP" open-close "$N" "$TMPFS/unmatched" \
  -- "$LOOP" open-close "$N" "$TMPFS/unmatched"
ab "unmatched" "the same, relative path (cwd on tmpfs)" "1.10" \
  -- sh -c 'cd "$1" && shift && exec "$@"' sh "$TMPFS" "${SHIM[@]}" "$LOOP" open-close "$N" unmatched \
  -- sh -c 'cd "$1" && shift && exec "$@"' sh "$TMPFS" "$LOOP" open-close "$N" unmatched

# The stat family is interposed for the pending file's identity: with
# nothing pending, a stat is one flag test away from libc's.
: >"$TMPFS/statted"
ab "unmatched" "stat() loop, nothing pending, rules set" "1.05" \
  -- "${SHIM[@]}" "$LOOP" stat-loop "$N" "$TMPFS/statted" \
  -- "$LOOP" stat-loop "$N" "$TMPFS/statted"

# ---- c. matched write loop ------------------------------------------------

# Three hand-written baselines, all run without the shim (bench/shim_loop.c):
# correct-loop is the fewest calls a replacement needs with every guarantee
# of docs/design.md (verified lock by st_nlink, metadata read under the lock,
# commit check, O_TMPFILE linked into place): what the shim is measured
# against. floor-loop is a bare lock + temp + rename with no verification
# (its lock protocol lets two processes hold "the" lock at once, see
# tests/unit/lock_test.cpp, UnverifiedUnlinkProtocolLetsTwoHoldersIn, and it
# resets the target's mode): not correct, the floor of the system calls.
# contract-loop is the shim's older sequence by hand (an lstat at acquire too).
# guarded-loop is correct-loop plus the calls of the guarantees added since
# (the kernel's verdict, descriptor numbers, one directory descriptor for the
# commit and its checks): the shim against it is the shim's own bookkeeping.
for fs in tmpfs disk; do
  [ $fs = tmpfs ] && base=$TMPFS || base=$DISK
  echo "c. matched write loop on $fs ($(fstype "$base"), WRAP_LOCKFILE_FSYNC=none)" >&2
  N=$((3000 * SCALE))
  [ $fs = disk ] && N=$((1000 * SCALE))
  ab "matched" "$fs: open+write 4 KiB+close under the shim vs correct-loop by hand (same job, 13 calls)" "1.10" \
    -- "${SHIM_W[@]}" "$LOOP" write-loop "$N" "$base/matched.dat" \
    -- "$LOOP" correct-loop "$N" "$base/correct.dat"
  ab "matched" "$fs: the same vs floor-loop: bare lock+temp+rename, no verification or metadata" "1.30" \
    -- "${SHIM_W[@]}" "$LOOP" write-loop "$N" "$base/matched.dat" \
    -- "$LOOP" floor-loop "$N" "$base/floor.dat"
  if [ $fs = tmpfs ]; then
    ab "matched" "$fs: (context) correct-loop vs floor-loop: what correctness costs by hand" "" \
      -- "$LOOP" correct-loop "$N" "$base/correct.dat" \
      -- "$LOOP" floor-loop "$N" "$base/floor.dat"
    ab "matched" "$fs: (context) the shim vs guarded-loop (correct-loop plus the calls of the guarantees added since, by hand: 22 calls)" "" \
      -- "${SHIM_W[@]}" "$LOOP" write-loop "$N" "$base/matched.dat" \
      -- "$LOOP" guarded-loop "$N" "$base/guarded.dat"
    ab "matched" "$fs: (context) guarded-loop vs correct-loop: what those guarantees cost by hand" "" \
      -- "$LOOP" guarded-loop "$N" "$base/guarded.dat" \
      -- "$LOOP" correct-loop "$N" "$base/correct.dat"
    ab "matched" "$fs: (context) the shim vs contract-loop (the older sequence by hand: lstat at acquire)" "" \
      -- "${SHIM_W[@]}" "$LOOP" write-loop "$N" "$base/matched.dat" \
      -- "$LOOP" contract-loop "$N" "$base/contract.dat"
    ab "matched" "$fs: (context) the shim vs a plain non-atomic write-loop" "" \
      -- "${SHIM_W[@]}" "$LOOP" write-loop "$N" "$base/matched.dat" \
      -- "$LOOP" write-loop "$N" "$base/plain.dat"
  fi
  rm -f "$base"/matched.dat "$base"/correct.dat "$base"/guarded.dat "$base"/floor.dat "$base"/contract.dat "$base"/plain.dat
done

# ---- c2. the C API's lock ---------------------------------------------------

for fs in tmpfs disk; do
  [ $fs = tmpfs ] && base=$TMPFS || base=$DISK
  echo "c2. lock acquire+release on $fs: C API vs raw system calls" >&2
  N=$((20000 * SCALE))
  [ $fs = disk ] && N=$((5000 * SCALE))
  ab "lock" "$fs: wlf_lock_acquire+wlf_lock_release vs raw open+flock+unlink+unlock+close" "1.30" \
    -- "$LOCKLOOP" capi "$N" "$base/capi" \
    -- "$LOCKLOOP" raw "$N" "$base/raw"
done

# ---- c3. tar -x, interleaved ---------------------------------------------------

# The tarball of 2,000 small files (100 B-8 KB) in 20 directories, used here
# and by section h.
mkdir -p "$TMPFS/tarsrc"
python3 - "$TMPFS/tarsrc" <<'PYGEN'
import os, random, sys
random.seed(1)
for i in range(2000):
    d = os.path.join(sys.argv[1], "d%02d" % (i % 20))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%04d.txt" % i), "wb") as f:
        f.write(random.randbytes(random.randint(100, 8000)))
PYGEN
tar -cf "$TMPFS/small.tar" -C "$TMPFS/tarsrc" .
rm -rf "$TMPFS/tarsrc"
echo "c3. tar -x of 2,000 small files on tmpfs, fsync none, interleaved" >&2
TAR_SHIM=("LD_PRELOAD=$PRELOAD" "WRAP_LOCKFILE_RULES=$TMPFS/tarshim.*/**" WRAP_LOCKFILE_FSYNC=none)
# Sanity: the shim replaces every extracted file.
"$LOOP" tar-loop 1 "$TMPFS/small.tar" "$TMPFS/tarshim" "${TAR_SHIM[@]}" "WRAP_LOCKFILE_LOG=$WORK/tar3.log" >/dev/null
c=$(grep -c committed "$WORK/tar3.log" || true)
rm -f "$WORK/tar3.log"
[ "$c" -eq 2000 ] || die "tar under the shim committed $c of 2000 files"
ab "tar" "tar -xf of 2,000 small files, tmpfs, fsync none: preload set in the environment vs plain tar (one extract per sample)" "1.80" \
  -- "$LOOP" tar-loop 1 "$TMPFS/small.tar" "$TMPFS/tarshim" "${TAR_SHIM[@]}" \
  -- "$LOOP" tar-loop 1 "$TMPFS/small.tar" "$TMPFS/tarbare"

# ---- d. core library (Google Benchmark) ----------------------------------

echo "d. core library vs syscall floor (Google Benchmark)" >&2
"$CORE" --tmpfs-dir="$TMPFS" --disk-dir="$DISK" --min-time=0.1 \
  --benchmark_repetitions="$REPS" --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=true \
  --benchmark_out="$WORK/core.json" --benchmark_out_format=json >/dev/null

# ---- e. to i.: peers, lock hand-off, a real workload, append growth ------
# Each implementation runs as its own process timing one operation at a time
# (prints "MEDIAN_NS ITERS"); rounds interleave the implementations and the
# table takes the median of the rounds' medians. Knobs: WLF_PEER_ROUNDS
# (default 3), WLF_PEER_BUDGET_MS (per measurement, default 150).

PEER="$BUILD/bench/peer_bench"
GLIB="$BUILD/bench/glib_replace"
QT="$BUILD/bench/qt_savefile"
PYPEERS="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bench/py_peers.py"
LIBWLF="$BUILD/core/libwrap_lockfile.so"
ATOMICALLY="$BUILD/shim/linux/atomically"
ROUNDS=${WLF_PEER_ROUNDS:-3}
BUDGET=${WLF_PEER_BUDGET_MS:-150}
[ -x "$PEER" ] || die "missing $PEER (rebuild with -Dbenchmarks=true)"
# The Python peers are Debian packages: use Debian's interpreter, not a
# pyenv/venv python3 that cannot import them.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
NOTES="$WORK/notes.txt"   # free-text notes for the report, one per line
: >"$NOTES"
note() { echo "$*" >>"$NOTES"; echo "  note: $*" >&2; }
have_py() { "$PY" -c "import $1" 2>/dev/null; }
[ -x "$GLIB" ] || note "GLib peer not measured: bench/glib_replace not built (libglib2.0-dev missing at configure time)"
[ -x "$QT" ] || note "Qt peer not measured: bench/qt_savefile not built (qtbase5-dev missing at configure time)"
have_py atomicwrites || note "python3-atomicwrites not importable by $PY: not measured"
have_py filelock || note "python3-filelock not importable by $PY: not measured"
have_py portalocker || note "python3-portalocker not importable by $PY: not measured"
# Our Python binding, from the build tree (configured with -Dpython, the default auto).
BINDING=(env "PYTHONPATH=$BUILD/bindings/python" "$PY" "$PYPEERS")
have_binding() { "${BINDING[@]:0:3}" -c 'import wrap_lockfile' 2>/dev/null; }
have_binding || note "Python binding not importable from $BUILD/bindings/python (pybind11 missing at configure time?): not measured"

PEERS="$WORK/peers.tsv"   # kind, fs, size, durability, impl, round, median_ns, iters
: >"$PEERS"
# one KIND FS SIZE DUR IMPL ROUND -- COMMAND...: run, record, or note a failure.
one() {
  local kind=$1 fs=$2 size=$3 dur=$4 impl=$5 round=$6 out
  shift 7
  if out=$("$@" 2>"$WORK/one.err"); then
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$fs" "$size" "$dur" "$impl" "$round" "$out" | tr ' ' '\t' >>"$PEERS"
  else
    note "$kind $fs $size $dur $impl failed: $(head -c 300 "$WORK/one.err" | tr '\n' ' ')"
  fi
}

echo "[${SECONDS}s] e. atomic replace: core vs floor vs GLib, Qt, Python peers (rounds: $ROUNDS)" >&2
for ((r = 0; r < ROUNDS; r++)); do
  for fs in tmpfs disk; do
    [ $fs = tmpfs ] && base=$TMPFS || base=$DISK
    d="$base/peer"
    mkdir -p "$d"
    for size in 4096 1048576 67108864; do
      case $size in 4096) max=100000 ;; 1048576) max=2000 ;; *) max=3 ;; esac
      for dur in full none; do
        impls=(c-floor c-ours py-floor py-ours)
        have_binding && impls+=(py-binding py-binding-nolock py-binding-content)
        [ -x "$GLIB" ] && impls+=(glib)
        if [ $dur = full ]; then
          [ -x "$QT" ] && impls+=(qt)
          have_py atomicwrites && impls+=(py-atomicwrites)
          have_py atomicwrites && have_py filelock && impls+=(py-filelock+atomicwrites)
        fi
        # Rotate the order each round so no implementation always goes first.
        n=${#impls[@]}
        for ((k = 0; k < n; k++)); do
          impl=${impls[$(((k + r) % n))]}
          case $impl in
            c-floor) cmd=("$PEER" replace floor "$d" $size $dur $BUDGET $max) ;;
            c-ours) cmd=("$PEER" replace ours "$d" $size $dur $BUDGET $max) ;;
            glib) cmd=("$GLIB" "$d" $size $dur $BUDGET $max) ;;
            qt) cmd=("$QT" "$d" $size $BUDGET $max) ;;
            py-floor) cmd=("$PY" "$PYPEERS" replace floor "$d" $size $dur $BUDGET $max "$LIBWLF") ;;
            py-ours) cmd=("$PY" "$PYPEERS" replace ours "$d" $size $dur $BUDGET $max "$LIBWLF") ;;
            py-atomicwrites) cmd=("$PY" "$PYPEERS" replace atomicwrites "$d" $size $dur $BUDGET $max "$LIBWLF") ;;
            py-filelock+atomicwrites) cmd=("$PY" "$PYPEERS" replace filelock+atomicwrites "$d" $size $dur $BUDGET $max "$LIBWLF") ;;
            py-binding*) cmd=("${BINDING[@]}" replace "${impl#py-}" "$d" $size $dur $BUDGET $max "$LIBWLF") ;;
          esac
          one replace $fs $size $dur "$impl" $r -- "${cmd[@]}"
        done
      done
    done
    rm -rf "$d"
  done
done

echo "[${SECONDS}s] f. uncontended lock acquire+release: core vs flock vs Python peers vs flock(1)" >&2
for ((r = 0; r < ROUNDS; r++)); do
  for fs in tmpfs disk; do
    [ $fs = tmpfs ] && base=$TMPFS || base=$DISK
    d="$base/lock"
    mkdir -p "$d"
    impls=(c-flock c-ours py-floor py-ours)
    have_py filelock && impls+=(py-filelock)
    have_py portalocker && impls+=(py-portalocker)
    have_binding && impls+=(py-binding)
    n=${#impls[@]}
    for ((k = 0; k < n; k++)); do
      impl=${impls[$(((k + r) % n))]}
      case $impl in
        c-flock) cmd=("$PEER" lock flock "$d" $BUDGET) ;;
        c-ours) cmd=("$PEER" lock ours "$d" $BUDGET) ;;
        py-binding) cmd=("${BINDING[@]}" lock binding "$d" $BUDGET "$LIBWLF") ;;
        py-*) cmd=("$PY" "$PYPEERS" lock "${impl#py-}" "$d" $BUDGET "$LIBWLF") ;;
      esac
      one lock $fs 0 - "$impl" $r -- "${cmd[@]}"
    done
    rm -rf "$d"
  done
done
# flock(1): a process per call. hyperfine -N, with /bin/true as the spawn baseline.
if command -v flock >/dev/null; then
  hyperfine -N --warmup 10 --runs $((100 * SCALE)) --style none --export-json "$WORK/flock1.json" \
    -n flock1 "flock $TMPFS/flock1.lock /bin/true" -n true "/bin/true" >/dev/null 2>&1 \
    || note "hyperfine on flock(1) failed"
  [ -f "$WORK/flock1.json" ] && "$PY" -c '
import json, sys
for x in json.load(open(sys.argv[1]))["results"]:
    print("lock\ttmpfs\t0\t-\tflock1-" + x["command"] + "\t0\t%d\t%d" % (x["median"] * 1e9, len(x["times"])))' \
    "$WORK/flock1.json" >>"$PEERS"
else
  note "flock(1) not found: not measured"
fi

echo "[${SECONDS}s] g. contended FileLock hand-off, 2/4/8 processes, with and without timeout" >&2
for n in 2 4 8; do
  for mode in wait poll; do
    d="$TMPFS/contend"
    mkdir -p "$d"
    if out=$("$PEER" contend $n $mode "$d" $((BUDGET * 3)) 2>"$WORK/one.err"); then
      printf 'contend\ttmpfs\t%s\t%s\tours\t0\t%s\n' $n $mode "$out" | tr ' ' '\t' >>"$PEERS"
    else
      note "contend $n $mode failed: $(head -c 300 "$WORK/one.err")"
    fi
    rm -rf "$d"
  done
done

echo "[${SECONDS}s] h. tar -x of 2,000 small files, with and without atomically (hyperfine)" >&2
if [ -x "$ATOMICALLY" ] && command -v tar >/dev/null; then
  for variant in tmpfs:none disk:none disk:full; do
    fs=${variant%:*} fsync=${variant#*:}
    [ $fs = tmpfs ] && base=$TMPFS || base=$DISK
    dest="$base/tardest"
    mkdir -p "$dest"
    # ext4 here is slow and noisy for 2,000 creates (about 2 s a run): few runs there.
    runs=$((10 * SCALE)) warm=1
    if [ $fs = disk ]; then runs=$((3 * SCALE)) warm=0; fi
    # Sanity: the shim really replaces the extracted files.
    rm -rf "$dest"; mkdir "$dest"
    c=0
    if "$ATOMICALLY" --rule "$dest/**" --fsync $fsync --log "$WORK/tar.log" -- tar -xf "$TMPFS/small.tar" -C "$dest" >/dev/null 2>&1; then
      c=$(grep -c committed "$WORK/tar.log" || true)
    fi
    rm -f "$WORK/tar.log"
    if hyperfine -N --warmup $warm --runs $runs --style none --export-json "$WORK/tar.$fs.$fsync.json" \
        --prepare "sh -c 'rm -rf $dest && mkdir $dest'" \
        -n shim "$ATOMICALLY --rule $dest/** --fsync $fsync -- tar -xf $TMPFS/small.tar -C $dest" \
        -n bare "tar -xf $TMPFS/small.tar -C $dest" >/dev/null 2>"$WORK/one.err"; then
      "$PY" -c '
import json, sys
for x in json.load(open(sys.argv[1]))["results"]:
    print("tar\t%s\t2000\t%s\t%s\t0\t%d\t%d" % (sys.argv[2], sys.argv[3], x["command"], x["median"] * 1e9, len(x["times"])))
print("tar\t%s\t2000\t%s\tcommitted\t0\t%s\t0" % (sys.argv[2], sys.argv[3], sys.argv[4] or 0))' \
        "$WORK/tar.$fs.$fsync.json" "$fs" "$fsync" "$c" >>"$PEERS"
    else
      note "hyperfine on tar ($fs, fsync $fsync) failed: $(head -c 300 "$WORK/one.err")"
    fi
    rm -rf "$dest"
  done
  rm -f "$TMPFS/small.tar"
else
  note "tar workload not measured: atomically or tar missing"
fi

echo "[${SECONDS}s] i. append one line in 'a' mode: 1 MiB, 64 MiB, 1 GiB on tmpfs, disk, XFS reflink" >&2
append_on() {  # FS DIR
  local fs=$1 d=$2 size max impl
  for size in 1048576 67108864 1073741824; do
    case $size in 1048576) max=200 ;; 67108864) max=5 ;; *) max=2 ;; esac
    for impl in ours plain; do
      "$PEER" append $impl "$d" $size none $BUDGET $max 2>"$WORK/one.err" \
        | sed "s/^/append\t$fs\t$size\tnone\t$impl\t0\t/" | tr ' ' '\t' >>"$PEERS" \
        || note "append $fs $size $impl failed"
      if [ -s "$WORK/one.err" ]; then note "append $fs $size $impl: $(head -c 300 "$WORK/one.err")"; fi
    done
  done
}
mkdir -p "$TMPFS/append" "$DISK/append"
append_on tmpfs "$TMPFS/append"
rm -rf "$TMPFS/append"
append_on "disk" "$DISK/append"
rm -rf "$DISK/append"
if [ "$(id -u)" -ne 0 ]; then
  note "XFS reflink append not measured: needs root (mount -o loop in unshare -m)"
elif ! command -v mkfs.xfs >/dev/null || ! command -v unshare >/dev/null; then
  note "XFS reflink append not measured: mkfs.xfs or unshare missing"
else
  img="$WORK/xfs.img"
  truncate -s 4G "$img"
  if mkfs.xfs -q -m reflink=1 "$img" 2>"$WORK/one.err"; then
    mkdir -p "$WORK/xfs"
    # A private mount namespace: the loop mount cannot outlive this command.
    export -f append_on note
    export PEER BUDGET PEERS WORK NOTES
    unshare -m --propagation private bash -c '
      mount -o loop "$1" "$2" || { note "XFS reflink append not measured: mount -o loop failed"; exit 0; }
      mkdir "$2/append" && append_on xfs-reflink "$2/append"
      umount "$2"' sh "$img" "$WORK/xfs" \
      || note "XFS reflink append failed"
  else
    note "XFS reflink append not measured: mkfs.xfs failed: $(head -c 200 "$WORK/one.err")"
  fi
  rm -f "$img"
fi

echo "[${SECONDS}s] j. instructions and system calls per replacement (callgrind, strace -c)" >&2
# User-space instructions do not move with the machine's load. Each loop
# runs twice, N1 and N2 iterations, and the difference over N2-N1 is one
# replacement's cost without the process's start and exit.
ICOUNT="$WORK/icount.md"
: >"$ICOUNT"
N1=20 N2=220
CGOBJ="$(dirname "$PYPEERS")/callgrind_objects.py"
ic_loops=("shim:write-loop" "correct-loop" "guarded-loop" "floor-loop" "contract-loop" "plain:write-loop")
# ic_run TOOL OUT N LOOP-SPEC: one loop under callgrind or strace -c.
ic_run() {
  local tool=$1 out=$2 n=$3 spec=$4 env=(env) mode=$4
  case $spec in
    shim:*) env=("${SHIM_W[@]}") mode=${spec#shim:} ;;
    plain:*) mode=${spec#plain:} ;;
  esac
  rm -f "$TMPFS"/ic.dat*
  if [ "$tool" = callgrind ]; then
    "${env[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" --compress-strings=no --compress-pos=no \
      "$LOOP" "$mode" "$n" "$TMPFS/ic.dat" >/dev/null 2>"$WORK/one.err"
  else
    strace -f -c -U calls,name -o "$out" "${env[@]}" "$LOOP" "$mode" "$n" "$TMPFS/ic.dat" >/dev/null 2>"$WORK/one.err"
  fi
}
if command -v valgrind >/dev/null && command -v strace >/dev/null; then
  {
    echo
    echo "#### j. Per replacement (tmpfs, 4 KiB, WRAP_LOCKFILE_FSYNC=none): instructions and system calls"
    echo
    echo "User-space instructions (callgrind Ir) and system calls (strace -f -c), each the difference of a"
    echo "${N2}- and a ${N1}-iteration run over $((N2 - N1)): process start and exit cancel out. *shim* is"
    echo "\`write-loop\` under the preload; *plain* the same loop without it (not atomic)."
    echo
    echo "| loop | instructions | of which in the preload object | in libc | in ld.so | system calls (besides the write) |"
    echo "|---|---:|---:|---:|---:|---:|"
  } >>"$ICOUNT"
  SYSCALLS="$WORK/syscalls.tsv"  # loop, name, calls per replacement
  : >"$SYSCALLS"
  for spec in "${ic_loops[@]}"; do
    if ! { ic_run callgrind "$WORK/cg.1" $N1 "$spec" && ic_run callgrind "$WORK/cg.2" $N2 "$spec" &&
           ic_run strace "$WORK/st.1" $N1 "$spec" && ic_run strace "$WORK/st.2" $N2 "$spec"; }; then
      note "instruction count of $spec failed: $(head -c 300 "$WORK/one.err" | tr '\n' ' ')"
      continue
    fi
    python3 - "$spec" "$WORK/cg.1" "$WORK/cg.2" "$WORK/st.1" "$WORK/st.2" $N1 $N2 "$SYSCALLS" "$CGOBJ" >>"$ICOUNT" <<'PYIC'
import subprocess, sys
spec, cg1, cg2, st1, st2, n1, n2, tsv, cgobj = sys.argv[1:]
n = int(n2) - int(n1)
def objects(f):
    out = subprocess.run([sys.executable, cgobj, f], check=True, capture_output=True, text=True).stdout
    return {o: int(v) for o, v in (l.split("\t") for l in out.splitlines())}
a, b = objects(cg1), objects(cg2)
def per(pred):
    return (sum(v for o, v in b.items() if o != "total" and pred(o)) -
            sum(v for o, v in a.items() if o != "total" and pred(o))) / n
total = (b["total"] - a["total"]) / n
pre = per(lambda o: "wrap_lockfile_preload" in o)
libc = per(lambda o: "/libc.so" in o or "/libc-" in o)
ld = per(lambda o: "ld-linux" in o)
def calls(f):
    c = {}
    for line in open(f):
        p = line.split()
        if len(p) == 2 and p[0].isdigit() and p[1] != "total":
            c[p[1]] = int(p[0])
    return c
s1, s2 = calls(st1), calls(st2)
per_call = {k: (s2.get(k, 0) - s1.get(k, 0)) / n for k in set(s1) | set(s2)}
per_call = {k: v for k, v in per_call.items() if abs(v) >= 0.05}
nsys = sum(per_call.values()) - per_call.get("write", 0)
with open(tsv, "a") as t:
    for k, v in sorted(per_call.items(), key=lambda kv: -kv[1]):
        t.write(f"{spec}\t{k}\t{v:.2f}\n")
pre_s = f"{pre:,.0f}" if spec.startswith("shim:") else "—"
print(f"| {spec} | {total:,.0f} | {pre_s} | {max(libc, 0):,.0f} | {max(ld, 0):,.0f} | {nsys:.1f} |")
PYIC
  done
  python3 - "$SYSCALLS" >>"$ICOUNT" <<'PYSC'
import collections, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
loops = list(dict.fromkeys(r[0] for r in rows))
calls = collections.defaultdict(dict)
for loop, name, v in rows:
    calls[name][loop] = float(v)
print()
print("System calls per replacement, by name (strace -c):")
print()
print("| system call | " + " | ".join(loops) + " |")
print("|---|" + "---:|" * len(loops))
for name in sorted(calls, key=lambda k: -max(calls[k].values())):
    print(f"| {name} | " + " | ".join(f"{calls[name][l]:.1f}" if l in calls[name] else "" for l in loops) + " |")
PYSC
else
  note "instruction and system-call counts not measured: valgrind or strace missing (tools/dev bench installs them)"
fi
rm -f "$WORK"/cg.* "$WORK"/st.* "$TMPFS"/ic.dat*

echo "[${SECONDS}s] report" >&2
# ---- the table ------------------------------------------------------------

cpu=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
buildtype=$(python3 -c '
import json, sys
opts = json.load(open(sys.argv[1]))
print(next((o["value"] for o in opts if o["name"] == "buildtype"), "?"))' "$BUILD/meson-info/intro-buildoptions.json" 2>/dev/null || echo "?")

python3 - "$RESULTS" "$WORK/core.json" >"$WORK/results.md" <<PY
import json, sys

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
core = json.load(open(sys.argv[2]))

def fmt(ns):
    ns = float(ns)
    if ns >= 1e6: return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3: return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"

def verdict(r, target):
    if not target: return "—"
    t = float(target)
    return f"≤ {t:.2f}x: {'ok' if r <= t else '**over**'}"

out = []
out.append("### Benchmark results")
out.append("")
out.append("| machine | |")
out.append("|---|---|")
out.append("| CPUs (nproc) | $(nproc) |")
out.append("| CPU | ${cpu:-unknown} |")
out.append("| kernel | $(uname -sr) |")
out.append("| file systems | tmpfs dir: $(fstype "$TMPFS"), disk dir: $(fstype "$DISK") |")
out.append("| build | ${buildtype}; $(hyperfine --version) |")
out.append("")
out.append("Each ratio is ours / floor, both measured in the same run (interleaved A B A B …, "
           "median of ${AB_REPS} each, unless marked hyperfine). Times are wall clock; the CPU column is "
           "the ratio of CPU time (user+system, children included), steadier when the machine is busy.")
out.append("")
out.append("| measurement | ours | floor / bare | ratio | ratio (CPU) | README target |")
out.append("|---|---:|---:|---:|---:|---|")
names = {"startup": "a. startup", "unmatched": "b. unmatched", "matched": "c. matched", "lock": "c2. lock", "tar": "c3. tar"}
for section, name, ours, floor, ours_cpu, floor_cpu, target in rows:
    r = float(ours) / float(floor)
    rc = float(ours_cpu) / float(floor_cpu) if float(floor_cpu) > 0 else float("nan")
    out.append(f"| {names.get(section, section)}: {name} | {fmt(ours)} | {fmt(floor)} | {r:.2f}x | {rc:.2f}x | {verdict(r, target)} |")

med = {}
for b in core["benchmarks"]:
    if b.get("aggregate_name") == "median":
        key = b["run_name"].split("/min_time")[0]
        med[key] = b["real_time"] * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]

out.append("")
out.append("d. core library (Google Benchmark, wall time, median of ${REPS} randomly interleaved repetitions). "
           "floor: temp O_CREAT|O_EXCL, write, [fsync], rename, [fsync dir]; "
           "floor+lock: the same inside open+flock <target>.lock … unlink, unlock, close.")
out.append("")
out.append("| core measurement | ours | floor | ours/floor | floor+lock | ours/(floor+lock) |")
out.append("|---|---:|---:|---:|---:|---:|")
for fs in ("tmpfs", "disk"):
    for size in ("4KiB", "1MiB"):
        for dur in ("full", "none"):
            k = f"replace/{fs}/{size}/{dur}"
            if f"{k}/ours" not in med: continue
            o, f, fl = med[f"{k}/ours"], med[f"{k}/floor"], med[f"{k}/floor_lock"]
            out.append(f"| replace {size}, durability {dur}, {fs} | {fmt(o)} | {fmt(f)} | {o / f:.2f}x | {fmt(fl)} | {o / fl:.2f}x |")
for fs in ("tmpfs", "disk"):
    k = f"lock/{fs}"
    if f"{k}/ours" not in med: continue
    o, f = med[f"{k}/ours"], med[f"{k}/floor"]
    out.append(f"| FileLock acquire+release, {fs} (floor: open+flock+unlink+unlock+close) | {fmt(o)} | {fmt(f)} | {o / f:.2f}x | — | — |")
print("\n".join(out))
PY

"$PY" "$(dirname "$PYPEERS")/peer_report.py" "$PEERS" "$NOTES" "$OUTDIR" "$ROUNDS" >>"$WORK/results.md" \
  || die "peer report failed"
cat "$ICOUNT" >>"$WORK/results.md"
# k. durability batch (its own script: a loop device, device flush counts).
"$(dirname "$0")/bench_batch.sh" "$BUILD" >>"$WORK/results.md" || die "tools/bench_batch.sh failed"
cp "$WORK/results.md" "$OUTDIR/results.md"
# The plot also goes into the repository, to be committed with the docs.
if [ -f "$OUTDIR/replace_latency.png" ]; then
  mkdir -p "$(dirname "$PYPEERS")/../docs/bench"
  cp "$OUTDIR/replace_latency.png" "$(dirname "$PYPEERS")/../docs/bench/replace_latency.png"
fi
cat "$OUTDIR/results.md"
echo >&2
echo "tools/bench.sh: table written to $OUTDIR/results.md" >&2
