#!/usr/bin/env bash
# The dotlock backend against liblockfile's dotlockfile(1), both directions:
# each excludes the other; a dead holder's lock is broken, a live one's is
# not; dotlockfile reads our lock's pid; liblockfile's 5-minute rule for a
# lock nobody touched (README "Shared file systems"); and a holder in
# another pid namespace is never judged by a pid of ours.
# Usage: dotlock_interop_test.sh CLIENT PLAIN ATOMICALLY PRELOAD
set -u
client=$(realpath "$1") || exit 1
command -v dotlockfile >/dev/null || { echo "SKIP: dotlockfile (liblockfile-bin) not installed"; exit 77; }

# shellcheck source=checks.sh
. "$(dirname "$0")/checks.sh"
scratch_dir

waitfor() { local i; for i in $(seq 500); do [ -e "$1" ] && return 0; sleep 0.01; done; return 1; }
# try: our dotlock within 0.3 s; 0 acquired, 3 held.
try() { "$client" try dotlock "$tmp/t" 0.3; }

# 1. dotlockfile -p holds (it writes its caller's pid, a live one): we wait,
# then break the lock once that process is dead.
bash -c 'dotlockfile -l -r 0 -p t.lock && exec sleep 1000' &
dl=$!
bg+=("$dl")
waitfor t.lock || fail "dotlockfile did not create t.lock"
try; rc=$?
[ "$rc" -eq 3 ] || fail "our dotlock ignored dotlockfile's live lock (rc $rc)"
[ -e t.lock ] || fail "dotlockfile's live lock was removed"
[ "$(cat t.lock)" = "$dl" ] || fail "dotlockfile -p wrote '$(cat t.lock)', expected its caller's pid $dl"
kill -KILL "$dl"
wait "$dl" 2>/dev/null
[ -e t.lock ] || fail "t.lock vanished with its holder (the test needs it left)"
try; rc=$?
[ "$rc" -eq 0 ] || fail "a dead dotlockfile holder's lock was not broken (rc $rc)"
[ ! -e t.lock ] || fail "t.lock left after our release"

# 2. dotlockfile without -p writes no pid: valid for 5 minutes by mtime.
dotlockfile -l -r 0 t.lock || fail "dotlockfile -l on a free lock failed"
[ "$(cat t.lock)" = 0 ] || fail "dotlockfile without -p wrote '$(cat t.lock)', expected 0"
try; rc=$?
[ "$rc" -eq 3 ] || fail "a fresh pid-less lock was broken (rc $rc)"
touch -d '6 minutes ago' t.lock
try; rc=$?
[ "$rc" -eq 0 ] || fail "a pid-less lock untouched for 6 minutes was not broken (rc $rc)"

# 3. We hold: dotlockfile (with and without -p) is refused; it reads our pid.
rm -f ready release
"$client" hold dotlock "$tmp/t" ready release &
holder=$!
bg+=("$holder")
waitfor ready || fail "our holder did not take the lock"
[ "$(cut -d' ' -f1 t.lock)" = "$holder" ] || fail "t.lock does not start with the holder's pid: $(cat t.lock)"
dotlockfile -l -r 0 -q t.lock && fail "dotlockfile took a lock we hold"
dotlockfile -l -r 0 -p -q t.lock && fail "dotlockfile -p took a lock we hold (it misread our pid)"
# The 5-minute rule: a lock of ours untouched that long is stolen by
# dotlockfile without -p (liblockfile's rule; hold dotlocks for less, or
# refresh them); with -p dotlockfile checks our pid and leaves it.
touch -d '6 minutes ago' t.lock
dotlockfile -l -r 0 -p -q t.lock && fail "dotlockfile -p stole an old lock of a live holder"
dotlockfile -l -r 0 -q t.lock || fail "dotlockfile without -p did not apply its 5-minute rule to our old lock"
# The holder's release must not remove the lock dotlockfile now holds.
touch release
wait "$holder" || fail "the holder failed to release"
[ "$(cat t.lock 2>/dev/null)" = 0 ] || fail "our release removed dotlockfile's lock"
dotlockfile -u t.lock

# 4. Our holder dies: dotlockfile -p breaks the lock (it read our pid).
rm -f ready release
"$client" hold dotlock "$tmp/t" ready release &
holder=$!
bg+=("$holder")
waitfor ready || fail "our holder did not take the lock"
kill -KILL "$holder"
wait "$holder" 2>/dev/null
dotlockfile -l -r 0 -p -q t.lock || fail "dotlockfile -p did not break the lock of our dead holder"
dotlockfile -u t.lock

# 5. Locks written elsewhere (the content is all a breaker has): a dead pid
# from another host or another pid namespace is not ours to judge.
true & dead=$!
wait "$dead"
host=$(hostname)
boot=$(cat /proc/sys/kernel/random/boot_id)
pidns=$(stat -L -c %i /proc/self/ns/pid)
check_content() {  # EXPECTED-RC WHAT CONTENT
    printf '%s\n' "$3" >t.lock
    try; rc=$?
    [ "$rc" -eq "$1" ] || fail "$2: rc $rc, expected $1 (content: $3)"
    rm -f t.lock
}
check_content 3 "a lock from another host (boot id)" "$dead host=$host boot=00000000-1111-2222-3333-444444444444 pidns=$pidns"
check_content 3 "a lock from another host (no boot id)" "$dead host=elsewhere.example boot=? pidns=$pidns"
check_content 3 "a lock from another pid namespace" "$dead host=$host boot=$boot pidns=1"
check_content 0 "a dead holder of this kernel and namespace" "$dead host=$host boot=$boot pidns=$pidns"
check_content 0 "liblockfile's format with a dead pid" "$dead"

# 6. A holder in another pid namespace, whose pid there is dead here: never broken.
if unshare --pid --fork true 2>/dev/null; then
    rm -f ready release
    # Inside the namespace, pids count from 1; burn them until the holder's
    # number names no process here (this /proc is the outer one).
    unshare --pid --fork bash -c '
        while :; do
            sh -c : & wait $!
            next=$(( $! + 1 ))
            [ -e /proc/$next ] || break
            [ $next -gt 30000 ] && exit 9
        done
        "$0" hold dotlock "$1" "$2" "$3" & wait $!' "$client" "$tmp/t" ready release &
    ns=$!
    bg+=("$ns")
    if waitfor ready; then
        inner=$(cut -d' ' -f1 t.lock)
        if [ -e "/proc/$inner" ]; then
            echo "note: pid $inner of the namespaced holder exists here too; the check is weaker"
        fi
        try; rc=$?
        [ "$rc" -eq 3 ] || fail "a live holder in another pid namespace (pid $inner there) lost its lock (rc $rc)"
        [ -e t.lock ] || fail "the namespaced holder's lock file was removed"
        touch release
        wait "$ns" || fail "the namespaced holder failed"
        [ ! -e t.lock ] || fail "t.lock left after the namespaced holder's release"
    else
        fail "the holder in a new pid namespace did not take the lock"
    fi
else
    skip_check "check 5" "no pid namespaces here"
fi

finish
