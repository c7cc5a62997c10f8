// Unit tests for the locks (docs/design.md, "Locks"; API in wrap_lockfile.hpp/.h).
//
// Processes and threads are ordered with pipes and /proc/<tid>/syscall, never
// with sleeps: a sleep appears only as the duration a holder keeps a lock or
// as a generous safety net that turns a hang into a failure.
#include <gtest/gtest.h>
#include <wrap_lockfile/wrap_lockfile.hpp>

#include "build_features.hpp"
#include "test_support.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

namespace fs = std::filesystem;
namespace wl = wrap_lockfile;
using wlf_test::CwdGuard;
using wlf_test::Child;
using wlf_test::get_byte;
using wlf_test::get_byte_now;
using wlf_test::Pipe;
using wlf_test::seconds_since;
using wlf_test::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

static_assert(std::is_base_of_v<wl::mylockfile_other_exceptions, wl::LockTimeout>);
static_assert(std::is_base_of_v<wl::mylockfile_other_exceptions, wl::AlreadyLocked>);
static_assert(std::is_base_of_v<wl::mylockfile_other_exceptions, wl::LockFailed>);
static_assert(std::is_same_v<wl::mylockfile_other_exceptions, wl::LockError>);

// Outcomes of one lock attempt; small integers so a child can exit with one.
enum Outcome : int { kAcquired = 0, kAlreadyLocked = 1, kTimeout = 2, kFailed = 3, kOther = 4 };

wl::LockOptions opts(std::optional<double> timeout, wl::LockBackend backend = wl::LockBackend::flock,
                     bool keep = false) {
    wl::LockOptions o;
    o.timeout = timeout;
    o.backend = backend;
    o.keep_lock_file = keep;
    return o;
}

struct Attempt {
    int outcome = kOther;
    int code = 0;  // errno carried by the exception
};

Attempt attempt_lock(const fs::path &target, const wl::LockOptions &o) {
    try {
        wl::FileLock lock(target, o);
        return {kAcquired, 0};
    } catch (const wl::AlreadyLocked &e) {
        return {kAlreadyLocked, e.code().value()};
    } catch (const wl::LockTimeout &e) {
        return {kTimeout, e.code().value()};
    } catch (const wl::LockFailed &e) {
        return {kFailed, e.code().value()};
    } catch (...) {
        return {kOther, 0};
    }
}

int probe_in_process(const fs::path &target, const wl::LockOptions &o) {
    Child child([&] { return attempt_lock(target, o).outcome; });
    return child.wait();
}

int probe_in_thread(const fs::path &target, const wl::LockOptions &o) {
    int outcome = kOther;
    std::thread t([&] { outcome = attempt_lock(target, o).outcome; });
    t.join();
    return outcome;
}

fs::path lock_of(const fs::path &target) { return fs::path(target.string() + ".lock"); }

bool ends_with_lock(const std::string &s) { return s.size() > 5 && s.compare(s.size() - 5, 5, ".lock") == 0; }

std::string pid_line(pid_t pid) { return std::to_string(pid) + "\n"; }

// A forked process holding a lock until told to release it. It writes 'H'
// once it holds the lock (or 'F' if it could not take it) and 'R' right
// before it releases.
class Holder {
public:
    Holder(const fs::path &target, const wl::LockOptions &o)
        : child_([&, this] {
              release_.close_write();
              try {
                  wl::FileLock lock(target, o);
                  events_.put('H');
                  get_byte(release_.read_fd(), -1);  // EOF: the parent let go
                  events_.put('R');
                  lock.release();
                  return 0;
              } catch (...) {
                  events_.put('F');
                  return 1;
              }
          }) {
        events_.close_write();
        release_.close_read();
        held_ = get_byte(events_.read_fd()) == 'H';
    }
    bool held() const { return held_; }
    pid_t pid() const { return child_.pid(); }
    // 'R' if the holder has announced its release, -2 if not yet.
    int release_announced_now() { return get_byte_now(events_.read_fd()); }
    void let_go() { release_.close_write(); }
    // Lets the holder release and returns its exit status.
    int release() {
        let_go();
        return child_.wait();
    }

private:
    Pipe events_;
    Pipe release_;
    Child child_;
    bool held_ = false;
};

// Shared between forked workers (MAP_SHARED), so std::atomic works across them.
struct Tally {
    std::atomic<int> overlaps;
    std::atomic<int> errors;
};

class SharedTally {
public:
    SharedTally() {
        void *p = mmap(nullptr, sizeof(Tally), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
        tally_ = new (p) Tally{};
    }
    ~SharedTally() { munmap(tally_, sizeof(Tally)); }
    Tally *operator->() const { return tally_; }
    Tally *get() const { return tally_; }

private:
    Tally *tally_;
};

// Read-modify-write with plain read/write: loses updates unless serialized.
bool increment_counter(const fs::path &counter) {
    int fd = ::open(counter.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[32] = {};
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    bool ok = n > 0;
    if (ok) {
        long value = std::strtol(buf, nullptr, 10) + 1;
        int len = std::snprintf(buf, sizeof buf, "%ld\n", value);
        // The value only grows, so the new text never is shorter than the old.
        ok = ::pwrite(fd, buf, static_cast<size_t>(len), 0) == len;
    }
    ::close(fd);
    return ok;
}

// One critical section: an O_EXCL marker proves nobody else is inside, then
// the counter is bumped.
void critical_section(const fs::path &counter, const fs::path &marker, Tally *tally) {
    int m = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (m < 0) {
        (errno == EEXIST ? tally->overlaps : tally->errors)++;
    } else {
        ::close(m);
    }
    // Give a would-be intruder the CPU while the marker exists.
    sched_yield();
    if (!increment_counter(counter)) tally->errors++;
    if (m >= 0 && ::unlink(marker.c_str()) != 0) tally->errors++;
}

int counter_worker(const fs::path &target, const fs::path &counter, const fs::path &marker,
                   const wl::LockOptions &o, int iterations, Tally *tally, int go_fd) {
    get_byte(go_fd, -1);  // start barrier: EOF releases every worker at once
    for (int i = 0; i < iterations; ++i) {
        wl::FileLock lock(target, o);
        critical_section(counter, marker, tally);
        lock.release();
    }
    return 0;
}

// Runs `workers` processes x `iterations` locked increments and checks the
// result: every increment counted, no two workers inside at once.
void check_process_exclusion(const fs::path &dir, const wl::LockOptions &o, int workers, int iterations) {
    fs::path target = dir / "target", counter = dir / "counter", marker = dir / "inside";
    wlf_test::write_file(counter, "0\n");
    SharedTally tally;
    Pipe go;
    std::vector<std::unique_ptr<Child>> children;
    for (int i = 0; i < workers; ++i) {
        children.push_back(std::make_unique<Child>([&] {
            go.close_write();
            return counter_worker(target, counter, marker, o, iterations, tally.get(), go.read_fd());
        }));
    }
    go.close_write();
    for (auto &c : children) EXPECT_EQ(c->wait(), 0) << "a worker failed to lock or threw";
    EXPECT_EQ(wlf_test::read_file(counter), std::to_string(workers * iterations) + "\n");
    EXPECT_EQ(tally->overlaps.load(), 0);
    EXPECT_EQ(tally->errors.load(), 0);
    EXPECT_FALSE(fs::exists(marker));
    if (!o.keep_lock_file) {
        EXPECT_FALSE(fs::exists(lock_of(target)));
    }
}

bool am_root() { return geteuid() == 0; }

// In a forked child: become the unprivileged user "nobody".
bool drop_to_nobody() {
    const uid_t nobody = 65534;
    return setgroups(0, nullptr) == 0 && setresgid(nobody, nobody, nobody) == 0 &&
           setresuid(nobody, nobody, nobody) == 0;
}

// Runs body in a forked child (for privileged set-ups that must not leak)
// and returns the ints it produced, or nothing if the child died.
template <std::size_t N>
std::optional<std::array<int, N>> run_child_reporting(const std::function<std::array<int, N>()> &body) {
    Pipe report;
    Child child([&] {
        report.close_read();
        std::array<int, N> values = body();
        return ::write(report.write_fd(), values.data(), sizeof values) == static_cast<ssize_t>(sizeof values) ? 0 : 1;
    });
    report.close_write();
    std::array<int, N> values{};
    auto *bytes = reinterpret_cast<char *>(values.data());
    size_t got = 0;
    while (got < sizeof values) {
        int c = get_byte(report.read_fd());
        if (c < 0) break;
        bytes[got++] = static_cast<char>(c);
    }
    if (child.wait() != 0 || got != sizeof values) return std::nullopt;
    return values;
}

// ---- the kernel's view of flock locks (/proc/locks) ----
//
// A held flock and a waiter blocked on it read, on Linux:
//   1: FLOCK  ADVISORY  WRITE 5308 fe:00:10954113 0 EOF
//   1: -> FLOCK  ADVISORY  WRITE 5312 fe:00:10954113 0 EOF
// The last-but-two field names the inode as the kernel spells it
// ("<major>:<minor>:<ino>"); we take that spelling from the kernel too
// (/proc/self/fdinfo) rather than recompute it from stat, which on stacked
// file systems may report another device.

struct FlockEntry {
    bool waiting;
    pid_t pid;
    std::string inode;
};

std::vector<FlockEntry> proc_flock_entries() {
    std::vector<FlockEntry> entries;
    std::ifstream in("/proc/locks");
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream words(line);
        std::string id, kind, mode, access, inode;
        long pid = 0;
        words >> id >> kind;
        bool waiting = kind == "->";
        if (waiting) words >> kind;
        if (words >> mode >> access >> pid >> inode && kind == "FLOCK" && access == "WRITE")
            entries.push_back({waiting, static_cast<pid_t>(pid), inode});
    }
    return entries;
}

// The inode of the flock held through `fd`, as /proc/locks names it; "" if
// the descriptor holds none.
std::string held_flock_inode(int fd) {
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream words(line);
        std::string tag, id, kind, mode, access, inode;
        long pid = 0;
        if (words >> tag >> id >> kind >> mode >> access >> pid >> inode && tag == "lock:" && kind == "FLOCK")
            return inode;
    }
    return "";
}

