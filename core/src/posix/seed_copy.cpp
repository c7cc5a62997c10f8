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
#include <cstring>

namespace wrap_lockfile::detail {

namespace {

constexpr size_t kChunk = 1 << 30;
constexpr size_t kBuffer = 1 << 16;
constexpr off_t kAll = static_cast<off_t>(~0ULL >> 1);

#if WLF_HAVE_COPY_FILE_RANGE
bool copy_range_unsupported(int e) {
    return e == EXDEV || e == EINVAL || e == ENOSYS || e == EOPNOTSUPP || e == EBADF;
}
#endif

size_t chunk(off_t left, size_t most) { return left < static_cast<off_t>(most) ? static_cast<size_t>(left) : most; }

// Up to `len` bytes (or to src's end) from src's offset to dst's.
int copy_by_read_write(int src, int dst, off_t len) {
    char *buf = static_cast<char *>(malloc(kBuffer));
    if (!buf) return ENOMEM;
    int rc = 0;
    while (len > 0) {
        ssize_t n = sys::read(src, buf, chunk(len, kBuffer));
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
        len -= n;
    }
    free(buf);
    return rc;
}

// Up to `len` bytes (or to src's end) from src's offset to dst's:
// copy_file_range, else read/write. 0 or errno.
int copy_span(int src, int dst, off_t len) {
#if !WLF_HAVE_COPY_FILE_RANGE
    return copy_by_read_write(src, dst, len);
#else
    bool first = true;
    while (len > 0) {
        ssize_t n = sys::copy_file_range(src, dst, chunk(len, kChunk));
        if (n > 0) {
            first = false;
            len -= n;
            continue;
        }
        if (n == 0) return 0;
        if (errno == EINTR) continue;
        if (first && copy_range_unsupported(errno)) return copy_by_read_write(src, dst, len);
        return errno;
    }
    return 0;
#endif
}

// The next data extent of fd at or after pos, as [*start, *end); *start
// is -1 when only a hole (or nothing) is left. False with errno on a
// failure. A file system without SEEK_DATA reports the whole file as data
// (or refuses it: EINVAL, taken as data to the end).
bool next_extent(int fd, off_t pos, off_t *start, off_t *end) {
    off_t s = lseek(fd, pos, SEEK_DATA);
    if (s < 0 && errno == EINVAL) {
        *start = pos;
        *end = kAll;
        return true;
    }
    if (s < 0) {
        if (errno != ENXIO) return false;
        *start = *end = -1;
        return true;
    }
    off_t e = lseek(fd, s, SEEK_HOLE);
    if (e < 0) return false;
    *start = s;
    *end = e;
    return true;
}

#if WLF_HAVE_FALLOCATE
// Whether fallocate's error means this file system (or kernel, or seccomp
// profile) does not do that mode, not that it failed: EOPNOTSUPP, ENOSYS,
// EINVAL (a mode it does not know), ENODEV (not a regular file there).
bool fallocate_unsupported(int e) { return e == EOPNOTSUPP || e == ENOSYS || e == EINVAL || e == ENODEV; }
#endif

// Makes [off, off+len) of dst read as zeros without allocating: a punched
// hole, or where the file system cannot punch, zeros written.
int clear(int dst, off_t off, off_t len) {
#if WLF_HAVE_FALLOCATE
    if (sys::fallocate(dst, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) == 0) return 0;
    if (!fallocate_unsupported(errno)) return errno;
#endif
    void *zeros = calloc(1, kBuffer);
    if (!zeros) return ENOMEM;
    int rc = 0;
    while (len > 0) {
        size_t n = chunk(len, kBuffer);
        if (sys::pwrite_all(dst, zeros, n, off) != 0) {
            rc = errno;
            break;
        }
        off += static_cast<off_t>(n);
        len -= static_cast<off_t>(n);
    }
    free(zeros);
    return rc;
}

#if WLF_HAVE_FALLOCATE
// Whether fd has a hole (or an unwritten extent, which SEEK_HOLE may
// report as one) before `size`; true where that cannot be told. fd's offset
// is kept.
bool has_hole_before(int fd, off_t size) {
    off_t cur = lseek(fd, 0, SEEK_CUR);
    if (cur < 0) return true;
    off_t hole = lseek(fd, 0, SEEK_HOLE);
    if (lseek(fd, cur, SEEK_SET) < 0) return true;
    return hole < size;
}
#endif

}  // namespace

bool same_content(int a, int b, off_t size) {
    if (size == 0) return true;
    char *buf = static_cast<char *>(malloc(2 * kBuffer));
    if (!buf) return false;
    bool same = true;
    for (off_t off = 0; same && off < size;) {
        size_t want = chunk(size - off, kBuffer);
        ssize_t n = sys::pread(a, buf, want, off);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            same = false;
            break;
        }
        size_t got = 0;
        while (got < static_cast<size_t>(n)) {
            ssize_t m = sys::pread(b, buf + kBuffer + got, static_cast<size_t>(n) - got, off + static_cast<off_t>(got));
            if (m < 0 && errno == EINTR) continue;
            if (m <= 0) break;
            got += static_cast<size_t>(m);
        }
        same = got == static_cast<size_t>(n) && memcmp(buf, buf + kBuffer, got) == 0;
        off += n;
    }
    free(buf);
    return same;
}

