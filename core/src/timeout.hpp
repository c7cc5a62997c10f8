// The one grammar of a lock timeout given as text (WRAP_LOCKFILE_TIMEOUT,
// `atomically --timeout`), shared by the launcher and the preload object, and
// the conversion of any timeout to a deadline offset. C-ABI layer rules: no
// libstdc++.
#pragma once

#include <cstdint>

namespace wrap_lockfile::detail {

// The largest timeout accepted, in seconds (about 31.7 years): far beyond any
// useful wait, far below where seconds * 1e9 would overflow an int64_t.
constexpr int64_t kMaxTimeoutSeconds = 1000000000;

// Parses seconds as a plain decimal: `^[0-9]+(\.[0-9]+)?$` (no sign, blank,
// exponent, hex, inf or nan), at most kMaxTimeoutSeconds. Locale-independent.
// Returns 0 and sets *seconds, EINVAL for text outside the grammar, ERANGE
// for a value above the bound.
int parse_timeout(const char *text, double *seconds);

// One line saying what parse_timeout accepts, for error messages.
extern const char kTimeoutGrammar[];

// timeout_ns (internal.hpp) clamps to the same bound.

}  // namespace wrap_lockfile::detail
