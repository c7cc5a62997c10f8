// Atomic replacement (docs/design.md, "One replacement"), observed on the file system: content,
// inode numbers, metadata, what is left in the directory, and the errors.
//
// This binary has its own main(): as root it first enters a private mount
// namespace, so the tmpfs, bind and loop mounts the tests make under their
// scratch directories are invisible outside and vanish with the process.
#include <gtest/gtest.h>
#include <wrap_lockfile/wrap_lockfile.h>
#include <wrap_lockfile/wrap_lockfile.hpp>

#include "test_support.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <pthread.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
namespace wl = wrap_lockfile;
using wlf_test::FlockHolder;
using wlf_test::CwdGuard;
using wlf_test::Child;
using wlf_test::get_byte;
using wlf_test::list_names;
using wlf_test::lstat_or_die;
using wlf_test::Pipe;
using wlf_test::read_file;
using wlf_test::run_as_nobody;
using wlf_test::SharedDir;
using wlf_test::TempDir;
using wlf_test::write_file;
using Names = std::vector<std::string>;

namespace {

// Default write options with the lock on (1) or off (0).
wlf_write_options options_with_lock(int use_lock) {
    wlf_write_options opt;
    wlf_write_options_init(&opt);
    opt.use_lock = use_lock;
    return opt;
}

bool g_private_mounts = false;
int g_unshare_error = 0;

#define REQUIRE_ROOT()                                                   \
    do {                                                                 \
        if (geteuid() != 0) GTEST_SKIP() << "needs root (chown/mounts)"; \
    } while (0)

#define REQUIRE_PRIVATE_MOUNTS()                                                                  \
    do {                                                                                          \
        REQUIRE_ROOT();                                                                           \
        if (!g_private_mounts)                                                                    \
            GTEST_SKIP() << "no private mount namespace: " << std::strerror(g_unshare_error);     \
    } while (0)

// Runs fn and returns the errno carried by the exception of type E it throws,
// or 0 when it does not throw. Any other exception escapes and fails the test.
template <class E, class Fn>
int code_of(Fn &&fn) {
    try {
        fn();
    } catch (const E &e) {
        return e.code().value();
    }
    return 0;
}

// Deterministic content that differs at every position for different seeds.
std::string pattern(std::size_t size, unsigned seed) {
    std::string s(size, '\0');
    uint32_t x = seed * 2654435761u + 1;
    for (auto &c : s) {
        x = x * 1103515245u + 12345u;
        c = static_cast<char>('a' + (x >> 16) % 26);
    }
    return s;
}

int do_mount(const char *source, const fs::path &target, const char *type, unsigned long flags,
             const char *data = nullptr) {
    return ::mount(source, target.c_str(), type, flags, data) == 0 ? 0 : errno;
}

// Detaches a mount at scope exit.
class MountGuard {
public:
    explicit MountGuard(fs::path where) : where_(std::move(where)) {}
    MountGuard(const MountGuard &) = delete;
    MountGuard &operator=(const MountGuard &) = delete;
    ~MountGuard() { ::umount2(where_.c_str(), MNT_DETACH); }

private:
    fs::path where_;
};

// Sets the umask for one scope.
class UmaskGuard {
public:
    explicit UmaskGuard(mode_t m) : old_(::umask(m)) {}
    ~UmaskGuard() { ::umask(old_); }

private:
    mode_t old_;
};

std::string read_fd_all(int fd) {
    std::string out;
    char buf[65536];
    off_t off = 0;
    for (;;) {
        ssize_t n = ::pread(fd, buf, sizeof buf, off);
        if (n <= 0) return out;
        out.append(buf, static_cast<std::size_t>(n));
        off += n;
    }
}

std::string xattr_of(const fs::path &p, const char *name) {
    ssize_t n = ::lgetxattr(p.c_str(), name, nullptr, 0);
    if (n < 0) return "<" + std::string(std::strerror(errno)) + ">";
    std::string v(static_cast<std::size_t>(n), '\0');
    n = ::lgetxattr(p.c_str(), name, v.data(), v.size());
    v.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
    return v;
}

std::string readlink_of(const fs::path &p) { return fs::read_symlink(p).string(); }

// open(O_TMPFILE) fails like on a file system without it, in the calling
// thread only; other threads are unaffected.
int deny_o_tmpfile_in_this_thread() {
    return wlf_test::fail_syscall_in_this_thread(__NR_openat, EOPNOTSUPP, 2, 020000000 /* __O_TMPFILE bit */);
}

// FIEMAP flags of the first extent of fd (after syncing), or -1.
long first_extent_flags(int fd) {
    // fiemap ends in a flexible array: room for the header plus a few extents.
    alignas(fiemap) unsigned char raw[sizeof(fiemap) + 8 * sizeof(fiemap_extent)] = {};
    auto *map = reinterpret_cast<fiemap *>(raw);
    map->fm_length = FIEMAP_MAX_OFFSET;
    map->fm_flags = FIEMAP_FLAG_SYNC;
    map->fm_extent_count = 8;
    if (::ioctl(fd, FS_IOC_FIEMAP, map) != 0 || map->fm_mapped_extents == 0) return -1;
    return static_cast<long>(map->fm_extents[0].fe_flags);
}

// How many descriptors of this process refer to directory `dir` (fstat of
// each entry of /proc/self/fd: a directory with dir's st_dev and st_ino).
int directory_fds_of(const fs::path &dir) {
    struct stat want;
    if (::stat(dir.c_str(), &want) != 0) throw std::runtime_error("stat " + dir.string());
    int count = 0;
    for (const auto &e : fs::directory_iterator("/proc/self/fd")) {
        int fd = std::atoi(e.path().filename().c_str());
        struct stat st;
        if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_dev == want.st_dev && st.st_ino == want.st_ino)
            ++count;
    }
    return count;
}

// True if somebody holds an exclusive flock on `lock_file` right now.
bool flock_is_held(const fs::path &lock_file) {
    int fd = ::open(lock_file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::close(fd);
    return held;
}

// ---- helpers for access checks, inode attributes and watched directories ----

constexpr uid_t kNobody = 65534;  // also how an unmapped owner shows in a user namespace
// An ordinary uid without a passwd entry: unlike 65534, its files take the
// owner shortcut of the access check (owner bits, no faccessat).
constexpr uid_t kPlainUser = 4321;

// True if others may search every directory from / down to `dir`.
bool searchable_by_others(const fs::path &dir) {
    fs::path p;
    for (const auto &part : dir) {
        p /= part;
        struct stat st;
        if (::stat(p.c_str(), &st) != 0 || !(st.st_mode & S_IXOTH)) return false;
    }
    return true;
}

// Runs body in a forked child (wlf_test::Child) after dropping to uid and gid
// `id`; the ints it returns come back through a pipe. Nothing if the child
// could not switch (status 77 in *status) or died.
template <std::size_t N>
std::optional<std::array<int, N>> run_as_user(uid_t id, const std::function<std::array<int, N>()> &body,
                                              int *status = nullptr) {
    Pipe report;
    Child child([&] {
        report.close_read();
        if (::setgroups(0, nullptr) != 0 || ::setresgid(id, id, id) != 0 || ::setresuid(id, id, id) != 0) return 77;
        std::array<int, N> values = body();
        return ::write(report.write_fd(), values.data(), sizeof values) == static_cast<ssize_t>(sizeof values) ? 0 : 1;
    });
    report.close_write();
    std::array<int, N> values{};
    auto *bytes = reinterpret_cast<char *>(values.data());
    std::size_t got = 0;
    while (got < sizeof values) {
        int c = get_byte(report.read_fd());
        if (c < 0) break;
        bytes[got++] = static_cast<char>(c);
    }
    int st = child.wait();
    if (status) *status = st;
    if (st != 0 || got != sizeof values) return std::nullopt;
    return values;
}

// One replacement through the C API with default options:
// {wlf_open's result, wlf_commit's result (-1: not reached), commit kind}.
std::array<int, 3> try_replace(const fs::path &p, int flags, const std::string &content) {
    wlf_file *f = nullptr;
    int open_rc = wlf_open(p.c_str(), flags, 0666, nullptr, &f, nullptr);
    if (open_rc != 0) return {open_rc, -1, -1};
    if (::write(wlf_file_fd(f), content.data(), content.size()) != static_cast<ssize_t>(content.size()))
        wlf_file_poison(f, errno ? errno : EIO);
    int kind = -1;
    int commit_rc = wlf_commit(f, &kind, nullptr);
    return {0, commit_rc, kind};
}

// Sets or clears an inode flag (FS_IMMUTABLE_FL, FS_APPEND_FL) as chattr
// +i/+a does. 0 or errno.
int set_inode_flag(const fs::path &p, int flag, bool on) {
    int fd = ::open(p.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno;
    int flags = 0;
    int rc = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 ? 0 : errno;
    if (rc == 0) {
        flags = on ? (flags | flag) : (flags & ~flag);
        rc = ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0 ? 0 : errno;
    }
    ::close(fd);
    return rc;
}

// An inode flag set for one scope (cleared again at its end, also when an
// assertion returns early: a TempDir with an immutable file in it could not
// be removed). error() is why setting it failed, or 0.
class InodeFlag {
public:
    InodeFlag(fs::path p, int flag) : path_(std::move(p)), flag_(flag), error_(set_inode_flag(path_, flag_, true)) {}
    ~InodeFlag() {
        if (error_ == 0) set_inode_flag(path_, flag_, false);
    }
    InodeFlag(const InodeFlag &) = delete;
    InodeFlag &operator=(const InodeFlag &) = delete;
    int error() const { return error_; }
    // The file system has no such flags (chattr reports "Operation not supported").
    bool unsupported() const { return error_ == EOPNOTSUPP || error_ == ENOTTY || error_ == EINVAL; }

private:
    fs::path path_;
    int flag_;
    int error_;
};

// statx attribute `attr` of p: 1 set, 0 clear, -1 not reported by this
// kernel or file system.
int statx_attribute(const fs::path &p, uint64_t attr) {
    struct statx sx;
    if (::statx(AT_FDCWD, p.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) != 0) return -1;
    if (!(sx.stx_attributes_mask & attr)) return -1;
    return (sx.stx_attributes & attr) ? 1 : 0;
}

// Names created in (or moved into) a directory while it is watched: sees a
// file that comes and goes (a probe's lock file), which a listing afterwards
// cannot. fsnotify queues the event before the creating call returns.
class CreateWatch {
public:
    explicit CreateWatch(const fs::path &dir) : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {
        if (fd_ < 0 || ::inotify_add_watch(fd_, dir.c_str(), IN_CREATE | IN_MOVED_TO) < 0)
            throw std::system_error(errno, std::generic_category(), "inotify " + dir.string());
    }
    ~CreateWatch() { ::close(fd_); }
    CreateWatch(const CreateWatch &) = delete;
    CreateWatch &operator=(const CreateWatch &) = delete;
    // The names seen since the last call; "<overflow>" if events were lost.
    Names created() {
        Names names;
        alignas(inotify_event) char buf[16384];
        for (;;) {
            ssize_t n = ::read(fd_, buf, sizeof buf);
            if (n <= 0) return names;
            for (char *p = buf; p < buf + n;) {
                auto *ev = reinterpret_cast<inotify_event *>(p);
                if (ev->mask & IN_Q_OVERFLOW) names.push_back("<overflow>");
                if (ev->len > 0) names.emplace_back(ev->name);
                p += sizeof(inotify_event) + ev->len;
            }
        }
    }

private:
    int fd_;
};

bool contains(const Names &names, const std::string &name) {
    return std::find(names.begin(), names.end(), name) != names.end();
}


}  // namespace

// ---- modes ------------------------------------------------------------------

TEST(AtomicWriteModes, WriteReplacesWholeContent) {
    TempDir dir;
    for (const char *mode : {"w", "wb"}) {
        write_file(dir / "f", "old content that is longer");
        auto f = wl::atomic_write(dir / "f", mode);
        f.write("new");
        EXPECT_EQ(f.commit(), wl::CommitKind::rename) << mode;
        EXPECT_EQ(read_file(dir / "f"), "new") << mode;
        EXPECT_EQ(list_names(dir.path()), Names{"f"}) << mode;
    }
}

TEST(AtomicWriteModes, AppendAddsToOldContent) {
    TempDir dir;
    for (const char *mode : {"a", "ab"}) {
        write_file(dir / "f", "old\n");
        auto f = wl::atomic_write(dir / "f", mode);
        f.write("one\n");
        f.seek(0);  // O_APPEND: the position does not matter for writes
        f.write("two\n");
        EXPECT_EQ(f.tell(), 12) << mode;
        f.commit();
        EXPECT_EQ(read_file(dir / "f"), "old\none\ntwo\n") << mode;
        EXPECT_EQ(list_names(dir.path()), Names{"f"}) << mode;
    }
}

TEST(AtomicWriteModes, AppendCreatesMissingFile) {
    TempDir dir;
    auto f = wl::atomic_write(dir / "f", "a");
    f.write("first");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "first");
}

TEST(AtomicWriteModes, ReadPlusReadsOldContentAndOverwritesFromStart) {
    TempDir dir;
    write_file(dir / "f", "0123456789");
    auto f = wl::atomic_write(dir / "f", "r+");
    EXPECT_EQ(f.tell(), 0);
    EXPECT_EQ(f.read_all(), "0123456789");
    f.seek(0);
    f.write("AB");
    EXPECT_EQ(f.tell(), 2);
    EXPECT_EQ(f.read(3), "234");
    f.seek(-2, SEEK_END);
    f.write("YZ");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "AB234567YZ");
}

TEST(AtomicWriteModes, ReadPlusWithoutSeekWritesAtPositionZero) {
    TempDir dir;
    write_file(dir / "f", "abcdef");
    auto f = wl::atomic_write(dir / "f", "rb+");
    f.write("XY");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "XYcdef");
}

TEST(AtomicWriteModes, ReadPlusOnMissingFileIsEnoent) {
    TempDir dir;
    EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::atomic_write(dir / "missing", "r+"); }), ENOENT);
    EXPECT_EQ(list_names(dir.path()), Names{});
}

TEST(AtomicWriteModes, WritePlusStartsEmptyAndReadsBack) {
    TempDir dir;
    write_file(dir / "f", "old");
    auto f = wl::atomic_write(dir / "f", "w+");
    EXPECT_EQ(f.read_all(), "");
    f.write("hello world");
    f.seek(6);
    EXPECT_EQ(f.read_all(), "world");
    f.seek(0);
    f.write("J");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "Jello world");
}

