#!/bin/bash
# One coherent file with named temps: FUSE has no O_TMPFILE, so the core
# writes a named temp (".f.XXXX~~"). coherent_probe checks, in the writer and
# a forked child, that every stat/access entry on the path agrees with the
# descriptor and that read-opens read the pending content; a reader outside
# sees the old file until the commit; nothing is left behind.
# Usage: named_temp_test.sh FAULTFS|none ATOMICALLY COHERENT_PROBE
usage="named_temp_test.sh FAULTFS|none ATOMICALLY COHERENT_PROBE"
[ $# -eq 3 ] || { echo "usage: $usage" >&2; exit 1; }
faultfs=$1
atomically=$(realpath "$2") || exit 1
probe=$(realpath "$3") || exit 1
. "$(dirname "$0")/lib.sh"

mount_faultfs
cd "$mnt" || exit 1
echo old >f && ln -s f l || exit 1
"$atomically" --rule "$mnt/f;$mnt/n" -- "$probe" identity f n l
[ $? -eq 0 ] || fail "probe on named temps"
expect_content "$backing/f" $'pending\n' "after the commit"
expect_content "$backing/n" $'new\n' "new file after the commit"
expect_only "$backing" "named temps" f l n sub
# The writer holds its named temp; another process reads the old file.
echo old >f
coproc HOLD { "$atomically" --rule "$mnt/f" -- "$probe" hold f; }
hold_pid=$HOLD_PID hold_in=${HOLD[1]} hold_out=${HOLD[0]}
line=""
read -r -t 10 line <&"$hold_out"
[ "$line" = ready ] || fail "hold: the writer did not start (got '$line')"
ls -A "$backing" | grep -q '~~$' || fail "hold: no named temp in the directory: the check proves nothing"
expect_content "$backing/f" $'old\n' "hold: another process before the commit"
echo go >&"$hold_in"
line=""
read -r -t 10 line <&"$hold_out"
[ "$line" = pending ] || fail "hold: the writer read '$line' from its own file, want 'pending'"
wait "$hold_pid"
expect_content "$backing/f" $'pending\n' "hold: after the commit"
cd / || exit 1
unmount
[ "$failures" -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }
echo "all checks passed"
