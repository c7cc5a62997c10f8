#!/usr/bin/env bash
# Programs' own X.lock protocols under the shim (README "Locks", issue 9):
# git writes "<file>.lock" with O_CREAT|O_EXCL and renames it over <file>.
# Each git command runs plainly in one fresh repository and under the shim
# (both launcher and raw preload) in others; exit status, output, commit and
# tree hashes, `git fsck`, the index and the work files must be the same.
# Two rule sets:
#   `$repo/**` (.git and the work tree): <file>.lock is <file>'s lock file,
#     left alone (README "Globs"), so git creates and fills it for real, as
#     plainly, and a concurrent git finds it; the shim's rename interposer
#     locks it, git's own file, as it is (no pid written, nothing removed).
#   `$repo/**/*.lock` (git's lock files alone): they are replacements.
#     `git init` and `git config --file F` on an existing F chmod("<F>.lock")
#     by path while git still has the lock file open (config.c): that is our
#     pending replacement, with no name yet, so the coherent view applies the
#     chmod to it (shim/linux/preload/pending_meta.hpp).
usage="$0 ATOMICALLY PRELOAD_OBJECT"
. "$(dirname "$0")/lib.sh"

have git || skip_all "git not installed"

# Same identity, dates and configuration everywhere: same hashes.
export GIT_AUTHOR_NAME=Tester GIT_AUTHOR_EMAIL=tester@example.org
export GIT_COMMITTER_NAME=Tester GIT_COMMITTER_EMAIL=tester@example.org
export GIT_AUTHOR_DATE='2020-01-02T03:04:05Z' GIT_COMMITTER_DATE='2020-01-02T03:04:05Z'
export HOME=$tmp/home GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0
mkdir -p "$HOME"
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE

# The command sequence, in the current directory (a fresh repository).
# Each line: a shell command; "$G" is git, plain or under the shim.
steps=(
    'printf "one\n" > a; printf "two\n" > b; $G add a b'
    '$G commit -q -m first'
    'printf "one+\n" > a; $G add a; $G commit -q -m second'
    '$G config --file cfg a.b 2'
    '$G config --file cfg a.b 3; $G config --file cfg a.c 4'
    '$G checkout -q -b side'
    'printf "side\n" > c; $G add c; $G commit -q -m side'
    '$G checkout -q main'
    'printf "dirty\n" >> b; $G stash -q'
    '$G stash list'
    '$G stash pop -q'
    '$G checkout -q -- b'
    '$G gc -q'
    '$G checkout -q side'
    '$G log --format="%H %T %P %s" --all'
)

# state: everything observable about the repository in the current directory.
state() {
    echo "== log"; git log --all --format='%H %T %P %s' 2>&1
    echo "== fsck"; git fsck --full --strict 2>&1; echo "fsck status $?"
    echo "== status"; git status --porcelain=v1 --branch 2>&1
    echo "== stash"; git stash list 2>&1
    echo "== index"; git ls-files -s 2>&1
    echo "== refs"; git for-each-ref --format='%(refname) %(objectname)' 2>&1
    echo "== config"; git config --file cfg --list 2>&1
    echo "== repository config"; git config --file .git/config --list 2>&1
    echo "== modes"; stat -c '%a %n' cfg .git/config .git/HEAD .git/description 2>&1
    echo "== work"; find . -path ./.git -prune -o -type f -print | LC_ALL=C sort | xargs -r sha256sum
    echo "== lock files"; find . -name '*.lock' | LC_ALL=C sort
}

# run MODE [SET]: the sequence in $tmp/MODE/repo, plain (MODE plain) or
# under the shim with rule set SET (all, locks); step outputs and statuses
# go to $tmp/MODE.out, the state to $tmp/MODE.state.
run() {
    local mode=$1 set=${2-} step i=0 rc
    local repo=$tmp/$mode/repo
    mkdir -p "$tmp/$mode" || exit 1
    if [ "$mode" = plain ]; then
        git init -q -b main "$repo"
    else
        shim_git "$set" "${mode%-*}" "$repo" init -q -b main "$repo"
    fi >"$tmp/$mode.init" 2>&1 || fail "git/$mode: git init failed: $(cat "$tmp/$mode.init")"
    cd "$repo" || exit 1
    : >"$tmp/$mode.out"
    for step in "${steps[@]}"; do
        i=$((i + 1))
        if [ "$mode" = plain ]; then
            G=git
        else
            G="shim_git $set ${mode%-*} $repo"
        fi
        (eval "$step") >>"$tmp/$mode.out" 2>&1
        rc=$?
        echo "step $i status $rc" >>"$tmp/$mode.out"
    done
    state >"$tmp/$mode.state"
    cd "$tmp" || exit 1
}
shim_git() {
    local set=$1 mode=$2 repo=$3 globs
    shift 3
    case $set in
    all) globs="$repo/**" ;;
    locks) globs="$repo/**/*.lock" ;;
    esac
    shim "$mode" "$globs" git "$@"
}

run plain
for set in all locks; do
    for how in "${modes[@]}"; do
        mode=$how-$set
        clear_log
        run "$mode" "$set"
        diff -u "$tmp/plain.out" "$tmp/$mode.out" >"$tmp/$mode.diff" ||
            fail "git/$mode: steps differ from plain git: $(cat "$tmp/$mode.diff")"
        diff -u "$tmp/plain.state" "$tmp/$mode.state" >"$tmp/$mode.diff" ||
            fail "git/$mode: repository differs from plain git's: $(cat "$tmp/$mode.diff")"
        repo=$tmp/$mode/repo
        if [ $set = all ]; then
            # Not vacuous: the shim replaced what git writes without a lock
            # file of its own, and none of git's lock files.
            grep -q "committed '$repo/.git/description'" "$WRAP_LOCKFILE_LOG" ||
                fail "git/$mode: the shim never replaced .git/description (log: $(head -c 2000 "$WRAP_LOCKFILE_LOG"))"
            grep "replacing '.*\.lock'" "$WRAP_LOCKFILE_LOG" >"$tmp/$mode.locks" &&
                fail "git/$mode: git's lock files were replaced: $(head -c 2000 "$tmp/$mode.locks")"
        else
            grep -q "committed '$repo/.git/index.lock'" "$WRAP_LOCKFILE_LOG" ||
                fail "git/$mode: the shim never replaced .git/index.lock (log: $(head -c 2000 "$WRAP_LOCKFILE_LOG"))"
            # git init and config --file on an existing file chmod a pending lock file.
            grep -q "committed '$repo/.git/config.lock'" "$WRAP_LOCKFILE_LOG" ||
                fail "git/$mode: git init's .git/config.lock was not a replacement (log: $(head -c 2000 "$WRAP_LOCKFILE_LOG"))"
            grep -q "committed '$repo/cfg.lock'" "$WRAP_LOCKFILE_LOG" ||
                fail "git/$mode: config --file's cfg.lock was not a replacement"
        fi
    done
done
grep -q '^fsck status 0$' "$tmp/plain.state" || fail "plain git: fsck failed: $(cat "$tmp/plain.state")"

finish