TEST(AtomicWriteModes, AppendPlusReadsOldAndAppends) {
    TempDir dir;
    write_file(dir / "f", "old;");
    auto f = wl::atomic_write(dir / "f", "a+");
    f.write("new;");
    f.seek(0);
    EXPECT_EQ(f.read_all(), "old;new;");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "old;new;");
}

TEST(AtomicWriteModes, ExclusiveCreatesMissingFile) {
    TempDir dir;
    auto f = wl::atomic_write(dir / "f", "x");
    f.write("created");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "created");
}

TEST(AtomicWriteModes, ExclusiveOnExistingFileIsEexist) {
    TempDir dir;
    write_file(dir / "f", "keep");
    EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::atomic_write(dir / "f", "x"); }), EEXIST);
    EXPECT_EQ(read_file(dir / "f"), "keep");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteModes, InvalidModeThrowsInvalidArgument) {
    TempDir dir;
    write_file(dir / "f", "keep");
    for (const char *mode : {"r", "rw", "q", "", "wa"})
        EXPECT_THROW(wl::atomic_write(dir / "f", mode), std::invalid_argument) << mode;
    EXPECT_EQ(read_file(dir / "f"), "keep");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteModes, StreamIsFlushedInOrderWithWritesAndTell) {
    TempDir dir;
    auto f = wl::atomic_write(dir / "f", "w+");
    f.stream() << "n=" << 42 << ';';
    EXPECT_EQ(f.tell(), 5);  // buffered bytes count
    f.write("raw;");
    f.stream() << "tail";
    f.seek(0);
    EXPECT_EQ(f.read_all(), "n=42;raw;tail");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "n=42;raw;tail");
}

// ---- replacement --------------------------------------------------------------

TEST(AtomicWriteReplace, NewInodeWhileOpenReaderKeepsOldContent) {
    TempDir dir;
    write_file(dir / "f", "old content");
    ino_t before = lstat_or_die(dir / "f").st_ino;
    int reader = ::open((dir / "f").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(reader, 0);
    wl::atomic_write_content_with_lock(dir / "f", "new");
    EXPECT_NE(lstat_or_die(dir / "f").st_ino, before);
    EXPECT_EQ(read_fd_all(reader), "old content");
    ::close(reader);
    EXPECT_EQ(read_file(dir / "f"), "new");
}

TEST(AtomicWriteReplace, PendingTempIsInvisibleAndTargetUnchanged) {
    TempDir dir;
    write_file(dir / "f", "old");
    auto f = wl::atomic_write(dir / "f", "w");
    f.write("new");
    // O_TMPFILE: nothing but the target and its lock file has a name yet.
    EXPECT_EQ(list_names(dir.path()), (Names{"f", "f.lock"}));
    EXPECT_EQ(read_file(dir / "f"), "old");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "new");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteReplace, BytesOverloadKeepsEmbeddedNuls) {
    TempDir dir;
    std::string data("a\0b\0\xff", 5);
    auto bytes = std::as_bytes(std::span(data.data(), data.size()));
    EXPECT_EQ(wl::atomic_write_content_with_lock(dir / "f", bytes), wl::CommitKind::rename);
    EXPECT_EQ(read_file(dir / "f"), data);
}

TEST(AtomicWriteReplace, NoLockVariantLeavesNoLockFile) {
    TempDir dir;
    write_file(dir / "f", "old");
    auto f = wl::atomic_write_no_lock(dir / "f");
    f.write("new");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "new");
}

// ---- commit only when finished ----------------------------------------------

TEST(AtomicWriteCommit, BodyThatThrowsLeavesTargetUnchanged) {
    TempDir dir;
    write_file(dir / "f", "old");
    ino_t before = lstat_or_die(dir / "f").st_ino;
    EXPECT_THROW(wl::with_atomic_write(dir / "f", "w",
                                       [](wl::AtomicFile &f) {
                                           f.write("half");
                                           throw std::runtime_error("body failed");
                                       }),
                 std::runtime_error);
    EXPECT_EQ(read_file(dir / "f"), "old");
    EXPECT_EQ(lstat_or_die(dir / "f").st_ino, before);
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteCommit, BodyThatReturnsCommits) {
    TempDir dir;
    write_file(dir / "f", "old");
    wl::with_atomic_write(dir / "f", "w", [](wl::AtomicFile &f) { f.stream() << "new"; });
    EXPECT_EQ(read_file(dir / "f"), "new");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteCommit, DestroyedWithoutCommitDiscards) {
    TempDir dir;
    write_file(dir / "f", "old");
    {
        auto f = wl::atomic_write(dir / "f", "w");
        f.write("new");
        f.stream() << "more";
    }
    EXPECT_EQ(read_file(dir / "f"), "old");
    {
        auto f = wl::atomic_write(dir / "new", "w");
        f.write("never");
    }
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteCommit, DiscardDropsContentAndEndsThePendingFile) {
    TempDir dir;
    write_file(dir / "f", "old");
    auto f = wl::atomic_write(dir / "f", "a");
    f.write("new");
    f.discard();
    EXPECT_FALSE(f.pending());
    EXPECT_THROW(f.commit(), std::logic_error);
    EXPECT_EQ(read_file(dir / "f"), "old");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

// ---- symlinks -----------------------------------------------------------------

TEST(AtomicWriteSymlink, RelativeLinkStaysLink) {
    TempDir dir;
    write_file(dir / "real", "old");
    fs::create_symlink("real", dir / "link");
    auto f = wl::atomic_write(dir / "link", "a");
    EXPECT_EQ(f.target(), dir / "real");
    f.write("+new");
    f.commit();
    EXPECT_TRUE(fs::is_symlink(dir / "link"));
    EXPECT_EQ(readlink_of(dir / "link"), "real");
    EXPECT_EQ(read_file(dir / "real"), "old+new");
    EXPECT_EQ(list_names(dir.path()), (Names{"link", "real"}));
}

TEST(AtomicWriteSymlink, AbsoluteLinkStaysLink) {
    TempDir dir;
    fs::create_directory(dir / "a");
    fs::create_directory(dir / "b");
    write_file(dir / "b" / "real", "old");
    fs::create_symlink(dir / "b" / "real", dir / "a" / "link");
    wl::atomic_write_content_with_lock(dir / "a" / "link", "new");
    EXPECT_EQ(readlink_of(dir / "a" / "link"), (dir / "b" / "real").string());
    EXPECT_EQ(read_file(dir / "b" / "real"), "new");
    EXPECT_EQ(list_names(dir / "a"), Names{"link"});
    EXPECT_EQ(list_names(dir / "b"), Names{"real"});
}

TEST(AtomicWriteSymlink, ChainAcrossDirectoriesResolvesEachLinkFromItsOwnDirectory) {
    TempDir dir;
    for (const char *d : {"d1", "d2", "d3"}) fs::create_directory(dir / d);
    write_file(dir / "d3" / "file", "old");
    // Relative to the working directory these would name nothing.
    fs::create_symlink("../d2/link2", dir / "d1" / "link1");
    fs::create_symlink("../d3/file", dir / "d2" / "link2");
    ino_t before = lstat_or_die(dir / "d3" / "file").st_ino;
    wl::atomic_write_content_with_lock(dir / "d1" / "link1", "new");
    EXPECT_EQ(read_file(dir / "d3" / "file"), "new");
    EXPECT_NE(lstat_or_die(dir / "d3" / "file").st_ino, before);
    EXPECT_EQ(readlink_of(dir / "d1" / "link1"), "../d2/link2");
    EXPECT_EQ(readlink_of(dir / "d2" / "link2"), "../d3/file");
    EXPECT_EQ(list_names(dir / "d1"), Names{"link1"});
    EXPECT_EQ(list_names(dir / "d2"), Names{"link2"});
    EXPECT_EQ(list_names(dir / "d3"), Names{"file"});
}

TEST(AtomicWriteSymlink, DanglingLinkCreatesTargetAndStaysLink) {
    TempDir dir;
    fs::create_directory(dir / "sub");
    fs::create_symlink("sub/future", dir / "link");
    wl::atomic_write_content_with_lock(dir / "link", "born");
    EXPECT_TRUE(fs::is_symlink(dir / "link"));
    EXPECT_EQ(readlink_of(dir / "link"), "sub/future");
    EXPECT_TRUE(S_ISREG(lstat_or_die(dir / "sub" / "future").st_mode));
    EXPECT_EQ(read_file(dir / "sub" / "future"), "born");
    EXPECT_EQ(list_names(dir / "sub"), Names{"future"});
    EXPECT_EQ(list_names(dir.path()), (Names{"link", "sub"}));
}

// The link lives on a read-only tmpfs and the target on another: a temp or a
// lock next to the link would fail (EROFS), a temp there renamed over the
// target would fail (EXDEV).
TEST(AtomicWriteSymlink, TempAndLockLiveInFinalTargetsDirectory) {
    REQUIRE_PRIVATE_MOUNTS();
    TempDir dir;
    fs::create_directory(dir / "links");
    fs::create_directory(dir / "data");
    ASSERT_EQ(do_mount("tmpfs", dir / "links", "tmpfs", 0, "size=1m"), 0);
    MountGuard links(dir / "links");
    ASSERT_EQ(do_mount("tmpfs", dir / "data", "tmpfs", 0, "size=1m"), 0);
    MountGuard data(dir / "data");
    write_file(dir / "data" / "file", "old");
    fs::create_symlink("../data/file", dir / "links" / "link");
    ASSERT_EQ(do_mount(nullptr, dir / "links", nullptr, MS_REMOUNT | MS_RDONLY, "size=1m"), 0);

    for (const char *mode : {"w", "a"}) {
        auto f = wl::atomic_write(dir / "links" / "link", mode);
        f.write("new");
        EXPECT_EQ(f.commit(), wl::CommitKind::rename) << mode;
    }
    EXPECT_EQ(read_file(dir / "data" / "file"), "newnew");
    EXPECT_EQ(list_names(dir / "links"), Names{"link"});
    EXPECT_EQ(list_names(dir / "data"), Names{"file"});
}

TEST(AtomicWriteSymlink, NoFollowOnLinkIsEloopViaCApi) {
    TempDir dir;
    write_file(dir / "real", "old");
    fs::create_symlink("real", dir / "link");
    wlf_file *f = nullptr;
    wlf_error err{};
    int rc = wlf_open((dir / "link").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0666, nullptr, &f, &err);
    EXPECT_EQ(rc, ELOOP);
    EXPECT_EQ(err.code, ELOOP);
    EXPECT_EQ(f, nullptr);
    EXPECT_EQ(read_file(dir / "real"), "old");
    EXPECT_EQ(list_names(dir.path()), (Names{"link", "real"}));
}

TEST(AtomicWriteSymlink, LoopIsEloop) {
    TempDir dir;
    fs::create_symlink("b", dir / "a");
    fs::create_symlink("a", dir / "b");
    EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::atomic_write_content_with_lock(dir / "a", "x"); }), ELOOP);
    EXPECT_EQ(list_names(dir.path()), (Names{"a", "b"}));
}

// The lock-first attempt locks "<path>.lock" once, without waiting: a busy
// lock next to a symlink (flock(1) on the link's name, say) must not make a
// write through the link wait for it, and the lock file stays as its holder
// made it. Only "<final target>.lock" is waited for.
TEST(AtomicWriteSymlink, BusyLockNextToLinkIsNotWaitedFor) {
    TempDir dir;
    write_file(dir / "real", "old");
    fs::create_symlink("real", dir / "link");
    FlockHolder holder(dir / "link.lock");
    ASSERT_TRUE(holder.locked());
    ASSERT_TRUE(flock_is_held(dir / "link.lock"));
    ino_t holders_file = lstat_or_die(dir / "link.lock").st_ino;
    wl::WriteOptions opt;
    opt.lock.timeout = 0.5;
    EXPECT_NO_THROW(wl::atomic_write_content_with_lock(dir / "link", "new", opt));
    EXPECT_EQ(read_file(dir / "real"), "new");
    // Without a timeout, a writer that waited on the link's lock would wait
    // until the holder lets go: it must finish while the lock is still held.
    // (The 20 s bound on the pipe only keeps a broken build from hanging.)
    Pipe done;
    Child writer([&] {
        done.close_read();
        wl::atomic_write_content_with_lock(dir / "link", "newer");
        return done.put('D') ? 0 : 1;
    });
    done.close_write();
    int got = get_byte(done.read_fd());
    if (got != 'D') ::kill(writer.pid(), SIGKILL);
    EXPECT_EQ(got, 'D') << "the write through the link waited for the link's lock";
    EXPECT_EQ(writer.wait(), 0);
    EXPECT_TRUE(flock_is_held(dir / "link.lock"));
    EXPECT_EQ(holder.release(), 0);
    EXPECT_EQ(read_file(dir / "real"), "newer");
    EXPECT_TRUE(fs::is_symlink(dir / "link"));
    EXPECT_EQ(readlink_of(dir / "link"), "real");
    EXPECT_EQ(lstat_or_die(dir / "link.lock").st_ino, holders_file);
    EXPECT_EQ(list_names(dir.path()), (Names{"link", "link.lock", "real"}));
}

// The final target's lock is the one that serializes: held by another
// process, a write through the link times out and changes nothing.
TEST(AtomicWriteSymlink, BusyFinalTargetLockTimesOutAndKeepsTarget) {
    TempDir dir;
    std::string old = pattern(3000, 7);
    write_file(dir / "real", old);
    fs::create_symlink("real", dir / "link");
    ino_t before = lstat_or_die(dir / "real").st_ino;
    FlockHolder holder(dir / "real.lock");
    ASSERT_TRUE(holder.locked());
    wl::WriteOptions opt;
    opt.lock.timeout = 0.3;
    int code = -1;
    bool timed_out = false;
    auto start = std::chrono::steady_clock::now();
    try {
        wl::atomic_write_content_with_lock(dir / "link", "new", opt);
        code = 0;
    } catch (const wl::LockTimeout &e) {
        timed_out = true;
        code = e.code().value();
    } catch (const wl::Error &e) {
        code = e.code().value();
    }
    double waited = wlf_test::seconds_since(start);
    EXPECT_TRUE(timed_out) << "code " << code;
    EXPECT_EQ(code, ETIMEDOUT);
    EXPECT_GE(waited, 0.25);
    EXPECT_TRUE(flock_is_held(dir / "real.lock"));
    EXPECT_EQ(holder.release(), 0);
    EXPECT_EQ(read_file(dir / "real"), old);
    EXPECT_EQ(lstat_or_die(dir / "real").st_ino, before);
    EXPECT_TRUE(fs::is_symlink(dir / "link"));
    EXPECT_EQ(list_names(dir.path()), (Names{"link", "real", "real.lock"}));
}

