// The out-of-line parts of sysio.hpp: whole writes, and descriptor numbers
// out of the program's way.
#include "internal.hpp"
#include "sysio.hpp"

#include <cerrno>
#include <sys/resource.h>
#include <unistd.h>

namespace wrap_lockfile::sys {

int write_all(int fd, const void *data, size_t size) {
    const char *p = static_cast<const char *>(data);
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        size -= static_cast<size_t>(n);
    }
    return 0;
}

int pwrite_all(int fd, const void *data, size_t size, off_t offset) {
    const char *p = static_cast<const char *>(data);
    while (size > 0) {
        ssize_t n = pwrite(fd, p, size, offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        size -= static_cast<size_t>(n);
        offset += n;
    }
    return 0;
}

}  // namespace wrap_lockfile::sys

namespace wrap_lockfile::detail {

int dup_above(int fd, int floor) {
    int moved = sys::fcntl(fd, F_DUPFD_CLOEXEC, floor);
    if (moved >= 0 || errno != EINVAL || floor <= 0) return moved;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    rlim_t lower = rl.rlim_cur / 4 * 3;
    if (lower == 0 || lower >= static_cast<rlim_t>(floor)) {
        errno = EMFILE;
        return -1;
    }
    return sys::fcntl(fd, F_DUPFD_CLOEXEC, static_cast<long>(lower));
}

int dup_kept(int fd, int floor) {
    int moved = floor > 0 ? dup_above(fd, floor) : -1;
    return moved >= 0 ? moved : sys::fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

bool descriptors_free(int n) {
    int taken[3];
    if (n > 3) n = 3;
    int k = 0;
    while (k < n && (taken[k] = k == 0 ? sys::open("/", O_PATH | O_CLOEXEC) : sys::fcntl(taken[0], F_DUPFD_CLOEXEC, 0)) >= 0)
        ++k;
    for (int i = 0; i < k; ++i) sys::close(taken[i]);
    return k == n;
}

int raise_fd(int fd, int floor) {
    if (fd < 0 || floor <= 0 || fd >= floor) return fd;
    int moved = dup_above(fd, floor);
    if (moved < 0) return fd;
    sys::close(fd);
    return moved;
}

}  // namespace wrap_lockfile::detail
