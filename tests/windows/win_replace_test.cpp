// Atomic replacement on Windows (under Wine): readers see the old content
// or the new one, nothing is left behind after success or failure, every
// commit method works on its own, modes, paths that are not ASCII or longer
// than MAX_PATH, links, attributes and the security descriptor.
#include "win_support.hpp"

#include "file.hpp"  // set_commit_method_for_tests

#include <wrap_lockfile/wrap_lockfile.h>
#include <wrap_lockfile/wrap_lockfile.hpp>

#include <aclapi.h>
#include <fcntl.h>
#include <io.h>
#include <sddl.h>

#include <gtest/gtest.h>

#include <cerrno>

namespace {

using namespace wlf_win;
using namespace wrap_lockfile;
using wrap_lockfile::win::set_commit_method_for_tests;

// Restores the default commit method at scope exit.
struct ForcedMethod {
    explicit ForcedMethod(int m) { set_commit_method_for_tests(m); }
    ~ForcedMethod() { set_commit_method_for_tests(win::kCommitAny); }
};

// An open handle on `p` with the given share mode, closed at destruction.
class Reader {
public:
    Reader(const fs::path &p, DWORD share)
        : h_(CreateFileW(long_path(p).c_str(), GENERIC_READ, share, nullptr, OPEN_EXISTING, 0, nullptr)) {}
    ~Reader() { close(); }
    bool ok() const { return h_ != INVALID_HANDLE_VALUE; }
    void close() {
        if (ok()) CloseHandle(h_);
        h_ = INVALID_HANDLE_VALUE;
    }
    // Reads from the start of the file through this handle.
    std::string read_all() {
        LARGE_INTEGER zero{};
        SetFilePointerEx(h_, zero, nullptr, FILE_BEGIN);
        std::string out;
        char buf[4096];
        DWORD got;
        while (ReadFile(h_, buf, sizeof buf, &got, nullptr) && got > 0) out.append(buf, got);
        return out;
    }

private:
    HANDLE h_;
};

constexpr DWORD kShareAll = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;

std::vector<std::string> names(std::initializer_list<const char *> l) { return {l.begin(), l.end()}; }

std::string u8s(const char8_t *s) { return reinterpret_cast<const char *>(s); }

DWORD attributes(const fs::path &p) { return GetFileAttributesW(long_path(p).c_str()); }

// The temps in `dir` (names ending in the default suffix).
std::vector<std::string> temps_in(const fs::path &dir) {
    std::vector<std::string> out;
    for (const auto &n : list_names(dir))
        if (n.size() > 2 && n.compare(n.size() - 2, 2, "~~") == 0) out.push_back(n);
    return out;
}

TEST(Replace, ReaderSharingEverythingSeesOldContentUntilTheCommit) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    write_file(target, "old");
    Reader reader(target, kShareAll);
    ASSERT_TRUE(reader.ok());
    {
        AtomicFile f = atomic_write(target);
        f.write("new content");
        EXPECT_EQ(read_file(target), "old");
        EXPECT_EQ(reader.read_all(), "old");
        EXPECT_EQ(temps_in(dir.path()).size(), 1u);
        EXPECT_EQ(f.commit(), CommitKind::rename);
    }
    EXPECT_EQ(read_file(target), "new content");
    // (Wine's ReplaceFileW moves the old file to "rf*.tmp", deleted when
    // the last reader closes it.)
    reader.close();
    EXPECT_EQ(names({"data.txt", "data.txt.lock"}), list_names(dir.path()));
}

TEST(Replace, NewFileIsCreatedAndNothingElseLeft) {
    TempDir dir;
    fs::path target = dir / "new.txt";
    EXPECT_EQ(atomic_write_content_with_lock(target, std::string("hello\n")), CommitKind::rename);
    EXPECT_EQ(read_file(target), "hello\n");
    EXPECT_EQ(names({"new.txt", "new.txt.lock"}), list_names(dir.path()));
    WriteOptions no_lock;
    no_lock.use_lock = false;
    fs::path other = dir / "other.bin";
    std::string bytes("a\0b\r\nc\n", 7);
    atomic_write_content_with_lock(other, bytes, no_lock);
    EXPECT_EQ(read_file(other), bytes);  // binary: no newline translation
    EXPECT_FALSE(fs::exists(dir / "other.bin.lock"));
}

TEST(Replace, DiscardLeavesTheTargetUntouched) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    write_file(target, "old");
    {
        AtomicFile f = atomic_write(target);
        f.write("never seen");
    }  // destroyed without commit
    {
        AtomicFile f = atomic_write(target, "a");
        f.write("never seen either");
        f.discard();
    }
    EXPECT_EQ(read_file(target), "old");
    EXPECT_TRUE(temps_in(dir.path()).empty());
}

