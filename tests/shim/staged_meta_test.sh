#!/bin/bash
# Metadata calls on a staged replacement (README "The shim", docs/design.md
# "One coherent file"): a hard-linked target, or another user's file we may
# write, is staged in a memfd and written into the target in place at the
# last close. fchmod, fchown, futimens, fsetxattr and fremovexattr on the
# program's descriptor, their syscall() forms, the *at forms naming the
# descriptor, and chmod/utime by path while it is pending must leave what a
# plain run leaves: mode (set-id bits too), owner, explicit times, xattrs,
# content, and the errno of every call (flags the kernel refuses too, and
# NULL paths), and the xattrs the program reads back must be the target's. So
# must the same calls, stat, truncate and opens through the links into
# /proc that name the descriptor (/proc/self/fd/N, /proc/PID/fd/N,
# /dev/fd/N), staged or not. Each case runs twice in fresh directories,
# plainly and under the shim, as root and as nobody, and everything is
# compared.
# Usage: staged_meta_test.sh ATOMICALLY PRELOAD_OBJECT HELPER_DIR
# Exit: 0 pass, 1 fail, 77 a check could not run (its SKIP line says why).
usage="staged_meta_test.sh ATOMICALLY PRELOAD_OBJECT HELPER_DIR"
. "$(dirname "$0")/lib.sh"
helpers=$(realpath "${3:?$usage}") || exit 1
[ -x "$python3" ] || skip_all "python3 not installed"
is_root || skip_all "needs root: the cases run as root and as nobody, and chown files between them"
have setpriv || skip_all "needs setpriv (util-linux) to run as nobody"
chmod 711 "$tmp"  # nobody reaches its directories by absolute path

# The program: opens f for writing (O_TRUNC) and makes the calls its
# arguments name, printing each call's result (ok or the errno).
prog='import ctypes, os, platform, sys
libc = ctypes.CDLL(None, use_errno=True)
# System call numbers, for the forms libc does not offer (or would refuse).
NEW = {"fchmodat2": 452, "setxattrat": 463, "getxattrat": 464, "listxattrat": 465, "removexattrat": 466}  # the same on both
NR = {"x86_64": dict(NEW, fchmod=91, fchownat=260, utimensat=280),
      "aarch64": dict(NEW, fchmod=52, fchownat=54, utimensat=88)}.get(platform.machine(), {})