// Looking at the link under "<link>.lock" leaves no lock file next to the
// link, also with keep_lock_file (which keeps only the final target's).
TEST(AtomicWriteSymlink, WriteThroughLinkLeavesNoLockFileNextToLink) {
    TempDir dir;
    fs::create_directory(dir / "links");
    fs::create_directory(dir / "data");
    write_file(dir / "data" / "real", "old");
    fs::create_symlink("../data/real", dir / "links" / "link");
    for (bool keep : {false, true}) {
        SCOPED_TRACE(keep ? "keep_lock_file" : "default");
        wl::WriteOptions opt;
        opt.lock.keep_lock_file = keep;
        std::string content = keep ? "kept" : "default";
        EXPECT_EQ(wl::atomic_write_content_with_lock(dir / "links" / "link", content, opt), wl::CommitKind::rename);
        EXPECT_EQ(read_file(dir / "data" / "real"), content);
        EXPECT_TRUE(fs::is_symlink(dir / "links" / "link"));
        EXPECT_EQ(list_names(dir / "links"), Names{"link"});
        EXPECT_EQ(list_names(dir / "data"), keep ? (Names{"real", "real.lock"}) : Names{"real"});
    }
}

// A lock file somebody keeps next to the link (not held right now) is not
// the probe's to remove: it survives a write through the link, same inode.
TEST(AtomicWriteSymlink, UnheldLockFileNextToLinkSurvivesWriteThroughLink) {
    TempDir dir;
    write_file(dir / "real", "old");
    fs::create_symlink("real", dir / "link");
    write_file(dir / "link.lock", "");
    ino_t kept = lstat_or_die(dir / "link.lock").st_ino;
    wl::atomic_write_content_with_lock(dir / "link", "new");
    EXPECT_EQ(read_file(dir / "real"), "new");
    EXPECT_TRUE(fs::is_symlink(dir / "link"));
    ASSERT_TRUE(fs::exists(dir / "link.lock"));
    EXPECT_EQ(lstat_or_die(dir / "link.lock").st_ino, kept);
    EXPECT_EQ(list_names(dir.path()), (Names{"link", "link.lock", "real"}));
}

// The same with content in the lock file (a pid and a note, as a kept lock
// file of another tool may hold): the probe must not open it for locking at
// all, so its bytes and its modification time stay as they were, also when
// the write through the link is retried and when the lock is busy-polled
// with a timeout.
TEST(AtomicWriteSymlink, UnheldLockFileWithContentNextToLinkKeepsItsBytes) {
    TempDir dir;
    write_file(dir / "real", "old");
    fs::create_symlink("real", dir / "link");
    const std::string theirs = "4242\nkept by another tool\n";
    write_file(dir / "link.lock", theirs, 0600);
    struct stat before = lstat_or_die(dir / "link.lock");
    wl::WriteOptions timed;
    timed.lock.timeout = 0.5;
    wl::atomic_write_content_with_lock(dir / "link", "one");
    wl::atomic_write_content_with_lock(dir / "link", "two", timed);
    {
        auto f = wl::atomic_write(dir / "link", "a");
        f.write("+three");
        EXPECT_EQ(f.commit(), wl::CommitKind::rename);
    }
    EXPECT_EQ(read_file(dir / "real"), "two+three");
    EXPECT_TRUE(fs::is_symlink(dir / "link"));
    ASSERT_TRUE(fs::exists(dir / "link.lock"));
    struct stat after = lstat_or_die(dir / "link.lock");
    EXPECT_EQ(after.st_ino, before.st_ino);
    EXPECT_EQ(read_file(dir / "link.lock"), theirs);
    EXPECT_EQ(after.st_size, before.st_size);
    EXPECT_EQ(after.st_mode & 07777, 0600u);
    EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
    EXPECT_EQ(list_names(dir.path()), (Names{"link", "link.lock", "real"}));
}

// ---- lock files of plain targets ----------------------------------------------------

// keep_lock_file: a lock file with content ("12345\n", another tool's) is
// locked through the normal path as it is: nothing is written into it (the
// holder's pid is what /proc/locks shows), and it stays, same inode.
TEST(AtomicWriteLockFile, KeptForeignLockFileIsLockedAsItIs) {
    TempDir dir;
    fs::path t = dir / "t", lock = dir / "t.lock";
    write_file(t, "old");
    write_file(lock, "12345\n");
    const struct stat before = lstat_or_die(lock);
    wl::WriteOptions keep;
    keep.lock.keep_lock_file = true;
    EXPECT_EQ(wl::atomic_write_content_with_lock(t, "new", keep), wl::CommitKind::rename);
    EXPECT_EQ(read_file(t), "new");
    EXPECT_EQ(read_file(lock), "12345\n");
    EXPECT_EQ(list_names(dir.path()), (Names{"t", "t.lock"}));

    // Through the C API: while pending the file is the lock (held by us).
    wlf_write_options opt;
    wlf_write_options_init(&opt);
    opt.lock.keep_lock_file = 1;
    wlf_file *f = nullptr;
    wlf_error err{};
    ASSERT_EQ(wlf_open(t.c_str(), O_WRONLY | O_TRUNC, 0666, &opt, &f, &err), 0) << err.op << " " << err.path;
    EXPECT_TRUE(flock_is_held(lock));
    EXPECT_EQ(wlf_lock_holder(t.c_str()), ::getpid());
    EXPECT_EQ(::write(wlf_file_fd(f), "newer", 5), 5);
    ASSERT_EQ(wlf_commit(f, nullptr, &err), 0) << err.op << " " << err.path;
    EXPECT_EQ(read_file(t), "newer");
    EXPECT_FALSE(flock_is_held(lock));
    const struct stat after = lstat_or_die(lock);
    EXPECT_EQ(after.st_ino, before.st_ino);
    EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
    EXPECT_EQ(read_file(lock), "12345\n");
    EXPECT_EQ(list_names(dir.path()), (Names{"t", "t.lock"}));
}

// Default options and an unheld lock file next to a plain target: the probe
// does not take it (not its own), the normal path locks that very file. One
// with content, or an empty one without the marker, is somebody else's and
// stays; an empty sticky one of ours (an earlier holder killed before its
// release) is removed afterwards.
TEST(AtomicWriteLockFile, UnheldLockFileOfPlainTargetIsLockedAndRemovedOnlyIfOurs) {
    TempDir dir;
    fs::path t = dir / "t", lock = dir / "t.lock";
    write_file(t, "old");
    for (const char *content : {"12345\n", ""}) {
        SCOPED_TRACE(content);
        write_file(lock, content);
        ino_t lock_ino = lstat_or_die(lock).st_ino;
        wlf_file *f = nullptr;
        wlf_error err{};
        ASSERT_EQ(wlf_open(t.c_str(), O_WRONLY | O_TRUNC, 0666, nullptr, &f, &err), 0) << err.op << " " << err.path;
        EXPECT_EQ(wlf_file_kind(f), WLF_COMMIT_RENAME);
        EXPECT_EQ(lstat_or_die(lock).st_ino, lock_ino);
        EXPECT_TRUE(flock_is_held(lock));
        EXPECT_EQ(::write(wlf_file_fd(f), "new", 3), 3);
        ASSERT_EQ(wlf_commit(f, nullptr, &err), 0) << err.op << " " << err.path;
        EXPECT_EQ(read_file(t), "new");
        EXPECT_EQ(read_file(lock), content);
        EXPECT_EQ(lstat_or_die(lock).st_ino, lock_ino);
        EXPECT_EQ(list_names(dir.path()), (Names{"t", "t.lock"}));
        fs::remove(lock);
    }

    // The marker, through the C++ API.
    write_file(lock, "");
    ASSERT_EQ(::chmod(lock.c_str(), 01644), 0);
    EXPECT_EQ(wl::atomic_write_content_with_lock(t, "newer"), wl::CommitKind::rename);
    EXPECT_EQ(read_file(t), "newer");
    EXPECT_EQ(list_names(dir.path()), Names{"t"});
}

// keep_lock_file skips the lock-first probe altogether: a write through a
// link never creates "<link>.lock", not even for a moment (the listing
// afterwards cannot tell; a directory watch can). The final target's lock
// file is created once, and kept.
TEST(AtomicWriteLockFile, KeepLockFileNeverCreatesALockFileNextToTheLink) {
    TempDir dir;
    write_file(dir / "real", "old");
    fs::create_symlink("real", dir / "link");
    wl::WriteOptions keep;
    keep.lock.keep_lock_file = true;
    CreateWatch watch(dir.path());
    EXPECT_EQ(wl::atomic_write_content_with_lock(dir / "link", "new", keep), wl::CommitKind::rename);
    Names created = watch.created();
    EXPECT_FALSE(contains(created, "link.lock")) << "the probe ran with keep_lock_file";
    EXPECT_FALSE(contains(created, "<overflow>"));
    EXPECT_EQ(std::count(created.begin(), created.end(), "real.lock"), 1);
    EXPECT_EQ(read_file(dir / "real"), "new");
    EXPECT_EQ(list_names(dir.path()), (Names{"link", "real", "real.lock"}));
}

// ---- metadata -----------------------------------------------------------------

TEST(AtomicWriteMetadata, ModeIsPreserved) {
    TempDir dir;
    for (mode_t mode : {0640, 0600, 0755, 0444, 02755}) {
        // Set-gid needs group membership, writing a read-only file needs root.
        if ((mode & 02000 || !(mode & 0200)) && geteuid() != 0) continue;
        write_file(dir / "f", "old");
        ASSERT_EQ(::chmod((dir / "f").c_str(), mode), 0);
        ino_t before = lstat_or_die(dir / "f").st_ino;
        wl::atomic_write_content_with_lock(dir / "f", "new");
        struct stat st = lstat_or_die(dir / "f");
        EXPECT_EQ(st.st_mode & 07777, mode) << std::oct << mode;
        EXPECT_NE(st.st_ino, before);
        EXPECT_EQ(read_file(dir / "f"), "new");
        fs::remove(dir / "f");
    }
}

TEST(AtomicWriteMetadata, OwnerAndGroupArePreserved) {
    REQUIRE_ROOT();
    TempDir dir;
    write_file(dir / "f", "old", 02750);
    ASSERT_EQ(::chown((dir / "f").c_str(), 1234, 5678), 0);
    ASSERT_EQ(::chmod((dir / "f").c_str(), 02750), 0);  // chown cleared set-gid
    for (const char *mode : {"w", "a"}) wl::with_atomic_write(dir / "f", mode, [](wl::AtomicFile &f) { f.write("x"); });
    struct stat st = lstat_or_die(dir / "f");
    EXPECT_EQ(st.st_uid, 1234u);
    EXPECT_EQ(st.st_gid, 5678u);
    EXPECT_EQ(st.st_mode & 07777, 02750u);
    EXPECT_EQ(read_file(dir / "f"), "xx");
}

TEST(AtomicWriteMetadata, UserXattrIsPreserved) {
    TempDir dir;
    write_file(dir / "f", "old");
    const char value[] = "some\0value";
    if (::setxattr((dir / "f").c_str(), "user.test", value, sizeof value, 0) != 0)
        GTEST_SKIP() << "user xattrs unsupported here: " << std::strerror(errno);
    wl::atomic_write_content_with_lock(dir / "f", "new");
    EXPECT_EQ(xattr_of(dir / "f", "user.test"), std::string(value, sizeof value));
    EXPECT_EQ(read_file(dir / "f"), "new");
}

TEST(AtomicWriteMetadata, PosixAclIsPreserved) {
    TempDir dir;
    write_file(dir / "f", "old", 0640);
    std::string cmd = "setfacl -m u:1234:rw,g:5678:r " + (dir / "f").string() + " 2>/dev/null";
    if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "setfacl unavailable or ACLs unsupported";
    std::string acl = xattr_of(dir / "f", "system.posix_acl_access");
    ASSERT_FALSE(acl.empty());
    ASSERT_NE(acl[0], '<') << acl;
    mode_t mode = lstat_or_die(dir / "f").st_mode & 07777;
    wl::atomic_write_content_with_lock(dir / "f", "new");
    EXPECT_EQ(xattr_of(dir / "f", "system.posix_acl_access"), acl);
    EXPECT_EQ(lstat_or_die(dir / "f").st_mode & 07777, mode);
    EXPECT_EQ(read_file(dir / "f"), "new");
}

TEST(AtomicWriteMetadata, NewFileModeFollowsUmask) {
    TempDir dir;
    for (mode_t mask : {022, 077, 0, 027}) {
        UmaskGuard guard(mask);
        fs::path p = dir / ("f" + std::to_string(mask));
        wl::atomic_write_content_with_lock(p, "x");
        EXPECT_EQ(lstat_or_die(p).st_mode & 07777, 0666 & ~mask) << std::oct << mask;
    }
}

TEST(AtomicWriteMetadata, CreateModeOptionIsUsedUnderUmask) {
    TempDir dir;
    UmaskGuard guard(027);
    wl::WriteOptions opt;
    opt.create_mode = 0777;
    wl::atomic_write_content_with_lock(dir / "a", "x", opt);
    EXPECT_EQ(lstat_or_die(dir / "a").st_mode & 07777, 0750u);
    opt.create_mode = 0600;
    wl::atomic_write_content_with_lock(dir / "b", "x", opt);
    EXPECT_EQ(lstat_or_die(dir / "b").st_mode & 07777, 0600u);
    // create_mode concerns new files only: an existing file keeps its mode.
    ASSERT_EQ(::chmod((dir / "b").c_str(), 0644), 0);
    wl::atomic_write_content_with_lock(dir / "b", "y", opt);
    EXPECT_EQ(lstat_or_die(dir / "b").st_mode & 07777, 0644u);
}

// ---- durability -----------------------------------------------------------------

