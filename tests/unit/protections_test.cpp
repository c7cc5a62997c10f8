// Kernel protections kept by the library (README "What one replacement
// does", step 2): where the program's own open(2) of a path would be refused
// (fs.protected_symlinks, fs.protected_regular, fs.protected_fifos in sticky
// directories), a replacement of that path is refused with the same errno
// and the file the link or the other user's file names stays byte for byte
// as it was; with the sysctl off the library does what open(2) does. And the
// replacement's ACL is the target's: none stays none in a directory with a
// default ACL. The hostile user is `nobody`; the sysctls are restored.
#include "test_support.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace fs = std::filesystem;
using wlf_test::Child;
using wlf_test::read_file;
using wlf_test::write_file;

namespace {

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

// Sets /proc/sys/fs/<name> for one check and restores the old value, so
// other tests running at the same time see the change only briefly.
class Sysctl {
public:
    Sysctl(const std::string &name, int value) : path_("/proc/sys/fs/" + name) {
        std::ifstream in(path_);
        ok_ = static_cast<bool>(in >> old_) && put(value);
    }
    ~Sysctl() {
        if (ok_) put(old_);
    }
    bool ok() const { return ok_; }

private:
    bool put(int v) {
        std::ofstream out(path_);
        out << v << '\n';
        out.flush();
        return static_cast<bool>(out);
    }
    std::string path_;
    int old_ = 0;
    bool ok_ = false;
};

// Runs fn as nobody in a child: what the hostile user plants.
bool as_nobody(const std::function<int()> &fn) {
    Child c([&] {
        if (setgroups(0, nullptr) != 0 || setgid(kNogroup) != 0 || setuid(kNobody) != 0) return 3;
        return fn();
    });
    return c.wait() == 0;
}

// The errno of the program's own open(2) (0 if it was allowed), without
// writing: flags without O_TRUNC, and a descriptor closed right away.
int plain_open_errno(const fs::path &p, int flags) {
    int fd = ::open(p.c_str(), (flags & ~O_TRUNC) | O_NONBLOCK | O_CLOEXEC, 0666);
    if (fd < 0) return errno;
    ::close(fd);
    return 0;
}

// What wlf_write_content (O_WRONLY|O_CREAT|O_TRUNC) gives for p.
int library_write(const fs::path &p, const std::string &content) {
    wlf_error err;
    return wlf_write_content(p.c_str(), content.data(), content.size(), nullptr, &err);
}

// A seeding open (O_RDWR|O_CREAT, as fopen "r+" with creation, or "a+"),
// committed: the mode that reads the target through the kernel's answer.
int library_update(const fs::path &p, const std::string &append) {
    wlf_file *f = nullptr;
    wlf_error err;
    if (int rc = wlf_open_flags(p.c_str(), WLF_OPEN_WRITE | WLF_OPEN_READ | WLF_OPEN_CREATE | WLF_OPEN_APPEND, 0666,
                                nullptr, &f, &err))
        return rc;
    if (::write(wlf_file_fd(f), append.data(), append.size()) != static_cast<ssize_t>(append.size())) {
        int e = errno;
        wlf_discard(f);
        return e;
    }
    return wlf_commit(f, nullptr, &err);
}

// A root-owned scratch tree the hostile user can reach: base (0755) holds
// a sticky, world-writable "shared" (like /tmp) and root's private "home"
// (0700) with the victim file.
class ProtectionsTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (geteuid() != 0) GTEST_SKIP() << "needs root (the attacker is nobody, the sysctls are global)";
        fs::permissions(dir_.path(), fs::perms(0755));
        shared_ = dir_ / "shared";
        home_ = dir_ / "home";
        ASSERT_EQ(::mkdir(shared_.c_str(), 0777), 0);
        ASSERT_EQ(::chmod(shared_.c_str(), 01777), 0);
        ASSERT_EQ(::mkdir(home_.c_str(), 0700), 0);
        victim_ = home_ / "secret";
        write_file(victim_, "root's secret\n", 0600);
    }

    // nobody plants <shared>/out -> target.
    void plant_link(const fs::path &target) {
        fs::path link = shared_ / "out";
        ASSERT_TRUE(as_nobody([&] { return ::symlink(target.c_str(), link.c_str()) == 0 ? 0 : 1; }));
    }
    // nobody's own world-writable file in dir (as an attacker leaves one for root to write into).
    void plant_file(const fs::path &dir, const std::string &content) {
        fs::path p = dir / "out";
        ASSERT_TRUE(as_nobody([&] {
            int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0666);
            if (fd < 0 || ::fchmod(fd, 0666) != 0) return 1;
            bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
            return ::close(fd) == 0 && ok ? 0 : 1;
        }));
    }

    wlf_test::TempDir dir_;
    fs::path shared_, home_, victim_;
};

