// The temp file: its suffix, the named temp where O_TMPFILE is missing, and
// naming an O_TMPFILE at commit.
#include "replace_support.hpp"

TEST(AtomicWriteTempSuffix, SlashInSuffixIsEinvalViaCApi) {
    TempDir dir;
    write_file(dir / "f", "old");
    wlf_write_options opt;
    wlf_write_options_init(&opt);
    opt.temp_suffix = "x/y";
    wlf_error err{};
    EXPECT_EQ(wlf_write_content((dir / "f").c_str(), "new", 3, &opt, &err), EINVAL);
    EXPECT_EQ(err.code, EINVAL);
    ASSERT_NE(err.op, nullptr);
    EXPECT_EQ(read_file(dir / "f"), "old");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteTempSuffix, BadSuffixIsWriteFailedEinval) {
    TempDir dir;
    write_file(dir / "f", "old");
    for (std::string suffix : {std::string("/"), std::string(100, 's')}) {
        wl::WriteOptions opt;
        opt.temp_suffix = suffix;
        EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::atomic_write_content_with_lock(dir / "f", "new", opt); }), EINVAL);
    }
    EXPECT_EQ(read_file(dir / "f"), "old");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

// Without O_TMPFILE the temp has a name: ".<base>.<random><suffix>", removed
// by commit (renamed) and by discard.
TEST(AtomicWriteTempSuffix, NamedTempEndsWithSuffixWhenOTmpfileIsUnsupported) {
    TempDir dir;
    write_file(dir / "f", "old", 0640);
    int filter_rc = -1, probe_errno = 0;
    Names during_write, during_discard, after_discard;
    std::string content_after_discard;
    int commit_error = 0;
    std::thread t([&] {
        filter_rc = deny_o_tmpfile_in_this_thread();
        if (filter_rc != 0) return;
        int probe = ::open(dir.path().c_str(), O_TMPFILE | O_RDWR, 0600);
        probe_errno = probe < 0 ? errno : 0;
        if (probe >= 0) ::close(probe);
        wl::WriteOptions opt;
        opt.temp_suffix = ".wlftmp";
        try {
            {
                auto f = wl::atomic_write(dir / "f", "a", std::nullopt, opt);
                f.write("+discarded");
                during_discard = list_names(dir.path());
            }
            after_discard = list_names(dir.path());
            content_after_discard = read_file(dir / "f");
            auto f = wl::atomic_write(dir / "f", "w", std::nullopt, opt);
            f.write("new");
            during_write = list_names(dir.path());
            f.commit();
        } catch (const wl::Error &e) {
            commit_error = e.code().value();
        }
    });
    t.join();
    if (filter_rc != 0) GTEST_SKIP() << "cannot install a seccomp filter: " << std::strerror(filter_rc);
    ASSERT_EQ(probe_errno, EOPNOTSUPP);
    ASSERT_EQ(commit_error, 0) << std::strerror(commit_error);
    auto is_temp = [](const std::string &n) {
        return n.starts_with(".f.") && n.ends_with(".wlftmp") && n.size() > std::strlen(".f..wlftmp");
    };
    for (const Names *names : {&during_discard, &during_write}) {
        ASSERT_EQ(names->size(), 3u);
        EXPECT_EQ((*names)[1], "f");
        EXPECT_EQ((*names)[2], "f.lock");
        EXPECT_TRUE(is_temp((*names)[0])) << (*names)[0];
    }
    EXPECT_EQ(after_discard, Names{"f"});
    EXPECT_EQ(content_after_discard, "old");
    EXPECT_EQ(read_file(dir / "f"), "new");
    EXPECT_EQ(lstat_or_die(dir / "f").st_mode & 07777, 0640u);
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

// Durability none, absolute target, no O_TMPFILE: a named temp is reached
// through a directory descriptor even without fsync (a name by path could be
// left behind in a directory renamed meanwhile). It is visible in the
// target's directory while pending, ends with the suffix, is the file the
// caller writes, and leaves nothing behind after commit or discard. Existing
// and new targets.
TEST(AtomicWriteTempSuffix, NamedTempByPathWithDurabilityNone) {
    TempDir dir;
    write_file(dir / "f", "old", 0640);
    struct Seen {
        Names pending, after;
        bool same_inode = false;
        int dir_fds = -1;
        std::string content_after;
    };
    int filter_rc = -1, probe_errno = 0, error = 0;
    std::string error_text;
    Seen discarded_f, discarded_n, committed_f, committed_n;
    std::thread t([&] {
        filter_rc = deny_o_tmpfile_in_this_thread();
        if (filter_rc != 0) return;
        int probe = ::open(dir.path().c_str(), O_TMPFILE | O_RDWR, 0600);
        probe_errno = probe < 0 ? errno : 0;
        if (probe >= 0) ::close(probe);
        wlf_write_options opt;
        wlf_write_options_init(&opt);
        opt.durability = WLF_DURABILITY_NONE;
        opt.temp_suffix = ".wlftmp";
        // One replacement: open, write, look, then commit or discard.
        auto once = [&](const char *name, bool commit, Seen *seen) {
            fs::path target = dir / name;
            bool existing = fs::exists(target);
            wlf_file *f = nullptr;
            wlf_error err{};
            int flags = existing ? WLF_OPEN_WRITE | WLF_OPEN_APPEND : WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_EXCL;
            if (int rc = wlf_open_flags(target.c_str(), flags, 0644, &opt, &f, &err)) {
                error = rc;
                error_text = std::string(err.op) + " " + err.path;
                return;
            }
            if (::write(wlf_file_fd(f), "+new", 4) != 4) error = errno;
            seen->pending = list_names(dir.path());
            seen->dir_fds = directory_fds_of(dir.path());
            struct stat mine;
            ::fstat(wlf_file_fd(f), &mine);
            for (const auto &n : seen->pending) {
                struct stat st;
                if (n.ends_with(".wlftmp") && ::lstat((dir / n).c_str(), &st) == 0 && st.st_ino == mine.st_ino &&
                    st.st_dev == mine.st_dev)
                    seen->same_inode = true;
            }
            if (commit) {
                if (int rc = wlf_commit(f, nullptr, &err)) {
                    error = rc;
                    error_text = std::string(err.op) + " " + err.path;
                }
            } else {
                wlf_discard(f);
            }
            seen->after = list_names(dir.path());
            seen->content_after = fs::exists(target) ? read_file(target) : "<none>";
        };
        once("f", false, &discarded_f);
        once("n", false, &discarded_n);
        once("f", true, &committed_f);
        once("n", true, &committed_n);
    });
    t.join();
    if (filter_rc != 0) GTEST_SKIP() << "cannot install a seccomp filter: " << std::strerror(filter_rc);
    ASSERT_EQ(probe_errno, EOPNOTSUPP);
    ASSERT_EQ(error, 0) << std::strerror(error) << ": " << error_text;
    auto is_temp_of = [](const std::string &n, const std::string &base) {
        return n.starts_with("." + base + ".") && n.ends_with(".wlftmp") &&
               n.size() == 1 + base.size() + 1 + 8 + std::strlen(".wlftmp");
    };
    struct Case {
        const char *what;
        const Seen &seen;
        const char *base;
        Names others;  // besides the temp, while pending
        Names after;
        const char *content;
    } cases[] = {
        {"discard, existing", discarded_f, "f", {"f", "f.lock"}, {"f"}, "old"},
        {"discard, new", discarded_n, "n", {"f", "n.lock"}, {"f"}, "<none>"},
        {"commit, existing", committed_f, "f", {"f", "f.lock"}, {"f"}, "old+new"},
        {"commit, new", committed_n, "n", {"f", "n.lock"}, {"f", "n"}, "+new"},
    };
    for (const auto &c : cases) {
        SCOPED_TRACE(c.what);
        Names others;
        int temps = 0;
        for (const auto &n : c.seen.pending) {
            if (is_temp_of(n, c.base))
                ++temps;
            else
                others.push_back(n);
        }
        EXPECT_EQ(temps, 1) << ::testing::PrintToString(c.seen.pending);
        EXPECT_EQ(others, c.others);
        EXPECT_TRUE(c.seen.same_inode) << "the named temp is not the caller's file";
        EXPECT_EQ(c.seen.dir_fds, 1);
        EXPECT_EQ(c.seen.after, c.after);
        EXPECT_EQ(c.seen.content_after, c.content);
    }
    EXPECT_EQ(lstat_or_die(dir / "f").st_mode & 07777, 0640u);
}

// ---- naming an O_TMPFILE ---------------------------------------------------------

// linkat(fd, "", AT_EMPTY_PATH) names an O_TMPFILE only for the credentials
// that opened it (or with CAP_DAC_READ_SEARCH); otherwise it fails with
// ENOENT and /proc/self/fd/N must do. A child opens two replacements as root
// (durability none: by path; full: through the directory descriptor), drops
// to nobody and commits both. The targets are 0666 in a 0777 directory, so
// nobody may link the temps (fs.protected_hardlinks) and remove the locks.
TEST(AtomicWriteTempLink, ProcFdNamesTheTempWhenEmptyPathLinkIsRefused) {
    REQUIRE_ROOT();
    TempDir dir;
    ASSERT_EQ(::chmod(dir.path().c_str(), 0777), 0);
    write_file(dir / "none", "old none", 0666);
    write_file(dir / "full", "old full", 0666);
    Child child([&]() -> int {
        // Exit statuses: 3 setup, 4 no O_TMPFILE here (skip), 5 AT_EMPTY_PATH
        // still works after the credential change (nothing to fall back
        // from), 6 it failed otherwise than ENOENT, 10 + 1 (none) + 2 (full)
        // for the commits that failed. The first commit finds out that
        // AT_EMPTY_PATH is refused, the second goes to /proc at once.
        int probe = ::open(dir.path().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0666);
        if (probe < 0) return 4;
        wlf_file *files[2] = {};
        const char *names[2] = {"none", "full"};
        const int durability[2] = {WLF_DURABILITY_NONE, WLF_DURABILITY_FULL};
        for (int i = 0; i < 2; ++i) {
            wlf_write_options opt;
            wlf_write_options_init(&opt);
            opt.durability = durability[i];
            wlf_error err{};
            if (wlf_open_flags((dir / names[i]).c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, &opt, &files[i],
                               &err) != 0) {
                std::fprintf(stderr, "wlf_open %s: %s\n", names[i], std::strerror(err.code));
                return 3;
            }
        }
        if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
            ::setresuid(65534, 65534, 65534) != 0 || ::prctl(PR_SET_DUMPABLE, 1) != 0)
            return 3;
        int linked = ::linkat(probe, "", AT_FDCWD, (dir / "probe").c_str(), AT_EMPTY_PATH);
        if (linked == 0) return 5;
        if (errno != ENOENT) return 6;
        int failed = 0;
        for (int i = 0; i < 2; ++i) {
            std::string content = std::string("new ") + names[i];
            if (::write(wlf_file_fd(files[i]), content.data(), content.size()) !=
                static_cast<ssize_t>(content.size()))
                return 3;
            wlf_error err{};
            if (wlf_commit(files[i], nullptr, &err) != 0) {
                char text[WLF_PATH_MAX + 256];
                std::fprintf(stderr, "commit %s: %s\n", names[i], wlf_error_format(&err, text, sizeof text));
                failed |= 1 << i;
            }
        }
        return failed ? 10 + failed : 0;
    });
    int status = child.wait();
    if (status == 4) GTEST_SKIP() << "no O_TMPFILE in " << dir.path();
    ASSERT_NE(status, 5) << "linkat(AT_EMPTY_PATH) works for the new credentials: the /proc path is not exercised";
    ASSERT_NE(status, 6) << "linkat(AT_EMPTY_PATH) failed with an error other than ENOENT";
    ASSERT_EQ(status, 0) << "11: the commit with durability none failed, 12: full failed, 13: both (see stderr)";
    EXPECT_EQ(read_file(dir / "none"), "new none");
    EXPECT_EQ(read_file(dir / "full"), "new full");
    EXPECT_EQ(list_names(dir.path()), (Names{"full", "none"}));
}