TEST(AtomicWriteDurability, NoneAndFullBothPublishTheContent) {
    TempDir dir;
    for (auto d : {wl::Durability::none, wl::Durability::full}) {
        wl::WriteOptions opt;
        opt.durability = d;
        std::string content = pattern(100000, static_cast<unsigned>(d));
        write_file(dir / "f", "old");
        EXPECT_EQ(wl::atomic_write_content_with_lock(dir / "f", content, opt), wl::CommitKind::rename);
        EXPECT_EQ(read_file(dir / "f"), content);
        EXPECT_EQ(list_names(dir.path()), Names{"f"});
    }
}

// An absolute target's directory is reached by path: no descriptor of the
// directory while the replacement is pending, with either durability (full
// opens it only at commit, for fsync(directory)). Existing and new targets; afterwards
// only the target is left. The working directory is a removed directory,
// where nothing can be created: every name must be the target directory's.
TEST(AtomicWriteDurability, AbsolutePathKeepsNoDirectoryDescriptor) {
    TempDir dir, gone;
    ASSERT_TRUE(dir.path().is_absolute());
    ASSERT_EQ(directory_fds_of(dir.path()), 0);
    CwdGuard cwd;
    ASSERT_EQ(::chdir(gone.path().c_str()), 0);
    ASSERT_EQ(::rmdir(gone.path().c_str()), 0);
    for (int durability : {WLF_DURABILITY_NONE, WLF_DURABILITY_FULL}) {
        for (bool existing : {true, false}) {
            SCOPED_TRACE(std::string(durability == WLF_DURABILITY_NONE ? "none" : "full") +
                         (existing ? ", existing target" : ", new target"));
            fs::path target = dir / (existing ? "f" : "n");
            if (existing) write_file(target, "old content");
            wlf_write_options opt;
            wlf_write_options_init(&opt);
            opt.durability = durability;
            wlf_file *f = nullptr;
            wlf_error err{};
            int flags = O_WRONLY | O_CREAT | (existing ? O_TRUNC : O_EXCL);
            ASSERT_EQ(wlf_open(target.c_str(), flags, 0644, &opt, &f, &err), 0) << err.op << " " << err.path;
            EXPECT_EQ(wlf_file_kind(f), WLF_COMMIT_RENAME);
            std::string content = pattern(5000, static_cast<unsigned>(durability * 2 + existing));
            EXPECT_EQ(::write(wlf_file_fd(f), content.data(), content.size()),
                      static_cast<ssize_t>(content.size()));
            EXPECT_EQ(directory_fds_of(dir.path()), 0);
            if (existing) {
                EXPECT_EQ(read_file(target), "old content");
            }
            int kind = -1;
            ASSERT_EQ(wlf_commit(f, &kind, &err), 0) << err.op << " " << err.path;
            EXPECT_EQ(kind, WLF_COMMIT_RENAME);
            EXPECT_EQ(read_file(target), content);
            EXPECT_EQ(list_names(dir.path()), Names{target.filename().string()});
            EXPECT_EQ(directory_fds_of(dir.path()), 0);
            fs::remove(target);
        }
    }
}

// The target's directory is renamed and a new one put at its path while a
// write is pending. The directory is reached by path (full opens it only at
// commit): the commit is refused (ESTALE) rather than landing in a
// directory that was never locked; the old file stays. The lock file
// somebody keeps in the new directory is neither removed nor written.
TEST(AtomicWriteDurability, DirectoryReplacedWhilePendingNeverTakesTheCommit) {
    for (int durability : {WLF_DURABILITY_FULL, WLF_DURABILITY_NONE}) {
        SCOPED_TRACE(durability == WLF_DURABILITY_FULL ? "full" : "none");
        TempDir dir;
        fs::path d = dir / "d", old = dir / "d.old";
        fs::create_directory(d);
        write_file(d / "f", "old");
        wlf_write_options opt;
        wlf_write_options_init(&opt);
        opt.durability = durability;
        wlf_file *f = nullptr;
        wlf_error err{};
        ASSERT_EQ(wlf_open((d / "f").c_str(), O_WRONLY | O_TRUNC, 0666, &opt, &f, &err), 0) << err.op;
        ASSERT_EQ(::write(wlf_file_fd(f), "new", 3), 3);
        fs::rename(d, old);
        fs::create_directory(d);
        write_file(d / "f.lock", "other\n");
        ino_t theirs = lstat_or_die(d / "f.lock").st_ino;
        int rc = wlf_commit(f, nullptr, &err);
        EXPECT_EQ(rc, ESTALE);
        EXPECT_EQ(read_file(old / "f"), "old");
        EXPECT_EQ(list_names(d), Names{"f.lock"});
        EXPECT_EQ(read_file(d / "f.lock"), "other\n");
        EXPECT_EQ(lstat_or_die(d / "f.lock").st_ino, theirs);
        // Ours could not be removed by its (now foreign) path; no temp either way.
        for (const auto &n : list_names(old)) EXPECT_TRUE(n == "f" || n == "f.lock") << n;
    }
}

// A relative target keeps its directory descriptor even without fsync: a
// chdir between open and commit must not move the commit into the new
// working directory.
TEST(AtomicWriteDurability, NoneWithRelativePathCommitsInOriginalDirectoryAfterChdir) {
    TempDir dir;
    fs::create_directory(dir / "orig");
    fs::create_directory(dir / "elsewhere");
    write_file(dir / "orig" / "f", "old");
    wlf_write_options opt;
    wlf_write_options_init(&opt);
    opt.durability = WLF_DURABILITY_NONE;
    int commit_f = -1, commit_g = -1;
    std::string error;
    {
        CwdGuard cwd;
        ASSERT_EQ(::chdir((dir / "orig").c_str()), 0);
        wlf_file *f = nullptr, *g = nullptr;
        wlf_error err{};
        ASSERT_EQ(wlf_open("f", O_WRONLY | O_TRUNC, 0644, &opt, &f, &err), 0) << err.op << " " << err.path;
        if (wlf_open("g", O_WRONLY | O_CREAT | O_EXCL, 0644, &opt, &g, &err) != 0) {
            wlf_discard(f);
            FAIL() << err.op << " " << err.path;
        }
        EXPECT_EQ(::write(wlf_file_fd(f), "new f", 5), 5);
        EXPECT_EQ(::write(wlf_file_fd(g), "new g", 5), 5);
        ASSERT_EQ(::chdir((dir / "elsewhere").c_str()), 0);
        commit_f = wlf_commit(f, nullptr, &err);
        if (commit_f) error += std::string(err.op) + " " + err.path + "; ";
        commit_g = wlf_commit(g, nullptr, &err);
        if (commit_g) error += std::string(err.op) + " " + err.path;
    }
    EXPECT_EQ(commit_f, 0) << error;
    EXPECT_EQ(commit_g, 0) << error;
    EXPECT_EQ(list_names(dir / "elsewhere"), Names{});
    auto content = [](const fs::path &p) { return fs::exists(p) ? read_file(p) : "<missing>"; };
    EXPECT_EQ(content(dir / "orig" / "f"), "new f");
    EXPECT_EQ(content(dir / "orig" / "g"), "new g");
    // No temp and no lock file left in the original directory: the lock
    // path is absolute too, so its release after the chdir removes it there.
    EXPECT_EQ(list_names(dir / "orig"), (Names{"f", "g"}));
}

// Relative targets are made absolute at open: a chdir between open and
// commit must not move the commit, leave our lock file behind, or touch the
// lock file of the same name in the new working directory (B keeps "f.lock"
// of somebody else's, and an "f" of its own). Both durabilities (full keeps a
// directory descriptor, none goes by path), a new file, and a hard-linked
// target (staged, written in place by path at commit).
TEST(AtomicWriteRelative, CApiCommitAfterChdirStaysInOriginalDirectory) {
    TempDir dir;
    const fs::path a = fs::canonical(dir.path()) / "A", b = fs::canonical(dir.path()) / "B";
    fs::create_directory(a);
    fs::create_directory(b);
    struct Case {
        const char *name;
        int durability;
        bool hard_linked;
        bool new_file;
    };
    const Case cases[] = {
        {"full", WLF_DURABILITY_FULL, false, false},
        {"none", WLF_DURABILITY_NONE, false, false},
        {"full, hard-linked", WLF_DURABILITY_FULL, true, false},
        {"none, hard-linked", WLF_DURABILITY_NONE, true, false},
        {"full, new file", WLF_DURABILITY_FULL, false, true},
        {"none, new file", WLF_DURABILITY_NONE, false, true},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(c.name);
        // B afresh for every case, so that one broken case cannot spoil the next.
        write_file(b / "f", "B's");
        write_file(b / "f.lock", "other\n");
        write_file(b / "g.lock", "other g\n");
        const ino_t b_f = lstat_or_die(b / "f").st_ino, b_lock = lstat_or_die(b / "f.lock").st_ino;
        const std::string name = c.new_file ? "g" : "f";
        if (!c.new_file) write_file(a / name, "old A");
        if (c.hard_linked) fs::create_hard_link(a / name, a / "other-link");
        std::string content = std::string("new for ") + c.name;
        wlf_write_options opt;
        wlf_write_options_init(&opt);
        opt.durability = c.durability;
        int commit_rc = -1, kind = -1;
        std::string target, error;
        {
            CwdGuard cwd;
            ASSERT_EQ(::chdir(a.c_str()), 0);
            wlf_file *f = nullptr;
            wlf_error err{};
            int flags = c.new_file ? (O_WRONLY | O_CREAT | O_EXCL) : (O_WRONLY | O_TRUNC);
            ASSERT_EQ(wlf_open(name.c_str(), flags, 0644, &opt, &f, &err), 0) << err.op << " " << err.path;
            target = wlf_file_target(f);
            EXPECT_EQ(::write(wlf_file_fd(f), content.data(), content.size()), static_cast<ssize_t>(content.size()));
            EXPECT_EQ(::chdir(b.c_str()), 0);
            commit_rc = wlf_commit(f, &kind, &err);
            if (commit_rc) error = std::string(err.op) + " " + err.path;
        }
        EXPECT_EQ(target, (a / name).string());
        EXPECT_EQ(commit_rc, 0) << error;
        EXPECT_EQ(kind, c.hard_linked ? WLF_COMMIT_IN_PLACE : WLF_COMMIT_RENAME);
        EXPECT_EQ(read_file(a / name), content);
        if (c.hard_linked) {
            EXPECT_EQ(read_file(a / "other-link"), content);
        }
        EXPECT_EQ(list_names(a), c.hard_linked ? (Names{name, "other-link"}) : Names{name});
        EXPECT_EQ(read_file(b / "f"), "B's");
        EXPECT_EQ(lstat_or_die(b / "f").st_ino, b_f);
        EXPECT_EQ(list_names(b), (Names{"f", "f.lock", "g.lock"}));
        if (fs::exists(b / "f.lock")) {
            EXPECT_EQ(lstat_or_die(b / "f.lock").st_ino, b_lock);
            EXPECT_EQ(read_file(b / "f.lock"), "other\n");
        }
        if (fs::exists(b / "g.lock")) {
            EXPECT_EQ(read_file(b / "g.lock"), "other g\n");
        }
        for (const auto &entry : fs::directory_iterator(a)) fs::remove(entry.path());
    }
}

// The same through the C++ API (AtomicFile with a relative path, "w" and
// "a", both durabilities).
TEST(AtomicWriteRelative, CxxApiCommitAfterChdirStaysInOriginalDirectory) {
    TempDir dir;
    const fs::path a = fs::canonical(dir.path()) / "A", b = fs::canonical(dir.path()) / "B";
    fs::create_directory(a);
    fs::create_directory(b);
    write_file(b / "f", "B's");
    write_file(b / "f.lock", "other\n");
    const ino_t b_f = lstat_or_die(b / "f").st_ino, b_lock = lstat_or_die(b / "f.lock").st_ino;
    write_file(a / "f", "old");
    std::string expected = "old";
    for (auto durability : {wl::Durability::full, wl::Durability::none}) {
        for (const char *mode : {"w", "a"}) {
            std::string trace = std::string(durability == wl::Durability::full ? "full, " : "none, ") + mode;
            SCOPED_TRACE(trace);
            wl::WriteOptions opt;
            opt.durability = durability;
            std::string piece = "[" + trace + "]";
            wl::CommitKind kind{};
            fs::path target;
            {
                CwdGuard cwd;
                ASSERT_EQ(::chdir(a.c_str()), 0);
                auto f = wl::atomic_write("f", mode, std::nullopt, opt);
                target = f.target();
                f.write(piece);
                EXPECT_EQ(::chdir(b.c_str()), 0);
                EXPECT_NO_THROW(kind = f.commit());
            }
            expected = std::string(mode) == "w" ? piece : expected + piece;
            EXPECT_EQ(target, a / "f");
            EXPECT_EQ(kind, wl::CommitKind::rename);
            EXPECT_EQ(read_file(a / "f"), expected);
            EXPECT_EQ(list_names(a), Names{"f"});
            EXPECT_EQ(read_file(b / "f"), "B's");
            EXPECT_EQ(lstat_or_die(b / "f").st_ino, b_f);
            EXPECT_EQ(list_names(b), (Names{"f", "f.lock"}));
            if (fs::exists(b / "f.lock")) {
                EXPECT_EQ(lstat_or_die(b / "f.lock").st_ino, b_lock);
                EXPECT_EQ(read_file(b / "f.lock"), "other\n");
            }
        }
    }
}

// ---- failures leave the target and the directory as they were ---------------

TEST(AtomicWriteFailure, NewFileOnReadOnlyFileSystemIsErofs) {
    REQUIRE_PRIVATE_MOUNTS();
    TempDir dir;
    fs::create_directory(dir / "ro");
    ASSERT_EQ(do_mount("tmpfs", dir / "ro", "tmpfs", MS_RDONLY, "size=64k"), 0);
    MountGuard ro(dir / "ro");
    wl::WriteOptions no_lock;
    no_lock.use_lock = false;
    EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::atomic_write_content_with_lock(dir / "ro" / "new", "x", no_lock); }),
              EROFS);
    // With the default lock the lock file is the first thing that cannot be created.
    EXPECT_EQ(code_of<wl::LockFailed>([&] { wl::atomic_write_content_with_lock(dir / "ro" / "new", "x"); }), EROFS);
    EXPECT_EQ(list_names(dir / "ro"), Names{});
}

