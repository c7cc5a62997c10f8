# Shared by the shared-fs scripts: fail() counts a failed check, finish()
# reports and exits (0 all passed, 1 otherwise); scratch_dir makes a
# temporary directory $tmp the current one and, at exit, kills the pids in
# bg[] and removes it (for the scripts without the GlusterFS harness, which
# owns the EXIT trap there).
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

finish() {
    if [ "$failures" -gt 0 ]; then
        echo "$failures check(s) failed"
        exit 1
    fi
    echo "all checks passed"
    exit 0
}

scratch_dir() {
    tmp=$(mktemp -d) || exit 1
    bg=()
    trap scratch_cleanup EXIT
    cd "$tmp" || exit 1
}

scratch_cleanup() {
    local p
    for p in "${bg[@]}"; do kill -KILL "$p" 2>/dev/null; done
    cd / && rm -rf "$tmp"
}