// The inode of the one flock that process `pid` holds; "" if none.
std::string held_flock_inode_of(pid_t pid) {
    for (const auto &e : proc_flock_entries())
        if (!e.waiting && e.pid == pid) return e.inode;
    return "";
}

bool has_flock_entry(pid_t pid, const std::string &inode, bool waiting) {
    for (const auto &e : proc_flock_entries())
        if (e.waiting == waiting && e.pid == pid && e.inode == inode) return true;
    return false;
}

// A barrier: waits until process `pid` is blocked in flock waiting for
// `inode`. The bound only turns a hang into a failure.
bool wait_flock_waiter(pid_t pid, const std::string &inode, int timeout_ms = 20000) {
    auto start = Clock::now();
    while (!has_flock_entry(pid, inode, true)) {
        if (seconds_since(start) * 1000 > timeout_ms) return false;
        ::usleep(1000);
    }
    return true;
}

// The release of the verified protocol, done by hand: unlink while holding,
// then unlock, then close.
bool bare_release(const fs::path &lock, int fd) {
    bool ok = ::unlink(lock.c_str()) == 0;
    ok = ::flock(fd, LOCK_UN) == 0 && ok;
    return ::close(fd) == 0 && ok;
}

// Commands for the processes of the hand-made schedules below; single bytes
// rather than EOF, since every child inherits every pipe.
constexpr char kGo = 'g', kRelease = 'r', kHolding = 'H', kFailedToLock = 'F', kReleased = 'R';

constexpr int kSetupFailed = -1000;

}  // namespace

// ---- 1. lock file life cycle ---------------------------------------------

TEST(Lock, AcquireReleaseRemovesLockFile) {
    TempDir dir;
    {
        wl::mylockfile lock(dir / "f");
        EXPECT_TRUE(lock.held());
        EXPECT_TRUE(fs::exists(dir / "f.lock"));
    }
    EXPECT_FALSE(fs::exists(dir / "f.lock"));
    EXPECT_EQ(wlf_test::count_entries(dir.path()), 0u);
}

TEST(Lock, ExplicitReleaseRemovesLockFileOnce) {
    TempDir dir;
    wl::FileLock lock(dir / "f");
    lock.release();
    EXPECT_FALSE(lock.held());
    EXPECT_FALSE(fs::exists(dir / "f.lock"));
    // A second release and the destructor are no-ops, even if someone else
    // holds the lock by now.
    wl::FileLock other(dir / "f", 0.0);
    lock.release();
    EXPECT_TRUE(fs::exists(dir / "f.lock"));
    EXPECT_EQ(probe_in_process(dir / "f", opts(0.0)), kAlreadyLocked);
}

TEST(Lock, KeepLockFileLeavesItBehind) {
    TempDir dir;
    {
        wl::FileLock lock(dir / "f", opts(std::nullopt, wl::LockBackend::flock, true));
        EXPECT_TRUE(fs::exists(dir / "f.lock"));
    }
    EXPECT_TRUE(fs::exists(dir / "f.lock"));
    // A kept lock file is reused by the next holder and still excludes.
    wl::FileLock again(dir / "f", opts(0.0, wl::LockBackend::flock, true));
    EXPECT_EQ(probe_in_process(dir / "f", opts(0.0)), kAlreadyLocked);
}

TEST(Lock, LockPathNamesTheLockFile) {
    TempDir dir;
    wl::FileLock lock(dir / "f");
    EXPECT_EQ(lock.lock_path(), dir / "f.lock");
    wl::FileLock moved(std::move(lock));
    EXPECT_FALSE(lock.held());
    EXPECT_TRUE(moved.held());
    EXPECT_EQ(moved.lock_path(), dir / "f.lock");
    moved.release();
    EXPECT_EQ(moved.lock_path(), fs::path());
}

// A name of 251 to 255 bytes has no room for ".lock" in a directory entry:
// its lock file is as much of the name as fits (cut at a character), '~'
// and 16 hex digits of a hash of the whole name; it excludes as any other,
// is removed at the release, and names that share the kept part differ.
TEST(Lock, LongNamesGetAShortenedLockFile) {
    TempDir dir;
    std::string utf8;
    while (utf8.size() < 255 - 2) utf8 += "\xc3\xa9";  // é, two bytes each
    utf8 += "a";                                          // 255 bytes
    for (const std::string &name : {std::string(250, 'x'), std::string(251, 'x'), std::string(255, 'x'), utf8}) {
        SCOPED_TRACE(name.size());
        fs::path target = dir / name;
        std::string lock_name;
        {
            wl::FileLock lock(target);
            lock_name = lock.lock_path().filename().string();
            EXPECT_TRUE(fs::exists(lock.lock_path()));
            EXPECT_EQ(probe_in_process(target, opts(0.0)), kAlreadyLocked);
        }
        EXPECT_EQ(wlf_test::count_entries(dir.path()), 0u);
        if (name.size() + 5 <= 255) {
            EXPECT_EQ(lock_name, name + ".lock");
            continue;
        }
        EXPECT_LE(lock_name.size(), 255u);
        ASSERT_GT(lock_name.size(), 22u);
        EXPECT_EQ(lock_name.substr(lock_name.size() - 22, 1), "~");
        EXPECT_EQ(lock_name.substr(lock_name.size() - 5), ".lock");
        std::string kept = lock_name.substr(0, lock_name.size() - 22);
        EXPECT_EQ(name.compare(0, kept.size(), kept), 0) << "the lock file does not start with the name";
        EXPECT_NE(static_cast<unsigned char>(name[kept.size()]) & 0xC0, 0x80u) << "cut inside a character";
        wl::atomic_write_content_with_lock(target, "new\n");
        EXPECT_EQ(wlf_test::read_file(target), "new\n");
        fs::remove(target);
    }
    std::string a(252, 'y'), b(252, 'y');
    b.back() = 'z';
    wl::FileLock la(dir / a);
    wl::FileLock lb(dir / b, opts(0.0));  // another name, another lock file
    EXPECT_NE(la.lock_path(), lb.lock_path());
}

// ---- 2. exclusion ----------------------------------------------------------

