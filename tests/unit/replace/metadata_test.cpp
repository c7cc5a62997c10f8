// Metadata carried over to the replacement: mode, owner, xattrs, ACLs; the
// mode of a new file.
#include "replace_support.hpp"

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
