// Errors are classified by the failing step (wlf_error.step, Error::step()),
// never by a path's ".lock" suffix or the words of op: these tests pin the
// step and the op string of representative failures, through the C API and
// the C++ exceptions, including targets whose own names end in ".lock".
#include <gtest/gtest.h>
#include <wrap_lockfile/wrap_lockfile.hpp>

#include "build_features.hpp"
#include "shim_entry.hpp"
#include "test_support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <system_error>
#include <thread>

namespace fs = std::filesystem;
namespace wl = wrap_lockfile;
using wlf_test::FlockHolder;
using wlf_test::read_file;
using wlf_test::TempDir;
using wlf_test::write_file;

namespace {

// What an exception (or none) carried, in a form a forked child can send
// through a pipe and gtest can compare.
struct Caught {
    char type[16] = "none";  // LockTimeout, AlreadyLocked, LockFailed, WriteFailed, none
    int code = 0;
    int step = WLF_STEP_NONE;
    char op[160] = "";
    char path[WLF_PATH_MAX] = "";
};

void copy(char *dst, size_t size, const std::string &s) { std::snprintf(dst, size, "%s", s.c_str()); }

Caught caught(const char *type, const wl::Error &e) {
    Caught c;
    copy(c.type, sizeof c.type, type);
    c.code = e.code().value();
    c.step = static_cast<int>(e.step());
    copy(c.op, sizeof c.op, e.op());
    copy(c.path, sizeof c.path, e.path());
    return c;
}

// Runs fn and reports the wrap_lockfile exception it threw, most derived type first.
Caught catch_error(const std::function<void()> &fn) {
    try {
        fn();
    } catch (const wl::LockTimeout &e) {
        return caught("LockTimeout", e);
    } catch (const wl::AlreadyLocked &e) {
        return caught("AlreadyLocked", e);
    } catch (const wl::LockFailed &e) {
        return caught("LockFailed", e);
    } catch (const wl::WriteFailed &e) {
        return caught("WriteFailed", e);
    }
    return Caught{};
}

// Runs fn as nobody when we are root (root would be allowed the writes
// these tests need refused), else as we are; its report in *out. False if
// the child could not drop privileges or died.
bool run_unprivileged(const std::function<Caught()> &fn, Caught *out) {
    if (::geteuid() == 0) return wlf_test::run_as_nobody(fn, out);
    *out = fn();
    return true;
}

// The whole of an error, compared at once.
void expect_error(const Caught &c, const char *type, int code, int step, const char *op, const std::string &path) {
    EXPECT_STREQ(c.type, type);
    EXPECT_EQ(c.code, code);
    EXPECT_EQ(c.step, step) << wlf_step_name(c.step);
    EXPECT_STREQ(c.op, op);
    EXPECT_EQ(std::string(c.path), path);
}

wlf_write_options c_options() {
    wlf_write_options opt;
    wlf_write_options_init(&opt);
    return opt;
}

std::string lock_of(const fs::path &target) { return target.string() + ".lock"; }

// ---- lock failures ---------------------------------------------------------

TEST(ErrorStep, LockTimeoutAndAlreadyLocked) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    write_file(target, "old");
    FlockHolder holder(lock_of(target));
    ASSERT_TRUE(holder.locked());

    // C API: the step, the op, the lock file's name.
    wlf_lock_options lo;
    wlf_lock_options_init(&lo);
    lo.has_timeout = 1;
    lo.timeout = 0.05;
    wlf_lock *l = nullptr;
    wlf_error err{};
    EXPECT_EQ(wlf_lock_acquire(target.c_str(), &lo, &l, &err), ETIMEDOUT);
    EXPECT_EQ(err.step, WLF_STEP_LOCK);
    EXPECT_STREQ(err.op, "lock");
    EXPECT_EQ(std::string(err.path), lock_of(target));
    lo.timeout = 0;
    err = wlf_error{};
    EXPECT_EQ(wlf_lock_acquire(target.c_str(), &lo, &l, &err), EWOULDBLOCK);
    EXPECT_EQ(err.step, WLF_STEP_LOCK);
    EXPECT_STREQ(err.op, "lock");