TEST(AtomicWriteFailure, ExistingFileUnderReadOnlyBindMountIsErofs) {
    REQUIRE_PRIVATE_MOUNTS();
    TempDir dir;
    fs::create_directory(dir / "d");
    write_file(dir / "d" / "f", "old");
    ASSERT_EQ(do_mount((dir / "d").c_str(), dir / "d", nullptr, MS_BIND), 0);
    MountGuard bind(dir / "d");
    ASSERT_EQ(do_mount(nullptr, dir / "d", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY), 0);
    wl::WriteOptions no_lock;
    no_lock.use_lock = false;
    for (const char *mode : {"w", "a", "r+"})
        EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::atomic_write_no_lock(dir / "d" / "f", mode); }), EROFS) << mode;
    EXPECT_EQ(code_of<wl::LockFailed>([&] { wl::atomic_write_content_with_lock(dir / "d" / "f", "x"); }), EROFS);
    EXPECT_EQ(read_file(dir / "d" / "f"), "old");
    EXPECT_EQ(list_names(dir / "d"), Names{"f"});
}

TEST(AtomicWriteFailure, FullDiskFailsTheWriteAndKeepsTarget) {
    REQUIRE_PRIVATE_MOUNTS();
    TempDir dir;
    fs::create_directory(dir / "small");
    ASSERT_EQ(do_mount("tmpfs", dir / "small", "tmpfs", 0, "size=64k"), 0);
    MountGuard small(dir / "small");
    std::string old = pattern(5000, 1);
    write_file(dir / "small" / "f", old);
    ino_t before = lstat_or_die(dir / "small" / "f").st_ino;
    std::string big = pattern(1 << 20, 2);
    {
        auto f = wl::atomic_write(dir / "small" / "f", "w");
        EXPECT_EQ(code_of<wl::WriteFailed>([&] { f.write(big); }), ENOSPC);
        // Ignoring the failed write does not make commit succeed.
        EXPECT_EQ(code_of<wl::WriteFailed>([&] { f.commit(); }), ENOSPC);
    }
    EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::atomic_write_content_with_lock(dir / "small" / "f", big); }), ENOSPC);
    EXPECT_EQ(read_file(dir / "small" / "f"), old);
    EXPECT_EQ(lstat_or_die(dir / "small" / "f").st_ino, before);
    EXPECT_EQ(list_names(dir / "small"), Names{"f"});
}

TEST(AtomicWriteFailure, FullDiskThroughStreamFailsAtCommit) {
    REQUIRE_PRIVATE_MOUNTS();
    TempDir dir;
    fs::create_directory(dir / "small");
    ASSERT_EQ(do_mount("tmpfs", dir / "small", "tmpfs", 0, "size=64k"), 0);
    MountGuard small(dir / "small");
    write_file(dir / "small" / "f", "old");
    std::string big = pattern(1 << 20, 3);
    EXPECT_EQ(code_of<wl::WriteFailed>([&] {
                  wl::with_atomic_write(dir / "small" / "f", "a", [&](wl::AtomicFile &f) { f.stream() << big; });
              }),
              ENOSPC);
    EXPECT_EQ(read_file(dir / "small" / "f"), "old");
    EXPECT_EQ(list_names(dir / "small"), Names{"f"});
}

TEST(AtomicWriteFailure, MissingDirectoryIsEnoent) {
    TempDir dir;
    wl::WriteOptions no_lock;
    no_lock.use_lock = false;
    EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::atomic_write_content_with_lock(dir / "nodir" / "f", "x", no_lock); }),
              ENOENT);
    EXPECT_EQ(list_names(dir.path()), Names{});
}

// ---- special targets ------------------------------------------------------------

TEST(AtomicWriteSpecial, HardLinkedTargetKeepsLinksByDefault) {
    TempDir dir;
    write_file(dir / "a", "old");
    fs::create_hard_link(dir / "a", dir / "b");
    ino_t before = lstat_or_die(dir / "a").st_ino;
    {
        auto f = wl::atomic_write(dir / "a", "w");
        EXPECT_EQ(f.kind(), wl::CommitKind::in_place);
        f.write("new content");
        EXPECT_EQ(read_file(dir / "b"), "old");  // staged until commit
        EXPECT_EQ(f.commit(), wl::CommitKind::in_place);
    }
    {
        auto f = wl::atomic_write(dir / "b", "a");
        f.write("+more");
        EXPECT_EQ(f.commit(), wl::CommitKind::in_place);
    }
    EXPECT_EQ(read_file(dir / "a"), "new content+more");
    EXPECT_EQ(read_file(dir / "b"), "new content+more");
    EXPECT_EQ(lstat_or_die(dir / "a").st_ino, before);
    EXPECT_EQ(lstat_or_die(dir / "b").st_ino, before);
    EXPECT_EQ(lstat_or_die(dir / "a").st_nlink, 2u);
    // Shrinking in place must not leave the old tail behind.
    wl::atomic_write_content_with_lock(dir / "a", "s");
    EXPECT_EQ(read_file(dir / "b"), "s");
    EXPECT_EQ(list_names(dir.path()), (Names{"a", "b"}));
}

TEST(AtomicWriteSpecial, HardLinkSplitReplacesOnlyThisName) {
    TempDir dir;
    write_file(dir / "a", "old");
    fs::create_hard_link(dir / "a", dir / "b");
    ino_t before = lstat_or_die(dir / "a").st_ino;
    wl::WriteOptions opt;
    opt.hard_links = wl::HardLinkPolicy::split;
    EXPECT_EQ(wl::atomic_write_content_with_lock(dir / "a", "new", opt), wl::CommitKind::rename);
    EXPECT_EQ(read_file(dir / "a"), "new");
    EXPECT_EQ(read_file(dir / "b"), "old");
    EXPECT_NE(lstat_or_die(dir / "a").st_ino, before);
    EXPECT_EQ(lstat_or_die(dir / "b").st_ino, before);
    EXPECT_EQ(lstat_or_die(dir / "b").st_nlink, 1u);
    EXPECT_EQ(list_names(dir.path()), (Names{"a", "b"}));
}

// Root ignores directory permissions, so the writer runs as nobody in a
// root-owned 0755 directory holding a file nobody may write.
TEST(AtomicWriteSpecial, UnwritableDirectoryWithWritableFileWritesInPlace) {
    REQUIRE_ROOT();
    TempDir dir;
    ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
    fs::create_directory(dir / "d");
    ASSERT_EQ(::chmod((dir / "d").c_str(), 0755), 0);
    fs::path file = dir / "d" / "f";
    fs::path locked = dir / "d" / "g";
    write_file(file, "old content", 0666);
    write_file(locked, "old", 0666);
    write_file(dir / "d" / "g.lock", "", 0666);  // nobody could not create it there
    ASSERT_EQ(::chown(file.c_str(), 65534, 65534), 0);
    ino_t file_ino = lstat_or_die(file).st_ino;
    ino_t locked_ino = lstat_or_die(locked).st_ino;

    struct Report {
        int open_rc, kind, commit_rc, commit_kind, locked_rc, locked_kind, new_rc;
    } r{};
    bool ok = run_as_nobody(
        [&] {
            Report c{};
            wlf_write_options opt;
            wlf_write_options_init(&opt);
            opt.use_lock = 0;
            wlf_file *f = nullptr;
            c.open_rc = wlf_open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666, &opt, &f, nullptr);
            if (c.open_rc == 0) {
                c.kind = wlf_file_kind(f);
                if (::write(wlf_file_fd(f), "new", 3) != 3) wlf_file_poison(f, errno);
                c.commit_rc = wlf_commit(f, &c.commit_kind, nullptr);
            }
            // The same, locked through an existing lock file that is kept.
            wlf_write_options lopt;
            wlf_write_options_init(&lopt);
            lopt.lock.keep_lock_file = 1;
            c.locked_rc = wlf_open(locked.c_str(), O_WRONLY | O_APPEND, 0666, &lopt, &f, nullptr);
            if (c.locked_rc == 0) {
                if (::write(wlf_file_fd(f), "+new", 4) != 4) wlf_file_poison(f, errno);
                c.locked_rc = wlf_commit(f, &c.locked_kind, nullptr);
            }
            // A new file cannot be created there at all.
            c.new_rc = wlf_write_content((dir / "d" / "new").c_str(), "x", 1, &opt, nullptr);
            return c;
        },
        &r);
    ASSERT_TRUE(ok) << "child failed";
    EXPECT_EQ(r.open_rc, 0);
    EXPECT_EQ(r.kind, WLF_COMMIT_IN_PLACE);
    EXPECT_EQ(r.commit_rc, 0);
    EXPECT_EQ(r.commit_kind, WLF_COMMIT_IN_PLACE);
    EXPECT_EQ(read_file(file), "new");
    EXPECT_EQ(lstat_or_die(file).st_ino, file_ino);
    EXPECT_EQ(r.locked_rc, 0);
    EXPECT_EQ(r.locked_kind, WLF_COMMIT_IN_PLACE);
    EXPECT_EQ(read_file(locked), "old+new");
    EXPECT_EQ(lstat_or_die(locked).st_ino, locked_ino);
    EXPECT_EQ(r.new_rc, EACCES);
    EXPECT_EQ(list_names(dir / "d"), (Names{"f", "g", "g.lock"}));
}

TEST(AtomicWriteSpecial, SingleFileBindMountFallsBackInPlace) {
    REQUIRE_PRIVATE_MOUNTS();
    TempDir dir;
    write_file(dir / "target", "target's own");
    write_file(dir / "source", "old source");
    ASSERT_EQ(do_mount((dir / "source").c_str(), dir / "target", nullptr, MS_BIND), 0);
    MountGuard bind(dir / "target");
    ino_t before = lstat_or_die(dir / "target").st_ino;
    EXPECT_EQ(wl::atomic_write_content_with_lock(dir / "target", "new"), wl::CommitKind::in_place);
    {
        auto f = wl::atomic_write(dir / "target", "a");
        f.write("+more");
        EXPECT_EQ(f.commit(), wl::CommitKind::in_place);
    }
    EXPECT_EQ(read_file(dir / "target"), "new+more");
    EXPECT_EQ(read_file(dir / "source"), "new+more");
    EXPECT_EQ(lstat_or_die(dir / "target").st_ino, before);
    EXPECT_EQ(list_names(dir.path()), (Names{"source", "target"}));
}

TEST(AtomicWriteSpecial, FifoIsPassedThrough) {
    TempDir dir;
    ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
    // Names the fifo itself even if a broken writer renamed a file over it.
    int fifo = ::open((dir / "fifo").c_str(), O_PATH | O_CLOEXEC);
    ASSERT_GE(fifo, 0);
    std::string got;
    std::atomic<bool> reader_done{false};
    std::thread reader([&] {
        int fd = ::open((dir / "fifo").c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            char buf[256];
            ssize_t n;
            while ((n = ::read(fd, buf, sizeof buf)) > 0) got.append(buf, static_cast<std::size_t>(n));
            ::close(fd);
        }
        reader_done = true;
    });
    wl::CommitKind opened{}, committed{};
    int error = 0;
    try {
        auto f = wl::atomic_write(dir / "fifo", "w");  // blocks until the reader opens
        opened = f.kind();
        f.write("through the pipe");
        committed = f.commit();
    } catch (const wl::Error &e) {
        error = e.code().value();
    }
    // If the writer never opened the fifo, open it once so the reader ends
    // (with nothing read) instead of hanging the test.
    std::string self = "/proc/self/fd/" + std::to_string(fifo);
    for (int i = 0; i < 500 && !reader_done; ++i) {
        int w = ::open(self.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (w >= 0) {
            ::close(w);
            break;
        }
        ::usleep(10000);
    }
    reader.join();
    ::close(fifo);
    EXPECT_EQ(error, 0) << std::strerror(error);
    EXPECT_EQ(opened, wl::CommitKind::passthrough);
    EXPECT_EQ(committed, wl::CommitKind::passthrough);
    EXPECT_EQ(got, "through the pipe");
    EXPECT_TRUE(S_ISFIFO(lstat_or_die(dir / "fifo").st_mode));
    EXPECT_EQ(list_names(dir.path()), Names{"fifo"});
}

// As root a broken library could rename a file over the real /dev/null, so
// root uses its own node for the same device in the scratch directory.
TEST(AtomicWriteSpecial, NullDeviceIsPassedThrough) {
    TempDir dir;
    fs::path node = "/dev/null";
    if (geteuid() == 0) {
        node = dir / "null";
        ASSERT_EQ(::mknod(node.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0) << std::strerror(errno);
    }
    struct stat before = lstat_or_die(node);
    if (::access(node.c_str(), W_OK) != 0) GTEST_SKIP() << node << " not writable";
    EXPECT_EQ(wl::atomic_write_content_with_lock(node, "discarded"), wl::CommitKind::passthrough);
    struct stat after = lstat_or_die(node);
    EXPECT_TRUE(S_ISCHR(after.st_mode));
    EXPECT_EQ(after.st_ino, before.st_ino);
    EXPECT_EQ(after.st_rdev, before.st_rdev);
    EXPECT_FALSE(fs::exists(node.string() + ".lock"));
    if (geteuid() == 0) {
        EXPECT_EQ(list_names(dir.path()), Names{"null"});
    }
}

// A thread writes its own comm: /proc/thread-self keeps the process name intact.
TEST(AtomicWriteSpecial, ProcFileIsPassedThrough) {
    wl::CommitKind kind{};
    char name[16] = {};
    int error = 0;
    std::thread t([&] {
        try {
            kind = wl::atomic_write_content_with_lock("/proc/thread-self/comm", "wlf-comm-test");
        } catch (const wl::Error &e) {
            error = e.code().value();
        }
        ::prctl(PR_GET_NAME, name, 0, 0, 0);
    });
    t.join();
    ASSERT_EQ(error, 0) << std::strerror(error);
    EXPECT_EQ(kind, wl::CommitKind::passthrough);
    EXPECT_STREQ(name, "wlf-comm-test");
    EXPECT_FALSE(fs::exists("/proc/thread-self/comm.lock"));
}

// ---- seeding appends ------------------------------------------------------------

TEST(AtomicWriteSeed, AppendToLargeFileCopiesWholeContent) {
    TempDir dir;
    std::string old = pattern(3 << 20, 7);
    write_file(dir / "f", old);
    auto f = wl::atomic_write(dir / "f", "a");
    f.write("appended line\n");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), old + "appended line\n");
}