TEST_F(ProtectionsTest, ProtectedSymlinksRefusesAnotherUsersLink) {
    plant_link(victim_);
    fs::path out = shared_ / "out";
    Sysctl on("protected_symlinks", 1);
    ASSERT_TRUE(on.ok());
    ASSERT_EQ(plain_open_errno(out, O_WRONLY | O_CREAT | O_TRUNC), EACCES) << "the kernel lets root follow it";
    EXPECT_EQ(library_write(out, "attacker's choice\n"), EACCES);
    EXPECT_EQ(library_update(out, "more\n"), EACCES);
    EXPECT_EQ(read_file(victim_), "root's secret\n");
    // Nothing made beside the file the link names, nor beside the link.
    EXPECT_EQ(wlf_test::list_names(home_), std::vector<std::string>{"secret"});
    EXPECT_EQ(wlf_test::list_names(shared_), std::vector<std::string>{"out"});
}

TEST_F(ProtectionsTest, ProtectedSymlinksRefusesADanglingLinkWithoutCreatingAnything) {
    fs::path fresh = home_ / "fresh";
    plant_link(fresh);
    fs::path out = shared_ / "out";
    Sysctl on("protected_symlinks", 1);
    ASSERT_TRUE(on.ok());
    ASSERT_EQ(plain_open_errno(out, O_WRONLY | O_CREAT | O_EXCL), EEXIST);  // O_EXCL never follows
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    ASSERT_LT(fd, 0);
    ASSERT_EQ(errno, EACCES);
    EXPECT_EQ(library_write(out, "new\n"), EACCES);
    EXPECT_EQ(wlf_test::list_names(home_), std::vector<std::string>{"secret"});
    EXPECT_EQ(wlf_test::list_names(shared_), std::vector<std::string>{"out"});
}

// With the sysctl at 0 the program's open of `out` is allowed, and so is
// the replacement: `written` (what `out` leads to) gets the new content.
void expect_written_as_open_does(const fs::path &out, const fs::path &written, const char *sysctl) {
    Sysctl off(sysctl, 0);
    ASSERT_TRUE(off.ok());
    ASSERT_EQ(plain_open_errno(out, O_WRONLY | O_CREAT | O_TRUNC), 0);
    EXPECT_EQ(library_write(out, "root's data\n"), 0);
    EXPECT_EQ(read_file(written), "root's data\n");
}

TEST_F(ProtectionsTest, WithoutProtectedSymlinksTheLinkIsFollowedAsOpenDoes) {
    plant_link(victim_);
    fs::path out = shared_ / "out";
    expect_written_as_open_does(out, victim_, "protected_symlinks");
    EXPECT_TRUE(fs::is_symlink(out)) << "the symlink stays a symlink";
}

TEST_F(ProtectionsTest, ProtectedRegularRefusesAnotherUsersFileInAStickyDirectory) {
    plant_file(shared_, "nobody's\n");
    fs::path out = shared_ / "out";
    struct stat before = wlf_test::lstat_or_die(out);
    for (int level : {1, 2}) {
        Sysctl on("protected_regular", level);
        ASSERT_TRUE(on.ok());
        ASSERT_EQ(plain_open_errno(out, O_WRONLY | O_CREAT | O_TRUNC), EACCES) << "level " << level;
        EXPECT_EQ(library_write(out, "root's data\n"), EACCES) << "level " << level;
        EXPECT_EQ(library_update(out, "root's data\n"), EACCES) << "level " << level;
        // Without O_CREAT the kernel does not judge it, nor does the library.
        ASSERT_EQ(plain_open_errno(out, O_WRONLY), 0);
    }
    EXPECT_EQ(read_file(out), "nobody's\n");
    EXPECT_EQ(wlf_test::lstat_or_die(out).st_ino, before.st_ino);
    EXPECT_EQ(wlf_test::list_names(shared_), std::vector<std::string>{"out"});
}

