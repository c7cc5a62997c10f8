#!/bin/bash
# The corpus: real, unmodified Debian programs, each case run twice in a
# fresh directory of the same path (so absolute paths a program records are
# the same) — plainly, then under `atomically` with rules for the files the
# case writes — and the two runs compared: exit status, stdout and stderr,
# and the final tree (names, types, modes, owners, link counts, link
# targets, content; not times or inode numbers). Then the checks only the
# shim run can have:
#   - a matched file the plain run wrote in place is a new inode;
#   - a reader that held a matched file open before the run still reads the
#     old content;
#   - an unmatched file the plain run kept keeps its inode;
#   - nothing is left behind (no *.lock, no *~~ temporary).
# The cases are in corpus_cases.sh; the format is described there.
# Usage: corpus_test.sh ATOMICALLY PRELOAD_OBJECT [CASE-GLOB]...
#   CASE-GLOBs select cases by name (default: all).
# Prints one line per case and a closing "N passed, N failed, N skipped".
# Exit: 0 every case passed, 1 a case failed, 77 a case was skipped (the
# others passed): a partial corpus is not a pass.
usage="corpus_test.sh ATOMICALLY PRELOAD_OBJECT [CASE-GLOB]..."
. "$(dirname "$0")/lib.sh"
shift 2
selected=("$@")
cases_file=$(dirname "$0")/corpus_cases.sh

# What the commands see, the same in both runs: the system's programs (no
# version-manager shims), no user configuration, fixed identities and dates.
run_path=/usr/sbin:/usr/bin:/sbin:/bin
epoch=946684800 # every entry's mtime after setup: 2000-01-01 00:00:00 UTC
run_env=(
    PATH=$run_path HOME=$tmp/home TMPDIR=$tmp/tmpdir LC_ALL=C TZ=UTC TERM=dumb
    WRAP_LOCKFILE_PRELOAD="$WRAP_LOCKFILE_PRELOAD" WRAP_LOCKFILE_LOG="$WRAP_LOCKFILE_LOG"
    GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=corpus GIT_AUTHOR_EMAIL=corpus@example.org
    GIT_COMMITTER_NAME=corpus GIT_COMMITTER_EMAIL=corpus@example.org
    GIT_AUTHOR_DATE='2000-01-01T00:00:00Z' GIT_COMMITTER_DATE='2000-01-01T00:00:00Z'
)
case_timeout=10
passed=0 failed=0 skipped=0

# glob_re GLOB: in $REPLY, an anchored ERE that matches a path relative to
# the case directory as the shim matches "$d/GLOB": '*', '?' and '[...]'
# stay inside one component, '**' spans components, '**/' may match none.
glob_re() {
    local g=$1 re="" c i=0 j
    while [ "$i" -lt "${#g}" ]; do
        c=${g:i:1}
        case $c in
        '*')
            if [ "${g:i:3}" = '**/' ]; then
                re+='(.*/)?'
                i=$((i + 3))
                continue
            elif [ "${g:i:2}" = '**' ]; then
                re+='.*'
                i=$((i + 2))
                continue
            fi
            re+='[^/]*'
            ;;
        '?') re+='[^/]' ;;
        '[')
            j=${g:i+1}
            j=${j%%]*}
            [ "${j:0:1}" = '!' ] && j="^${j:1}"
            re+="[$j]"
            i=$((i + ${#j} + 1))
            ;;
        [.+^$\(\)\{\}\|\\]) re+="\\$c" ;;
        *) re+=$c ;;
        esac
        i=$((i + 1))
    done
    REPLY="^$re\$"
}

# globs_re 'G1;G2...': in $REPLY, one ERE matching any of them ('' if none;
# a regex that matches nothing is spelled '' and tested as such).
globs_re() {
    local g all="" list
    IFS=';' read -ra list <<<"$1"
    for g in "${list[@]}"; do
        [ -n "$g" ] || continue
        glob_re "$g"
        all+="${all:+|}($REPLY)"
    done
    REPLY=$all
}
matches() { [ -n "$2" ] && [[ $1 =~ $2 ]]; }