TEST(AtomicWriteSeed, AppendOnTmpfsWithoutReflink) {
    REQUIRE_PRIVATE_MOUNTS();
    TempDir dir;
    fs::create_directory(dir / "t");
    ASSERT_EQ(do_mount("tmpfs", dir / "t", "tmpfs", 0, "size=16m"), 0);
    MountGuard t(dir / "t");
    std::string old = pattern(3 << 20, 8);
    write_file(dir / "t" / "f", old);
    for (const char *mode : {"a", "r+"}) {
        auto f = wl::atomic_write(dir / "t" / "f", mode);
        if (std::string(mode) == "r+") f.seek(0, SEEK_END);
        f.write(std::string(mode) + "\n");
        f.commit();
        old += std::string(mode) + "\n";
    }
    EXPECT_EQ(read_file(dir / "t" / "f"), old);
    EXPECT_EQ(list_names(dir / "t"), Names{"f"});
}

TEST(AtomicWriteSeed, AppendSharesExtentsOnXfsWithReflink) {
    REQUIRE_PRIVATE_MOUNTS();
    if (std::system("command -v mkfs.xfs >/dev/null 2>&1") != 0) GTEST_SKIP() << "mkfs.xfs not installed";
    TempDir dir;
    fs::path img = dir / "xfs.img";
    fs::path mnt = dir / "mnt";
    fs::create_directory(mnt);
    // Sparse; current mkfs.xfs refuses file systems under 300 MiB.
    write_file(img, "");
    ASSERT_EQ(::truncate(img.c_str(), 300 << 20), 0);
    std::string mkfs = "mkfs.xfs -q -m reflink=1 -f " + img.string() + " >/dev/null 2>&1";
    if (std::system(mkfs.c_str()) != 0) GTEST_SKIP() << "mkfs.xfs -m reflink=1 failed";
    std::string mount = "mount -o loop " + img.string() + " " + mnt.string() + " 2>/dev/null";
    if (std::system(mount.c_str()) != 0) GTEST_SKIP() << "cannot loop-mount an xfs image here";
    MountGuard guard(mnt);

    std::string old = pattern(16 << 20, 9);
    write_file(mnt / "f", old);
    ::sync();
    // Holding the old inode keeps its extents alive after the rename, so the
    // new file's extents stay visibly shared with it.
    int old_fd = ::open((mnt / "f").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(old_fd, 0);
    {
        auto f = wl::atomic_write(mnt / "f", "a");
        f.write("one more line\n");
        EXPECT_EQ(f.commit(), wl::CommitKind::rename);
    }
    int new_fd = ::open((mnt / "f").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(new_fd, 0);
    long flags = first_extent_flags(new_fd);
    EXPECT_NE(flags, -1) << "FIEMAP failed: " << std::strerror(errno);
    EXPECT_TRUE(flags != -1 && (flags & FIEMAP_EXTENT_SHARED)) << "first extent flags " << std::hex << flags;
    ::close(new_fd);
    EXPECT_EQ(read_fd_all(old_fd), old);
    ::close(old_fd);
    EXPECT_EQ(read_file(mnt / "f"), old + "one more line\n");
    EXPECT_EQ(list_names(mnt), Names{"f"});
}

// ---- temp suffix -------------------------------------------------------------

TEST(AtomicWriteTempSuffix, SlashInSuffixIsEinvalViaCApi) {
    TempDir dir;
    write_file(dir / "f", "old");
    wlf_write_options opt;
    wlf_write_options_init(&opt);
    opt.temp_suffix = "x/y";
    wlf_error err{};
    EXPECT_EQ(wlf_write_content((dir / "f").c_str(), "new", 3, &opt, &err), EINVAL);
    EXPECT_EQ(err.code, EINVAL);
    ASSERT_NE(err.op, nullptr);
    EXPECT_EQ(read_file(dir / "f"), "old");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteTempSuffix, BadSuffixIsWriteFailedEinval) {
    TempDir dir;
    write_file(dir / "f", "old");
    for (std::string suffix : {std::string("/"), std::string(100, 's')}) {
        wl::WriteOptions opt;
        opt.temp_suffix = suffix;
        EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::atomic_write_content_with_lock(dir / "f", "new", opt); }), EINVAL);
    }
    EXPECT_EQ(read_file(dir / "f"), "old");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

// Without O_TMPFILE the temp has a name: ".<base>.<random><suffix>", removed
// by commit (renamed) and by discard.
TEST(AtomicWriteTempSuffix, NamedTempEndsWithSuffixWhenOTmpfileIsUnsupported) {
    TempDir dir;
    write_file(dir / "f", "old", 0640);
    int filter_rc = -1, probe_errno = 0;
    Names during_write, during_discard, after_discard;
    std::string content_after_discard;
    int commit_error = 0;
    std::thread t([&] {
        filter_rc = deny_o_tmpfile_in_this_thread();
        if (filter_rc != 0) return;
        int probe = ::open(dir.path().c_str(), O_TMPFILE | O_RDWR, 0600);
        probe_errno = probe < 0 ? errno : 0;
        if (probe >= 0) ::close(probe);
        wl::WriteOptions opt;
        opt.temp_suffix = ".wlftmp";
        try {
            {
                auto f = wl::atomic_write(dir / "f", "a", std::nullopt, opt);
                f.write("+discarded");
                during_discard = list_names(dir.path());
            }
            after_discard = list_names(dir.path());
            content_after_discard = read_file(dir / "f");
            auto f = wl::atomic_write(dir / "f", "w", std::nullopt, opt);
            f.write("new");
            during_write = list_names(dir.path());
            f.commit();
        } catch (const wl::Error &e) {
            commit_error = e.code().value();
        }
    });
    t.join();
    if (filter_rc != 0) GTEST_SKIP() << "cannot install a seccomp filter: " << std::strerror(filter_rc);
    ASSERT_EQ(probe_errno, EOPNOTSUPP);
    ASSERT_EQ(commit_error, 0) << std::strerror(commit_error);
    auto is_temp = [](const std::string &n) {
        return n.starts_with(".f.") && n.ends_with(".wlftmp") && n.size() > std::strlen(".f..wlftmp");
    };
    for (const Names *names : {&during_discard, &during_write}) {
        ASSERT_EQ(names->size(), 3u);
        EXPECT_EQ((*names)[1], "f");
        EXPECT_EQ((*names)[2], "f.lock");
        EXPECT_TRUE(is_temp((*names)[0])) << (*names)[0];
    }
    EXPECT_EQ(after_discard, Names{"f"});
    EXPECT_EQ(content_after_discard, "old");
    EXPECT_EQ(read_file(dir / "f"), "new");
    EXPECT_EQ(lstat_or_die(dir / "f").st_mode & 07777, 0640u);
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

// Durability none, absolute target, no O_TMPFILE: a named temp is reached
// through a directory descriptor even without fsync (a name by path could be
// left behind in a directory renamed meanwhile). It is visible in the
// target's directory while pending, ends with the suffix, is the file the
// caller writes, and leaves nothing behind after commit or discard. Existing
// and new targets.
TEST(AtomicWriteTempSuffix, NamedTempByPathWithDurabilityNone) {
    TempDir dir;
    write_file(dir / "f", "old", 0640);
    struct Seen {
        Names pending, after;
        bool same_inode = false;
        int dir_fds = -1;
        std::string content_after;
    };
    int filter_rc = -1, probe_errno = 0, error = 0;
    std::string error_text;
    Seen discarded_f, discarded_n, committed_f, committed_n;
    std::thread t([&] {
        filter_rc = deny_o_tmpfile_in_this_thread();
        if (filter_rc != 0) return;
        int probe = ::open(dir.path().c_str(), O_TMPFILE | O_RDWR, 0600);
        probe_errno = probe < 0 ? errno : 0;
        if (probe >= 0) ::close(probe);
        wlf_write_options opt;
        wlf_write_options_init(&opt);
        opt.durability = WLF_DURABILITY_NONE;
        opt.temp_suffix = ".wlftmp";
        // One replacement: open, write, look, then commit or discard.
        auto once = [&](const char *name, bool commit, Seen *seen) {
            fs::path target = dir / name;
            bool existing = fs::exists(target);
            wlf_file *f = nullptr;
            wlf_error err{};
            int flags = existing ? O_WRONLY | O_APPEND : O_WRONLY | O_CREAT | O_EXCL;
            if (int rc = wlf_open(target.c_str(), flags, 0644, &opt, &f, &err)) {
                error = rc;
                error_text = std::string(err.op) + " " + err.path;
                return;
            }
            if (::write(wlf_file_fd(f), "+new", 4) != 4) error = errno;
            seen->pending = list_names(dir.path());
            seen->dir_fds = directory_fds_of(dir.path());
            struct stat mine;
            ::fstat(wlf_file_fd(f), &mine);
            for (const auto &n : seen->pending) {
                struct stat st;
                if (n.ends_with(".wlftmp") && ::lstat((dir / n).c_str(), &st) == 0 && st.st_ino == mine.st_ino &&
                    st.st_dev == mine.st_dev)
                    seen->same_inode = true;
            }
            if (commit) {
                if (int rc = wlf_commit(f, nullptr, &err)) {
                    error = rc;
                    error_text = std::string(err.op) + " " + err.path;
                }
            } else {
                wlf_discard(f);
            }
            seen->after = list_names(dir.path());
            seen->content_after = fs::exists(target) ? read_file(target) : "<none>";
        };
        once("f", false, &discarded_f);
        once("n", false, &discarded_n);
        once("f", true, &committed_f);
        once("n", true, &committed_n);
    });
    t.join();
    if (filter_rc != 0) GTEST_SKIP() << "cannot install a seccomp filter: " << std::strerror(filter_rc);
    ASSERT_EQ(probe_errno, EOPNOTSUPP);
    ASSERT_EQ(error, 0) << std::strerror(error) << ": " << error_text;
    auto is_temp_of = [](const std::string &n, const std::string &base) {
        return n.starts_with("." + base + ".") && n.ends_with(".wlftmp") &&
               n.size() == 1 + base.size() + 1 + 8 + std::strlen(".wlftmp");
    };
    struct Case {
        const char *what;
        const Seen &seen;
        const char *base;
        Names others;  // besides the temp, while pending
        Names after;
        const char *content;
    } cases[] = {
        {"discard, existing", discarded_f, "f", {"f", "f.lock"}, {"f"}, "old"},
        {"discard, new", discarded_n, "n", {"f", "n.lock"}, {"f"}, "<none>"},
        {"commit, existing", committed_f, "f", {"f", "f.lock"}, {"f"}, "old+new"},
        {"commit, new", committed_n, "n", {"f", "n.lock"}, {"f", "n"}, "+new"},
    };
    for (const auto &c : cases) {
        SCOPED_TRACE(c.what);
        Names others;
        int temps = 0;
        for (const auto &n : c.seen.pending) {
            if (is_temp_of(n, c.base))
                ++temps;
            else
                others.push_back(n);
        }
        EXPECT_EQ(temps, 1) << ::testing::PrintToString(c.seen.pending);
        EXPECT_EQ(others, c.others);
        EXPECT_TRUE(c.seen.same_inode) << "the named temp is not the caller's file";
        EXPECT_EQ(c.seen.dir_fds, 1);
        EXPECT_EQ(c.seen.after, c.after);
        EXPECT_EQ(c.seen.content_after, c.content);
    }
    EXPECT_EQ(lstat_or_die(dir / "f").st_mode & 07777, 0640u);
}

// ---- naming an O_TMPFILE ---------------------------------------------------------

// linkat(fd, "", AT_EMPTY_PATH) names an O_TMPFILE only for the credentials
// that opened it (or with CAP_DAC_READ_SEARCH); otherwise it fails with
// ENOENT and /proc/self/fd/N must do. A child opens two replacements as root
// (durability none: by path; full: through the directory descriptor), drops
// to nobody and commits both. The targets are 0666 in a 0777 directory, so
// nobody may link the temps (fs.protected_hardlinks) and remove the locks.
TEST(AtomicWriteTempLink, ProcFdNamesTheTempWhenEmptyPathLinkIsRefused) {
    REQUIRE_ROOT();
    TempDir dir;
    ASSERT_EQ(::chmod(dir.path().c_str(), 0777), 0);
    write_file(dir / "none", "old none", 0666);
    write_file(dir / "full", "old full", 0666);
    Child child([&]() -> int {
        // Exit statuses: 3 setup, 4 no O_TMPFILE here (skip), 5 AT_EMPTY_PATH
        // still works after the credential change (nothing to fall back
        // from), 6 it failed otherwise than ENOENT, 10 + 1 (none) + 2 (full)
        // for the commits that failed. The first commit finds out that
        // AT_EMPTY_PATH is refused, the second goes to /proc at once.
        int probe = ::open(dir.path().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0666);
        if (probe < 0) return 4;
        wlf_file *files[2] = {};
        const char *names[2] = {"none", "full"};
        const int durability[2] = {WLF_DURABILITY_NONE, WLF_DURABILITY_FULL};
        for (int i = 0; i < 2; ++i) {
            wlf_write_options opt;
            wlf_write_options_init(&opt);
            opt.durability = durability[i];
            wlf_error err{};
            if (wlf_open((dir / names[i]).c_str(), O_WRONLY | O_TRUNC, 0666, &opt, &files[i], &err) != 0) {
                std::fprintf(stderr, "wlf_open %s: %s\n", names[i], std::strerror(err.code));
                return 3;
            }
        }
        if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
            ::setresuid(65534, 65534, 65534) != 0 || ::prctl(PR_SET_DUMPABLE, 1) != 0)
            return 3;
        int linked = ::linkat(probe, "", AT_FDCWD, (dir / "probe").c_str(), AT_EMPTY_PATH);
        if (linked == 0) return 5;
        if (errno != ENOENT) return 6;
        int failed = 0;
        for (int i = 0; i < 2; ++i) {
            std::string content = std::string("new ") + names[i];
            if (::write(wlf_file_fd(files[i]), content.data(), content.size()) !=
                static_cast<ssize_t>(content.size()))
                return 3;
            wlf_error err{};
            if (wlf_commit(files[i], nullptr, &err) != 0) {
                char text[WLF_PATH_MAX + 256];
                std::fprintf(stderr, "commit %s: %s\n", names[i], wlf_error_format(&err, text, sizeof text));
                failed |= 1 << i;
            }
        }
        return failed ? 10 + failed : 0;
    });
    int status = child.wait();
    if (status == 4) GTEST_SKIP() << "no O_TMPFILE in " << dir.path();
    ASSERT_NE(status, 5) << "linkat(AT_EMPTY_PATH) works for the new credentials: the /proc path is not exercised";
    ASSERT_NE(status, 6) << "linkat(AT_EMPTY_PATH) failed with an error other than ENOENT";
    ASSERT_EQ(status, 0) << "11: the commit with durability none failed, 12: full failed, 13: both (see stderr)";
    EXPECT_EQ(read_file(dir / "none"), "new none");
    EXPECT_EQ(read_file(dir / "full"), "new full");
    EXPECT_EQ(list_names(dir.path()), (Names{"full", "none"}));
}

