// The Windows shim end to end under Wine: atomically.exe runs an unmodified
// client (clients/wlf_client.cpp) whose writes must become atomic
// replacements. A reader looks while the client is between its two halves
// (named events, never sleeps): the old content then, the new one after,
// nothing left over but the kept lock file. README "Windows".
#include "win_support.hpp"

#include <gtest/gtest.h>

#include <tlhelp32.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace wlf_win;

namespace {

// A build path from meson (a Unix path) as Wine names it.
std::wstring from_env(const char *var) {
    const char *v = getenv(var);
    if (!v || !*v) return {};
    std::string s = v;
    if (s[0] == '/') s = "Z:" + s;
    for (char &c : s)
        if (c == '/') c = '\\';
    return std::wstring(s.begin(), s.end());
}

std::wstring quote(const std::wstring &a) { return L"\"" + a + L"\""; }
std::wstring widen(const std::string &s) {
    int n = MultiByteToWideChar(CP_UTF8, 0, s.c_str(), -1, nullptr, 0);
    std::wstring w(static_cast<size_t>(n), L'\0');
    MultiByteToWideChar(CP_UTF8, 0, s.c_str(), -1, w.data(), n);
    w.resize(static_cast<size_t>(n - 1));
    return w;
}

// A process started from a command line (no window, inherited standard handles).
class Process {
public:
    explicit Process(std::wstring cmd) {
        STARTUPINFOW si{};
        si.cb = sizeof si;
        ok_ = CreateProcessW(nullptr, cmd.data(), nullptr, nullptr, FALSE, 0, nullptr, nullptr, &si, &pi_);
        if (!ok_) error_ = GetLastError();
    }
    ~Process() {
        if (!ok_) return;
        if (WaitForSingleObject(pi_.hProcess, 0) != WAIT_OBJECT_0) TerminateProcess(pi_.hProcess, 99);
        CloseHandle(pi_.hThread);
        CloseHandle(pi_.hProcess);
    }
    Process(const Process &) = delete;
    Process &operator=(const Process &) = delete;
    bool started() const { return ok_; }
    DWORD error() const { return error_; }
    DWORD id() const { return pi_.dwProcessId; }
    // Exit code, or -1 on timeout.
    int wait(DWORD ms = 60000) {
        if (WaitForSingleObject(pi_.hProcess, ms) != WAIT_OBJECT_0) return -1;
        DWORD code = 0;
        GetExitCodeProcess(pi_.hProcess, &code);
        return static_cast<int>(code);
    }

private:
    PROCESS_INFORMATION pi_{};
    BOOL ok_ = FALSE;
    DWORD error_ = 0;
};

std::wstring atomically() { return quote(from_env("WLF_ATOMICALLY")); }
std::wstring client() { return quote(from_env("WLF_CLIENT")); }

// "atomically.exe --rule RULE -- wlf_client ARGS..." (no atomically when rule is empty).
std::wstring command(const std::string &rule, const std::vector<std::string> &args) {
    std::wstring cmd = rule.empty() ? client() : atomically() + L" --rule " + quote(widen(rule)) + L" -- " + client();
    for (const std::string &a : args) cmd += L" " + quote(widen(a));
    return cmd;
}

int run(const std::string &rule, const std::vector<std::string> &args) {
    Process p(command(rule, args));
    EXPECT_TRUE(p.started()) << p.error();
    return p.started() ? p.wait() : -1;
}

// Runs the client (ARGS, then the names of a READY and a GO event) and reads
// `target` while it is halfway: what the reader saw, and the exit code.
struct Halfway {
    std::string seen;
    int code = -1;
};

Halfway run_with_reader(const std::string &rule, std::vector<std::string> args, const fs::path &target) {
    std::string ready = Event::unique_name("ready"), go = Event::unique_name("go");
    Event ready_event(ready), go_event(go);
    args.push_back(ready);
    args.push_back(go);
    Process p(command(rule, args));
    Halfway out;
    if (!p.started()) {
        ADD_FAILURE() << "cannot start the client: " << p.error();
        return out;
    }
    if (!ready_event.wait()) {
        ADD_FAILURE() << "the client never got halfway";
        return out;
    }
    out.seen = read_file(target);
    go_event.set();
    out.code = p.wait();
    return out;
}

BY_HANDLE_FILE_INFORMATION file_info(const fs::path &p) {
    BY_HANDLE_FILE_INFORMATION info{};
    HANDLE h = CreateFileW(p.wstring().c_str(), 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                           OPEN_EXISTING, 0, nullptr);
    EXPECT_NE(h, INVALID_HANDLE_VALUE);
    GetFileInformationByHandle(h, &info);
    CloseHandle(h);
    return info;
}

uint64_t file_index(const BY_HANDLE_FILE_INFORMATION &info) {
    return (uint64_t{info.nFileIndexHigh} << 32) | info.nFileIndexLow;
}

// The wlf_client.exe that `parent` started (atomically.exe's COMMAND),
// opened to be ended; null when there is none.
HANDLE client_child_of(DWORD parent) {
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
    if (snap == INVALID_HANDLE_VALUE) return nullptr;
    PROCESSENTRY32W e{};
    e.dwSize = sizeof e;
    HANDLE child = nullptr;
    for (BOOL more = Process32FirstW(snap, &e); more && !child; more = Process32NextW(snap, &e))
        if (e.th32ParentProcessID == parent && _wcsicmp(e.szExeFile, L"wlf_client.exe") == 0)
            child = OpenProcess(PROCESS_TERMINATE | SYNCHRONIZE, FALSE, e.th32ProcessID);
    CloseHandle(snap);
    return child;
}

const char kOld[] = "the old content";
const char kNew[] = "0123456789 the new content 9876543210";

class EachMethod : public testing::TestWithParam<const char *> {};

// A reader sees the old content while the client is halfway, the new one
// after it closed, and nothing is left over but "<target>.lock".
TEST_P(EachMethod, ReaderSeesOldThenNewNothingLeftOver) {
    std::string method = GetParam();
    TempDir dir;
    fs::path target = dir / "target.txt";
    write_file(target, kOld);
    Halfway h = run_with_reader(utf8(target), {"write", method, utf8(target), kNew}, target);
    EXPECT_EQ(h.seen, kOld) << "mid-write, through " << method;
    ASSERT_EQ(h.code, 0);
    std::string expected = method == "append" ? std::string(kOld) + kNew : std::string(kNew);
    EXPECT_EQ(read_file(target), expected) << method;
    EXPECT_EQ(list_names(dir.path()), (std::vector<std::string>{"target.txt", "target.txt.lock"})) << method;
}

INSTANTIATE_TEST_SUITE_P(Methods, EachMethod,
                         testing::Values("CreateFileW", "CreateFileA", "CreateFile2", "GetProcAddress", "fopen",
                                         "_wfopen", "_wopen", "ofstream", "append"));

// The same check without atomically.exe sees the half-written file: the
// test above can fail.
TEST(ShimWin, WithoutTheShimAReaderSeesTheHalfWrittenFile) {
    TempDir dir;
    fs::path target = dir / "target.txt";
    write_file(target, kOld);
    Halfway h = run_with_reader("", {"write", "CreateFileW", utf8(target), kNew}, target);
    EXPECT_EQ(h.seen, std::string(kNew).substr(0, sizeof kNew / 2 - 1));
    EXPECT_EQ(h.code, 0);
}

// libstdc++'s copy_file chmods the new file by name while it is open
// (_wchmod, SetFileAttributesW): the pending file must answer.
TEST(ShimWin, CopyFileAnswersPathQueriesOnThePendingFile) {
    TempDir dir;
    fs::path target = dir / "target.txt";
    write_file(dir / "target.txt.src", kNew);
    EXPECT_EQ(run("target.txt", {"write", "copy_file", utf8(target), ""}), 0);
    EXPECT_EQ(read_file(target), kNew);
    EXPECT_EQ(list_names(dir.path()), (std::vector<std::string>{"target.txt", "target.txt.lock", "target.txt.src"}));
}

// Onto an existing file, libstdc++'s copy_file (GCC 12) refuses by itself
// with overwrite_existing too, before it opens anything: the CRT's _wstat
// gives every file inode 0, so source and target look like one file
// ("File exists", exit 4). Under the shim the refusal is the same and
// leaves everything as it was: the old content, no lock file, no temp. (A
// libstdc++ that gets past the check opens the target as for a new file,
// the case above.)
TEST(ShimWin, CopyFileOntoAnExistingFileIsRefusedAsWithoutTheShim) {
    for (const char *rule : {"", "target.txt"}) {
        TempDir dir;
        fs::path target = dir / "target.txt";
        write_file(target, kOld);
        write_file(dir / "target.txt.src", kNew);
        EXPECT_EQ(run(rule, {"write", "copy_file", utf8(target), ""}), 4) << "rule '" << rule << "'";
        EXPECT_EQ(read_file(target), kOld);
        EXPECT_EQ(list_names(dir.path()), (std::vector<std::string>{"target.txt", "target.txt.src"}));
    }
}

TEST(ShimWin, PathQueriesAgreeWithThePendingFile) {
    TempDir dir;
    fs::path target = dir / "target.txt";
    write_file(target, kOld);
    EXPECT_EQ(run(utf8(target), {"stat", utf8(target)}), 0);
    EXPECT_EQ(read_file(target), "12345");
}

// A lock-only file is written in place: its path answers as the file itself.
TEST(ShimWin, PathQueriesOfALockOnlyFileAreItsOwn) {
    TempDir dir;
    fs::path target = dir / "target.txt";
    write_file(target, kOld);
    Process p(atomically() + L" --lock-only " + quote(target.wstring()) + L" -- " + client() + L" stat " +
              quote(target.wstring()));
    ASSERT_TRUE(p.started()) << p.error();
    EXPECT_EQ(p.wait(), 0);
    EXPECT_EQ(read_file(target), "12345");
    EXPECT_EQ(list_names(dir.path()), (std::vector<std::string>{"target.txt", "target.txt.lock"}));
}

// GetFileInformationByHandle on the program's handle (the temp's) answers
// as the file will be after the commit: the target's attributes (not the
// temp's hidden one), the size written, one link, and the file index the
// target has after the close (the commit renames that very file onto it).
TEST(ShimWin, HandleQueriesAgreeWithThePendingFile) {
    TempDir dir;
    fs::path target = dir / "target.txt", report = dir / "report.txt";
    write_file(target, kOld);
    BY_HANDLE_FILE_INFORMATION before = file_info(target);
    ASSERT_EQ(before.dwFileAttributes & (FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_READONLY), 0u);
    ASSERT_EQ(run(utf8(target), {"fileinfo", utf8(target), kNew, utf8(report)}), 0);
    unsigned long attributes = 0, size = 0, links = 0;
    unsigned long long index = 0;
    ASSERT_EQ(sscanf(read_file(report).c_str(), "%lx %lu %lu %llx", &attributes, &size, &links, &index), 4);
    EXPECT_EQ(attributes, before.dwFileAttributes) << "mid-write, 0x" << std::hex << attributes;
    EXPECT_EQ(size, strlen(kNew));
    EXPECT_EQ(links, 1u);
    EXPECT_NE(index, file_index(before)) << "the handle is the replacement's, not the old file's";
    EXPECT_EQ(read_file(target), kNew);
    BY_HANDLE_FILE_INFORMATION after = file_info(target);
    EXPECT_EQ(file_index(after), index);
    EXPECT_EQ(after.dwFileAttributes, before.dwFileAttributes);
    EXPECT_EQ(list_names(dir.path()), (std::vector<std::string>{"report.txt", "target.txt", "target.txt.lock"}));
}

// A writer killed halfway (TerminateProcess) commits nothing: the target
// keeps its old content and file, the lock is free again (the next write
// goes through), and what it wrote stays in its hidden temp
// ".target.txt.<random>~~", which nothing removes (README "Windows",
// Limits).
TEST(ShimWin, AKilledWriterLeavesTheOldContentAndItsHiddenTemp) {
    TempDir dir;
    fs::path target = dir / "target.txt";
    write_file(target, kOld);
    BY_HANDLE_FILE_INFORMATION before = file_info(target);
    std::string ready = Event::unique_name("ready"), go = Event::unique_name("go");
    Event ready_event(ready), go_event(go);
    Process p(command(utf8(target), {"write", "CreateFileW", utf8(target), kNew, ready, go}));
    ASSERT_TRUE(p.started()) << p.error();
    ASSERT_TRUE(ready_event.wait()) << "the client never got halfway";
    HANDLE client = client_child_of(p.id());
    ASSERT_NE(client, nullptr) << "atomically.exe's child not found";
    EXPECT_TRUE(TerminateProcess(client, 9));
    EXPECT_EQ(WaitForSingleObject(client, 20000), WAIT_OBJECT_0);
    CloseHandle(client);
    EXPECT_EQ(p.wait(), 9);  // atomically.exe passes the child's exit code on

    EXPECT_EQ(read_file(target), kOld);
    EXPECT_EQ(file_index(file_info(target)), file_index(before));
    std::vector<std::string> names = list_names(dir.path());
    ASSERT_EQ(names.size(), 3u);
    const std::string &temp = names[0];
    EXPECT_EQ(temp.rfind(".target.txt.", 0), 0u) << temp;
    EXPECT_EQ(temp.substr(temp.size() - 2), "~~") << temp;
    EXPECT_EQ(names[1], "target.txt");
    EXPECT_EQ(names[2], "target.txt.lock");
    DWORD attributes = GetFileAttributesW((dir.path() / temp).wstring().c_str());
    EXPECT_NE(attributes, INVALID_FILE_ATTRIBUTES);
    EXPECT_TRUE(attributes & FILE_ATTRIBUTE_HIDDEN);
    EXPECT_EQ(read_file(dir.path() / temp), std::string(kNew).substr(0, strlen(kNew) / 2));

    EXPECT_EQ(run(utf8(target), {"write", "CreateFileW", utf8(target), kNew}), 0);
    EXPECT_EQ(read_file(target), kNew);
    EXPECT_EQ(list_names(dir.path()), names);
}

TEST(ShimWin, DuplicateHandleCommitsOnceAtTheLastClose) {
    TempDir dir;
    fs::path target = dir / "target.txt";
    write_file(target, kOld);
    Halfway h = run_with_reader(utf8(target), {"dup", utf8(target), kNew}, target);
    // The original handle is closed, its copy still open: nothing committed yet.
    EXPECT_EQ(h.seen, kOld);
    ASSERT_EQ(h.code, 0);
    EXPECT_EQ(read_file(target), kNew);
    EXPECT_EQ(list_names(dir.path()), (std::vector<std::string>{"target.txt", "target.txt.lock"}));
}

TEST(ShimWin, UnmatchedPathsAreUntouched) {
    TempDir dir;
    fs::path other = dir / "other.txt";
    write_file(other, kOld);
    BY_HANDLE_FILE_INFORMATION before = file_info(other);
    Halfway h = run_with_reader("*.matched", {"write", "CreateFileW", utf8(other), kNew}, other);
    EXPECT_NE(h.seen, kOld);  // written in place, as without the shim
    ASSERT_EQ(h.code, 0);
    EXPECT_EQ(read_file(other), kNew);
    BY_HANDLE_FILE_INFORMATION after = file_info(other);
    EXPECT_EQ(after.nFileIndexLow, before.nFileIndexLow);
    EXPECT_EQ(after.nFileIndexHigh, before.nFileIndexHigh);
    EXPECT_EQ(list_names(dir.path()), (std::vector<std::string>{"other.txt"}));
}

TEST(ShimWin, ChildrenAndGrandchildrenAreFollowed) {
    TempDir dir;
    fs::path target = dir / "target.txt";
    write_file(target, kOld);
    // atomically -> client spawn -> client spawn -> client write
    Halfway h = run_with_reader(utf8(target), {"spawn", "spawn", "write", "CreateFileW", utf8(target), kNew}, target);
    EXPECT_EQ(h.seen, kOld);
    ASSERT_EQ(h.code, 0);
    EXPECT_EQ(read_file(target), kNew);
    EXPECT_EQ(list_names(dir.path()), (std::vector<std::string>{"target.txt", "target.txt.lock"}));
}

// Every way a program starts a child reaches CreateProcessInternalW: the
// child's write is atomic (mid-write reader, lock file), so it was injected.
class EachChild : public testing::TestWithParam<const char *> {};

TEST_P(EachChild, WritesOfTheChildAreAtomic) {
    TempDir dir;
    fs::path target = dir / "target.txt";
    write_file(target, kOld);
    Halfway h = run_with_reader(utf8(target), {GetParam(), "write", "CreateFileW", utf8(target), kNew}, target);
    EXPECT_EQ(h.seen, kOld) << GetParam();
    ASSERT_EQ(h.code, 0) << GetParam();
    EXPECT_EQ(read_file(target), kNew);
    EXPECT_EQ(list_names(dir.path()), (std::vector<std::string>{"target.txt", "target.txt.lock"}));
}

INSTANTIATE_TEST_SUITE_P(Ways, EachChild, testing::Values("spawn", "spawnA", "wspawn", "wspawnl", "wsystem", "suspended"));

TEST(ShimWin, ALateLoadedDllIsCovered) {
    TempDir dir;
    fs::path target = dir / "target.txt";
    write_file(target, kOld);
    std::wstring dll = from_env("WLF_TARGET_DLL");
    ASSERT_FALSE(dll.empty());
    EXPECT_EQ(run(utf8(target), {"latedll", utf8(fs::path(dll)), utf8(target), kNew}), 0);
    EXPECT_EQ(read_file(target), kNew);
    EXPECT_EQ(list_names(dir.path()), (std::vector<std::string>{"target.txt", "target.txt.lock"}));
}

// cmd.exe's redirections and copy, compared with the same command line run
// without the shim: the same content, and the lock file shows it went
// through the shim.
TEST(ShimWin, CmdExeRedirectionsAndCopyMatchThePlainRun) {
    const char *lines[] = {"echo X>T", "echo X>T && echo Y>>T", "copy /y S T", "type S > T"};
    for (const char *line : lines) {
        std::string results[2];
        for (int shim = 0; shim < 2; ++shim) {
            TempDir dir;
            fs::path target = dir / "target.txt", source = dir / "source.txt";
            write_file(target, kOld);
            write_file(source, kNew);
            std::wstring cmdline;
            for (const char *c = line; *c; ++c) {
                if (*c == 'T') cmdline += target.wstring();
                else if (*c == 'S') cmdline += source.wstring();
                else cmdline += static_cast<wchar_t>(*c);
            }
            std::wstring prefix = shim ? atomically() + L" --rule " + quote(target.wstring()) + L" -- " : L"";
            Process p(prefix + L"cmd.exe /c " + cmdline);
            ASSERT_TRUE(p.started());
            EXPECT_EQ(p.wait(), 0) << line;
            results[shim] = read_file(target);
            std::vector<std::string> expected{"source.txt", "target.txt"};
            if (shim) expected.push_back("target.txt.lock");
            EXPECT_EQ(list_names(dir.path()), expected) << line;
        }
        EXPECT_EQ(results[1], results[0]) << line;
        EXPECT_NE(results[1], kOld) << line;
    }
}

// 8 processes x 50 read-modify-write increments: exactly 400 under the
// shim (each open is locked); fewer without it (lost updates).
int count_after_increments(const std::string &rule, const fs::path &counter) {
    write_file(counter, "0");
    std::vector<std::unique_ptr<Process>> procs;
    for (int i = 0; i < 8; ++i) procs.push_back(std::make_unique<Process>(command(rule, {"increment", utf8(counter), "50"})));
    for (auto &p : procs) EXPECT_EQ(p->wait(120000), 0);
    return std::atoi(read_file(counter).c_str());
}

TEST(ShimWin, EightProcessesTimesFiftyIncrementsEndAt400) {
    TempDir dir;
    fs::path counter = dir / "counter.txt";
    EXPECT_EQ(count_after_increments(utf8(counter), counter), 400);
    EXPECT_LT(count_after_increments("", counter), 400) << "without the shim updates should be lost";
}

TEST(ShimWin, ExitCodes) {
    EXPECT_EQ(run("*.none", {"exit", "7"}), 7);
    EXPECT_EQ(run("*.none", {"exit", "0"}), 0);
    Process missing(atomically() + L" --rule x -- Z:\\no\\such\\program.exe");
    ASSERT_TRUE(missing.started());
    EXPECT_EQ(missing.wait(), 127);
    Process bad_option(atomically() + L" --no-such-option -- " + client() + L" exit 0");
    ASSERT_TRUE(bad_option.started());
    EXPECT_EQ(bad_option.wait(), 125);
    Process bad_timeout(atomically() + L" --timeout soon -- " + client() + L" exit 0");
    ASSERT_TRUE(bad_timeout.started());
    EXPECT_EQ(bad_timeout.wait(), 125);
    Process bad_glob(atomically() + L" --rule \"a[b\" -- " + client() + L" exit 0");
    ASSERT_TRUE(bad_glob.started());
    EXPECT_EQ(bad_glob.wait(), 125);
}

// The settings take the Linux shim's names and values (shim/common/config):
// each accepted one runs COMMAND, a bad one is exit 125 and runs nothing.
TEST(ShimWin, SettingsTakeTheSharedGrammar) {
    for (const wchar_t *good : {L"--fsync full", L"--fsync batch", L"--fsync none", L"--lock-backend auto",
                                L"--lock-backend dotlock", L"--timeout 1.5", L"--keep-lock-files"}) {
        Process p(atomically() + L" " + good + L" --rule x.none -- " + client() + L" exit 3");
        ASSERT_TRUE(p.started());
        EXPECT_EQ(p.wait(), 3) << utf8(good);
    }
    for (const wchar_t *bad : {L"--fsync sometimes", L"--lock-backend fcntl", L"--timeout -"}) {
        Process p(atomically() + L" " + bad + L" --rule x.none -- " + client() + L" exit 3");
        ASSERT_TRUE(p.started());
        EXPECT_EQ(p.wait(), 125) << utf8(bad);
    }
    ASSERT_TRUE(SetEnvironmentVariableW(L"WRAP_LOCKFILE_KEEP_LOCK_FILES", L"yes"));
    Process inherited(atomically() + L" --rule x.none -- " + client() + L" exit 3");
    ASSERT_TRUE(inherited.started());
    int rc = inherited.wait();
    SetEnvironmentVariableW(L"WRAP_LOCKFILE_KEEP_LOCK_FILES", nullptr);
    EXPECT_EQ(rc, 125);
}

TEST(ShimWin, InjectionFailureIs125AndTheCommandDoesNotRun) {
    TempDir dir;
    fs::path not_a_dll = dir / "broken.dll";
    write_file(not_a_dll, "this is not a DLL");
    fs::path target = dir / "target.txt";
    ASSERT_TRUE(SetEnvironmentVariableW(L"WRAP_LOCKFILE_HOOK_DLL", not_a_dll.wstring().c_str()));
    int rc = run(utf8(target), {"write", "CreateFileW", utf8(target), kNew});
    SetEnvironmentVariableW(L"WRAP_LOCKFILE_HOOK_DLL", nullptr);
    EXPECT_EQ(rc, 125);
    EXPECT_FALSE(fs::exists(target));
}


// The headers of a 32-bit program, as atomically.exe reads them: a DOS
// header pointing at "PE\0\0", a file header for IMAGE_FILE_MACHINE_I386
// and a PE32 optional header. Not runnable, and need not be.
std::string pe32_image() {
    std::string image(512, '\0');
    IMAGE_DOS_HEADER dos{};
    dos.e_magic = IMAGE_DOS_SIGNATURE;
    dos.e_lfanew = sizeof dos;
    DWORD signature = IMAGE_NT_SIGNATURE;
    IMAGE_FILE_HEADER header{};
    header.Machine = IMAGE_FILE_MACHINE_I386;
    header.SizeOfOptionalHeader = sizeof(IMAGE_OPTIONAL_HEADER32);
    header.Characteristics = IMAGE_FILE_EXECUTABLE_IMAGE | IMAGE_FILE_32BIT_MACHINE;
    IMAGE_OPTIONAL_HEADER32 optional{};
    optional.Magic = IMAGE_NT_OPTIONAL_HDR32_MAGIC;
    size_t at = 0;
    for (auto [bytes, n] : {std::pair<const void *, size_t>{&dos, sizeof dos}, {&signature, sizeof signature},
                            {&header, sizeof header}, {&optional, sizeof optional}}) {
        std::memcpy(image.data() + at, bytes, n);
        at += n;
    }
    return image;
}

// A 32-bit COMMAND cannot take the 64-bit DLL: atomically.exe refuses it by
// its headers with 125 before it exists, named by its path or found
// through PATH with ".exe" appended as CreateProcess finds it. Without
// atomically.exe the same start is refused Wine's own way (it has no
// 32-bit half here; Wine 8: CreateProcess fails, ERROR_BAD_EXE_FORMAT),
// never with 125: the 125 is atomically.exe's refusal. What is not a PE
// image is left to CreateProcess: a text named .exe (126), a script.
TEST(ShimWin, A32BitCommandIsRefusedByItsHeadersAndNotRun) {
    TempDir dir;
    fs::path image = dir / "old32.exe";
    write_file(image, pe32_image());
    fs::path target = dir / "target.txt";
    std::wstring args = L" write CreateFileW " + quote(target.wstring()) + L" new";
    std::wstring prefix = atomically() + L" --rule " + quote(target.wstring()) + L" -- ";
    Process by_path(prefix + quote(image.wstring()) + args);
    ASSERT_TRUE(by_path.started());
    EXPECT_EQ(by_path.wait(), 125);

    DWORD n = GetEnvironmentVariableW(L"PATH", nullptr, 0);
    std::wstring old_path(n, L'\0');
    old_path.resize(GetEnvironmentVariableW(L"PATH", old_path.data(), n));
    ASSERT_TRUE(SetEnvironmentVariableW(L"PATH", (dir.path().wstring() + L";" + old_path).c_str()));
    Process by_name(prefix + L"old32" + args);
    int by_name_rc = by_name.started() ? by_name.wait() : -1;
    SetEnvironmentVariableW(L"PATH", old_path.c_str());
    EXPECT_EQ(by_name_rc, 125);
    EXPECT_FALSE(fs::exists(target));
    EXPECT_EQ(list_names(dir.path()), std::vector<std::string>{"old32.exe"});

    Process plain(quote(image.wstring()) + args);
    if (plain.started()) {
        int rc = plain.wait();
        EXPECT_NE(rc, 125);
        EXPECT_NE(rc, 0);
    } else {
        EXPECT_NE(plain.error(), 0u);
    }
    EXPECT_FALSE(fs::exists(target));

    write_file(dir / "text.exe", "MZ, and then not an image");
    Process text(prefix + quote((dir / "text.exe").wstring()) + args);
    ASSERT_TRUE(text.started());
    EXPECT_EQ(text.wait(), 126);
    write_file(dir / "script.cmd", "@exit /b 3\r\n");
    Process script(prefix + quote((dir / "script.cmd").wstring()));
    ASSERT_TRUE(script.started());
    EXPECT_EQ(script.wait(), 3);
}

}  // namespace
