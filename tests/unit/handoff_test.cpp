// The exec hand-over codec (handoff.hpp: file_export, file_import), which
// carries a pending replacement across execve in WRAP_LOCKFILE_PENDING
// (docs/design.md, "The shim"): a token taken over by a new program image
// gives back the same replacement (same token, same descriptors, the
// commit lands with what both images wrote); a token cut short, changed
// anywhere, with a field too many or of another version is refused, and
// the refusal leaves the descriptors and the file system as they were.
#include <gtest/gtest.h>

#include "handoff.hpp"
#include "test_support.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace detail = wrap_lockfile::detail;
using wlf_test::Child;
using wlf_test::list_names;
using wlf_test::Pipe;
using wlf_test::read_file;
using wlf_test::TempDir;
using wlf_test::write_file;
using Names = std::vector<std::string>;

namespace {

// The program that takes a token over (helpers/handoff_import.cpp), from meson.
const char *import_helper() {
    const char *p = std::getenv("WLF_HANDOFF_IMPORT");
    return p && *p ? p : nullptr;
}

// The seal handoff.hpp describes: FNV-1a (32 bits) of everything before it,
// as 8 hex digits. Lets a test forge a well-sealed token with one field
// changed, to reach the checks behind the seal.
std::string reseal(const std::string &body) {
    uint32_t h = 2166136261u;
    for (unsigned char c : body) h = (h ^ c) * 16777619u;
    char seal[9];
    std::snprintf(seal, sizeof seal, "%08x", static_cast<unsigned>(h));
    return body + seal;
}

// The token's comma-separated fields (the seal last).
std::vector<std::string> fields_of(const std::string &token) {
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        size_t comma = token.find(',', start);
        out.push_back(token.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) return out;
        start = comma + 1;
    }
}

// The token with field i replaced by `value`, sealed again.
std::string with_field(const std::string &token, size_t i, const std::string &value) {
    std::vector<std::string> f = fields_of(token);
    f[i] = value;
    std::string body;
    for (size_t k = 0; k + 1 < f.size(); ++k) body += f[k] + ",";
    return reseal(body);
}

// Field positions in a token (handoff.hpp: version first, the paths last).
enum Field { kVersion = 0, kKind = 1, kFd = 2, kLockFd = 3, kOwner = 5, kOldIno = 12, kTarget = 15, kSeal = 16 };

// open(O_TMPFILE) fails as on a file system without it, in this thread only.
int deny_o_tmpfile_in_this_thread() {
    return wlf_test::fail_syscall_in_this_thread(__NR_openat, EOPNOTSUPP, 2, 020000000 /* __O_TMPFILE */);
}

// A pending replacement of dir/f (old content "old"), "new content" written.
struct Pending {
    wlf_file *file = nullptr;
    std::string token;
    int fd = -1, lock_fd = -1, dir_fd = -1;

    Pending(const TempDir &dir, int use_lock) {
        write_file(dir / "f", "old");
        wlf_write_options opt;
        wlf_write_options_init(&opt);
        opt.use_lock = use_lock;
        wlf_error err{};
        if (wlf_open_flags((dir / "f").c_str(), WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_TRUNCATE, 0644, &opt, &file,
                           &err) != 0)
            return;
        detail::file_descriptors(file, &fd, &lock_fd, &dir_fd);
        static const char text[] = "new content";
        if (::write(fd, text, sizeof text - 1) != static_cast<ssize_t>(sizeof text - 1)) return;
        char buf[WLF_PATH_MAX * 3 + 128];
        if (detail::file_export(file, buf, sizeof buf) == 0) token = buf;
    }
    ~Pending() {
        if (file) wlf_discard(file);
    }
    Pending(const Pending &) = delete;
    Pending &operator=(const Pending &) = delete;
};

