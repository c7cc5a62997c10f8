// Replacement through the C API: open/write/commit, poisoned files, discard,
// the one-shot write, errors that name the step and the path.
#include "replace_support.hpp"

TEST(AtomicWriteCApi, OpenWriteCommit) {
    TempDir dir;
    write_file(dir / "real", "old");
    fs::create_symlink("real", dir / "link");
    wlf_file *f = nullptr;
    wlf_error err{};
    ASSERT_EQ(wlf_open_flags((dir / "link").c_str(), WLF_OPEN_WRITE | WLF_OPEN_READ | WLF_OPEN_CREATE, 0666, nullptr,
                             &f, &err),
              0);
    EXPECT_STREQ(wlf_file_target(f), (dir / "real").c_str());
    EXPECT_EQ(wlf_file_kind(f), WLF_COMMIT_RENAME);
    int fd = wlf_file_fd(f);
    char buf[8] = {};
    EXPECT_EQ(::pread(fd, buf, sizeof buf, 0), 3);
    EXPECT_STREQ(buf, "old");
    EXPECT_EQ(::pwrite(fd, "N", 1, 0), 1);
    int kind = -1;
    EXPECT_EQ(wlf_commit(f, &kind, &err), 0);
    EXPECT_EQ(kind, WLF_COMMIT_RENAME);
    EXPECT_EQ(read_file(dir / "real"), "Nld");
    EXPECT_EQ(list_names(dir.path()), (Names{"link", "real"}));
}

TEST(AtomicWriteCApi, PoisonedFileFailsCommitAndKeepsTarget) {
    TempDir dir;
    write_file(dir / "f", "old");
    ino_t before = lstat_or_die(dir / "f").st_ino;
    wlf_file *f = nullptr;
    wlf_error err{};
    ASSERT_EQ(wlf_open_flags((dir / "f").c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, nullptr, &f, &err), 0);
    ASSERT_EQ(::write(wlf_file_fd(f), "partial", 7), 7);
    wlf_file_poison(f, EIO);
    wlf_file_poison(f, ENOSPC);  // the first error is the one reported
    EXPECT_EQ(wlf_commit(f, nullptr, &err), EIO);
    EXPECT_EQ(err.code, EIO);
    ASSERT_NE(err.op, nullptr);
    EXPECT_GT(std::strlen(err.op), 0u);
    EXPECT_STREQ(err.path, (dir / "f").c_str());
    EXPECT_EQ(read_file(dir / "f"), "old");
    EXPECT_EQ(lstat_or_die(dir / "f").st_ino, before);
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteCApi, DiscardLeavesNothing) {
    TempDir dir;
    write_file(dir / "f", "old");
    wlf_file *f = nullptr;
    ASSERT_EQ(wlf_open_flags((dir / "f").c_str(), WLF_OPEN_WRITE | WLF_OPEN_APPEND, 0666, nullptr, &f, nullptr), 0);
    ASSERT_EQ(::write(wlf_file_fd(f), "x", 1), 1);
    wlf_discard(f);
    ASSERT_EQ(wlf_open_flags((dir / "new").c_str(), WLF_OPEN_WRITE | WLF_OPEN_CREATE, 0666, nullptr, &f, nullptr), 0);
    wlf_discard(f);
    EXPECT_EQ(read_file(dir / "f"), "old");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteCApi, WriteContentOneShot) {
    TempDir dir;
    std::string data = pattern(70000, 4);
    EXPECT_EQ(wlf_write_content((dir / "f").c_str(), data.data(), data.size(), nullptr, nullptr), 0);
    EXPECT_EQ(read_file(dir / "f"), data);
    EXPECT_EQ(wlf_write_content((dir / "f").c_str(), "", 0, nullptr, nullptr), 0);
    EXPECT_EQ(read_file(dir / "f"), "");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteCApi, ErrorNamesStepAndPath) {
    TempDir dir;
    fs::path missing = dir / "nodir" / "f";
    wlf_write_options opt;
    wlf_write_options_init(&opt);
    opt.use_lock = 0;
    wlf_error err{};
    EXPECT_EQ(wlf_write_content(missing.c_str(), "x", 1, &opt, &err), ENOENT);
    EXPECT_EQ(err.code, ENOENT);
    ASSERT_NE(err.op, nullptr);
    EXPECT_GT(std::strlen(err.op), 0u);
    EXPECT_NE(std::string(err.path).find((dir / "nodir").string()), std::string::npos) << err.path;

    wlf_error bad{};
    wlf_file *f = reinterpret_cast<wlf_file *>(1);
    EXPECT_EQ(wlf_open((dir / "f").c_str(), "r", nullptr, &f, &bad), EINVAL);
    EXPECT_EQ(f, nullptr);
    EXPECT_EQ(bad.code, EINVAL);
    EXPECT_EQ(list_names(dir.path()), Names{});
}
