// openat2(2) through syscall(): a write-open of a matched path becomes a
// pending replacement like openat's, after the kernel has checked what the
// program's RESOLVE_* flags forbid (the replacement itself is made by path
// and would not honour them).
#include "syscall.hpp"

#include "sysio.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <linux/openat2.h>

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
