#!/usr/bin/env bash
# Kernel protections kept under the shim: in a sticky world-writable (or,
# for level 2, group-writable) directory, where fs.protected_symlinks,
# fs.protected_regular or fs.protected_fifos make a plain root open(2) fail,
# the same command under the shim fails the same way (exit status and errno)
# and the file behind it stays byte for byte as it was; with the sysctl at 0
# the shim does what the plain command does. The hostile user is nobody.
# Also: a target without an ACL in a directory with a default ACL stays
# without one. Every sysctl is restored (trap) and changed only around one
# check.
#     protections_test.sh ATOMICALLY PRELOAD_OBJECT
usage="$0 ATOMICALLY PRELOAD_OBJECT"
. "$(dirname "$0")/lib.sh"

# The sysctls' values before the test, restored on every exit.
declare -A saved=()
restore_sysctls() {
    local k
    for k in "${!saved[@]}"; do sysctl -qw "fs.$k=${saved[$k]}"; done
}
trap 'restore_sysctls; cleanup' EXIT
trap 'exit 143' TERM INT  # so that the EXIT trap restores them on a timeout too

# set_sysctl NAME VALUE
set_sysctl() {
    [ -n "${saved[$1]+x}" ] || saved[$1]=$(sysctl -n "fs.$1") || return 1
    sysctl -qw "fs.$1=$2"
}

as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }

# The errno name of the open(2) a python program makes of FILE with FLAGS
# ("OK" when it is allowed), plainly or (MODE launcher|preload) under the
# shim with FILE matched.
open_errno() {
    local mode=$1 file=$2 flags=$3
    local prog='import errno, os, sys
try:
    os.close(os.open(sys.argv[1], eval(sys.argv[2]), 0o666))
    print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])'
    if [ "$mode" = plain ]; then
        "$python3" -c "$prog" "$file" "$flags"
    else
        shim "$mode" "$file" "$python3" -c "$prog" "$file" "$flags"
    fi
}

# compare NAME FILE VICTIM WANT_ERRNO FLAGS: the shell's `echo x > FILE` and
# python's open(FILE, FLAGS) give the same exit status and errno plainly
# and under the shim (WANT_ERRNO: what the plain one must give, OK or a
# name), and VICTIM (the file the path leads to) ends as the plain run left
# it: unchanged when refused. An allowed sh run is not compared (it writes).
compare() {
    local name=$1 file=$2 victim=$3 want=$4 flags=$5 mode plain_status status before got
    got=$(open_errno plain "$file" "$flags")
    # As the plain open left it (an allowed O_TRUNC empties it).
    before=$(cat "$victim" 2>/dev/null; echo .)
    [ "$got" = "$want" ] || { skip_check "$name" "the plain open gives $got here, want $want (kernel without this protection?)"; return; }
    for mode in "${modes[@]}"; do
        got=$(open_errno "$mode" "$file" "$flags" 2>/dev/null)
        [ "$got" = "$want" ] || fail "$name ($mode): python's open gives $got under the shim, $want plainly"
        [ "$(cat "$victim" 2>/dev/null; echo .)" = "$before" ] || fail "$name ($mode): $victim changed by an open"
    done
    [ "$want" = OK ] && return
    # The issue's repro: a shell redirection, refused, changes nothing.
    sh -c "echo x > '$file'" 2>/dev/null
    plain_status=$?
    for mode in "${modes[@]}"; do
        shim "$mode" "$file" sh -c "echo x > '$file'" 2>/dev/null
        status=$?
        expect_status "$name ($mode, sh)" "$plain_status" "$status"
        [ "$(cat "$victim" 2>/dev/null; echo .)" = "$before" ] || fail "$name ($mode, sh): $victim was written"
    done
}

is_root || skip_all "needs root (the attacker is nobody, the sysctls are global)"
have setpriv || skip_all "setpriv (util-linux) missing"
chmod 755 "$tmp"
home=$tmp/home
mkdir -m 700 "$home"
shared=$tmp/shared
mkdir "$shared" && chmod 1777 "$shared"
group=$tmp/group
mkdir "$group" && chgrp nogroup "$group" && chmod 1770 "$group"
W='os.O_WRONLY | os.O_CREAT | os.O_TRUNC'

