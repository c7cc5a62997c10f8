// syscall(2) for the calls that end, move or create descriptors and names,
// and for the data moves into them: programs make these through syscall()
// too (libuv closes with syscall(SYS_close); node copies with
// SYS_copy_file_range), and each goes to the handler of its libc entry
// point. Every other number passes straight through: the switch is all it
// costs. The shim's own system calls never come here (core/src/sysio.hpp
// issues them itself).
#pragma once

#include "dir_sync.hpp"
#include "handlers.hpp"

#include "sysio.hpp"

#include <sys/syscall.h>

// Numbers newer than the kernel headers built against (Debian 12 has
// Linux 6.1's): the same on x86_64 and aarch64.
#if (defined(__x86_64__) && defined(__LP64__)) || defined(__aarch64__)
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#define SYS_getxattrat 464
#define SYS_listxattrat 465
#define SYS_removexattrat 466
#endif
#endif

namespace wrap_lockfile::shim {

using syscall_fn = long (*)(long, ...);

// openat2: its `how` carries the flags and RESOLVE_* restrictions
// (syscall.cpp).
long openat2_call(syscall_fn real, const long *a);

// The system calls newer than some kernels the shim runs on, which it
// makes on a pending file in the program's stead: whether this kernel
// takes them (syscall.cpp), else the program's call gets its answer
// (ENOSYS; a seccomp filter's EPERM).
enum class Newer { fchmodat2, xattrat };
bool kernel_has(Newer which);

template <class T>
inline T *ptr(long v) {
    return reinterpret_cast<T *>(v);
}

template <class Pass>
long syscall_call(Pass &&pass, syscall_fn real, long nr, const long *a, const void *caller) {
    const int fd = static_cast<int>(a[0]);
    const auto *path = ptr<const char>(a[0]);
    switch (nr) {
    // ---- descriptors ending, copied, created
    case SYS_close: return close_fd(pass, fd);
    case SYS_close_range:
        return close_range_fds(pass, static_cast<unsigned>(a[0]), static_cast<unsigned>(a[1]), static_cast<int>(a[2]));
    case SYS_dup: return dup_fd(pass, fd);
#ifdef SYS_dup2
    case SYS_dup2:
#endif
    case SYS_dup3: return dup_onto(pass, fd, static_cast<int>(a[1]));
    case SYS_fcntl: return fcntl_fd(pass, fd, static_cast<int>(a[1]));
    case SYS_flock: return lock_fd(pass, fd);
#ifdef SYS_open
    case SYS_open:
        return open_at([&](int fl) { return static_cast<int>(real(nr, a[0], static_cast<long>(fl), a[2])); }, AT_FDCWD, path,
                       static_cast<int>(a[1]), static_cast<mode_t>(a[2]));
#endif
#ifdef SYS_creat
    case SYS_creat:
        return open_at(
            [&](int fl) {
                return static_cast<int>(fl == O_CREAT_TRUNC ? real(nr, a[0], a[1])
                                                            : real(SYS_openat, long{AT_FDCWD}, a[0], static_cast<long>(fl), a[1]));
            },
            AT_FDCWD, path, O_CREAT_TRUNC, static_cast<mode_t>(a[1]));
#endif
    case SYS_openat:
        return open_at([&](int fl) { return static_cast<int>(real(nr, a[0], a[1], static_cast<long>(fl), a[3])); }, fd,
                       ptr<const char>(a[1]), static_cast<int>(a[2]), static_cast<mode_t>(a[3]));
    case SYS_openat2: return openat2_call(real, a);
    // ---- names: renames and links onto a matched target (links and
    // RENAME_NOREPLACE refuse a target pending here, as the table's do)
#ifdef SYS_rename
    case SYS_rename: return locked_rename(pass, AT_FDCWD, path, AT_FDCWD, ptr<const char>(a[1]));
#endif
#ifdef SYS_link
    case SYS_link: return locked_link(pass, AT_FDCWD, path, AT_FDCWD, ptr<const char>(a[1]));
#endif
#ifdef SYS_renameat
    case SYS_renameat: return locked_rename(pass, fd, ptr<const char>(a[1]), static_cast<int>(a[2]), ptr<const char>(a[3]));
#endif
    case SYS_renameat2:
        return a[4] & RENAME_NOREPLACE ? locked_link(pass, fd, ptr<const char>(a[1]), static_cast<int>(a[2]), ptr<const char>(a[3]))
                                       : locked_rename(pass, fd, ptr<const char>(a[1]), static_cast<int>(a[2]), ptr<const char>(a[3]));
    case SYS_linkat: return locked_link(pass, fd, ptr<const char>(a[1]), static_cast<int>(a[2]), ptr<const char>(a[3]));
#ifdef SYS_unlink
    case SYS_unlink: return unlink_at(pass, AT_FDCWD, path, 0, caller);
#endif
    case SYS_unlinkat: return unlink_at(pass, fd, ptr<const char>(a[1]), static_cast<int>(a[2]), caller);
#ifdef SYS_truncate
    case SYS_truncate: return truncate_path(pass, path, static_cast<off_t>(a[1]));
#endif
    // ---- exec: pending replacements go along (or are committed first)
    case SYS_execve:
        return exec_with_env(ptr<char *const>(a[2]), path, ExecLookup::path,
                             [&](char *const *e) { return real(nr, a[0], a[1], sys::arg(e)); });
    case SYS_execveat:
        return exec_with_env(ptr<char *const>(a[3]), nullptr, ExecLookup::fd,
                             [&](char *const *e) { return real(nr, a[0], a[1], a[2], sys::arg(e), a[4]); });
    // ---- data moves into a descriptor
    case SYS_copy_file_range:
    case SYS_splice: return write_fd(pass, static_cast<int>(a[2]));
    case SYS_sendfile:
    case SYS_write:
    case SYS_pwrite64:
    case SYS_writev:
    case SYS_pwritev:
    case SYS_pwritev2:
    case SYS_fallocate: return write_fd(pass, fd);
    case SYS_ftruncate:
    case SYS_sync_file_range: return change_fd(pass, fd);
    // ---- the program's sync points (dir_sync.hpp)
    case SYS_fsync:
    case SYS_fdatasync: return fsync_fd(pass, fd);
    case SYS_sync:
    case SYS_syncfs: return syncfs_fd(pass);
    // ---- one coherent file (identity.hpp, pending_meta.hpp): libuv's
    // fs.statSync is syscall(SYS_statx)
    case SYS_fstat: return fstat_fd(pass, ptr<struct stat>(a[1]), caller);
#ifdef SYS_stat
    case SYS_stat: return stat_at(pass, [&](int f) { return static_cast<int>(real(SYS_fstat, long{f}, a[1])); }, AT_FDCWD, path, 0, ptr<struct stat>(a[1]), caller);
#endif
#ifdef SYS_lstat
    case SYS_lstat: return stat_at(pass, [&](int f) { return static_cast<int>(real(SYS_fstat, long{f}, a[1])); }, AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, ptr<struct stat>(a[1]), caller);
#endif
#ifdef SYS_newfstatat
    case SYS_newfstatat: return stat_at(pass, [&](int f) { return static_cast<int>(real(SYS_fstat, long{f}, a[2])); }, fd, ptr<const char>(a[1]), static_cast<int>(a[3]), ptr<struct stat>(a[2]), caller);
#endif
    case SYS_statx:
        return stat_at(pass, [&](int f) { return static_cast<int>(real(SYS_statx, long{f}, sys::arg(""), long{AT_EMPTY_PATH} | (a[2] & AT_STATX_SYNC_TYPE), a[3] | STATX_INO, a[4])); },
                       fd, ptr<const char>(a[1]), static_cast<int>(a[2]), ptr<struct statx>(a[4]), caller);
#ifdef SYS_access
    case SYS_access: return access_at(pass, AT_FDCWD, path, static_cast<int>(a[1]), 0, caller);
#endif
    case SYS_faccessat: return access_at(pass, fd, ptr<const char>(a[1]), static_cast<int>(a[2]), 0, caller);
#ifdef SYS_faccessat2
    case SYS_faccessat2: return access_at(pass, fd, ptr<const char>(a[1]), static_cast<int>(a[2]), static_cast<int>(a[3]), caller);
#endif
#ifdef SYS_chmod
    case SYS_chmod: return chmod_at(pass, AT_FDCWD, path, static_cast<mode_t>(a[1]), true, caller);
#endif
    case SYS_fchmodat: return chmod_at(pass, fd, ptr<const char>(a[1]), static_cast<mode_t>(a[2]), true, caller);
#ifdef SYS_fchmodat2
    case SYS_fchmodat2:
        if (!kernel_has(Newer::fchmodat2)) return pass();
        return fchmodat2_call(pass, fd, ptr<const char>(a[1]), static_cast<mode_t>(a[2]), static_cast<int>(a[3]), caller);
#endif
    case SYS_fchmod: return fchmod_fd(pass, fd, static_cast<mode_t>(a[1]), caller);
    case SYS_fchown: return fchown_fd(pass, fd, static_cast<uid_t>(a[1]), static_cast<gid_t>(a[2]), caller);
#ifdef SYS_chown
    case SYS_chown: return chown_at(pass, AT_FDCWD, path, static_cast<uid_t>(a[1]), static_cast<gid_t>(a[2]), true, caller);
#endif
#ifdef SYS_lchown
    case SYS_lchown: return chown_at(pass, AT_FDCWD, path, static_cast<uid_t>(a[1]), static_cast<gid_t>(a[2]), false, caller);
#endif
    case SYS_fchownat:
        return fchownat_call(pass, fd, ptr<const char>(a[1]), static_cast<uid_t>(a[2]), static_cast<gid_t>(a[3]), static_cast<int>(a[4]), caller);
#ifdef SYS_utime
    case SYS_utime: return times_at(pass, AT_FDCWD, path, ptr<const struct utimbuf>(a[1]), true, caller);
#endif
#ifdef SYS_utimes
    case SYS_utimes: return times_at(pass, AT_FDCWD, path, ptr<const struct timeval>(a[1]), true, caller);
#endif
#ifdef SYS_futimesat
    case SYS_futimesat: return times_at(pass, fd, ptr<const char>(a[1]), ptr<const struct timeval>(a[2]), true, caller, a[1] == 0);
#endif
    case SYS_utimensat:
        return sys_utimensat_call(pass, fd, ptr<const char>(a[1]), ptr<const struct timespec>(a[2]), static_cast<int>(a[3]), caller);
    case SYS_setxattr:
    case SYS_lsetxattr:
        return setxattr_at(pass, path, ptr<const char>(a[1]), ptr<const void>(a[2]), static_cast<size_t>(a[3]), static_cast<int>(a[4]), nr == SYS_setxattr, caller);
    case SYS_removexattr:
    case SYS_lremovexattr: return removexattr_at(pass, path, ptr<const char>(a[1]), nr == SYS_removexattr, caller);
    case SYS_fsetxattr:
        return fsetxattr_fd(pass, fd, ptr<const char>(a[1]), ptr<const void>(a[2]), static_cast<size_t>(a[3]), static_cast<int>(a[4]), caller);
    case SYS_fremovexattr: return fremovexattr_fd(pass, fd, ptr<const char>(a[1]), caller);
    case SYS_getxattr:
    case SYS_lgetxattr:
        return read_meta_at(pass, AT_FDCWD, path, nr == SYS_getxattr, MetaRead{ptr<const char>(a[1]), ptr<void>(a[2]), static_cast<size_t>(a[3])}, caller, false);
    case SYS_fgetxattr: return read_meta_fd(pass, fd, MetaRead{ptr<const char>(a[1]), ptr<void>(a[2]), static_cast<size_t>(a[3])}, caller);
    case SYS_listxattr:
    case SYS_llistxattr:
        return read_meta_at(pass, AT_FDCWD, path, nr == SYS_listxattr, MetaRead{nullptr, ptr<void>(a[1]), static_cast<size_t>(a[2])}, caller, false);
    case SYS_flistxattr: return read_meta_fd(pass, fd, MetaRead{nullptr, ptr<void>(a[1]), static_cast<size_t>(a[2])}, caller);
#ifdef SYS_setxattrat
    case SYS_getxattrat:
        if (!kernel_has(Newer::xattrat)) return pass();
        return getxattrat_call(pass, fd, ptr<const char>(a[1]), static_cast<int>(a[2]), ptr<const char>(a[3]), ptr<const XattrArgs>(a[4]), static_cast<size_t>(a[5]), caller);
    case SYS_listxattrat:
        if (!kernel_has(Newer::xattrat)) return pass();
        return listxattrat_call(pass, fd, ptr<const char>(a[1]), static_cast<int>(a[2]), ptr<char>(a[3]), static_cast<size_t>(a[4]), caller);
    case SYS_setxattrat:
        if (!kernel_has(Newer::xattrat)) return pass();
        return setxattrat_call(pass, fd, ptr<const char>(a[1]), static_cast<int>(a[2]), ptr<const char>(a[3]), ptr<const XattrArgs>(a[4]), static_cast<size_t>(a[5]), caller);
    case SYS_removexattrat:
        if (!kernel_has(Newer::xattrat)) return pass();
        return removexattrat_call(pass, fd, ptr<const char>(a[1]), static_cast<int>(a[2]), ptr<const char>(a[3]), caller);
#endif
    default: return pass();
    }
}

}  // namespace wrap_lockfile::shim
