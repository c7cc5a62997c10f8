#!/bin/bash
# Inode flags and per-inode attributes (README "What one replacement does",
# docs/design.md step 6, "Inode flags"): chattr's nodump, noatime, sync
# (and data journalling where it can be set), the project id (lsattr -p,
# chattr -p) and XFS's extent size hints. An in-place write keeps them, as
# the inode stays; a replacement under the shim must end with the same
# ones. Each case runs twice on twin files, plainly and under the shim, and
# FS_IOC_GETFLAGS / FS_IOC_FSGETXATTR of both are compared; the shim's must
# be a new inode (atomic) unless the attributes cannot be given to one (data
# journalling for nobody, a project id from a user namespace): then it is
# written in place, the same inode. On tmpfs (/dev/shm, any user), and as
# root on ext4 and XFS images on loop devices, as root and as nobody.
# Usage: inode_flags_test.sh ATOMICALLY PRELOAD_OBJECT
# Exit: 0 pass, 1 fail, 77 a check could not run (its SKIP line says why).
usage="inode_flags_test.sh ATOMICALLY PRELOAD_OBJECT"
. "$(dirname "$0")/lib.sh"
[ -x "$python3" ] || skip_all "python3 not installed (it reads the attributes)"
have chattr || skip_all "chattr not installed (e2fsprogs)"

mounts=()
loops_cleanup() {
    local m
    cd /
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m"; done
    [ -n "${shm:-}" ] && rm -rf "$shm"
    cleanup
}
trap loops_cleanup EXIT

# attrs FILE: the flags and attributes a replacement carries, one line
# (what lsattr -p and xfs_io stat show); "-" for a query the file system lacks.
attrs() {
    "$python3" - "$1" <<'EOF'
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
out = []
for name, req, size in (("flags", 0x80086601, 4), ("fsx", 0x801C581F, 28)):
    try:
        v = struct.unpack("7I", fcntl.ioctl(fd, req, bytes(28))[:28]) if size == 28 else \
            struct.unpack("I", fcntl.ioctl(fd, req, bytes(4)))
    except OSError:
        out.append(name + "=-")
        continue
    if size == 4:
        out.append("flags=%#x" % v[0])
    else:  # xflags less "has an xattr fork" (no attribute: XFS makes the fork
        # for a new file, the ACL removal of a temp may drop it), extsize,
        # nextents (not compared), projid, cowextsize
        out.append("xflags=%#x extsize=%d projid=%d cowextsize=%d" % (v[0] & ~0x80000000, v[1], v[3], v[4]))
print(" ".join(out))
EOF
}

# settle FILE SPEC...: gives FILE (empty) the attributes SPEC names, then
# its old content: hint:N and cowhint:N (XFS extent size hints, only on an
# empty file), project:N, and chattr flags (+dAS, +j).
settle() {
    local f=$1 s
    shift
    : >"$f" || return 1
    for s in "$@"; do
        case $s in
        hint:*) xfs_io -c "extsize ${s#hint:}" "$f" || return 1 ;;
        cowhint:*) xfs_io -c "cowextsize ${s#cowhint:}" "$f" || return 1 ;;
        esac
    done
    printf 'old\n' >"$f"
    for s in "$@"; do
        case $s in
        project:*) chattr -p "${s#project:}" "$f" 2>/dev/null || return 1 ;;
        +*) chattr "$s" "$f" 2>/dev/null || return 1 ;;
        root:*) ;;
        esac
    done
}

# The writes: an open of the existing target as each program makes it.
write_gt() { sh -c 'echo new >"$1"' _ "$1"; }
write_cp() { printf 'new\n' >"${1%.txt}.src" && cp "${1%.txt}.src" "$1"; }
write_rplus() { "$python3" -c 'import sys; f = open(sys.argv[1], "r+"); f.write("new\n"); f.close()' "$1"; }
writes=(gt cp rplus)

# check NAME DIR HOW WRITE OWNER WRITER SPEC...: twin files in DIR settled
# with SPEC by OWNER (a command prefix, e.g. as_nobody, or ""; a spec
# root:FLAGS is set by the test itself afterwards), one written plainly, one
# under the shim, both by WRITER; attributes and content compared; HOW is
# atomic (a new inode) or in-place (the same one).
check() {
    local name=$1 dir=$2 how=$3 write=$4 owner=$5 writer=$6 plain shimmed before old s t
    shift 6
    plain=$dir/$write-plain.txt
    shimmed=$dir/$write-shim.txt
    rm -f "$plain" "$shimmed"
    for t in "$plain" "$shimmed"; do
        if ! $owner bash -c "$(declare -f settle); settle \"\$@\"" _ "$t" "$@"; then
            skip_check "$name" "cannot set $* here"
            rm -f "$plain" "$shimmed"
            return
        fi
        for s in "$@"; do
            case $s in root:*) chattr "${s#root:}" "$t" 2>/dev/null || {
                skip_check "$name" "chattr ${s#root:} refused here"
                rm -f "$plain" "$shimmed"
                return
            } ;;
            esac
        done
    done
    before=$(attrs "$shimmed")
    old=$(ino "$shimmed")
    local body
    body="$(declare -f "write_$write"); tmp=$tmp; python3=$python3; write_$write \"\$1\""
    $writer bash -c "$body" _ "$plain"
    $writer env LD_PRELOAD="$preload" WRAP_LOCKFILE_RULES='*.txt' bash -c "$body" _ "$shimmed"
    expect_content "$name" "$plain" $'new\n'
    expect_content "$name" "$shimmed" $'new\n'
    local after_plain after_shim
    after_plain=$(attrs "$plain")
    after_shim=$(attrs "$shimmed")
    [ "$after_plain" = "$before" ] || fail "$name: a plain write changed the attributes ($before -> $after_plain)"
    [ "$after_shim" = "$after_plain" ] || fail "$name: under the shim [$after_shim], plainly [$after_plain]"
    if [ "$how" = atomic ]; then
        [ "$(ino "$shimmed")" != "$old" ] || fail "$name: written in place, not replaced"
    else
        [ "$(ino "$shimmed")" = "$old" ] || fail "$name: replaced (inode $old -> $(ino "$shimmed")), want in place"
    fi
}

