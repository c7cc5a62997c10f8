// The out-of-line parts of sysio.hpp: whole writes, and descriptor numbers
// out of the program's way.
#include "internal.hpp"
#include "sysio.hpp"

#include <cerrno>
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

int raise_fd(int fd, int floor) {
    if (fd < 0 || floor <= 0 || fd >= floor) return fd;
    int moved = sys::fcntl(fd, F_DUPFD_CLOEXEC, floor);
    if (moved < 0) return fd;
    sys::close(fd);
    return moved;
}

}  // namespace wrap_lockfile::detail
