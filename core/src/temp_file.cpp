#include "internal.hpp"
#include "replace_parts.hpp"
#include "sysio.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace wrap_lockfile::detail {

namespace {

constexpr int kNameAttempts = 100;

int temp_name(const char *base, const char *suffix, char *name, size_t size) {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char rnd[9];
    uint64_t r = random_u64();
    for (int i = 0; i < 8; ++i) {
        rnd[i] = alphabet[r % 62];
        r /= 62;
    }
    rnd[8] = '\0';
    int n = snprintf(name, size, ".%s.%s%s", base, rnd, suffix);
    if (n < 0 || static_cast<size_t>(n) >= size) return ENAMETOOLONG;
    return 0;
}

}  // namespace

bool tmpfile_unsupported(int error) {
    return error == EOPNOTSUPP || error == EISDIR || error == EINVAL || error == ENOENT;
}

int create_anonymous_temp(int dir_fd, mode_t mode) {
    return sys::openat(dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
}

int create_named_temp(int dir_fd, const char *base, const char *suffix, mode_t mode, char *name,
                      size_t size) {
    for (int i = 0; i < kNameAttempts; ++i) {
        if (int rc = temp_name(base, suffix, name, size)) {
            errno = rc;
            return -1;
        }
        int fd = sys::openat(dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    errno = EEXIST;
    return -1;
}

int link_anonymous_temp(int fd, int dir_fd, const char *base, const char *suffix, char *name,
                        size_t size) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    for (int i = 0; i < kNameAttempts; ++i) {
        if (int rc = temp_name(base, suffix, name, size)) return rc;
        int rc = sys::linkat(AT_FDCWD, proc, dir_fd, name, AT_SYMLINK_FOLLOW);
        if (rc != 0 && errno == ENOENT) {
            // No /proc: AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH but may work.
            rc = sys::linkat(fd, "", dir_fd, name, AT_EMPTY_PATH);
        }
        if (rc == 0) return 0;
        if (errno != EEXIST) return errno;
    }
    return EEXIST;
}

}  // namespace wrap_lockfile::detail
