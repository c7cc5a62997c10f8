# How every shell test counts its checks and ends (sourced by tests/shim/lib.sh,
# tests/sharedfs/checks.sh, tests/faultfs/lib.sh and the scripts with a
# harness of their own). A test that could run only part of its checks must
# not look like a full pass: meson shows exit 77 as SKIP, and the SKIP lines
# name what did not run and why.
#   fail MESSAGE          a check failed (counted; the test exits 1)
#   skip_check WHAT WHY   the check WHAT could not run here (counted)
#   skip_all WHY          nothing can run here: exit 77 now
#   finish                exit 1 if a check failed, else 77 if one was
#                         skipped, else 0
failures=0
skipped_checks=()

fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

skip_check() {
    echo "SKIP ($1): ${2:-}"
    skipped_checks+=("$1")
}

skip_all() {
    echo "SKIP: $*"
    exit 77
}

finish() {
    local skipped=${#skipped_checks[@]} list
    list=$(printf '%s; ' "${skipped_checks[@]}")
    if [ "$failures" -gt 0 ]; then
        echo "$failures check(s) failed"
        [ "$skipped" -gt 0 ] && echo "$skipped check(s) skipped: ${list%; }"
        exit 1
    fi
    if [ "$skipped" -gt 0 ]; then
        echo "$skipped check(s) skipped: ${list%; }"
        echo "the others passed; exit 77: a partial run is not a pass"
        exit 77
    fi
    echo "all checks passed"
    exit 0
}
