#!/bin/bash
# A bounded libFuzzer run: FUZZER SEED_CORPUS SECONDS. The seeds are read,
# new inputs land in a temporary directory; a crash is kept next to it and
# its path printed. Exit: the fuzzer's (0 clean, nonzero on a finding).
set -u
fuzzer=${1:?usage: run_fuzz.sh FUZZER SEED_CORPUS SECONDS}
seeds=${2:?}
seconds=${3:-20}
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
"$fuzzer" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=1024 -max_len=8192 \
    -artifact_prefix="$work/" -print_final_stats=1 "$work" "$seeds" 2>&1 | tail -25
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
    for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
        [ -f "$f" ] && { echo "finding: $(basename "$f")"; od -c "$f" | head -20; }
    done
fi
exit "$rc"
