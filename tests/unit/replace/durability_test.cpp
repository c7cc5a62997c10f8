// Durability and the target's directory: both durabilities publish; how the
// directory is reached (by path or descriptor); a directory replaced while
// pending never takes the commit; relative targets after chdir.
#include "replace_support.hpp"

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
    REQUIRE_BUILD_FEATURE(WLF_HAVE_O_TMPFILE, "O_TMPFILE (a named temp is reached through the directory)");
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
            int flags = WLF_OPEN_WRITE | WLF_OPEN_CREATE | (existing ? WLF_OPEN_TRUNCATE : WLF_OPEN_EXCL);
            ASSERT_EQ(wlf_open_flags(target.c_str(), flags, 0644, &opt, &f, &err), 0) << err.op << " " << err.path;
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

// The target's directory is renamed (`mv d d2`), and perhaps a new one put
// at its path, while a write is pending. The directory is reached by path
// (full opens it only at commit): the commit never lands in a new
// directory, which was never locked; the lock file somebody keeps there is
// neither removed nor written. It goes where the locked directory went (our
// lock file is there, found by its name in /proc/self/fd): the file the
// caller opened went with it, as a plain program's writes would, and the
// commit there is checked as at the path (the lock file still ours, the
// target still the file looked at). Without /proc the commit is refused
// (ESTALE), the old file stays.
TEST(AtomicWriteDurability, DirectoryRenamedWhilePendingTakesTheCommitWhereItWent) {
    REQUIRE_BUILD_FEATURE(WLF_HAVE_O_TMPFILE, "O_TMPFILE (a named temp is reached through the directory)");
    const bool proc = fs::exists("/proc/self/fd");
    for (bool replaced : {true, false}) {
        for (int durability : {WLF_DURABILITY_FULL, WLF_DURABILITY_NONE}) {
            SCOPED_TRACE(std::string(replaced ? "replaced" : "renamed") +
                         (durability == WLF_DURABILITY_FULL ? ", full" : ", none"));
            TempDir dir;
            fs::path d = dir / "d", moved = dir / "d2";
            fs::create_directory(d);
            write_file(d / "f", "old");
            wlf_write_options opt;
            wlf_write_options_init(&opt);
            opt.durability = durability;
            wlf_file *f = nullptr;
            wlf_error err{};
            ASSERT_EQ(wlf_open_flags((d / "f").c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, &opt, &f, &err), 0)
                << err.op;
            ASSERT_EQ(::write(wlf_file_fd(f), "new", 3), 3);
            fs::rename(d, moved);
            ino_t theirs = 0;
            if (replaced) {
                fs::create_directory(d);
                write_file(d / "f.lock", "other\n");
                theirs = lstat_or_die(d / "f.lock").st_ino;
            }
            int rc = wlf_commit(f, nullptr, &err);
            if (replaced) {
                EXPECT_EQ(list_names(d), Names{"f.lock"});
                EXPECT_EQ(read_file(d / "f.lock"), "other\n");
                EXPECT_EQ(lstat_or_die(d / "f.lock").st_ino, theirs);
            } else {
                EXPECT_FALSE(fs::exists(d)) << "made at the old path";
            }
            if (proc) {
                EXPECT_EQ(rc, 0) << err.op;
                EXPECT_EQ(read_file(moved / "f"), "new");
                EXPECT_EQ(list_names(moved), Names{"f"}) << "our lock file or a temp stays behind";
            } else {
                EXPECT_EQ(rc, ESTALE);
                EXPECT_EQ(read_file(moved / "f"), "old");
                for (const auto &n : list_names(moved)) EXPECT_TRUE(n == "f" || n == "f.lock") << n;
            }
        }
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
        ASSERT_EQ(wlf_open_flags("f", WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0644, &opt, &f, &err), 0)
            << err.op << " " << err.path;
        if (wlf_open_flags("g", WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_EXCL, 0644, &opt, &g, &err) != 0) {
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
            int flags =
                c.new_file ? (WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_EXCL) : (WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE);
            ASSERT_EQ(wlf_open_flags(name.c_str(), flags, 0644, &opt, &f, &err), 0) << err.op << " " << err.path;
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
