// Polling with exponential backoff and jitter until a try succeeds or a
// deadline passes (lock waits), and the small PRNG behind the jitter and
// temp names.
#include "internal.hpp"

#include <cerrno>
#include <cstdint>

namespace wrap_lockfile::detail {

uint64_t random_u64() {
    // xorshift64*, per thread, seeded from the clock, the thread id and an address.
    static thread_local uint64_t state = 0;
    if (state == 0) {
        state = static_cast<uint64_t>(monotonic_ns()) ^ (thread_number() << 32) ^
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