TEST(Lock, ThreadsExcludeEachOther) {
    TempDir dir;
    fs::path target = dir / "target", counter = dir / "counter", marker = dir / "inside";
    wlf_test::write_file(counter, "0\n");
    constexpr int kIterations = 500;
    Tally tally{};
    std::atomic<int> inside{0}, in_memory_overlaps{0}, failures{0};
    Pipe go;
    auto worker = [&] {
        get_byte(go.read_fd(), -1);
        for (int i = 0; i < kIterations; ++i) {
            try {
                wl::FileLock lock(target);
                if (inside.fetch_add(1) != 0) in_memory_overlaps++;
                critical_section(counter, marker, &tally);
                inside.fetch_sub(1);
            } catch (...) {
                failures++;
            }
        }
    };
    std::thread a(worker), b(worker);
    go.close_write();
    a.join();
    b.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(in_memory_overlaps.load(), 0);
    EXPECT_EQ(tally.overlaps.load(), 0);
    EXPECT_EQ(tally.errors.load(), 0);
    EXPECT_EQ(wlf_test::read_file(counter), std::to_string(2 * kIterations) + "\n");
    EXPECT_FALSE(fs::exists(lock_of(target)));
}

TEST(Lock, ProcessesExcludeEachOtherWithKeptLockFile) {
    TempDir dir;
    check_process_exclusion(dir.path(), opts(std::nullopt, wl::LockBackend::flock, true), 4, 200);
}

// ---- 3. timeouts -----------------------------------------------------------

TEST(Lock, NoTimeoutWaitsUntilRelease) {
    TempDir dir;
    fs::path target = dir / "f";
    std::optional<wl::FileLock> held(std::in_place, target);
    Pipe ready, got;
    Child child([&] {
        ready.put('r');
        wl::FileLock lock(target);  // no timeout: must block
        got.put('A');
        return 0;
    });
    ready.close_write();
    got.close_write();
    ASSERT_EQ(get_byte(ready.read_fd()), 'r');
    // Proof that the child waits on the lock rather than racing past it.
    ASSERT_TRUE(wlf_test::wait_blocked_in_syscall(child.pid(), SYS_flock)) << "child never blocked in flock";
    EXPECT_EQ(get_byte_now(got.read_fd()), -2) << "child got the lock while the parent held it";
    EXPECT_EQ(wlf_lock_holder(target.c_str()), wlf_test::seen_holder(getpid()));
    held.reset();
    EXPECT_EQ(get_byte(got.read_fd()), 'A');
    EXPECT_EQ(child.wait(), 0);
}

TEST(Lock, PositiveTimeoutRaisesLockTimeout) {
    TempDir dir;
    fs::path target = dir / "f";
    Holder holder(target, opts(std::nullopt));
    ASSERT_TRUE(holder.held());
    auto start = Clock::now();
    try {
        wl::FileLock lock(target, 0.3);
        FAIL() << "acquired a lock held by another process";
    } catch (const wl::LockTimeout &e) {
        double elapsed = seconds_since(start);
        EXPECT_GE(elapsed, 0.25);
        EXPECT_LT(elapsed, 5.0);
        EXPECT_EQ(e.code().value(), ETIMEDOUT);
        EXPECT_EQ(e.path(), lock_of(target).string());
        EXPECT_EQ(e.holder(), wlf_test::seen_holder(holder.pid()));
        if (WLF_HAVE_PROC) {
            EXPECT_NE(std::string(e.what()).find(std::to_string(holder.pid())), std::string::npos) << e.what();
        }
    }
    // Caught through the seed's base name as well.
    EXPECT_THROW(wl::FileLock(target, 0.05), wl::mylockfile_other_exceptions);
    EXPECT_EQ(holder.release(), 0);
}

TEST(Lock, ZeroOrNegativeTimeoutRaisesAlreadyLockedAtOnce) {
    TempDir dir;
    fs::path target = dir / "f";
    Holder holder(target, opts(std::nullopt));
    ASSERT_TRUE(holder.held());
    for (double timeout : {0.0, -1.0}) {
        SCOPED_TRACE(timeout);
        auto start = Clock::now();
        try {
            wl::FileLock lock(target, timeout);
            ADD_FAILURE() << "acquired a lock held by another process";
        } catch (const wl::AlreadyLocked &e) {
            EXPECT_LT(seconds_since(start), 1.0);
            EXPECT_EQ(e.code().value(), EWOULDBLOCK);
            EXPECT_TRUE(ends_with_lock(e.path())) << e.path();
            EXPECT_EQ(e.path(), lock_of(target).string());
            EXPECT_EQ(e.holder(), wlf_test::seen_holder(holder.pid()));
            if (WLF_HAVE_PROC) {
                EXPECT_NE(std::string(e.what()).find(std::to_string(holder.pid())), std::string::npos) << e.what();
            }
        }
    }
    EXPECT_THROW(wl::FileLock(target, 0.0), wl::LockError);
    EXPECT_EQ(holder.release(), 0);
    EXPECT_EQ(attempt_lock(target, opts(0.0)).outcome, kAcquired);
}

TEST(Lock, PositiveTimeoutAcquiresWhenReleasedInTime) {
    TempDir dir;
    fs::path target = dir / "f";
    Holder holder(target, opts(std::nullopt));
    ASSERT_TRUE(holder.held());
    ASSERT_EQ(attempt_lock(target, opts(0.0)).outcome, kAlreadyLocked);
    // Let go only once this thread sleeps in the backoff loop, so the
    // acquisition below really is a wait that ends in success.
    const pid_t waiter = gettid();
    bool waiter_was_polling = false;
    std::thread releaser([&] {
        waiter_was_polling = wlf_test::wait_blocked_in_syscall(waiter, SYS_clock_nanosleep);
        holder.let_go();
    });
    wl::FileLock lock(target, 10.0);
    releaser.join();
    EXPECT_TRUE(waiter_was_polling);
    // The holder announces 'R' before releasing: seeing it now proves we got
    // the lock after the holder let go, not alongside it.
    EXPECT_EQ(holder.release_announced_now(), 'R');
    EXPECT_EQ(wlf_lock_holder(target.c_str()), wlf_test::seen_holder(getpid()));
    EXPECT_EQ(holder.release(), 0);
}

// A holder that keeps releasing and re-taking the lock makes a waiter wake up
// on unlinked lock files over and over; the timeout is still one deadline.
TEST(Lock, TimeoutIsOneDeadlineWhileHolderCycles) {
    TempDir dir;
    fs::path target = dir / "f";
    Pipe started, stop;
    Child cycler([&] {
        stop.close_write();
        for (int cycle = 0; cycle < 200; ++cycle) {
            wl::FileLock lock(target);
            if (cycle == 0) started.put('C');
            // Hold for a while (shorter than the waiter's timeout), unless told to stop.
            if (get_byte(stop.read_fd(), 50) == -1) return 0;
        }
        return 0;
    });
    started.close_write();
    stop.close_read();
    ASSERT_EQ(get_byte(started.read_fd()), 'C');
    auto start = Clock::now();
    int outcome = attempt_lock(target, opts(0.3)).outcome;
    double elapsed = seconds_since(start);
    stop.close_write();
    EXPECT_EQ(cycler.wait(), 0);
    // Acquiring in a gap between two cycles is legitimate; waiting far past
    // the deadline is not.
    EXPECT_TRUE(outcome == kTimeout || outcome == kAcquired) << outcome;
    if (outcome == kTimeout) {
        EXPECT_GE(elapsed, 0.25);
    }
    EXPECT_LT(elapsed, 3.0);
}

// ---- 4. nesting ------------------------------------------------------------

TEST(Lock, NestedAcquireInSameThreadDoesNotDeadlock) {
    TempDir dir;
    fs::path target = dir / "f";
    wl::FileLock outer(target);
    std::optional<wl::FileLock> inner;
    ASSERT_NO_THROW(inner.emplace(target, 0.0));
    EXPECT_TRUE(inner->held());
    EXPECT_EQ(inner->lock_path(), lock_of(target));
    EXPECT_EQ(probe_in_thread(target, opts(0.0)), kAlreadyLocked);
}

