// The open(2) flags wlf_open takes: for the library's check of its callers
// and for the shim, which passes any other write-open through untouched.
#pragma once

#include <fcntl.h>

namespace wrap_lockfile::detail {

// The rest (O_ASYNC, O_DIRECTORY, O_PATH...) cannot apply to a replacement.
// Flags that only matter for what the caller writes through directly
// (pass-through and lock-only kinds: O_NONBLOCK, O_NOCTTY, O_SYNC...) are
// accepted and used there.
inline constexpr int kSupportedOpenFlags = O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_NOFOLLOW | O_CLOEXEC |
                                           O_NOCTTY | O_LARGEFILE | O_NONBLOCK | O_SYNC | O_DSYNC | O_DIRECT |
                                           O_NOATIME;

}  // namespace wrap_lockfile::detail