    // A replacement's lock: the same step through wlf_open.
    wlf_write_options opt = c_options();
    opt.lock = lo;
    wlf_file *f = nullptr;
    err = wlf_error{};
    EXPECT_EQ(wlf_open_flags(target.c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, &opt, &f, &err), EWOULDBLOCK);
    EXPECT_EQ(err.step, WLF_STEP_LOCK);
    EXPECT_EQ(std::string(err.path), lock_of(target));

    // C++: LockTimeout / AlreadyLocked with the lock file and its holder.
    Caught c = catch_error([&] { wl::atomic_write_lock(target, "w", 0.05); });
    EXPECT_STREQ(c.type, "LockTimeout");
    EXPECT_EQ(c.code, ETIMEDOUT);
    EXPECT_EQ(c.step, WLF_STEP_LOCK);
    EXPECT_EQ(std::string(c.path), lock_of(target));
    EXPECT_EQ(std::string(c.op).rfind("timed out after ", 0), 0u) << c.op;
    c = catch_error([&] { wl::FileLock lock(target, 0.0); });
    EXPECT_STREQ(c.type, "AlreadyLocked");
    EXPECT_EQ(c.code, EWOULDBLOCK);
    EXPECT_EQ(c.step, WLF_STEP_LOCK);
    try {
        wl::atomic_write_lock(target, "w", 0.0);
        ADD_FAILURE() << "no AlreadyLocked";
    } catch (const wl::AlreadyLocked &e) {
        EXPECT_EQ(e.holder(), wlf_test::seen_holder(holder.pid()));
    }
    EXPECT_EQ(read_file(target), "old");
    EXPECT_EQ(holder.release(), 0);
}

TEST(ErrorStep, LockFileIsADirectory) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    write_file(target, "old");
    fs::create_directory(lock_of(target));

    wlf_write_options opt = c_options();
    opt.lock.has_timeout = 1;
    opt.lock.timeout = 5;  // a refusal is immediate; waiting would be a LockTimeout
    wlf_file *f = nullptr;
    wlf_error err{};
    EXPECT_EQ(wlf_open_flags(target.c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, &opt, &f, &err), ENOLCK);
    EXPECT_EQ(err.step, WLF_STEP_LOCK);
    EXPECT_STREQ(err.op, "lock file %s is a directory");
    EXPECT_EQ(std::string(err.path), lock_of(target));

    wl::WriteOptions o;
    o.lock.timeout = 5;
    Caught c = catch_error([&] { wl::atomic_write_content_with_lock(target, "new", o); });
    expect_error(c, "LockFailed", ENOLCK, WLF_STEP_LOCK, "lock file %s is a directory", lock_of(target));
    EXPECT_EQ(read_file(target), "old");
}

// A lock failure whose error names the target, not "<target>.lock": still
// LockFailed (a suffix test called it WriteFailed).
TEST(ErrorStep, LockFailureNamingTheTargetIsLockFailed) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    write_file(target, "old");
    wl::WriteOptions o;
    o.lock.backend = static_cast<wl::LockBackend>(99);
    Caught c = catch_error([&] { wl::atomic_write_content_with_lock(target, "new", o); });
    expect_error(c, "LockFailed", EINVAL, WLF_STEP_LOCK, "lock backend", target.string());

    wlf_write_options opt = c_options();
    opt.lock.backend = 99;
    wlf_file *f = nullptr;
    wlf_error err{};
    EXPECT_EQ(wlf_open_flags(target.c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, &opt, &f, &err), EINVAL);
    EXPECT_EQ(err.step, WLF_STEP_LOCK);
    EXPECT_EQ(read_file(target), "old");
}

// ---- targets whose own names end in ".lock" ----------------------------------