# abs_globs 'G1;G2...': in $REPLY, the same globs under "$d/".
abs_globs() {
    local g all="" list
    IFS=';' read -ra list <<<"$1"
    for g in "${list[@]}"; do [ -n "$g" ] && all+="${all:+;}$d/$g"; done
    REPLY=$all
}

# tree DIR VOLATILE_RE: one sorted line per entry below DIR: path, type,
# mode, owner, and for a regular file its link count and content hash (the
# hash is "volatile" for paths matching VOLATILE_RE), for a symlink its
# target; for both whether the mtime is the setup's. Other times, sizes of
# directories and inode numbers are left out.
tree() {
    local dir=$1 vre=$2 h p y m o n l
    local -A sum=()
    while read -r h p; do sum[${p#./}]=$h; done < <(cd "$dir" && find . -type f -exec sha256sum -- {} + 2>/dev/null)
    (cd "$dir" && find . -mindepth 1 -printf '%P\t%y\t%m\t%U:%G\t%n\t%Ts\t%l\n') | sort |
        while IFS=$'\t' read -r p y m o n t l; do
            # An mtime is compared only where it is the setup's fixed one,
            # kept or restored (cp -p, tar -x, rsync -a): other times differ
            # between any two runs.
            [ "$t" = "$epoch" ] && t=" mtime=setup" || t=""
            case $y in
            f)
                h=${sum[$p]:-unreadable}
                matches "$p" "$vre" && h=volatile
                echo "$p f $m $o links=$n$t $h"
                ;;
            l) echo "$p l $o$t -> $l" ;;
            *) echo "$p $y $m $o" ;;
            esac
        done
}

# hashes TREE: "path hash" for every regular file of a tree listing.
hashes() { awk '$2 == "f" {print $1, $NF}' "$1"; }

# inodes DIR: "path inode mtime" for every regular file below DIR.
inodes() { (cd "$1" && find . -mindepth 1 -type f -printf '%P %i %T@\n'); }

# The case being run: its name, reasons it failed, and per run ("plain",
# "shim") the results in $res/RUN.{rc,out,err,tree0,tree1,ino0,ino1}.
reasons=()
why() { reasons+=("$*"); }

# run RUN: one run of the current case in a fresh $d; the shim run holds a
# reader open on every matched file that exists before the command.
run() {
    local run=$1 r=$res/$1 p f fd rules=() direct=()
    local -a held_fd=() held_path=()
    rm -rf "$d" "$tmp/home" "$tmp/tmpdir"
    mkdir -p "$d" "$tmp/home" "$tmp/tmpdir"
    if ! (export "${run_env[@]}" && cd "$d" && eval "$setup") >"$r.setup" 2>&1; then
        why "setup failed ($run run): $(tail -n 1 "$r.setup")"
        return 1
    fi
    find "$d" -exec touch -h -d "@$epoch" {} +
    inodes "$d" >"$r.ino0"
    tree "$d" "$vre" >"$r.tree0"
    if [ "$run" = shim ]; then
        abs_globs "$rules_g"
        [ -n "$REPLY" ] && rules+=(--rule "$REPLY")
        abs_globs "$lock"
        [ -n "$REPLY" ] && rules+=(--lock-only "$REPLY")
        while read -r p _; do
            if matches "$p" "$rre" && ! matches "$p" "$lre" && ! matches "$p" "$ire"; then
                exec {fd}<"$d/$p" || continue
                held_fd+=("$fd")
                held_path+=("$p")
            fi
        done <"$r.ino0"
        rules=("$atomically" "${rules[@]}" --)
    fi
    : >"$WRAP_LOCKFILE_LOG"
    if [ -n "$refuse" ]; then
        eval "direct=($cmd)"
    else
        direct=(bash -c "$cmd")
    fi
    (
        for fd in "${held_fd[@]}"; do exec {fd}<&-; done
        cd "$d" && exec env -i "${run_env[@]}" timeout -k 5 "$case_timeout" "${rules[@]}" "${direct[@]}"
    ) </dev/null >"$r.out" 2>"$r.err"
    echo $? >"$r.rc"
    cp "$WRAP_LOCKFILE_LOG" "$r.log"
    inodes "$d" >"$r.ino1"
    tree "$d" "$vre" >"$r.tree1"
    local -A old=()
    while read -r p h; do old[$p]=$h; done < <(hashes "$r.tree0")
    for f in "${!held_fd[@]}"; do
        fd=${held_fd[f]}
        p=${held_path[f]}
        read -r h _ < <(sha256sum <&"$fd")
        [ "${old[$p]}" = volatile ] || [ "$h" = "${old[$p]}" ] ||
            why "a reader holding the old $p open saw new content"
        exec {fd}<&-
    done
    return 0
}

