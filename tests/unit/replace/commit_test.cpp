// The replacement itself: a new inode published only at commit, readers of the
// old one unaffected, nothing published by a body that throws or a discard,
// and readers never seeing a torn or empty file.
#include "replace_support.hpp"

TEST(AtomicWriteReplace, NewInodeWhileOpenReaderKeepsOldContent) {
    TempDir dir;
    write_file(dir / "f", "old content");
    ino_t before = lstat_or_die(dir / "f").st_ino;
    int reader = ::open((dir / "f").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(reader, 0);
    wl::atomic_write_content_with_lock(dir / "f", "new");
    EXPECT_NE(lstat_or_die(dir / "f").st_ino, before);
    EXPECT_EQ(read_fd_all(reader), "old content");
    ::close(reader);
    EXPECT_EQ(read_file(dir / "f"), "new");
}

TEST(AtomicWriteReplace, PendingTempIsInvisibleAndTargetUnchanged) {
    REQUIRE_BUILD_FEATURE(WLF_HAVE_O_TMPFILE, "O_TMPFILE (temps are named)");
    TempDir dir;
    write_file(dir / "f", "old");
    auto f = wl::atomic_write(dir / "f", "w");
    f.write("new");
    // O_TMPFILE: nothing but the target and its lock file has a name yet.
    EXPECT_EQ(list_names(dir.path()), (Names{"f", "f.lock"}));
    EXPECT_EQ(read_file(dir / "f"), "old");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "new");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteReplace, BytesOverloadKeepsEmbeddedNuls) {
    TempDir dir;
    std::string data("a\0b\0\xff", 5);
    auto bytes = std::as_bytes(std::span(data.data(), data.size()));
    EXPECT_EQ(wl::atomic_write_content_with_lock(dir / "f", bytes), wl::CommitKind::rename);
    EXPECT_EQ(read_file(dir / "f"), data);
}

TEST(AtomicWriteReplace, NoLockVariantLeavesNoLockFile) {
    TempDir dir;
    write_file(dir / "f", "old");
    auto f = wl::atomic_write_no_lock(dir / "f");
    f.write("new");
    if (WLF_HAVE_O_TMPFILE) {
        EXPECT_EQ(list_names(dir.path()), Names{"f"});
    } else {
        EXPECT_EQ(list_names(dir.path()).size(), 2u);  // f and the named temp
    }
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "new");
}

// ---- commit only when finished ----------------------------------------------

TEST(AtomicWriteCommit, BodyThatThrowsLeavesTargetUnchanged) {
    TempDir dir;
    write_file(dir / "f", "old");
    ino_t before = lstat_or_die(dir / "f").st_ino;
    EXPECT_THROW(wl::with_atomic_write(dir / "f", "w",
                                       [](wl::AtomicFile &f) {
                                           f.write("half");
                                           throw std::runtime_error("body failed");
                                       }),
                 std::runtime_error);
    EXPECT_EQ(read_file(dir / "f"), "old");
    EXPECT_EQ(lstat_or_die(dir / "f").st_ino, before);
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteCommit, BodyThatReturnsCommits) {
    TempDir dir;
    write_file(dir / "f", "old");
    wl::with_atomic_write(dir / "f", "w", [](wl::AtomicFile &f) { f.stream() << "new"; });
    EXPECT_EQ(read_file(dir / "f"), "new");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteCommit, DestroyedWithoutCommitDiscards) {
    TempDir dir;
    write_file(dir / "f", "old");
    {
        auto f = wl::atomic_write(dir / "f", "w");
        f.write("new");
        f.stream() << "more";
    }
    EXPECT_EQ(read_file(dir / "f"), "old");
    {
        auto f = wl::atomic_write(dir / "new", "w");
        f.write("never");
    }
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteCommit, DiscardDropsContentAndEndsThePendingFile) {
    TempDir dir;
    write_file(dir / "f", "old");
    auto f = wl::atomic_write(dir / "f", "a");
    f.write("new");
    f.discard();
    EXPECT_FALSE(f.pending());
    EXPECT_THROW(f.commit(), std::logic_error);
    EXPECT_EQ(read_file(dir / "f"), "old");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteConcurrency, ReadersNeverSeeTornOrEmptyContent) {
    TempDir dir;
    constexpr int kWriters = 4, kWrites = 50;
    std::vector<std::string> contents;
    for (int i = 0; i < kWriters * kWrites + 1; ++i)
        contents.push_back(std::to_string(i) + ":" + pattern(8192 + static_cast<std::size_t>(i) * 37, i));
    std::set<std::string> valid(contents.begin(), contents.end());
    write_file(dir / "f", contents.back());

    std::atomic<bool> done{false};
    std::atomic<int> reads{0}, bad{0}, errors{0};
    std::thread reader([&] {
        while (!done.load()) {
            std::string s = read_file(dir / "f");
            ++reads;
            if (!valid.count(s)) ++bad;
        }
    });
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
        writers.emplace_back([&, w] {
            for (int i = 0; i < kWrites; ++i) {
                try {
                    wl::atomic_write_content_with_lock(dir / "f", contents[static_cast<std::size_t>(w * kWrites + i)]);
                } catch (const wl::Error &) {
                    ++errors;
                }
            }
        });
    }
    for (auto &t : writers) t.join();
    done = true;
    reader.join();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(bad.load(), 0) << "of " << reads.load() << " reads";
    EXPECT_GT(reads.load(), 0);
    EXPECT_TRUE(valid.count(read_file(dir / "f")));
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

