#!/bin/bash
# Disk full under the Windows shim: a client writes until WriteFile fails;
# CloseHandle must then fail too and the target keep its old content, with
# no temp left. The "disk" is the file-size limit (ulimit -f, SIGXFSZ
# ignored: write(2) gives EFBIG, which Wine reports as a failed WriteFile),
# inherited by every Wine process this script starts. Run by meson test
# under tools/dev test --windows (WINEPREFIX with its server up).
# Usage: shim_disk_full.sh ATOMICALLY.EXE WLF_CLIENT.EXE
set -u
atomically=$1 client=$2
if ! command -v wine >/dev/null || [ -z "${WINEPREFIX:-}" ]; then
  echo "SKIP: wine or WINEPREFIX missing (run through tools/dev test --windows)"
  exit 77
fi
dir=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$dir" "$log"' EXIT
winpath() { local p="Z:$1"; printf '%s' "${p//\//\\}"; }
target=$dir/target.txt
fail=0

run_limited() {  # COMMAND...: with a 256 KiB file-size limit
  ( ulimit -f 256; trap '' XFSZ; exec timeout 120 "$@" ) >"$log" 2>&1
}

# Without the shim, the failed write is not seen at the close (the client
# reports 5): the check below can fail.
printf 'old content' >"$target"
run_limited wine "$client" fill "$(winpath "$target")"
rc=$?
if [ "$rc" != 5 ]; then echo "FAIL: without the shim: expected exit 5 (close succeeded), got $rc"; cat "$log"; fail=1; fi

printf 'old content' >"$target"
run_limited wine "$atomically" --rule "$(winpath "$target")" -- "$client" fill "$(winpath "$target")"
rc=$?
if [ "$rc" != 0 ]; then echo "FAIL: under the shim: the close did not fail after the write error (exit $rc)"; cat "$log"; fail=1; fi
if [ "$(cat "$target")" != "old content" ]; then echo "FAIL: the old content is gone: $(head -c 40 "$target")"; fail=1; fi
left=$(cd "$dir" && ls -A | tr '\n' ' ')
if [ "$left" != "target.txt target.txt.lock " ]; then echo "FAIL: left over: $left"; fail=1; fi
grep -q "wrap_lockfile: " "$log" || { echo "FAIL: no message about the failed commit"; cat "$log"; fail=1; }
[ $fail = 0 ] && echo "OK: disk full: CloseHandle failed, old content kept, no temp left"
exit $fail
