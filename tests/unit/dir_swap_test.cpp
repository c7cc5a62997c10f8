// The library's own removals and renames, with the target's directory
// swapped at the worst moment: right after the library looked at its lock
// file there. Whoever may write the parent can put a symlink to another
// directory at the path then (rename the real one away, symlink in its
// place); a removal or rename by path would then reach that other
// directory's f.lock or f, somebody else's. The swap is made by fstatat
// itself (interposed below, armed for one call on a name ending in
// "f.lock"), or for a dotlock breaker by the removal of its probe link,
// its last step before the unlink: the moment is exact, not a race.
#include <gtest/gtest.h>
#include <wrap_lockfile/wrap_lockfile.h>

#include "test_support.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using wlf_test::list_names;
using Names = std::vector<std::string>;
using wlf_test::read_file;
using wlf_test::TempDir;
using wlf_test::write_file;

namespace {

std::atomic<bool> g_armed{false};        // swap after the next look at f.lock
std::atomic<bool> g_armed_probe{false};  // swap after the next removal of a name ending in ".b"
std::function<void()> g_swap;

bool ends_with(const char *path, const char *tail) {
    size_t n = path ? strlen(path) : 0, t = strlen(tail);
    return n >= t && strcmp(path + n - t, tail) == 0;
}
void after_look(const char *path) {
    if (ends_with(path, "f.lock") && g_armed.exchange(false)) g_swap();
}
void after_removal(const char *path) {
    if (ends_with(path, ".b") && g_armed_probe.exchange(false)) g_swap();
}

template <class Fn>
Fn real(const char *name) {
    return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

}  // namespace

// The library's call (the headers may name it fstatat64: the same here).
namespace {

// Armed: swaps before the next look (statx, or fstatat where the build has
// no statx) at a path ending in "/d/f": the look at the target under the lock.
std::atomic<bool> g_armed_stat{false};
std::function<void()> g_swap_stat;
void before_look(const char *path) {
    if (ends_with(path, "/d/f") && g_armed_stat.exchange(false)) g_swap_stat();
}

}  // namespace

extern "C" int fstatat(int dirfd, const char *path, struct stat *st, int flags) {
    static auto next = real<int (*)(int, const char *, struct stat *, int)>("fstatat");
    before_look(path);
    int rc = next(dirfd, path, st, flags);
    after_look(path);
    return rc;
}

extern "C" int statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *st) {
    static auto next = real<int (*)(int, const char *, int, unsigned, struct statx *)>("statx");
    before_look(path);
    return next(dirfd, path, flags, mask, st);
}

extern "C" int unlinkat(int dirfd, const char *path, int flags) {
    static auto next = real<int (*)(int, const char *, int)>("unlinkat");
    int rc = next(dirfd, path, flags);
    after_removal(path);
    return rc;
}
extern "C" int unlink(const char *path) {
    static auto next = real<int (*)(const char *)>("unlink");
    int rc = next(path);
    after_removal(path);
    return rc;
}

namespace {

// d's contents move to d.real; d becomes a symlink to `other`, which holds
// somebody's f and f.lock.
struct Swap {
    fs::path d, real, other;
    explicit Swap(const TempDir &dir) : d(dir / "d"), real(dir / "d.real"), other(dir / "other") {
        fs::create_directory(d);
        fs::create_directory(other);
        write_file(other / "f", "theirs");
        write_file(other / "f.lock", "their lock\n");
    }
    void arm(std::atomic<bool> &when = g_armed) {
        g_swap = [this] {
            fs::rename(d, real);
            fs::create_directory_symlink(other, d);
        };
        when = true;
    }
    void expect_theirs_untouched() const {
        EXPECT_EQ(read_file(other / "f"), "theirs");
        EXPECT_EQ(read_file(other / "f.lock"), "their lock\n");
        EXPECT_EQ(list_names(other), (Names{"f", "f.lock"}));
    }
};

wlf_lock_options lock_options(int backend) {
    wlf_lock_options opt;
    wlf_lock_options_init(&opt);
    opt.backend = backend;
    return opt;
}

}  // namespace

// The lock API's release: the look at f.lock and its removal go through
// one descriptor of the directory, so ours goes from where it is.
TEST(DirSwap, ReleaseNeverRemovesTheLockFileOfADirectorySwappedIn) {
    for (int backend : {WLF_LOCK_FLOCK, WLF_LOCK_DOTLOCK}) {
        SCOPED_TRACE(backend == WLF_LOCK_FLOCK ? "flock" : "dotlock");
        TempDir dir;
        Swap s(dir);
        wlf_lock_options opt = lock_options(backend);
        wlf_lock *lock = nullptr;
        wlf_error err{};
        ASSERT_EQ(wlf_lock_acquire((s.d / "f").c_str(), &opt, &lock, &err), 0) << err.op;
        s.arm();
        EXPECT_EQ(wlf_lock_release(lock, &err), 0) << err.op;
        EXPECT_FALSE(g_armed) << "the release never looked at its lock file";
        s.expect_theirs_untouched();
        EXPECT_EQ(list_names(s.real), Names{}) << "ours stays behind";
    }
}

