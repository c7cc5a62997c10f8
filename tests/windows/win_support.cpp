#include "win_support.hpp"

#include "command_line.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include "skip_aware.hpp"

#include <gtest/gtest.h>
#include <shellapi.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace wlf_win {

using wrap_lockfile::win::quote_arg;

TempDir::TempDir() {
    static std::atomic<int> counter{0};
    fs::path base = fs::temp_directory_path();
    for (;;) {
        fs::path p = base / ("wlf-test-" + std::to_string(GetCurrentProcessId()) + "-" + std::to_string(counter++));
        if (fs::create_directory(p)) {
            path_ = fs::canonical(p);
            return;
        }
    }
}

namespace {

// The names in a directory by FindFirstFileW on its \\?\ path (mingw's
// std::filesystem mishandles that prefix), without "." and "..".
std::vector<std::wstring> entries_of(const std::wstring &dir) {
    std::vector<std::wstring> out;
    WIN32_FIND_DATAW d;
    HANDLE h = FindFirstFileW((dir + L"\\*").c_str(), &d);
    if (h == INVALID_HANDLE_VALUE) return out;
    do {
        std::wstring n = d.cFileName;
        if (n != L"." && n != L"..") out.push_back(n);
    } while (FindNextFileW(h, &d));
    FindClose(h);
    return out;
}

void remove_tree(const std::wstring &path) {
    DWORD a = GetFileAttributesW(path.c_str());
    if (a == INVALID_FILE_ATTRIBUTES) return;
    if ((a & FILE_ATTRIBUTE_DIRECTORY) && !(a & FILE_ATTRIBUTE_REPARSE_POINT)) {
        for (const auto &n : entries_of(path)) remove_tree(path + L"\\" + n);
        RemoveDirectoryW(path.c_str());
        return;
    }
    if (a & FILE_ATTRIBUTE_READONLY) SetFileAttributesW(path.c_str(), FILE_ATTRIBUTE_NORMAL);
    if (a & FILE_ATTRIBUTE_DIRECTORY) RemoveDirectoryW(path.c_str());  // a link to a directory
    else DeleteFileW(path.c_str());
}

}  // namespace

TempDir::~TempDir() { remove_tree(long_path(path_)); }

std::string utf8(const fs::path &p) {
    std::u8string u = p.u8string();
    return std::string(u.begin(), u.end());
}

std::wstring long_path(const fs::path &p) {
    std::wstring w = fs::absolute(p).wstring();
    for (wchar_t &c : w)
        if (c == L'/') c = L'\\';
    if (w.rfind(L"\\\\?\\", 0) == 0) return w;
    if (w.rfind(L"\\\\", 0) == 0) return L"\\\\?\\UNC\\" + w.substr(2);
    return L"\\\\?\\" + w;
}

std::string read_file(const fs::path &p) {
    HANDLE h = CreateFileW(long_path(p).c_str(), GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                           nullptr, OPEN_EXISTING, 0, nullptr);
    if (h == INVALID_HANDLE_VALUE) throw std::runtime_error("cannot open " + utf8(p));
    std::string out;
    char buf[65536];
    DWORD got;
    while (ReadFile(h, buf, sizeof buf, &got, nullptr) && got > 0) out.append(buf, got);
    CloseHandle(h);
    return out;
}

void write_file(const fs::path &p, const std::string &content) {
    HANDLE h = CreateFileW(long_path(p).c_str(), GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (h == INVALID_HANDLE_VALUE) throw std::runtime_error("cannot create " + utf8(p));
    DWORD put = 0;
    BOOL ok = WriteFile(h, content.data(), static_cast<DWORD>(content.size()), &put, nullptr);
    CloseHandle(h);
    if (!ok || put != content.size()) throw std::runtime_error("cannot write " + utf8(p));
}

std::vector<std::string> list_names(const fs::path &dir) {
    std::vector<std::string> names;
    for (const auto &n : entries_of(long_path(dir))) names.push_back(utf8(fs::path(n)));
    std::sort(names.begin(), names.end());
    return names;
}

Event::Event(const std::string &name) {
    std::wstring w(name.begin(), name.end());
    h_ = CreateEventW(nullptr, TRUE, FALSE, w.c_str());
    if (!h_) throw std::runtime_error("CreateEvent " + name);
}

Event::~Event() { CloseHandle(h_); }
void Event::set() { SetEvent(h_); }
bool Event::wait(DWORD timeout_ms) { return WaitForSingleObject(h_, timeout_ms) == WAIT_OBJECT_0; }

std::string Event::unique_name(const std::string &what) {
    static std::atomic<int> counter{0};
    return "wlf-" + what + "-" + std::to_string(GetCurrentProcessId()) + "-" + std::to_string(counter++);
}

namespace {

std::wstring widen(const std::string &s) {
    int n = MultiByteToWideChar(CP_UTF8, 0, s.c_str(), -1, nullptr, 0);
    std::wstring w(n > 0 ? n - 1 : 0, L'\0');
    if (n > 1) MultiByteToWideChar(CP_UTF8, 0, s.c_str(), -1, w.data(), n);
    return w;
}

std::string narrow(const wchar_t *w) {
    int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, nullptr, 0, nullptr, nullptr);
    std::string s(n > 0 ? n - 1 : 0, '\0');
    if (n > 1) WideCharToMultiByte(CP_UTF8, 0, w, -1, s.data(), n, nullptr, nullptr);
    return s;
}

}  // namespace