TEST(Replace, FailedWriteDiscardsAtCommit) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    write_file(target, "old");
    wlf_file *f = nullptr;
    wlf_error err{};
    ASSERT_EQ(wlf_open(utf8(target).c_str(), "w", nullptr, &f, &err), 0);
    ASSERT_EQ(_write(wlf_file_fd(f), "partial", 7), 7);
    wlf_file_poison(f, ENOSPC);
    EXPECT_EQ(wlf_commit(f, nullptr, &err), ENOSPC);
    EXPECT_EQ(err.step, WLF_STEP_WRITE);
    EXPECT_EQ(read_file(target), "old");
    EXPECT_TRUE(temps_in(dir.path()).empty());
}

TEST(Replace, ExclusiveModeRefusesAnExistingFile) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    write_file(target, "old");
    try {
        AtomicFile f = atomic_write(target, "x");
        ADD_FAILURE() << "opened an existing file with x";
    } catch (const WriteFailed &e) {
        EXPECT_EQ(e.code().value(), EEXIST);
        EXPECT_EQ(e.step(), Step::open);
    }
    EXPECT_EQ(read_file(target), "old");

    // Created by somebody else between the open and the commit: the commit
    // refuses to replace it.
    fs::path late = dir / "late.txt";
    AtomicFile f = atomic_write_no_lock(late, "x");
    f.write("mine");
    write_file(late, "theirs");
    try {
        f.commit();
        ADD_FAILURE() << "replaced a file created meanwhile";
    } catch (const WriteFailed &e) {
        EXPECT_EQ(e.code().value(), EEXIST);
    }
    EXPECT_EQ(read_file(late), "theirs");
    EXPECT_TRUE(temps_in(dir.path()).empty());
}

TEST(Replace, ModesThatKeepTheContent) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    write_file(target, "one\n");
    {
        AtomicFile f = atomic_write(target, "a");
        f.write("two\n");
        f.commit();
    }
    EXPECT_EQ(read_file(target), "one\ntwo\n");
    {
        AtomicFile f = atomic_write(target, "r+");
        EXPECT_EQ(f.read(4), "one\n");
        f.write("TWO\n");
        EXPECT_EQ(f.tell(), 8);
        f.seek(0);
        EXPECT_EQ(f.read_all(), "one\nTWO\n");
        f.commit();
    }
    EXPECT_EQ(read_file(target), "one\nTWO\n");
    EXPECT_THROW(atomic_write(dir / "missing.txt", "r+"), WriteFailed);
    EXPECT_FALSE(fs::exists(dir / "missing.txt"));
}

// A reader that did not pass FILE_SHARE_DELETE (as the CRT's fopen does
// not) blocks every rename over the target: the commit gives up after its
// bounded retry with a clear error, the target intact, the temp gone.
TEST(Replace, ReaderWithoutShareDeleteGivesABoundedFailure) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    write_file(target, "old");
    Reader reader(target, FILE_SHARE_READ | FILE_SHARE_WRITE);
    ASSERT_TRUE(reader.ok());
    AtomicFile f = atomic_write(target);
    f.write("new");
    double start = now_seconds();
    try {
        f.commit();
        ADD_FAILURE() << "replaced a file held without FILE_SHARE_DELETE";
    } catch (const WriteFailed &e) {
        EXPECT_TRUE(e.code().value() == EBUSY || e.code().value() == EACCES) << e.what();
        EXPECT_EQ(e.step(), Step::rename);
        EXPECT_NE(std::string(e.what()).find("FILE_SHARE_DELETE"), std::string::npos) << e.what();
    }
    double waited = now_seconds() - start;
    EXPECT_GE(waited, 1.5);
    EXPECT_LT(waited, 5.0);
    EXPECT_EQ(read_file(target), "old");
    EXPECT_EQ(reader.read_all(), "old");
    EXPECT_TRUE(temps_in(dir.path()).empty());
    reader.close();
    atomic_write_content_with_lock(target, std::string("new"));
    EXPECT_EQ(read_file(target), "new");
}

// Each method alone. FileRenameInfoEx is not implemented by Wine 8 (it
// answers ERROR_INVALID_PARAMETER): there the forced method must fail
// cleanly, on Windows 10 1607+ it must work.
class Method : public testing::TestWithParam<int> {};

