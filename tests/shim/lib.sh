# Helpers shared by the end-to-end shim tests that run real, unmodified
# programs (programs_test.sh, programs_faults_test.sh). Source it after
# setting `usage`; it takes the script's arguments:
#     ATOMICALLY PRELOAD_OBJECT
# Every check asserts on the file system: content, inode number, mode,
# owner, symlink target, the entries left in the directory, exit status.
# Exit: 0 pass, 1 fail, 77 a check (or all of them) could not run.
set -u

if [ $# -lt 2 ]; then
    echo "usage: ${usage:-$0 ATOMICALLY PRELOAD_OBJECT}" >&2
    exit 1
fi
atomically=$(realpath "$1") || exit 1
preload=$(realpath "$2") || exit 1
[ -x "$atomically" ] || { echo "FAIL: $atomically is not executable"; exit 1; }
[ -f "$preload" ] || { echo "FAIL: $preload does not exist"; exit 1; }

# The test controls these; inherited values would change the expectations.
unset WRAP_LOCKFILE_RULES WRAP_LOCKFILE_LOCK_ONLY WRAP_LOCKFILE_EXCLUDE WRAP_LOCKFILE_CONFIG \
    WRAP_LOCKFILE_TIMEOUT WRAP_LOCKFILE_FSYNC WRAP_LOCKFILE_LOG WRAP_LOCKFILE_PRELOAD \
    WRAP_LOCKFILE_PENDING WRAP_LOCKFILE_VIEW LD_PRELOAD
export LC_ALL=C
umask 022
# The launcher uses the object under test, like the raw LD_PRELOAD runs.
export WRAP_LOCKFILE_PRELOAD=$preload

# Background processes a check started and may have to kill (by pid).
bg_pids=()
tmp=$(mktemp -d) || exit 1
cleanup() {
    local p
    for p in "${bg_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    cd / && rm -rf "$tmp"
}
trap cleanup EXIT
tmp=$(cd "$tmp" && pwd -P)
# The shim logs its decisions here: evidence that a new file (which has no
# old inode to compare with) really went through a replacement.
export WRAP_LOCKFILE_LOG=$tmp/shim.log

# The system's python3, not a version-manager wrapper script, when there is one.
python3=/usr/bin/python3
[ -x "$python3" ] || python3=$(command -v python3 || true)

# fail, skip_check, skip_all, finish.
# shellcheck source=../checks.sh
. "$(dirname "${BASH_SOURCE[0]}")/../checks.sh"
is_root() { [ "$(id -u)" -eq 0 ]; }
have() { command -v "$1" >/dev/null 2>&1; }

# newdir NAME: a fresh directory for one check, made the current one; its
# absolute path is $d.
newdir() {
    d=$tmp/$1
    mkdir -p "$d" && cd "$d" || exit 1
}

# shim MODE GLOBS COMMAND [ARG]...: COMMAND under the shim with replace rules
# GLOBS (';'-separated), through the launcher (MODE launcher) or with a raw
# LD_PRELOAD and WRAP_LOCKFILE_RULES (MODE preload). Other WRAP_LOCKFILE_*
# variables may be set in the caller's environment for both.
shim() {
    local mode=$1 globs=$2
    shift 2
    case $mode in
    launcher) "$atomically" --rule "$globs" -- "$@" ;;
    preload) LD_PRELOAD=$preload WRAP_LOCKFILE_RULES=$globs "$@" ;;
    *)
        echo "shim: bad mode $mode" >&2
        return 2
        ;;
    esac
}
modes=(launcher preload)

ino() { stat -c %i "$1"; }

# contents FILE: FILE's exact content (trailing newlines kept) in $REPLY.
contents() {
    REPLY=$(cat "$1" && echo .)
    REPLY=${REPLY%.}
}

# arm FILE: remember FILE's inode and content, and keep the old file open on
# fd 8, as a reader that had it open before the writer ran.
arm() {
    old_ino=$(ino "$1")
    contents "$1"
    old_content=$REPLY
    exec 8<"$1"
}
disarm() { exec 8<&-; }

# expect_content NAME FILE WANT: FILE holds exactly WANT.
expect_content() {
    [ -f "$2" ] || {
        fail "$1: $2 does not exist"
        return
    }
    contents "$2"
    [ "$REPLY" = "$3" ] || fail "$1: $2 holds '$(printf %q "$REPLY")', want '$(printf %q "$3")'"
}

# expect_replaced NAME FILE WANT: FILE (armed) is a new inode holding WANT,
# and the reader on fd 8 still sees the old inode's content unchanged.
expect_replaced() {
    local name=$1 file=$2 want=$3 seen
    expect_content "$name" "$file" "$want"
    [ "$(ino "$file")" != "$old_ino" ] || fail "$name: $file kept inode $old_ino: written in place, not replaced"
    seen=$(cat <&8 && echo .)
    seen=${seen%.}
    [ "$seen" = "$old_content" ] ||
        fail "$name: a reader of the old $file saw '$(printf %q "$seen")', want the old '$(printf %q "$old_content")'"
    disarm
}

# expect_unchanged NAME FILE: FILE (armed) is the same inode with the same content.
expect_unchanged() {
    local name=$1 file=$2
    expect_content "$name" "$file" "$old_content"
    [ "$(ino "$file")" = "$old_ino" ] || fail "$name: $file was replaced (inode $old_ino -> $(ino "$file"))"
    disarm
}

# expect_entries NAME DIR ENTRY...: DIR holds exactly these entries: no
# temporary file, no lock file, nothing else left behind.
expect_entries() {
    local name=$1 dir=$2 want="" got
    shift 2
    [ $# -gt 0 ] && want=$(printf '%s\n' "$@" | sort)
    got=$(ls -A "$dir" | sort)
    [ "$got" = "$want" ] || fail "$name: $dir holds [$(echo $got)], want [$(echo $want)]"
}

# clear_log; ...; expect_committed NAME ABSPATH: since clear_log, the shim
# committed a replacement of ABSPATH (atomically, not in place).
clear_log() { : >"$WRAP_LOCKFILE_LOG"; }
expect_committed() {
    grep -qxF "wrap_lockfile: committed '$2'" "$WRAP_LOCKFILE_LOG" ||
        fail "$1: the shim did not commit a replacement of $2 (log: $(tr '\n' '|' <"$WRAP_LOCKFILE_LOG"))"
}

# expect_status NAME WANT GOT
expect_status() {
    [ "$3" -eq "$2" ] || fail "$1: exit status $3, want $2"
}

# A fifo-based rendezvous: the process under test announces a point it
# reached by writing a line; the test blocks until it reads it. A bound on
# the wait keeps a broken shim from hanging the suite.
# await FIFO NAME: read one line from FIFO (10 s bound), in $REPLY.
await() {
    REPLY=""
    if ! read -r -t 10 REPLY <>"$1"; then
        fail "$2: timed out waiting on $1"
        return 1
    fi
}

# signal FIFO: write one line to FIFO for a process blocked reading it (10 s bound).
signal() {
    timeout 10 bash -c 'echo go >"$1"' _ "$1" || fail "nobody read $1"
}

# blocked_on_flock PID: true once PID is waiting for a flock (it shows in
# /proc/locks as a blocked "->" entry). Polls for up to 10 s.
blocked_on_flock() {
    local i
    for ((i = 0; i < 1000; i++)); do
        grep -Eq -- "-> FLOCK +ADVISORY +WRITE +$1 " /proc/locks && return 0
        sleep 0.01
    done
    return 1
}
