// Which paths the core takes, per the build's wlf_config.h: each Linux-only
// call (O_TMPFILE, statx, copy_file_range, memfd, /proc/locks) is made with
// -Dlinux_features=enabled/auto, and never with =disabled, where the portable
// fallback (named temp, fstatat, read/write, an unlinked staging file in
// $TMPDIR, no lock holder) must do the job instead. tools/dev test runs the
// unit suite in build-portable/, so the fallbacks a macOS or BSD port starts
// from stay tested.
#include <gtest/gtest.h>

#include "test_support.hpp"
#include "wlf_config.h"

#include <wrap_lockfile/wrap_lockfile.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>
#include <vector>

using wlf_test::list_names;
using wlf_test::read_file;
using wlf_test::TempDir;
using wlf_test::write_file;
using Names = std::vector<std::string>;

namespace {

// A replacement of `target` opened with `flags`, "new" written and
// committed, in a thread of its own where system call `nr` fails with EIO
// (seccomp: the build under test must not need it). Returns wlf_open's or
// the write's or wlf_commit's error, 0 when all went well; *names is what
// the directory held while the replacement was pending, *nlink the link
// count of its descriptor then, *fd_link what /proc says the descriptor is.
struct Outcome {
    int rc = -1;
    Names names;
    nlink_t nlink = 99;
    std::string fd_link;
};

Outcome replace_without(long nr, const TempDir &dir, const char *target, int flags, int use_lock = 1) {
    Outcome out;
    std::thread t([&] {
        if (nr >= 0 && wlf_test::fail_syscall_in_this_thread(nr, EIO) != 0) return;
        wlf_write_options opt;
        wlf_write_options_init(&opt);
        opt.use_lock = use_lock;
        wlf_file *f = nullptr;
        if ((out.rc = wlf_open_flags((dir / target).c_str(), flags, 0644, &opt, &f, nullptr)) != 0) return;
        out.names = list_names(dir.path());
        struct stat st;
        if (::fstat(wlf_file_fd(f), &st) == 0) out.nlink = st.st_nlink;
        char proc[64], link[4096];
        std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", wlf_file_fd(f));
        ssize_t n = ::readlink(proc, link, sizeof link - 1);
        if (n > 0) out.fd_link.assign(link, static_cast<size_t>(n));
        if (::write(wlf_file_fd(f), "new", 3) != 3) {
            out.rc = errno;
            wlf_discard(f);
            return;
        }
        out.rc = wlf_commit(f, nullptr, nullptr);
    });
    t.join();
    return out;
}

bool tmpfile_works_in(const TempDir &dir) {
#if WLF_HAVE_O_TMPFILE
    int fd = ::open(dir.path().c_str(), O_TMPFILE | O_RDWR, 0600);
    if (fd < 0) return false;
    ::close(fd);
    return true;
#else
    (void)dir;
    return false;
#endif
}

}  // namespace

// The temp: an unnamed O_TMPFILE where the build and the file system have
// it; without linux_features a named one beside the target, always.
TEST(LinuxFeatures, TempIsNamedWithoutOTmpfile) {
    TempDir dir;
    write_file(dir / "f", "old");
    Outcome o = replace_without(-1, dir, "f", WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0);
    ASSERT_EQ(o.rc, 0);
    EXPECT_EQ(read_file(dir / "f"), "new");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
    if (WLF_HAVE_O_TMPFILE && tmpfile_works_in(dir)) {
        EXPECT_EQ(o.names, Names{"f"}) << "an O_TMPFILE has no name";
        EXPECT_EQ(o.nlink, 0u);
    } else {
        ASSERT_EQ(o.names.size(), 2u) << "want f and a named temp";
        std::string temp = o.names[0] == "f" ? o.names[1] : o.names[0];
        EXPECT_EQ(temp.rfind(".f.", 0), 0u) << temp;
        EXPECT_EQ(o.nlink, 1u);
    }
}

// The target's attributes: statx, or fstatat without it. A statx that fails
// (EIO) fails the open of a Linux build; the portable build never asks.
TEST(LinuxFeatures, StatxOnlyWhereBuiltIn) {
    TempDir dir;
    write_file(dir / "f", "old");
    Outcome o = replace_without(__NR_statx, dir, "f", WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE);
    if (WLF_HAVE_STATX) {
        EXPECT_EQ(o.rc, EIO) << "the build uses statx; with it failing, the open must fail";
        EXPECT_EQ(read_file(dir / "f"), "old");
    } else {
        EXPECT_EQ(o.rc, 0);
        EXPECT_EQ(read_file(dir / "f"), "new");
    }
}

// Seeding an append: copy_file_range, or read/write without it.
TEST(LinuxFeatures, CopyFileRangeOnlyWhereBuiltIn) {
    TempDir dir;
    write_file(dir / "f", std::string(100000, 'o'));
    Outcome o = replace_without(__NR_copy_file_range, dir, "f", WLF_OPEN_WRITE | WLF_OPEN_APPEND);
    if (WLF_HAVE_COPY_FILE_RANGE && o.rc != 0) {
        EXPECT_EQ(o.rc, EIO) << "the build copies with copy_file_range; with it failing, the open must fail";
        EXPECT_EQ(read_file(dir / "f"), std::string(100000, 'o'));
    } else {
        // read/write; or a Linux build on a reflink file system, where FICLONE
        // shared the extents and nothing needed copying.
        ASSERT_EQ(o.rc, 0);
        EXPECT_EQ(read_file(dir / "f"), std::string(100000, 'o') + "new");
    }
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

// A hard-linked target is staged and written in place at commit: in a
// memfd, or without one in an unlinked file in $TMPDIR.
TEST(LinuxFeatures, StagingFileWithoutMemfd) {
    TempDir dir, tmpdir;
    write_file(dir / "f", "old");
    ASSERT_EQ(::link((dir / "f").c_str(), (dir / "g").c_str()), 0);
    const char *saved = std::getenv("TMPDIR");
    std::string saved_value = saved ? saved : "";
    ::setenv("TMPDIR", tmpdir.path().c_str(), 1);
    Outcome o = replace_without(-1, dir, "f", WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0);
    if (saved)
        ::setenv("TMPDIR", saved_value.c_str(), 1);
    else
        ::unsetenv("TMPDIR");
    ASSERT_EQ(o.rc, 0);
    EXPECT_EQ(read_file(dir / "g"), "new") << "written in place: both names see it";
    if (WLF_HAVE_MEMFD) {
        EXPECT_EQ(o.fd_link.rfind("/memfd:", 0), 0u) << o.fd_link;
    } else {
        EXPECT_EQ(o.fd_link.rfind(tmpdir.path().string() + "/.wrap_lockfile-stage.", 0), 0u) << o.fd_link;
        EXPECT_EQ(o.nlink, 0u) << "the staging file has no name";
    }
    EXPECT_EQ(list_names(tmpdir.path()), Names{}) << "the staging file is unlinked at once";
}

// The holder of a flock: /proc/locks names it; without /proc nobody knows.
TEST(LinuxFeatures, LockHolderOnlyFromProc) {
    TempDir dir;
    wlf_lock_options opt;
    wlf_lock_options_init(&opt);
    wlf_lock *lock = nullptr;
    ASSERT_EQ(wlf_lock_acquire((dir / "f").c_str(), &opt, &lock, nullptr), 0);
    EXPECT_EQ(wlf_lock_holder((dir / "f").c_str()), WLF_HAVE_PROC ? ::getpid() : 0);
    ASSERT_EQ(wlf_lock_release(lock, nullptr), 0);
}