# normalized FILE: FILE with the case directory spelled '$D'.
normalized() { sed "s|$d|\$D|g" "$1"; }

# first_diff A B: the first differing line of two files, for a reason.
first_diff() {
    diff "$1" "$2" | grep -m 3 '^[<>]' | sed 's/^</plain:/; s/^>/shim:/' | tr '\n' ' '
}

# show FILE: FILE's content quoted when it is short, else its size.
show() {
    if [ "$(stat -c %s "$1")" -le 120 ]; then
        contents "$1"
        printf '%q' "$REPLY"
    else
        printf '%s bytes' "$(stat -c %s "$1")"
    fi
}

# tree_diff: a reason per entry whose final state differs between the runs
# (the plain run's tree is kept in $res/plain.d for this).
tree_diff() {
    local p rest n=0
    local -A a=() b=()
    while read -r p rest; do a[$p]=$rest; done <"$res/plain.tree1"
    while read -r p rest; do b[$p]=$rest; done <"$res/shim.tree1"
    while read -r p; do
        [ "${a[$p]:-}" = "${b[$p]:-}" ] && continue
        n=$((n + 1))
        [ $n -le 4 ] || continue
        if [ -z "${b[$p]:-}" ]; then
            why "$p missing under the shim"
        elif [ -z "${a[$p]:-}" ]; then
            why "$p only under the shim (${b[$p]% *})"
        elif [ -f "$d/$p" ] && [ -f "$res/plain.d/$p" ] && [ ! -L "$d/$p" ]; then
            # A regular file: say which of attributes, content, mtime differ.
            local pa=${a[$p]% *} sa=${b[$p]% *}
            [ "${pa/ mtime=setup/}" = "${sa/ mtime=setup/}" ] ||
                why "$p is '${sa/ mtime=setup/}', plain '${pa/ mtime=setup/}'"
            if [ "${a[$p]##* }" != "${b[$p]##* }" ]; then
                why "$p holds $(show "$d/$p"), plain $(show "$res/plain.d/$p")"
            elif [ "$pa" != "${pa/ mtime=setup/}" ] && [ "$sa" = "${sa/ mtime=setup/}" ]; then
                why "$p has a new mtime, plainly it keeps the setup's"
            elif [ "$pa" = "${pa/ mtime=setup/}" ] && [ "$sa" != "${sa/ mtime=setup/}" ]; then
                why "$p keeps the setup's mtime, plainly it gets a new one"
            fi
        else
            why "$p is '${b[$p]}', plain '${a[$p]}'"
        fi
    done < <(printf '%s\n' "${!a[@]}" "${!b[@]}" | sort -u)
    [ $n -le 4 ] || why "and $((n - 4)) more entries differ"
}

