// Special targets (README, "Special targets"): hard links, unwritable
// directories, bind mounts, FIFOs, devices, /proc files, and no probe lock
// files under /dev.
#include "replace_support.hpp"

#include <optional>

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

// An in-place commit writes only the file the open looked at, through the
// library's own descriptor of it: a file renamed over the name meanwhile (by
// a writer that does not lock) was never opened by the program and is kept;
// the file opened gets the content, as the program's descriptor would have
// written it (its other name shows it).
TEST(AtomicWriteSpecial, InPlaceCommitNeverWritesAFileRenamedOverTheTarget) {
    TempDir dir;
    write_file(dir / "a", "old");
    fs::create_hard_link(dir / "a", dir / "b");
    write_file(dir / "theirs", "their newer file");
    ino_t theirs = lstat_or_die(dir / "theirs").st_ino;
    auto f = wl::atomic_write(dir / "a", "w");
    ASSERT_EQ(f.kind(), wl::CommitKind::in_place);
    f.write("ours");
    fs::rename(dir / "theirs", dir / "a");
    EXPECT_EQ(code_of<wl::WriteFailed>([&] { f.commit(); }), 0);
    EXPECT_EQ(read_file(dir / "a"), "their newer file");
    EXPECT_EQ(lstat_or_die(dir / "a").st_ino, theirs);
    EXPECT_EQ(read_file(dir / "b"), "ours");
    EXPECT_EQ(list_names(dir.path()), (Names{"a", "b"}));
}

// The same with a FIFO renamed over the name: the commit neither blocks on
// it (no reader) nor opens or writes it.
TEST(AtomicWriteSpecial, InPlaceCommitNeverBlocksOnAFifoRenamedOverTheTarget) {
    TempDir dir;
    write_file(dir / "a", "old");
    fs::create_hard_link(dir / "a", dir / "b");
    ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
    auto f = wl::atomic_write(dir / "a", "w");
    ASSERT_EQ(f.kind(), wl::CommitKind::in_place);
    f.write("ours");
    fs::rename(dir / "fifo", dir / "a");
    EXPECT_EQ(code_of<wl::WriteFailed>([&] { f.commit(); }), 0);
    EXPECT_TRUE(S_ISFIFO(lstat_or_die(dir / "a").st_mode));
    EXPECT_EQ(read_file(dir / "b"), "ours");
    EXPECT_EQ(list_names(dir.path()), (Names{"a", "b"}));
}

// A single-file bind mount whose source is replaced meanwhile (another file
// bound over the name): the in-place commit writes neither.
TEST(AtomicWriteSpecial, InPlaceCommitNeverWritesAnotherFileBoundOverTheTarget) {
    REQUIRE_PRIVATE_MOUNTS();
    TempDir dir;
    write_file(dir / "target", "target's own");
    write_file(dir / "source", "old source");
    write_file(dir / "other", "other's own");
    ASSERT_EQ(do_mount((dir / "source").c_str(), dir / "target", nullptr, MS_BIND), 0);
    MountGuard bind(dir / "target");
    auto f = wl::atomic_write(dir / "target", "w");
    f.write("new");
    ASSERT_EQ(::umount2((dir / "target").c_str(), MNT_DETACH), 0);
    ASSERT_EQ(do_mount((dir / "other").c_str(), dir / "target", nullptr, MS_BIND), 0);
    EXPECT_EQ(code_of<wl::WriteFailed>([&] { f.commit(); }), ESTALE);
    EXPECT_EQ(read_file(dir / "other"), "other's own");
    EXPECT_EQ(read_file(dir / "source"), "old source");
    EXPECT_EQ(list_names(dir.path()), (Names{"other", "source", "target"}));
}

