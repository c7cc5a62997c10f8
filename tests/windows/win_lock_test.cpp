// Locks on Windows (under Wine): exclusion between processes, the timeout
// semantics, the holder's pid, waking a waiter, nesting, lock-file ownership
// and the dotlock backend. Other processes are this binary started again
// (win_support.hpp), ordered by named events.
#include "win_support.hpp"

#include <wrap_lockfile/wrap_lockfile.h>
#include <wrap_lockfile/wrap_lockfile.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <thread>

namespace {

using namespace wlf_win;
using namespace wrap_lockfile;

// Child: args[1] times: under the lock of args[0], read the counter, write it + 1.
const RegisterRole increment("increment", [](const std::vector<std::string> &a) {
    fs::path counter = fs::u8path(a[0]);
    int rounds = std::stoi(a[1]);
    Event(a[2]).wait(60000);  // all start together
    for (int i = 0; i < rounds; ++i) {
        FileLock lock(counter);
        int value = 0;
        if (fs::exists(counter)) value = std::stoi(read_file(counter));
        // Nested: the replacement takes this thread's lock at once.
        atomic_write_content_with_lock(counter, std::to_string(value + 1));
    }
    return 0;
});

class Backends : public testing::TestWithParam<std::string> {
protected:
    LockOptions options(std::optional<double> timeout) {
        LockOptions o;
        o.timeout = timeout;
        o.backend = GetParam() == "dotlock" ? LockBackend::dotlock : LockBackend::flock;
        return o;
    }
};

TEST_P(Backends, AnotherProcessIsExcludedAndTheHolderPidIsKnown) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    Holder holder(target, GetParam());
    ASSERT_TRUE(holder.locked());

    wlf_lock_options opt;
    wlf_lock_options_init(&opt);
    opt.backend = GetParam() == "dotlock" ? WLF_LOCK_DOTLOCK : WLF_LOCK_FLOCK;
    opt.has_timeout = 1;
    opt.timeout = 0;
    wlf_lock *lock = nullptr;
    wlf_error err{};
    EXPECT_EQ(wlf_lock_acquire(utf8(target).c_str(), &opt, &lock, &err), EWOULDBLOCK);
    EXPECT_EQ(err.step, WLF_STEP_LOCK);
    EXPECT_EQ(static_cast<DWORD>(wlf_lock_holder(utf8(target).c_str())), holder.pid());
    try {
        FileLock again(target, options(0.0));
        ADD_FAILURE() << "locked twice";
    } catch (const AlreadyLocked &e) {
        EXPECT_EQ(static_cast<DWORD>(e.holder()), holder.pid());
        EXPECT_NE(std::string(e.what()).find("by pid " + std::to_string(holder.pid())), std::string::npos) << e.what();
    }

    EXPECT_EQ(holder.release(), 0);
    ASSERT_EQ(wlf_lock_acquire(utf8(target).c_str(), &opt, &lock, &err), 0);
    EXPECT_EQ(wlf_lock_holder(utf8(target).c_str()), static_cast<int64_t>(GetCurrentProcessId()));
    EXPECT_EQ(wlf_lock_release(lock, &err), 0);
    EXPECT_EQ(wlf_lock_holder(utf8(target).c_str()), 0);
}

TEST_P(Backends, PositiveTimeoutExpiresOnTime) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    Holder holder(target, GetParam());
    ASSERT_TRUE(holder.locked());
    for (double timeout : {0.3, 1.0}) {
        double start = now_seconds();
        try {
            FileLock lock(target, options(timeout));
            ADD_FAILURE() << "got the lock";
        } catch (const LockTimeout &e) {
            EXPECT_EQ(e.code().value(), ETIMEDOUT);
            EXPECT_EQ(static_cast<DWORD>(e.holder()), holder.pid());
        }
        double waited = now_seconds() - start;
        EXPECT_GE(waited, timeout);
        EXPECT_LT(waited, timeout + 0.2);
    }
    EXPECT_EQ(holder.release(), 0);
}

TEST_P(Backends, ZeroOrNegativeTimeoutTriesOnce) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    Holder holder(target, GetParam());
    ASSERT_TRUE(holder.locked());
    for (double timeout : {0.0, -1.0}) {
        double start = now_seconds();
        EXPECT_THROW(FileLock(target, options(timeout)), AlreadyLocked);
        EXPECT_LT(now_seconds() - start, 0.2);
    }
    EXPECT_EQ(holder.release(), 0);
    FileLock free_now(target, options(0.0));
    EXPECT_TRUE(free_now.held());
}

// The waiter gets the lock within 100 ms of the release, waiting without a
// timeout (a blocking LockFileEx) and with one (polling).
TEST_P(Backends, WaiterGetsTheLockSoonAfterTheRelease) {
    for (std::optional<double> timeout : {std::optional<double>{}, std::optional<double>{30.0}}) {
        TempDir dir;
        fs::path target = dir / "data.txt";
        fs::path stamp = dir / "released-at";
        Holder holder(target, GetParam(), stamp);
        ASSERT_TRUE(holder.locked());
        double got_at = 0;
        std::thread waiter([&] {
            FileLock lock(target, options(timeout));
            got_at = now_seconds();
        });
        // Give the waiter time to be waiting: what is measured is the
        // wake-up, which the release time in the file pins down.
        Sleep(300);
        EXPECT_EQ(holder.release(), 0);
        waiter.join();
        double released_at = std::stod(read_file(stamp));
        EXPECT_GE(got_at, released_at);
        EXPECT_LT(got_at - released_at, 0.1) << (timeout ? "polling" : "blocking");
    }
}

