// The monotonic clock and sleeping on it, for deadlines and backoff; the
// thread's number for the backoff's jitter.
#include "internal.hpp"

#include <cerrno>
#include <ctime>
#include <unistd.h>

namespace wrap_lockfile::detail {

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

uint64_t thread_number() { return static_cast<uint64_t>(gettid()); }

}  // namespace wrap_lockfile::detail
