// The inline-hook engine live under Wine (shim/windows/hook): a function of
// a test DLL, kernelbase's CreateFileW seen through every way a program
// reaches it (kernel32's export, a GetProcAddress'd pointer, CreateFileA,
// the CRT), a refusal, and a thread stopped inside the patched bytes moved
// to the trampoline.
#include "inline_hook.hpp"
#include "win_support.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fcntl.h>
#include <io.h>

using namespace wrap_lockfile::hook;
using namespace wlf_win;

namespace {

std::wstring dir_of_exe() {
    wchar_t buf[MAX_PATH];
    DWORD n = GetModuleFileNameW(nullptr, buf, MAX_PATH);
    std::wstring p(buf, n);
    return p.substr(0, p.find_last_of(L"\\/") + 1);
}

using AddFn = int (*)(int, int);
AddFn g_add_original = nullptr;
int add_detour(int a, int b) { return g_add_original(a, b) + 1000; }

TEST(HookLive, FunctionOfATestDll) {
    HMODULE dll = LoadLibraryW((dir_of_exe() + L"hook_target_dll.dll").c_str());
    ASSERT_NE(dll, nullptr) << GetLastError();
    auto add = reinterpret_cast<AddFn>(GetProcAddress(dll, "hook_target_add"));
    ASSERT_NE(add, nullptr);
    EXPECT_EQ(add(2, 3), 5);
    HookSpec spec{reinterpret_cast<void *>(add), reinterpret_cast<void *>(add_detour),
                  reinterpret_cast<void **>(&g_add_original), "hook_target_add"};
    const char *why = nullptr;
    size_t failed = 0;
    ASSERT_EQ(install_hooks(&spec, 1, &why, &failed), 0u) << why;
    EXPECT_EQ(add(2, 3), 1005);
    EXPECT_EQ(g_add_original(2, 3), 5);

    // Too short to patch: refused with a reason, bytes unchanged.
    void *tiny = reinterpret_cast<void *>(GetProcAddress(dll, "hook_target_tiny"));
    ASSERT_NE(tiny, nullptr);
    uint8_t before[6];
    memcpy(before, tiny, 6);
    void *unused = nullptr;
    HookSpec bad{tiny, reinterpret_cast<void *>(add_detour), &unused, "hook_target_tiny"};
    EXPECT_NE(install_hooks(&bad, 1, &why, &failed), 0u);
    EXPECT_NE(strstr(why, "ends within"), nullptr) << why;
    EXPECT_EQ(memcmp(before, tiny, 6), 0);
    EXPECT_EQ(unused, nullptr);
}

using CreateFileWFn = HANDLE(WINAPI *)(LPCWSTR, DWORD, DWORD, LPSECURITY_ATTRIBUTES, DWORD, DWORD, HANDLE);
CreateFileWFn g_cfw_original = nullptr;
volatile LONG g_cfw_seen = 0;
HANDLE WINAPI cfw_detour(LPCWSTR name, DWORD access, DWORD share, LPSECURITY_ATTRIBUTES sa, DWORD disp, DWORD flags,
                         HANDLE tmpl) {
    if (name && wcsstr(name, L"hooked-marker")) InterlockedIncrement(&g_cfw_seen);
    return g_cfw_original(name, access, share, sa, disp, flags, tmpl);
}

TEST(HookLive, KernelbaseCreateFileWSeesEveryPath) {
    HMODULE kb = GetModuleHandleW(L"kernelbase.dll");
    ASSERT_NE(kb, nullptr);
    void *target = reinterpret_cast<void *>(GetProcAddress(kb, "CreateFileW"));
    ASSERT_NE(target, nullptr);
    HookSpec spec{target, reinterpret_cast<void *>(cfw_detour), reinterpret_cast<void **>(&g_cfw_original),
                  "CreateFileW"};
    const char *why = nullptr;
    size_t failed = 0;
    ASSERT_EQ(install_hooks(&spec, 1, &why, &failed), 0u) << why;

    TempDir dir;
    std::wstring base = (dir.path() / "hooked-marker").wstring();
    auto check_open = [&](HANDLE h) {
        ASSERT_NE(h, INVALID_HANDLE_VALUE) << GetLastError();
        CloseHandle(h);
    };
    LONG seen = g_cfw_seen;
    check_open(CreateFileW((base + L"1").c_str(), GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS, 0, nullptr));
    EXPECT_EQ(g_cfw_seen, seen + 1) << "kernel32!CreateFileW";
    auto by_pointer = reinterpret_cast<CreateFileWFn>(GetProcAddress(GetModuleHandleW(L"kernel32.dll"), "CreateFileW"));
    check_open(by_pointer((base + L"2").c_str(), GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS, 0, nullptr));
    EXPECT_EQ(g_cfw_seen, seen + 2) << "GetProcAddress'd pointer";
    std::string narrow = (dir.path() / "hooked-marker3").string();
    check_open(CreateFileA(narrow.c_str(), GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS, 0, nullptr));
    EXPECT_GE(g_cfw_seen, seen + 3) << "CreateFileA";
    LONG before_crt = g_cfw_seen;
    FILE *f = _wfopen((base + L"4").c_str(), L"w");
    ASSERT_NE(f, nullptr);
    fclose(f);
    EXPECT_GT(g_cfw_seen, before_crt) << "_wfopen";
    before_crt = g_cfw_seen;
    int fd = _wopen((base + L"5").c_str(), _O_WRONLY | _O_CREAT, 0666);
    ASSERT_GE(fd, 0);
    _close(fd);
    EXPECT_GT(g_cfw_seen, before_crt) << "_wopen";
}

// A function with a known prologue: 8 one-byte nops, then "mov eax, 42; ret".
extern "C" int spin_target();
asm(".text\n.globl spin_target\nspin_target:\n"
    ".byte 0x90,0x90,0x90,0x90,0x90,0x90,0x90,0x90\n"
    "movl $42, %eax\nret\nint3\nint3\n");
int spin_detour() { return 7; }
void *g_spin_original = nullptr;

extern "C" [[noreturn]] void thread_exit_with(int code) { ExitThread(static_cast<DWORD>(code)); }
// Where a thread set to run inside spin_target returns to: ExitThread(eax).
extern "C" void spin_return();
asm(".text\n.globl spin_return\nspin_return:\nmovl %eax, %ecx\nsubq $32, %rsp\ncall thread_exit_with\n");

DWORD WINAPI idle_thread(void *) { return 0; }

TEST(HookLive, ThreadInsidePatchedBytesIsMovedToTrampoline) {
    HANDLE t = CreateThread(nullptr, 0, idle_thread, nullptr, CREATE_SUSPENDED, nullptr);
    ASSERT_NE(t, nullptr);
    CONTEXT ctx{};
    ctx.ContextFlags = CONTEXT_FULL;
    ASSERT_TRUE(GetThreadContext(t, &ctx));
    uint64_t fn = reinterpret_cast<uint64_t>(&spin_target);
    uint64_t rsp = ((ctx.Rsp - 256) & ~uint64_t(15)) - 8;  // as at a function's entry
    *reinterpret_cast<uint64_t *>(rsp) = reinterpret_cast<uint64_t>(&spin_return);
    ctx.Rsp = rsp;
    ctx.Rip = fn + 3;  // stopped on the fourth nop: inside the 5 patched bytes
    ASSERT_TRUE(SetThreadContext(t, &ctx));

    HookSpec spec{reinterpret_cast<void *>(&spin_target), reinterpret_cast<void *>(&spin_detour), &g_spin_original,
                  "spin_target"};
    const char *why = nullptr;
    size_t failed = 0;
    ASSERT_EQ(install_hooks(&spec, 1, &why, &failed), 0u) << why;
    CONTEXT after{};
    after.ContextFlags = CONTEXT_CONTROL;
    ASSERT_TRUE(GetThreadContext(t, &after));
    EXPECT_EQ(after.Rip, reinterpret_cast<uint64_t>(g_spin_original) + 3);
    EXPECT_EQ(spin_target(), 7);  // the hook
    EXPECT_EQ(reinterpret_cast<int (*)()>(g_spin_original)(), 42);

    ASSERT_NE(ResumeThread(t), static_cast<DWORD>(-1));
    ASSERT_EQ(WaitForSingleObject(t, 20000), WAIT_OBJECT_0);
    DWORD code = 0;
    ASSERT_TRUE(GetExitCodeThread(t, &code));
    EXPECT_EQ(code, 42u);  // it ran the rest of the original, not garbage
    CloseHandle(t);
}

}  // namespace
