#!/usr/bin/env bash
# Lock-file ownership through the shim (README "Locks", issue 9): the shim
# writes nothing into "<target>.lock" and removes only its own.
#   1 another program's lock file (Gemfile.lock) is unchanged (inode, mtime,
#     bytes) after 100 shimmed writes of the target
#   2 rename/renameat/renameat2/mv of X.lock onto a matched X (git's
#     protocol) give what they give without the shim
#   3 a FIFO, directory, socket, symlink or hard link at X.lock is refused at
#     once (also with --timeout 1), named on stderr, and left as it was
#   4 root's write with a root-owned file hard-linked to X.lock by another
#     user (fs.protected_hardlinks=0) is refused; the file is unchanged
#   5 a holder killed with -9 leaves its lock file; the next write removes it
#   6 the exec hand-over keeps a foreign lock file and removes its own
usage="$0 ATOMICALLY PRELOAD_OBJECT"
. "$(dirname "$0")/lib.sh"

# stamp FILE: inode, link count, mode, size, mtime (ns) and, for a regular
# file, a hash of its content.
stamp() {
    local s
    s=$(stat -c '%i %h %f %s %.9Y' "$1" 2>&1) || { echo "$s"; return; }
    [ -f "$1" ] && [ ! -L "$1" ] && s="$s $(sha256sum <"$1")"
    echo "$s"
}
# expect_same NAME FILE BEFORE: FILE's stamp is still BEFORE.
expect_same() { [ "$(stamp "$2")" = "$3" ] || fail "$1: $2 changed: $3 -> $(stamp "$2")"; }

# ---- 1: a foreign lock file with content ----
for mode in "${modes[@]}"; do
    newdir "foreign-$mode"
    t="1 foreign/$mode"
    printf 'LOCKED DEPS\n' >Gemfile.lock
    before=$(stamp Gemfile.lock)
    shim "$mode" "$d/Gemfile" sh -c 'i=0; while [ $i -lt 100 ]; do echo "gem $i" > Gemfile || exit 1; i=$((i + 1)); done'
    expect_status "$t" 0 $?
    expect_content "$t" Gemfile $'gem 99\n'
    expect_same "$t" Gemfile.lock "$before"
    expect_content "$t" Gemfile.lock $'LOCKED DEPS\n'
    expect_entries "$t" "$d" Gemfile Gemfile.lock
done

# ---- 2: renames of X.lock onto a matched X ----
# run_rename DIR HOW: in DIR, "old" in g and "new" in g.lock, then HOW
# moves g.lock onto g; prints the exit status, g's content and the entries.
rename_cmds=(
    "$python3 -c 'import os; os.rename(\"g.lock\", \"g\")'"
    "$python3 -c 'import os; d = os.open(\".\", os.O_RDONLY); os.rename(\"g.lock\", \"g\", src_dir_fd=d, dst_dir_fd=d)'"
    "$python3 -c 'import ctypes, sys; c = ctypes.CDLL(None, use_errno=True); sys.exit(0 if c.renameat2(-100, b\"g.lock\", -100, b\"g\", 0) == 0 else ctypes.get_errno())'"
    "mv g.lock g"
    "mv -f g.lock g"
    # The program flock()s g.lock itself, then renames onto g: the shim's
    # rename must not wait for the lock this very process holds (under
    # `timeout`: a deadlock fails with 124).
    "$python3 -c 'import fcntl, os; f = open(\"g.lock\"); fcntl.flock(f, fcntl.LOCK_EX); os.rename(\"g.lock\", \"g\")'"
    "$python3 -c 'import fcntl, os; f = open(\"g.lock\"); fcntl.flock(f, fcntl.LOCK_EX); open(\"t\", \"w\").write(\"t\\n\"); os.rename(\"t\", \"g\")'"
)
outcome() {
    local rc=$1
    echo "status $rc; g: $(cat g 2>&1); entries: $(ls -A | tr '\n' ' ')"
}
if [ -n "$python3" ]; then
    i=0
    for how in "${rename_cmds[@]}"; do
        i=$((i + 1))
        newdir "rename-plain-$i"
        printf 'old\n' >g
        printf 'new\n' >g.lock
        timeout 20 sh -c "$how" 2>/dev/null
        want=$(outcome $?)
        for mode in "${modes[@]}"; do
            newdir "rename-$mode-$i"
            printf 'old\n' >g
            printf 'new\n' >g.lock
            shim "$mode" "$d/g" timeout 20 sh -c "$how" 2>"$d.err"
            got=$(outcome $?)
            [ "$got" = "$want" ] || fail "2 rename/$mode: $how: $got; without the shim: $want ($(cat "$d.err"))"
        done
    done
else
    skip_check "2 renames" "no python3"
fi

# ---- 3: things that are not lock files ----
intruder() {
    case $1 in
    fifo) mkfifo f.lock ;;
    directory) mkdir f.lock ;;
    socket) "$python3" -c 'import socket; socket.socket(socket.AF_UNIX).bind("f.lock")' ;;
    symlink) printf 'victim\n' >victim && ln -s victim f.lock ;;
    hardlink) printf 'precious\n' >precious && ln precious f.lock ;;
    esac
}
declare -A words=([fifo]="is a FIFO" [directory]="is a directory" [socket]="is a socket"
    [symlink]="is a symbolic link" [hardlink]="has 2 links")