// An unwritable "data.lock" written without a lock: open(2)'s EACCES, a
// WriteFailed (a suffix test called it LockFailed), the file untouched.
TEST(ErrorStep, UnwritableDotLockTargetWithoutLockIsWriteFailed) {
    wlf_test::SharedDir dir(0755);  // root-owned: nobody may not create files in it
    fs::path target = dir / "data.lock";
    write_file(target, "old", 0444);
    wl::WriteOptions unlocked;
    unlocked.use_lock = false;
    Caught c;
    ASSERT_TRUE(run_unprivileged(
        [&] { return catch_error([&] { wl::atomic_write_content_with_lock(target, "new", unlocked); }); }, &c));
    expect_error(c, "WriteFailed", EACCES, WLF_STEP_OPEN, "open", target.string());

    // Through atomic_write_no_lock, and the C API's step.
    ASSERT_TRUE(run_unprivileged(
        [&] {
            return catch_error([&] {
                wl::AtomicFile f = wl::atomic_write_no_lock(target);
                f.write("new");
                f.commit();
            });
        },
        &c));
    EXPECT_STREQ(c.type, "WriteFailed");
    EXPECT_EQ(c.step, WLF_STEP_OPEN);
    ASSERT_TRUE(run_unprivileged(
        [&] {
            wlf_write_options opt = c_options();
            opt.use_lock = 0;
            wlf_file *f = nullptr;
            wlf_error err{};
            Caught r;
            r.code = wlf_open_flags(target.c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, &opt, &f, &err);
            r.step = err.step;
            if (err.op) copy(r.op, sizeof r.op, err.op);
            if (f) wlf_discard(f);
            return r;
        },
        &c));
    EXPECT_EQ(c.code, EACCES);
    EXPECT_EQ(c.step, WLF_STEP_OPEN);
    EXPECT_STREQ(c.op, "open");

    // Locked, the same user cannot even create "data.lock.lock" there: that
    // one is a lock failure, named after the lock file.
    ASSERT_TRUE(run_unprivileged(
        [&] { return catch_error([&] { wl::atomic_write_content_with_lock(target, "new"); }); }, &c));
    expect_error(c, "LockFailed", EACCES, WLF_STEP_LOCK, "open lock file", lock_of(target));
    EXPECT_EQ(read_file(target), "old");
}

// git's "index.lock", created exclusively (mode "x") where it exists: open(2)'s
// EEXIST, no lock failure; and in a directory that does not exist.
TEST(ErrorStep, OpenErrorsOfDotLockTargetAreWriteFailed) {
    TempDir dir;
    fs::path target = dir / "index.lock";
    write_file(target, "old");
    Caught c = catch_error([&] { wl::atomic_write_no_lock(target, "x"); });
    expect_error(c, "WriteFailed", EEXIST, WLF_STEP_OPEN, "open", target.string());
    EXPECT_EQ(read_file(target), "old");

    fs::path missing = dir / "missing" / "index.lock";
    c = catch_error([&] { wl::atomic_write_no_lock(missing); });
    expect_error(c, "WriteFailed", ENOENT, WLF_STEP_OPEN, "open directory", (dir / "missing").string());
}

// ---- replacement failures ---------------------------------------------------

TEST(ErrorStep, CallersWriteErrorIsWriteStep) {
    TempDir dir;
    fs::path target = dir / "data.lock";
    write_file(target, "old");
    wlf_file *f = nullptr;
    wlf_error err{};
    ASSERT_EQ(wlf_open_flags(target.c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, nullptr, &f, &err), 0) << err.op;
    wlf_file_poison(f, EIO);
    EXPECT_EQ(wlf_commit(f, nullptr, &err), EIO);
    EXPECT_EQ(err.step, WLF_STEP_WRITE);
    EXPECT_STREQ(err.op, "write to");
    EXPECT_EQ(std::string(err.path), target.string());
    EXPECT_EQ(read_file(target), "old");
}

// The target became a directory while the replacement was pending.
// A directory put at the target's name after the look is not the file looked
// at: the commit check refuses (ESTALE, the rename step) and nothing is
// renamed. The directory is made beside the file before the file goes, so it
// never reuses the file's inode number (which would leave the refusal to the
// rename's EISDIR; an earlier form of this test depended on that).
TEST(ErrorStep, TargetReplacedByDirectoryIsRenameStep) {
    TempDir dir;
    fs::path target = dir / "data.lock";
    write_file(target, "old");
    fs::create_directory(dir / "elsewhere");
    Caught c = catch_error([&] {
        wl::AtomicFile f = wl::atomic_write_lock(target);
        f.write("new");
        fs::remove(target);
        fs::rename(dir / "elsewhere", target);
        f.commit();
    });
    expect_error(c, "WriteFailed", ESTALE, WLF_STEP_RENAME, "commit (the file was replaced or removed meanwhile)",
                 target.string());
    EXPECT_TRUE(fs::is_directory(target));
    EXPECT_TRUE(fs::is_empty(target));
}

