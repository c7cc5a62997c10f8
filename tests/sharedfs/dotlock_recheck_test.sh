#!/usr/bin/env bash
# The dotlock's identity re-check before breaking a stale lock: a breaker B
# reads the lock of a dead holder and, exactly between its liveness probe
# kill(pid, 0) and the unlink, another process C breaks that lock itself
# and takes the lock (a live holder now). B must leave C's lock alone and
# not get the lock. The pause is a barrier (pause_kill.so, a FIFO), not a
# timed race; without the re-check B unlinks C's live lock and both hold
# (the issue reproduced that by delaying the first kill by 500 ms).
# Usage: dotlock_recheck_test.sh CLIENT PAUSE_KILL_SO
set -u
client=$(realpath "$1") || exit 1
pause_kill=$(realpath "$2") || exit 1

# shellcheck source=checks.sh
. "$(dirname "$0")/checks.sh"
scratch_dir

waitfor() { local i; for i in $(seq 3000); do [ -e "$1" ] && return 0; sleep 0.01; done; return 1; }  # 30 s: a loaded machine

# A stale lock in our format (this host, kernel and pid namespace) whose
# pid is dead: above pid_max, so that no process can take the number
# meanwhile (pids wrap within a minute on a busy machine); else a holder
# killed with -9.
pid_max=$(cat /proc/sys/kernel/pid_max)
if [ "$pid_max" -lt 4194303 ]; then
    dead=$((pid_max + 1))
    printf '%s host=%s boot=%s pidns=%s\n' "$dead" "$(hostname)" "$(cat /proc/sys/kernel/random/boot_id)" \
        "$(stat -L -c %i /proc/self/ns/pid)" >t.lock
else
    "$client" hold dotlock "$tmp/t" ready release &
    dead=$!
    bg+=("$dead")
    waitfor ready || { fail "the first holder did not take the lock"; finish; }
    kill -KILL "$dead"
    wait "$dead" 2>/dev/null
fi
[ "$(cut -d' ' -f1 t.lock)" = "$dead" ] || { fail "t.lock does not name the dead holder $dead: $(cat t.lock)"; finish; }
# The stale lock is breakable (the same judgement B is about to make).
cp -p t.lock t-probe.lock
"$client" try dotlock "$tmp/t-probe" 1 || { fail "a copy of the stale lock is not broken: the premise fails"; finish; }
stale_ino=$(stat -c %i t.lock)

# B, the breaker: its first kill($dead, 0) waits at the barrier.
mkfifo barrier || exit 1
WLF_PAUSE_KILL_PID=$dead WLF_PAUSE_KILL_FIFO=$tmp/barrier LD_PRELOAD=$pause_kill \
    "$client" try dotlock "$tmp/t" 1 2>breaker.err &
breaker=$!
bg+=("$breaker")
# Should B never probe $dead, the watchdog opens the FIFO instead (a
# builtin's timeout, so that killing it leaves no sleep behind; a bash of
# its own, without this script's EXIT trap).
mkfifo never || exit 1
bash -c 'read -r -t 20 <>"$1"; : >"$2"' watchdog "$tmp/never" "$tmp/barrier" 2>/dev/null &
watchdog=$!
bg+=("$watchdog")
exec 3<barrier  # returns once B is inside its probe of $dead (or the watchdog fired)
kill -KILL "$watchdog" 2>/dev/null  # SIGKILL: a subshell not yet exec'd would run our EXIT trap on SIGTERM
if ! kill -0 "$breaker" 2>/dev/null; then
    fail "the breaker never probed the dead holder's pid $dead (it ended first: $(cat breaker.err))"
    finish
fi

# C breaks the stale lock itself (no pause) and holds the lock: live.
"$client" hold dotlock "$tmp/t" ready2 release2 3<&- &  # not our end of the barrier
next=$!
bg+=("$next")
waitfor ready2 || fail "the next holder did not break the stale lock and take it"
next_ino=$(stat -c %i t.lock)
[ "$next_ino" != "$stale_ino" ] || echo "note: the new lock file reuses inode $stale_ino (the re-check then rests on mtime and size)"
[ "$(cut -d' ' -f1 t.lock)" = "$next" ] || fail "t.lock is not the next holder's: $(cat t.lock)"

# Let B go on: its probe now says the pid it read is dead.
exec 3<&-
wait "$breaker"
rc=$?
[ "$rc" -eq 3 ] || fail "the breaker got the lock held by a live process (rc $rc, expected 3: held): $(cat breaker.err)"
[ -e t.lock ] || fail "the breaker removed the live holder's lock file"
[ "$(stat -c %i t.lock 2>/dev/null)" = "$next_ino" ] || fail "t.lock is no longer the live holder's file"
[ "$(cut -d' ' -f1 t.lock 2>/dev/null)" = "$next" ] || fail "t.lock no longer names the live holder $next: $(cat t.lock 2>/dev/null)"

touch release2
wait "$next" || fail "the live holder failed to release"
[ ! -e t.lock ] || fail "t.lock left after the live holder's release"

finish
