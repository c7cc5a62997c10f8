// Absolute forms of the paths libc calls name (see paths.hpp).
#include "paths.hpp"

#include "dirfd_cache.hpp"

#include "internal.hpp"
#include "normalize.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace wrap_lockfile::shim {

int make_raw(int dirfd, const char *path, char *out, size_t size) {
    if (path[0] == '/') return detail::join(out, size, path, "");
    char base[WLF_PATH_MAX];
    if (dirfd == AT_FDCWD) {
        // Room for the '/' added below; ERANGE: a directory deeper than that.
        if (!getcwd(base, sizeof base - 1)) return errno == ERANGE ? ENAMETOOLONG : errno;
    } else if (int rc = dirfd_path(dirfd, base, sizeof base - 1)) {
        return rc;
    }
    size_t n = strlen(base);
    if (n == 0 || base[n - 1] != '/') {
        base[n] = '/';
        base[n + 1] = '\0';
    }
    return detail::join(out, size, base, path);
}

int make_paths(int dirfd, const char *path, Paths *p) {
    if (int rc = make_raw(dirfd, path, p->raw, sizeof p->raw)) return rc;
    return detail::normalize_path("/", p->raw, p->norm, sizeof p->norm);
}

}  // namespace wrap_lockfile::shim
