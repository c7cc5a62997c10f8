// An unmodified Windows program for the shim tests (shim_win_test.cpp): it
// writes files the ways real programs do, knowing nothing of wrap_lockfile.
//
//   wlf_client write METHOD PATH CONTENT [READY GO]
//       writes CONTENT in two halves through METHOD; between them it sets
//       the named event READY and waits for GO (a reader looks meanwhile)
//   wlf_client increment PATH N     N read-modify-write increments of a number
//   wlf_client fill PATH            writes until the disk is full, then closes
//   wlf_client exit CODE            exits with CODE
//   wlf_client spawn ARGS...        runs "wlf_client ARGS..." as a child (CreateProcessW), its exit code
//   wlf_client spawnA|wspawn|wspawnl|wsystem|suspended ARGS...
//                                   the same through CreateProcessA, _wspawnv, _wspawnl, _wsystem, or a
//                                   CreateProcessW child its creator starts suspended and resumes
//   wlf_client latedll DLL PATH CONTENT
//                                   a DLL loaded now (LoadLibraryW) writes PATH
//   wlf_client dup PATH CONTENT [READY GO]
//                                   writes through a DuplicateHandle copy after closing the original
//   wlf_client stat PATH            path queries agree with the file being written (exit 0)
//   wlf_client fileinfo PATH CONTENT REPORT
//                                   writes CONTENT to PATH (CreateFileW, OPEN_ALWAYS) and, before the
//                                   close, what GetFileInformationByHandle says of its handle into
//                                   REPORT: "ATTRIBUTES SIZE LINKS INDEX" (hex, decimal, decimal, hex)
//
// METHOD: CreateFileW CreateFileA CreateFile2 GetProcAddress fopen _wopen
// _wfopen ofstream append (fopen "a") copy_file (from PATH.src, overwriting;
// exit 4 when it says "File exists").
#include <windows.h>

#include <fcntl.h>
#include <io.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <process.h>
#include <string>
#include <vector>

