// Failures leave the target and the directory as they were: read-only file
// systems, a full disk, a missing directory.
#include "replace_support.hpp"

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
