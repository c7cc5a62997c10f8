// Seeding appends: the old content copied into the temp, with and without
// reflinks.
#include "replace_support.hpp"

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
    REQUIRE_BUILD_FEATURE(WLF_HAVE_FICLONE, "FICLONE");
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

// Without reflinks the seed is a copy: of a sparse file's data extents only,
// its holes left holes (a copy of every byte allocated all 64 MiB of zeros,
// and failed with ENOSPC where the file's data fits). On tmpfs, which keeps
// holes and shares no extents.
TEST(AtomicWriteSeed, SparseFileKeepsItsHolesWithoutReflink) {
    REQUIRE_PRIVATE_MOUNTS();
    TempDir dir;
    fs::create_directory(dir / "t");
    ASSERT_EQ(do_mount("tmpfs", dir / "t", "tmpfs", 0, "size=16m"), 0);
    MountGuard t(dir / "t");
    fs::path p = dir / "t" / "f";
    std::string data = pattern(8192, 9);
    {
        int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::pwrite(fd, data.data(), data.size(), 1 << 20), static_cast<ssize_t>(data.size()));
        ASSERT_EQ(::ftruncate(fd, 64 << 20), 0);
        ::close(fd);
    }
    std::string want(64 << 20, '\0');
    want.replace(1 << 20, data.size(), data);
    for (const char *mode : {"a", "r+"}) {
        SCOPED_TRACE(mode);
        auto f = wl::atomic_write(p, mode);
        if (std::string(mode) == "r+") f.seek(0, SEEK_END);
        f.write(std::string(mode) + "\n");
        f.commit();
        want += std::string(mode) + "\n";
        struct stat st = lstat_or_die(p);
        EXPECT_EQ(st.st_size, static_cast<off_t>(want.size()));
        // The data, the last block and tmpfs's rounding: far below 16 MiB.
        EXPECT_LT(st.st_blocks * 512, 1 << 20);
    }
    EXPECT_EQ(read_file(p), want);
    EXPECT_EQ(list_names(dir / "t"), Names{"f"});
}

// A file system that reserves blocks (fallocate KEEP_SIZE) but cannot punch
// holes (seccomp refuses FALLOC_FL_PUNCH_HOLE): a staged in-place commit of
// sparse content writes zeros under its holes, in the target's holes too.
// Those need blocks, which the reservation must take first, or the zeros
// meet ENOSPC half way and the target is left torn. (Its plain run fits:
// O_TRUNC frees the old blocks.)
TEST(AtomicWriteSeed, SparseInPlaceWithoutPunchReservesTheZeros) {
    REQUIRE_BUILD_FEATURE(WLF_HAVE_FALLOCATE, "fallocate (the reservation)");
    REQUIRE_PRIVATE_MOUNTS();
    TempDir dir;
    fs::create_directory(dir / "t");
    ASSERT_EQ(do_mount("tmpfs", dir / "t", "tmpfs", 0, "size=4m"), 0);
    MountGuard t(dir / "t");
    fs::path p = dir / "t" / "f";
    std::string old = pattern(512 << 10, 3);
    {
        int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::pwrite(fd, old.data(), old.size(), (8 << 20) - (512 << 10)), static_cast<ssize_t>(old.size()));
        ::close(fd);
    }
    ASSERT_EQ(::link(p.c_str(), (dir / "t" / "g").c_str()), 0);
    {
        int fd = ::open((dir / "t" / "fill").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0);
        std::string fill(2 << 20, 'x');
        ASSERT_EQ(::write(fd, fill.data(), fill.size()), static_cast<ssize_t>(fill.size()));
        ::close(fd);
    }
    std::string before = read_file(p);
    std::string data = pattern(1 << 20, 4);
    std::string want(8 << 20, '\0');
    want.replace(0, 4, "head");
    want.replace(7 << 20, data.size(), data);
    int seccomp = -1;
    bool committed = false;
    std::thread th([&] {
        seccomp = wlf_test::fail_syscall_in_this_thread(__NR_fallocate, EOPNOTSUPP, 1, FALLOC_FL_PUNCH_HOLE);
        if (seccomp != 0) return;
        try {
            auto f = wl::atomic_write(p, "w");
            f.write("head");
            f.seek(7 << 20, SEEK_SET);
            f.write(data);
            f.commit();
            committed = true;
        } catch (const std::exception &) {
        }
    });
    th.join();
    if (seccomp != 0) GTEST_SKIP() << "no seccomp filter here: " << strerror(seccomp);
    std::string now = read_file(p);
    if (committed)
        EXPECT_TRUE(now == want) << "committed, but the content differs";
    else
        EXPECT_TRUE(now == before) << "failed, and the old content is gone (" << now.size() << " bytes)";
    EXPECT_EQ(lstat_or_die(p).st_nlink, 2u);
}