TEST_F(ProtectionsTest, ProtectedRegularLevelTwoCoversGroupWritableStickyDirectories) {
    fs::path group_dir = dir_ / "group";
    ASSERT_EQ(::mkdir(group_dir.c_str(), 0770), 0);
    ASSERT_EQ(::chown(group_dir.c_str(), 0, kNogroup), 0);
    ASSERT_EQ(::chmod(group_dir.c_str(), 01770), 0);
    plant_file(group_dir, "nobody's\n");
    fs::path out = group_dir / "out";
    {
        Sysctl two("protected_regular", 2);
        ASSERT_TRUE(two.ok());
        ASSERT_EQ(plain_open_errno(out, O_WRONLY | O_CREAT | O_TRUNC), EACCES);
        EXPECT_EQ(library_write(out, "root's data\n"), EACCES);
        EXPECT_EQ(read_file(out), "nobody's\n");
    }
    Sysctl one("protected_regular", 1);
    ASSERT_TRUE(one.ok());
    ASSERT_EQ(plain_open_errno(out, O_WRONLY | O_CREAT | O_TRUNC), 0);
    EXPECT_EQ(library_write(out, "root's data\n"), 0);
    EXPECT_EQ(read_file(out), "root's data\n");
}

TEST_F(ProtectionsTest, WithoutProtectedRegularAnotherUsersFileIsWrittenAsOpenDoes) {
    plant_file(shared_, "nobody's\n");
    fs::path out = shared_ / "out";
    expect_written_as_open_does(out, out, "protected_regular");
    EXPECT_EQ(wlf_test::lstat_or_die(out).st_uid, kNobody) << "the owner is kept";
}

TEST_F(ProtectionsTest, ProtectedFifosRefusesAnotherUsersFifo) {
    fs::path fifo = shared_ / "out";
    ASSERT_TRUE(as_nobody([&] { return ::mkfifo(fifo.c_str(), 0666) == 0 && ::chmod(fifo.c_str(), 0666) == 0 ? 0 : 1; }));
    // O_RDWR: a FIFO opened for reading and writing never waits for a peer.
    for (int level : {1, 2}) {
        Sysctl on("protected_fifos", level);
        ASSERT_TRUE(on.ok());
        ASSERT_EQ(plain_open_errno(fifo, O_RDWR | O_CREAT), EACCES) << "level " << level;
        wlf_file *f = nullptr;
        wlf_error err;
        EXPECT_EQ(
            wlf_open_flags(fifo.c_str(), WLF_OPEN_WRITE | WLF_OPEN_READ | WLF_OPEN_CREATE, 0666, nullptr, &f, &err),
            EACCES)
            << "level " << level;
    }
    Sysctl off("protected_fifos", 0);
    ASSERT_TRUE(off.ok());
    wlf_file *f = nullptr;
    wlf_error err;
    ASSERT_EQ(wlf_open_flags(fifo.c_str(), WLF_OPEN_WRITE | WLF_OPEN_READ | WLF_OPEN_CREATE, 0666, nullptr, &f, &err),
              0);
    EXPECT_EQ(wlf_file_kind(f), WLF_COMMIT_PASSTHROUGH);
    EXPECT_EQ(wlf_commit(f, nullptr, &err), 0);
}

TEST_F(ProtectionsTest, AFifoBehindAnotherUsersLinkIsNotOpened) {
    // Special files are written through, not replaced: still only where the
    // program's open could reach them.
    fs::path fifo = home_ / "fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    plant_link(fifo);
    fs::path out = shared_ / "out";
    Sysctl on("protected_symlinks", 1);
    ASSERT_TRUE(on.ok());
    ASSERT_EQ(plain_open_errno(out, O_RDWR | O_CREAT), EACCES);
    wlf_file *f = nullptr;
    wlf_error err;
    EXPECT_EQ(wlf_open_flags(out.c_str(), WLF_OPEN_WRITE | WLF_OPEN_READ | WLF_OPEN_CREATE, 0666, nullptr, &f, &err),
              EACCES);
    if (f) wlf_discard(f);
}

// ---- links that change while the writer waits for the lock ----

// A writer of `link` waits for the final target's lock (held here); the
// link is pointed elsewhere meanwhile. The program's open would now go
// elsewhere: the writer must not write where the link used to lead.
// Returns the writer's wlf_write_content result.
int write_while_link_moves(const fs::path &link, const fs::path &from, const fs::path &to) {
    wlf_lock *held = nullptr;
    wlf_error err;
    if (wlf_lock_acquire(from.c_str(), nullptr, &held, &err) != 0) return -1;
    wlf_test::Pipe result;
    Child writer([&] {
        int rc = library_write(link, "new\n");
        return result.put(static_cast<char>(rc)) ? 0 : 1;
    });
    bool blocked = wlf_test::wait_blocked_in_syscall(writer.pid(), SYS_flock);
    fs::path tmp_link = link.string() + ".new";
    bool moved = ::symlink(to.c_str(), tmp_link.c_str()) == 0 && ::rename(tmp_link.c_str(), link.c_str()) == 0;
    wlf_lock_release(held, &err);
    int rc = wlf_test::get_byte(result.read_fd());
    if (writer.wait() != 0 || !blocked || !moved) return -1;
    return rc;
}