AT_FDCWD, AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH = -100, 0x100, 0x1000
BAD_AT_FLAG = 0x8000  # no *at call takes it: the kernel says EINVAL
class Timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
def times(atime, mtime):
    return (Timespec * 2)(*[(int(t) // 10**9, int(t) % 10**9) for t in (atime, mtime)])
def checked(r):
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
def sys_call(name, *args):
    checked(libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_long(x) if isinstance(x, int) else x for x in args]))
# The argument block of setxattrat: value, size, flags; the kernel reads usize
# bytes of it, and refuses a tail beyond the 16 it knows unless it is zero.
class XattrArgs(ctypes.Structure):
    _fields_ = [("value", ctypes.c_uint64), ("size", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("tail", ctypes.c_uint64)]
def setxattrat(dirfd, path, at_flags, name, value, usize=16, tail=0):
    buf = ctypes.create_string_buffer(value.encode(), len(value))
    block = XattrArgs(ctypes.addressof(buf), len(value), 0, tail)
    sys_call("setxattrat", dirfd, path, at_flags, name.encode(), ctypes.byref(block), usize)
# The xattrs a file shows, every way they are read: the names listed and
# each value got (listxattrat and getxattrat when the kernel has them).
def xattrs(how, target):
    try:
        if how == "fd" or how == "path" or how == "link":
            where = {"fd": fd, "path": "f", "link": target}[how]
            got = sorted((n, os.getxattr(where, n)) for n in os.listxattr(where) if n.startswith("user."))
        else:
            names = ctypes.create_string_buffer(4096)
            n = libc.syscall(ctypes.c_long(NR["listxattrat"]), ctypes.c_long(fd), b"", ctypes.c_long(AT_EMPTY_PATH), names, ctypes.c_long(4096))
            checked(n)
            got = []
            for name in sorted(x for x in names.raw[:n].split(b"\0") if x.startswith(b"user.")):
                value = ctypes.create_string_buffer(256)
                block = XattrArgs(ctypes.addressof(value), 256, 0, 0)
                size = libc.syscall(ctypes.c_long(NR["getxattrat"]), ctypes.c_long(fd), b"", ctypes.c_long(AT_EMPTY_PATH), name, ctypes.byref(block), ctypes.c_long(16))
                checked(size)
                got.append((name.decode(), value.raw[:size]))
        print("  xattrs", how, got)
    except OSError as e:
        print("  xattrs", how, e.errno)
class Timeval(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("usec", ctypes.c_long)]
def utimes(path, atime, mtime):
    tv = (Timeval * 2)(*[(int(t) // 10**9, int(t) % 10**9 // 1000) for t in (atime, mtime)])
    checked(libc.utimes(path.encode(), tv))
def statx_null():
    buf = ctypes.create_string_buffer(256)
    checked(libc.statx(fd, None, AT_EMPTY_PATH, 0xfff, buf))
    st = os.fstat(fd)
    nlink, ino = int.from_bytes(buf.raw[16:20], "little"), int.from_bytes(buf.raw[32:40], "little")
    print("  statx", nlink == st.st_nlink and ino == st.st_ino, nlink)
fd = os.open("f", os.O_WRONLY | os.O_TRUNC)
# The links into /proc that name the descriptor: the file it is open on.
def link(form):
    return {"self": "/proc/self/fd/%d" % fd, "pid": "/proc/%d/fd/%d" % (os.getpid(), fd), "dev": "/dev/fd/%d" % fd}[form]
def link_stat(form):
    st, fst = os.stat(link(form)), os.fstat(fd)
    shown = lambda s: (s.st_dev, s.st_ino, s.st_nlink, oct(s.st_mode), s.st_uid, s.st_gid, s.st_size, s.st_mtime_ns)
    print("  stat", shown(st) == shown(fst), *shown(st)[2:7])
later = []  # descriptors and streams opened through a link, written after the first is closed
def link_open(form, text):
    later.append((os.open(link(form), os.O_WRONLY | os.O_APPEND), None, text.encode()))
libc.fopen.restype = ctypes.c_void_p
def link_fopen(form, text):
    fp = libc.fopen(link(form).encode(), b"a")
    if not fp:
        checked(-1)
    later.append((None, fp, text.encode()))
def link_read(form):
    r = os.open(link(form), os.O_RDONLY)
    print("  read", os.read(r, 100))
    os.close(r)
for step in sys.argv[1:]:
    op, _, arg = step.partition(":")
    a = arg.split(":") if arg else []
    calls = {
        "write": lambda: os.write(fd, b"new content\n"),
        "fchmod": lambda: os.fchmod(fd, int(a[0], 8)),
        "sysfchmod": lambda: sys_call("fchmod", fd, int(a[0], 8)),
        "fchown": lambda: os.fchown(fd, int(a[0]), int(a[1])),
        "futimens": lambda: os.utime(fd, ns=(int(a[0]), int(a[1]))),
        "futimens-now": lambda: os.utime(fd),
        "fsetxattr": lambda: os.setxattr(fd, a[0], a[1].encode()),
        "fremovexattr": lambda: os.removexattr(fd, a[0]),
        "setxattr-path": lambda: os.setxattr("f", a[0], a[1].encode()),
        "chmod": lambda: os.chmod("f", int(a[0], 8)),
        "utime": lambda: os.utime("f", ns=(int(a[0]), int(a[1]))),
        # The *at forms naming the descriptor itself (an empty path with
        # AT_EMPTY_PATH; utimensat: NULL), through libc and syscall().
        "fchmodat-fd": lambda: checked(libc.fchmodat(fd, b"", int(a[0], 8), AT_EMPTY_PATH)),
        "sysfchmodat2-fd": lambda: sys_call("fchmodat2", fd, b"", int(a[0], 8), AT_EMPTY_PATH),
        "sysfchmodat2": lambda: sys_call("fchmodat2", AT_FDCWD, b"f", int(a[0], 8), 0),
        "sysfchmodat2-nofollow": lambda: sys_call("fchmodat2", AT_FDCWD, b"f", int(a[0], 8), AT_SYMLINK_NOFOLLOW),
        "fchownat-fd": lambda: checked(libc.fchownat(fd, b"", int(a[0]), int(a[1]), AT_EMPTY_PATH)),
        "utimensat-fd": lambda: checked(libc.utimensat(fd, b"", times(*a), AT_EMPTY_PATH)),
        "utimensat-null": lambda: checked(libc.utimensat(fd, None, times(*a), 0)),
        "syssetxattrat-fd": lambda: setxattrat(fd, b"", AT_EMPTY_PATH, *a),
        "syssetxattrat-fdnull": lambda: setxattrat(fd, None, AT_EMPTY_PATH, *a),
        "syssetxattrat": lambda: setxattrat(AT_FDCWD, b"f", 0, *a),
        "syssetxattrat-long": lambda: setxattrat(AT_FDCWD, b"f", 0, *a, usize=24),
        "sysremovexattrat-fd": lambda: sys_call("removexattrat", fd, b"", AT_EMPTY_PATH, a[0].encode()),
        "sysremovexattrat": lambda: sys_call("removexattrat", AT_FDCWD, b"f", 0, a[0].encode()),
        "sysutimensat-null": lambda: sys_call("utimensat", fd, None, times(*a), 0),
        # ...and with flags the kernel refuses.
        "fchownat-badflag": lambda: checked(libc.fchownat(AT_FDCWD, b"f", int(a[0]), int(a[1]), BAD_AT_FLAG)),
        "sysfchownat-badflag": lambda: sys_call("fchownat", AT_FDCWD, b"f", int(a[0]), int(a[1]), BAD_AT_FLAG),
        "sysutimensat-badflag": lambda: sys_call("utimensat", AT_FDCWD, b"f", times(*a), BAD_AT_FLAG),
        "sysfchmodat2-badflag": lambda: sys_call("fchmodat2", AT_FDCWD, b"f", int(a[0], 8), BAD_AT_FLAG),
        "fchmodat-badflag": lambda: checked(libc.fchmodat(AT_FDCWD, b"f", int(a[0], 8), BAD_AT_FLAG)),
        "syssetxattrat-badflag": lambda: setxattrat(AT_FDCWD, b"f", BAD_AT_FLAG, *a),
        "syssetxattrat-short": lambda: setxattrat(AT_FDCWD, b"f", 0, *a, usize=8),
        "syssetxattrat-tail": lambda: setxattrat(fd, b"", AT_EMPTY_PATH, *a, usize=24, tail=1),
        "sysremovexattrat-badflag": lambda: sys_call("removexattrat", AT_FDCWD, b"f", BAD_AT_FLAG, a[0].encode()),
        "sysutimensat-null-nofollow": lambda: sys_call("utimensat", fd, None, times(*a), AT_SYMLINK_NOFOLLOW),
        "link-chmod": lambda: os.chmod(link(a[0]), int(a[1], 8)),
        "link-chown": lambda: os.chown(link(a[0]), int(a[1]), int(a[2])),
        "link-lchown": lambda: os.lchown(link(a[0]), int(a[1]), int(a[2])),
        "link-utime": lambda: os.utime(link(a[0]), ns=(int(a[1]), int(a[2]))),
        "link-utimes": lambda: utimes(link(a[0]), a[1], a[2]),
        "link-setxattr": lambda: os.setxattr(link(a[0]), a[1], a[2].encode()),
        "link-removexattr": lambda: os.removexattr(link(a[0]), a[1]),
        "link-truncate": lambda: os.truncate(link(a[0]), int(a[1])),
        "link-stat": lambda: link_stat(a[0]),
        "link-read": lambda: link_read(a[0]),
        "link-open": lambda: link_open(a[0], a[1] + "\n"),
        "link-fopen": lambda: link_fopen(a[0], a[1] + "\n"),
        # NULL paths: the kernel answers EFAULT, and statx with AT_EMPTY_PATH
        # (Linux 6.11) takes one for the descriptor.
        "statx-null": lambda: statx_null(),
        "null-paths": lambda: print("  null", [(call, getattr(libc, call)(None, *rest), ctypes.get_errno())
                                   for call, rest in (("stat", (ctypes.create_string_buffer(256),)), ("chmod", (0o600,)),
                                                      ("unlink", ()), ("truncate", (0,)), ("getxattr", (b"user.x", None, 0)))]),
        "access": lambda: print("  access", [(where, os.access(where, m)) for where in ("f", link("self")) for m in (os.R_OK, os.W_OK, os.X_OK)]),
        "xattrs": lambda: [xattrs(how, link("self")) for how in ("fd", "path", "link", "at")],
        "fstat": lambda: print("  fstat", oct(os.fstat(fd).st_mode), os.fstat(fd).st_uid, os.fstat(fd).st_gid),
        "swap": lambda: os.spawnvpe(os.P_WAIT, "mv", ["mv", "other", "f"], {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}),
    }
    if op.startswith("sys") and op[3:].split("-")[0] not in NR:
        print(step, "skipped")
        continue
    try:
        calls[op]()
        print(step, "ok")
    except OSError as e:
        print(step, e.errno)
try:
    os.close(fd)
    print("close ok")
except OSError as e:
    print("close", e.errno)
for w, stream, text in later:
    try:
        if stream is None:
            os.write(w, text)
            os.close(w)
        else:
            checked(libc.fputs(text, ctypes.c_void_p(stream)))
            checked(libc.fclose(ctypes.c_void_p(stream)))
        print("later write ok")
    except OSError as e:
        print("later write", e.errno)
'

# state FILE TIMES: what a run left in FILE (mode, owner, links, user
# xattrs, content; the mtime in nanoseconds when TIMES is 1: the program
# set it explicitly, so both runs must end with it; else only whether it
# is one of the test's explicit times, before 2017, or "now").
state() {
    "$python3" - "$1" "$2" <<'EOF'
import os, sys
p, times = sys.argv[1], sys.argv[2] == "1"
st = os.lstat(p)
print(p, oct(st.st_mode), st.st_uid, st.st_gid, st.st_nlink, st.st_mtime_ns if times else
      "explicit" if st.st_mtime_ns < 1.5e18 else "now")
print(" ", sorted((n, os.getxattr(p, n)) for n in os.listxattr(p) if n.startswith("user.")))
print(" ", open(p, "rb").read())
EOF
}

as_user() {
    local who=$1
    shift
    if [ "$who" = nobody ]; then
        env -u WRAP_LOCKFILE_LOG setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
    else
        "$@"
    fi
}

# pair NAME WHO TIMES COMMAND...: `setup` (defined by the caller) then
# COMMAND as WHO, plainly and under the shim (rule: $d/f); the program's
# output, its exit status and the state of f and g must be the same.
# $around, when set, is a command both runs are made through (env with
# another LD_PRELOAD, which the launcher puts after the shim; no_syscalls).
around=()
pair() {
    local name=$1 who=$2 times=$3 key=${1//[^A-Za-z0-9]/_} run out
    shift 3
    for run in plain shim; do
        newdir "$key-$run"
        setup
        out=$tmp/$key-$run.out
        if [ $run = plain ]; then
            as_user "$who" "${around[@]}" "$@" >"$out" 2>&1
        else
            as_user "$who" "${around[@]}" "$atomically" --rule "$d/f" -- "$@" >"$out" 2>&1
        fi
        echo "status $?" >>"$out"
        sed -i "s|$d|D|g" "$out"
        for f in f g; do
            [ -e "$f" ] && state "$f" "$times" >>"$out"
        done
    done
    cmp -s "$tmp/$key-plain.out" "$tmp/$key-shim.out" ||
        fail "$name: differs from the plain run: $(diff "$tmp/$key-plain.out" "$tmp/$key-shim.out" | tr '\n' '|')"
}

t1=1000000000123456789 t2=1200000000987654321

# ---- a hard-linked target of root's ----
setup() { echo old >f && chmod 644 f && ln f g; }
pair "root: fd calls on a hard-linked file" root 1 "$python3" -c "$prog" write fchmod:600 fchown:65534:65534 \
    fsetxattr:user.a:1 fsetxattr:user.b:2 fremovexattr:user.a futimens:$t1:$t2 fstat
pair "root: set-id bits by fd after the write" root 1 "$python3" -c "$prog" write fchmod:6755 futimens:$t1:$t2
pair "root: syscall(SYS_fchmod)" root 0 "$python3" -c "$prog" write sysfchmod:640
pair "root: chmod and utime by path while pending" root 1 "$python3" -c "$prog" write chmod:4711 utime:$t1:$t2
pair "root: fchownat and utimensat naming the descriptor" root 1 "$python3" -c "$prog" write fchownat-fd:65534:65534 \
    utimensat-fd:$t2:$t1 sysutimensat-null:$t1:$t2
# Flags the kernel refuses (EINVAL) and glibc's own refusal of a NULL path
# to utimensat(3): nothing may change.
pair "root: *at calls refused" root 0 "$python3" -c "$prog" write fchownat-badflag:65534:65534 \
    sysfchownat-badflag:65534:65534 sysutimensat-badflag:$t1:$t2 sysutimensat-null-nofollow:$t1:$t2 utimensat-null:$t1:$t2 \
    sysfchmodat2-badflag:600 fchmodat-badflag:600
# fchmodat2 (Linux 6.6) on the descriptor and the path; glibc's fchmodat
# with AT_EMPTY_PATH: refused by this system's glibc if it is older than
# 2.39, as plainly, and made as 2.39's makes it (through fchmodat2).
pair "root: fchmodat2 on the descriptor" root 0 "$python3" -c "$prog" write sysfchmodat2-fd:600 fchmodat-fd:640
pair "root: fchmodat2 on the path" root 0 "$python3" -c "$prog" write sysfchmodat2:640
pair "root: fchmodat2 on the path, AT_SYMLINK_NOFOLLOW" root 0 "$python3" -c "$prog" write sysfchmodat2-nofollow:604
around=(env LD_PRELOAD="$helpers/libfchmodat2_libc.so")
pair "root: glibc 2.39's fchmodat with AT_EMPTY_PATH" root 0 "$python3" -c "$prog" write fchmodat-fd:640 fchmodat-badflag:600
around=()

# cp -p onto an existing hard-linked file: O_WRONLY|O_TRUNC, write, then
# futimens, fchown, fchmod (and the xattrs) on its descriptor.
setup() {
    echo source >src && chown nobody:nogroup src && chmod 604 src &&
        touch -d '2001-02-03 04:05:06.123456789' src && setfattr_py src user.x xv
    echo old >f && ln f g
}
setfattr_py() { "$python3" -c 'import os, sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())' "$@"; }
pair "root: cp -p onto a hard-linked file" root 1 cp -p src f
pair "root: cp --preserve=mode,ownership,timestamps,xattr" root 1 cp --preserve=mode,ownership,timestamps,xattr src f

# setxattrat and removexattrat (Linux 6.13) on the descriptor (an empty or,
# with AT_EMPTY_PATH, NULL path) and the path, and what they refuse.
setup() { echo old >f && ln f g && setfattr_py f user.x 1 && setfattr_py f user.y 2; }
pair "root: setxattrat and removexattrat" root 0 "$python3" -c "$prog" write syssetxattrat-fd:user.a:1 \
    syssetxattrat-fdnull:user.n:3 syssetxattrat:user.b:2 syssetxattrat-long:user.l:4 sysremovexattrat-fd:user.x \
    sysremovexattrat:user.y
pair "root: setxattrat and removexattrat refused" root 0 "$python3" -c "$prog" write syssetxattrat-badflag:user.a:1 \
    syssetxattrat-short:user.a:1 syssetxattrat-tail:user.a:1 sysremovexattrat-badflag:user.x
# A kernel without them (before 6.6 and 6.13; here a seccomp filter): ENOSYS
# to the program, and nothing changed in its stead.
around=("$helpers/no_syscalls" 452,463,464,465,466)
pair "root: no fchmodat2 and xattr *at calls in the kernel" root 0 "$python3" -c "$prog" write sysfchmodat2-fd:600 \
    sysfchmodat2:640 syssetxattrat-fd:user.a:1 syssetxattrat:user.b:2 sysremovexattrat:user.x xattrs
around=()

# What the program reads back of the xattrs, by descriptor (fgetxattr,
# flistxattr, getxattrat and listxattrat with AT_EMPTY_PATH), by path and
# through a link: the target's, as without the shim.
# NULL paths, with something pending: the kernel's answers.
pair "root: NULL paths" root 0 "$python3" -c "$prog" write statx-null null-paths
# access(2) answers for the target (its mode and owner), not the memfd.
pair "root: access" root 0 "$python3" -c "$prog" write access fchmod:755 access
pair "root: xattrs read back" root 0 "$python3" -c "$prog" write xattrs fsetxattr:user.a:1 xattrs \
    fremovexattr:user.x setxattr-path:user.b:2 xattrs

# The links into /proc that name the program's descriptor (/proc/self/fd/N,
# /proc/PID/fd/N, /dev/fd/N) are the file it writes: the target. By them,
# the calls by path act on it, stat shows what fstat shows, a read-open
# reads what was written, and a write-open is one more descriptor of it,
# whose writes after the first descriptor's close land in it too.
setup() { echo old >f && chmod 644 f && ln f g && setfattr_py f user.x 1; }
for form in self pid dev; do
    pair "root: metadata calls through the $form link" root 1 "$python3" -c "$prog" write link-chmod:$form:4711 \
        link-chown:$form:65534:65534 link-setxattr:$form:user.p:v link-removexattr:$form:user.x link-utime:$form:$t1:$t2 \
        link-stat:$form
done
pair "root: utimes and lchown (the link itself) through a link" root 1 "$python3" -c "$prog" write link-utimes:self:$t2:$t1 \
    link-lchown:dev:65534:65534 link-stat:dev
pair "root: truncate, read-open and write-open through links" root 0 "$python3" -c "$prog" write link-truncate:self:4 \
    link-read:dev link-open:pid:more link-fopen:self:stream link-stat:self

# ---- as nobody: its own hard-linked file in its own directory ----
setup() { chown nobody "$d" && echo old >f && chmod 644 f && ln f g && chown nobody:nogroup f; }
pair "nobody: set-id bit after the write" nobody 1 "$python3" -c "$prog" write fchmod:4755 futimens:$t1:$t2 fstat
pair "nobody: set-id bit by fchmodat2 after the write" nobody 0 "$python3" -c "$prog" write sysfchmodat2:4755 fstat
pair "nobody: set-id bit before the write (the write clears it)" nobody 0 "$python3" -c "$prog" fchmod:4755 write
pair "nobody: fchmod 444 before the close" nobody 1 "$python3" -c "$prog" write futimens:$t1:$t2 fchmod:444
pair "nobody: access after fchmod" nobody 0 "$python3" -c "$prog" write access fchmod:444 access
pair "nobody: chmod and utime by path while pending" nobody 1 "$python3" -c "$prog" write chmod:4700 utime:$t1:$t2
pair "nobody: fchown to root" nobody 0 "$python3" -c "$prog" write fchown:0:0 fchown:-1:65534
pair "nobody: set-id bit through a link after the write" nobody 0 "$python3" -c "$prog" write link-chmod:self:4755 \
    link-stat:self
setup() {
    chown nobody "$d" && echo source >src && chown nobody:nogroup src && chmod 400 src &&
        touch -d '2001-02-03 04:05:06.5' src
    echo old >f && ln f g && chown nobody:nogroup f
}
pair "nobody: cp -p of a read-only file onto a hard-linked file" nobody 1 cp -p src f

# ---- as nobody: root's file, mode 666 (staged: its owner cannot be
# given to a replacement). Only its owner may chmod, chown or set explicit
# times: EPERM, as plainly; "now" and user xattrs need write access only.
setup() { chown nobody "$d" && echo old >f && chmod 666 f; }
pair "nobody: another user's file" nobody 0 "$python3" -c "$prog" write fchmod:600 sysfchmod:600 fchown:-1:65534 \
    futimens:$t1:$t2 futimens-now fsetxattr:user.n:v syssetxattrat-fd:user.m:w fstat chmod:600 utime:$t1:$t2
pair "nobody: access to another user's file" nobody 0 "$python3" -c "$prog" write access
pair "nobody: another user's file through a link" nobody 0 "$python3" -c "$prog" write link-chmod:self:600 \
    link-chown:dev:-1:65534 link-utime:pid:$t1:$t2 link-setxattr:self:user.n:v link-stat:self

# ---- not staged (a single link): the temp is the file the path shows, the
# calls on it reach the replacement; what the kernel refuses changes nothing ----
setup() { echo old >f && chmod 644 f; }
pair "root, a single link: *at calls refused" root 0 "$python3" -c "$prog" write fchownat-badflag:65534:65534 \
    sysfchownat-badflag:65534:65534 sysutimensat-badflag:$t1:$t2 sysfchmodat2-badflag:600
setup() { echo old >f && setfattr_py f user.x 1 && setfattr_py f user.y 2; }
pair "root, a single link: setxattrat and removexattrat" root 0 "$python3" -c "$prog" write syssetxattrat:user.b:2 \
    syssetxattrat-fd:user.a:1 sysremovexattrat:user.y sysremovexattrat-fd:user.x syssetxattrat-badflag:user.c:1
setup() { echo old >f && chmod 644 f; }
pair "root, a single link: fchmodat2 on the path and the descriptor" root 0 "$python3" -c "$prog" write sysfchmodat2:640 \
    sysfchmodat2-fd:4700 sysfchmodat2-nofollow:600
pair "root, a single link: NULL paths" root 0 "$python3" -c "$prog" write statx-null null-paths
setup() { echo old >f && setfattr_py f user.x 1; }
pair "root, a single link: xattrs read back" root 0 "$python3" -c "$prog" write xattrs fsetxattr:user.a:1 xattrs \
    fremovexattr:user.x setxattr-path:user.b:2 xattrs
around=("$helpers/no_syscalls" 452,463,464,465,466)
pair "root, a single link: no fchmodat2 and xattr *at calls in the kernel" root 0 "$python3" -c "$prog" write \
    sysfchmodat2:640 syssetxattrat:user.b:2 sysremovexattrat:user.x xattrs
around=()
setup() { echo old >f && chmod 644 f; }
pair "root, a single link: through links" root 0 "$python3" -c "$prog" write link-chmod:self:600 link-stat:dev \
    link-read:pid link-open:self:more link-truncate:dev:8

# ---- the name swapped while pending: the file opened, never the one there ----
# Plainly fchmod and the writes change the file opened (now only at g), and
# the file renamed over f keeps its mode and content. The shim holds the
# file it opened (its own descriptor of it since the open): the same, where
# by name it would have acted on the file swapped in, or refused.
newdir swapped
echo old >f && ln f g && echo other >other && chmod 600 other
"$atomically" --rule "$d/f" -- "$python3" -c "$prog" write swap fchmod:640 >out 2>err
grep -qx "fchmod:640 ok" out || fail "swapped: fchmod on the descriptor: $(tr '\n' '|' <out) $(tr '\n' '|' <err)"
[ "$(stat -c %a f)" = 600 ] || fail "swapped: the file swapped in at the name changed mode to $(stat -c %a f)"
expect_content "swapped: the file swapped in" f $'other\n'
[ "$(stat -c %a g)" = 640 ] || fail "swapped: the file opened (g) has mode $(stat -c %a g), want 640 as plainly"
expect_content "swapped: the file opened, at g" g $'new content\n'

# ---- a file capability set while pending: the in-place write at the close
# would remove it (a write removes capabilities): refused, and said ----
if have setcap; then
    newdir capability
    echo old >f && ln f g && echo x >c && setcap cap_net_raw+ep c
    "$atomically" --rule "$d/f" -- "$python3" -c 'import errno, os
fd = os.open("f", os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"new\n")
try:
    os.setxattr(fd, "security.capability", os.getxattr("c", "security.capability"))
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
os.close(fd)' >out 2>err
    grep -qx EPERM out || fail "capability: fsetxattr was not refused: $(tr '\n' '|' <out)"
    grep -q "wrap_lockfile: .*'$d/f'.*capability" err || fail "capability: no line on stderr: $(tr '\n' '|' <err)"
    expect_content "capability: f" f $'new\n'
else
    skip_check "capability" "setcap (libcap2-bin) not installed"
fi

# ---- an open for writing that writes nothing: the staged target is not
# rewritten at the close. A rewrite moved the mtime and made the kernel
# clear a file capability (root, `true >> f` on a hard-linked file, the
# `exec 9>>f; flock 9` idiom) and the set-id bits (nobody, `true 1<> g` on
# root's group-writable 6775 file); a plain open leaves all three. A write
# of one byte clears them as plainly. ----
# Whether FILE's mtime moved from 2020-01-01 (the two runs' own times differ).
mtime_moved() { [ "$(stat -c %Y "$1")" = "$(date -d 2020-01-01 +%s)" ] && echo kept || echo moved; }
if have setcap; then
    for what in 'true >>f' 'echo x >>f'; do
        for how in plain shim; do
            newdir "nowrite-$how"
            echo old >f && ln f f2 && setcap cap_net_raw+ep f && touch -d 2020-01-01 f
            if [ $how = shim ]; then "$atomically" --rule "$d/f" -- sh -c "$what" 2>err; else sh -c "$what" 2>err; fi
            echo "$? $(getcap f | wc -l) $(mtime_moved f) $(stat -c %h f) $(md5sum <f | cut -c1-8) $(ls -A | tr '\n' ' ')" >"$tmp/nowrite-$how.out"
        done
        [ "$(cat "$tmp/nowrite-shim.out")" = "$(cat "$tmp/nowrite-plain.out")" ] ||
            fail "'$what' on a hard-linked file with a capability: exit, capability, mtime, links, content, entries: $(cat "$tmp/nowrite-shim.out") under the shim, $(cat "$tmp/nowrite-plain.out") plainly"
    done
else
    skip_check "an open that writes nothing, capability" "setcap (libcap2-bin) not installed"
fi
for what in 'true 1<>g' 'echo x 1<>g'; do
    for how in plain shim; do
        newdir "nowrite-setid-$how"
        chmod 1777 "$d"
        echo old >g && chown root:nogroup g && chmod 6775 g && touch -d 2020-01-01 g
        if [ $how = shim ]; then
            env -u WRAP_LOCKFILE_LOG setpriv --reuid=nobody --regid=nogroup --clear-groups "$atomically" --rule "$d/g" -- sh -c "$what" 2>err
        else
            setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c "$what" 2>err
        fi
        echo "$? $(stat -c '%a %U' g) $(mtime_moved g) $(md5sum <g | cut -c1-8) $(ls -A | tr '\n' ' ')" >"$tmp/nowrite-setid-$how.out"
    done
    [ "$(cat "$tmp/nowrite-setid-shim.out")" = "$(cat "$tmp/nowrite-setid-plain.out")" ] ||
        fail "nobody's '$what' on root's 6775 file: exit, mode, mtime, owner, content, entries: $(cat "$tmp/nowrite-setid-shim.out") under the shim, $(cat "$tmp/nowrite-setid-plain.out") plainly"
done

finish
