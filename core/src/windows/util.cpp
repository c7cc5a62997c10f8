// The helpers of internal.hpp for Windows: error records and messages, the
// monotonic clock, sleeping, jitter and the polling loop of every lock with
// a timeout. The platform-neutral ones (fail, join, poll_until, the message
// format) are the same as util.cpp's until they move into a portable file.
#include "internal.hpp"
#include "win.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

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

int64_t monotonic_ns() {
    static LARGE_INTEGER frequency;  // constant since boot; zero-initialised, filled once
    if (frequency.QuadPart == 0) QueryPerformanceFrequency(&frequency);
    LARGE_INTEGER now;
    QueryPerformanceCounter(&now);
    int64_t q = now.QuadPart / frequency.QuadPart, r = now.QuadPart % frequency.QuadPart;
    return q * 1000000000 + r * 1000000000 / frequency.QuadPart;
}

void sleep_ns(int64_t ns) {
    // Sleep has millisecond resolution (and the timer tick's granularity):
    // round up, so that a deadline is never reached early.
    if (ns > 0) Sleep(static_cast<DWORD>((ns + 999999) / 1000000));
}

uint64_t random_u64() {
    // xorshift64*, per thread, seeded from the clock, the thread id and an address.
    static thread_local uint64_t state = 0;
    if (state == 0) {
        state = static_cast<uint64_t>(monotonic_ns()) ^ (static_cast<uint64_t>(GetCurrentThreadId()) << 32) ^
                (static_cast<uint64_t>(GetCurrentProcessId()) << 16) ^ reinterpret_cast<uintptr_t>(&state);
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

namespace {

// msvcrt's strerror knows the classic errno values only; the POSIX ones
// mingw-w64 adds (ETIMEDOUT, EWOULDBLOCK...) would read "Unknown error".
const char *error_text(int code, char *tmp, size_t size) {
    switch (code) {
    case ETIMEDOUT: return "Connection timed out";
    case EWOULDBLOCK: return "Resource temporarily unavailable";
    case ENOTSUP: return "Operation not supported";
    case ELOOP: return "Too many levels of symbolic links";
    case EOVERFLOW: return "Value too large for defined data type";
    default:
        if (strerror_s(tmp, size, code) != 0) snprintf(tmp, size, "error %d", code);
        return tmp;
    }
}

}  // namespace

extern "C" const char *wlf_error_format(const wlf_error *err, char *buf, size_t size) {
    if (!buf || size == 0) return buf;
    if (!err || err->code == 0) {
        snprintf(buf, size, "no error");
        return buf;
    }
    char tmp[256];
    const char *msg = error_text(err->code, tmp, sizeof tmp);
    const char *op = err->op ? err->op : "operation";
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