for kind in fifo directory socket symlink hardlink; do
    [ "$kind" = socket ] && [ -z "$python3" ] && { skip_check "3 socket" "no python3"; continue; }
    for mode in "${modes[@]}"; do
        newdir "intruder-$kind-$mode"
        t="3 $kind/$mode"
        printf 'old\n' >f
        intruder "$kind" || { fail "$t: cannot make the $kind"; continue; }
        before=$(stamp f.lock)
        start=$(date +%s%N)
        if [ "$mode" = launcher ]; then
            timeout 10 "$atomically" --timeout 1 --rule "$d/f" -- sh -c 'echo new > f' 2>err
        else
            timeout 10 env WRAP_LOCKFILE_TIMEOUT=1 LD_PRELOAD="$preload" WRAP_LOCKFILE_RULES="$d/f" \
                sh -c 'echo new > f' 2>err
        fi
        rc=$?
        elapsed=$((($(date +%s%N) - start) / 1000000))
        [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "$t: exit status $rc, want a refusal"
        [ "$elapsed" -lt 900 ] || fail "$t: took ${elapsed} ms (waited on it?)"
        grep -qF "lock file '$d/f.lock' ${words[$kind]}" err || fail "$t: stderr does not name it: $(cat err)"
        expect_content "$t" f $'old\n'
        expect_same "$t" f.lock "$before"
        [ -e victim ] && expect_content "$t" victim $'victim\n'
        [ -e precious ] && expect_content "$t" precious $'precious\n'
    done
done

# ---- 4: a root-owned file hard-linked to conf.lock by another user ----
if is_root && have setpriv && [ -w /proc/sys/fs/protected_hardlinks ]; then
    newdir hostile
    chmod 0755 "$tmp"
    chmod 0777 "$d"
    mkdir private && chmod 0711 private
    printf 'root secret\n' >private/secret
    chmod 0600 private/secret
    printf 'conf\n' >conf
    saved=$(cat /proc/sys/fs/protected_hardlinks)
    trap 'echo "$saved" > /proc/sys/fs/protected_hardlinks; cleanup' EXIT
    echo 0 >/proc/sys/fs/protected_hardlinks
    setpriv --reuid=65534 --regid=65534 --clear-groups ln private/secret conf.lock 2>err
    lrc=$?
    echo "$saved" >/proc/sys/fs/protected_hardlinks
    trap cleanup EXIT
    if [ "$lrc" -eq 0 ]; then
        before=$(stamp private/secret)
        for mode in "${modes[@]}"; do
            shim "$mode" "$d/conf" sh -c 'echo new > conf' 2>err
            rc=$?
            [ "$rc" -ne 0 ] || fail "4 hostile/$mode: root's write went through"
            grep -qF "lock file '$d/conf.lock' has 2 links" err || fail "4 hostile/$mode: stderr: $(cat err)"
            expect_same "4 hostile/$mode" private/secret "$before"
            expect_content "4 hostile/$mode" conf $'conf\n'
        done
    else
        skip_check "4 hostile hard link" "nobody cannot link: $(cat err)"
    fi
else
    skip_check "4 hostile hard link" "needs root, setpriv and a writable fs.protected_hardlinks"
fi

# ---- 5: kill -9 of a holder ----
for mode in "${modes[@]}"; do
    newdir "killed-$mode"
    t="5 killed/$mode"
    printf 'old\n' >f
    (shim "$mode" "$d/f" sh -c 'exec > f; echo partial; kill -9 $$') 2>/dev/null
    [ -e f.lock ] || fail "$t: the killed holder left no lock file (nothing to test)"
    expect_content "$t" f $'old\n'
    shim "$mode" "$d/f" sh -c 'echo new > f'
    expect_status "$t: next writer" 0 $?
    expect_content "$t" f $'new\n'
    expect_entries "$t" "$d" f
    # An empty lock file somebody else made (no marker) is not ours.
    : >f.lock
    shim "$mode" "$d/f" sh -c 'echo newer > f'
    expect_content "$t" f $'newer\n'
    expect_entries "$t: foreign empty f.lock" "$d" f f.lock
done

# ---- 6: the exec hand-over carries whether the lock file is ours ----
for mode in "${modes[@]}"; do
    newdir "exec-$mode"
    t="6 exec/$mode"
    printf 'old\n' >f
    shim "$mode" "$d/f" bash -c 'exec > f; exec bash -c "echo new"'
    expect_status "$t" 0 $?
    expect_content "$t" f $'new\n'
    expect_entries "$t: own lock file" "$d" f
    printf 'theirs\n' >f.lock
    before=$(stamp f.lock)
    shim "$mode" "$d/f" bash -c 'exec > f; exec bash -c "echo newer"'
    expect_status "$t" 0 $?
    expect_content "$t" f $'newer\n'
    expect_same "$t" f.lock "$before"
    expect_entries "$t: foreign lock file" "$d" f f.lock
done

finish