// file_import of `token` in a forked child (whatever an accepted token would
// do stays there): 0 when it was refused and the descriptors are open and
// close-on-exec as before; 1 accepted; 2 refused, but a descriptor changed.
int import_in_child(const std::string &token, const Pending &p) {
    Child child([&] {
        wlf_file *f = nullptr;
        int rc = detail::file_import(token.data(), token.size(), 0, &f);
        if (rc == 0 || f) return 1;
        for (int fd : {p.fd, p.lock_fd})
            if (fd >= 0 && ::fcntl(fd, F_GETFD) != FD_CLOEXEC) return 2;
        return 0;
    });
    return child.wait();
}

// Every token in `tokens` is refused; then the original replacement still
// commits as if nothing had happened.
void expect_all_refused(const TempDir &dir, Pending &p, const std::vector<std::string> &tokens, const char *what) {
    int accepted = 0;
    for (const std::string &t : tokens) {
        int rc = import_in_child(t, p);
        EXPECT_EQ(rc, 0) << what << ": '" << t << "' " << (rc == 1 ? "was accepted" : "changed a descriptor");
        accepted += rc != 0;
        if (accepted > 5) break;  // enough to see the pattern
    }
    EXPECT_EQ(read_file(dir / "f"), "old") << what;
    if (p.lock_fd >= 0) {
        // A refusal in the child released nothing of the lock they share.
        int probe = ::open((dir / "f.lock").c_str(), O_RDONLY | O_CLOEXEC);
        ASSERT_GE(probe, 0) << what << ": the lock file is gone";
        EXPECT_NE(::flock(probe, LOCK_EX | LOCK_NB), 0) << what << ": the lock was released";
        ::close(probe);
    }
    wlf_error err{};
    ASSERT_EQ(wlf_commit(p.file, nullptr, &err), 0) << err.code;
    p.file = nullptr;
    EXPECT_EQ(read_file(dir / "f"), "new content") << what;
    EXPECT_EQ(list_names(dir.path()), Names{"f"}) << what;
}

// A Pending made in a thread of its own, which for `named` has no
// O_TMPFILE, so that the temp is a named file beside the target.
std::unique_ptr<Pending> make_pending(const TempDir &dir, int use_lock, bool named) {
    std::unique_ptr<Pending> p;
    int filter_rc = 0;
    std::thread t([&] {
        if (named && (filter_rc = deny_o_tmpfile_in_this_thread()) != 0) return;
        p = std::make_unique<Pending>(dir, use_lock);
    });
    t.join();
    EXPECT_EQ(filter_rc, 0) << "seccomp filter: " << std::strerror(filter_rc);
    if (p && named) {
        Names names = list_names(dir.path());
        EXPECT_EQ(names.size(), use_lock ? 3u : 2u) << "want f, a named temp (and f.lock)";
    }
    return p;
}

// The refusals, with and without a lock, with an O_TMPFILE and with a
// named temp (which a refusal must not remove).
class Handoff : public ::testing::TestWithParam<std::tuple<int, bool>> {  // use_lock, named temp
protected:
    std::unique_ptr<Pending> pending(const TempDir &dir) {
        return make_pending(dir, std::get<0>(GetParam()), std::get<1>(GetParam()));
    }
};