as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
# A writer in a user namespace: it may not move a file between projects.
in_userns() { unshare --user --map-root-user "$@"; }

# ---- tmpfs: nodump and noatime, which a file's owner sets (any user) ----
shm=$(mktemp -d /dev/shm/inode_flags.XXXXXX) || exit 1
if settle "$shm/probe" +dA 2>/dev/null; then
    for w in "${writes[@]}"; do check "tmpfs/$w" "$shm" atomic "$w" "" "" +dA; done
else
    skip_check "tmpfs" "chattr +dA not supported on /dev/shm (tmpfs before Linux 6.0)"
fi

# ---- ext4 and XFS images on loop devices (root) ----
# mkimage FS: a fresh image of FS mounted at $mnt; false (and why in
# $why) where it cannot be made or mounted here.
mkimage() {
    local fs=$1 img=$tmp/$1.img
    mnt=$tmp/mnt-$1
    mkdir -p "$mnt"
    truncate -s 300M "$img" || return 1
    case $fs in
    ext4)
        # The project feature needs a kernel with quota support; without
        # it, ext4 keeps no project ids (those checks are then skipped).
        if mkfs.ext4 -q -F -O project "$img" >/dev/null 2>&1 && mount -o loop "$img" "$mnt" 2>/dev/null; then
            mounts+=("$mnt")
            return 0
        fi
        mkfs.ext4 -q -F "$img" >/dev/null 2>&1 || { why="mkfs.ext4 failed"; return 1; }
        ;;
    xfs) mkfs.xfs -q -f "$img" >/dev/null 2>&1 || { why="mkfs.xfs failed"; return 1; } ;;
    esac
    mount -o loop "$img" "$mnt" 2>/dev/null || { why="cannot loop-mount $fs here"; return 1; }
    mounts+=("$mnt")
}

if ! is_root; then
    skip_check "ext4 and xfs" "needs root (loop devices)"
elif ! have losetup || ! have mount; then
    skip_check "ext4 and xfs" "losetup (util-linux) not installed"
else
    chmod 711 "$tmp"  # nobody reaches its directories by absolute path
    for fs in ext4 xfs; do
        have "mkfs.$fs" || {
            skip_check "$fs" "mkfs.$fs not installed"
            continue
        }
        mkimage "$fs" || {
            skip_check "$fs" "$why"
            continue
        }
        root=$mnt/root nob=$mnt/nobody ns=$mnt/userns
        mkdir -p "$root" "$nob" "$ns"
        chown nobody:nogroup "$nob"
        hints=()
        [ "$fs" = xfs ] && hints=(hint:1m cowhint:2m)
        for w in "${writes[@]}"; do
            check "$fs/$w" "$root" atomic "$w" "" "" +dAS "${hints[@]}"
            check "$fs/$w project" "$root" atomic "$w" "" "" +d project:7 "${hints[@]}"
            # nobody's own file in its own directory: all of it is its to give.
            check "$fs/$w nobody" "$nob" atomic "$w" as_nobody as_nobody +dAS
            check "$fs/$w nobody project" "$nob" atomic "$w" as_nobody as_nobody +d project:5
        done
        # Data journalling needs CAP_SYS_RESOURCE: nobody's replacement could
        # not have it, so nobody's write goes in place (root sets the flag).
        if [ "$fs" = ext4 ]; then
            for w in "${writes[@]}"; do check "$fs/$w data journalling, nobody" "$nob" in-place "$w" as_nobody as_nobody +dA root:+j; done
        fi
        # A project id from a user namespace: refused (EINVAL) for a new
        # inode, so written in place; the project stays.
        if have unshare && in_userns true 2>/dev/null; then
            for w in "${writes[@]}"; do check "$fs/$w project in a user namespace" "$ns" in-place "$w" "" in_userns project:7; done
        else
            skip_check "$fs project in a user namespace" "unshare --user not available"
        fi
        # A directory passing its project on (chattr +P) takes only a file of
        # that project: a target of another one is written in place.
        mkdir -p "$mnt/inherit"
        if chattr +P -p 9 "$mnt/inherit" 2>/dev/null; then
            for w in "${writes[@]}"; do check "$fs/$w other project under +P" "$mnt/inherit" in-place "$w" "" "" project:11; done
            for w in "${writes[@]}"; do check "$fs/$w its project under +P" "$mnt/inherit" atomic "$w" "" "" +d project:9; done
        else
            skip_check "$fs project inheritance" "no project ids on this $fs"
        fi
    done
fi

finish
