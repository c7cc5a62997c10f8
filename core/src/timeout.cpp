#include "timeout.hpp"

#include "internal.hpp"

#include <cerrno>

namespace wrap_lockfile::detail {

const char kTimeoutGrammar[] = "expected seconds as a non-negative decimal number such as 5 or 0.5, at most 1000000000";

int parse_timeout(const char *text, double *seconds) {
    if (!text) return EINVAL;
    const char *p = text;
    int64_t whole = 0;
    bool too_big = false;
    const char *digits = p;
    for (; *p >= '0' && *p <= '9'; ++p) {
        // Keep counting past the bound: "99999999999x" is EINVAL, not ERANGE.
        if (!too_big) whole = whole * 10 + (*p - '0');
        if (whole > kMaxTimeoutSeconds) too_big = true;
    }
    if (p == digits) return EINVAL;
    // Nanosecond resolution is all a deadline has; further digits still
    // have to be digits.
    int64_t nanos = 0, scale = 100000000;
    if (*p == '.') {
        const char *fraction = ++p;
        for (; *p >= '0' && *p <= '9'; ++p) {
            nanos += (*p - '0') * scale;
            scale /= 10;
        }
        if (p == fraction) return EINVAL;
    }
    if (*p) return EINVAL;
    if (too_big || (whole == kMaxTimeoutSeconds && nanos > 0)) return ERANGE;
    *seconds = static_cast<double>(whole) + static_cast<double>(nanos) / 1e9;
    return 0;
}

int64_t timeout_ns(double seconds) {
    constexpr double kMax = static_cast<double>(kMaxTimeoutSeconds);
    if (!(seconds > 0)) return 0;  // also NaN
    if (seconds >= kMax) return kMaxTimeoutSeconds * 1000000000;
    return static_cast<int64_t>(seconds * 1e9);
}

}  // namespace wrap_lockfile::detail
