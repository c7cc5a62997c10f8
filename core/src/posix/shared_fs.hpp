// Shared (network and FUSE) file systems: which ones, and how their caches'
// ESTALE and ENOENT answers are retried. README "Shared file systems".
#pragma once

#include <sys/stat.h>

#include <cstdint>

namespace wrap_lockfile::detail {

// Whether the file system holding `fd` / `path` is shared between hosts or
// served by a user-space daemon (statfs f_type: NFS, SMB/CIFS, Ceph, FUSE,
// AFS, 9p, Lustre, GPFS, OCFS2, GFS2). There a lock file is never unlinked
// (another client's cached attributes could vouch for the unlinked inode).
// Which backend the shim takes there: mount_info.hpp. False on error.
bool is_shared_fs_fd(int fd);
// The same for a descriptor whose mount's unique id (fstat_with_mount) is
// `mount` (0: unknown): the last mount found not shared is remembered, which
// spares the statfs of every lock after the first. Unique mount ids are
// never reused (unlike device numbers, which a later NFS mount may get).
bool is_shared_fs_fd(int fd, uint64_t mount);
// fstat(fd, st) by statx, with the unique id of fd's mount into *mount (0
// where the kernel has none: before Linux 6.8). 0 or -1 with errno.
int fstat_with_mount(int fd, struct stat *st, uint64_t *mount);
bool is_shared_fs_path(const char *path);
// The same for the directory that holds `path` (which may not exist).
bool is_shared_fs_parent(const char *path);

// A handle a shared file system's cache made stale: ESTALE, or EBADFD on a
// shared file system (GlusterFS's FUSE client answers it for an inode that
// another client's replacement made stale, on open, read or stat).
bool is_stale_handle(int err, const char *path);

// A bounded retry of lookups that a shared file system's caches answered
// wrongly, the way NFS clients retry: ESTALE (a cached handle of a file
// another client replaced) for up to 5 s, ENOENT (a name seen a moment ago,
// mid-rename on another client) for up to 0.5 s; exponential backoff from
// 1 ms to 50 ms. again(err) sleeps and returns true while err may still be
// the cache's; false means err is the answer.
class StaleRetry {
public:
    bool again(int err);
    // The same for a stale handle only (is_stale_handle: ESTALE, or EBADFD
    // on a shared file system holding `path`): false for any other err.
    bool again_if_stale(int err, const char *path);

private:
    int64_t start_ = 0;
    int64_t backoff_ = 1000000;
};

}  // namespace wrap_lockfile::detail