TEST(Lock, NestedReleaseInnerThenOuter) {
    TempDir dir;
    fs::path target = dir / "f";
    std::optional<wl::FileLock> outer(std::in_place, target), inner(std::in_place, target, 0.0);
    inner.reset();
    EXPECT_TRUE(fs::exists(lock_of(target)));
    EXPECT_EQ(probe_in_thread(target, opts(0.0)), kAlreadyLocked);
    EXPECT_EQ(probe_in_process(target, opts(0.0)), kAlreadyLocked);
    outer.reset();
    EXPECT_FALSE(fs::exists(lock_of(target)));
    EXPECT_EQ(probe_in_thread(target, opts(0.0)), kAcquired);
    EXPECT_EQ(probe_in_process(target, opts(0.0)), kAcquired);
}

TEST(Lock, NestedReleaseOuterThenInner) {
    TempDir dir;
    fs::path target = dir / "f";
    std::optional<wl::FileLock> outer(std::in_place, target), inner(std::in_place, target, 0.0);
    outer.reset();
    EXPECT_TRUE(fs::exists(lock_of(target)));
    EXPECT_EQ(probe_in_thread(target, opts(0.0)), kAlreadyLocked);
    EXPECT_EQ(probe_in_process(target, opts(0.0)), kAlreadyLocked);
    inner.reset();
    EXPECT_FALSE(fs::exists(lock_of(target)));
    EXPECT_EQ(probe_in_thread(target, opts(0.0)), kAcquired);
    EXPECT_EQ(probe_in_process(target, opts(0.0)), kAcquired);
}

// The Python binding's locks (no_nesting): two lock objects on one file
// exclude each other even in one thread, as the seed's fcntl lock does.
TEST(Lock, NoNestingHandleExcludesSecondLockInSameThread) {
    TempDir dir;
    fs::path target = dir / "f";
    wl::LockOptions own = opts(std::nullopt);
    own.nesting = false;
    std::optional<wl::FileLock> outer(std::in_place, target, own);
    wl::LockOptions second = own;
    second.timeout = 0.1;
    auto start = Clock::now();
    EXPECT_THROW(wl::FileLock(target, second), wl::LockTimeout);
    EXPECT_GE(seconds_since(start), 0.08);
    second.timeout = 0.0;
    EXPECT_THROW(wl::FileLock(target, second), wl::AlreadyLocked);
    // Nor does a nesting request of the same thread slip in under it.
    EXPECT_THROW(wl::FileLock(target, 0.0), wl::AlreadyLocked);
    EXPECT_EQ(probe_in_process(target, opts(0.0)), kAlreadyLocked);
    outer.reset();
    EXPECT_FALSE(fs::exists(lock_of(target)));
    EXPECT_EQ(probe_in_thread(target, opts(0.0)), kAcquired);
}

// The Python binding's untimed wait (interruptible): a signal ends it with
// EINTR, so that Ctrl-C reaches the program instead of waiting on.
TEST(Lock, InterruptibleWaitEndsWithEintrOnSignal) {
    TempDir dir;
    fs::path target = dir / "f";
    Holder holder(target, opts(std::nullopt));
    ASSERT_TRUE(holder.held());
    struct sigaction sa {}, old {};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART, like Python's handlers
    ASSERT_EQ(sigaction(SIGALRM, &sa, &old), 0);
    itimerval t{};
    t.it_value.tv_usec = 100000;
    ASSERT_EQ(setitimer(ITIMER_REAL, &t, nullptr), 0);
    wl::LockOptions o = opts(std::nullopt);
    o.interruptible = true;
    int code = 0;
    try {
        wl::FileLock lock(target, o);
    } catch (const wl::LockFailed &e) {
        code = e.code().value();
    }
    sigaction(SIGALRM, &old, nullptr);
    EXPECT_EQ(code, EINTR);
    EXPECT_EQ(holder.release(), 0);
}

// ---- 5. the verified cleanup protocol under contention --------------------

// Lock files are unlinked on every release while 8 processes fight for the
// lock: a waiter that wakes on an unlinked inode must notice and retry, or
// two processes end up inside at once.
TEST(Lock, CleanupRaceManyProcesses) {
    TempDir dir;
    auto start = Clock::now();
    check_process_exclusion(dir.path(), opts(std::nullopt), 8, 500);
    RecordProperty("seconds", std::to_string(seconds_since(start)));
}

// The control for the next test: why a waiter must verify what it locked.
// A holds the lock file X and B waits on it; A releases the way the verified
// protocol does (unlink, then unlock). B, which does not verify, now holds X,
// a file without a name, and C creates the lock file anew and locks it at
// once: two holders of "the" lock at the same time.
TEST(Lock, UnverifiedUnlinkProtocolLetsTwoHoldersIn) {
    TempDir dir;
    fs::path lock = lock_of(dir / "f");
    Pipe b_cmd, b_events, c_cmd, c_events;
    // B: opens the lock file as it is (X) and flocks it, blocking, with no
    // verification afterwards.
    Child b([&] {
        if (get_byte(b_cmd.read_fd(), -1) != kGo) return 1;
        int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0 || ::flock(fd, LOCK_EX) != 0) {
            b_events.put(kFailedToLock);
            return 2;
        }
        b_events.put(kHolding);
        if (get_byte(b_cmd.read_fd(), -1) != kRelease) return 3;
        ::flock(fd, LOCK_UN);
        ::close(fd);
        return 0;
    });
    // C: arrives after A's release, creates the lock file (Y) and must get it
    // at once (LOCK_NB).
    Child c([&] {
        if (get_byte(c_cmd.read_fd(), -1) != kGo) return 1;
        int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 || ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            c_events.put(kFailedToLock);
            return 2;
        }
        c_events.put(kHolding);
        if (get_byte(c_cmd.read_fd(), -1) != kRelease) return 3;
        return bare_release(lock, fd) ? 0 : 4;
    });

    // A (this process) creates and locks X.
    int a = ::open(lock.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    ASSERT_GE(a, 0) << std::strerror(errno);
    ASSERT_EQ(::flock(a, LOCK_EX | LOCK_NB), 0) << std::strerror(errno);
    const std::string x = held_flock_inode(a);
    ASSERT_NE(x, "") << "no lock line in /proc/self/fdinfo/" << a;

    ASSERT_TRUE(b_cmd.put(kGo));
    ASSERT_TRUE(wait_flock_waiter(b.pid(), x)) << "B never waited on X (" << x << ") in /proc/locks";
    EXPECT_EQ(get_byte_now(b_events.read_fd()), -2) << "B got X while A held it";

    ASSERT_TRUE(bare_release(lock, a));
    ASSERT_EQ(get_byte(b_events.read_fd()), kHolding) << "B did not get X after A's release";
    EXPECT_TRUE(has_flock_entry(b.pid(), x, false));

    ASSERT_TRUE(c_cmd.put(kGo));
    ASSERT_EQ(get_byte(c_events.read_fd()), kHolding) << "C could not lock the new lock file at once";
    const std::string y = held_flock_inode_of(c.pid());
    EXPECT_NE(y, "");
    EXPECT_NE(y, x);

    // The flaw: neither has released, and the kernel shows both holding.
    EXPECT_EQ(get_byte_now(b_events.read_fd()), -2);
    EXPECT_EQ(get_byte_now(c_events.read_fd()), -2);
    EXPECT_TRUE(has_flock_entry(b.pid(), x, false)) << "B no longer holds X";
    EXPECT_TRUE(has_flock_entry(c.pid(), y, false)) << "C does not hold Y";

    ASSERT_TRUE(b_cmd.put(kRelease));
    ASSERT_TRUE(c_cmd.put(kRelease));
    EXPECT_EQ(b.wait(), 0);
    EXPECT_EQ(c.wait(), 0);
    EXPECT_FALSE(fs::exists(lock));
}