TEST_P(Method, ReplacesAnExistingTargetAlone) {
    TempDir dir;
    fs::path target = dir / "data.txt";
    write_file(target, "old");
    Reader reader(target, kShareAll);
    ForcedMethod forced(GetParam());
    AtomicFile f = atomic_write(target);
    f.write("new");
    bool committed = false;
    try {
        f.commit();
        committed = true;
    } catch (const WriteFailed &e) {
        // Only these: the method unsupported, or (MoveFileExW) the reader
        // holding the target open, which only the other methods get past.
        if (GetParam() == win::kCommitRenameInfoEx)
            EXPECT_TRUE(e.code().value() == EINVAL || e.code().value() == ENOTSUP) << e.what();
        else if (GetParam() == win::kCommitMoveFileEx)
            EXPECT_TRUE(e.code().value() == EACCES || e.code().value() == EBUSY) << e.what();
        else
            ADD_FAILURE() << e.what();
    }
    EXPECT_EQ(read_file(target), committed ? "new" : "old");
    EXPECT_TRUE(temps_in(dir.path()).empty());
    if (GetParam() == win::kCommitMoveFileEx) {
        // Without a reader MoveFileExW replaces it.
        reader.close();
        atomic_write_content_with_lock(target, std::string("newer"));
        EXPECT_EQ(read_file(target), "newer");
    }
}

TEST_P(Method, CreatesANewTargetAlone) {
    TempDir dir;
    fs::path target = dir / "new.txt";
    ForcedMethod forced(GetParam());
    try {
        atomic_write_content_with_lock(target, std::string("new"));
        EXPECT_EQ(read_file(target), "new");
    } catch (const WriteFailed &e) {
        // ReplaceFileW needs a target to replace; FileRenameInfoEx may be missing.
        if (GetParam() == win::kCommitReplaceFile) EXPECT_EQ(e.code().value(), ENOENT) << e.what();
        else if (GetParam() == win::kCommitRenameInfoEx)
            EXPECT_TRUE(e.code().value() == EINVAL || e.code().value() == ENOTSUP) << e.what();
        else ADD_FAILURE() << e.what();
        EXPECT_FALSE(fs::exists(target));
    }
    EXPECT_TRUE(temps_in(dir.path()).empty());
}

INSTANTIATE_TEST_SUITE_P(Windows, Method,
                         testing::Values(win::kCommitRenameInfoEx, win::kCommitReplaceFile, win::kCommitMoveFileEx),
                         [](const auto &info) {
                             return info.param == win::kCommitRenameInfoEx ? "FileRenameInfoEx"
                                    : info.param == win::kCommitReplaceFile ? "ReplaceFileW"
                                                                             : "MoveFileExW";
                         });

TEST(Paths, NonAsciiNames) {
    TempDir dir;
    fs::path sub = dir.path() / fs::path(u8"données-日本語");
    fs::create_directory(sub);
    fs::path target = sub / fs::path(u8"Grüße ✓.txt");
    atomic_write_content_with_lock(target, std::string("eins"));
    atomic_write_content_with_lock(target, std::string("zwei"));
    EXPECT_EQ(read_file(target), "zwei");
    AtomicFile f = atomic_write(target);
    EXPECT_EQ(utf8(f.target()), utf8(fs::canonical(target)));
    f.discard();
    EXPECT_EQ(list_names(sub), (std::vector<std::string>{u8s(u8"Grüße ✓.txt"), u8s(u8"Grüße ✓.txt.lock")}));
}

TEST(Paths, LongerThanMaxPath) {
    TempDir dir;
    fs::path deep = dir.path();
    for (int i = 0; i < 6; ++i) {
        deep /= std::string(50, static_cast<char>('a' + i));
        ASSERT_TRUE(CreateDirectoryW(long_path(deep).c_str(), nullptr)) << GetLastError();
    }
    fs::path target = deep / (std::string(40, 'z') + ".txt");
    ASSERT_GT(target.wstring().size(), 300u);
    atomic_write_content_with_lock(target, std::string("long"));
    {
        AtomicFile f = atomic_write(target, "a");
        f.write(" path");
        f.commit();
    }
    EXPECT_EQ(read_file(target), "long path");
    EXPECT_EQ(list_names(deep), (std::vector<std::string>{std::string(40, 'z') + ".txt", std::string(40, 'z') + ".txt.lock"}));
}

