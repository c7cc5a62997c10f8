#!/bin/bash
# The shim demo: an unmodified shell loop (`cat A > f; cat B > f`) rewrites a
# file while reader loops checksum it; first plain, then under `atomically`.
# Prints how many reads saw something that is neither A nor B.
# Usage: shim_demo.sh ATOMICALLY [ROUNDS [SIZE_KIB]]
# Exit: 0 when the atomically phase had no torn read, 1 otherwise.
set -u

atomically=${1:?usage: shim_demo.sh ATOMICALLY [ROUNDS [SIZE_KIB]]}
atomically=$(realpath "$atomically") || exit 1
rounds=${2:-40}
size_kib=${3:-2048}
readers=2

dir=$(mktemp -d "${TMPDIR:-/tmp}/wrap_lockfile_shim_demo-XXXXXX") || exit 1
reader_pids=()
cleanup() {
    [ ${#reader_pids[@]} -gt 0 ] && kill "${reader_pids[@]}" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir" || exit 1

# Two versions that differ everywhere, so a mix of them is never either.
head -c $((size_kib * 1024)) /dev/zero | tr '\0' A >A
head -c $((size_kib * 1024)) /dev/zero | tr '\0' B >B
sum_a=$(cksum <A)
sum_b=$(cksum <B)

# reader N: checksums f (one open, one pass) until ./stop exists; writes
# "reads torn" to reader.N. f starts as A, so empty counts as torn.
reader() {
    local reads=0 torn=0 sum
    while [ ! -e stop ]; do
        sum=$(cksum <f)
        reads=$((reads + 1))
        [ "$sum" = "$sum_a" ] || [ "$sum" = "$sum_b" ] || torn=$((torn + 1))
    done
    echo "$reads $torn" >"reader.$1"
}

# phase NAME PREFIX...: one run of the writer loop with PREFIX before it;
# prints a table row and sets $torn.
phase() {
    local name=$1
    shift
    cp A f
    rm -f stop reader.*
    reader_pids=()
    local i
    for i in $(seq $readers); do
        reader "$i" &
        reader_pids+=($!)
    done
    local start=$EPOCHREALTIME
    "$@" bash -c 'for i in $(seq "$1"); do cat A > f; cat B > f; done' bash "$rounds" || {
        echo "shim_demo: the writer loop failed in phase '$name'" >&2
        exit 1
    }
    local seconds
    seconds=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    touch stop
    wait "${reader_pids[@]}"
    reader_pids=()
    local reads=0 r t
    torn=0
    for i in $(seq $readers); do
        read -r r t <"reader.$i"
        reads=$((reads + r))
        torn=$((torn + t))
    done
    printf '%-34s %7d %7d %7d %8s\n' "$name" $((2 * rounds)) "$reads" "$torn" "$seconds"
}

echo "An unmodified shell loop rewrites a ${size_kib} KiB file $((2 * rounds)) times"
echo "('cat A > f; cat B > f') while $readers reader loops checksum it."
echo
printf '%-34s %7s %7s %7s %8s\n' "phase" "writes" "reads" "torn" "seconds"
phase "plain bash" env
plain_torn=$torn
phase "atomically --rule f" "$atomically" --rule "$dir/f" --fsync none --
echo

if [ "$plain_torn" -eq 0 ]; then
    echo "The plain phase happened to show no torn read this time; it can (try more rounds)."
else
    echo "Plain shell redirection: $plain_torn reads saw an empty or partial file."
fi
if [ "$torn" -eq 0 ]; then
    echo "Under atomically, the same unmodified commands never exposed a partial file."
    exit 0
fi
echo "FAIL: under atomically, $torn reads saw a torn file."
exit 1
