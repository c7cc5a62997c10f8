// Path strings: joining, making absolute against the current directory,
// splitting into directory and base name.
#include "internal.hpp"
#include "sysio.hpp"

#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <unistd.h>

namespace wrap_lockfile::detail {

int join(char *dst, size_t size, const char *a, const char *b) {
    size_t la = strlen(a);
    if (!*b) {
        // A copy (most callers): one pass over a.
        if (la + 1 > size) return ENAMETOOLONG;
        memcpy(dst, a, la + 1);
        return 0;
    }
    size_t lb = strlen(b);
    if (la + lb + 1 > size) return ENAMETOOLONG;
    memcpy(dst, a, la);
    memcpy(dst + la, b, lb + 1);
    return 0;
}

int absolute_path(const char *path, char *dst, size_t size) {
    if (path[0] == '/') return join(dst, size, path, "");
    if (!getcwd(dst, size)) return errno == ERANGE ? ENAMETOOLONG : join(dst, size, path, "");
    size_t n = strlen(dst);
    const char *sep = n > 0 && dst[n - 1] == '/' ? "" : "/";
    size_t ls = strlen(sep), lp = strlen(path);
    if (n + ls + lp + 1 > size) return ENAMETOOLONG;
    memcpy(dst + n, sep, ls);
    memcpy(dst + n + ls, path, lp + 1);
    return 0;
}

int split_dir_base(const char *path, char *dir, size_t dir_size, const char **base) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        if (dir_size < 2) return ENAMETOOLONG;
        dir[0] = '.';
        dir[1] = '\0';
        *base = path;
        return 0;
    }
    size_t n = slash == path ? 1 : static_cast<size_t>(slash - path);
    if (n + 1 > dir_size) return ENAMETOOLONG;
    memcpy(dir, path, n);
    dir[n] = '\0';
    *base = slash + 1;
    return 0;
}

int open_parent(const char *path, const char **base) {
    char dir[WLF_PATH_MAX];
    if (int rc = split_dir_base(path, dir, sizeof dir, base)) {
        errno = rc;
        return -1;
    }
    return sys::open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

}  // namespace wrap_lockfile::detail
