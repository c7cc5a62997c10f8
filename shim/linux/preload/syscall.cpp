// openat2(2) through syscall(): a write-open of a matched path becomes a
// pending replacement like openat's, after the kernel has checked what the
// program's RESOLVE_* flags forbid (the replacement itself is made by path
// and would not honour them). And whether the kernel has the newer calls
// the shim makes on a pending file in the program's stead.
#include "syscall.hpp"

#include "sysio.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <linux/openat2.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace wrap_lockfile::shim {

namespace {

// 0 when the kernel lets `how` (O_PATH, the program's resolve flags) reach
// path, or its directory when the path does not exist yet; else errno.
int resolution_allowed(syscall_fn real, long dirfd, const char *path, const open_how &how) {
    open_how probe{O_PATH | (how.flags & O_NOFOLLOW), 0, how.resolve};
    long fd = real(SYS_openat2, dirfd, sys::arg(path), sys::arg(&probe), long{sizeof probe});
    if (fd < 0 && errno == ENOENT && (how.flags & O_CREAT)) {
        const char *slash = strrchr(path, '/');
        char dir[WLF_PATH_MAX];
        size_t n = slash ? static_cast<size_t>(slash - path) + 1 : 0;
        if (n >= sizeof dir) return ENAMETOOLONG;
        memcpy(dir, path, n);
        strcpy(dir + n, ".");
        probe.flags = O_PATH | O_DIRECTORY;
        fd = real(SYS_openat2, dirfd, sys::arg(dir), sys::arg(&probe), long{sizeof probe});
    }
    if (fd < 0) return errno;
    sys::close(static_cast<int>(fd));
    return 0;
}

}  // namespace

bool kernel_has(Newer which) {
    // Asked once each, with arguments the call refuses before it does
    // anything (flags and sizes of -1): EINVAL, E2BIG, EFAULT or EBADF say
    // it looked at them.
    static constinit std::atomic<signed char> known[2]{};  // 0 not asked, 1 yes, -1 no
    std::atomic<signed char> &k = known[static_cast<int>(which)];
    signed char v = k.load(std::memory_order_relaxed);
    if (v == 0) {
        int saved = errno;
        long nr = -1;  // none: ENOSYS
#ifdef SYS_fchmodat2
        if (which == Newer::fchmodat2) nr = SYS_fchmodat2;
#endif
#ifdef SYS_removexattrat
        if (which == Newer::xattrat) nr = SYS_removexattrat;  // one of the four, all from 6.13
#endif
        bool looked = sys::call(nr, -1, -1, -1, -1, -1, -1) < 0 &&
                      (errno == EINVAL || errno == E2BIG || errno == EFAULT || errno == EBADF);
        errno = saved;
        v = looked ? 1 : -1;
        k.store(v, std::memory_order_relaxed);
    }
    return v > 0;
}

long openat2_call(syscall_fn real, const long *a) {
    const auto *path = ptr<const char>(a[1]);
    const auto *how = ptr<const open_how>(a[2]);
    auto pass = [&]() { return real(SYS_openat2, a[0], a[1], a[2], a[3]); };
    // Anything we cannot read as an open_how is the kernel's to refuse.
    if (!how || static_cast<unsigned long>(a[3]) < sizeof(open_how) || !path ||
        !wants_write(static_cast<int>(how->flags)) || !active())
        return served(static_cast<int>(pass()));
    open_how mine = *how;
    auto open_with = [&](int fl) {
        if (static_cast<uint64_t>(fl) == how->flags) return static_cast<int>(pass());
        mine.flags = static_cast<uint64_t>(static_cast<unsigned>(fl));
        return static_cast<int>(real(SYS_openat2, a[0], a[1], sys::arg(&mine), long{sizeof mine}));
    };
    if (how->resolve) {
        if (int rc = resolution_allowed(real, a[0], path, *how)) {
            errno = rc;
            return -1;
        }
    }
    return open_at(open_with, static_cast<int>(a[0]), path, static_cast<int>(how->flags),
                   static_cast<mode_t>(how->mode));
}

}  // namespace wrap_lockfile::shim
