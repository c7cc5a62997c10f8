// Read-your-own-writes (identity.hpp): a read-open of a pending target opens
// the temp (a new open file description, its own offset, through
// /proc/self/fd), and access() answers for it; when /proc is missing or the
// replacement finished meanwhile, the real call runs on the path as before.
// A second write-open in the opener joins the replacement the same way
// (open.cpp).
#include "identity_records.hpp"

#include "handlers.hpp"
#include "messages.hpp"

#include "sysio.hpp"

#include <fcntl.h>
#include <sys/vfs.h>

#include <cerrno>
#include <cstdio>

namespace wrap_lockfile::shim {

namespace {

// The real functions, for the calls made on the temp's behalf.
using fopen_real = FILE *(*)(const char *, const char *);
using faccessat_real = int (*)(int, const char *, int, int);
constinit std::atomic<fopen_real> g_fopen{nullptr};
constinit std::atomic<faccessat_real> g_faccessat{nullptr};

}  // namespace

int open_pending_read(int dirfd, const char *path, int flags, OpenThunk open_with) {
    Pending p;
    if ((flags & __O_TMPFILE) == __O_TMPFILE || !find_pending(dirfd, path, !(flags & O_NOFOLLOW), &p))
        return open_with(flags);
    if (int e = refusal_of_existing(flags)) {
        errno = e;
        return -1;
    }
    int fd = open_pending_temp(p, flags);
    // No /proc, or committed meanwhile: the file at the path, as before.
    if (fd < 0 && (errno == ENOENT || errno == ESTALE)) return open_with(flags);
    return fd;
}

namespace {

// A staged replacement's target through the library's own descriptor of it,
// while that is still the target; else -1 (none: taken over across exec).
int pinned_target(const Pending &p) {
    struct stat st;
    return p.shown.pinned >= 0 && sys::fstat(p.shown.pinned, &st) == 0 && same_inode(st, p.shown.dev, p.shown.ino)
               ? p.shown.pinned
               : -1;
}

}  // namespace

bool direct_join_refused(const Pending &p) {
    if (!p.shown.staged) return false;  // its temp lies beside the target
    char name[WLF_PATH_MAX];
    if (!pending_target(p, name, sizeof name)) name[0] = '\0';
    // The target through the library's descriptor of it, else by name.
    const int pinned = pinned_target(p);
    struct statfs stage, target;
    if (fstatfs(p.fd, &stage) == 0 && (pinned >= 0 ? fstatfs(pinned, &target) : statfs(name, &target)) == 0 &&
        stage.f_type == target.f_type)
        return false;
    message("wrap_lockfile: cannot open '%s' with O_DIRECT while it is staged: %s\n", name,
            "its copy in memory would take the unaligned writes the file refuses");
    errno = EINVAL;
    return true;
}

int refusal_of_existing(int flags) {
    if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) return EEXIST;
    return flags & O_DIRECTORY ? ENOTDIR : 0;
}

int open_pending_temp(const Pending &p, int flags) {
    // O_NOFOLLOW would refuse the /proc link itself; the file exists.
    const sys::ProcFdPath proc(p.fd);
    int fd = libc_open()(proc.c_str(), flags & ~(O_NOFOLLOW | O_CREAT | O_EXCL), 0);
    if (fd >= 0 && !still_pending(p)) {
        sys::close(fd);
        errno = ESTALE;
        return -1;
    }
    return fd;
}

FILE *fopen_pending_read(const char *path, const char *mode, Thunk pass) {
    Pending p;
    if (!find_pending(AT_FDCWD, path, true, &p)) return reinterpret_cast<FILE *>(pass());
    const sys::ProcFdPath proc(p.fd);
    FILE *fp = resolve(g_fopen, "fopen")(proc.c_str(), mode);
    if (!fp && errno == ENOENT) return reinterpret_cast<FILE *>(pass());
    if (fp && !still_pending(p)) {
        fclose(fp);
        return reinterpret_cast<FILE *>(pass());
    }
    return fp;
}

int access_pending(const Pending &p, int mode, int flags, Thunk pass) {
    // A staged replacement's temp is a memfd (mode 0777, ours): the target
    // answers, through the library's descriptor of it, or by its name when
    // there is none (taken over across exec).
    const int fd = p.shown.staged ? pinned_target(p) : p.fd;
    char target[WLF_PATH_MAX];
    if (fd < 0 && !pending_target(p, target, sizeof target)) return static_cast<int>(pass());  // committed meanwhile
    const sys::ProcFdPath proc(fd);
    int saved = errno;
    int r = resolve(g_faccessat, "faccessat")(AT_FDCWD, fd < 0 ? target : proc.c_str(), mode, flags);
    // No /proc, or committed meanwhile: the path, as before.
    if ((r != 0 && errno == ENOENT && fd >= 0) || !still_pending(p)) {
        errno = saved;
        return static_cast<int>(pass());
    }
    return r;
}

}  // namespace wrap_lockfile::shim