// A replacement's commit without fsync: the check that f.lock is ours, the
// link and the rename, and the release after them go through one
// descriptor of the directory, so the new content lands in the directory
// that was checked.
TEST(DirSwap, CommitWithoutFsyncNeverRenamesIntoADirectorySwappedIn) {
    for (bool existed : {true, false}) {
        SCOPED_TRACE(existed ? "existing target" : "new target");
        TempDir dir;
        Swap s(dir);
        if (existed) write_file(s.d / "f", "old");
        wlf_write_options opt;
        wlf_write_options_init(&opt);
        opt.durability = WLF_DURABILITY_NONE;
        opt.lock.backend = WLF_LOCK_FLOCK;
        wlf_file *f = nullptr;
        wlf_error err{};
        ASSERT_EQ(wlf_open_flags((s.d / "f").c_str(), WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_TRUNCATE, 0644, &opt,
                                 &f, &err),
                  0)
            << err.op;
        ASSERT_EQ(::write(wlf_file_fd(f), "ours", 4), 4);
        s.arm();
        EXPECT_EQ(wlf_commit(f, nullptr, &err), 0) << err.op;
        EXPECT_FALSE(g_armed) << "the commit never looked at its lock file";
        s.expect_theirs_untouched();
        EXPECT_EQ(read_file(s.real / "f"), "ours");
        EXPECT_EQ(list_names(s.real), Names{"f"});
    }
}

// A dotlock whose holder is dead is broken: judged, read again, linked under
// a probe name and read there, and only then unlinked, all through one
// descriptor of its directory; the stale lock goes from where it was, and
// the directory swapped in keeps its own f.lock.
TEST(DirSwap, DotlockBreakerNeverRemovesTheLockFileOfADirectorySwappedIn) {
    TempDir dir;
    Swap s(dir);
    pid_t dead = fork();
    ASSERT_GE(dead, 0);
    if (dead == 0) _exit(0);
    ASSERT_EQ(waitpid(dead, nullptr, 0), dead);
    write_file(s.d / "f.lock", std::to_string(dead) + "\n");  // liblockfile's format, its holder gone
    wlf_lock_options opt = lock_options(WLF_LOCK_DOTLOCK);
    opt.has_timeout = 1;
    opt.timeout = 0;
    s.arm(g_armed_probe);
    wlf_lock *lock = nullptr;
    wlf_error err{};
    int rc = wlf_lock_acquire((s.d / "f").c_str(), &opt, &lock, &err);
    if (rc == 0) wlf_lock_release(lock, nullptr);
    EXPECT_FALSE(g_armed_probe) << "the breaker never removed its probe";
    s.expect_theirs_untouched();
    // (The attempt's own temp file, removed by path, may stay there.)
    Names left = list_names(s.real);
    EXPECT_EQ(std::count(left.begin(), left.end(), "f.lock"), 0) << "the stale lock stays";
}

// Locked in d, looked at (and seeded from) e/f because d and e were
// exchanged right before the look, exchanged back before the commit: the
// commit finds that d/f is not the file it looked at and refuses; neither
// file changes, and nothing of e/f reaches d/f.
TEST(DirSwap, ADirectorySwappedBetweenLockAndLookGivesItsFileToNoOther) {
    TempDir dir;
    fs::path d = dir / "d", e = dir / "e";
    fs::create_directory(d);
    fs::create_directory(e);
    write_file(d / "f", "d's own\n");
    write_file(e / "f", "e's secret\n");
    auto exchange = [&] { ASSERT_EQ(::renameat2(AT_FDCWD, d.c_str(), AT_FDCWD, e.c_str(), RENAME_EXCHANGE), 0); };
    g_swap_stat = exchange;
    g_armed_stat = true;
    wlf_write_options opt;
    wlf_write_options_init(&opt);
    wlf_file *f = nullptr;
    wlf_error err{};
    int rc = wlf_open_flags((d / "f").c_str(), WLF_OPEN_WRITE | WLF_OPEN_APPEND, 0644, &opt, &f, &err);
    EXPECT_FALSE(g_armed_stat) << "the open never looked at its target";
    exchange();  // back: the lock's directory is d again
    if (rc == 0) {
        ASSERT_EQ(::write(wlf_file_fd(f), "appended\n", 9), 9);
        EXPECT_EQ(wlf_commit(f, nullptr, &err), ESTALE) << err.op;
    }
    EXPECT_EQ(read_file(d / "f"), "d's own\n");
    EXPECT_EQ(read_file(e / "f"), "e's secret\n");
}
