#include "internal.hpp"
#include "replace_parts.hpp"

#include "sysio.hpp"

#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace wrap_lockfile::detail {

namespace {
constexpr int kMaxHops = 40;  // the kernel's own limit for one lookup
// The device of the last directory ordinary_tmpfs_under_dev found to be one.
std::atomic<dev_t> g_dev_tmpfs{0};

int stat_nofollow(const char *path, struct stat *st) {
    // Straight to the kernel: inside the shim, libc's stat is its own.
    return static_cast<int>(sys::call(SYS_newfstatat, AT_FDCWD, sys::arg(path), sys::arg(st), AT_SYMLINK_NOFOLLOW));
}
}

int resolve_target(const char *path, bool nofollow, char *final, size_t size, bool *exists,
                   struct stat *st, bool *via_proc) {
    if (!path || !*path) return ENOENT;
    *via_proc = false;
    char cur[WLF_PATH_MAX];
    if (int rc = join(cur, sizeof cur, path, "")) return rc;
    for (int hop = 0; hop <= kMaxHops; ++hop) {
        // /dev/stderr -> /proc/self/fd/2 -> somebody's log: /proc's links
        // name open files, not paths to replace. Hand back the path as given.
        if (hop > 0 && strncmp(cur, "/proc/", 6) == 0) {
            *via_proc = true;
            *exists = lstat(path, st) == 0;
            return join(final, size, path, "");
        }
        if (lstat(cur, st) != 0) {
            if (errno != ENOENT) return errno;
            *exists = false;
            return join(final, size, cur, "");
        }
        if (!S_ISLNK(st->st_mode)) {
            *exists = true;
            return join(final, size, cur, "");
        }
        if (nofollow && hop == 0) return ELOOP;
        // A /proc link named directly (/proc/self/fd/N) is as one reached
        // through a link: its text ("<path> (deleted)", "pipe:[N]") is no
        // path to replace.
        if (hop == 0 && strncmp(cur, "/proc/", 6) == 0) {
            *via_proc = true;
            *exists = true;
            return join(final, size, path, "");
        }
        char link[WLF_PATH_MAX];
        ssize_t n = readlink(cur, link, sizeof link - 1);
        if (n < 0) return errno;
        link[n] = '\0';
        if (link[0] == '/') {
            memcpy(cur, link, static_cast<size_t>(n) + 1);
            continue;
        }
        char dir[WLF_PATH_MAX];
        const char *base;
        if (int rc = split_dir_base(cur, dir, sizeof dir, &base)) return rc;
        char next[WLF_PATH_MAX];
        bool root = strcmp(dir, "/") == 0;
        size_t dl = strlen(dir);
        if (dl + 1 + static_cast<size_t>(n) + 1 > sizeof next) return ENAMETOOLONG;
        memcpy(next, dir, dl);
        size_t pos = dl;
        if (!root) next[pos++] = '/';
        memcpy(next + pos, link, static_cast<size_t>(n) + 1);
        memcpy(cur, next, strlen(next) + 1);
    }
    return ELOOP;
}

bool is_pseudo_fs(const char *path) {
    struct statfs sfs;
    if (statfs(path, &sfs) != 0) return false;
    switch (static_cast<unsigned long>(sfs.f_type)) {
    case PROC_SUPER_MAGIC:
    case SYSFS_MAGIC:
    case CGROUP_SUPER_MAGIC:
    case CGROUP2_SUPER_MAGIC:
    case DEBUGFS_MAGIC:
    case TRACEFS_MAGIC:
    case SECURITYFS_MAGIC:
    case BPF_FS_MAGIC:
        return true;
    default:
        return false;
    }
}

bool is_overlay_fs(const char *path) {
    struct statfs sfs;
    return statfs(path, &sfs) == 0 && static_cast<unsigned long>(sfs.f_type) == OVERLAYFS_SUPER_MAGIC;
}

bool ordinary_tmpfs_under_dev(const char *path) {
    const char *slash = strrchr(path, '/');
    // A file in /dev itself is on /dev's file system.
    if (!slash || slash - path <= 4) return false;
    char dir[WLF_PATH_MAX];
    size_t n = static_cast<size_t>(slash - path);
    if (n >= sizeof dir) return false;
    memcpy(dir, path, n);
    dir[n] = '\0';
    // The directory itself, not a symlink's target (/dev/fd -> /proc/self/fd).
    struct stat d, dev;
    if (stat_nofollow(dir, &d) != 0 || !S_ISDIR(d.st_mode)) return false;
    if (d.st_dev == g_dev_tmpfs.load(std::memory_order_relaxed)) return true;
    // devtmpfs says TMPFS_MAGIC too: what tells it apart is being /dev's.
    if (stat_nofollow("/dev", &dev) != 0 || dev.st_dev == d.st_dev) return false;
    struct statfs sfs;
    if (statfs(dir, &sfs) != 0 || static_cast<unsigned long>(sfs.f_type) != TMPFS_MAGIC) return false;
    g_dev_tmpfs.store(d.st_dev, std::memory_order_relaxed);
    return true;
}

}  // namespace wrap_lockfile::detail
