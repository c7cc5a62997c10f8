#include <gtest/gtest.h>
#include <wrap_lockfile/wrap_lockfile.hpp>

#include "test_support.hpp"

TEST(Lock, AcquireReleaseRemovesLockFile) {
    wlf_test::TempDir dir;
    {
        wrap_lockfile::mylockfile lock(dir / "f");
        EXPECT_TRUE(std::filesystem::exists(dir / "f.lock"));
    }
    EXPECT_FALSE(std::filesystem::exists(dir / "f.lock"));
}
