#include "internal.hpp"
#include "replace_parts.hpp"

#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace wrap_lockfile::detail {

namespace {
constexpr int kMaxHops = 40;  // the kernel's own limit for one lookup
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

}  // namespace wrap_lockfile::detail
