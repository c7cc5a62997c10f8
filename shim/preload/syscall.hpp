// syscall(2) for the calls that end, move or create descriptors and names,
// and for the data moves into them: programs make these through syscall()
// too (libuv closes with syscall(SYS_close); node copies with
// SYS_copy_file_range), and each goes to the handler of its libc entry
// point. Every other number passes straight through: the switch is all it
// costs. The shim's own system calls never come here (core/src/sysio.hpp
// issues them itself).
#pragma once

#include "handlers.hpp"

#include "sysio.hpp"

#include <sys/syscall.h>

namespace wrap_lockfile::shim {

using syscall_fn = long (*)(long, ...);

// openat2: its `how` carries the flags and RESOLVE_* restrictions
// (syscall.cpp).
long openat2_call(syscall_fn real, const long *a);

template <class T>
inline T *ptr(long v) {
    return reinterpret_cast<T *>(v);
}

template <class Pass>
long syscall_call(Pass &&pass, syscall_fn real, long nr, const long *a) {
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
    case SYS_rename: return locked_rename(pass, AT_FDCWD, ptr<const char>(a[1]));
#endif
#ifdef SYS_link
    case SYS_link: return locked_link(pass, AT_FDCWD, ptr<const char>(a[1]));
#endif
#ifdef SYS_renameat
    case SYS_renameat: return locked_rename(pass, static_cast<int>(a[2]), ptr<const char>(a[3]));
#endif
    case SYS_renameat2:
        return a[4] & RENAME_NOREPLACE ? locked_link(pass, static_cast<int>(a[2]), ptr<const char>(a[3]))
                                       : locked_rename(pass, static_cast<int>(a[2]), ptr<const char>(a[3]));
    case SYS_linkat: return locked_link(pass, static_cast<int>(a[2]), ptr<const char>(a[3]));
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
    case SYS_fallocate:
    case SYS_ftruncate:
    case SYS_fsync:
    case SYS_fdatasync:
    case SYS_sync_file_range: return write_fd(pass, fd);
    default: return pass();
    }
}

}  // namespace wrap_lockfile::shim