// The same schedule with the library as B: woken holding X after A unlinked
// it, B must see that X is no longer the lock file, and retry on the file
// that now is (Y, held by C) instead of entering beside C.
//
// C locks Y between A's unlink and A's unlock (a legitimate moment: the
// protocol lets anybody create the lock file as soon as it is unlinked), so
// B wakes on X only when the name already belongs to C's locked Y. Were C to
// arrive after A's unlock, B could create the new lock file first and the
// schedule would depend on who wins that race.
TEST(Lock, WaiterWokenOnUnlinkedLockFileRetriesOnTheNewOne) {
    TempDir dir;
    fs::path target = dir / "f";
    fs::path lock = lock_of(target);
    Pipe b_cmd, b_events, c_cmd, c_events;
    // B: the library, no timeout.
    Child b([&] {
        if (get_byte(b_cmd.read_fd(), -1) != kGo) return 1;
        wlf_lock *l = nullptr;
        wlf_error err{};
        if (wlf_lock_acquire(target.c_str(), nullptr, &l, &err) != 0) {
            b_events.put(kFailedToLock);
            return 2;
        }
        b_events.put(kHolding);
        if (get_byte(b_cmd.read_fd(), -1) != kRelease) return 3;
        if (wlf_lock_release(l, &err) != 0) return 4;
        b_events.put(kReleased);
        return 0;
    });
    // C: by hand, creates the new lock file Y once X is unlinked and locks it.
    Child c([&] {
        if (get_byte(c_cmd.read_fd(), -1) != kGo) return 1;
        int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 || ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            c_events.put(kFailedToLock);
            return 2;
        }
        c_events.put(kHolding);
        if (get_byte(c_cmd.read_fd(), -1) != kRelease) return 3;
        return bare_release(lock, fd) ? 0 : 4;
    });

    // A (this process) creates and locks X.
    int a = ::open(lock.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    ASSERT_GE(a, 0) << std::strerror(errno);
    ASSERT_EQ(::flock(a, LOCK_EX | LOCK_NB), 0) << std::strerror(errno);
    const std::string x = held_flock_inode(a);
    ASSERT_NE(x, "") << "no lock line in /proc/self/fdinfo/" << a;

    // B opens X itself and blocks on it.
    ASSERT_TRUE(b_cmd.put(kGo));
    ASSERT_TRUE(wait_flock_waiter(b.pid(), x)) << "B never waited on X (" << x << ") in /proc/locks";
    EXPECT_EQ(get_byte_now(b_events.read_fd()), -2) << "B got X while A held it";

    // A's release, by hand: unlink X; C creates and locks Y; A unlocks X.
    ASSERT_EQ(::unlink(lock.c_str()), 0) << std::strerror(errno);
    ASSERT_TRUE(c_cmd.put(kGo));
    ASSERT_EQ(get_byte(c_events.read_fd()), kHolding) << "C could not lock the new lock file at once";
    const std::string y = held_flock_inode_of(c.pid());
    ASSERT_NE(y, "");
    ASSERT_NE(y, x);
    ASSERT_EQ(::flock(a, LOCK_UN), 0);
    ASSERT_EQ(::close(a), 0);

    // B wakes holding X. Wait until it either waits on Y (it verified and
    // retried) or claims the lock (it did not): whichever comes first.
    int b_said = -2;
    bool b_waits_on_y = false;
    auto start = Clock::now();
    while (!(b_waits_on_y = has_flock_entry(b.pid(), y, true)) && (b_said = get_byte_now(b_events.read_fd())) == -2 &&
           seconds_since(start) < 20) {
        ::usleep(1000);
    }
    EXPECT_NE(b_said, kHolding) << "B entered while C holds the lock: two holders";
    ASSERT_TRUE(b_waits_on_y) << "B never waited on Y (" << y << ") in /proc/locks";
    EXPECT_EQ(get_byte_now(b_events.read_fd()), -2) << "B reported while C holds the lock";
    EXPECT_TRUE(has_flock_entry(c.pid(), y, false)) << "C does not hold Y";
    EXPECT_FALSE(has_flock_entry(b.pid(), x, false)) << "B kept a lock on the unlinked X";

    // C releases the verified way: B wakes on the unlinked Y, retries again
    // and gets a lock file of its own.
    ASSERT_TRUE(c_cmd.put(kRelease));
    EXPECT_EQ(c.wait(), 0);
    ASSERT_EQ(get_byte(b_events.read_fd()), kHolding) << "B did not get the lock after C's release";
    const std::string z = held_flock_inode_of(b.pid());
    EXPECT_NE(z, "");
    EXPECT_EQ(wlf_lock_holder(target.c_str()), wlf_test::seen_holder(b.pid()));
    EXPECT_EQ(wlf_test::read_file(lock), "");

    ASSERT_TRUE(b_cmd.put(kRelease));
    EXPECT_EQ(get_byte(b_events.read_fd()), kReleased);
    EXPECT_EQ(b.wait(), 0);
    EXPECT_FALSE(fs::exists(lock));
    EXPECT_EQ(wlf_test::list_names(dir.path()), std::vector<std::string>{});
}

// ---- 6. LockFailed ---------------------------------------------------------

TEST(Lock, MissingDirectoryIsLockFailed) {
    TempDir dir;
    for (auto backend : {wl::LockBackend::flock, wl::LockBackend::dotlock}) {
        SCOPED_TRACE(static_cast<int>(backend));
        try {
            wl::FileLock lock(dir / "missing" / "f", opts(std::nullopt, backend));
            ADD_FAILURE() << "locked in a directory that does not exist";
        } catch (const wl::LockFailed &e) {
            EXPECT_EQ(e.code().value(), ENOENT);
            EXPECT_EQ(e.path(), lock_of(dir / "missing" / "f").string());
        }
    }
    EXPECT_FALSE(fs::exists(dir / "missing"));
}

// The message names the lock file and what is in its place (not the
// target: "cannot create f: Is a directory" would send the user to f).
TEST(Lock, LockPathIsDirectoryIsLockFailed) {
    TempDir dir;
    fs::create_directory(dir / "f.lock");
    try {
        wl::FileLock lock(dir / "f", 0.0);
        FAIL() << "locked a directory";
    } catch (const wl::LockFailed &e) {
        EXPECT_EQ(e.code().value(), ENOLCK);
        EXPECT_EQ(e.path(), lock_of(dir / "f").string());
        EXPECT_NE(std::string(e.what()).find("lock file '" + e.path() + "' is a directory"), std::string::npos)
            << e.what();
    }
    EXPECT_TRUE(fs::is_directory(dir / "f.lock"));
}

TEST(Lock, LockPathIsSymlinkIsNotFollowed) {
    TempDir dir;
    fs::create_symlink("victim", dir / "f.lock");
    for (auto backend : {wl::LockBackend::flock, wl::LockBackend::dotlock}) {
        SCOPED_TRACE(static_cast<int>(backend));
        try {
            wl::FileLock lock(dir / "f", opts(0.0, backend));
            ADD_FAILURE() << "locked through a symlink";
        } catch (const wl::LockFailed &e) {
            EXPECT_EQ(e.code().value(), ENOLCK);
            EXPECT_EQ(e.path(), lock_of(dir / "f").string());
            EXPECT_NE(std::string(e.what()).find("is a symbolic link"), std::string::npos) << e.what();
        } catch (const std::exception &e) {
            ADD_FAILURE() << e.what();
        }
    }
    EXPECT_FALSE(fs::exists(dir / "victim"));
    EXPECT_TRUE(fs::is_symlink(dir / "f.lock"));
}

TEST(Lock, ReadOnlyFilesystemIsLockFailed) {
    if (!am_root()) GTEST_SKIP() << "needs root for a private mount namespace";
    TempDir dir;
    fs::path ro = dir / "ro";
    fs::create_directory(ro);
    auto result = run_child_reporting<6>(
        [&]() -> std::array<int, 6> {
            std::array<int, 6> r{};
            // Private namespace: the mounts vanish with the child.
            if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
                mount("tmpfs", ro.c_str(), "tmpfs", 0, "size=1m") != 0) {
                r[0] = kSetupFailed;
                return r;
            }
            wlf_test::write_file(ro / "existing.lock", "");
            if (mount(nullptr, ro.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
                r[0] = kSetupFailed;
                return r;
            }
            Attempt fresh = attempt_lock(ro / "f", opts(0.0));
            r[1] = fresh.outcome;
            r[2] = fresh.code;
            // An existing lock file can still be locked through a read-only
            // descriptor, and releasing must not report a failed unlink.
            try {
                wl::FileLock lock(ro / "existing", 0.0);
                r[3] = kAcquired;
                lock.release();
            } catch (const wl::LockFailed &e) {
                r[3] = kFailed;
                r[4] = e.code().value();
            } catch (...) {
                r[3] = kOther;
            }
            r[5] = fs::exists(ro / "existing.lock") ? 1 : 0;
            return r;
        });
    ASSERT_TRUE(result.has_value()) << "child crashed";
    auto r = *result;
    if (r[0] == kSetupFailed) GTEST_SKIP() << "unshare/mount tmpfs not permitted here";
    EXPECT_EQ(r[1], kFailed);
    EXPECT_EQ(r[2], EROFS);
    EXPECT_EQ(r[3], kAcquired) << "errno " << r[4];
    EXPECT_EQ(r[5], 1);
}

