// What the replacement tests (tests/unit/replace/*_test.cpp) share: scratch
// mounts, guards for umask, inode flags and directory watches, running as
// another user, and reading back what a replacement left. Every test binary
// of this folder links main.cpp, which enters a private mount namespace first.
#pragma once

#include <gtest/gtest.h>
#include <wrap_lockfile/wrap_lockfile.h>
#include <wrap_lockfile/wrap_lockfile.hpp>

#include "build_features.hpp"
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

namespace wlf_replace_test {

// Default write options with the lock on (1) or off (0).
inline wlf_write_options options_with_lock(int use_lock) {
    wlf_write_options opt;
    wlf_write_options_init(&opt);
    opt.use_lock = use_lock;
    return opt;
}

// Set by main() (main.cpp): whether this process has a private mount
// namespace, else why not.
extern bool g_private_mounts;
extern int g_unshare_error;

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
inline std::string pattern(std::size_t size, unsigned seed) {
    std::string s(size, '\0');
    uint32_t x = seed * 2654435761u + 1;
    for (auto &c : s) {
        x = x * 1103515245u + 12345u;
        c = static_cast<char>('a' + (x >> 16) % 26);
    }
    return s;
}

inline int do_mount(const char *source, const fs::path &target, const char *type, unsigned long flags,
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

inline std::string read_fd_all(int fd) {
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

inline std::string xattr_of(const fs::path &p, const char *name) {
    ssize_t n = ::lgetxattr(p.c_str(), name, nullptr, 0);
    if (n < 0) return "<" + std::string(std::strerror(errno)) + ">";
    std::string v(static_cast<std::size_t>(n), '\0');
    n = ::lgetxattr(p.c_str(), name, v.data(), v.size());
    v.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
    return v;
}

inline std::string readlink_of(const fs::path &p) { return fs::read_symlink(p).string(); }

// open(O_TMPFILE) fails like on a file system without it, in the calling
// thread only; other threads are unaffected.
inline int deny_o_tmpfile_in_this_thread() {
    return wlf_test::fail_syscall_in_this_thread(__NR_openat, EOPNOTSUPP, 2, 020000000 /* __O_TMPFILE bit */);
}

// FIEMAP flags of the first extent of fd (after syncing), or -1.
inline long first_extent_flags(int fd) {
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
inline int directory_fds_of(const fs::path &dir) {
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
inline bool flock_is_held(const fs::path &lock_file) {
    int fd = ::open(lock_file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::close(fd);
    return held;
}

// ---- helpers for access checks, inode attributes and watched directories ----

inline constexpr uid_t kNobody = 65534;  // also how an unmapped owner shows in a user namespace
// An ordinary uid without a passwd entry: unlike 65534, its files take the
// owner shortcut of the access check (owner bits, no faccessat).
inline constexpr uid_t kPlainUser = 4321;

// True if others may search every directory from / down to `dir`.
inline bool searchable_by_others(const fs::path &dir) {
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
inline std::array<int, 3> try_replace(const fs::path &p, int flags, const std::string &content) {
    wlf_file *f = nullptr;
    int open_rc = wlf_open_flags(p.c_str(), flags, 0666, nullptr, &f, nullptr);
    if (open_rc != 0) return {open_rc, -1, -1};
    if (::write(wlf_file_fd(f), content.data(), content.size()) != static_cast<ssize_t>(content.size()))
        wlf_file_poison(f, errno ? errno : EIO);
    int kind = -1;
    int commit_rc = wlf_commit(f, &kind, nullptr);
    return {0, commit_rc, kind};
}

// Sets or clears an inode flag (FS_IMMUTABLE_FL, FS_APPEND_FL) as chattr
// +i/+a does. 0 or errno.
inline int set_inode_flag(const fs::path &p, int flag, bool on) {
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
inline int statx_attribute(const fs::path &p, uint64_t attr) {
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

inline bool contains(const Names &names, const std::string &name) {
    return std::find(names.begin(), names.end(), name) != names.end();
}


}  // namespace wlf_replace_test

using namespace wlf_replace_test;