// Another user's file we may write (mode 0666, root's) in a directory we
// own: a replacement would be ours, and change who may read the file, so it
// is written in place under the lock. Owner, mode and inode stay; nobody's
// content is there.
TEST(AtomicWriteSpecial, AnotherUsersFileWeMayWriteIsWrittenInPlaceKeepingItsOwner) {
    REQUIRE_ROOT();
    SharedDir shared(0755);
    fs::path d = shared / "d";
    fs::create_directory(d);
    ASSERT_EQ(::chown(d.c_str(), 65534, 65534), 0);
    fs::path file = d / "f";
    write_file(file, "root's old content", 0666);
    ASSERT_EQ(::chmod(file.c_str(), 0666), 0);
    ino_t before = lstat_or_die(file).st_ino;
    struct Report {
        int open_rc, kind, commit_rc, commit_kind;
    } r{};
    bool ok = run_as_nobody(
        [&] {
            Report c{};
            wlf_file *f = nullptr;
            c.open_rc = wlf_open_flags(file.c_str(), WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_TRUNCATE, 0666,
                                       nullptr, &f, nullptr);
            if (c.open_rc == 0) {
                c.kind = wlf_file_kind(f);
                if (::write(wlf_file_fd(f), "nobody's", 8) != 8) wlf_file_poison(f, errno);
                c.commit_rc = wlf_commit(f, &c.commit_kind, nullptr);
            }
            return c;
        },
        &r);
    ASSERT_TRUE(ok) << "child failed";
    EXPECT_EQ(r.open_rc, 0);
    EXPECT_EQ(r.kind, WLF_COMMIT_IN_PLACE);
    EXPECT_EQ(r.commit_rc, 0);
    EXPECT_EQ(r.commit_kind, WLF_COMMIT_IN_PLACE);
    EXPECT_EQ(read_file(file), "nobody's");
    struct stat st = lstat_or_die(file);
    EXPECT_EQ(st.st_ino, before);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(st.st_mode & 07777, 0666u);
    EXPECT_EQ(list_names(d), Names{"f"});
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
            c.open_rc = wlf_open_flags(file.c_str(), WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_TRUNCATE, 0666, &opt,
                                       &f, nullptr);
            if (c.open_rc == 0) {
                c.kind = wlf_file_kind(f);
                if (::write(wlf_file_fd(f), "new", 3) != 3) wlf_file_poison(f, errno);
                c.commit_rc = wlf_commit(f, &c.commit_kind, nullptr);
            }
            // The same, locked through an existing lock file that is kept.
            wlf_write_options lopt;
            wlf_write_options_init(&lopt);
            lopt.lock.keep_lock_file = 1;
            c.locked_rc = wlf_open_flags(locked.c_str(), WLF_OPEN_WRITE | WLF_OPEN_APPEND, 0666, &lopt, &f, nullptr);
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

// A /dev of this binary's private mount namespace, so that a probe that ran
// would create its file there and not in the machine's /dev: a tmpfs with a
// null device, and with mount_shm() an ordinary tmpfs at /dev/shm below it.
class PrivateDev : public ::testing::Test {
protected:
    void SetUp() override {
        REQUIRE_PRIVATE_MOUNTS();
        ASSERT_EQ(do_mount("tmpfs", "/dev", "tmpfs", 0, "size=64k,mode=755"), 0);
        dev_.emplace("/dev");
        ASSERT_EQ(::mknod("/dev/null", S_IFCHR | 0666, makedev(1, 3)), 0) << std::strerror(errno);
    }
    void mount_shm() {
        ASSERT_EQ(::mkdir("/dev/shm", 01777), 0) << std::strerror(errno);
        ASSERT_EQ(do_mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=64k,mode=1777"), 0);
        shm_.emplace("/dev/shm");
    }
    std::optional<MountGuard> dev_, shm_;  // detached in reverse: /dev/shm first
};

// A device node under /dev/ is passed through without the lock-first probe:
// no "/dev/null.lock" appears even for a moment.
TEST_F(PrivateDev, DeviceUnderDevGetsNoProbeLockFile) {
    CreateWatch watch("/dev");
    EXPECT_EQ(wl::atomic_write_content_with_lock("/dev/null", "discarded"), wl::CommitKind::passthrough);
    // Spellings that reach /dev without starting with "/dev/" are compared
    // normalized.
    for (const char *path : {"/dev/null", "//dev/null", "/./dev/null", "/tmp/../dev/null"}) {
        wlf_file *f = nullptr;
        ASSERT_EQ(wlf_open_flags(path, WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, nullptr, &f, nullptr), 0) << path;
        EXPECT_EQ(wlf_file_kind(f), WLF_COMMIT_PASSTHROUGH) << path;
        EXPECT_EQ(wlf_commit(f, nullptr, nullptr), 0) << path;
    }
    EXPECT_EQ(watch.created(), Names{});
    EXPECT_EQ(list_names("/dev"), Names{"null"});
}

// An ordinary tmpfs mounted below /dev (/dev/shm) is a place for files like
// any other: the lock-first probe runs there (a symlink's path sees its
// "<link>.lock" come and go, which only the probe makes), while a device in
// /dev itself still gets none.
TEST_F(PrivateDev, TmpfsBelowDevTakesTheProbe) {
    ASSERT_NO_FATAL_FAILURE(mount_shm());
    write_file("/dev/shm/real", "old");
    fs::create_symlink("real", "/dev/shm/link");
    CreateWatch shm_watch("/dev/shm");
    CreateWatch dev_watch("/dev");
    EXPECT_EQ(wl::atomic_write_content_with_lock("/dev/shm/link", "new"), wl::CommitKind::rename);
    EXPECT_EQ(read_file("/dev/shm/real"), "new");
    EXPECT_TRUE(contains(shm_watch.created(), "link.lock")) << "the probe did not run on the tmpfs at /dev/shm";
    EXPECT_EQ(list_names("/dev/shm"), (Names{"link", "real"}));
    // /dev's own file system: still no probe.
    EXPECT_EQ(wl::atomic_write_content_with_lock("/dev/null", "discarded"), wl::CommitKind::passthrough);
    EXPECT_EQ(dev_watch.created(), Names{});
    EXPECT_EQ(list_names("/dev"), (Names{"null", "shm"}));
}

// ".." after a symlink is resolved by the kernel, not lexically: spelled
// through the tmpfs at /dev/shm, /dev/shm/up/../null is /dev/null when "up"
// links to a directory of /dev's own file system. No probe lock file may
// appear in /dev for it.
TEST_F(PrivateDev, DotDotAfterASymlinkUnderDevGetsNoProbe) {
    ASSERT_EQ(::mkdir("/dev/sub", 0755), 0) << std::strerror(errno);
    ASSERT_NO_FATAL_FAILURE(mount_shm());
    fs::create_symlink("/dev/sub", "/dev/shm/up");
    CreateWatch dev_watch("/dev");
    EXPECT_EQ(wl::atomic_write_content_with_lock("/dev/shm/up/../null", "discarded"), wl::CommitKind::passthrough);
    EXPECT_EQ(dev_watch.created(), Names{});
    EXPECT_EQ(list_names("/dev"), (Names{"null", "shm", "sub"}));
}
