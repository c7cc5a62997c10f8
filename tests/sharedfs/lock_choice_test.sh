#!/usr/bin/env bash
# Choosing the lock from the shim: atomically --lock-backend / --keep-lock-files
# and WRAP_LOCKFILE_LOCK_BACKEND / WRAP_LOCKFILE_KEEP_LOCK_FILES (launcher and
# raw LD_PRELOAD); bad values are exit 125 naming the option or variable; the
# dotlock the shim takes excludes dotlockfile(1) and the other way round.
# Usage: lock_choice_test.sh CLIENT PLAIN ATOMICALLY PRELOAD
set -u
atomically=$(realpath "$3") || exit 1
preload=$(realpath "$4") || exit 1
unset WRAP_LOCKFILE_RULES WRAP_LOCKFILE_LOCK_ONLY WRAP_LOCKFILE_EXCLUDE WRAP_LOCKFILE_CONFIG WRAP_LOCKFILE_TIMEOUT \
    WRAP_LOCKFILE_FSYNC WRAP_LOCKFILE_LOG WRAP_LOCKFILE_PENDING WRAP_LOCKFILE_LOCK_BACKEND WRAP_LOCKFILE_KEEP_LOCK_FILES LD_PRELOAD
export WRAP_LOCKFILE_PRELOAD=$preload
# shellcheck source=checks.sh
. "$(dirname "$0")/checks.sh"
scratch_dir

# bad VALUE-SETUP... : exit 125 and the message names $name.
bad() {
    local name=$1 out rc
    shift
    out=$("$@" true 2>&1)
    rc=$?
    [ "$rc" -eq 125 ] || fail "$name: exit $rc, expected 125"
    case $out in *"$name"*) ;; *) fail "$name: the message does not name it: $out" ;; esac
}
bad --lock-backend "$atomically" --rule f --lock-backend flok --
bad WRAP_LOCKFILE_LOCK_BACKEND env WRAP_LOCKFILE_LOCK_BACKEND=fcntl "$atomically" --rule f --
bad WRAP_LOCKFILE_KEEP_LOCK_FILES env WRAP_LOCKFILE_KEEP_LOCK_FILES=yes "$atomically" --rule f --
"$atomically" --keep-lock-files=1 --rule f -- true 2>/dev/null
[ $? -eq 125 ] || fail "--keep-lock-files took a value"

# What the lock file holds while a program under the shim writes f.
# seen: the lock file's content (or "none"), read while f is open.
write_and_look() {
    rm -f seen
    "$@" sh -c 'exec 3>f; cat f.lock >seen 2>/dev/null || echo none >seen; echo new >&3; exec 3>&-'
}
echo old >f
write_and_look "$atomically" --rule "$tmp/f" --lock-backend dotlock --
grep -Eq '^[0-9]+ host=[^ ]+ boot=[^ ]+ pidns=[0-9]+$' seen || fail "dotlock from --lock-backend: lock held '$(cat seen)'"
[ ! -e f.lock ] || fail "dotlock: f.lock left after the program"
[ "$(cat f)" = new ] || fail "dotlock: f not replaced"
write_and_look env WRAP_LOCKFILE_LOCK_BACKEND=dotlock LD_PRELOAD="$preload" WRAP_LOCKFILE_RULES="$tmp/f"
grep -Eq '^[0-9]+ host=' seen || fail "dotlock from WRAP_LOCKFILE_LOCK_BACKEND (raw preload): lock held '$(cat seen)'"
write_and_look "$atomically" --rule "$tmp/f" --
[ "$(cat seen)" != none ] || fail "flock default: no lock file while f was open"
[ ! -e f.lock ] || fail "flock default on a local file system: f.lock left"
write_and_look "$atomically" --rule "$tmp/f" --keep-lock-files --
[ -e f.lock ] || fail "--keep-lock-files: f.lock removed"
rm -f f.lock
write_and_look env WRAP_LOCKFILE_KEEP_LOCK_FILES=1 "$atomically" --rule "$tmp/f" --
[ -e f.lock ] || fail "WRAP_LOCKFILE_KEEP_LOCK_FILES=1: f.lock removed"
rm -f f.lock
write_and_look "$atomically" --rule "$tmp/f" --lock-backend none -- 2>/dev/null
[ "$(cat seen)" = none ] || fail "--lock-backend none: a lock file existed"

# The shim's dotlock and dotlockfile exclude each other.
if command -v dotlockfile >/dev/null; then
    echo old >f
    bash -c 'dotlockfile -l -r 0 -p f.lock && exec sleep 1000' &
    bg+=($!)
    for i in $(seq 200); do [ -e f.lock ] && break; sleep 0.01; done
    "$atomically" --rule "$tmp/f" --lock-backend dotlock --timeout 0.3 -- sh -c 'echo new >f' 2>/dev/null \
        && fail "the shim wrote f while dotlockfile held f.lock"
    [ "$(cat f)" = old ] || fail "f changed while dotlockfile held its lock"
    kill -KILL "${bg[-1]}"
    wait "${bg[-1]}" 2>/dev/null
    "$atomically" --rule "$tmp/f" --lock-backend dotlock --timeout 2 -- sh -c 'echo new >f' \
        || fail "the shim did not break the dead dotlockfile holder's lock"
    [ "$(cat f)" = new ] || fail "f not replaced after the stale lock was broken"
    "$atomically" --rule "$tmp/f" --lock-backend dotlock -- sh -c 'exec 3>f; dotlockfile -l -r 0 -q f.lock; echo $? >rc; exec 3>&-'
    [ "$(cat rc)" != 0 ] || fail "dotlockfile took f.lock while the shim held it"
else
    skip_check "dotlockfile checks" "liblockfile-bin not installed"
fi

finish
