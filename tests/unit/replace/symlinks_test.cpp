// Writing through symlinks: links stay links, the temp and the lock live in the
// final target's directory, and the lock-first probe never waits for, nor
// takes over, a lock file next to the link.
#include "replace_support.hpp"

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
    int rc =
        wlf_open_flags((dir / "link").c_str(), WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_TRUNCATE | WLF_OPEN_NOFOLLOW,
                       0666, nullptr, &f, &err);
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
