# Shared by the fault suite's scripts: skip checks, a faultfs mount over a
# fresh backing directory, the control file, assertions. Source it after
# setting `faultfs` (the executable, or "none" when libfuse3 was not found).
# Exit: 0 pass, 1 fail, 77 skip.
set -u

# The test controls these; inherited values would change the expectations.
unset WRAP_LOCKFILE_RULES WRAP_LOCKFILE_LOCK_ONLY WRAP_LOCKFILE_EXCLUDE WRAP_LOCKFILE_CONFIG \
    WRAP_LOCKFILE_TIMEOUT WRAP_LOCKFILE_FSYNC WRAP_LOCKFILE_LOG WRAP_LOCKFILE_PRELOAD \
    WRAP_LOCKFILE_PENDING WRAP_LOCKFILE_VIEW LD_PRELOAD
export LC_ALL=C
umask 022

skip() { echo "SKIP: $*"; exit 77; }
[ "$faultfs" != none ] || skip "libfuse3 (pkg-config fuse3) was not found when the build was configured"
[ "$(id -u)" -eq 0 ] || skip "needs root (to mount and unmount FUSE without a setuid helper)"
[ -c /dev/fuse ] || skip "/dev/fuse is missing"

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

tmp=$(mktemp -d) || exit 1
tmp=$(cd "$tmp" && pwd -P)
backing=$tmp/backing
mnt=$tmp/mnt
fs_pid=
mkdir "$backing" "$mnt" || exit 1

unmount() {
    [ -n "$fs_pid" ] || return 0
    umount "$mnt" 2>/dev/null || fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
    wait "$fs_pid" 2>/dev/null
    fs_pid=
}
cleanup() {
    unmount
    cd / && rm -rf "$tmp"
}
trap cleanup EXIT

# Single-threaded (-s) so the log is in one deterministic order; never under
# the shim, whose rules would otherwise apply to the backing files.
# mount_faultfs threaded: without -s, so a delayed request does not hold up
# the others (the log is then in completion order). subtype=NAME: the mount
# shows as fuse.NAME in mountinfo (subtype=sshfs: one the lock choice
# WLF_LOCK_AUTO takes dotlock on).
mount_faultfs() {
    local single=-s subtype=faultfs arg
    for arg in "$@"; do
        case $arg in
        threaded) single= ;;
        subtype=*) subtype=${arg#subtype=} ;;
        esac
    done
    env -u LD_PRELOAD "$faultfs" "$backing" "$mnt" -f $single -o fsname=faultfs,subtype=$subtype \
        >"$tmp/faultfs.log" 2>&1 &
    fs_pid=$!
    local i
    for i in $(seq 100); do
        if [ -e "$mnt/.faultfs-control" ]; then return 0; fi
        if ! kill -0 "$fs_pid" 2>/dev/null; then
            fs_pid=
            if grep -qi 'permitted\|permission denied' "$tmp/faultfs.log"; then
                skip "cannot mount FUSE here: $(cat "$tmp/faultfs.log")"
            fi
            echo "FAIL: faultfs did not mount:"; cat "$tmp/faultfs.log"; exit 1
        fi
        sleep 0.05
    done
    echo "FAIL: faultfs did not come up within 5 s"; cat "$tmp/faultfs.log"; exit 1
}

# Sends control lines; the fault is in force when this returns.
ctl() {
    printf '%s\n' "$@" >"$mnt/.faultfs-control" || { echo "FAIL: control line rejected: $*"; exit 1; }
}
dump_log() { cat "$mnt/.faultfs-control"; }

# await_delay PATH OP: until faultfs logs that an OP on PATH (a grep pattern,
# relative to the mount) is sleeping in its delay (5 s at most).
await_delay() {
    local i
    for i in $(seq 250); do
        dump_log | grep -q " delay path=$1 op=$2 " && return 0
        sleep 0.02
    done
    fail "$1: the writer never reached the delayed $2"
    return 1
}

# expect_content FILE CONTENT WHAT: byte-for-byte, read from the backing side.
expect_content() {
    local got
    if [ ! -f "$1" ]; then fail "$3: $1 is missing"; return; fi
    got=$(od -An -c "$1")
    [ "$got" = "$(printf '%s' "$2" | od -An -c)" ] || fail "$3: $1 holds '$(cat "$1")', expected '$2'"
}

# expect_only DIR NAME...: exactly these entries: no temp, and no lock file
# but the library's own kept ones. faultfs is a FUSE file system, where the
# library keeps its lock files (README "Shared file systems"): NAME.lock may
# stay if it is provably ours (an empty regular file with the sticky bit).
expect_only() {
    local dir=$1 what=$2; shift 2
    local got want e name
    got=$(cd "$dir" && for e in $(ls -A); do
              name=${e%.lock}
              if [ "$name" != "$e" ] && [ -f "$e" ] && [ ! -L "$e" ] && [ -k "$e" ] && [ ! -s "$e" ] &&
                  printf '%s\n' "$@" | grep -qxF -- "$name"; then continue; fi
              printf '%s\n' "$e"
          done | sort | tr '\n' ' ')
    want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
    [ "$got" = "$want" ] || fail "$what: $dir holds [$got], expected [$want]"
}
