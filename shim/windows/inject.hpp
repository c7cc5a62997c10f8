// Loading the hook DLL into another (suspended) process: its path written
// into the process, a remote thread running LoadLibraryW on it. Used by
// atomically.exe for its command and by the DLL for every child
// (CreateProcessInternalW). README "Windows".
#pragma once

#include <windows.h>

namespace wrap_lockfile::win_shim {

// 0, or the Win32 error with *why (static) saying what failed. A 32-bit
// process is refused (ERROR_NOT_SUPPORTED): the DLL is 64-bit.
DWORD inject_dll(HANDLE process, const wchar_t *dll_path, const char **why);

}  // namespace wrap_lockfile::win_shim