// A staged replacement of `target` ("old", hard-linked as `dir`/other),
// opened with O_TRUNC, "new" written, the name then removed; nullptr (and a
// test failure) if it is not one.
wlf_file *open_staged(const TempDir &dir, const fs::path &target) {
    write_file(target, "old");
    fs::create_hard_link(target, dir / "other");
    wlf_file *f = nullptr;
    wlf_error err{};
    EXPECT_EQ(wlf_open_flags(target.c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, nullptr, &f, &err), 0) << err.op;
    EXPECT_EQ(f ? wlf_file_kind(f) : -1, WLF_COMMIT_IN_PLACE);
    if (!f || wlf_file_kind(f) != WLF_COMMIT_IN_PLACE) return nullptr;
    EXPECT_EQ(::write(wlf_file_fd(f), "new", 3), 3);
    fs::remove(target);
    return f;
}

// A hard-linked target is staged and written in place at commit, through
// the library's own descriptor of the file opened: removed from its name
// meanwhile, it is still written, as the program's descriptor would have
// written it (the other link shows it), and nothing appears at the name.
TEST(ErrorStep, StagedTargetRemovedIsWrittenAsItsDescriptorWould) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    wlf_file *f = open_staged(dir, target);
    ASSERT_NE(f, nullptr);
    wlf_error err{};
    EXPECT_EQ(wlf_commit(f, nullptr, &err), 0) << err.op;
    EXPECT_EQ(read_file(dir / "other"), "new");
    EXPECT_FALSE(fs::exists(target));
}

// A FIFO put at a staged target's name before the commit is never opened:
// opening it would already act, letting a reader waiting on it go (and a
// device swapped in could rewind a tape). The commit writes the file the
// program opened, through the library's descriptor of it; the reader,
// blocked in its open, stays so. (Without that descriptor, after an exec,
// the commit looks through an O_PATH one first and refuses: handoff_test,
// HandoffInPlace.)
TEST(ErrorStep, InPlaceCommitNeverOpensAFifoSwappedIn) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    wlf_file *f = open_staged(dir, target);
    ASSERT_NE(f, nullptr);
    wlf_error err{};
    ASSERT_EQ(::mkfifo(target.c_str(), 0666), 0);
    int released[2];
    ASSERT_EQ(::pipe(released), 0);
    wlf_test::Child reader([&] {
        ::close(released[0]);
        int fd = ::open(target.c_str(), O_RDONLY);  // blocks until a writer opens
        if (fd >= 0) (void)!::write(released[1], "x", 1);
        return 0;
    });
    ::close(released[1]);
    ASSERT_TRUE(wlf_test::wait_blocked_in_syscall(reader.pid(), SYS_openat));
    err = wlf_error{};
    EXPECT_EQ(wlf_commit(f, nullptr, &err), 0) << err.op;
    // An open of the FIFO for writing would have let the reader go at once.
    pollfd pfd{released[0], POLLIN, 0};
    EXPECT_EQ(::poll(&pfd, 1, 300), 0) << "the commit opened the FIFO";
    EXPECT_EQ(read_file(dir / "other"), "new");
    int w = ::open(target.c_str(), O_WRONLY | O_NONBLOCK);  // let it go now
    EXPECT_EQ(reader.wait(), 0);
    if (w >= 0) ::close(w);
    ::close(released[0]);
}

// Once the in-place write has begun, a failure is the in-place step: here
// its last cut to size (ftruncate fails in this thread only), so the file
// holds the new content over the old one's tail.
TEST(ErrorStep, InPlaceFailureIsInPlaceStep) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    write_file(target, "old content");
    fs::create_hard_link(target, dir / "other");
    struct Result {
        int seccomp = 0, open_rc = -1, commit_rc = -1, step = 0;
        std::string op;
    } r;
    std::thread t([&] {
        wlf_file *f = nullptr;
        wlf_error err{};
        r.open_rc = wlf_open_flags(target.c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, nullptr, &f, &err);
        if (r.open_rc != 0) return;
        if (::write(wlf_file_fd(f), "new", 3) != 3) wlf_file_poison(f, errno);
        r.seccomp = wlf_test::fail_syscall_in_this_thread(__NR_ftruncate, EIO);
        if (r.seccomp != 0) {
            wlf_discard(f);
            return;
        }
        r.commit_rc = wlf_commit(f, nullptr, &err);
        r.step = err.step;
        r.op = err.op ? err.op : "";
    });
    t.join();
    if (r.seccomp == ENOSYS) GTEST_SKIP() << "no seccomp filter for this architecture";
    ASSERT_EQ(r.seccomp, 0) << std::strerror(r.seccomp);
    ASSERT_EQ(r.open_rc, 0);
    EXPECT_EQ(r.commit_rc, EIO);
    EXPECT_EQ(r.step, WLF_STEP_IN_PLACE);
    EXPECT_EQ(r.op, "truncate in place");
    EXPECT_EQ(read_file(dir / "other"), "new content");
}