bool is_sparse(const struct stat &st) { return st.st_size > 0 && static_cast<off_t>(st.st_blocks) * 512 < st.st_size; }

int copy_range(int src, int dst) { return copy_span(src, dst, kAll); }

int copy_sparse(int src, int dst, off_t size, off_t dst_size) {
    bool seed = dst_size < 0;
    off_t pos = 0;
    while (pos < size) {
        off_t start, end;
        if (!next_extent(src, pos, &start, &end)) return errno;
        if (start < 0 || start > size) start = end = size;
        if (end > size) end = size;
        // What dst holds under src's hole is the old content: cleared.
        if (!seed && start > pos && pos < dst_size) {
            if (int rc = clear(dst, pos, (start < dst_size ? start : dst_size) - pos)) return rc;
        }
        if (start == end) break;
        // A seed's dst is empty and grows as it is written: made as long as
        // the hole first, so that a dst opened O_APPEND is written there too.
        if ((seed && sys::ftruncate(dst, start) != 0) || lseek(src, start, SEEK_SET) < 0 ||
            lseek(dst, start, SEEK_SET) < 0)
            return errno;
        if (int rc = copy_span(src, dst, end - start)) return rc;
        pos = end;
    }
    if (seed && sys::ftruncate(dst, size) != 0) return errno;
    return 0;
}

int reserve_in_place(int fd, off_t size, const struct stat *before, int src, const struct stat *src_st) {
#if WLF_HAVE_FALLOCATE
    struct stat st;
    if (!before) {
        if (sys::fstat(fd, &st) != 0) return errno;
        before = &st;
    }
    // Blocks enough already: the new content lies within what the target
    // holds without holes (a block count alone says nothing of where the
    // blocks are: a sparse target's may all lie past the new content's, and
    // blocks preallocated past the end, fallocate's KEEP_SIZE or XFS's
    // speculative ones, make a target with holes look dense).
    if (size <= before->st_size && !is_sparse(*before) && !has_hole_before(fd, size)) return 0;
    bool sparse = src >= 0 && is_sparse(*src_st);
    // The whole range, or for a sparse content only its data extents.
    int e = 0;
    off_t pos = 0;
    // Where the file system cannot punch holes (a punch past the end, which
    // changes nothing, says so), copy_sparse writes zeros under the
    // content's holes within the target's old size: blocks for those too,
    // or its zeros could meet ENOSPC half way through the target.
    off_t zeroed = sparse ? (size < before->st_size ? size : before->st_size) : 0;
    if (zeroed > 0 && sys::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, before->st_size, 1) != 0 &&
        fallocate_unsupported(errno) &&
        sys::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, zeroed) != 0)
        e = errno;
    if (e) pos = size;
    while (pos < size) {
        off_t start = 0, end = size;
        if (sparse && !next_extent(src, pos, &start, &end)) {
            e = errno;
            break;
        }
        if (start < 0 || start >= size) break;
        if (end > size) end = size;
        if (sys::fallocate(fd, FALLOC_FL_KEEP_SIZE, start, end - start) != 0) {
            e = errno;
            break;
        }
        pos = end;
    }
    if (e == 0 || fallocate_unsupported(e)) return 0;
    struct timespec times[2] = {{0, UTIME_OMIT}, before->st_mtim};
    (void)sys::ftruncate(fd, before->st_size);
    (void)sys::call(SYS_utimensat, fd, 0, sys::arg(times), 0);
    return e;
#else
    (void)fd;
    (void)size;
    (void)before;
    (void)src;
    (void)src_st;
    return 0;
#endif
}

int seed_copy(int src, int dst, const struct stat &src_st) {
#if WLF_HAVE_FICLONE
    if (ioctl(dst, FICLONE, src) == 0) return 0;
#endif
    if (!is_sparse(src_st)) return copy_range(src, dst);
    off_t size = lseek(src, 0, SEEK_END);
    if (size < 0) return errno;
    return copy_sparse(src, dst, size, -1);
}

}  // namespace wrap_lockfile::detail
