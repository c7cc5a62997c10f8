// UTF-8 paths of the C API as the UTF-16 \\?\ paths the Win32 calls get,
// and back; Win32 errors as errno values. README "Windows".
#include "win.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <cwchar>

namespace wrap_lockfile::win {

WPath::~WPath() { free(p_); }

int WPath::assign(const wchar_t *w, size_t n) {
    if (n > kMaxWidePath) return ENAMETOOLONG;
    if (!p_) {
        // One allocation of the largest size a path can have: appends never
        // reallocate.
        p_ = static_cast<wchar_t *>(malloc((kMaxWidePath + 1) * sizeof(wchar_t)));
        if (!p_) return ENOMEM;
    }
    memmove(p_, w, n * sizeof(wchar_t));
    p_[n] = L'\0';
    len_ = n;
    return 0;
}

int WPath::append(const wchar_t *w) {
    size_t n = wcslen(w);
    if (!p_) return assign(w, n);
    if (len_ + n > kMaxWidePath) return ENAMETOOLONG;
    memcpy(p_ + len_, w, (n + 1) * sizeof(wchar_t));
    len_ += n;
    return 0;
}

void WPath::truncate(size_t n) {
    if (p_ && n < len_) {
        p_[n] = L'\0';
        len_ = n;
    }
}

int errno_from(DWORD error) {
    switch (error) {
    case ERROR_SUCCESS: return 0;
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
    case ERROR_BAD_NETPATH:
    case ERROR_BAD_NET_NAME: return ENOENT;
    case ERROR_ACCESS_DENIED:
    case ERROR_PRIVILEGE_NOT_HELD:
    case ERROR_INVALID_OWNER: return EACCES;
    case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION:
    case ERROR_BUSY: return EBUSY;
    case ERROR_FILE_EXISTS:
    case ERROR_ALREADY_EXISTS: return EEXIST;
    case ERROR_INVALID_PARAMETER:
    case ERROR_INVALID_NAME: return EINVAL;
    case ERROR_NOT_SUPPORTED:
    case ERROR_INVALID_FUNCTION:
    case ERROR_CALL_NOT_IMPLEMENTED: return ENOTSUP;
    case ERROR_DISK_FULL:
    case ERROR_HANDLE_DISK_FULL: return ENOSPC;
    case ERROR_FILENAME_EXCED_RANGE:
    case ERROR_BUFFER_OVERFLOW: return ENAMETOOLONG;
    case ERROR_WRITE_PROTECT: return EROFS;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY: return ENOMEM;
    case ERROR_DIRECTORY: return ENOTDIR;
    case ERROR_DIR_NOT_EMPTY: return ENOTEMPTY;
    case ERROR_CANT_RESOLVE_FILENAME: return ELOOP;
    case ERROR_NOT_SAME_DEVICE: return EXDEV;
    case ERROR_NO_UNICODE_TRANSLATION: return EILSEQ;
    case ERROR_TOO_MANY_OPEN_FILES: return EMFILE;
    default: return EIO;
    }
}

int full_path(const char *path, WPath *out) {
    if (!path || !*path) return ENOENT;
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, nullptr, 0);
    if (n <= 0) return GetLastError() == ERROR_NO_UNICODE_TRANSLATION ? EILSEQ : errno_from(GetLastError());
    if (static_cast<size_t>(n) > kMaxWidePath) return ENAMETOOLONG;
    WPath given;
    if (int rc = given.assign(L"", 0)) return rc;
    if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, given.data(), n) <= 0)
        return errno_from(GetLastError());
    if (int rc = given.assign(given.get(), static_cast<size_t>(n - 1))) return rc;  // its length, now known
    const wchar_t *g = given.get();
    if (wcsncmp(g, L"\\\\?\\", 4) == 0) return out->assign(g, given.size());  // already there

    // GetFullPathNameW is string work only (no file system access): it
    // resolves "." and "..", the drive's current directory and '/'.
    if (int rc = out->assign(L"\\\\?\\", 4)) return rc;
    DWORD room = static_cast<DWORD>(kMaxWidePath - 8);
    DWORD got = GetFullPathNameW(g, room, out->data() + 4, nullptr);
    if (got == 0) return errno_from(GetLastError());
    if (got >= room) return ENAMETOOLONG;
    wchar_t *full = out->data() + 4;
    if (full[0] == L'\\' && full[1] == L'\\') {
        // A device (\\.\x) or an already prefixed path stays as it is.
        if (full[2] == L'.' || full[2] == L'?') return out->assign(full, got);
        // \\server\share\x -> \\?\UNC\server\share\x (room: got < kMaxWidePath - 8)
        memmove(out->data() + 8, full + 2, (got - 2 + 1) * sizeof(wchar_t));
        memcpy(out->data(), L"\\\\?\\UNC\\", 8 * sizeof(wchar_t));
        return out->assign(out->get(), 8 + got - 2);
    }
    return out->assign(out->get(), 4 + got);
}

int to_utf8(const wchar_t *path, char *dst, size_t size) {
    const wchar_t *p = path;
    bool unc = false;
    if (wcsncmp(p, L"\\\\?\\UNC\\", 8) == 0) {
        p += 8;
        unc = true;
    } else if (wcsncmp(p, L"\\\\?\\", 4) == 0) {
        p += 4;
    }
    size_t off = 0;
    if (unc) {
        if (size < 3) return ENAMETOOLONG;
        dst[0] = dst[1] = '\\';
        off = 2;
    }
    if (size - off > 0x7fffffff) size = off + 0x7fffffff;
    int n = WideCharToMultiByte(CP_UTF8, 0, p, -1, dst + off, static_cast<int>(size - off), nullptr, nullptr);
    if (n <= 0) {
        if (size) dst[0] = '\0';
        return GetLastError() == ERROR_INSUFFICIENT_BUFFER ? ENAMETOOLONG : errno_from(GetLastError());
    }
    return 0;
}

int final_path(HANDLE h, WPath *out) {
    if (int rc = out->assign(L"", 0)) return rc;
    DWORD n = GetFinalPathNameByHandleW(h, out->data(), static_cast<DWORD>(kMaxWidePath),
                                        FILE_NAME_NORMALIZED | VOLUME_NAME_DOS);
    if (n == 0) return errno_from(GetLastError());
    if (n >= kMaxWidePath) return ENAMETOOLONG;
    return out->assign(out->get(), n);
}

HANDLE open_for_query(const wchar_t *path, bool follow) {
    // No access to the data: opening this way changes nothing and is not
    // refused by share modes; FILE_FLAG_BACKUP_SEMANTICS lets directories open.
    DWORD flags = FILE_FLAG_BACKUP_SEMANTICS | (follow ? 0 : FILE_FLAG_OPEN_REPARSE_POINT);
    return CreateFileW(path, FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                       OPEN_EXISTING, flags, nullptr);
}

size_t base_offset(const WPath &path) {
    const wchar_t *p = path.get();
    const wchar_t *slash = wcsrchr(p, L'\\');
    return slash ? static_cast<size_t>(slash - p) + 1 : 0;
}

}  // namespace wrap_lockfile::win
