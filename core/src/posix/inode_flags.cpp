// The target's inode flags and per-inode attributes (chattr's flags,
// lsattr -p's project id, XFS's extent size hints) onto the temp, before
// the seed (docs/design.md, step 6, "Inode flags"). An in-place write keeps
// them all, since the inode stays; a replacement must give them again.
#include "internal.hpp"
#include "replace_parts.hpp"
#include "sysio.hpp"
#include "wlf_config.h"

#if WLF_HAVE_FILEATTR
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>

#include <atomic>
#endif

#include <cerrno>

namespace wrap_lockfile::detail {

#if !WLF_HAVE_FILEATTR

int read_inode_attrs(int, dev_t, InodeAttrs *out) {
    *out = InodeAttrs{};
    return 0;
}

int give_inode_attrs(const InodeAttrs &, int, const char *, bool *kept, const char **) {
    *kept = true;
    return 0;
}

#else

namespace {

// What a replacement carries of FS_IOC_GETFLAGS: the flags that describe
// how the file is to be kept and that its owner (or, for data journalling,
// CAP_SYS_RESOURCE) may set. Not carried: immutable and append-only (never
// replaced: open_check.cpp refuses, the shim appends in place), what
// describes the inode's layout or is set by other means (extents, inline
// data, encryption, verity, huge file) and the directories' own
// (index, top dir, casefold, project inherit).
constexpr uint32_t kCarriedFlags = FS_SECRM_FL | FS_UNRM_FL | FS_COMPR_FL | FS_SYNC_FL | FS_NODUMP_FL |
                                   FS_NOATIME_FL | FS_JOURNAL_DATA_FL | FS_NOTAIL_FL | FS_DIRSYNC_FL |
                                   FS_NOCOW_FL | FS_NOCOMP_FL | FS_DAX_FL;
// Of FS_IOC_FSGETXATTR's: the same common flags and XFS's own for regular
// files (real-time device, extent size hints, no defrag, filestreams);
// the hints' values and the project id go with them.
constexpr uint32_t kCarriedXflags = FS_XFLAG_REALTIME | FS_XFLAG_EXTSIZE | FS_XFLAG_COWEXTSIZE | FS_XFLAG_NODEFRAG |
                                    FS_XFLAG_FILESTREAM | FS_XFLAG_SYNC | FS_XFLAG_NOATIME | FS_XFLAG_NODUMP |
                                    FS_XFLAG_DAX;

constexpr uint32_t kCommonXflags = FS_XFLAG_SYNC | FS_XFLAG_NOATIME | FS_XFLAG_NODUMP | FS_XFLAG_DAX;

// The file system has no such attributes (or not on this inode): nothing to
// carry, never a failed write. Both ioctls reach the same file system
// method (vfs_fileattr_get), so one failing means the other would too.
bool unsupported(int e) { return e == ENOTTY || e == EOPNOTSUPP || e == EINVAL || e == ENOSYS; }

// The writer may not give the attribute (EPERM: data journalling without
// CAP_SYS_RESOURCE; EINVAL: a project id from a user namespace), or the
// temp cannot take it: the caller writes the target in place instead.
bool cannot_give(int e) { return e == EPERM || e == EACCES || unsupported(e); }

// Which of the two queries a file system answers with something the other
// does not: tmpfs and btrfs keep flags only (no project id, no hints), XFS
// keeps xflags, of which its flags are a view; ext4, f2fs and the rest need
// both. One fstatfs per file system and process (a few slots, lock-free: a
// replacement may run in a signal handler), so a loop pays one ioctl.
enum : unsigned { kAskFlags = 1, kAskFsx = 2 };
constexpr int kSlots = 8;
std::atomic<uint64_t> g_kinds[kSlots];  // dev << 2 | queries; 0: empty
std::atomic<unsigned> g_next{0};

unsigned queries_of(long type) {
    switch (type) {
    case TMPFS_MAGIC:
    case BTRFS_SUPER_MAGIC: return kAskFlags;
    case XFS_SUPER_MAGIC: return kAskFsx;
    default: return kAskFlags | kAskFsx;
    }
}

unsigned queries_for(int fd, dev_t dev) {
    uint64_t key = static_cast<uint64_t>(dev);
    bool cacheable = (key >> 62) == 0;
    for (auto &slot : g_kinds) {
        uint64_t v = slot.load(std::memory_order_relaxed);
        if (cacheable && v && (v >> 2) == key) return static_cast<unsigned>(v & 3);
    }
    struct statfs sf;
    if (fstatfs(fd, &sf) != 0) return kAskFlags | kAskFsx;  // ask both: never miss one
    unsigned q = queries_of(static_cast<long>(sf.f_type));
    if (cacheable) g_kinds[g_next.fetch_add(1, std::memory_order_relaxed) % kSlots].store(key << 2 | q, std::memory_order_relaxed);
    return q;
}

// The temp lies in the target's directory. A directory with project
// inheritance (chattr +P) accepts a name only for an inode of its own
// project (link and rename give EXDEV otherwise): whether `dir` has it.
// 0 or errno.
int passes_project(const char *dir, bool *inherits) {
    *inherits = false;
    sys::UniqueFd d(sys::open(dir, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC));
    if (!d) return errno;
    struct fsxattr fa {};
    if (ioctl(d.get(), FS_IOC_FSGETXATTR, &fa) != 0) return unsupported(errno) ? 0 : errno;
    *inherits = (fa.fsx_xflags & FS_XFLAG_PROJINHERIT) != 0;
    return 0;
}

// Sets the carried flags on the temp; what it has beyond them (inherited
// from the directory) stays.
int give_flags(const InodeAttrs &a, int fd, bool *kept, const char **op) {
    unsigned int cur = 0;
    if (ioctl(fd, FS_IOC_GETFLAGS, &cur) != 0) {
        *op = "read inode flags of temporary file";
        if (!unsupported(errno)) return errno;
        *kept = false;
        return 0;
    }
    unsigned int want = cur | a.flags;
    if (want == cur) return 0;
    if (ioctl(fd, FS_IOC_SETFLAGS, &want) == 0) return 0;
    *op = "set inode flags of temporary file";
    if (!cannot_give(errno)) return errno;
    *kept = false;
    return 0;
}

int give_fsx(const InodeAttrs &a, int fd, const char *dir, bool *kept, const char **op) {
    struct fsxattr cur {};
    if (ioctl(fd, FS_IOC_FSGETXATTR, &cur) != 0) {
        *op = "read attributes of temporary file";
        if (!unsupported(errno)) return errno;
        *kept = false;
        return 0;
    }
    struct fsxattr want = cur;
    want.fsx_xflags |= a.xflags;
    if (a.extsize) want.fsx_extsize = a.extsize;
    if (a.cowextsize) want.fsx_cowextsize = a.cowextsize;
    if (a.projid && a.projid != cur.fsx_projid) {
        // A temp of another project than the target's got the directory's
        // (inheritance), and the directory would refuse the target's at the
        // commit: keep the project by writing in place. A temp of the
        // default project may lie in a directory that inherits it too.
        bool inherits = cur.fsx_projid != 0;
        if (!inherits) {
            *op = "read attributes of directory of";
            if (int rc = passes_project(dir, &inherits)) return rc;
        }
        if (inherits) {
            *kept = false;
            return 0;
        }
        want.fsx_projid = a.projid;
    }
    if (want.fsx_xflags == cur.fsx_xflags && want.fsx_extsize == cur.fsx_extsize &&
        want.fsx_cowextsize == cur.fsx_cowextsize && want.fsx_projid == cur.fsx_projid)
        return 0;
    if (ioctl(fd, FS_IOC_FSSETXATTR, &want) == 0) return 0;
    *op = "set attributes of temporary file";
    if (!cannot_give(errno)) return errno;
    *kept = false;
    return 0;
}

}  // namespace

int read_inode_attrs(int src, dev_t dev, InodeAttrs *out) {
    *out = InodeAttrs{};
    unsigned ask = queries_for(src, dev);
    if (ask & kAskFlags) {
        unsigned int flags = 0;
        if (ioctl(src, FS_IOC_GETFLAGS, &flags) != 0) return unsupported(errno) ? 0 : errno;
        out->flags = flags & kCarriedFlags;
    }
    if (ask & kAskFsx) {
        struct fsxattr fa {};
        if (ioctl(src, FS_IOC_FSGETXATTR, &fa) != 0) return unsupported(errno) ? 0 : errno;
        out->xflags = fa.fsx_xflags & kCarriedXflags;
        // The common ones are flags too: given with those where both are asked.
        if (ask & kAskFlags) out->xflags &= ~kCommonXflags;
        if (out->xflags & FS_XFLAG_EXTSIZE) out->extsize = fa.fsx_extsize;
        if (out->xflags & FS_XFLAG_COWEXTSIZE) out->cowextsize = fa.fsx_cowextsize;
        out->projid = fa.fsx_projid;
    }
    out->any = out->flags || out->xflags || out->projid;
    return 0;
}

int give_inode_attrs(const InodeAttrs &a, int fd, const char *dir, bool *kept, const char **op) {
    *kept = true;
    if (!a.any) return 0;
    if (a.flags) {
        if (int rc = give_flags(a, fd, kept, op)) return rc;
        if (!*kept) return 0;
    }
    if (a.xflags || a.projid) return give_fsx(a, fd, dir, kept, op);
    return 0;
}

#endif

}  // namespace wrap_lockfile::detail
