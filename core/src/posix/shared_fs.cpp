// Shared file systems: detection by statfs magic and the stale-cache retry.
#include "shared_fs.hpp"

#include "internal.hpp"
#include "replace_parts.hpp"
#include "sysio.hpp"
#include "wlf_config.h"

#include <sys/statfs.h>

#include <atomic>
#include <cerrno>

namespace wrap_lockfile::detail {

namespace {

constexpr int64_t kStaleBudgetNs = 5000000000;   // ESTALE: Gluster's md-cache holds 1 s, NFS attrs up to 60 s
constexpr int64_t kEnoentBudgetNs = 500000000;   // ENOENT: a lookup racing another client's rename
constexpr int64_t kMaxBackoffNs = 50000000;

bool shared_magic(unsigned long type) {
    switch (type) {
    case 0x6969:       // NFS
    case 0x517B:       // SMB
    case 0xFF534D42:   // CIFS
    case 0xFE534D42:   // SMB2
    case 0x00C36400:   // Ceph
    case 0x65735546:   // FUSE (GlusterFS, sshfs, s3fs, CephFS-fuse, ...)
    case 0x5346414F:   // AFS
    case 0x6B414653:   // kAFS
    case 0x01021997:   // 9p
    case 0x0BD00BD0:   // Lustre
    case 0x47504653:   // GPFS
    case 0x7461636F:   // OCFS2
    case 0x01161970:   // GFS2
        return true;
    default:
        return false;
    }
}

}  // namespace

bool is_shared_fs_fd(int fd) {
    struct statfs sfs;
    return fstatfs(fd, &sfs) == 0 && shared_magic(static_cast<unsigned long>(sfs.f_type));
}

#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x4000U  // Linux 6.8
#endif

namespace {
std::atomic<uint64_t> g_unshared_mount{0};
}

bool is_shared_fs_fd(int fd, uint64_t mount) {
    if (mount != 0 && g_unshared_mount.load(std::memory_order_relaxed) == mount) return false;
    struct statfs sfs;
    if (fstatfs(fd, &sfs) != 0) return false;
    bool shared = shared_magic(static_cast<unsigned long>(sfs.f_type));
    if (!shared && mount != 0) g_unshared_mount.store(mount, std::memory_order_relaxed);
    return shared;
}

int fstat_with_mount(int fd, struct stat *st, uint64_t *mount) {
    *mount = 0;
#if !WLF_HAVE_STATX
    return sys::fstat(fd, st);
#else
    struct statx stx;
    // Straight to the kernel: inside the shim, libc's statx is its own.
    if (sys::call(SYS_statx, fd, sys::arg(""), AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_MNT_ID_UNIQUE, sys::arg(&stx)) != 0) {
        // No statx (old kernels, some seccomp profiles): fstat, no mount id.
        if (errno != ENOSYS && errno != EPERM) return -1;
        return sys::fstat(fd, st);
    }
    stat_of_statx(stx, st);
    if (stx.stx_mask & STATX_MNT_ID_UNIQUE) *mount = stx.stx_mnt_id;
    return 0;
#endif
}

bool is_shared_fs_path(const char *path) {
    struct statfs sfs;
    return statfs(path, &sfs) == 0 && shared_magic(static_cast<unsigned long>(sfs.f_type));
}

bool is_shared_fs_parent(const char *path) {
    char dir[WLF_PATH_MAX];
    const char *base;
    return split_dir_base(path, dir, sizeof dir, &base) == 0 && is_shared_fs_path(dir);
}

bool is_stale_handle(int err, const char *path) {
    return err == ESTALE || (err == EBADFD && is_shared_fs_parent(path));
}

bool StaleRetry::again_if_stale(int err, const char *path) { return is_stale_handle(err, path) && again(ESTALE); }

bool StaleRetry::again(int err) {
    // GlusterFS's FUSE client answers EBADFD for an inode whose handle the
    // other client's replacement made stale: the same case as ESTALE.
    if (err == EBADFD) err = ESTALE;
    if (err != ESTALE && err != ENOENT) return false;
    int64_t now = monotonic_ns();
    if (start_ == 0) start_ = now;
    if (now - start_ >= (err == ESTALE ? kStaleBudgetNs : kEnoentBudgetNs)) return false;
    int64_t delay = backoff_ / 2 + static_cast<int64_t>(random_u64() % static_cast<uint64_t>(backoff_));
    sleep_ns(delay);
    if (backoff_ < kMaxBackoffNs) backoff_ *= 2;
    return true;
}

}  // namespace wrap_lockfile::detail