// A path that already has the \\?\ prefix is taken as it is.
TEST(Paths, GivenWithTheLongPathPrefix) {
    TempDir dir;
    fs::path target = dir / "prefixed.txt";
    std::string prefixed = utf8(fs::path(long_path(target)));
    ASSERT_EQ(prefixed.rfind("\\\\?\\", 0), 0u) << prefixed;
    ASSERT_EQ(wlf_write_content(prefixed.c_str(), "p", 1, nullptr, nullptr), 0);
    EXPECT_EQ(read_file(target), "p");
    wlf_file *f = nullptr;
    ASSERT_EQ(wlf_open_flags(prefixed.c_str(), WLF_OPEN_WRITE | WLF_OPEN_APPEND, 0, nullptr, &f, nullptr), 0);
    EXPECT_EQ(std::string(wlf_file_target(f)), utf8(target));  // shown without the prefix
    wlf_discard(f);
}

TEST(Attributes, HiddenStaysHiddenNewIsNotAndTheTempIsUntilTheCommit) {
    TempDir dir;
    fs::path target = dir / "hidden.txt";
    write_file(target, "old");
    ASSERT_TRUE(SetFileAttributesW(long_path(target).c_str(), FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_ARCHIVE));
    {
        AtomicFile f = atomic_write(target);
        auto temps = temps_in(dir.path());
        ASSERT_EQ(temps.size(), 1u);
        EXPECT_EQ(temps[0].rfind(".hidden.txt.", 0), 0u) << temps[0];
        EXPECT_TRUE(attributes(dir / temps[0]) & FILE_ATTRIBUTE_HIDDEN);
        f.write("new");
        f.commit();
    }
    EXPECT_EQ(read_file(target), "new");
    EXPECT_TRUE(attributes(target) & FILE_ATTRIBUTE_HIDDEN);
    fs::path fresh = dir / "fresh.txt";
    atomic_write_content_with_lock(fresh, std::string("x"));
    EXPECT_FALSE(attributes(fresh) & FILE_ATTRIBUTE_HIDDEN);
}

TEST(Attributes, ReadOnlyTargetIsRefusedLikeTheProgramsOpen) {
    TempDir dir;
    fs::path target = dir / "ro.txt";
    write_file(target, "old");
    ASSERT_TRUE(SetFileAttributesW(long_path(target).c_str(), FILE_ATTRIBUTE_READONLY));
    try {
        atomic_write_content_with_lock(target, std::string("new"));
        ADD_FAILURE() << "replaced a read-only file";
    } catch (const WriteFailed &e) {
        EXPECT_EQ(e.code().value(), EACCES);
        EXPECT_EQ(e.step(), Step::open);
    }
    SetFileAttributesW(long_path(target).c_str(), FILE_ATTRIBUTE_NORMAL);
    EXPECT_EQ(read_file(target), "old");
    EXPECT_TRUE(temps_in(dir.path()).empty());
}

std::wstring dacl_of(const fs::path &p) {
    PSECURITY_DESCRIPTOR sd = nullptr;
    if (GetNamedSecurityInfoW(long_path(p).c_str(), SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, nullptr, nullptr,
                              nullptr, nullptr, &sd) != ERROR_SUCCESS)
        return L"?";
    LPWSTR text = nullptr;
    std::wstring out = L"?";
    if (ConvertSecurityDescriptorToStringSecurityDescriptorW(sd, SDDL_REVISION_1, DACL_SECURITY_INFORMATION, &text,
                                                             nullptr)) {
        out = text;
        LocalFree(text);
    }
    LocalFree(sd);
    return out;
}

TEST(Security, ProtectedDaclIsKept) {
    TempDir dir;
    fs::path target = dir / "secret.txt";
    write_file(target, "old");
    // Protected: only these two entries (full control for the owner rights
    // and for Administrators, read for Everyone).
    const wchar_t *sddl = L"D:P(A;;FA;;;OW)(A;;FA;;;BA)(A;;FR;;;WD)";
    PSECURITY_DESCRIPTOR want = nullptr;
    ASSERT_TRUE(ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &want, nullptr));
    BOOL present = FALSE, defaulted = FALSE;
    PACL acl = nullptr;
    ASSERT_TRUE(GetSecurityDescriptorDacl(want, &present, &acl, &defaulted));
    DWORD rc = SetNamedSecurityInfoW(const_cast<wchar_t *>(long_path(target).c_str()), SE_FILE_OBJECT,
                                     DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION, nullptr, nullptr,
                                     acl, nullptr);
    LocalFree(want);
    ASSERT_EQ(rc, static_cast<DWORD>(ERROR_SUCCESS));
    std::wstring before = dacl_of(target);
    ASSERT_NE(before, L"?");
    // Wine 8 does not store a file's security descriptor: it accepts the
    // DACL and answers one made from the Unix mode.
    if (before.find(L"D:P") == std::wstring::npos)
        GTEST_SKIP() << "the DACL set on the target was not kept (Wine does not store file security descriptors)";

    atomic_write_content_with_lock(target, std::string("new"));
    EXPECT_EQ(read_file(target), "new");
    EXPECT_EQ(dacl_of(target), before);
}