# compare [shim]: the checks of a case whose two runs both ran; with
# "shim" (a documented limit whose outcome differs from the plain run's)
# only the checks of the shim run alone: leftovers, unmatched inodes.
compare() {
    local p i t h f r m s left rc_plain rc_shim
    left=$(awk '{print $1}' "$res/shim.tree1" | grep -E '(\.lock$|~~)' | grep -vxFf <(awk '{print $1}' "$res/plain.tree1"))
    [ -z "$left" ] || why "left behind: $(echo $left)"
    [ "${1:-}" = shim ] || compare_outcome
    compare_inodes "${1:-}"
}

# compare_outcome: the plain and the shim run end the same.
compare_outcome() {
    local s rc_plain rc_shim
    rc_plain=$(cat "$res/plain.rc")
    rc_shim=$(cat "$res/shim.rc")
    [ "$rc_plain" = 124 ] && why "the plain run timed out"
    [ "$rc_shim" = 124 ] && why "the shim run timed out after ${case_timeout}s"
    [ "$rc_plain" = "$rc_shim" ] || why "exit status $rc_shim, plain $rc_plain"
    for s in out err; do
        normalized "$res/plain.$s" >"$res/plain.$s.n"
        normalized "$res/shim.$s" >"$res/shim.$s.n"
        cmp -s "$res/plain.$s.n" "$res/shim.$s.n" ||
            why "std$s differs: $(first_diff "$res/plain.$s.n" "$res/shim.$s.n")"
    done
    cmp -s "$res/plain.tree1" "$res/shim.tree1" || tree_diff
}

# compare_inodes [shim]: what the inodes say. A matched file the plain run
# wrote in place is a new inode (not checked with "shim"), an unmatched one
# the plain run kept keeps its inode, a documented in-place one keeps it.
compare_inodes() {
    local p i t h f r m
    # Per run (p: plain, s: shim) and moment (0: before, 1: after the
    # command): inode, mtime and content hash of every regular file.
    local -A pi0=() pt0=() ph0=() pi1=() pt1=() ph1=() si0=() st0=() sh0=() si1=() st1=() sh1=()
    for r in p s; do
        for m in 0 1; do
            local -n ino="${r}i$m" mt="${r}t$m" hs="${r}h$m"
            f=$res/$([ $r = p ] && echo plain || echo shim)
            while read -r p i t; do ino[$p]=$i mt[$p]=$t; done <"$f.ino$m"
            while read -r p h; do hs[$p]=$h; done < <(hashes "$f.tree$m")
            unset -n ino mt hs
        done
    done
    for p in "${!si0[@]}"; do
        [ -n "${si1[$p]:-}" ] || continue # removed (or replaced by a non-file)
        if matches "$p" "$ire"; then
            [ "${si1[$p]}" = "${si0[$p]}" ] || why "$p was replaced, want the documented in-place write"
            continue
        fi
        # Only files the plain run kept (same inode) say what to expect.
        [ -n "${pi1[$p]:-}" ] && [ "${pi1[$p]}" = "${pi0[$p]:-}" ] || continue
        if matches "$p" "$rre" && ! matches "$p" "$lre"; then
            [ "${1:-}" = shim ] && continue
            # The plain run wrote it in place if its content or mtime moved.
            if [ "${si1[$p]}" = "${si0[$p]}" ] &&
                { [ "${ph1[$p]}" != "${ph0[$p]}" ] || [ "${pt1[$p]}" != "${pt0[$p]}" ]; }; then
                why "$p kept its inode (the plain run wrote it in place; want a new inode)"
            fi
        elif [ "${si1[$p]}" != "${si0[$p]}" ]; then
            why "unmatched $p was replaced (inode ${si0[$p]} -> ${si1[$p]})"
        fi
    done
}

