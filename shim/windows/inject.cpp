// The injection (inject.hpp).
#include "inject.hpp"

#include <cwchar>

namespace wrap_lockfile::win_shim {

namespace {

// How long a child's loader may take to load the DLL and install its hooks.
constexpr DWORD kLoadTimeoutMs = 60000;

// GetLastError, never 0 (a failure must not read as success).
DWORD last_error() {
    DWORD e = GetLastError();
    return e ? e : ERROR_GEN_FAILURE;
}

}  // namespace

DWORD inject_dll(HANDLE process, const wchar_t *dll_path, const char **why) {
    BOOL wow64 = FALSE;
    if (IsWow64Process(process, &wow64) && wow64) {
        *why = "it is a 32-bit program (the hook DLL is 64-bit; README \"Windows\")";
        return ERROR_NOT_SUPPORTED;
    }
    // kernel32 is mapped at the same address in every process of a session.
    auto load = reinterpret_cast<LPTHREAD_START_ROUTINE>(
        reinterpret_cast<void *>(GetProcAddress(GetModuleHandleW(L"kernel32.dll"), "LoadLibraryW")));
    if (!load) {
        *why = "LoadLibraryW not found";
        return last_error();
    }
    size_t bytes = (wcslen(dll_path) + 1) * sizeof(wchar_t);
    void *remote = VirtualAllocEx(process, nullptr, bytes, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    if (!remote) {
        *why = "no memory for the DLL's path in it";
        return last_error();
    }
    DWORD rc = 0;
    SIZE_T put = 0;
    if (!WriteProcessMemory(process, remote, dll_path, bytes, &put) || put != bytes) {
        *why = "cannot write the DLL's path into it";
        rc = last_error();
    } else if (HANDLE t = CreateRemoteThread(process, nullptr, 0, load, remote, 0, nullptr)) {
        DWORD loaded = 0;
        if (WaitForSingleObject(t, kLoadTimeoutMs) != WAIT_OBJECT_0) {
            *why = "loading the hook DLL in it did not finish";
            rc = WAIT_TIMEOUT;
        } else if (!GetExitCodeThread(t, &loaded) || loaded == 0) {
            // The low half of the module's address; 0 is LoadLibraryW's
            // failure, which includes the DLL refusing to run (DllMain).
            *why = "the hook DLL did not load in it (or could not install its hooks)";
            rc = ERROR_DLL_INIT_FAILED;
        }
        CloseHandle(t);
    } else {
        *why = "cannot start a thread in it";
        rc = last_error();
    }
    // After a timeout the thread may still read the path: leave it.
    if (rc != WAIT_TIMEOUT) (void)VirtualFreeEx(process, remote, 0, MEM_RELEASE);
    return rc;
}

}  // namespace wrap_lockfile::win_shim