std::string variant_name(const ::testing::TestParamInfo<std::tuple<int, bool>> &info) {
    return std::string(std::get<0>(info.param) ? "Locked" : "Unlocked") + (std::get<1>(info.param) ? "NamedTemp" : "Tmpfile");
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(Variants, Handoff, ::testing::Combine(::testing::Values(1, 0), ::testing::Bool()), variant_name);

// The token crosses a real execve (FD_CLOEXEC cleared, as the shim does):
// the new image imports it, exports the same token again, writes more
// through the same descriptor and commits; the old image's write and the
// new one's land together, and nothing is left beside the target. Named
// temps (no O_TMPFILE) and both durabilities too.
using HandoffExec = ::testing::TestWithParam<std::tuple<int, bool, int>>;  // use_lock, named temp, durability

INSTANTIATE_TEST_SUITE_P(Variants, HandoffExec,
                         ::testing::Combine(::testing::Values(1, 0), ::testing::Bool(),
                                            ::testing::Values(WLF_DURABILITY_FULL, WLF_DURABILITY_NONE)),
                         [](const auto &info) {
                             return std::string(std::get<0>(info.param) ? "Locked" : "Unlocked") +
                                    (std::get<1>(info.param) ? "NamedTemp" : "Tmpfile") +
                                    (std::get<2>(info.param) == WLF_DURABILITY_FULL ? "Full" : "None");
                         });

TEST_P(HandoffExec, NewImageTakesOverAndCommits) {
    const char *helper = import_helper();
    ASSERT_NE(helper, nullptr) << "WLF_HANDOFF_IMPORT (set by meson) names the import helper";
    auto [use_lock, named, durability] = GetParam();
    TempDir dir;
    write_file(dir / "f", "old");
    Pipe err;
    Child child([&] {
        // The seccomp filter stays for the helper too, which creates no temp.
        if (named && deny_o_tmpfile_in_this_thread()) return 90;
        wlf_write_options opt;
        wlf_write_options_init(&opt);
        opt.use_lock = use_lock;
        opt.durability = durability;
        wlf_file *f = nullptr;
        if (wlf_open_flags((dir / "f").c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0644, &opt, &f, nullptr) != 0)
            return 91;
        static const char text[] = "new content";
        if (::write(wlf_file_fd(f), text, sizeof text - 1) != static_cast<ssize_t>(sizeof text - 1)) return 92;
        char token[WLF_PATH_MAX * 3 + 128];
        if (detail::file_export(f, token, sizeof token) != 0) return 93;
        int fd, lock_fd, dir_fd;
        detail::file_descriptors(f, &fd, &lock_fd, &dir_fd);
        ::fcntl(fd, F_SETFD, 0);
        if (lock_fd >= 0) ::fcntl(lock_fd, F_SETFD, 0);
        ::dup2(err.write_fd(), 2);
        ::execl(helper, helper, token, static_cast<char *>(nullptr));
        return 94;
    });
    err.close_write();
    std::string messages;
    for (int c; (c = wlf_test::get_byte(err.read_fd())) >= 0;) messages += static_cast<char>(c);
    ASSERT_EQ(child.wait(), 0) << messages;
    EXPECT_EQ(read_file(dir / "f"), "new content+after-exec");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

// Every proper prefix of a token: the environment cut short must never
// name another (shorter) target, nor a temp or descriptor it did not have.
TEST_P(Handoff, TruncatedTokenIsRefused) {
    TempDir dir;
    std::unique_ptr<Pending> pending_ = pending(dir);
    ASSERT_TRUE(pending_ && !pending_->token.empty());
    Pending &p = *pending_;
    std::vector<std::string> prefixes;
    for (size_t n = 0; n < p.token.size(); ++n) prefixes.push_back(p.token.substr(0, n));
    expect_all_refused(dir, p, prefixes, "prefix");
}

// Any one byte changed, to a character of the token's alphabet or not.
TEST_P(Handoff, CorruptTokenIsRefused) {
    TempDir dir;
    std::unique_ptr<Pending> pending_ = pending(dir);
    ASSERT_TRUE(pending_ && !pending_->token.empty());
    Pending &p = *pending_;
    std::vector<std::string> corrupt;
    for (size_t i = 0; i < p.token.size(); ++i) {
        for (char c : {'0', '7', 'f', ',', 'x', '-'}) {
            if (p.token[i] == c) continue;
            std::string t = p.token;
            t[i] = c;
            corrupt.push_back(t);
        }
    }
    corrupt.push_back(p.token + ",0");
    corrupt.push_back(p.token + "0");
    corrupt.push_back("," + p.token);
    corrupt.push_back(p.token + p.token);
    expect_all_refused(dir, p, corrupt, "corrupt");
}

// Well sealed, but of another version (what an older or newer shim in the
// same process tree would write), or with values out of range, or with
// descriptors that are not what the token says.
TEST_P(Handoff, WellSealedButWrongTokenIsRefused) {
    TempDir dir;
    std::unique_ptr<Pending> pending_ = pending(dir);
    ASSERT_TRUE(pending_ && !pending_->token.empty());
    Pending &p = *pending_;
    int dir_fd = ::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dir_fd, 0);
    std::vector<std::string> bad = {
        with_field(p.token, kVersion, "4"),
        with_field(p.token, kVersion, "6"),
        with_field(p.token, kVersion, "0"),
        with_field(p.token, kKind, "3"),
        with_field(p.token, kKind, "-1"),
        with_field(p.token, kFd, "-1"),
        with_field(p.token, kFd, "99999999999"),
        with_field(p.token, kFd, "1000"),                     // not open
        with_field(p.token, kFd, std::to_string(dir_fd)),     // not a regular file
        with_field(p.token, kTarget, ""),
        with_field(p.token, kTarget, "2f"),                   // "/": no target there
        with_field(p.token, kTarget, "2"),                    // odd hex
        with_field(p.token, kTarget, "zz"),
        with_field(p.token, kOldIno, "-1"),
        with_field(p.token, kOldIno, "x"),
        with_field(p.token, kSeal, "00000000") + ",",
    };
    if (p.lock_fd >= 0) {
        bad.push_back(with_field(p.token, kOwner, "9"));
        bad.push_back(with_field(p.token, kLockFd, std::to_string(dir_fd)));  // not the lock file
        bad.push_back(with_field(p.token, kLockFd, "1000"));
    }
    // The version-4 version number on this layout (two fields too many).
    // The version-3 layout: the same fields without the seal.
    std::string v3 = p.token.substr(0, p.token.rfind(','));
    v3.replace(0, v3.find(','), "3");
    bad.push_back(v3);
    expect_all_refused(dir, p, bad, "well sealed");
    ::close(dir_fd);
}

// Export, then import in a forked child (the shim's image after exec, as far
// as the codec is concerned): the fields come back unchanged.
TEST_P(Handoff, RoundTripGivesTheSameToken) {
    TempDir dir;
    std::unique_ptr<Pending> pending_ = pending(dir);
    ASSERT_TRUE(pending_ && !pending_->token.empty());
    Pending &p = *pending_;
    EXPECT_EQ(fields_of(p.token)[kVersion], "5");
    EXPECT_EQ(p.token.find_first_of(" ;:="), std::string::npos) << p.token;
    Pipe out;
    Child child([&] {
        wlf_file *f = nullptr;
        if (detail::file_import(p.token.data(), p.token.size(), 0, &f) != 0) return 1;
        char again[WLF_PATH_MAX * 3 + 128];
        if (detail::file_export(f, again, sizeof again) != 0) return 2;
        size_t n = std::strlen(again);
        return ::write(out.write_fd(), again, n) == static_cast<ssize_t>(n) ? 0 : 3;
    });
    out.close_write();
    std::string again;
    for (int c; (c = wlf_test::get_byte(out.read_fd())) >= 0;) again += static_cast<char>(c);
    ASSERT_EQ(child.wait(), 0);
    EXPECT_EQ(again, p.token);
}

// A version-4 token (the release before, without the old target's
// identity) is still taken over: an exec into another release of the shim
// during a long run keeps what was written.
TEST_P(Handoff, Version4TokenIsTakenOver) {
    TempDir dir;
    std::unique_ptr<Pending> pending_ = pending(dir);
    ASSERT_TRUE(pending_ && !pending_->token.empty());
    Pending &p = *pending_;
    std::vector<std::string> f = fields_of(p.token);
    f[kVersion] = "4";
    std::string body;
    for (size_t k = 0; k + 1 < f.size(); ++k)
        if (k != kOldIno - 1 && k != kOldIno) body += f[k] + ",";
    std::string v4 = reseal(body);
    Child child([&] {
        wlf_file *g = nullptr;
        return detail::file_import(v4.data(), v4.size(), 0, &g) == 0 && g ? 0 : 1;
    });
    EXPECT_EQ(child.wait(), 0) << v4;
}

// A staged in-place commit (hard-linked target) taken over by the next
// image writes only the file the first image looked at: one renamed over
// the name in between is somebody else's and stays as it is.
TEST(HandoffInPlace, ImportedCommitNeverWritesAFileRenamedOverTheTarget) {
    TempDir dir;
    write_file(dir / "a", "old");
    ASSERT_EQ(::link((dir / "a").c_str(), (dir / "b").c_str()), 0);
    write_file(dir / "theirs", "their newer file");
    wlf_write_options opt;
    wlf_write_options_init(&opt);
    wlf_file *f = nullptr;
    ASSERT_EQ(wlf_open_flags((dir / "a").c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0644, &opt, &f, nullptr), 0);
    ASSERT_EQ(wlf_file_kind(f), WLF_COMMIT_IN_PLACE);
    ASSERT_EQ(::write(wlf_file_fd(f), "ours", 4), 4);
    char token[WLF_PATH_MAX * 3 + 128];
    ASSERT_EQ(detail::file_export(f, token, sizeof token), 0);
    ASSERT_EQ(::rename((dir / "theirs").c_str(), (dir / "a").c_str()), 0);
    Child child([&] {
        wlf_file *g = nullptr;
        if (detail::file_import(token, std::strlen(token), 0, &g) != 0) return 1;
        wlf_error err{};
        return wlf_commit(g, nullptr, &err) == ESTALE && err.step == WLF_STEP_RENAME ? 0 : 2;
    });
    EXPECT_EQ(child.wait(), 0);
    wlf_discard(f);
    EXPECT_EQ(read_file(dir / "a"), "their newer file");
    EXPECT_EQ(read_file(dir / "b"), "old");
    EXPECT_EQ(list_names(dir.path()), (Names{"a", "b"}));
}

// The token names no more than it must: a buffer one byte short is refused.
TEST_P(Handoff, ExportIntoTooSmallBufferIsEnametoolong) {
    TempDir dir;
    std::unique_ptr<Pending> pending_ = pending(dir);
    ASSERT_TRUE(pending_ && !pending_->token.empty());
    Pending &p = *pending_;
    std::vector<char> buf(p.token.size());
    EXPECT_EQ(detail::file_export(p.file, buf.data(), buf.size()), ENAMETOOLONG);
    buf.resize(p.token.size() + 1);
    EXPECT_EQ(detail::file_export(p.file, buf.data(), buf.size()), 0);
    EXPECT_EQ(std::string(buf.data()), p.token);
}

// The last step of an import that can fail is adopting the lock: a refusal
// after it (here: no descriptor left for the named temp's directory) would
// release a lock the caller still shares, and remove its lock file.
TEST(HandoffRefusal, NoDescriptorForTheDirectoryLeavesTheLockAlone) {
    TempDir dir;
    std::unique_ptr<Pending> p = make_pending(dir, 1, true);
    ASSERT_TRUE(p && !p->token.empty());
    Child child([&] {
        int lowest = ::dup(0);
        if (lowest < 0) return 10;
        ::close(lowest);
        struct rlimit rl = {static_cast<rlim_t>(lowest), static_cast<rlim_t>(lowest)};
        if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return 11;
        wlf_file *f = nullptr;
        int rc = detail::file_import(p->token.data(), p->token.size(), 0, &f);
        return rc == EMFILE ? 0 : rc == 0 ? 1 : 2;
    });
    ASSERT_EQ(child.wait(), 0) << "1: imported with no descriptor to spare; 2: another error";
    std::vector<std::string> none;
    expect_all_refused(dir, *p, none, "EMFILE");
}
