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
// Included by handlers.hpp after identity.hpp.
#pragma once

#include "sysio.hpp"

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

// fn(fd) on the temp when path (from dirfd; `follow`: the symlink the
// program opened F through counts) names a target pending here, else the
// real call. The descriptor is checked to still be the temp first: a commit
// in another thread may have closed it and the number may have been reused.
// `owner_only`: a change only F's owner may make (owner_refuses).
template <class Pass, class OnFd>
int meta_at(Pass &&pass, OnFd &&on_fd, int dirfd, const char *path, bool follow, const void *caller,
            bool owner_only = false) {
    if (g_pending.load(std::memory_order_relaxed) == 0 || !path || !*path) return static_cast<int>(pass());
    Pending p;
    // A staged target stays the inode on disk: its metadata are changed there.
    if (called_from_shim(caller) || !find_pending(dirfd, path, follow, &p) || p.shown.staged)
        return static_cast<int>(pass());
    struct stat st;
    if (sys::fstat(p.fd, &st) != 0 || !same_inode(st, p.dev, p.ino) || !still_pending(p))
        return static_cast<int>(pass());
    if (owner_only && owner_refuses(p, dirfd, path, follow)) return -1;
    return on_fd(p.fd);
}

// Times given explicitly (not "now") are the owner's to set.
inline bool explicit_times(const struct timespec *ts) {
    return ts && !(ts[0].tv_nsec == UTIME_NOW && ts[1].tv_nsec == UTIME_NOW);
}

inline int on_temp(long nr, int fd, long a = 0, long b = 0, long c = 0, long d = 0) {
    return static_cast<int>(sys::call(nr, fd, a, b, c, d));
}

// utimensat(fd, NULL, times, 0) is futimens: the forms below in its terms.
inline int utimens_fd(int fd, const struct timespec *ts) {
    return on_temp(SYS_utimensat, fd, 0, sys::arg(ts), 0);
}
inline int utimes_fd(int fd, const struct timeval *tv) {
    if (!tv) return utimens_fd(fd, nullptr);
    struct timespec ts[2] = {{tv[0].tv_sec, tv[0].tv_usec * 1000}, {tv[1].tv_sec, tv[1].tv_usec * 1000}};
    return utimens_fd(fd, ts);
}
inline int utime_fd(int fd, const struct utimbuf *t) {
    if (!t) return utimens_fd(fd, nullptr);
    struct timespec ts[2] = {{t->actime, 0}, {t->modtime, 0}};
    return utimens_fd(fd, ts);
}

template <class Pass>
int chmod_at(Pass &&pass, int dirfd, const char *path, mode_t mode, bool follow, const void *caller) {
    return meta_at(pass, [&](int fd) { return on_temp(SYS_fchmod, fd, static_cast<long>(mode)); }, dirfd, path,
                   follow, caller, true);
}
template <class Pass>
int chown_at(Pass &&pass, int dirfd, const char *path, uid_t uid, gid_t gid, bool follow, const void *caller) {
    return meta_at(
        pass, [&](int fd) { return on_temp(SYS_fchown, fd, static_cast<long>(uid), static_cast<long>(gid)); }, dirfd,
        path, follow, caller, true);
}
// utimensat(dirfd, NULL, ...) is futimens on dirfd itself: meta_at passes it.
template <class Pass>
int utimens_at(Pass &&pass, int dirfd, const char *path, const struct timespec *ts, bool follow, const void *caller) {
    return meta_at(pass, [&](int fd) { return utimens_fd(fd, ts); }, dirfd, path, follow, caller, explicit_times(ts));
}
template <class Pass>
int utimes_at(Pass &&pass, int dirfd, const char *path, const struct timeval *tv, bool follow, const void *caller) {
    return meta_at(pass, [&](int fd) { return utimes_fd(fd, tv); }, dirfd, path, follow, caller, tv != nullptr);
}
template <class Pass>
int setxattr_at(Pass &&pass, const char *path, const char *name, const void *value, size_t size, int flags,
                bool follow, const void *caller) {
    return meta_at(
        pass,
        [&](int fd) {
            return on_temp(SYS_fsetxattr, fd, sys::arg(name), sys::arg(value), static_cast<long>(size), flags);
        },
        AT_FDCWD, path, follow, caller);
}
template <class Pass>
int removexattr_at(Pass &&pass, const char *path, const char *name, bool follow, const void *caller) {
    return meta_at(pass, [&](int fd) { return on_temp(SYS_fremovexattr, fd, sys::arg(name)); }, AT_FDCWD, path,
                   follow, caller);
}

}  // namespace wrap_lockfile::shim
