#include "internal.hpp"
#include "sysio.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
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

int fail(wlf_error *err, int code, wlf_step step, const char *op, const char *path) {
    if (err) {
        err->code = code;
        err->step = step;
        err->op = op;
        err->path[0] = '\0';
        if (path) {
            size_t n = strnlen(path, sizeof err->path - 1);
            memcpy(err->path, path, n);
            err->path[n] = '\0';
        }
    }
    return code;
}

int join(char *dst, size_t size, const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
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

int raise_fd(int fd, int floor) {
    if (fd < 0 || floor <= 0 || fd >= floor) return fd;
    int moved = sys::fcntl(fd, F_DUPFD_CLOEXEC, floor);
    if (moved < 0) return fd;
    sys::close(fd);
    return moved;
}

int64_t monotonic_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void sleep_ns(int64_t ns) {
    if (ns <= 0) return;
    timespec req{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    while (nanosleep(&req, &req) != 0 && errno == EINTR) {
    }
}

uint64_t random_u64() {
    // xorshift64*, per thread, seeded from the clock, the thread id and an address.
    static thread_local uint64_t state = 0;
    if (state == 0) {
        state = static_cast<uint64_t>(monotonic_ns()) ^ (static_cast<uint64_t>(gettid()) << 32) ^
                reinterpret_cast<uintptr_t>(&state);
        if (state == 0) state = 0x9E3779B97F4A7C15ull;
    }
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1Dull;
}

int poll_until(TryFn try_once, void *ctx, bool has_timeout, double timeout) {
    const int64_t start = monotonic_ns();
    const int64_t deadline = has_timeout && timeout > 0 ? start + timeout_ns(timeout) : 0;
    int64_t backoff = 1000000;  // 1 ms
    for (;;) {
        int rc = try_once(ctx);
        if (rc != EWOULDBLOCK) return rc;
        if (has_timeout && timeout <= 0) return EWOULDBLOCK;
        int64_t delay = backoff / 2 + static_cast<int64_t>(random_u64() % static_cast<uint64_t>(backoff));
        if (has_timeout) {
            int64_t left = deadline - monotonic_ns();
            if (left <= 0) return ETIMEDOUT;
            if (delay > left) delay = left;
        }
        sleep_ns(delay);
        if (backoff < 25000000) backoff *= 2;
    }
}

}  // namespace wrap_lockfile::detail

extern "C" const char *wlf_error_format(const wlf_error *err, char *buf, size_t size) {
    if (!buf || size == 0) return buf;
    if (!err || err->code == 0) {
        snprintf(buf, size, "no error");
        return buf;
    }
    char tmp[256];
    const char *msg = strerror_r(err->code, tmp, sizeof tmp);
    const char *op = err->op ? err->op : "operation";
    // An op with a "%s" names the path inside ("lock file %s is a FIFO");
    // it is the library's own static text, never a format for printf.
    const char *slot = strstr(op, "%s");
    if (slot)
        snprintf(buf, size, "%.*s'%s'%s: %s", static_cast<int>(slot - op), op, err->path, slot + 2, msg);
    else if (err->path[0])
        snprintf(buf, size, "%s '%s': %s", op, err->path, msg);
    else
        snprintf(buf, size, "%s: %s", op, msg);
    return buf;
}

extern "C" const char *wlf_step_name(int step) {
    static const char *const kNames[] = {"none",  "lock",  "unlock", "open",      "temp",
                                         "write", "fsync", "rename", "fsync_dir", "in_place"};
    static_assert(sizeof kNames / sizeof kNames[0] == WLF_STEP_IN_PLACE + 1, "a name for every wlf_step");
    return step >= 0 && step <= WLF_STEP_IN_PLACE ? kNames[step] : "unknown";
}