// A name so long that ".<name>._pending~~" does not fit in a directory
// entry (244 to 250 bytes; "<name>.lock" still does): the temp takes as
// much of the name as fits, and the write commits, with O_TMPFILE (linked
// under a temp name before the rename) and with a named temp.
TEST(AtomicWriteTempSuffix, NameTooLongForThePerTargetTempStillCommits) {
    for (size_t len : {244u, 250u}) {
        for (bool named : {false, true}) {
            SCOPED_TRACE(std::to_string(len) + (named ? " named temp" : " O_TMPFILE"));
            TempDir dir;
            fs::path target = dir / std::string(len, 'n');
            write_file(target, "old");
            int filter_rc = 0, error = 0;
            std::thread t([&] {
                if (named && (filter_rc = deny_o_tmpfile_in_this_thread()) != 0) return;
                try {
                    wl::atomic_write_content_with_lock(target, "new");
                } catch (const wl::Error &e) {
                    error = e.code().value();
                }
            });
            t.join();
            if (filter_rc != 0) GTEST_SKIP() << "cannot install a seccomp filter: " << std::strerror(filter_rc);
            EXPECT_EQ(error, 0) << std::strerror(error);
            EXPECT_EQ(read_file(target), "new");
            EXPECT_EQ(list_names(dir.path()), Names{target.filename().string()});
        }
    }
}