TEST(Links, SymbolicLinkStaysALinkAndTheTempGoesNextToTheTarget) {
    TempDir dir;
    fs::create_directory(dir / "data");
    fs::create_directory(dir / "etc");
    fs::path target = dir / "data" / "app.conf";
    fs::path link = dir / "etc" / "app.conf";
    write_file(target, "debug=false\n");
    // Wine 8's CreateSymbolicLinkW is a stub: it succeeds and creates nothing.
    if (!CreateSymbolicLinkW(long_path(link).c_str(), long_path(target).c_str(), 0) ||
        attributes(link) == INVALID_FILE_ATTRIBUTES)
        GTEST_SKIP() << "no symbolic link could be made here (Wine 8 creates none)";
    {
        AtomicFile f = atomic_write(link);
        EXPECT_EQ(utf8(f.target()), utf8(fs::canonical(target)));
        EXPECT_EQ(temps_in(dir / "data").size(), 1u);
        EXPECT_TRUE(temps_in(dir / "etc").empty());
        f.write("debug=true\n");
        f.commit();
    }
    EXPECT_TRUE(attributes(link) & FILE_ATTRIBUTE_REPARSE_POINT);
    EXPECT_EQ(read_file(target), "debug=true\n");
    EXPECT_EQ(list_names(dir / "etc"), (std::vector<std::string>{"app.conf"}));
    EXPECT_EQ(list_names(dir / "data"), (std::vector<std::string>{"app.conf", "app.conf.lock"}));
    // WLF_OPEN_NOFOLLOW: the link itself is refused (ELOOP), nothing changes.
    wlf_file *f = nullptr;
    EXPECT_EQ(wlf_open_flags(utf8(link).c_str(), WLF_OPEN_WRITE | WLF_OPEN_NOFOLLOW, 0, nullptr, &f, nullptr), ELOOP);
    EXPECT_EQ(f, nullptr);
    EXPECT_EQ(read_file(target), "debug=true\n");
    EXPECT_EQ(list_names(dir / "data"), (std::vector<std::string>{"app.conf", "app.conf.lock"}));
}

// WLF_OPEN_NOFOLLOW on a plain file changes nothing (it is the library's
// own bit on Windows, never handed to the CRT).
TEST(Links, NoFollowOnAPlainFileOpensIt) {
    TempDir dir;
    fs::path target = dir / "plain.txt";
    write_file(target, "old");
    wlf_file *f = nullptr;
    wlf_error err{};
    ASSERT_EQ(wlf_open_flags(utf8(target).c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE | WLF_OPEN_NOFOLLOW, 0, nullptr,
                             &f, &err),
              0)
        << err.op;
    ASSERT_EQ(_write(wlf_file_fd(f), "new", 3), 3);
    EXPECT_EQ(wlf_commit(f, nullptr, &err), 0) << err.op;
    EXPECT_EQ(read_file(target), "new");
}

TEST(Links, HardLinkedTargetIsWrittenInPlaceKeepingTheLinks) {
    TempDir dir;
    fs::path target = dir / "a.txt";
    fs::path other = dir / "b.txt";
    write_file(target, "old");
    ASSERT_TRUE(CreateHardLinkW(long_path(other).c_str(), long_path(target).c_str(), nullptr)) << GetLastError();
    EXPECT_EQ(atomic_write_content_with_lock(target, std::string("new")), CommitKind::in_place);
    EXPECT_EQ(read_file(other), "new");
    WriteOptions split;
    split.hard_links = HardLinkPolicy::split;
    EXPECT_EQ(atomic_write_content_with_lock(target, std::string("split"), split), CommitKind::rename);
    EXPECT_EQ(read_file(target), "split");
    EXPECT_EQ(read_file(other), "new");
}

TEST(Special, DirectoryIsRefusedAndDeviceIsWrittenThrough) {
    TempDir dir;
    fs::create_directory(dir / "sub");
    try {
        atomic_write_content_with_lock(dir / "sub", std::string("x"));
        ADD_FAILURE() << "replaced a directory";
    } catch (const WriteFailed &e) {
        EXPECT_EQ(e.code().value(), EISDIR);
    }
    EXPECT_TRUE(fs::is_directory(dir / "sub"));
    EXPECT_EQ(atomic_write_content_with_lock("NUL", std::string("into the void")), CommitKind::passthrough);
}

}  // namespace
