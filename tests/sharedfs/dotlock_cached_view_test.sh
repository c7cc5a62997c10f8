#!/usr/bin/env bash
# A dotlock breaker on a client whose caches still show a lock file that
# its holder, dead by now, removed through the other client: the server has
# a live holder's lock at that name, which breaking by name would remove
# (two holders; in the counter runs of exclusion_test.sh, default
# configuration, a lost update now and then). Client b reads X's lock, X
# releases and exits through client a, Y takes the lock through client a;
# b, whose FUSE caches (60 s here, 1 s by default) still show X's lock, must
# leave Y's alone and not get the lock.
# Usage: dotlock_cached_view_test.sh CLIENT PLAIN ATOMICALLY PRELOAD
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
client=$(realpath "$1") || exit 1

# shellcheck source=checks.sh
. "$here/checks.sh"

waitfor() { local i; for i in $(seq 3000); do [ -e "$1" ] && return 0; sleep 0.01; done; return 1; }  # 30 s: a loaded machine
holder() { cut -d' ' -f1 "$1" 2>/dev/null; }

gfs_start
gfs_volume cch cached
ma=$(gfs_mount cch a)
mb=$(gfs_mount cch b)
w=$gfs_dir/work
mkdir "$w" "$ma/d" || exit 1

"$client" hold dotlock "$ma/d/t" "$w/ready-x" "$w/release-x" &
x=$!
waitfor "$w/ready-x" || fail "X did not take the lock"
[ "$(holder "$mb/d/t.lock")" = "$x" ] || fail "client b does not see X's lock: $(cat "$mb/d/t.lock" 2>&1)"
touch "$w/release-x"
wait "$x" || fail "X failed to release"

"$client" hold dotlock "$ma/d/t" "$w/ready-y" "$w/release-y" &
y=$!
waitfor "$w/ready-y" || fail "Y did not take the lock"
[ "$(holder "$ma/d/t.lock")" = "$y" ] || fail "t.lock on client a is not Y's: $(cat "$ma/d/t.lock" 2>&1)"
# The premise: client b's caches still show X's lock (X is dead).
[ "$(holder "$mb/d/t.lock")" = "$x" ] ||
    fail "premise: client b no longer shows X's removed lock (shows: $(cat "$mb/d/t.lock" 2>&1)); the test proves nothing"

"$client" try dotlock "$mb/d/t" 0.5 2>"$w/try.err"
rc=$?
[ "$rc" -eq 3 ] || fail "client b got the lock Y holds (rc $rc, expected 3: held): $(cat "$w/try.err")"
[ "$(holder "$ma/d/t.lock")" = "$y" ] || fail "Y's lock file is gone from the server: $(cat "$ma/d/t.lock" 2>&1)"
leftovers=$(find "$ma/d" -name '.lk*' | wc -l)
[ "$leftovers" -eq 0 ] || fail "$leftovers dotlock temporaries left in the directory"

touch "$w/release-y"
wait "$y" || fail "Y failed to release"
[ ! -e "$ma/d/t.lock" ] || fail "t.lock left after Y's release"
finish
