#include "internal.hpp"
#include "replace_parts.hpp"
#include "sysio.hpp"
#include "wlf_config.h"

#if WLF_HAVE_FICLONE
#include <linux/fs.h>
#include <sys/ioctl.h>
#endif
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace wrap_lockfile::detail {

namespace {

constexpr size_t kChunk = 1 << 30;
constexpr size_t kBuffer = 1 << 16;

#if WLF_HAVE_COPY_FILE_RANGE
bool copy_range_unsupported(int e) {
    return e == EXDEV || e == EINVAL || e == ENOSYS || e == EOPNOTSUPP || e == EBADF;
}
#endif

int copy_by_read_write(int src, int dst) {
    char *buf = static_cast<char *>(malloc(kBuffer));
    if (!buf) return ENOMEM;
    int rc = 0;
    for (;;) {
        ssize_t n = sys::read(src, buf, kBuffer);
        if (n < 0) {
            if (errno == EINTR) continue;
            rc = errno;
            break;
        }
        if (n == 0) break;
        if (sys::write_all(dst, buf, static_cast<size_t>(n)) != 0) {
            rc = errno;
            break;
        }
    }
    free(buf);
    return rc;
}

}  // namespace

int copy_range(int src, int dst) {
#if !WLF_HAVE_COPY_FILE_RANGE
    return copy_by_read_write(src, dst);
#else
    bool first = true;
    for (;;) {
        ssize_t n = sys::copy_file_range(src, dst, kChunk);
        if (n > 0) {
            first = false;
            continue;
        }
        if (n == 0) return 0;
        if (errno == EINTR) continue;
        if (first && copy_range_unsupported(errno)) return copy_by_read_write(src, dst);
        return errno;
    }
#endif
}

int reserve_in_place(int fd, off_t size, const struct stat *before) {
#if WLF_HAVE_FALLOCATE
    struct stat st;
    if (!before) {
        if (sys::fstat(fd, &st) != 0) return errno;
        before = &st;
    }
    if (size <= static_cast<off_t>(before->st_blocks) * 512) return 0;  // blocks enough already
    if (sys::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, size) == 0) return 0;
    int e = errno;
    if (e == EOPNOTSUPP || e == ENOSYS || e == EINVAL || e == ENODEV) return 0;
    struct timespec times[2] = {{0, UTIME_OMIT}, before->st_mtim};
    (void)sys::ftruncate(fd, before->st_size);
    (void)sys::call(SYS_utimensat, fd, 0, sys::arg(times), 0);
    return e;
#else
    (void)fd;
    (void)size;
    (void)before;
    return 0;
#endif
}

int seed_copy(int src, int dst) {
#if WLF_HAVE_FICLONE
    if (ioctl(dst, FICLONE, src) == 0) return 0;
#endif
    return copy_range(src, dst);
}

}  // namespace wrap_lockfile::detail
