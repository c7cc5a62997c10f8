// The image check (image_check.hpp).
#include "image_check.hpp"

#include <windows.h>

#include <cstdint>
#include <cstring>

namespace wrap_lockfile::win_shim {

namespace {

// ntdll's, exported on Windows and Wine alike but declared by no SDK header.
using GetExePath = LONG(WINAPI *)(const wchar_t *name, wchar_t **path);
using ReleasePath = void(WINAPI *)(wchar_t *path);

std::wstring search(const wchar_t *dirs, const std::wstring &name) {
    std::wstring found(32768, L'\0');  // the longest path Windows has
    DWORD n = SearchPathW(dirs, name.c_str(), L".exe", static_cast<DWORD>(found.size()), found.data(), nullptr);
    if (n == 0 || n >= found.size()) return {};
    found.resize(n);
    return found;
}

class File {
public:
    explicit File(const std::wstring &path)
        : h_(CreateFileW(path.c_str(), GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                         OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr)) {}
    ~File() {
        if (h_ != INVALID_HANDLE_VALUE) CloseHandle(h_);
    }
    File(const File &) = delete;
    File &operator=(const File &) = delete;
    // Exactly `n` bytes at `offset`, or false.
    bool read_at(uint32_t offset, void *buf, DWORD n) const {
        if (h_ == INVALID_HANDLE_VALUE) return false;
        OVERLAPPED at{};
        at.Offset = offset;
        DWORD got = 0;
        return ReadFile(h_, buf, n, &got, &at) && got == n;
    }

private:
    HANDLE h_;
};

}  // namespace

std::wstring find_image(const std::wstring &name) {
    HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
    auto get = ntdll ? reinterpret_cast<GetExePath>(reinterpret_cast<void *>(GetProcAddress(ntdll, "RtlGetExePath")))
                     : nullptr;
    auto release = ntdll ? reinterpret_cast<ReleasePath>(reinterpret_cast<void *>(GetProcAddress(ntdll, "RtlReleasePath")))
                         : nullptr;
    wchar_t *dirs = nullptr;
    if (!get || !release || get(name.c_str(), &dirs) < 0) return search(nullptr, name);  // the system's default order
    std::wstring found = search(dirs, name);
    release(dirs);
    return found;
}

bool is_32bit_image(const std::wstring &path) {
    File f(path);
    IMAGE_DOS_HEADER dos;
    if (!f.read_at(0, &dos, sizeof dos) || dos.e_magic != IMAGE_DOS_SIGNATURE || dos.e_lfanew <= 0) return false;
    // The signature, the file header and the optional header's magic.
    unsigned char nt[sizeof(DWORD) + sizeof(IMAGE_FILE_HEADER) + sizeof(WORD)];
    if (!f.read_at(static_cast<uint32_t>(dos.e_lfanew), nt, sizeof nt)) return false;
    DWORD signature;
    IMAGE_FILE_HEADER header;
    WORD magic;
    std::memcpy(&signature, nt, sizeof signature);
    std::memcpy(&header, nt + sizeof signature, sizeof header);
    std::memcpy(&magic, nt + sizeof signature + sizeof header, sizeof magic);
    if (signature != IMAGE_NT_SIGNATURE) return false;
    bool pe32 = header.SizeOfOptionalHeader >= sizeof magic && magic == IMAGE_NT_OPTIONAL_HDR32_MAGIC;
    return header.Machine == IMAGE_FILE_MACHINE_I386 || pe32;
}

}  // namespace wrap_lockfile::win_shim