Child::Child(const std::string &role, const std::vector<std::string> &args) {
    wchar_t self[MAX_PATH * 4];
    DWORD n = GetModuleFileNameW(nullptr, self, sizeof self / sizeof self[0]);
    if (n == 0) throw std::runtime_error("GetModuleFileName");
    std::wstring cmd = quote_arg(self) + L" --child " + quote_arg(widen(role));
    for (const auto &a : args) cmd += L" " + quote_arg(widen(a));
    STARTUPINFOW si{};
    si.cb = sizeof si;
    if (!CreateProcessW(self, cmd.data(), nullptr, nullptr, FALSE, 0, nullptr, nullptr, &si, &pi_))
        throw std::runtime_error("CreateProcess failed: " + std::to_string(GetLastError()));
}

Child::~Child() {
    if (!waited_ && pi_.hProcess) {
        TerminateProcess(pi_.hProcess, 99);
        WaitForSingleObject(pi_.hProcess, 10000);
    }
    if (pi_.hProcess) CloseHandle(pi_.hProcess);
    if (pi_.hThread) CloseHandle(pi_.hThread);
}

int Child::wait(DWORD timeout_ms) {
    if (WaitForSingleObject(pi_.hProcess, timeout_ms) != WAIT_OBJECT_0) return -1;
    waited_ = true;
    DWORD code = 0;
    GetExitCodeProcess(pi_.hProcess, &code);
    return static_cast<int>(code);
}

void Child::kill() {
    TerminateProcess(pi_.hProcess, 99);
    WaitForSingleObject(pi_.hProcess, 10000);
    waited_ = true;
}

std::map<std::string, Role> &roles() {
    static std::map<std::string, Role> r;
    return r;
}

namespace {

// The holder's side: lock args[0] with backend args[1], set event args[2],
// wait for event args[3], release, and write the release time (taken just
// before) into args[4] when given.
const RegisterRole hold("hold", [](const std::vector<std::string> &a) {
    wlf_lock_options opt;
    wlf_lock_options_init(&opt);
    opt.backend = a[1] == "dotlock" ? WLF_LOCK_DOTLOCK : WLF_LOCK_FLOCK;
    wlf_lock *lock = nullptr;
    if (wlf_lock_acquire(a[0].c_str(), &opt, &lock, nullptr) != 0) return 2;
    Event(a[2]).set();
    if (!Event(a[3]).wait(60000)) return 3;
    // Taken before the release: a waiter can wake before this process runs
    // again, and what is measured is an upper bound of the wake-up.
    double released = now_seconds();
    wlf_lock_release(lock, nullptr);
    if (a.size() > 4) write_file(fs::path(std::u8string(a[4].begin(), a[4].end())), std::to_string(released));
    return 0;
});

std::vector<std::string> holder_args(const fs::path &target, const std::string &backend, const std::string &ready,
                                     const std::string &go, const fs::path &stamp) {
    std::vector<std::string> args{utf8(target), backend, ready, go};
    if (!stamp.empty()) args.push_back(utf8(stamp));
    return args;
}

}  // namespace

Holder::Holder(const fs::path &target, const std::string &backend, const fs::path &stamp)
    : ready_(Event::unique_name("ready")),
      go_(Event::unique_name("go")),
      ready_event_(ready_),
      go_event_(go_),
      child_("hold", holder_args(target, backend, ready_, go_, stamp)) {
    locked_ = ready_event_.wait();
}

int Holder::release() {
    go_event_.set();
    return child_.wait();
}

double now_seconds() {
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return static_cast<double>(c.QuadPart) / static_cast<double>(f.QuadPart);
}

}  // namespace wlf_win

int main() {
    // The wide command line: arguments (paths) may be any Unicode.
    int argc = 0;
    wchar_t **wargv = CommandLineToArgvW(GetCommandLineW(), &argc);
    std::vector<std::string> args;
    for (int i = 0; i < argc; ++i) args.push_back(wlf_win::narrow(wargv[i]));
    LocalFree(wargv);
    if (argc >= 3 && args[1] == "--child") {
        auto it = wlf_win::roles().find(args[2]);
        if (it == wlf_win::roles().end()) return 98;
        try {
            return it->second(std::vector<std::string>(args.begin() + 3, args.end()));
        } catch (const std::exception &e) {
            fprintf(stderr, "child %s: %s\n", args[2].c_str(), e.what());
            return 97;
        }
    }
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    testing::InitGoogleTest(&argc, argv.data());
    return wlf_test::skip_aware_result(RUN_ALL_TESTS());
}