// O_CREAT|O_EXCL of a new file: a file that a writer which does not lock
// creates at the name before the commit stays, and the commit fails with
// EEXIST, as the open would have (git's index.lock, a shell's noclobber).
// With O_TMPFILE (linked straight to its name) and with a named temp.
TEST(AtomicWriteCommit, ExclusiveNewFileNeverReplacesOneCreatedMeanwhile) {
    for (bool named : {false, true}) {
        TempDir dir;
        int filter_rc = 0, open_rc = -1, commit_rc = -1;
        Names during;
        std::thread t([&] {
            if (named && (filter_rc = deny_o_tmpfile_in_this_thread()) != 0) return;
            wlf_file *f = nullptr;
            open_rc = wlf_open_flags((dir / "f").c_str(), WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_EXCL, 0644,
                                     nullptr, &f, nullptr);
            if (open_rc != 0) return;
            if (::write(wlf_file_fd(f), "ours", 4) != 4) wlf_file_poison(f, errno);
            write_file(dir / "f", "theirs");
            during = list_names(dir.path());
            commit_rc = wlf_commit(f, nullptr, nullptr);
        });
        t.join();
        if (filter_rc != 0) GTEST_SKIP() << "cannot install a seccomp filter: " << std::strerror(filter_rc);
        ASSERT_EQ(open_rc, 0) << std::strerror(open_rc);
        EXPECT_EQ(commit_rc, EEXIST) << (named ? "named temp" : "O_TMPFILE");
        EXPECT_EQ(read_file(dir / "f"), "theirs") << (named ? "named temp" : "O_TMPFILE");
        EXPECT_EQ(list_names(dir.path()), Names{"f"}) << (named ? "named temp" : "O_TMPFILE");
    }
}

// A new file opened without O_TRUNC (an append, a plain write): a file that
// a writer which does not lock creates at the name before the commit keeps
// its content, which the plain open would have kept (appending to it), and
// the commit fails with ESTALE. With O_TMPFILE and with a named temp.
TEST(AtomicWriteCommit, NewFileWithoutTruncateNeverReplacesOneCreatedMeanwhile) {
    for (int how : {static_cast<int>(WLF_OPEN_APPEND), 0}) {
        for (bool named : {false, true}) {
            SCOPED_TRACE(std::string(how ? "append" : "write") + (named ? ", named temp" : ", O_TMPFILE"));
            TempDir dir;
            int filter_rc = 0, open_rc = -1, commit_rc = -1;
            std::thread t([&] {
                if (named && (filter_rc = deny_o_tmpfile_in_this_thread()) != 0) return;
                wlf_file *f = nullptr;
                open_rc = wlf_open_flags((dir / "f").c_str(), WLF_OPEN_WRITE | WLF_OPEN_CREATE | how, 0644, nullptr, &f,
                                         nullptr);
                if (open_rc != 0) return;
                if (::write(wlf_file_fd(f), "ours", 4) != 4) wlf_file_poison(f, errno);
                write_file(dir / "f", "theirs");
                commit_rc = wlf_commit(f, nullptr, nullptr);
            });
            t.join();
            if (filter_rc != 0) GTEST_SKIP() << "cannot install a seccomp filter: " << std::strerror(filter_rc);
            ASSERT_EQ(open_rc, 0) << std::strerror(open_rc);
            EXPECT_EQ(commit_rc, ESTALE);
            EXPECT_EQ(read_file(dir / "f"), "theirs");
            EXPECT_EQ(list_names(dir.path()), Names{"f"});
        }
    }
}

// A writer that does not lock renames its file over the target, or removes
// the target, before the commit: without the library the caller's writes
// went to the file that was orphaned, so its file stays (or the name stays
// free) and the commit fails with ESTALE.
TEST(AtomicWriteCommit, TargetReplacedOrRemovedMeanwhileStaysAsTheOtherWriterLeftIt) {
    for (bool removed : {false, true}) {
        SCOPED_TRACE(removed ? "removed" : "replaced");
        TempDir dir;
        write_file(dir / "f", "old");
        wlf_file *f = nullptr;
        ASSERT_EQ(wlf_open_flags((dir / "f").c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0644, nullptr, &f, nullptr), 0);
        ASSERT_EQ(::write(wlf_file_fd(f), "ours", 4), 4);
        if (removed) {
            fs::remove(dir / "f");
        } else {
            write_file(dir / "theirs", "theirs");
            fs::rename(dir / "theirs", dir / "f");
        }
        wlf_error err{};
        EXPECT_EQ(wlf_commit(f, nullptr, &err), ESTALE);
        EXPECT_EQ(err.step, WLF_STEP_RENAME);
        if (removed)
            EXPECT_EQ(list_names(dir.path()), Names{});
        else
            EXPECT_EQ(read_file(dir / "f"), "theirs");
        if (!removed) EXPECT_EQ(list_names(dir.path()), Names{"f"});
    }
}
