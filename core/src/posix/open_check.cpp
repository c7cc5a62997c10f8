// Whether the program's own open(2) of the path would have been allowed,
// asked of the kernel rather than re-derived (README "What one replacement
// does", step 2). A replacement never opens the path the program named for
// writing, so without asking, the kernel's own refusals would be bypassed:
// fs.protected_symlinks (the library follows the last symlinks itself),
// fs.protected_regular and fs.protected_fifos (judged only for an O_CREAT
// open of an existing file), permissions, ACLs, LSM policies, immutable and
// append-only files, read-only mounts. Opening a file without O_TRUNC and
// without O_CREAT changes nothing in it, so the kernel's verdict costs one
// open, and the descriptor it gives is the inode the program would have
// written: the replacement seeds from it and copies its attributes.
#include "internal.hpp"
#include "replace_parts.hpp"
#include "sysio.hpp"
#include "wlf_config.h"

#if WLF_HAVE_STATX
#include <linux/stat.h>
#endif
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>

namespace wrap_lockfile::detail {

namespace {

// Never block (a FIFO or a lease swapped in after our look), never become
// the controlling terminal, never leak into a child.
constexpr int kCheckFlags = O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
// What of the program's flags takes part in open(2)'s verdict. O_TRUNC and
// O_CREAT are left out (they would change the file); O_DIRECT and the sync
// flags only change how data is written into the temp.
constexpr int kVerdictFlags = O_APPEND | O_NOFOLLOW | O_NOATIME | O_LARGEFILE;

constexpr uid_t kOverflowUid = 65534;  // how an unmapped owner shows in a user namespace

}  // namespace

#if WLF_HAVE_STATX
void stat_of_statx(const struct statx &sx, struct stat *st) {
    memset(st, 0, sizeof *st);
    st->st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
    st->st_ino = sx.stx_ino;
    st->st_mode = sx.stx_mode;
    st->st_nlink = sx.stx_nlink;
    st->st_uid = sx.stx_uid;
    st->st_gid = sx.stx_gid;
    st->st_rdev = makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
    st->st_size = static_cast<off_t>(sx.stx_size);
    st->st_blksize = static_cast<blksize_t>(sx.stx_blksize);
    st->st_blocks = static_cast<blkcnt_t>(sx.stx_blocks);
    st->st_atim = {sx.stx_atime.tv_sec, sx.stx_atime.tv_nsec};
    st->st_mtim = {sx.stx_mtime.tv_sec, sx.stx_mtime.tv_nsec};
    st->st_ctim = {sx.stx_ctime.tv_sec, sx.stx_ctime.tv_nsec};
}
#endif

int stat_with_attrs(int dirfd, const char *path, int atflags, struct stat *st, uint64_t *attrs) {
#if !WLF_HAVE_STATX
    // fstatat: no attributes (an append-only target is then refused by the
    // rename at commit, the old content kept, instead of appended in place).
    *attrs = 0;
    return fstatat(dirfd, path, st, atflags) == 0 ? 0 : errno;
#else
    struct statx sx;
    if (statx(dirfd, path, atflags, STATX_BASIC_STATS, &sx) != 0) {
        // No statx (old kernels, some seccomp profiles): fstatat, no attributes.
        if (errno != ENOSYS && errno != EPERM) return errno;
        *attrs = 0;
        return fstatat(dirfd, path, st, atflags) == 0 ? 0 : errno;
    }
    stat_of_statx(sx, st);
    *attrs = sx.stx_attributes & sx.stx_attributes_mask;
    return 0;
#endif
}

int open_as_program(const char *path, int flags, mode_t mode, bool want_read, const struct stat &st, bool *readable) {
    int base = (flags & kVerdictFlags) | kCheckFlags;
    int acc = flags & O_ACCMODE;
    // A regular file with a lease: O_NONBLOCK turns the lease break the
    // program's open would wait for into EWOULDBLOCK. Wait like it.
    auto open_waiting_for_lease = [&](int how) {
        int fd = sys::open(path, base | how, mode);
        if (fd < 0 && errno == EWOULDBLOCK && S_ISREG(st.st_mode)) fd = sys::open(path, (base & ~O_NONBLOCK) | how, mode);
        return fd;
    };
    int fd = -1;
    *readable = acc == O_RDWR;
    if (want_read && acc != O_RDWR) {
        // Seeding reads it: ask for both, and for the program's own access
        // only when reading is what is refused (a write-only file for us).
        fd = open_waiting_for_lease(O_RDWR);
        if (fd >= 0) *readable = true;
        else if (errno != EACCES && errno != EPERM) return -1;
    }
    if (fd < 0) fd = open_waiting_for_lease(acc);
    if (fd < 0) return -1;
    struct stat seen;
    int e = sys::fstat(fd, &seen) != 0 ? errno : 0;
    // The path names another file than the one looked at under the lock (a
    // link or the file swapped meanwhile): the verdict and the seed would
    // be somebody else's. (Identities only: straight to the kernel.)
    if (!e && (seen.st_dev != st.st_dev || seen.st_ino != st.st_ino)) e = EAGAIN;
    // O_DIRECT is judged on the file's own file system (a file bound over
    // the name may lie on another than its directory's, where the temp is),
    // by F_SETFL, which refuses it where open(2) would: EINVAL. Taken off
    // again: this descriptor is the seed's source.
    if (!e && (flags & O_DIRECT)) {
        int fl = sys::fcntl(fd, F_GETFL);
        if (fl < 0 || sys::fcntl(fd, F_SETFL, fl | O_DIRECT) != 0 || sys::fcntl(fd, F_SETFL, fl) != 0) e = errno;
    }
    if (e) {
        sys::close_quietly(fd);
        errno = e;
        return -1;
    }
    // fs.protected_regular and fs.protected_fifos judge only an O_CREAT open
    // of another user's existing file (in a sticky directory). Ours, or an
    // open without O_CREAT, cannot be refused by them. The kernel compares
    // the file system uid, which setfsuid(-1) reports without changing it.
    if (!(flags & O_CREAT)) return fd;
    uid_t fsuid = static_cast<uid_t>(setfsuid(static_cast<uid_t>(-1)));
    if (st.st_uid == fsuid && st.st_uid != kOverflowUid) return fd;
    // The file exists (we hold it open), so O_CREAT creates nothing unless
    // it is removed in between: then the new, empty inode (the one the
    // program's open would have made) fails the identity check and the
    // replacement is refused.
    int again = open_waiting_for_lease(acc | O_CREAT);
    if (again < 0) {
        e = errno;
        sys::close_quietly(fd);
        errno = e;
        return -1;
    }
    bool same = fstat(again, &seen) == 0 && seen.st_dev == st.st_dev && seen.st_ino == st.st_ino;
    sys::close_quietly(again);
    if (!same) {
        sys::close_quietly(fd);
        errno = EAGAIN;
        return -1;
    }
    return fd;
}

int check_follow(const char *path) {
    // O_PATH follows the links as open(2) would, with fs.protected_symlinks,
    // and opens (creates) nothing: ENOENT is a dangling link it may follow.
    int fd = sys::open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : errno;
    sys::close(fd);
    return 0;
}

}  // namespace wrap_lockfile::detail