TEST(Lock, UnwritableDirectoryIsLockFailedForOtherUser) {
    if (!am_root()) GTEST_SKIP() << "needs root to switch to user nobody";
    TempDir dir;
    fs::permissions(dir.path(), fs::perms(0755));
    fs::path shut = dir / "shut";
    fs::create_directory(shut);
    fs::permissions(shut, fs::perms(0755));
    auto result = run_child_reporting<3>([&]() -> std::array<int, 3> {
        if (!drop_to_nobody()) return {kSetupFailed, 0, 0};
        Attempt a = attempt_lock(shut / "f", opts(0.0));
        return {0, a.outcome, a.code};
    });
    ASSERT_TRUE(result.has_value()) << "child crashed";
    auto r = *result;
    if (r[0] == kSetupFailed) GTEST_SKIP() << "cannot switch to user nobody";
    EXPECT_EQ(r[1], kFailed);
    EXPECT_EQ(r[2], EACCES);
    EXPECT_FALSE(fs::exists(shut / "f.lock"));
}

// Another user's lock file in a shared sticky directory (the /tmp case): it
// can only be opened read-only and not removed, yet it must work as a lock,
// and releasing must not fail (a commit that already renamed would
// otherwise report an error).
TEST(Lock, ForeignLockFileInStickyDirectoryStillLocks) {
    if (!am_root()) GTEST_SKIP() << "needs root to switch to user nobody";
    TempDir dir;
    fs::permissions(dir.path(), fs::perms(0755));
    fs::path shared = dir / "shared";
    fs::create_directory(shared);
    fs::permissions(shared, fs::perms(01777));
    wlf_test::write_file(shared / "f.lock", "", 0644);  // owned by root
    Pipe held, done;
    Child child([&] {
        done.close_write();
        if (!drop_to_nobody()) return 77;
        try {
            wl::FileLock lock(shared / "f", 0.0);
            held.put('H');
            get_byte(done.read_fd(), -1);
            lock.release();
            return 0;
        } catch (const wl::LockError &e) {
            return 10 + (e.code().value() & 0x3f);
        }
    });
    held.close_write();
    done.close_read();
    int c = get_byte(held.read_fd());
    if (c == 'H') {
        EXPECT_EQ(probe_in_process(shared / "f", opts(0.0)), kAlreadyLocked);
    }
    done.close_write();
    int status = child.wait();
    if (status == 77) GTEST_SKIP() << "cannot switch to user nobody";
    EXPECT_EQ(c, 'H');
    EXPECT_EQ(status, 0) << "LockError errno " << status - 10;
    EXPECT_TRUE(fs::exists(shared / "f.lock"));
    EXPECT_EQ(probe_in_process(shared / "f", opts(0.0)), kAcquired);
}

// A relative target is made absolute when locking: a chdir before the
// release must not leave our lock file behind nor remove the lock file of
// the same name in the new working directory (B's kept "f.lock", with
// somebody's bytes in it, and B's own "f"). C API with both file backends,
// and the C++ guard (explicit release and destructor). Each round starts
// afresh and waits at most 5 s, so one broken round cannot hang the next.
TEST(Lock, RelativeTargetReleasedAfterChdirRemovesOnlyItsOwnLockFile) {
    TempDir dir;
    const fs::path a = fs::canonical(dir.path()) / "A", b = fs::canonical(dir.path()) / "B";
    fs::create_directory(a);
    fs::create_directory(b);
    enum Round { kFlock, kDotlock, kGuardRelease, kGuardDestructor };
    for (Round round : {kFlock, kDotlock, kGuardRelease, kGuardDestructor}) {
        const char *names[] = {"C API, flock", "C API, dotlock", "C++ FileLock::release", "C++ ~FileLock"};
        SCOPED_TRACE(names[round]);
        std::error_code ec;
        fs::remove(a / "f.lock", ec);
        wlf_test::write_file(b / "f", "B's");
        wlf_test::write_file(b / "f.lock", "other\n");
        const ino_t b_f = wlf_test::lstat_or_die(b / "f").st_ino;
        const ino_t b_lock = wlf_test::lstat_or_die(b / "f.lock").st_ino;
        std::string lock_path;
        bool existed_while_held = false;
        int rc = -1;
        {
            CwdGuard cwd;
            ASSERT_EQ(::chdir(a.c_str()), 0);
            if (round == kFlock || round == kDotlock) {
                wlf_lock_options o;
                wlf_lock_options_init(&o);
                o.backend = round == kFlock ? WLF_LOCK_FLOCK : WLF_LOCK_DOTLOCK;
                o.has_timeout = 1;
                o.timeout = 5;
                wlf_lock *l = nullptr;
                wlf_error err{};
                ASSERT_EQ(wlf_lock_acquire("f", &o, &l, &err), 0) << err.op << " " << err.path;
                lock_path = wlf_lock_path(l);
                existed_while_held = fs::exists(a / "f.lock");
                EXPECT_EQ(::chdir(b.c_str()), 0);
                rc = wlf_lock_release(l, &err);
            } else {
                std::optional<wl::FileLock> lock;
                ASSERT_NO_THROW(lock.emplace("f", 5.0));
                lock_path = lock->lock_path().string();
                existed_while_held = fs::exists(a / "f.lock");
                EXPECT_EQ(::chdir(b.c_str()), 0);
                if (round == kGuardRelease) {
                    EXPECT_NO_THROW(lock->release());
                }
                lock.reset();
                rc = 0;
            }
        }
        EXPECT_EQ(lock_path, (a / "f.lock").string());
        EXPECT_TRUE(existed_while_held);
        EXPECT_EQ(rc, 0);
        EXPECT_FALSE(fs::exists(a / "f.lock"));
        EXPECT_EQ(wlf_test::list_names(a), std::vector<std::string>{});
        EXPECT_EQ(wlf_test::read_file(b / "f"), "B's");
        EXPECT_EQ(wlf_test::lstat_or_die(b / "f").st_ino, b_f);
        EXPECT_EQ(wlf_test::list_names(b), (std::vector<std::string>{"f", "f.lock"}));
        if (fs::exists(b / "f.lock")) {
            EXPECT_EQ(wlf_test::lstat_or_die(b / "f.lock").st_ino, b_lock);
            EXPECT_EQ(wlf_test::read_file(b / "f.lock"), "other\n");
        }
    }
}

// ---- 7. holder pid -----------------------------------------------------------

// Nothing is written into the lock file: the holder is what /proc/locks shows.
TEST(Lock, HolderPidComesFromTheKernelNotTheFile) {
    TempDir dir;
    fs::path target = dir / "f";
    wl::FileLock lock(target);
    EXPECT_EQ(wlf_test::read_file(lock_of(target)), "");
    EXPECT_EQ(wlf_lock_holder(target.c_str()), wlf_test::seen_holder(getpid()));
}

TEST(Lock, KeptLockFileWithContentIsNotWritten) {
    TempDir dir;
    fs::path target = dir / "f";
    wlf_test::write_file(lock_of(target), "123456789012345\nleftover\n");
    {
        wl::FileLock lock(target, opts(0.0, wl::LockBackend::flock, true));
        EXPECT_EQ(wlf_test::read_file(lock_of(target)), "123456789012345\nleftover\n");
        EXPECT_EQ(wlf_lock_holder(target.c_str()), wlf_test::seen_holder(getpid()));
    }
    EXPECT_EQ(wlf_test::read_file(lock_of(target)), "123456789012345\nleftover\n");
}

