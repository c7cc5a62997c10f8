// The image atomically.exe is about to start, looked at before it starts
// it: a 32-bit program cannot take the 64-bit hook DLL, and is refused by
// its headers (README "Windows"), so that it is never started at all. The
// DLL's IsWow64Process check (inject.cpp) stays the backstop for what this
// cannot see (a grandchild, an image replaced in between).
#pragma once

#include <string>

namespace wrap_lockfile::win_shim {

// The file CreateProcessW(nullptr, L"NAME ...") starts for NAME: the
// search CreateProcess makes itself (ntdll's RtlGetExePath gives its
// directories, SearchPathW looks there and appends ".exe" to a name without
// an extension). Empty when nothing is found: CreateProcess then decides.
std::wstring find_image(const std::wstring &name);

// Whether `path` is a PE image for 32-bit x86 (IMAGE_FILE_MACHINE_I386 or a
// PE32 optional header). A file that cannot be read or is not a PE image
// (a script, a text) is not: CreateProcess decides about it.
bool is_32bit_image(const std::wstring &path);

}  // namespace wrap_lockfile::win_shim