# ---- fs.protected_symlinks: nobody's link to root's file ----
printf 'root secret\n' >"$home/secret"
as_nobody ln -s "$home/secret" "$shared/out" || fail "nobody cannot plant a link"
set_sysctl protected_symlinks 1
compare "protected_symlinks=1, existing target" "$shared/out" "$home/secret" EACCES "$W"
as_nobody ln -s "$home/fresh" "$shared/dangling"
compare "protected_symlinks=1, dangling link" "$shared/dangling" "$home/fresh" EACCES "$W"
[ -e "$home/fresh" ] && fail "protected_symlinks=1: a file was created behind a dangling link"
expect_entries "protected_symlinks=1" "$home" secret
set_sysctl protected_symlinks 0
for mode in "${modes[@]}"; do
    printf 'root secret\n' >"$home/secret"
    shim "$mode" "$shared/out" sh -c "echo x > '$shared/out'"
    expect_status "protected_symlinks=0 ($mode)" 0 $?
    expect_content "protected_symlinks=0 ($mode): the link is followed as by open(2)" "$home/secret" $'x\n'
done
restore_sysctls
rm -f "$shared/out" "$shared/dangling"

# ---- fs.protected_regular: nobody's 0666 file for root to write into ----
plant() { as_nobody sh -c "umask 0; printf 'nobody data\n' > '$1'"; }
plant "$shared/out"
plant "$group/out"
for level in 1 2; do
    set_sysctl protected_regular "$level"
    compare "protected_regular=$level, world-writable sticky directory" "$shared/out" "$shared/out" EACCES "$W"
done
set_sysctl protected_regular 1
compare "protected_regular=1, group-writable sticky directory" "$group/out" "$group/out" OK "$W"
set_sysctl protected_regular 2
compare "protected_regular=2, group-writable sticky directory" "$group/out" "$group/out" EACCES "$W"
set_sysctl protected_regular 0
for mode in "${modes[@]}"; do
    shim "$mode" "$shared/out" sh -c "echo root > '$shared/out'"
    expect_status "protected_regular=0 ($mode)" 0 $?
    expect_content "protected_regular=0 ($mode): written as by open(2)" "$shared/out" $'root\n'
    [ "$(stat -c %u "$shared/out")" = 65534 ] || fail "protected_regular=0 ($mode): the owner changed"
done
restore_sysctls
expect_entries "protected_regular: nothing left beside" "$shared" out

# ---- fs.protected_fifos: nobody's FIFO; O_RDWR never waits for a peer ----
as_nobody sh -c "umask 0; mkfifo '$shared/fifo' '$group/fifo'"
RW='os.O_RDWR | os.O_CREAT'
for level in 1 2; do
    set_sysctl protected_fifos "$level"
    compare "protected_fifos=$level, world-writable sticky directory" "$shared/fifo" /dev/null EACCES "$RW"
done
set_sysctl protected_fifos 1
compare "protected_fifos=1, group-writable sticky directory" "$group/fifo" /dev/null OK "$RW"
set_sysctl protected_fifos 2
compare "protected_fifos=2, group-writable sticky directory" "$group/fifo" /dev/null EACCES "$RW"
set_sysctl protected_fifos 0
compare "protected_fifos=0" "$shared/fifo" /dev/null OK "$RW"
restore_sysctls
[ -p "$shared/fifo" ] || fail "protected_fifos: the FIFO is gone"

# ---- ACL: none stays none under a directory default ACL ----
newdir acl
if setfacl -d -m u:nobody:rw . 2>/dev/null && have getfacl; then
    for mode in "${modes[@]}"; do
        echo old >t
        setfacl -b t
        before=$(stat -c %a t)
        shim "$mode" "$d/t" sh -c 'echo new > t'
        expect_content "acl ($mode)" t $'new\n'
        getfacl -cp t 2>/dev/null | grep -q '^user:nobody' && fail "acl ($mode): t gained the directory's default ACL"
        [ "$(stat -c %a t)" = "$before" ] || fail "acl ($mode): mode $before became $(stat -c %a t)"
    done
else
    skip_check "acl" "no default ACLs here"
fi

finish