// ---- access checks at open (the errors open(2) would give) ---------------------
//
// The writers run as other users in forked children, in a 0777 directory
// (so that a temp could be created and renamed there: only the access check
// stands between them and the replacement). Two users: 65534, whose own
// files go to faccessat like everybody else's (an unmapped owner looks the
// same), and an ordinary uid, whose own files take the owner-bits shortcut.

#define REQUIRE_SHARED_DIR(d)                                                                      \
    do {                                                                                           \
        REQUIRE_ROOT();                                                                            \
        if (!searchable_by_others((d).path())) GTEST_SKIP() << (d).path() << " not reachable by others"; \
    } while (0)

// Another user's 0644 file: EACCES from wlf_open, for both kinds of writer;
// nothing written, nothing left behind (not even the probe's lock file).
TEST(AtomicWriteAccess, OtherUsersReadOnlyFileIsEaccesAtOpen) {
    SharedDir dir;
    REQUIRE_SHARED_DIR(dir);
    fs::path t = dir / "f";
    write_file(t, "root's", 0644);
    ino_t before = lstat_or_die(t).st_ino;
    for (uid_t uid : {kNobody, kPlainUser}) {
        for (int flags : {O_WRONLY | O_TRUNC, O_WRONLY | O_CREAT | O_TRUNC, O_WRONLY | O_APPEND, O_RDWR}) {
            SCOPED_TRACE("uid " + std::to_string(uid) + ", flags " + std::to_string(flags));
            auto r = run_as_user<3>(uid, [&] { return try_replace(t, flags, "new"); });
            ASSERT_TRUE(r.has_value()) << "child failed";
            EXPECT_EQ((*r)[0], EACCES) << "open " << (*r)[0] << ", commit " << (*r)[1];
            EXPECT_EQ(read_file(t), "root's");
            EXPECT_EQ(lstat_or_die(t).st_ino, before);
            EXPECT_EQ(list_names(dir.path()), Names{"f"});
        }
    }
}

// The owner without the write bit (0444): EACCES, as open(2) says.
TEST(AtomicWriteAccess, OwnerWithoutWriteBitIsEacces) {
    SharedDir dir;
    REQUIRE_SHARED_DIR(dir);
    fs::path t = dir / "f";
    for (uid_t uid : {kNobody, kPlainUser}) {
        write_file(t, "read-only", 0444);
        ASSERT_EQ(::chown(t.c_str(), uid, uid), 0);
        ASSERT_EQ(::chmod(t.c_str(), 0444), 0);
        ino_t before = lstat_or_die(t).st_ino;
        for (int flags : {O_WRONLY | O_TRUNC, O_WRONLY | O_APPEND, O_RDWR | O_TRUNC}) {
            SCOPED_TRACE("uid " + std::to_string(uid) + ", flags " + std::to_string(flags));
            auto r = run_as_user<3>(uid, [&] { return try_replace(t, flags, "new"); });
            ASSERT_TRUE(r.has_value()) << "child failed";
            EXPECT_EQ((*r)[0], EACCES) << "open " << (*r)[0] << ", commit " << (*r)[1];
            EXPECT_EQ(read_file(t), "read-only");
            EXPECT_EQ(lstat_or_die(t).st_ino, before);
            EXPECT_EQ(list_names(dir.path()), Names{"f"});
        }
        fs::remove(t);
    }
}

// The owner with the write bit (0644): replaced; owner and mode stay.
TEST(AtomicWriteAccess, OwnerWithWriteBitReplaces) {
    SharedDir dir;
    REQUIRE_SHARED_DIR(dir);
    fs::path t = dir / "f";
    for (uid_t uid : {kNobody, kPlainUser}) {
        SCOPED_TRACE("uid " + std::to_string(uid));
        write_file(t, "old", 0644);
        ASSERT_EQ(::chown(t.c_str(), uid, uid), 0);
        ino_t before = lstat_or_die(t).st_ino;
        auto r = run_as_user<3>(uid, [&] { return try_replace(t, O_WRONLY | O_TRUNC, "new"); });
        ASSERT_TRUE(r.has_value()) << "child failed";
        EXPECT_EQ((*r)[0], 0);
        EXPECT_EQ((*r)[1], 0);
        EXPECT_EQ((*r)[2], WLF_COMMIT_RENAME);
        EXPECT_EQ(read_file(t), "new");
        struct stat st = lstat_or_die(t);
        EXPECT_NE(st.st_ino, before);
        EXPECT_EQ(st.st_uid, uid);
        EXPECT_EQ(st.st_gid, uid);
        EXPECT_EQ(st.st_mode & 07777, 0644u);
        EXPECT_EQ(list_names(dir.path()), Names{"f"});
        fs::remove(t);
    }
}

// The owner of a write-only file (0200): O_RDWR needs the read bit too
// (EACCES, with or without O_TRUNC); O_WRONLY|O_TRUNC replaces it.
TEST(AtomicWriteAccess, OwnerOfWriteOnlyFileMayTruncateButNotOpenForReading) {
    SharedDir dir;
    REQUIRE_SHARED_DIR(dir);
    fs::path t = dir / "f";
    for (uid_t uid : {kNobody, kPlainUser}) {
        SCOPED_TRACE("uid " + std::to_string(uid));
        write_file(t, "secret", 0200);
        ASSERT_EQ(::chown(t.c_str(), uid, uid), 0);
        ASSERT_EQ(::chmod(t.c_str(), 0200), 0);
        ino_t before = lstat_or_die(t).st_ino;
        auto r = run_as_user<6>(uid, [&]() -> std::array<int, 6> {
            auto rw_trunc = try_replace(t, O_RDWR | O_TRUNC, "rw");
            auto rw = try_replace(t, O_RDWR, "rw");
            return {rw_trunc[0], rw_trunc[1], rw[0], rw[1], 0, 0};
        });
        ASSERT_TRUE(r.has_value()) << "child failed";
        EXPECT_EQ((*r)[0], EACCES) << "O_RDWR|O_TRUNC: commit " << (*r)[1];
        EXPECT_EQ((*r)[2], EACCES) << "O_RDWR: commit " << (*r)[3];
        EXPECT_EQ(read_file(t), "secret");
        EXPECT_EQ(lstat_or_die(t).st_ino, before);
        EXPECT_EQ(list_names(dir.path()), Names{"f"});

        auto w = run_as_user<3>(uid, [&] { return try_replace(t, O_WRONLY | O_TRUNC, "written"); });
        ASSERT_TRUE(w.has_value()) << "child failed";
        EXPECT_EQ((*w)[0], 0);
        EXPECT_EQ((*w)[1], 0);
        EXPECT_EQ(read_file(t), "written");
        struct stat st = lstat_or_die(t);
        EXPECT_EQ(st.st_uid, uid);
        EXPECT_EQ(st.st_mode & 07777, 0200u);
        EXPECT_EQ(list_names(dir.path()), Names{"f"});
        fs::remove(t);
    }
}

// A root-owned 0644 file with a POSIX ACL granting user 65534 rw: the
// kernel's answer (faccessat) lets 65534 replace it; an ordinary other user,
// whom the ACL does not name, still gets EACCES.
TEST(AtomicWriteAccess, AclGrantsAnotherUserTheWrite) {
    SharedDir dir;
    REQUIRE_SHARED_DIR(dir);
    fs::path t = dir / "f";
    write_file(t, "root's", 0644);
    std::string cmd = "setfacl -m u:65534:rw- " + t.string() + " 2>/dev/null";
    if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "setfacl unavailable or ACLs unsupported";
    std::string acl = xattr_of(t, "system.posix_acl_access");
    ASSERT_FALSE(acl.empty());
    ASSERT_NE(acl[0], '<') << acl;

    auto denied = run_as_user<3>(kPlainUser, [&] { return try_replace(t, O_WRONLY | O_TRUNC, "plain"); });
    ASSERT_TRUE(denied.has_value()) << "child failed";
    EXPECT_EQ((*denied)[0], EACCES);
    EXPECT_EQ(read_file(t), "root's");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});

    auto granted = run_as_user<3>(kNobody, [&] { return try_replace(t, O_WRONLY | O_TRUNC, "by acl"); });
    ASSERT_TRUE(granted.has_value()) << "child failed";
    EXPECT_EQ((*granted)[0], 0);
    EXPECT_EQ((*granted)[1], 0);
    EXPECT_EQ(read_file(t), "by acl");
    EXPECT_EQ(xattr_of(t, "system.posix_acl_access"), acl);
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

// In a new user namespace without a uid map the process is 65534, and so is
// the owner of every file: an ordinary user's 0644 file looks like our own
// writable file there, but the kernel does not let us write it. The owner
// shortcut must not be taken for owner 65534. (A file of the real uid still
// is ours to the kernel: replaced.)
TEST(AtomicWriteAccess, UnmappedOwnerInUserNamespaceIsNotTakenForOurs) {
    SharedDir dir;
    REQUIRE_SHARED_DIR(dir);
    fs::path theirs = dir / "theirs", ours = dir / "ours";
    write_file(theirs, "theirs", 0644);
    ASSERT_EQ(::chown(theirs.c_str(), kPlainUser, kPlainUser), 0);
    write_file(ours, "ours", 0644);
    Pipe report;
    Child child([&] {
        report.close_read();
        if (::unshare(CLONE_NEWUSER) != 0) return 77;
        std::array<int, 6> v{};
        v[0] = static_cast<int>(::geteuid());
        struct stat st;
        v[1] = ::stat(theirs.c_str(), &st) == 0 ? static_cast<int>(st.st_uid) : -1;
        v[2] = try_replace(theirs, O_WRONLY | O_TRUNC, "new")[0];
        auto r = try_replace(ours, O_WRONLY | O_TRUNC, "new ours");
        v[3] = r[0];
        v[4] = r[1];
        return ::write(report.write_fd(), v.data(), sizeof v) == static_cast<ssize_t>(sizeof v) ? 0 : 1;
    });
    report.close_write();
    std::array<int, 6> v{};
    auto *bytes = reinterpret_cast<char *>(v.data());
    std::size_t got = 0;
    while (got < sizeof v) {
        int c = get_byte(report.read_fd());
        if (c < 0) break;
        bytes[got++] = static_cast<char>(c);
    }
    int status = child.wait();
    if (status == 77) GTEST_SKIP() << "no user namespace here";
    ASSERT_EQ(status, 0);
    ASSERT_EQ(got, sizeof v);
    ASSERT_EQ(v[0], static_cast<int>(kNobody)) << "euid in the new user namespace";
    ASSERT_EQ(v[1], static_cast<int>(kNobody)) << "owner as seen in the new user namespace";
    EXPECT_EQ(v[2], EACCES);
    EXPECT_EQ(read_file(theirs), "theirs");
    EXPECT_EQ(lstat_or_die(theirs).st_uid, kPlainUser);
    EXPECT_EQ(v[3], 0);
    EXPECT_EQ(v[4], 0);
    EXPECT_EQ(read_file(ours), "new ours");
    EXPECT_EQ(list_names(dir.path()), (Names{"ours", "theirs"}));
}

// A read-only bind mount of a single existing file: root owns it and has
// the owner bits, but the mount root goes to faccessat, which says EROFS
// at open (not a replacement that fails at commit).
TEST(AtomicWriteAccess, ReadOnlySingleFileBindMountIsErofsAtOpen) {
    REQUIRE_PRIVATE_MOUNTS();
    TempDir dir;
    fs::path target = dir / "target";
    write_file(target, "target's own", 0644);
    write_file(dir / "source", "old source", 0644);
    ASSERT_EQ(do_mount((dir / "source").c_str(), target, nullptr, MS_BIND), 0);
    MountGuard bind(target);
    ASSERT_EQ(do_mount(nullptr, target, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY), 0);
    if (statx_attribute(target, STATX_ATTR_MOUNT_ROOT) != 1) GTEST_SKIP() << "statx reports no mount root here";
    struct stat st = lstat_or_die(target);
    ASSERT_EQ(st.st_uid, 0u);
    ASSERT_EQ(st.st_mode & 0200, 0200u);
    // With and without the lock (without it the target is only lstat'ed while
    // resolving: the attributes must be read all the same).
    for (int use_lock : {1, 0})
        for (int flags : {O_WRONLY | O_TRUNC, O_WRONLY | O_APPEND, O_RDWR, O_WRONLY | O_CREAT | O_TRUNC}) {
            SCOPED_TRACE("flags " + std::to_string(flags) + ", use_lock " + std::to_string(use_lock));
            wlf_write_options opt = options_with_lock(use_lock);
            wlf_file *f = reinterpret_cast<wlf_file *>(1);
            wlf_error err{};
            int rc = wlf_open(target.c_str(), flags, 0666, &opt, &f, &err);
            if (rc == 0) wlf_discard(f);
            EXPECT_EQ(rc, EROFS);
            EXPECT_EQ(err.code, EROFS);
            EXPECT_STREQ(err.path, target.c_str());
        }
    EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::AtomicFile f(target, "w", {}); }), EROFS);
    EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::atomic_write_content_with_lock(target, "new"); }), EROFS);
    EXPECT_EQ(read_file(target), "old source");
    EXPECT_EQ(read_file(dir / "source"), "old source");
    EXPECT_EQ(list_names(dir.path()), (Names{"source", "target"}));
}

// ---- inode attributes: immutable and append-only -------------------------------

