// Durability batch through the C and C++ APIs (README "What one replacement
// does", step 4; docs/design.md, "Batch durability"). What a crash leaves is
// proved by the fault suite (tests/faultfs/batch_crash_test.sh); here: the
// content, the leftovers, the calls and their errors.
#include <gtest/gtest.h>
#include <wrap_lockfile/wrap_lockfile.h>
#include <wrap_lockfile/wrap_lockfile.hpp>

#include "test_support.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace wl = wrap_lockfile;
using wlf_test::read_file;
using wlf_test::TempDir;

namespace {

// The names in dir, sorted, each followed by a space.
std::string listing(const fs::path &dir) {
    std::vector<std::string> names;
    for (const auto &e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    std::string out;
    for (const auto &n : names) out += n + " ";
    return out;
}

}  // namespace

TEST(Batch, CommitsLikeFullAndSyncPendingSucceeds) {
    TempDir d;
    wl::WriteOptions o;
    o.durability = wl::Durability::batch;
    for (int i = 0; i < 3; ++i) {
        fs::create_directories(d / ("d" + std::to_string(i)));
        for (int k = 0; k < 2; ++k) {
            fs::path t = d / ("d" + std::to_string(i)) / ("f" + std::to_string(k));
            EXPECT_EQ(wl::atomic_write_content_with_lock(t, "new", o), wl::CommitKind::rename);
            EXPECT_EQ(read_file(t), "new");
        }
    }
    EXPECT_NO_THROW(wl::sync_pending());
    EXPECT_NO_THROW(wl::sync_pending());  // nothing left: a no-op
    for (int i = 0; i < 3; ++i) EXPECT_EQ(listing(d / ("d" + std::to_string(i))), "f0 f1 ") << i;
}

// More directories than the registry holds (64): flushed early, and every
// commit still succeeds.
TEST(Batch, ManyDirectoriesOverflowTheRegistry) {
    TempDir d;
    wlf_write_options o;
    wlf_write_options_init(&o);
    o.durability = WLF_DURABILITY_BATCH;
    for (int i = 0; i < 150; ++i) {
        fs::path dir = d / ("d" + std::to_string(i));
        fs::create_directory(dir);
        wlf_error err{};
        ASSERT_EQ(wlf_write_content((dir / "f").c_str(), "x", 1, &o, &err), 0) << i << ": " << err.op;
        EXPECT_EQ(read_file(dir / "f"), "x");
    }
    wlf_error err{};
    EXPECT_EQ(wlf_sync_pending(&err), 0);
    EXPECT_EQ(wlf_sync_pending(nullptr), 0);
}

// A directory renamed after its commit: the flush finds another (or no)
// directory at the path and syncs the file system instead, successfully.
TEST(Batch, DirectoryRenamedBeforeTheFlush) {
    TempDir d;
    fs::create_directory(d / "a");
    wl::WriteOptions o;
    o.durability = wl::Durability::batch;
    wl::atomic_write_content_with_lock(d / "a" / "f", "new", o);
    fs::rename(d / "a", d / "b");
    fs::create_directory(d / "a");
    EXPECT_NO_THROW(wl::sync_pending());
    EXPECT_EQ(read_file(d / "b" / "f"), "new");
}

// A forked child starts with nothing deferred; exit() in it and in the
// parent both succeed (the child's exit does not sync the parent's
// directories; the parent's does).
TEST(Batch, ForkedChildCommitsAndExits) {
    TempDir d;
    wl::WriteOptions o;
    o.durability = wl::Durability::batch;
    wl::atomic_write_content_with_lock(d / "parent", "p", o);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        try {
            wl::atomic_write_content_with_lock(d / "child", "c", o);
        } catch (...) {
            _exit(1);
        }
        exit(0);  // the exit-time flush runs here
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_EQ(read_file(d / "child"), "c");
    EXPECT_EQ(read_file(d / "parent"), "p");
    EXPECT_NO_THROW(wl::sync_pending());
}

TEST(Batch, UnknownDurabilityIsRefused) {
    TempDir d;
    wlf_write_options o;
    wlf_write_options_init(&o);
    o.durability = 3;
    wlf_error err{};
    EXPECT_EQ(wlf_write_content((d / "f").c_str(), "x", 1, &o, &err), EINVAL);
    EXPECT_EQ(err.step, WLF_STEP_OPEN);
    EXPECT_FALSE(fs::exists(d / "f"));
    EXPECT_EQ(listing(d.path()), "");
}
