// What the Windows layer of the core shares between its files: an owned
// HANDLE, UTF-16 paths made from the C API's UTF-8 ones, Win32 errors as
// errno values. Same rules as the POSIX layer (internal.hpp): no
// exceptions, no new/delete, no std::string. README "Windows".
#pragma once

#include <windows.h>

#include <cstddef>
#include <cstdint>

namespace wrap_lockfile::win {

// An owned HANDLE, closed at destruction.
class Handle {
public:
    Handle() = default;
    explicit Handle(HANDLE h) : h_(h) {}
    Handle(const Handle &) = delete;
    Handle &operator=(const Handle &) = delete;
    Handle(Handle &&o) noexcept : h_(o.release()) {}
    Handle &operator=(Handle &&o) noexcept {
        reset(o.release());
        return *this;
    }
    ~Handle() { reset(); }
    explicit operator bool() const { return h_ != INVALID_HANDLE_VALUE && h_ != nullptr; }
    HANDLE get() const { return h_; }
    HANDLE release() {
        HANDLE h = h_;
        h_ = INVALID_HANDLE_VALUE;
        return h;
    }
    void reset(HANDLE h = INVALID_HANDLE_VALUE) {
        if (*this) CloseHandle(h_);
        h_ = h;
    }

private:
    HANDLE h_ = INVALID_HANDLE_VALUE;
};

// A NUL-terminated UTF-16 path in a malloc'd buffer (paths may be up to
// 32767 characters with the \\?\ prefix: too big for the stack).
class WPath {
public:
    WPath() = default;
    WPath(const WPath &) = delete;
    WPath &operator=(const WPath &) = delete;
    ~WPath();
    const wchar_t *get() const { return p_ ? p_ : L""; }
    wchar_t *data() { return p_; }
    size_t size() const { return len_; }
    // Replaces the content with w[0..n) (ENOMEM, ENAMETOOLONG).
    int assign(const wchar_t *w, size_t n);
    int append(const wchar_t *w);
    // Shortens the path to its first n characters.
    void truncate(size_t n);

private:
    wchar_t *p_ = nullptr;
    size_t len_ = 0;
};

constexpr size_t kMaxWidePath = 32767;

// The errno value closest to a Win32 error (EIO for the unknown ones).
int errno_from(DWORD error);

// UTF-8 `path` (either slash) made absolute against the current directory
// and prefixed with \\?\ (\\?\UNC\ for \\server\share), so that neither
// MAX_PATH nor the Win32 name rewriting (trailing dots and blanks) applies.
// EILSEQ for invalid UTF-8.
int full_path(const char *path, WPath *out);

// The UTF-8 form of a wide path for people and for the C API: without the
// \\?\ prefix (\\?\UNC\x becomes \\x). ENAMETOOLONG if it does not fit.
int to_utf8(const wchar_t *path, char *dst, size_t size);

// The path a handle names after every symbolic link and junction on the
// way (GetFinalPathNameByHandleW, \\?\ form).
int final_path(HANDLE h, WPath *out);

// Opens an existing file or directory (following links) just to look at it.
HANDLE open_for_query(const wchar_t *path, bool follow);

// Offset of the first character of the last component of a \\?\ path (the
// character after the last backslash).
size_t base_offset(const WPath &path);

}  // namespace wrap_lockfile::win