// fsync of the directory fails after the rename: the target is replaced and
// the error says so by its step. The fault is a seccomp filter in one thread
// failing fsync(2) on odd descriptors only: without a lock the directory is
// opened first and, with fd_floor 513, gets 513 and the temp 514. (The fault
// suite provokes the same through faultfs: tests/faultfs/fault_test.sh.)
TEST(ErrorStep, DirectoryFsyncFailureIsFsyncDirStep) {
    TempDir dir;
    fs::path target = dir / "data.lock";
    write_file(target, "old");
    struct Result {
        int seccomp = 0, open_rc = -1, dir_fd = -1, temp_fd = -1, commit_rc = -1, step = 0;
        std::string op, path;
    } r;
    std::thread t([&] {
        wlf_write_options opt = c_options();
        opt.use_lock = 0;
        wlf_file *f = nullptr;
        wlf_error err{};
        r.open_rc =
            wrap_lockfile::detail::file_open(target.c_str(), O_WRONLY | O_TRUNC, 0666, &opt, 513, &f, nullptr, &err);
        if (r.open_rc != 0) return;
        r.temp_fd = wlf_file_fd(f);
        if (::write(r.temp_fd, "new", 3) != 3) wlf_file_poison(f, errno);
        r.seccomp = wlf_test::fail_syscall_in_this_thread(__NR_fsync, EIO, 0, 1);
        if (r.seccomp != 0) {
            wlf_discard(f);
            return;
        }
        r.commit_rc = wlf_commit(f, nullptr, &err);
        r.step = err.step;
        r.op = err.op ? err.op : "";
        r.path = err.path;
    });
    t.join();
    if (r.seccomp == ENOSYS) GTEST_SKIP() << "no seccomp filter for this architecture";
    ASSERT_EQ(r.seccomp, 0) << std::strerror(r.seccomp);
    ASSERT_EQ(r.open_rc, 0);
    ASSERT_EQ(r.temp_fd % 2, 0) << "the temp's descriptor " << r.temp_fd << " would fail its fsync too";
    EXPECT_EQ(r.commit_rc, EIO);
    EXPECT_EQ(r.step, WLF_STEP_FSYNC_DIR);
    EXPECT_EQ(r.op, "fsync directory of");
    EXPECT_EQ(r.path, target.string());
    EXPECT_EQ(read_file(target), "new");
}

// The C++ mapping of steps that a test cannot provoke cheaply (the unlock
// and fsync_dir steps of a replacement): the types follow the step alone.
TEST(ErrorStep, CxxTypesFollowTheStep) {
    wl::WriteFailed w(EIO, "fsync directory of", "/x/data.txt", wl::Step::fsync_dir);
    EXPECT_EQ(w.step(), wl::Step::fsync_dir);
    EXPECT_EQ(w.op(), "fsync directory of");
    EXPECT_EQ(w.path(), "/x/data.txt");
    wl::LockTimeout t("/x/data.txt.lock", 1.0, 0);
    EXPECT_EQ(t.step(), wl::Step::lock);
    wl::AlreadyLocked a("/x/data.txt.lock", 0);
    EXPECT_EQ(a.step(), wl::Step::lock);
    EXPECT_EQ(static_cast<int>(wl::Step::in_place), WLF_STEP_IN_PLACE);
    EXPECT_STREQ(wlf_step_name(WLF_STEP_LOCK), "lock");
    EXPECT_STREQ(wlf_step_name(WLF_STEP_FSYNC_DIR), "fsync_dir");
    EXPECT_STREQ(wlf_step_name(WLF_STEP_IN_PLACE), "in_place");
    EXPECT_STREQ(wlf_step_name(WLF_STEP_IN_PLACE + 1), "unknown");
    EXPECT_STREQ(wlf_step_name(-1), "unknown");
}

}  // namespace
