// How every GoogleTest binary of the project ends: a run in which a test was
// skipped (GTEST_SKIP: a missing tool, a feature the file system or Wine
// lacks) exits 77, which meson reports as SKIP, unless a test failed. A check
// that could not run never makes its binary report OK; checks known never to
// run somewhere (Wine) are registered as a meson test of their own
// (tests/windows/meson.build), so the rest of their binary still reports OK.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>

namespace wlf_test {

inline int skip_aware_result(int rc) {
    const testing::UnitTest &u = *testing::UnitTest::GetInstance();
    if (rc != 0 || u.skipped_test_count() == 0) return rc;
    std::fprintf(stderr, "%d of %d tests skipped (listed above as SKIPPED): exit 77\n", u.skipped_test_count(),
                 u.test_to_run_count());
    return 77;
}

}  // namespace wlf_test