// ---- 8. dotlock backend ------------------------------------------------------

TEST(Lock, DotlockExcludesProcesses) {
    TempDir dir;
    check_process_exclusion(dir.path(), opts(std::nullopt, wl::LockBackend::dotlock), 4, 50);
    // Only the counter remains: no lock file, no link temporaries.
    EXPECT_EQ(wlf_test::count_entries(dir.path()), 1u);
}

// What liblockfile's atoi() reads from a dotlock of ours ("<pid> host=..."):
// the holder's pid.
long dotlock_pid(const fs::path &lock) { return std::atol(wlf_test::read_file(lock).c_str()); }

TEST(Lock, DotlockAlreadyLockedAndTimeout) {
    TempDir dir;
    fs::path target = dir / "f";
    Holder holder(target, opts(std::nullopt, wl::LockBackend::dotlock));
    ASSERT_TRUE(holder.held());
    EXPECT_EQ(dotlock_pid(lock_of(target)), holder.pid());
    auto start = Clock::now();
    try {
        wl::FileLock lock(target, opts(0.0, wl::LockBackend::dotlock));
        ADD_FAILURE() << "acquired a held dotlock";
    } catch (const wl::AlreadyLocked &e) {
        EXPECT_LT(seconds_since(start), 1.0);
        EXPECT_EQ(e.holder(), holder.pid());
        EXPECT_EQ(e.path(), lock_of(target).string());
    }
    start = Clock::now();
    try {
        wl::FileLock lock(target, opts(0.3, wl::LockBackend::dotlock));
        ADD_FAILURE() << "acquired a held dotlock";
    } catch (const wl::LockTimeout &e) {
        double elapsed = seconds_since(start);
        EXPECT_GE(elapsed, 0.25);
        EXPECT_LT(elapsed, 5.0);
        EXPECT_EQ(e.holder(), holder.pid());
        EXPECT_EQ(e.code().value(), ETIMEDOUT);
    }
    EXPECT_EQ(holder.release(), 0);
    EXPECT_FALSE(fs::exists(lock_of(target)));
    EXPECT_EQ(attempt_lock(target, opts(0.0, wl::LockBackend::dotlock)).outcome, kAcquired);
    EXPECT_EQ(wlf_test::count_entries(dir.path()), 0u);
}

TEST(Lock, DotlockBreaksStaleLockOnly) {
    TempDir dir;
    fs::path target = dir / "f";
    pid_t dead;
    {
        Child gone([] { return 0; });
        dead = gone.pid();
        ASSERT_EQ(gone.wait(), 0);
    }
    // A live pid (our own, recorded by someone else) is respected...
    wlf_test::write_file(lock_of(target), pid_line(getpid()));
    EXPECT_EQ(attempt_lock(target, opts(0.0, wl::LockBackend::dotlock)).outcome, kAlreadyLocked);
    // ...a dead one is broken.
    wlf_test::write_file(lock_of(target), pid_line(dead));
    {
        wl::FileLock lock(target, opts(0.0, wl::LockBackend::dotlock));
        EXPECT_EQ(dotlock_pid(lock_of(target)), getpid());
    }
    EXPECT_FALSE(fs::exists(lock_of(target)));
    EXPECT_EQ(wlf_test::count_entries(dir.path()), 0u);
}

TEST(Lock, DotlockInteroperatesWithDotlockfile) {
    std::string tool = wlf_test::find_program("dotlockfile");
    if (tool.empty()) GTEST_SKIP() << "dotlockfile(1) not installed (Debian package liblockfile-bin)";
    TempDir dir;
    fs::path target = dir / "f";
    std::string lock = lock_of(target).string();
    ASSERT_EQ(wlf_test::run_program({tool, "-l", "-r", "0", lock}), 0);
    EXPECT_EQ(attempt_lock(target, opts(0.0, wl::LockBackend::dotlock)).outcome, kAlreadyLocked);
    ASSERT_EQ(wlf_test::run_program({tool, "-u", lock}), 0);
    {
        wl::FileLock ours(target, opts(0.0, wl::LockBackend::dotlock));
        EXPECT_NE(wlf_test::run_program({tool, "-l", "-r", "0", lock}), 0) << "dotlockfile took our lock";
        EXPECT_EQ(dotlock_pid(lock_of(target)), getpid());
    }
    EXPECT_FALSE(fs::exists(lock_of(target)));
    EXPECT_EQ(wlf_test::run_program({tool, "-l", "-r", "0", lock}), 0);
    EXPECT_EQ(wlf_test::run_program({tool, "-u", lock}), 0);
}

// ---- 9. no-op backend ----------------------------------------------------------

TEST(Lock, BackendNoneNeverExcludes) {
    TempDir dir;
    fs::path target = dir / "f";
    Holder holder(target, opts(std::nullopt));
    ASSERT_TRUE(holder.held());
    wl::FileLock a(target, opts(0.0, wl::LockBackend::none));
    wl::FileLock b(target, opts(0.0, wl::LockBackend::none));
    EXPECT_TRUE(a.held());
    EXPECT_TRUE(b.held());
    EXPECT_EQ(probe_in_process(target, opts(0.0, wl::LockBackend::none)), kAcquired);
    // It neither touched the real holder's lock file nor created another.
    EXPECT_EQ(wlf_lock_holder(target.c_str()), wlf_test::seen_holder(holder.pid()));
    EXPECT_EQ(wlf_test::read_file(lock_of(target)), "");
    EXPECT_EQ(wlf_test::count_entries(dir.path()), 1u);
    EXPECT_EQ(holder.release(), 0);
}

// ---- 10. flock(1) interop ------------------------------------------------------

TEST(Lock, KeptLockFileInteroperatesWithFlockTool) {
    std::string tool = wlf_test::find_program("flock");
    if (tool.empty()) GTEST_SKIP() << "flock(1) not installed (util-linux)";
    TempDir dir;
    fs::path target = dir / "f";
    std::string lock = lock_of(target).string();
    const auto keep = [](std::optional<double> t) { return opts(t, wl::LockBackend::flock, true); };
    {
        // flock(1) holds the lock while its command waits for EOF on stdin.
        Pipe to_tool, from_tool;
        Child tool_holder([&] {
            if (dup2(to_tool.read_fd(), 0) < 0 || dup2(from_tool.write_fd(), 1) < 0) return 126;
            execl(tool.c_str(), "flock", lock.c_str(), "sh", "-c", "printf H; read x; exit 0", static_cast<char *>(nullptr));
            return 127;
        });
        to_tool.close_read();
        from_tool.close_write();
        ASSERT_EQ(get_byte(from_tool.read_fd()), 'H');
        EXPECT_EQ(attempt_lock(target, keep(0.0)).outcome, kAlreadyLocked);
        to_tool.close_write();
        EXPECT_EQ(tool_holder.wait(), 0);
    }
    {
        wl::FileLock ours(target, keep(0.0));
        EXPECT_EQ(wlf_test::run_program({tool, "-n", lock, "true"}), 1) << "flock(1) took our lock";
    }
    EXPECT_TRUE(fs::exists(lock_of(target)));
    EXPECT_EQ(wlf_test::run_program({tool, "-n", lock, "true"}), 0);
}

// ---- 11. C API -------------------------------------------------------------------