INSTANTIATE_TEST_SUITE_P(Windows, Backends, testing::Values("flock", "dotlock"),
                         [](const auto &info) { return info.param == "flock" ? "LockFileEx" : "dotlock"; });

// 8 processes x 50 locked read-increment-writes: nothing lost.
TEST(Counter, EightProcessesIncrementTo400) {
    TempDir dir;
    fs::path counter = dir / "counter";
    std::string start = Event::unique_name("start");
    Event go(start);
    std::vector<std::unique_ptr<Child>> children;
    for (int i = 0; i < 8; ++i)
        children.push_back(std::make_unique<Child>("increment", std::vector<std::string>{utf8(counter), "50", start}));
    go.set();
    for (auto &c : children) EXPECT_EQ(c->wait(240000), 0);
    EXPECT_EQ(read_file(counter), "400");
    // The counter and its (kept) lock file: no temp left.
    EXPECT_EQ(list_names(dir.path()), (std::vector<std::string>{"counter", "counter.lock"}));
}

TEST(Nesting, SameThreadNestsUnlessAskedNotTo) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    FileLock outer(target, 0.0);
    {
        FileLock inner(target, 0.0);  // nested: no wait for itself
        EXPECT_TRUE(inner.held());
    }
    LockOptions own;
    own.timeout = 0.0;
    own.nesting = false;
    EXPECT_THROW(FileLock(target, own), AlreadyLocked);
    // Another thread is somebody else.
    std::thread other([&] { EXPECT_THROW(FileLock(target, 0.0), AlreadyLocked); });
    other.join();
}

// Somebody's own X.lock (Gemfile.lock): locked as it is, its content
// readable while locked (the lock byte is far beyond it), never written,
// never removed.
TEST(Ownership, ExistingLockFileIsLockedUntouchedAndStays) {
    TempDir dir;
    fs::path target = dir / "Gemfile";
    fs::path lock_file = dir / "Gemfile.lock";
    const std::string content = "GEM\n  remote: https://rubygems.org/\n";
    write_file(lock_file, content);
    {
        FileLock lock(target, 0.0);
        EXPECT_EQ(read_file(lock_file), content);  // readable by another handle while locked
    }
    EXPECT_EQ(read_file(lock_file), content);
    EXPECT_EQ(list_names(dir.path()), (std::vector<std::string>{"Gemfile.lock"}));
}

// Lock files the LockFileEx backend creates are kept (README "Windows").
TEST(Ownership, CreatedLockFileIsKeptAndEmpty) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    { FileLock lock(target, 0.0); }
    EXPECT_EQ(list_names(dir.path()), (std::vector<std::string>{"data.txt.lock"}));
    EXPECT_EQ(read_file(dir / "data.txt.lock"), "");
    FileLock again(target, 0.0);  // and lockable again
    EXPECT_TRUE(again.held());
}

TEST(Ownership, DirectoryAsLockFileIsRefused) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    fs::create_directory(dir / "data.txt.lock");
    for (LockBackend backend : {LockBackend::flock, LockBackend::dotlock}) {
        LockOptions o;
        o.timeout = 1.0;
        o.backend = backend;
        try {
            FileLock lock(target, o);
            ADD_FAILURE() << "locked a directory";
        } catch (const LockFailed &e) {
            EXPECT_EQ(e.code().value(), ENOLCK);
            EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
        }
    }
    EXPECT_TRUE(fs::is_directory(dir / "data.txt.lock"));
}

TEST(Ownership, MissingDirectoryIsLockFailed) {
    TempDir dir;
    EXPECT_THROW(FileLock(dir / "missing" / "data.txt", 0.0), LockFailed);
}

// A dotlock is removed with its handle: at the release, and when the holder
// is killed (no stale dotlock to break on Windows).
TEST(Dotlock, RemovedAtReleaseAndWhenTheHolderDies) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    LockOptions o;
    o.backend = LockBackend::dotlock;
    o.timeout = 0.0;
    {
        FileLock lock(target, o);
        EXPECT_EQ(read_file(dir / "data.txt.lock"), std::to_string(GetCurrentProcessId()) + "\n");
    }
    EXPECT_FALSE(fs::exists(dir / "data.txt.lock"));

    Holder holder(target, "dotlock");
    ASSERT_TRUE(holder.locked());
    EXPECT_TRUE(fs::exists(dir / "data.txt.lock"));
    holder.kill();
    o.timeout = 5.0;  // the system closes the dead holder's handles
    FileLock after(target, o);
    EXPECT_TRUE(after.held());
}

// A dotlock of somebody else's content is waited for, never broken.
TEST(Dotlock, ForeignFileIsWaitedForNotBroken) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    write_file(dir / "data.txt.lock", "not a dotlock\n");
    LockOptions o;
    o.backend = LockBackend::dotlock;
    o.timeout = 0.3;
    EXPECT_THROW(FileLock(target, o), LockTimeout);
    EXPECT_EQ(read_file(dir / "data.txt.lock"), "not a dotlock\n");
}

TEST(NoneBackend, LocksNothing) {
    TempDir dir;
    LockOptions o;
    o.backend = LockBackend::none;
    FileLock a(dir / "data.txt", o), b(dir / "data.txt", o);
    EXPECT_TRUE(a.held() && b.held());
    EXPECT_TRUE(list_names(dir.path()).empty());
}

}  // namespace
