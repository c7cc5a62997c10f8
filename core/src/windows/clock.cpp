// The monotonic clock and sleeping on it, for deadlines and backoff, and the
// thread's number for the jitter, on Windows (internal.hpp).
#include "internal.hpp"

#include <windows.h>

namespace wrap_lockfile::detail {

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

uint64_t thread_number() { return GetCurrentThreadId(); }

}  // namespace wrap_lockfile::detail