# compare_refusal: the checks of a case whose shim run is a documented refusal.
compare_refusal() {
    local rc lines
    rc=$(cat "$res/shim.rc")
    [ "$rc" = "$refuse" ] || why "exit status $rc, want the refusal's $refuse"
    lines=$(wc -l <"$res/shim.err")
    [ "$lines" = 1 ] || why "stderr has $lines lines, want one line saying why"
    cmp -s "$res/shim.tree0" "$res/shim.tree1" || why "the refused run changed the tree: $(first_diff "$res/shim.tree0" "$res/shim.tree1")"
    # The refusal protects something: plainly, the program does write.
    ! cmp -s "$res/plain.tree0" "$res/plain.tree1" || why "the plain run wrote nothing: the case proves nothing"
}

# c NAME PROGRAMS RULES SETUP COMMAND [KEY=VALUE]...: define and run one case
# (see corpus_cases.sh).
c() {
    local name=$1 needs=$2 rules_g=$3 setup=$4 cmd=$5 kv prog sel
    local volatile="" inplace="" lock="" refuse="" limit="" root="" check="" renames="" compare=""
    shift 5 || { echo "corpus: case ${name:-?}: too few fields" >&2; exit 1; }
    for kv; do
        case $kv in
        volatile=* | inplace=* | lock=* | refuse=* | limit=* | root=* | check=* | renames=* | compare=*) local "$kv" ;;
        *)
            echo "corpus: case $name: unknown key $kv" >&2
            exit 1
            ;;
        esac
    done
    if [ -n "$inplace$refuse$compare" ] && [ -z "$limit" ]; then
        echo "corpus: case $name: inplace=, refuse= and compare= need limit=" >&2
        exit 1
    fi
    if [ ${#selected[@]} -gt 0 ]; then
        for sel in "${selected[@]}"; do [[ $name == $sel ]] && break; done
        [[ $name == $sel ]] || return 0
    fi
    for prog in ${needs//,/ }; do
        if ! PATH=$run_path command -v "$prog" >/dev/null; then
            printf 'skip  %s: %s not found (tools/packages.d/programs.list installs it)\n' "$name" "$prog"
            skipped=$((skipped + 1))
            return 0
        fi
    done
    if [ -n "$root" ] && ! is_root; then
        printf 'skip  %s: needs root (%s)\n' "$name" "$root"
        skipped=$((skipped + 1))
        return 0
    fi
    local d=$tmp/w/$name res=$tmp/r/$name rre lre ire vre
    mkdir -p "$res"
    globs_re "$rules_g" && rre=$REPLY
    globs_re "$lock" && lre=$REPLY
    globs_re "$inplace" && ire=$REPLY
    globs_re "$volatile" && vre=$REPLY
    reasons=()
    local started=$EPOCHREALTIME
    if run plain && mv "$d" "$res/plain.d" && run shim; then
        if [ -n "$refuse" ]; then
            compare_refusal
        elif [ "$compare" = no ]; then
            compare shim
        else
            compare
        fi
        # Evidence the shim was in effect: it logs every replacement it
        # makes (the renames it only serializes are not logged).
        if [ -z "$refuse" ] && [ -z "$renames" ] && ! grep -qF "'$d/" "$res/shim.log"; then
            why "the shim logged no replacement under the case directory (was it loaded?)"
        fi
        if [ -n "$check" ] && ! (cd "$d" && P=$res/plain.d R=$res eval "$check") >"$res/check" 2>&1; then
            why "check failed: $check${check:+ }$(tr '\n' ' ' <"$res/check")"
        fi
    fi
    rm -rf "$d" "$res"
    local took
    took=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }')
    if [ ${#reasons[@]} -eq 0 ]; then
        printf 'ok    %s %s%s\n' "$name" "$took" "${limit:+ (documented limit: $limit)}"
        passed=$((passed + 1))
    else
        local IFS=';'
        printf 'FAIL  %s %s: %s\n' "$name" "$took" "$(printf '%s; ' "${reasons[@]}" | cut -c 1-600)"
        failed=$((failed + 1))
    fi
}

. "$cases_file"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] || exit 1
[ "$skipped" -eq 0 ] || exit 77
exit 0
