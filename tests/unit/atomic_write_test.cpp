#include <gtest/gtest.h>
#include <wrap_lockfile/wrap_lockfile.hpp>

#include "test_support.hpp"

TEST(AtomicWrite, ReplacesContent) {
    wlf_test::TempDir dir;
    wlf_test::write_file(dir / "f", "old");
    wrap_lockfile::atomic_write_content_with_lock(dir / "f", "new");
    EXPECT_EQ(wlf_test::read_file(dir / "f"), "new");
    EXPECT_EQ(wlf_test::count_entries(dir.path()), 1u);
}