namespace {

std::wstring wide(const char *s) {
    int n = MultiByteToWideChar(CP_UTF8, 0, s, -1, nullptr, 0);
    std::wstring w(static_cast<size_t>(n), L'\0');
    MultiByteToWideChar(CP_UTF8, 0, s, -1, w.data(), n);
    w.resize(static_cast<size_t>(n - 1));
    return w;
}

int die(const char *what) {
    fprintf(stderr, "wlf_client: %s failed (error %lu, errno %d)\n", what, GetLastError(), errno);
    return 3;
}

// Between the two halves: the reader's turn.
void pause_between(int argc, char **argv, int at) {
    if (argc <= at + 1) return;
    HANDLE ready = OpenEventA(EVENT_MODIFY_STATE, FALSE, argv[at]);
    HANDLE go = OpenEventA(SYNCHRONIZE, FALSE, argv[at + 1]);
    if (ready) SetEvent(ready);
    if (go) WaitForSingleObject(go, 30000);
}

int write_handle(HANDLE h, const std::string &a, const std::string &b, int argc, char **argv) {
    if (h == INVALID_HANDLE_VALUE) return die("open");
    DWORD put;
    if (!WriteFile(h, a.data(), static_cast<DWORD>(a.size()), &put, nullptr)) return die("WriteFile");
    pause_between(argc, argv, 5);
    if (!WriteFile(h, b.data(), static_cast<DWORD>(b.size()), &put, nullptr)) return die("WriteFile");
    if (!CloseHandle(h)) return die("CloseHandle");
    return 0;
}

int write_crt_fd(int fd, const std::string &a, const std::string &b, int argc, char **argv) {
    if (fd < 0) return die("open");
    if (_write(fd, a.data(), static_cast<unsigned>(a.size())) != static_cast<int>(a.size())) return die("_write");
    pause_between(argc, argv, 5);
    if (_write(fd, b.data(), static_cast<unsigned>(b.size())) != static_cast<int>(b.size())) return die("_write");
    if (_close(fd) != 0) return die("_close");
    return 0;
}

int write_stdio(FILE *f, const std::string &a, const std::string &b, int argc, char **argv) {
    if (!f) return die("fopen");
    fputs(a.c_str(), f);
    if (fflush(f) != 0) return die("fflush");
    pause_between(argc, argv, 5);
    fputs(b.c_str(), f);
    if (fclose(f) != 0) return die("fclose");
    return 0;
}

int write_method(int argc, char **argv) {
    if (argc < 5) return 2;
    std::string method = argv[2];
    std::wstring path = wide(argv[3]);
    std::string content = argv[4];
    std::string a = content.substr(0, content.size() / 2), b = content.substr(content.size() / 2);
    if (method == "CreateFileW")
        // Readers may look (as most programs let them): the test's reader
        // must be able to see a half-written file when nothing protects it.
        return write_handle(CreateFileW(path.c_str(), GENERIC_WRITE, FILE_SHARE_READ, nullptr, CREATE_ALWAYS,
                                        FILE_ATTRIBUTE_NORMAL, nullptr),
                            a, b, argc, argv);
    if (method == "CreateFileA")
        return write_handle(CreateFileA(argv[3], GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr), a,
                            b, argc, argv);
    if (method == "CreateFile2")
        return write_handle(CreateFile2(path.c_str(), GENERIC_WRITE, 0, CREATE_ALWAYS, nullptr), a, b, argc, argv);
    if (method == "GetProcAddress") {
        using Fn = HANDLE(WINAPI *)(LPCWSTR, DWORD, DWORD, LPSECURITY_ATTRIBUTES, DWORD, DWORD, HANDLE);
        auto fn = reinterpret_cast<Fn>(reinterpret_cast<void *>(GetProcAddress(GetModuleHandleW(L"kernel32.dll"), "CreateFileW")));
        return write_handle(fn(path.c_str(), GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS, 0, nullptr), a, b, argc, argv);
    }
    if (method == "fopen") return write_stdio(fopen(argv[3], "wb"), a, b, argc, argv);
    if (method == "_wfopen") return write_stdio(_wfopen(path.c_str(), L"wb"), a, b, argc, argv);
    if (method == "append") return write_stdio(fopen(argv[3], "ab"), a, b, argc, argv);
    if (method == "_wopen")
        return write_crt_fd(_wopen(path.c_str(), _O_WRONLY | _O_CREAT | _O_TRUNC | _O_BINARY, 0666), a, b, argc, argv);
    if (method == "ofstream") {
        std::ofstream out(std::filesystem::path(path), std::ios::binary | std::ios::trunc);
        if (!out) return die("ofstream");
        out << a << std::flush;
        pause_between(argc, argv, 5);
        out << b;
        out.close();
        return out.fail() ? die("ofstream close") : 0;
    }
    if (method == "copy_file") {
        std::error_code ec;
        std::filesystem::copy_file(std::filesystem::path(path + L".src"), std::filesystem::path(path),
                                   std::filesystem::copy_options::overwrite_existing, ec);
        if (ec) {
            fprintf(stderr, "wlf_client: copy_file: %s\n", ec.message().c_str());
            return ec == std::errc::file_exists ? 4 : 3;
        }
        return 0;
    }
    fprintf(stderr, "wlf_client: unknown method %s\n", method.c_str());
    return 2;
}

int increment(const char *path_utf8, int n) {
    std::wstring path = wide(path_utf8);
    for (int i = 0; i < n; ++i) {
        HANDLE h = CreateFileW(path.c_str(), GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                               nullptr, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
        if (h == INVALID_HANDLE_VALUE) return die("open");
        char buf[32] = {};
        DWORD got = 0;
        if (!ReadFile(h, buf, sizeof buf - 1, &got, nullptr)) return die("ReadFile");
        long v = atol(buf);
        // Give the others a chance to interleave: without a lock they lose
        // updates. A millisecond, not Sleep(0): each client's loop then
        // lasts longer than Wine takes to start the next one, so they overlap.
        Sleep(1);
        int len = snprintf(buf, sizeof buf, "%ld", v + 1);
        LARGE_INTEGER zero{};
        DWORD put;
        if (!SetFilePointerEx(h, zero, nullptr, FILE_BEGIN) || !WriteFile(h, buf, static_cast<DWORD>(len), &put, nullptr) ||
            !SetEndOfFile(h))
            return die("write");
        if (!CloseHandle(h)) return die("CloseHandle");
    }
    return 0;
}

int fill(const char *path_utf8) {
    HANDLE h = CreateFileW(wide(path_utf8).c_str(), GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS, 0, nullptr);
    if (h == INVALID_HANDLE_VALUE) return die("open");
    static char block[1 << 16];
    memset(block, 'x', sizeof block);
    DWORD put;
    bool full = false;
    for (int i = 0; i < 4096 && !full; ++i)  // at most 256 MiB
        full = !WriteFile(h, block, sizeof block, &put, nullptr) || put < sizeof block;
    if (!full) {
        fprintf(stderr, "wlf_client: the disk never filled\n");
        CloseHandle(h);
        return 4;
    }
    // The write error is seen; the close must fail too (the old content stays).
    if (CloseHandle(h)) return 5;
    return 0;
}

int spawn(int argc, char **argv) {
    std::string how = argv[1];
    wchar_t self[MAX_PATH];
    GetModuleFileNameW(nullptr, self, MAX_PATH);
    std::wstring cmd = L"\"" + std::wstring(self) + L"\"";
    for (int i = 2; i < argc; ++i) cmd += L" \"" + wide(argv[i]) + L"\"";
    if (how == "wsystem") {
        // cmd.exe /c: the outer quotes are removed by cmd itself.
        return _wsystem((L"\"" + cmd + L"\"").c_str());
    }
    if (how == "wspawn") {
        std::vector<std::wstring> args{self};
        for (int i = 2; i < argc; ++i) args.push_back(L"\"" + wide(argv[i]) + L"\"");
        std::vector<const wchar_t *> ptrs;
        for (auto &a : args) ptrs.push_back(a.c_str());
        ptrs.push_back(nullptr);
        return static_cast<int>(_wspawnv(_P_WAIT, self, ptrs.data()));
    }
    if (how == "wspawnl") {
        // The list form: a fixed argument list, ended by the first null.
        constexpr int kMax = 8;
        if (argc - 2 > kMax) return die("wspawnl: too many arguments");
        std::vector<std::wstring> args;
        for (int i = 2; i < argc; ++i) args.push_back(L"\"" + wide(argv[i]) + L"\"");
        const wchar_t *a[kMax] = {};
        for (size_t i = 0; i < args.size(); ++i) a[i] = args[i].c_str();
        return static_cast<int>(
            _wspawnl(_P_WAIT, self, self, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], nullptr));
    }
    PROCESS_INFORMATION pi{};
    if (how == "spawnA") {
        std::string narrow(cmd.begin(), cmd.end());  // the test's paths are ASCII
        STARTUPINFOA si{};
        si.cb = sizeof si;
        if (!CreateProcessA(nullptr, narrow.data(), nullptr, nullptr, FALSE, 0, nullptr, nullptr, &si, &pi))
            return die("CreateProcessA");
    } else {
        STARTUPINFOW si{};
        si.cb = sizeof si;
        DWORD flags = how == "suspended" ? CREATE_SUSPENDED : 0;
        if (!CreateProcessW(nullptr, cmd.data(), nullptr, nullptr, FALSE, flags, nullptr, nullptr, &si, &pi))
            return die("CreateProcessW");
        if (flags && ResumeThread(pi.hThread) != 1) return die("ResumeThread (the child must still be suspended)");
    }
    WaitForSingleObject(pi.hProcess, INFINITE);
    DWORD code = 1;
    GetExitCodeProcess(pi.hProcess, &code);
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
    return static_cast<int>(code);
}

int late_dll(const char *dll, const char *path, const char *content) {
    HMODULE m = LoadLibraryW(wide(dll).c_str());
    if (!m) return die("LoadLibraryW");
    using Fn = int (*)(const wchar_t *, const char *);
    auto fn = reinterpret_cast<Fn>(reinterpret_cast<void *>(GetProcAddress(m, "hook_target_write")));
    if (!fn) return die("GetProcAddress");
    return fn(wide(path).c_str(), content);
}

int dup_write(int argc, char **argv) {
    const char *path_utf8 = argv[2], *content = argv[3];
    HANDLE h = CreateFileW(wide(path_utf8).c_str(), GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS, 0, nullptr);
    if (h == INVALID_HANDLE_VALUE) return die("open");
    HANDLE copy;
    if (!DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), &copy, 0, FALSE, DUPLICATE_SAME_ACCESS))
        return die("DuplicateHandle");
    if (!CloseHandle(h)) return die("CloseHandle original");
    // Still pending: the copy is open. A reader now sees the old content.
    pause_between(argc, argv, 4);
    DWORD put;
    if (!WriteFile(copy, content, static_cast<DWORD>(strlen(content)), &put, nullptr)) return die("WriteFile");
    if (!CloseHandle(copy)) return die("CloseHandle copy");
    return 0;
}

