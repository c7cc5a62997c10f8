// Ownership of "<target>.lock" (README "Locks"): the library writes nothing
// into a lock file, removes only its own (created with O_EXCL, or an earlier
// holder's that carries the marker: empty, S_ISVTX, one link, our uid), and
// refuses anything that is not a regular single-link file, naming it,
// without following or blocking. The holder's pid comes from /proc/locks.
// A replacement's commit checks its lock file through the directory it
// renames into, and the release removes it through the same descriptor.
#include <gtest/gtest.h>
#include <wrap_lockfile/wrap_lockfile.hpp>

#include "build_features.hpp"
#include "lock_internal.hpp"
#include "shim_entry.hpp"
#include "test_support.hpp"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace wl = wrap_lockfile;
using wlf_test::Child;
using wlf_test::get_byte;
using wlf_test::lstat_or_die;
using wlf_test::Pipe;
using wlf_test::read_file;
using wlf_test::seconds_since;
using wlf_test::TempDir;
using wlf_test::write_file;
using Clock = std::chrono::steady_clock;
using Names = std::vector<std::string>;

namespace {

fs::path lock_of(const fs::path &target) { return fs::path(target.string() + ".lock"); }

wl::LockOptions opts(std::optional<double> timeout, wl::LockBackend backend = wl::LockBackend::flock) {
    wl::LockOptions o;
    o.timeout = timeout;
    o.backend = backend;
    return o;
}

bool same_file(const struct stat &a, const struct stat &b) {
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_mode == b.st_mode && a.st_nlink == b.st_nlink &&
           a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

// Makes a unix socket at path; false if it cannot.
bool make_socket(const fs::path &path) {
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.string().size() >= sizeof addr.sun_path) {
        ::close(s);
        return false;
    }
    std::strcpy(addr.sun_path, path.c_str());
    bool ok = ::bind(s, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0;
    ::close(s);
    return ok;
}

struct Intruder {
    const char *what;  // as the message words it
    std::function<bool(const fs::path &lock, const fs::path &dir)> make;
    bool dotlock_refuses;  // a dotlock passes through two links by design
};

std::vector<Intruder> intruders() {
    return {
        {"is a FIFO", [](const fs::path &l, const fs::path &) { return ::mkfifo(l.c_str(), 0644) == 0; }, true},
        {"is a directory", [](const fs::path &l, const fs::path &) { return ::mkdir(l.c_str(), 0755) == 0; }, true},
        {"is a socket", [](const fs::path &l, const fs::path &) { return make_socket(l); }, true},
        {"is a symbolic link",
         [](const fs::path &l, const fs::path &d) {
             write_file(d / "victim", "victim's\n");
             return ::symlink("victim", l.c_str()) == 0;
         },
         true},
        {"is a device",
         [](const fs::path &l, const fs::path &) { return ::mknod(l.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0; },
         true},
        {"has 2 links",
         [](const fs::path &l, const fs::path &d) {
             write_file(d / "precious", "precious\n");
             return ::link((d / "precious").c_str(), l.c_str()) == 0;
         },
         false},
    };
}

}  // namespace

// What the library creates carries the marker, and nothing is written into it.
TEST(LockOwnership, CreatedLockFileIsEmptyAndSticky) {
    TempDir dir;
    fs::path target = dir / "f";
    {
        wl::FileLock lock(target);
        struct stat st = lstat_or_die(lock_of(target));
        EXPECT_TRUE(S_ISREG(st.st_mode));
        EXPECT_TRUE(st.st_mode & S_ISVTX);
        EXPECT_EQ(st.st_size, 0);
        EXPECT_EQ(st.st_nlink, 1u);
        EXPECT_EQ(st.st_uid, ::geteuid());
    }
    EXPECT_FALSE(fs::exists(lock_of(target)));
}

// Another program's lock file with content (Gemfile.lock) is locked as it
// is: same inode, mtime, mode and bytes after 100 replacements of the
// target and 100 plain locks, with both file backends waiting on it.
TEST(LockOwnership, ForeignLockFileWithContentIsNeverChanged) {
    TempDir dir;
    fs::path target = dir / "Gemfile", lock = lock_of(target);
    write_file(lock, "LOCKED DEPS\n", 0640);
    const struct stat before = lstat_or_die(lock);
    for (int i = 0; i < 100; ++i) {
        wl::atomic_write_content_with_lock(target, "gem 'x'\n");
        wl::FileLock l(target, opts(std::nullopt));
    }
    EXPECT_TRUE(same_file(before, lstat_or_die(lock)));
    EXPECT_EQ(read_file(lock), "LOCKED DEPS\n");
    EXPECT_EQ(read_file(target), "gem 'x'\n");
    EXPECT_EQ(wlf_test::list_names(dir.path()), (Names{"Gemfile", "Gemfile.lock"}));
}

// A lock file we created that another program writes into while we hold
// it (Bundler writes Gemfile.lock in place, without locking) holds its
// data: the release leaves it, with that content, for each file backend;
// written in place to an empty length (a truncating open), too.
TEST(LockOwnership, OurLockFileWrittenMeanwhileIsLeftWithItsContent) {
    for (auto backend : {wl::LockBackend::flock, wl::LockBackend::dotlock}) {
        SCOPED_TRACE(backend == wl::LockBackend::flock ? "flock" : "dotlock");
        TempDir dir;
        fs::path target = dir / "Gemfile", lock = lock_of(target);
        {
            wl::FileLock l(target, opts(std::nullopt, backend));
            // A plain program's O_TRUNC write, not through the library.
            int fd = ::open(lock.c_str(), O_WRONLY | O_TRUNC);
            ASSERT_GE(fd, 0) << strerror(errno);
            ASSERT_EQ(::write(fd, "GEM\n", 4), 4);
            ASSERT_EQ(::close(fd), 0);
        }
        EXPECT_EQ(read_file(lock), "GEM\n");
        EXPECT_EQ(wlf_test::list_names(dir.path()), (Names{"Gemfile.lock"}));
    }
    TempDir dir;
    fs::path target = dir / "f", lock = lock_of(target);
    {
        wl::FileLock l(target, opts(std::nullopt));
        struct timespec past[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
        ASSERT_EQ(::utimensat(AT_FDCWD, lock.c_str(), past, 0), 0);  // as a write would move it
    }
    EXPECT_TRUE(fs::exists(lock)) << "an empty lock file written since was removed";
}

// Each thing that is not a lock file is refused at once with LockFailed
// (ENOLCK), naming the lock file and what it is, not followed, not waited
// on even with a timeout, and left exactly as it was.
TEST(LockOwnership, NonLockFilesAreRefusedNamedAndUnchanged) {
    for (const Intruder &in : intruders()) {
        for (auto backend : {wl::LockBackend::flock, wl::LockBackend::dotlock}) {
            if (backend == wl::LockBackend::dotlock && !in.dotlock_refuses) continue;
            SCOPED_TRACE(std::string(in.what) + (backend == wl::LockBackend::dotlock ? " (dotlock)" : " (flock)"));
            TempDir dir;
            fs::path target = dir / "t", lock = lock_of(target);
            if (!in.make(lock, dir.path())) {
                if (errno == EPERM && std::string(in.what) == "is a device") continue;  // mknod needs root
                ADD_FAILURE() << "cannot make it: " << std::strerror(errno);
                continue;
            }
            const struct stat before = lstat_or_die(lock);
            const std::string want = "lock file '" + lock.string() + "' " + in.what;
            auto start = Clock::now();
            try {
                wl::FileLock l(target, opts(1.0, backend));
                ADD_FAILURE() << "locked it";
            } catch (const wl::LockFailed &e) {
                EXPECT_EQ(e.code().value(), ENOLCK);
                EXPECT_EQ(e.path(), lock.string());
                EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
            } catch (const std::exception &e) {
                ADD_FAILURE() << e.what();
            }
            EXPECT_LT(seconds_since(start), 0.5);

            // The C API, through a replacement of the target.
            wlf_write_options wo;
            wlf_write_options_init(&wo);
            wo.lock.backend = static_cast<int>(backend);
            wo.lock.has_timeout = 1;
            wo.lock.timeout = 1;
            wlf_error err{};
            start = Clock::now();
            EXPECT_EQ(wlf_write_content(target.c_str(), "x", 1, &wo, &err), ENOLCK);
            EXPECT_LT(seconds_since(start), 0.5);
            EXPECT_STREQ(err.path, lock.c_str());
            char text[WLF_PATH_MAX + 256];
            EXPECT_NE(std::string(wlf_error_format(&err, text, sizeof text)).find(want), std::string::npos) << text;

            EXPECT_FALSE(fs::exists(target));
            EXPECT_TRUE(same_file(before, lstat_or_die(lock)));
            if (fs::exists(dir / "victim")) {
                EXPECT_EQ(read_file(dir / "victim"), "victim's\n");
            }
            if (fs::exists(dir / "precious")) {
                EXPECT_EQ(read_file(dir / "precious"), "precious\n");
            }
        }
    }
}

// A holder killed with -9 leaves its lock file (empty, sticky): the next
// holder recognises it as the library's own and removes it at its release.
// An empty file without the marker is somebody else's and stays.
TEST(LockOwnership, StaleLockFileOfKilledHolderIsRemovedButForeignEmptyOneIsNot) {
    TempDir dir;
    fs::path target = dir / "f", lock = lock_of(target);
    Pipe held;
    Child victim([&] {
        wl::FileLock l(target);
        held.put('H');
        for (;;) ::pause();
        return 0;
    });
    held.close_write();
    ASSERT_EQ(get_byte(held.read_fd()), 'H');
    ASSERT_EQ(::kill(victim.pid(), SIGKILL), 0);
    victim.wait();
    ASSERT_TRUE(fs::exists(lock)) << "nothing left to clean up";
    ino_t stale = lstat_or_die(lock).st_ino;
    {
        wl::FileLock l(target, opts(0.0));
        EXPECT_EQ(lstat_or_die(lock).st_ino, stale) << "the stale file is the lock";
    }
    EXPECT_FALSE(fs::exists(lock));

    write_file(lock, "", 0644);
    const struct stat before = lstat_or_die(lock);
    { wl::FileLock l(target, opts(0.0)); }
    wl::atomic_write_content_with_lock(target, "new");
    ASSERT_TRUE(fs::exists(lock));
    EXPECT_TRUE(same_file(before, lstat_or_die(lock)));
}

// The holder's pid in LockTimeout, AlreadyLocked and wlf_lock_holder is the
// kernel's (/proc/locks), also for a holder that wrote nothing anywhere
// (flock(1) on somebody's lock file with content), and the file is unchanged.
TEST(LockOwnership, HolderPidComesFromProcLocks) {
    TempDir dir;
    fs::path target = dir / "Cargo", lock = lock_of(target);
    write_file(lock, "# not a pid\n");
    const struct stat before = lstat_or_die(lock);
    wlf_test::FlockHolder holder(lock);
    ASSERT_TRUE(holder.locked());
    const pid_t holder_pid = holder.pid();
    EXPECT_EQ(wlf_lock_holder(target.c_str()), wlf_test::seen_holder(holder_pid));
    try {
        wl::FileLock l(target, opts(0.2));
        ADD_FAILURE() << "locked a held lock";
    } catch (const wl::LockTimeout &e) {
        EXPECT_EQ(e.holder(), wlf_test::seen_holder(holder_pid));
    }
    try {
        wl::FileLock l(target, opts(0.0));
        ADD_FAILURE() << "locked a held lock";
    } catch (const wl::AlreadyLocked &e) {
        EXPECT_EQ(e.holder(), wlf_test::seen_holder(holder_pid));
    }
    EXPECT_EQ(holder.release(), 0);
    EXPECT_EQ(wlf_lock_holder(target.c_str()), 0);
    EXPECT_TRUE(same_file(before, lstat_or_die(lock)));
    EXPECT_EQ(read_file(lock), "# not a pid\n");
}

// The program's own flock on X.lock, through a description of its own
// descriptors, is told from the library's and from another process's,
// whoever called flock() (flock(1) has exited: /proc/locks names it).
TEST(LockOwnership, HeldByProgramMeansThroughOneOfItsOwnDescriptions) {
    TempDir dir;
    fs::path target = dir / "app.conf", lock = lock_of(target);
    write_file(lock, "");
    // The descriptor whose flock was refused, as the acquisition asks with it.
    const int asking = open(lock.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(asking, 0);
    EXPECT_FALSE(wl::detail::lock_file_held_by_program(asking));  // nobody holds it
    for (int how : {LOCK_EX, LOCK_SH}) {
        int fd = open(lock.c_str(), O_RDONLY | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        // Locked by a child through the inherited description, as flock(1) does.
        pid_t child = fork();
        ASSERT_GE(child, 0);
        if (child == 0) _exit(flock(fd, how) == 0 ? 0 : 1);
        int status = 0;
        ASSERT_EQ(waitpid(child, &status, 0), child);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        // Without /proc (the portable build) it cannot be told: false, as the
        // shim then waits as before.
        EXPECT_EQ(wl::detail::lock_file_held_by_program(asking), WLF_HAVE_PROC != 0) << how;
        // Another file description of ours that holds nothing is not it.
        ASSERT_EQ(flock(fd, LOCK_UN), 0);
        EXPECT_FALSE(wl::detail::lock_file_held_by_program(asking)) << how;
        close(fd);
    }
    {
        wlf_test::FlockHolder other(lock);  // another process's
        ASSERT_TRUE(other.locked());
        EXPECT_FALSE(wl::detail::lock_file_held_by_program(asking));
        EXPECT_EQ(other.release(), 0);
    }
    for (bool nesting : {true, false}) {
        // The library's, in this process: in its registry, or (a lock of its
        // own, as the Python binding takes them) not; the same holds for
        // another thread's lock between its flock() and its registry entry.
        wl::LockOptions o = opts(0.0);
        o.nesting = nesting;
        wl::FileLock ours(target, o);
        EXPECT_FALSE(wl::detail::lock_file_held_by_program(asking)) << nesting;
    }
    close(asking);
}

// The shim's policy (lock_refuse_ancestor_holders) in a child of its own:
// the program's own flock on X.lock is told apart from the library's locks
// whatever other locks the library holds meanwhile, so a program that
// writes Y under the shim and then X under its own lock on X.lock
// (`exec 3>Y; ( flock 9; cmd > X ) 9>>X.lock`) is not kept waiting for
// itself; a lock the library holds on X itself is still waited for.
TEST(LockOwnership, HeldByProgramWhateverElseTheLibraryHolds) {
    TempDir dir;
    fs::path x = dir / "x.conf", y = dir / "y.conf";
    Child policy([&] {
        wl::detail::lock_refuse_ancestor_holders();
        auto acquire = [&](double timeout, wlf_error *err) {
            wlf_lock_options o;
            wlf_lock_options_init(&o);
            o.has_timeout = 1;
            o.timeout = timeout;
            o.backend = WLF_LOCK_FLOCK;
            wlf_lock *l = nullptr;
            int rc = wlf_lock_acquire(x.c_str(), &o, &l, err);
            if (rc == 0) wlf_lock_release(l, nullptr);
            return rc;
        };
        wl::FileLock other(y, opts(0.0));  // the library's lock on another file
        int own = open(lock_of(x).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (own < 0 || flock(own, LOCK_EX) != 0) return 10;
        wlf_error err{};
        // Without /proc (the portable build) it cannot be told: waited for.
        if (!WLF_HAVE_PROC) {
            if (acquire(0.2, &err) != ETIMEDOUT) return 13;
        } else if (acquire(5.0, &err) != EDEADLK || !wl::detail::held_by_program(EDEADLK, err)) {
            return 11;
        }
        close(own);
        // The library's own lock on x, not in its registry: waited for.
        wl::LockOptions o = opts(0.0);
        o.nesting = false;
        wl::FileLock ours(x, o);
        if (acquire(0.2, &err) != ETIMEDOUT) return 12;
        return 0;
    });
    EXPECT_EQ(policy.wait(), 0);
}

// A dotlock is broken as stale only when it is one (liblockfile's
// "<pid>\n" of a dead process): another program's X.lock with other content,
// even one that starts with a dead pid, makes the lock time out naming it.
TEST(LockOwnership, DotlockNeverBreaksAForeignFileAsStale) {
    pid_t dead;
    {
        Child gone([] { return 0; });
        dead = gone.pid();
        ASSERT_EQ(gone.wait(), 0);
    }
    for (const std::string &content : {std::string("LOCKED DEPS\n"), std::to_string(dead) + "\nkept by a tool\n"}) {
        SCOPED_TRACE(content);
        TempDir dir;
        fs::path target = dir / "f", lock = lock_of(target);
        write_file(lock, content);
        const struct stat before = lstat_or_die(lock);
        try {
            wl::FileLock l(target, opts(0.2, wl::LockBackend::dotlock));
            ADD_FAILURE() << "took the lock";
        } catch (const wl::LockTimeout &e) {
            EXPECT_EQ(e.path(), lock.string());
        }
        EXPECT_TRUE(same_file(before, lstat_or_die(lock)));
        EXPECT_EQ(read_file(lock), content);
        EXPECT_EQ(wlf_test::list_names(dir.path()), Names{"f.lock"});
    }
}

// The C API's flock of `target`.
static int flock_of(const fs::path &target, wlf_lock **lock, wlf_error *err) {
    wlf_lock_options opt;
    wlf_lock_options_init(&opt);
    opt.backend = WLF_LOCK_FLOCK;
    return wlf_lock_acquire(target.c_str(), &opt, lock, err);
}

// The commit of a replacement that fsyncs its directory checks, through
// that directory's descriptor, that our lock file is there, and the release
// right after removes it through the same descriptor: a directory swapped
// at the path in between (ours renamed away, another put there holding
// somebody's f.lock) keeps their file, and ours goes from where it is.
// Swapped before the check, the directory opened at the path does not hold
// ours: the check says so, their file stays, and ours goes from where its
// directory went (its name from /proc/self/fd, checked as the path is).
TEST(LockOwnership, ReleaseRemovesOursThroughTheDirectoryTheCommitChecked) {
    for (bool swap_before_check : {false, true}) {
        SCOPED_TRACE(swap_before_check ? "swapped before the check" : "swapped after the check");
        TempDir dir;
        fs::path d = dir / "d", moved = dir / "d.old";
        fs::create_directory(d);
        wlf_lock *lock = nullptr;
        wlf_error err{};
        ASSERT_EQ(flock_of(d / "f", &lock, &err), 0) << err.op;
        auto swap = [&] {
            fs::rename(d, moved);
            fs::create_directory(d);
            write_file(d / "f.lock", "theirs\n");
        };
        if (swap_before_check) swap();
        int dfd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT_GE(dfd, 0);
        EXPECT_EQ(wl::detail::lock_file_still_ours(lock, dfd), !swap_before_check);
        if (!swap_before_check) swap();
        ino_t theirs = lstat_or_die(d / "f.lock").st_ino;
        EXPECT_EQ(wlf_lock_release(lock, &err), 0) << err.op;
        EXPECT_EQ(read_file(d / "f.lock"), "theirs\n");
        EXPECT_EQ(lstat_or_die(d / "f.lock").st_ino, theirs);
        EXPECT_FALSE(fs::exists(moved / "f.lock")) << "ours stays behind";
        ::close(dfd);
    }
}

// The directory descriptor the commit's check went through is the
// program's number as much as ours: a thread that closes it and opens
// another directory gets that number. The release then finds no lock file
// of ours through it and removes nothing there; ours goes from its own
// directory (found again by its name in /proc/self/fd).
TEST(LockOwnership, ReleaseThroughAReusedDirectoryNumberRemovesNothingThere) {
    TempDir dir;
    fs::path a = dir / "a", b = dir / "b";
    fs::create_directory(a);
    fs::create_directory(b);
    write_file(b / "f.lock", "theirs\n");
    ino_t theirs = lstat_or_die(b / "f.lock").st_ino;
    wlf_lock *lock = nullptr;
    wlf_error err{};
    ASSERT_EQ(flock_of(a / "f", &lock, &err), 0) << err.op;
    int dfd = ::open(a.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dfd, 0);
    ASSERT_TRUE(wl::detail::lock_file_still_ours(lock, dfd));
    int other = ::open(b.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(other, 0);
    ASSERT_EQ(::dup2(other, dfd), dfd);  // the number names b now
    ::close(other);
    EXPECT_EQ(wlf_lock_release(lock, &err), 0) << err.op;
    EXPECT_EQ(read_file(b / "f.lock"), "theirs\n");
    EXPECT_EQ(lstat_or_die(b / "f.lock").st_ino, theirs);
    EXPECT_FALSE(fs::exists(a / "f.lock")) << "ours stays behind";
    ::close(dfd);
}

// The directory of a held lock is renamed (`mv d d2` while a replacement of
// d/f is pending): the release finds nothing at the path and removes ours
// from where it went, where d2/f.lock stayed for good (git and others take
// an X.lock for a lock held). One that was written meanwhile is somebody's
// data and stays.
TEST(LockOwnership, ReleaseRemovesOursFromWhereItsDirectoryWent) {
    for (bool written : {false, true}) {
        SCOPED_TRACE(written ? "written meanwhile" : "as we left it");
        TempDir dir;
        fs::path d = dir / "d", moved = dir / "d2";
        fs::create_directory(d);
        wlf_lock *lock = nullptr;
        wlf_error err{};
        ASSERT_EQ(flock_of(d / "f", &lock, &err), 0) << err.op;
        fs::rename(d, moved);
        if (written) write_file(moved / "f.lock", "theirs now\n");
        EXPECT_EQ(wlf_lock_release(lock, &err), 0) << err.op;
        EXPECT_FALSE(fs::exists(d)) << "nothing made at the old path";
        if (written)
            EXPECT_EQ(read_file(moved / "f.lock"), "theirs now\n");
        else
            EXPECT_EQ(wlf_test::list_names(moved), Names{}) << "ours stays behind";
    }
}