// flock failing outright (NFS without lockd gives ENOLCK, some FUSE file
// systems ENOSYS or EOPNOTSUPP) must become LockFailed at once, with and
// without a timeout, never a retry loop. A seccomp filter in a helper thread
// makes flock fail there only.
TEST(Lock, FlockErrorsAreLockFailedWithoutRetry) {
    wlf_test::TempDir dir;
    for (int error : {ENOLCK, ENOSYS, EOPNOTSUPP}) {
        for (std::optional<double> timeout : {std::optional<double>{}, std::optional<double>{5.0}}) {
            int seccomp_rc = 0, code = 0;
            bool lock_failed = false;
            double seconds = 0;
            std::thread t([&] {
                seccomp_rc = wlf_test::fail_syscall_in_this_thread(__NR_flock, error);
                if (seccomp_rc != 0) return;
                auto start = std::chrono::steady_clock::now();
                try {
                    wrap_lockfile::mylockfile lock(dir / "f", timeout);
                } catch (const wrap_lockfile::LockFailed &e) {
                    lock_failed = true;
                    code = e.code().value();
                } catch (const std::exception &) {
                }
                seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            });
            t.join();
            if (seccomp_rc != 0) GTEST_SKIP() << "cannot install a seccomp filter: " << std::strerror(seccomp_rc);
            EXPECT_TRUE(lock_failed) << "errno " << error << (timeout ? " with" : " without") << " timeout";
            EXPECT_EQ(code, error);
            EXPECT_LT(seconds, 1.0) << "flock errors must not be retried";
        }
    }
    // The failed attempts left nothing behind that blocks the next holder.
    wrap_lockfile::mylockfile lock(dir / "f", 0.0);
    EXPECT_TRUE(lock.held());
}

// The lock file is looked at with statx (for its mount's id); where statx is
// refused (old kernels, seccomp profiles: ENOSYS or EPERM), fstat does, and
// locking, excluding and removing the lock file work as ever.
TEST(Lock, WorksWhereStatxIsRefused) {
    wlf_test::TempDir dir;
    for (int error : {ENOSYS, EPERM}) {
        int seccomp_rc = 0, acquired = -1, released = -1;
        bool busy_elsewhere = false, removed = false;
        std::thread t([&] {
            seccomp_rc = wlf_test::fail_syscall_in_this_thread(__NR_statx, error);
            if (seccomp_rc != 0) return;
            wlf_lock *lock = nullptr;
            acquired = wlf_lock_acquire((dir / "f").c_str(), nullptr, &lock, nullptr);
            if (acquired != 0) return;
            busy_elsewhere = Child([&] {
                                 int fd = ::open((dir / "f.lock").c_str(), O_RDONLY | O_CLOEXEC);
                                 return fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK ? 0 : 1;
                             }).wait() == 0;
            released = wlf_lock_release(lock, nullptr);
            removed = !fs::exists(dir / "f.lock");
        });
        t.join();
        if (seccomp_rc != 0) GTEST_SKIP() << "cannot install a seccomp filter: " << std::strerror(seccomp_rc);
        EXPECT_EQ(acquired, 0) << "statx refused with errno " << error;
        EXPECT_TRUE(busy_elsewhere) << "another process got the lock";
        EXPECT_EQ(released, 0);
        EXPECT_TRUE(removed) << "the lock file stayed";
    }
}

TEST(Lock, CApiReportsBusyTimeoutAndErrors) {
    TempDir dir;
    fs::path target = dir / "f";
    std::string lock = lock_of(target).string();
    Holder holder(target, opts(std::nullopt));
    ASSERT_TRUE(holder.held());
    EXPECT_EQ(wlf_lock_holder(target.c_str()), wlf_test::seen_holder(holder.pid()));

    wlf_lock_options o;
    wlf_lock_options_init(&o);
    o.has_timeout = 1;
    o.timeout = 0;
    wlf_lock *l = reinterpret_cast<wlf_lock *>(&o);  // must be overwritten with NULL
    wlf_error err{};
    EXPECT_EQ(wlf_lock_acquire(target.c_str(), &o, &l, &err), EWOULDBLOCK);
    EXPECT_EQ(l, nullptr);
    EXPECT_EQ(err.code, EWOULDBLOCK);
    EXPECT_NE(err.op, nullptr);
    EXPECT_EQ(std::string(err.path), lock);

    o.timeout = 0.2;
    err = wlf_error{};
    auto start = Clock::now();
    EXPECT_EQ(wlf_lock_acquire(target.c_str(), &o, &l, &err), ETIMEDOUT);
    EXPECT_GE(seconds_since(start), 0.15);
    EXPECT_EQ(l, nullptr);
    EXPECT_EQ(err.code, ETIMEDOUT);
    EXPECT_NE(err.op, nullptr);
    EXPECT_EQ(std::string(err.path), lock);
    EXPECT_EQ(holder.release(), 0);

    fs::path missing = dir / "missing" / "f";
    err = wlf_error{};
    EXPECT_EQ(wlf_lock_acquire(missing.c_str(), nullptr, &l, &err), ENOENT);
    EXPECT_EQ(err.code, ENOENT);
    EXPECT_NE(err.op, nullptr);
    EXPECT_EQ(std::string(err.path), lock_of(missing).string());

    o.backend = 99;
    err = wlf_error{};
    EXPECT_EQ(wlf_lock_acquire(target.c_str(), &o, &l, &err), EINVAL);
    EXPECT_NE(err.op, nullptr);
    EXPECT_EQ(wlf_lock_acquire("", nullptr, &l, nullptr), EINVAL);
}

TEST(Lock, CApiAcquireNestAndRelease) {
    TempDir dir;
    fs::path target = dir / "f";
    wlf_lock *outer = nullptr, *inner = nullptr;
    wlf_error err{};
    ASSERT_EQ(wlf_lock_acquire(target.c_str(), nullptr, &outer, &err), 0);
    ASSERT_NE(outer, nullptr);
    EXPECT_EQ(std::string(wlf_lock_path(outer)), lock_of(target).string());
    EXPECT_GE(wlf_lock_fd(outer), 0);
    EXPECT_EQ(wlf_lock_holder(target.c_str()), wlf_test::seen_holder(getpid()));

    wlf_lock_options o;
    wlf_lock_options_init(&o);
    o.has_timeout = 1;
    ASSERT_EQ(wlf_lock_acquire(target.c_str(), &o, &inner, &err), 0);
    // Nested: the same locked descriptor, not a second open file description.
    EXPECT_EQ(wlf_lock_fd(inner), wlf_lock_fd(outer));

    EXPECT_EQ(wlf_lock_release(outer, &err), 0);
    EXPECT_TRUE(fs::exists(lock_of(target)));
    EXPECT_EQ(probe_in_process(target, opts(0.0)), kAlreadyLocked);
    EXPECT_EQ(wlf_lock_release(inner, &err), 0);
    EXPECT_FALSE(fs::exists(lock_of(target)));
    EXPECT_EQ(wlf_lock_holder(target.c_str()), 0);
    EXPECT_EQ(wlf_lock_release(nullptr, &err), 0);
}

// ---- 12. fork safety ---------------------------------------------------------------

TEST(Lock, ForkedChildDestroyingCopyKeepsParentLock) {
    TempDir dir;
    fs::path target = dir / "f";
    wl::FileLock lock(target);
    Child child([&] {
        // The child's copy of the parent's guard goes away here.
        wl::FileLock mine(std::move(lock));
        mine.release();
        return 0;
    });
    EXPECT_EQ(child.wait(), 0);
    EXPECT_TRUE(lock.held());
    EXPECT_TRUE(fs::exists(lock_of(target)));
    EXPECT_EQ(wlf_lock_holder(target.c_str()), wlf_test::seen_holder(getpid()));
    EXPECT_EQ(probe_in_process(target, opts(0.0)), kAlreadyLocked);
    lock.release();
    EXPECT_EQ(probe_in_process(target, opts(0.0)), kAcquired);
}

// flock locks belong to the open file description, which a forked child
// shares; releasing must unlock it, not just close our descriptor. The lock
// file is kept so the next locker meets the very same inode.
TEST(Lock, ReleaseIsNotPinnedByForkedChild) {
    TempDir dir;
    fs::path target = dir / "f";
    std::optional<wl::FileLock> lock(std::in_place, target, opts(std::nullopt, wl::LockBackend::flock, true));
    Pipe forked, done;
    Child child([&] {
        done.close_write();
        forked.put('F');
        get_byte(done.read_fd(), -1);
        return 0;
    });
    forked.close_write();
    done.close_read();
    ASSERT_EQ(get_byte(forked.read_fd()), 'F');
    lock.reset();
    EXPECT_EQ(probe_in_process(target, opts(0.0, wl::LockBackend::flock, true)), kAcquired);
    done.close_write();
    EXPECT_EQ(child.wait(), 0);
}