// Writes 5 bytes and asks about the path before closing: the answers must
// be the pending file's (its size), as a program checking what it wrote expects.
int stat_pending(const char *path_utf8) {
    std::wstring path = wide(path_utf8);
    HANDLE h = CreateFileW(path.c_str(), GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS, 0, nullptr);
    if (h == INVALID_HANDLE_VALUE) return die("open");
    DWORD put;
    if (!WriteFile(h, "12345", 5, &put, nullptr)) return die("WriteFile");
    WIN32_FILE_ATTRIBUTE_DATA data{};
    if (!GetFileAttributesExW(path.c_str(), GetFileExInfoStandard, &data)) return die("GetFileAttributesExW");
    DWORD attributes = GetFileAttributesW(path.c_str());
    if (attributes == INVALID_FILE_ATTRIBUTES) return die("GetFileAttributesW");
    if (!CloseHandle(h)) return die("CloseHandle");
    if (data.nFileSizeLow != 5) return 10;
    if (attributes & FILE_ATTRIBUTE_HIDDEN) return 11;  // the temp's own attribute must not show
    if (attributes == 0) return 12;  // every file has some (NORMAL at least)
    return 0;
}

int file_info(const char *path_utf8, const char *content, const char *report_utf8) {
    HANDLE h = CreateFileW(wide(path_utf8).c_str(), GENERIC_WRITE, FILE_SHARE_READ, nullptr, OPEN_ALWAYS,
                           FILE_ATTRIBUTE_NORMAL, nullptr);
    if (h == INVALID_HANDLE_VALUE) return die("open");
    DWORD put;
    if (!WriteFile(h, content, static_cast<DWORD>(strlen(content)), &put, nullptr) || !SetEndOfFile(h))
        return die("WriteFile");
    BY_HANDLE_FILE_INFORMATION info{};
    if (!GetFileInformationByHandle(h, &info)) return die("GetFileInformationByHandle");
    FILE *out = _wfopen(wide(report_utf8).c_str(), L"w");
    if (!out) return die("fopen report");
    fprintf(out, "%lx %lu %lu %llx\n", info.dwFileAttributes, info.nFileSizeLow, info.nNumberOfLinks,
            (static_cast<unsigned long long>(info.nFileIndexHigh) << 32) | info.nFileIndexLow);
    if (fclose(out) != 0) return die("fclose report");
    if (!CloseHandle(h)) return die("CloseHandle");
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    std::string cmd = argv[1];
    if (cmd == "write") return write_method(argc, argv);
    if (cmd == "increment" && argc >= 4) return increment(argv[2], atoi(argv[3]));
    if (cmd == "fill" && argc >= 3) return fill(argv[2]);
    if (cmd == "exit" && argc >= 3) return atoi(argv[2]);
    if (cmd == "spawn" || cmd == "spawnA" || cmd == "wspawn" || cmd == "wspawnl" || cmd == "wsystem" || cmd == "suspended")
        return spawn(argc, argv);
    if (cmd == "latedll" && argc >= 5) return late_dll(argv[2], argv[3], argv[4]);
    if (cmd == "dup" && argc >= 4) return dup_write(argc, argv);
    if (cmd == "stat" && argc >= 3) return stat_pending(argv[2]);
    if (cmd == "fileinfo" && argc >= 5) return file_info(argv[2], argv[3], argv[4]);
    return 2;
}
