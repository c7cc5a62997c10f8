// The lock file of a plain target: somebody else's stays as it is, ours goes
// after release, keep_lock_file never makes one next to a link.
#include "replace_support.hpp"

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
    ASSERT_EQ(wlf_open_flags(t.c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, &opt, &f, &err), 0)
        << err.op << " " << err.path;
    EXPECT_TRUE(flock_is_held(lock));
    EXPECT_EQ(wlf_lock_holder(t.c_str()), wlf_test::seen_holder(::getpid()));
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
        ASSERT_EQ(wlf_open_flags(t.c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, nullptr, &f, &err), 0)
            << err.op << " " << err.path;
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

// A new target's temp (O_TMPFILE) is linked straight to the target's name:
// the directory sees the lock file and the target appear, never a temp name
// (a directory watch tells). An existing target still goes through the
// per-target temp name and a rename.
TEST(AtomicWriteLockFile, NewTargetIsLinkedStraightToItsName) {
    REQUIRE_BUILD_FEATURE(WLF_HAVE_O_TMPFILE, "O_TMPFILE (temps are named)");
    TempDir dir;
    CreateWatch watch(dir.path());
    EXPECT_EQ(wl::atomic_write_content_with_lock(dir / "t", "new"), wl::CommitKind::rename);
    EXPECT_EQ(read_file(dir / "t"), "new");
    EXPECT_EQ(watch.created(), (Names{"t.lock", "t"}));
    EXPECT_EQ(wl::atomic_write_content_with_lock(dir / "t", "newer"), wl::CommitKind::rename);
    Names again = watch.created();
    EXPECT_EQ(again.size(), 3u) << "lock file, temp name, rename onto t";
    EXPECT_EQ(read_file(dir / "t"), "newer");
    EXPECT_EQ(list_names(dir.path()), Names{"t"});
}

// A new target that a writer without the lock creates while the
// replacement is pending: the commit replaces it, as it replaces any
// existing target (the straight link gives EEXIST, and the temp is renamed
// over it instead), and nothing is left behind.
TEST(AtomicWriteLockFile, NewTargetCreatedMeanwhileIsReplaced) {
    TempDir dir;
    wlf_file *f = nullptr;
    wlf_error err{};
    ASSERT_EQ(wlf_open_flags((dir / "t").c_str(), WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_TRUNCATE, 0666, nullptr,
                             &f, &err),
              0)
        << err.code;
    ASSERT_EQ(::write(wlf_file_fd(f), "ours", 4), 4);
    write_file(dir / "t", "unlocked writer");
    int kind = -1;
    EXPECT_EQ(wlf_commit(f, &kind, &err), 0) << err.code;
    EXPECT_EQ(kind, WLF_COMMIT_RENAME);
    EXPECT_EQ(read_file(dir / "t"), "ours");
    EXPECT_EQ(list_names(dir.path()), Names{"t"});
}
