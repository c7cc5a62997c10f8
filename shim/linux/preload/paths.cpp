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

namespace {

// s past `prefix`, or nullptr (also for s nullptr).
const char *past(const char *s, const char *prefix) {
    size_t n = strlen(prefix);
    return s && strncmp(s, prefix, n) == 0 ? s + n : nullptr;
}

// s past a decimal number and then `then`, or nullptr.
const char *past_number(const char *s, const char *then) {
    if (!s || *s < '0' || *s > '9') return nullptr;
    while (*s >= '0' && *s <= '9') ++s;
    return past(s, then);
}

// Whether s is a decimal number and nothing more.
bool whole_number(const char *s) {
    const char *end = past_number(s, "");
    return end && !*end;
}

}  // namespace

bool names_open_file(const char *path) {
    if (path[0] != '/') return false;
    if (const char *dev = past(path, "/dev/"))
        return whole_number(past(dev, "fd/")) || strcmp(dev, "stdin") == 0 || strcmp(dev, "stdout") == 0 ||
               strcmp(dev, "stderr") == 0;
    const char *proc = past(path, "/proc/");
    const char *pid = past(proc, "self/");
    if (!pid) pid = past(proc, "thread-self/");
    if (!pid) pid = past_number(proc, "/");
    const char *thread = past_number(past(pid, "task/"), "/");
    return whole_number(past(thread ? thread : pid, "fd/"));
}

}  // namespace wrap_lockfile::shim
