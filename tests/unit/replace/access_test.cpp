// Access checks at open, the errors open(2) would give: other users' files,
// owners without the write bit, ACLs, user namespaces, read-only bind mounts;
// immutable and append-only inodes.
#include "replace_support.hpp"

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
        for (int flags : {WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_TRUNCATE,
                          WLF_OPEN_WRITE | WLF_OPEN_APPEND, WLF_OPEN_WRITE | WLF_OPEN_READ}) {
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
        for (int flags : {WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, WLF_OPEN_WRITE | WLF_OPEN_APPEND,
                          WLF_OPEN_WRITE | WLF_OPEN_READ | WLF_OPEN_TRUNCATE}) {
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
        auto r = run_as_user<3>(uid, [&] { return try_replace(t, WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, "new"); });
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
            auto rw_trunc = try_replace(t, WLF_OPEN_WRITE | WLF_OPEN_READ | WLF_OPEN_TRUNCATE, "rw");
            auto rw = try_replace(t, WLF_OPEN_WRITE | WLF_OPEN_READ, "rw");
            return {rw_trunc[0], rw_trunc[1], rw[0], rw[1], 0, 0};
        });
        ASSERT_TRUE(r.has_value()) << "child failed";
        EXPECT_EQ((*r)[0], EACCES) << "O_RDWR|O_TRUNC: commit " << (*r)[1];
        EXPECT_EQ((*r)[2], EACCES) << "O_RDWR: commit " << (*r)[3];
        EXPECT_EQ(read_file(t), "secret");
        EXPECT_EQ(lstat_or_die(t).st_ino, before);
        EXPECT_EQ(list_names(dir.path()), Names{"f"});

        auto w = run_as_user<3>(uid, [&] { return try_replace(t, WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, "written"); });
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

    auto denied =
        run_as_user<3>(kPlainUser, [&] { return try_replace(t, WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, "plain"); });
    ASSERT_TRUE(denied.has_value()) << "child failed";
    EXPECT_EQ((*denied)[0], EACCES);
    EXPECT_EQ(read_file(t), "root's");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});

    auto granted =
        run_as_user<3>(kNobody, [&] { return try_replace(t, WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, "by acl"); });
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
        v[2] = try_replace(theirs, WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, "new")[0];
        auto r = try_replace(ours, WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, "new ours");
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
        for (int flags : {WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, WLF_OPEN_WRITE | WLF_OPEN_APPEND,
                          WLF_OPEN_WRITE | WLF_OPEN_READ, WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_TRUNCATE}) {
            SCOPED_TRACE("flags " + std::to_string(flags) + ", use_lock " + std::to_string(use_lock));
            wlf_write_options opt = options_with_lock(use_lock);
            wlf_file *f = reinterpret_cast<wlf_file *>(1);
            wlf_error err{};
            int rc = wlf_open_flags(target.c_str(), flags, 0666, &opt, &f, &err);
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
        for (int flags : {WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_TRUNCATE,
                          WLF_OPEN_WRITE | WLF_OPEN_APPEND, WLF_OPEN_WRITE | WLF_OPEN_READ}) {
            SCOPED_TRACE("flags " + std::to_string(flags) + ", use_lock " + std::to_string(use_lock));
            wlf_write_options opt = options_with_lock(use_lock);
            wlf_file *f = reinterpret_cast<wlf_file *>(1);
            wlf_error err{};
            int rc = wlf_open_flags(t.c_str(), flags, 0666, &opt, &f, &err);
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
    REQUIRE_BUILD_FEATURE(WLF_HAVE_STATX, "statx (the append-only attribute)");
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
    for (int flags :
         {WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_TRUNCATE, int{WLF_OPEN_WRITE},
          WLF_OPEN_WRITE | WLF_OPEN_READ, WLF_OPEN_WRITE | WLF_OPEN_APPEND | WLF_OPEN_TRUNCATE}) {
        SCOPED_TRACE("flags " + std::to_string(flags));
        wlf_file *f = reinterpret_cast<wlf_file *>(1);
        wlf_error err{};
        int rc = wlf_open_flags(t.c_str(), flags, 0666, nullptr, &f, &err);
        if (rc == 0) wlf_discard(f);
        EXPECT_EQ(rc, EPERM);
        EXPECT_EQ(f, nullptr);
        EXPECT_EQ(err.code, EPERM);
    }
    EXPECT_EQ(read_file(t), "old\n");
    EXPECT_EQ(list_names(dir.path()), Names{"log"});

    wlf_file *f = nullptr;
    wlf_error err{};
    ASSERT_EQ(wlf_open_flags(t.c_str(), WLF_OPEN_WRITE | WLF_OPEN_APPEND, 0666, nullptr, &f, &err), 0)
        << err.op << " " << err.path;
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
        ASSERT_EQ(wlf_open_flags(t.c_str(), WLF_OPEN_WRITE | WLF_OPEN_APPEND, 0666, &opt, &f, &err), 0)
            << err.op << " " << err.path;
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