// Immutable: EPERM at open, as open(2) says, for every write mode; through
// the C++ API a WriteFailed (the error names the target, not its lock).
// Nothing written, nothing left behind.
TEST(AtomicWriteAttributes, ImmutableTargetIsEpermAtOpen) {
    REQUIRE_ROOT();
    TempDir dir;
    fs::path t = dir / "f";
    write_file(t, "frozen");
    ino_t before = lstat_or_die(t).st_ino;
    InodeFlag immutable(t, FS_IMMUTABLE_FL);
    if (immutable.unsupported())
        GTEST_SKIP() << "chattr +i unsupported on " << dir.path() << ": " << std::strerror(immutable.error());
    ASSERT_EQ(immutable.error(), 0) << std::strerror(immutable.error());
    if (statx_attribute(t, STATX_ATTR_IMMUTABLE) != 1) GTEST_SKIP() << "statx does not report the immutable flag";
    for (int use_lock : {1, 0})
        for (int flags : {O_WRONLY | O_TRUNC, O_WRONLY | O_CREAT | O_TRUNC, O_WRONLY | O_APPEND, O_RDWR}) {
            SCOPED_TRACE("flags " + std::to_string(flags) + ", use_lock " + std::to_string(use_lock));
            wlf_write_options opt = options_with_lock(use_lock);
            wlf_file *f = reinterpret_cast<wlf_file *>(1);
            wlf_error err{};
            int rc = wlf_open(t.c_str(), flags, 0666, &opt, &f, &err);
            if (rc == 0) wlf_discard(f);
            EXPECT_EQ(rc, EPERM);
            EXPECT_EQ(f, nullptr);
            EXPECT_EQ(err.code, EPERM);
            EXPECT_STREQ(err.path, t.c_str());
        }
    EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::atomic_write_content_with_lock(t, "new"); }), EPERM);
    for (const char *mode : {"w", "a", "r+", "a+"})
        EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::AtomicFile f(t, mode, {}); }), EPERM) << mode;
    EXPECT_EQ(read_file(t), "frozen");
    EXPECT_EQ(lstat_or_die(t).st_ino, before);
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

// Append-only: without O_APPEND EPERM at open (as open(2)); with O_APPEND
// the target itself is appended to, in place (a rename over it would fail):
// same inode, old content kept. Through the C++ API: "a" and "a+" append,
// "w" and "r+" are WriteFailed EPERM.
TEST(AtomicWriteAttributes, AppendOnlyTargetRefusesTruncationAndIsAppendedInPlace) {
    REQUIRE_ROOT();
    TempDir dir;
    fs::path t = dir / "log";
    write_file(t, "old\n");
    ino_t before = lstat_or_die(t).st_ino;
    InodeFlag append_only(t, FS_APPEND_FL);
    if (append_only.unsupported())
        GTEST_SKIP() << "chattr +a unsupported on " << dir.path() << ": " << std::strerror(append_only.error());
    ASSERT_EQ(append_only.error(), 0) << std::strerror(append_only.error());
    if (statx_attribute(t, STATX_ATTR_APPEND) != 1) GTEST_SKIP() << "statx does not report the append-only flag";
    for (int flags : {O_WRONLY | O_TRUNC, O_WRONLY | O_CREAT | O_TRUNC, O_WRONLY, O_RDWR, O_WRONLY | O_APPEND | O_TRUNC}) {
        SCOPED_TRACE("flags " + std::to_string(flags));
        wlf_file *f = reinterpret_cast<wlf_file *>(1);
        wlf_error err{};
        int rc = wlf_open(t.c_str(), flags, 0666, nullptr, &f, &err);
        if (rc == 0) wlf_discard(f);
        EXPECT_EQ(rc, EPERM);
        EXPECT_EQ(f, nullptr);
        EXPECT_EQ(err.code, EPERM);
    }
    EXPECT_EQ(read_file(t), "old\n");
    EXPECT_EQ(list_names(dir.path()), Names{"log"});

    wlf_file *f = nullptr;
    wlf_error err{};
    ASSERT_EQ(wlf_open(t.c_str(), O_WRONLY | O_APPEND, 0666, nullptr, &f, &err), 0) << err.op << " " << err.path;
    EXPECT_EQ(wlf_file_kind(f), WLF_COMMIT_IN_PLACE);
    EXPECT_EQ(::write(wlf_file_fd(f), "tail", 4), 4);
    int kind = -1;
    ASSERT_EQ(wlf_commit(f, &kind, &err), 0) << err.op << " " << err.path;
    EXPECT_EQ(kind, WLF_COMMIT_IN_PLACE);
    EXPECT_EQ(read_file(t), "old\ntail");
    EXPECT_EQ(lstat_or_die(t).st_ino, before);
    EXPECT_EQ(list_names(dir.path()), Names{"log"});
    {
        // Without the lock too.
        wlf_write_options opt = options_with_lock(0);
        ASSERT_EQ(wlf_open(t.c_str(), O_WRONLY | O_APPEND, 0666, &opt, &f, &err), 0) << err.op << " " << err.path;
        EXPECT_EQ(wlf_file_kind(f), WLF_COMMIT_IN_PLACE);
        EXPECT_EQ(::write(wlf_file_fd(f), "!", 1), 1);
        ASSERT_EQ(wlf_commit(f, nullptr, &err), 0) << err.op << " " << err.path;
        EXPECT_EQ(read_file(t), "old\ntail!");
        EXPECT_EQ(lstat_or_die(t).st_ino, before);
    }

    {
        auto a = wl::atomic_write(t, "a");
        EXPECT_EQ(a.kind(), wl::CommitKind::in_place);
        a.write("+a");
        EXPECT_EQ(a.commit(), wl::CommitKind::in_place);
    }
    {
        auto ap = wl::atomic_write(t, "a+");
        EXPECT_EQ(ap.kind(), wl::CommitKind::in_place);
        EXPECT_EQ(ap.read_all(), "old\ntail!+a");
        ap.write("+a+");
        EXPECT_EQ(ap.commit(), wl::CommitKind::in_place);
    }
    EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::atomic_write_content_with_lock(t, "new"); }), EPERM);
    EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::AtomicFile r(t, "r+", {}); }), EPERM);
    EXPECT_EQ(read_file(t), "old\ntail!+a+a+");
    EXPECT_EQ(lstat_or_die(t).st_ino, before);
    EXPECT_EQ(statx_attribute(t, STATX_ATTR_APPEND), 1);
    EXPECT_EQ(list_names(dir.path()), Names{"log"});
}

// ---- no probe lock files under /dev -------------------------------------------

// A device node under /dev/ is passed through without the lock-first probe:
// no "/dev/null.lock" appears even for a moment. The /dev here is a tmpfs
// in this binary's private mount namespace, so a probe that ran would
// create its file there and not in the machine's /dev.
TEST(AtomicWriteSpecial, DeviceUnderDevGetsNoProbeLockFile) {
    REQUIRE_PRIVATE_MOUNTS();
    ASSERT_EQ(do_mount("tmpfs", "/dev", "tmpfs", 0, "size=64k,mode=755"), 0);
    MountGuard dev("/dev");
    ASSERT_EQ(::mknod("/dev/null", S_IFCHR | 0666, makedev(1, 3)), 0) << std::strerror(errno);
    CreateWatch watch("/dev");
    EXPECT_EQ(wl::atomic_write_content_with_lock("/dev/null", "discarded"), wl::CommitKind::passthrough);
    // Spellings that reach /dev without starting with "/dev/" are compared
    // normalized.
    for (const char *path : {"/dev/null", "//dev/null", "/./dev/null", "/tmp/../dev/null"}) {
        wlf_file *f = nullptr;
        ASSERT_EQ(wlf_open(path, O_WRONLY | O_TRUNC, 0666, nullptr, &f, nullptr), 0) << path;
        EXPECT_EQ(wlf_file_kind(f), WLF_COMMIT_PASSTHROUGH) << path;
        EXPECT_EQ(wlf_commit(f, nullptr, nullptr), 0) << path;
    }
    EXPECT_EQ(watch.created(), Names{});
    EXPECT_EQ(list_names("/dev"), Names{"null"});
}

// ---- C API ---------------------------------------------------------------------

TEST(AtomicWriteCApi, OpenWriteCommit) {
    TempDir dir;
    write_file(dir / "real", "old");
    fs::create_symlink("real", dir / "link");
    wlf_file *f = nullptr;
    wlf_error err{};
    ASSERT_EQ(wlf_open((dir / "link").c_str(), O_RDWR | O_CREAT, 0666, nullptr, &f, &err), 0);
    EXPECT_STREQ(wlf_file_target(f), (dir / "real").c_str());
    EXPECT_EQ(wlf_file_kind(f), WLF_COMMIT_RENAME);
    int fd = wlf_file_fd(f);
    char buf[8] = {};
    EXPECT_EQ(::pread(fd, buf, sizeof buf, 0), 3);
    EXPECT_STREQ(buf, "old");
    EXPECT_EQ(::pwrite(fd, "N", 1, 0), 1);
    int kind = -1;
    EXPECT_EQ(wlf_commit(f, &kind, &err), 0);
    EXPECT_EQ(kind, WLF_COMMIT_RENAME);
    EXPECT_EQ(read_file(dir / "real"), "Nld");
    EXPECT_EQ(list_names(dir.path()), (Names{"link", "real"}));
}

TEST(AtomicWriteCApi, PoisonedFileFailsCommitAndKeepsTarget) {
    TempDir dir;
    write_file(dir / "f", "old");
    ino_t before = lstat_or_die(dir / "f").st_ino;
    wlf_file *f = nullptr;
    wlf_error err{};
    ASSERT_EQ(wlf_open((dir / "f").c_str(), O_WRONLY | O_TRUNC, 0666, nullptr, &f, &err), 0);
    ASSERT_EQ(::write(wlf_file_fd(f), "partial", 7), 7);
    wlf_file_poison(f, EIO);
    wlf_file_poison(f, ENOSPC);  // the first error is the one reported
    EXPECT_EQ(wlf_commit(f, nullptr, &err), EIO);
    EXPECT_EQ(err.code, EIO);
    ASSERT_NE(err.op, nullptr);
    EXPECT_GT(std::strlen(err.op), 0u);
    EXPECT_STREQ(err.path, (dir / "f").c_str());
    EXPECT_EQ(read_file(dir / "f"), "old");
    EXPECT_EQ(lstat_or_die(dir / "f").st_ino, before);
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteCApi, DiscardLeavesNothing) {
    TempDir dir;
    write_file(dir / "f", "old");
    wlf_file *f = nullptr;
    ASSERT_EQ(wlf_open((dir / "f").c_str(), O_WRONLY | O_APPEND, 0666, nullptr, &f, nullptr), 0);
    ASSERT_EQ(::write(wlf_file_fd(f), "x", 1), 1);
    wlf_discard(f);
    ASSERT_EQ(wlf_open((dir / "new").c_str(), O_WRONLY | O_CREAT, 0666, nullptr, &f, nullptr), 0);
    wlf_discard(f);
    EXPECT_EQ(read_file(dir / "f"), "old");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteCApi, WriteContentOneShot) {
    TempDir dir;
    std::string data = pattern(70000, 4);
    EXPECT_EQ(wlf_write_content((dir / "f").c_str(), data.data(), data.size(), nullptr, nullptr), 0);
    EXPECT_EQ(read_file(dir / "f"), data);
    EXPECT_EQ(wlf_write_content((dir / "f").c_str(), "", 0, nullptr, nullptr), 0);
    EXPECT_EQ(read_file(dir / "f"), "");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteCApi, ErrorNamesStepAndPath) {
    TempDir dir;
    fs::path missing = dir / "nodir" / "f";
    wlf_write_options opt;
    wlf_write_options_init(&opt);
    opt.use_lock = 0;
    wlf_error err{};
    EXPECT_EQ(wlf_write_content(missing.c_str(), "x", 1, &opt, &err), ENOENT);
    EXPECT_EQ(err.code, ENOENT);
    ASSERT_NE(err.op, nullptr);
    EXPECT_GT(std::strlen(err.op), 0u);
    EXPECT_NE(std::string(err.path).find((dir / "nodir").string()), std::string::npos) << err.path;

    wlf_error bad{};
    wlf_file *f = reinterpret_cast<wlf_file *>(1);
    EXPECT_EQ(wlf_open((dir / "f").c_str(), O_RDONLY, 0666, nullptr, &f, &bad), EINVAL);
    EXPECT_EQ(f, nullptr);
    EXPECT_EQ(bad.code, EINVAL);
    EXPECT_EQ(list_names(dir.path()), Names{});
}

// ---- concurrency -----------------------------------------------------------

TEST(AtomicWriteConcurrency, ReadersNeverSeeTornOrEmptyContent) {
    TempDir dir;
    constexpr int kWriters = 4, kWrites = 50;
    std::vector<std::string> contents;
    for (int i = 0; i < kWriters * kWrites + 1; ++i)
        contents.push_back(std::to_string(i) + ":" + pattern(8192 + static_cast<std::size_t>(i) * 37, i));
    std::set<std::string> valid(contents.begin(), contents.end());
    write_file(dir / "f", contents.back());

    std::atomic<bool> done{false};
    std::atomic<int> reads{0}, bad{0}, errors{0};
    std::thread reader([&] {
        while (!done.load()) {
            std::string s = read_file(dir / "f");
            ++reads;
            if (!valid.count(s)) ++bad;
        }
    });
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
        writers.emplace_back([&, w] {
            for (int i = 0; i < kWrites; ++i) {
                try {
                    wl::atomic_write_content_with_lock(dir / "f", contents[static_cast<std::size_t>(w * kWrites + i)]);
                } catch (const wl::Error &) {
                    ++errors;
                }
            }
        });
    }
    for (auto &t : writers) t.join();
    done = true;
    reader.join();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(bad.load(), 0) << "of " << reads.load() << " reads";
    EXPECT_GT(reads.load(), 0);
    EXPECT_TRUE(valid.count(read_file(dir / "f")));
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

int main(int argc, char **argv) {
    ::testing::InitGoogleTest(&argc, argv);
    // Before any thread exists: unshare gives only the calling thread the new
    // namespace, and every later thread and child inherits it.
    if (geteuid() == 0) {
        if (::unshare(CLONE_NEWNS) == 0 && ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0)
            g_private_mounts = true;
        else
            g_unshare_error = errno;
    }
    return RUN_ALL_TESTS();
}