TEST(MovingLinkTest, AnExistingTargetSwappedUnderTheLockIsNotReplaced) {
    wlf_test::TempDir dir;
    fs::path a = dir / "a", b = dir / "b", link = dir / "link";
    write_file(a, "a\n");
    write_file(b, "b\n");
    ASSERT_EQ(::symlink(a.c_str(), link.c_str()), 0);
    ino_t a_ino = wlf_test::lstat_or_die(a).st_ino;
    EXPECT_EQ(write_while_link_moves(link, a, b), EAGAIN);
    EXPECT_EQ(read_file(a), "a\n");
    EXPECT_EQ(read_file(b), "b\n");
    EXPECT_EQ(wlf_test::lstat_or_die(a).st_ino, a_ino);
    EXPECT_EQ(wlf_test::list_names(dir.path()), (std::vector<std::string>{"a", "b", "link"}));
}

TEST(MovingLinkTest, ANewTargetBehindALinkSwappedUnderTheLockIsNotCreated) {
    wlf_test::TempDir dir;
    fs::path a = dir / "a", b = dir / "b", link = dir / "link";
    ASSERT_EQ(::symlink(a.c_str(), link.c_str()), 0);
    EXPECT_EQ(write_while_link_moves(link, a, b), EAGAIN);
    EXPECT_EQ(wlf_test::list_names(dir.path()), std::vector<std::string>{"link"});
}

// ---- ACLs: the replacement carries exactly the target's ----

// The raw access ACL of p ("" when it has none).
std::string access_acl(const fs::path &p) {
    char buf[4096];
    ssize_t n = ::lgetxattr(p.c_str(), "system.posix_acl_access", buf, sizeof buf);
    return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

class AclTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string cmd = "setfacl -d -m u:nobody:rw '" + dir_.path().string() + "' 2>/dev/null";
        if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "setfacl unavailable or no default ACLs here";
    }
    wlf_test::TempDir dir_;
};

TEST_F(AclTest, ATargetWithoutAclGainsNoneFromTheDirectoryDefault) {
    fs::path t = dir_ / "t";
    write_file(t, "old\n", 0644);
    // Made before the default ACL would apply, or stripped: no ACL.
    ASSERT_EQ(std::system(("setfacl -b '" + t.string() + "'").c_str()), 0);
    ASSERT_EQ(access_acl(t), "");
    mode_t mode = wlf_test::lstat_or_die(t).st_mode & 07777;
    ASSERT_EQ(library_write(t, "new\n"), 0);
    EXPECT_EQ(read_file(t), "new\n");
    EXPECT_EQ(access_acl(t), "") << "the directory's default ACL leaked onto the replacement";
    EXPECT_EQ(wlf_test::lstat_or_die(t).st_mode & 07777, mode);
    ASSERT_EQ(library_update(t, "more\n"), 0);
    EXPECT_EQ(read_file(t), "new\nmore\n");
    EXPECT_EQ(access_acl(t), "");
    EXPECT_EQ(wlf_test::lstat_or_die(t).st_mode & 07777, mode);
}

TEST_F(AclTest, ATargetWithAnAclKeepsExactlyIt) {
    fs::path t = dir_ / "t";
    write_file(t, "old\n", 0640);
    ASSERT_EQ(std::system(("setfacl -b -m u:daemon:r '" + t.string() + "'").c_str()), 0);
    std::string want = access_acl(t);
    mode_t mode = wlf_test::lstat_or_die(t).st_mode & 07777;
    ASSERT_NE(want, "");
    ASSERT_EQ(library_write(t, "new\n"), 0);
    EXPECT_EQ(access_acl(t), want);
    EXPECT_EQ(wlf_test::lstat_or_die(t).st_mode & 07777, mode);
}

TEST_F(AclTest, ANewTargetGetsTheInheritedDefaultAsOpenGivesIt) {
    fs::path plain = dir_ / "plain";
    int fd = ::open(plain.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0666);
    ASSERT_GE(fd, 0);
    ::close(fd);
    fs::path t = dir_ / "t";
    ASSERT_EQ(library_write(t, "new\n"), 0);
    EXPECT_NE(access_acl(t), "");
    EXPECT_EQ(access_acl(t), access_acl(plain));
    EXPECT_EQ(wlf_test::lstat_or_die(t).st_mode & 07777, wlf_test::lstat_or_die(plain).st_mode & 07777);
}

}  // namespace
