// One coherent file, for the calls that change a file's metadata by path:
// chmod, chown, the utime family and the xattr setters on F while this
// process has F pending act on the pending temp (the core's descriptor of
// it), the file the path shows here (identity.hpp) and the one that becomes
// F at the commit. Without this git fails: config.c chmod()s "<F>.lock"
// while its lock file is still open as our replacement, and that name
// exists only after the commit. Nothing pending: one relaxed load.
//
// The temp has F's owner, group, mode and xattrs already (copied at open),
// so a later chmod or chown leaves exactly what the program asked for.
//
// A staged replacement (a hard-linked F, another user's F we may write) is
// different: its temp is a memfd written into F in place at the close, and
// F stays the inode on disk. Its metadata calls, by path and by descriptor
// (fchmod, fchown, futimens, the xattr setters: cp -p), are made on F
// itself, with the kernel's verdict, and kept across the in-place write
// (the core's staged_meta.cpp); its xattrs are read there too.
// Included by handlers.hpp after identity.hpp.
#pragma once

#include "shim_entry.hpp"
#include "sysio.hpp"

#include <cstdint>
#include <type_traits>

#include <sys/time.h>
#include <utime.h>

namespace wrap_lockfile::shim {

// Only F's owner (or root) may change its mode, owner or explicit times.
// An unprivileged writer's temp is its own even where F is somebody else's
// (it could not give the temp F's owner): the kernel's answer is F's, and F
// is still the old inode on disk. True (errno EPERM) when F says no.
inline bool owner_refuses(const Pending &p, int dirfd, const char *path, bool follow) {
    if (p.shown.dev == p.dev && p.shown.ino == p.ino) return false;  // a new F: the temp is it
    uid_t me = geteuid();
    struct stat old;
#ifdef SYS_newfstatat
    if (me == 0 || sys::call(SYS_newfstatat, dirfd, sys::arg(path), sys::arg(&old), follow ? 0 : AT_SYMLINK_NOFOLLOW) != 0 ||
        !same_inode(old, p.shown.dev, p.shown.ino) || old.st_uid == me)
        return false;
#else
    (void)dirfd, (void)path, (void)follow, (void)old;
    return false;  // no kernel stat of this layout to ask: the temp's answer
#endif
    errno = EPERM;
    return true;
}

using detail::MetaChange;

// staged_meta.cpp: c for the staged replacement p on its target (the core's
// staged_change), `stage` a descriptor of its staging file; what fstat
// shows is updated. 0, or -1 with errno (a line on stderr when the shim
// itself refuses: the target's name no longer holds the file written).
int staged_meta(const Pending &p, int stage, const MetaChange &c);
// Whether fd is a descriptor of a staged replacement's staging file; *out
// its record then (and *st, when given, fd's fstat).
bool staged_pending_fd(int fd, Pending *out, struct stat *st = nullptr);

using detail::MetaRead;
// staged_meta.cpp: r of the staged replacement p's target (the core's
// staged_read); -1 with errno (ESTALE, a line on stderr: its name no longer
// holds the file written, or it was committed meanwhile).
ssize_t staged_read_meta(const Pending &p, const MetaRead &r);

// The descriptor forms (fchmod, fchown, futimens, the xattr setters) on a
// staged replacement's descriptor, its staging memfd: c (made by `change`)
// on the target, which the descriptor stands for. Anything else: the real
// call. Nothing pending: one relaxed load.
template <class Pass, class Change>
int meta_fd(Pass &&pass, int fd, Change &&change, const void *caller) {
    if (g_pending.load(std::memory_order_relaxed) == 0) return static_cast<int>(pass());
    Pending p;
    if (called_from_shim(caller) || !staged_pending_fd(fd, &p)) return static_cast<int>(pass());
    return staged_meta(p, fd, change());
}

// c on the temp when path (from dirfd; `follow`: the symlink the program
// opened F through counts) names a target pending here, else the real call.
// The descriptor is checked to still be the temp first: a commit in another
// thread may have closed it and the number may have been reused.
// `owner_only`: a change only F's owner may make (owner_refuses). `self`:
// the call names dirfd itself (a NULL or, with AT_EMPTY_PATH, empty path).
template <class Pass, class Change>
int meta_at(Pass &&pass, Change &&change, int dirfd, const char *path, bool follow, const void *caller,
            bool owner_only, bool self) {
    if (self) return meta_fd(pass, dirfd, change, caller);
    if (g_pending.load(std::memory_order_relaxed) == 0 || !path || !*path) return static_cast<int>(pass());
    Pending p;
    if (called_from_shim(caller) || !find_pending(dirfd, path, follow, &p)) return static_cast<int>(pass());
    struct stat st;
    if (sys::fstat(p.fd, &st) != 0 || !same_inode(st, p.dev, p.ino) || !still_pending(p))
        return static_cast<int>(pass());
    // A staged target stays the inode on disk: its metadata are changed there.
    if (p.shown.staged) return staged_meta(p, p.fd, change());
    if (owner_only && owner_refuses(p, dirfd, path, follow)) return -1;
    if (int e = detail::change_fd(p.fd, change())) {
        errno = e;
        return -1;
    }
    return 0;
}

// The reads (getxattr, listxattr, their l-, f- and *at forms): what the
// pending file holds. A staged replacement's descriptor is its memfd, which
// has none of the target's xattrs: they are read from the target, as
// without the shim. A path naming a pending file: the temp's (the old file
// at the name lacks what the program set since), or a staged target's.
// Nothing pending: one relaxed load.
template <class Pass>
ssize_t read_meta_fd(Pass &&pass, int fd, const MetaRead &r, const void *caller) {
    if (g_pending.load(std::memory_order_relaxed) == 0) return pass();
    Pending p;
    if (called_from_shim(caller) || !staged_pending_fd(fd, &p)) return pass();
    return staged_read_meta(p, r);
}
template <class Pass>
ssize_t read_meta_at(Pass &&pass, int dirfd, const char *path, bool follow, const MetaRead &r, const void *caller,
                     bool self) {
    if (self) return read_meta_fd(pass, dirfd, r, caller);
    if (g_pending.load(std::memory_order_relaxed) == 0 || !path || !*path) return pass();
    Pending p;
    if (called_from_shim(caller) || !find_pending(dirfd, path, follow, &p)) return pass();
    if (p.shown.staged) return staged_read_meta(p, r);
    ssize_t n = detail::read_fd(p.fd, r);
    // The record was live before and after: the descriptor was the temp.
    if (!still_pending(p)) return pass();
    return n;
}

// Times given explicitly (not "now") are the owner's to set.
inline bool explicit_times(const struct timespec *ts) {
    return ts && !(ts[0].tv_nsec == UTIME_NOW && ts[1].tv_nsec == UTIME_NOW);
}

// The *at calls that name a descriptor itself: utimensat with a NULL path
// (futimesat's is `!path`), and an empty path with AT_EMPTY_PATH
// (utimensat, fchownat, fchmodat2; glibc's fchmodat refuses the flag or
// passes it to fchmodat2 depending on its version: fchmodat_call).
inline bool names_dirfd_empty(const char *path, int flags) { return path && !*path && (flags & AT_EMPTY_PATH); }
inline bool names_dirfd(const char *path, int flags) { return !path || names_dirfd_empty(path, flags); }

// The flags the *at metadata calls take. With any other the kernel refuses
// the call (EINVAL) before it looks at a path or descriptor: the real call
// gives that answer and changes nothing, where ours would act.
inline bool at_flags_refused(int flags) { return (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) != 0; }

// Whether libc hands a call to the kernel rather than refusing it itself,
// for arguments whose fate differs between glibc versions: asked of it on
// descriptor -1 (`on_no_file`), which the kernel answers EBADF. errno kept.
template <class OnNoFile>
bool libc_asks_kernel(OnNoFile &&on_no_file) {
    int saved = errno;
    bool asked = on_no_file() != 0 && errno == EBADF;
    errno = saved;
    return asked;
}

// ---- the calls as MetaChange ----

inline MetaChange mode_change(mode_t mode) { return MetaChange{.kind = MetaChange::set_mode, .mode = mode}; }
inline MetaChange owner_change(uid_t uid, gid_t gid) {
    return MetaChange{.kind = MetaChange::set_owner, .uid = uid, .gid = gid};
}
// utimensat's times (NULL: both now); utimes' and utime's in its terms.
inline MetaChange times_change(const struct timespec *ts) {
    MetaChange c{.kind = MetaChange::set_times, .now = ts == nullptr};
    if (ts) c.ts[0] = ts[0], c.ts[1] = ts[1];
    return c;
}
inline MetaChange times_change(const struct timeval *tv) {
    if (!tv) return times_change(static_cast<const struct timespec *>(nullptr));
    struct timespec ts[2] = {{tv[0].tv_sec, tv[0].tv_usec * 1000}, {tv[1].tv_sec, tv[1].tv_usec * 1000}};
    return times_change(ts);
}
inline MetaChange times_change(const struct utimbuf *t) {
    if (!t) return times_change(static_cast<const struct timespec *>(nullptr));
    struct timespec ts[2] = {{t->actime, 0}, {t->modtime, 0}};
    return times_change(ts);
}
inline MetaChange set_xattr_change(const char *name, const void *value, size_t size, int flags) {
    return MetaChange{.kind = MetaChange::set_xattr, .name = name, .value = value, .size = size, .flags = flags};
}
inline MetaChange remove_xattr_change(const char *name) {
    return MetaChange{.kind = MetaChange::remove_xattr, .name = name};
}

// ---- handlers named in interpose.tbl (and syscall.hpp) ----

// By path; `self` as meta_at's.
template <class Pass>
int chmod_at(Pass &&pass, int dirfd, const char *path, mode_t mode, bool follow, const void *caller, bool self = false) {
    return meta_at(pass, [&] { return mode_change(mode); }, dirfd, path, follow, caller, true, self);
}
template <class Pass>
int chown_at(Pass &&pass, int dirfd, const char *path, uid_t uid, gid_t gid, bool follow, const void *caller,
             bool self = false) {
    return meta_at(pass, [&] { return owner_change(uid, gid); }, dirfd, path, follow, caller, true, self);
}
// utime, utimes, lutimes, futimesat, utimensat: the times as the call takes them.
template <class Pass, class Times>
int times_at(Pass &&pass, int dirfd, const char *path, const Times *t, bool follow, const void *caller,
             bool self = false) {
    bool owner_only = t != nullptr;
    if constexpr (std::is_same_v<Times, struct timespec>) owner_only = explicit_times(t);
    return meta_at(pass, [&] { return times_change(t); }, dirfd, path, follow, caller, owner_only, self);
}
template <class Pass>
int setxattr_at(Pass &&pass, const char *path, const char *name, const void *value, size_t size, int flags,
                bool follow, const void *caller) {
    return meta_at(pass, [&] { return set_xattr_change(name, value, size, flags); }, AT_FDCWD, path, follow, caller,
                   false, false);
}
template <class Pass>
int removexattr_at(Pass &&pass, const char *path, const char *name, bool follow, const void *caller) {
    return meta_at(pass, [&] { return remove_xattr_change(name); }, AT_FDCWD, path, follow, caller, false, false);
}

// fchmodat2(2) (Linux 6.6): fchmodat with the kernel's flags.
template <class Pass>
int fchmodat2_call(Pass &&pass, int dirfd, const char *path, mode_t mode, int fl, const void *caller) {
    if (at_flags_refused(fl)) return static_cast<int>(pass());
    return chmod_at(pass, dirfd, path, mode, !(fl & AT_SYMLINK_NOFOLLOW), caller, names_dirfd_empty(path, fl));
}
// fchmodat(3): glibc makes 0 and AT_SYMLINK_NOFOLLOW itself; any other flag
// it refuses (EINVAL: before 2.39, or on a kernel without fchmodat2) or
// hands to fchmodat2 (AT_EMPTY_PATH with an empty path: the descriptor).
template <class Real, class Pass>
int fchmodat_call(Real &&real, Pass &&pass, int dirfd, const char *path, mode_t mode, int fl, const void *caller) {
    if ((fl & ~AT_SYMLINK_NOFOLLOW) && (g_pending.load(std::memory_order_relaxed) == 0 ||
                                        !libc_asks_kernel([&] { return real(-1, "", mode, fl); })))
        return pass();
    return fchmodat2_call(pass, dirfd, path, mode, fl, caller);
}
// fchownat(2): the kernel's flags, passed on by libc.
template <class Pass>
int fchownat_call(Pass &&pass, int dirfd, const char *path, uid_t uid, gid_t gid, int fl, const void *caller) {
    if (at_flags_refused(fl)) return static_cast<int>(pass());
    return chown_at(pass, dirfd, path, uid, gid, !(fl & AT_SYMLINK_NOFOLLOW), caller, names_dirfd_empty(path, fl));
}
// utimensat(3): glibc refuses a NULL path itself (EINVAL: futimens is its
// own entry), which the system call takes for the descriptor. Nothing
// pending: one relaxed load.
template <class Real, class Pass>
int utimensat_call(Real &&real, Pass &&pass, int dirfd, const char *path, const struct timespec *ts, int fl,
                   const void *caller) {
    if (at_flags_refused(fl)) return pass();
    if (!path && (g_pending.load(std::memory_order_relaxed) == 0 ||
                  !libc_asks_kernel([&] { return real(-1, nullptr, nullptr, fl); })))
        return pass();
    return times_at(pass, dirfd, path, ts, !(fl & AT_SYMLINK_NOFOLLOW), caller, names_dirfd(path, fl));
}
// The system call utimensat(2): a NULL path names the descriptor, and then
// no flag is taken.
template <class Pass>
int sys_utimensat_call(Pass &&pass, int dirfd, const char *path, const struct timespec *ts, int fl,
                       const void *caller) {
    if (path ? at_flags_refused(fl) : fl != 0) return static_cast<int>(pass());
    return times_at(pass, dirfd, path, ts, !(fl & AT_SYMLINK_NOFOLLOW), caller, names_dirfd(path, fl));
}

// The *at xattr calls (Linux 6.13) name the descriptor with AT_EMPTY_PATH
// and an empty or NULL path.
inline bool xattrat_names_dirfd(const char *path, int flags) { return (flags & AT_EMPTY_PATH) && (!path || !*path); }
// setxattrat's argument block (<linux/xattr.h> from 6.13).
struct XattrArgs {
    uint64_t value;
    uint32_t size;
    uint32_t flags;
};
// Whether the kernel takes the `usize` bytes at args as a block: at least
// the ones it knows, any beyond them zero (else EINVAL, E2BIG, EFAULT).
inline bool xattr_args_taken(const XattrArgs *args, size_t usize) {
    if (!args || usize < sizeof *args || usize > static_cast<size_t>(getpagesize())) return false;
    const auto *tail = reinterpret_cast<const unsigned char *>(args);
    for (size_t i = sizeof *args; i < usize; ++i)
        if (tail[i]) return false;
    return true;
}
template <class Pass>
int setxattrat_call(Pass &&pass, int dirfd, const char *path, int fl, const char *name, const XattrArgs *args,
                    size_t usize, const void *caller) {
    if (g_pending.load(std::memory_order_relaxed) == 0 || at_flags_refused(fl) || !xattr_args_taken(args, usize))
        return static_cast<int>(pass());
    return meta_at(
        pass,
        [&] {
            return set_xattr_change(name, reinterpret_cast<const void *>(static_cast<uintptr_t>(args->value)), args->size,
                                    static_cast<int>(args->flags));
        },
        dirfd, path, !(fl & AT_SYMLINK_NOFOLLOW), caller, false, xattrat_names_dirfd(path, fl));
}
template <class Pass>
int removexattrat_call(Pass &&pass, int dirfd, const char *path, int fl, const char *name, const void *caller) {
    if (at_flags_refused(fl)) return static_cast<int>(pass());
    return meta_at(pass, [&] { return remove_xattr_change(name); }, dirfd, path, !(fl & AT_SYMLINK_NOFOLLOW), caller,
                   false, xattrat_names_dirfd(path, fl));
}
// getxattrat reads into the block's value (its size), whose flags must be 0.
template <class Pass>
ssize_t getxattrat_call(Pass &&pass, int dirfd, const char *path, int fl, const char *name, const XattrArgs *args,
                        size_t usize, const void *caller) {
    if (g_pending.load(std::memory_order_relaxed) == 0 || at_flags_refused(fl) || !xattr_args_taken(args, usize) ||
        args->flags != 0)
        return pass();
    const MetaRead r{name, reinterpret_cast<void *>(static_cast<uintptr_t>(args->value)), args->size};
    return read_meta_at(pass, dirfd, path, !(fl & AT_SYMLINK_NOFOLLOW), r, caller, xattrat_names_dirfd(path, fl));
}
template <class Pass>
ssize_t listxattrat_call(Pass &&pass, int dirfd, const char *path, int fl, char *list, size_t size,
                         const void *caller) {
    if (at_flags_refused(fl)) return pass();
    return read_meta_at(pass, dirfd, path, !(fl & AT_SYMLINK_NOFOLLOW), MetaRead{nullptr, list, size}, caller,
                        xattrat_names_dirfd(path, fl));
}

// By descriptor.
template <class Pass>
int fchmod_fd(Pass &&pass, int fd, mode_t mode, const void *caller) {
    return meta_fd(pass, fd, [&] { return mode_change(mode); }, caller);
}
template <class Pass>
int fchown_fd(Pass &&pass, int fd, uid_t uid, gid_t gid, const void *caller) {
    return meta_fd(pass, fd, [&] { return owner_change(uid, gid); }, caller);
}
template <class Pass, class Times>
int futimes_fd(Pass &&pass, int fd, const Times *t, const void *caller) {
    return meta_fd(pass, fd, [&] { return times_change(t); }, caller);
}
template <class Pass>
int fsetxattr_fd(Pass &&pass, int fd, const char *name, const void *value, size_t size, int flags,
                 const void *caller) {
    return meta_fd(pass, fd, [&] { return set_xattr_change(name, value, size, flags); }, caller);
}
template <class Pass>
int fremovexattr_fd(Pass &&pass, int fd, const char *name, const void *caller) {
    return meta_fd(pass, fd, [&] { return remove_xattr_change(name); }, caller);
}

}  // namespace wrap_lockfile::shim
