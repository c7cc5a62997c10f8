# Shared by the shared-fs scripts: fail, skip_check and finish from
# tests/checks.sh (exit 0 all passed, 1 a check failed, 77 one was skipped);
# scratch_dir makes a temporary directory $tmp the current one and, at exit,
# kills the pids in bg[] and removes it (for the scripts without the
# GlusterFS harness, which owns the EXIT trap there).
# shellcheck source=../checks.sh
. "$(dirname "${BASH_SOURCE[0]}")/../checks.sh"

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
