# What crash_test.sh and batch_crash_test.sh share: their arguments, the
# faultfs mount (lib.sh), and the case runner. Source it with the script's
# arguments: FAULTFS|none CRASHCHECK PRELOAD_OBJECT DRIVER NAME=MUTANT_DRIVER...
usage="$(basename "$0") FAULTFS|none CRASHCHECK PRELOAD_OBJECT DRIVER NAME=MUTANT_DRIVER..."
[ $# -ge 4 ] || { echo "usage: $usage" >&2; exit 1; }
faultfs=$1
crashcheck=$(realpath "$2") || exit 1
preload=$(realpath "$3") || exit 1
driver=$(realpath "$4") || exit 1
shift 4
mutants=("$@")
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
mount_faultfs
printf new >"$tmp/src"

n=0
models=(posix ext4 harsh)
# Set by a case to a fault rule (GLOB relative to its dir) in force while
# the writer runs.
rule=
# The targets of a case, relative to its directory (one program may replace
# several, in several directories), and leftover names the program's own
# temps may have (crashcheck --allow-leftover).
targets=(f)
allow=()
# The old files' mode. sed sets its temp's mode through the ACL xattr, which
# the model does not see: its cases give the old file 0600, which sed's
# temp has from the start.
old_mode=640

# run_case WHAT EXPECT OLD(-: none) NEW WRITER...: WRITER gets the target
# paths appended. EXPECT: one word for every model (clean or violations), or
# three, for posix, ext4 and harsh in that order.
run_case() {
    local what=$1 expect=($2) old=$3 new=$4; shift 4
    [ ${#expect[@]} -eq 1 ] && expect=("$expect" "$expect" "$expect")
    n=$((n + 1))
    local d=k$n old_args=(--old "$old") mode=$old_mode t paths=() check=()
    # The log starts empty, so the model sees the old file being made.
    ctl reset-log
    mkdir "$mnt/$d" || exit 1
    for t in "${targets[@]}"; do
        mkdir -p "$(dirname "$mnt/$d/$t")" || exit 1
        paths+=("$mnt/$d/$t")
        check+=(--target "$d/$t")
    done
    for t in "${allow[@]}"; do check+=(--allow-leftover "$t"); done
    if [ "$old" = - ]; then
        old_args=(--old-absent)
        mode=644
    else
        for t in "${paths[@]}"; do
            "$driver" write "$t" "$old" >/dev/null && chmod $mode "$t" || { fail "$what: setup"; return; }
        done
    fi
    # The model takes everything before "begin" as durable: make it so.
    sync -f "$backing" || exit 1
    ctl "mark begin"
    [ -z "$rule" ] || ctl "${rule/GLOB/$d/}"
    local out
    out=$("$@" "${paths[@]}" 2>&1) || { ctl clear; fail "$what: the writer failed: $out"; return; }
    ctl clear "mark committed"
    dump_log >"$tmp/$d.log"
    local i rc
    for i in 0 1 2; do
        out=$("$crashcheck" "$tmp/$d.log" "${check[@]}" "${old_args[@]}" --new "$new" --mode $mode \
            --model "${models[i]}")
        rc=$?
        echo "$what: $(echo "$out" | tail -1)"
        case ${expect[i]}:$rc in
        clean:0 | violations:1) ;;
        clean:*) fail "$what, ${models[i]}: exit $rc, expected no violation:"; echo "$out"; cat "$tmp/$d.log" ;;
        *) fail "$what, ${models[i]}: exit $rc, expected violations:"; echo "$out" ;;
        esac
    done
}
