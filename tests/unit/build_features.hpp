// What this build of the core does, for expectations that differ with
// -Dlinux_features (wlf_config.h, core/meson.build): the unit suite runs in
// both builds, and a check of a Linux-only fact either expects the portable
// fallback's answer or skips, saying so.
#pragma once

#include "wlf_config.h"

#include <sys/types.h>

namespace wlf_test {

// What wlf_lock_holder (and LockTimeout::holder) reports for a flock held by
// `pid`: the pid, read from /proc/locks; 0 (unknown) without /proc.
inline pid_t seen_holder(pid_t pid) { return WLF_HAVE_PROC ? pid : 0; }

}  // namespace wlf_test

// Skips a test whose subject is a Linux-only call the build went without.
#define REQUIRE_BUILD_FEATURE(have, what)                                                  \
    do {                                                                                   \
        if (!(have)) GTEST_SKIP() << "built with -Dlinux_features=disabled: no " << what; \
    } while (0)
