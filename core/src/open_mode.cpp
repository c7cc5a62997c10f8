// fopen(3)-style mode strings as open(2) flags (open_mode.hpp).
#include "open_mode.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <fcntl.h>

#ifndef O_CLOEXEC  // the Windows CRT has none: 'e' changes nothing there
#define O_CLOEXEC 0
#endif

#include <cerrno>
#include <cstring>

#if defined(_WIN32) && !defined(O_CLOEXEC)
// The CRT's "not inherited by child processes" is glibc's 'e'.
#define O_CLOEXEC O_NOINHERIT
#endif

namespace wrap_lockfile::detail {

namespace {

int api_flags(const char *mode, size_t len, int *flags) {
    // The mode without its 'b' and 't' (which change nothing here).
    char base[3];
    size_t n = 0;
    for (size_t i = 0; i < len; ++i) {
        if (mode[i] == 'b' || mode[i] == 't') continue;
        if (n == 2) return EINVAL;
        base[n++] = mode[i];
    }
    base[n] = '\0';
    static const struct {
        const char *mode;
        int flags;
    } kModes[] = {
        {"w", O_WRONLY | O_CREAT | O_TRUNC}, {"w+", O_RDWR | O_CREAT | O_TRUNC},  {"a", O_WRONLY | O_CREAT | O_APPEND},
        {"a+", O_RDWR | O_CREAT | O_APPEND}, {"r+", O_RDWR},                      {"x", O_WRONLY | O_CREAT | O_EXCL},
        {"x+", O_RDWR | O_CREAT | O_EXCL},
    };
    for (const auto &m : kModes) {
        if (strcmp(base, m.mode) == 0) {
            *flags = m.flags;
            return 0;
        }
    }
    return EINVAL;
}

int stdio_flags(const char *mode, size_t len, int *flags) {
    if (len == 0) return EINVAL;
    bool plus = memchr(mode, '+', len) != nullptr;
    int f;
    switch (mode[0]) {
    case 'w': f = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC; break;
    case 'a': f = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND; break;
    case 'r': f = plus ? O_RDWR : O_RDONLY; break;
    default: return EINVAL;
    }
    if (memchr(mode, 'x', len)) f |= O_EXCL;
    if (memchr(mode, 'e', len)) f |= O_CLOEXEC;
    *flags = f;
    return 0;
}

}  // namespace

int open_mode_flags(const char *mode, size_t len, ModeSyntax syntax, int *flags) {
    if (!mode) return EINVAL;
    return syntax == ModeSyntax::api ? api_flags(mode, len, flags) : stdio_flags(mode, len, flags);
}

int open_bits_flags(uint32_t bits, int *flags) {
    static const struct {
        uint32_t bit;
        int flag;
    } kBits[] = {{WLF_OPEN_CREATE, O_CREAT},  {WLF_OPEN_EXCL, O_EXCL},           {WLF_OPEN_TRUNCATE, O_TRUNC},
                 {WLF_OPEN_APPEND, O_APPEND}, {WLF_OPEN_NOFOLLOW, kOpenNoFollow}};
    if (!(bits & WLF_OPEN_WRITE)) return EINVAL;
    uint32_t known = WLF_OPEN_WRITE | WLF_OPEN_READ;
    int f = (bits & WLF_OPEN_READ) ? O_RDWR : O_WRONLY;
    for (const auto &b : kBits) {
        known |= b.bit;
        if (bits & b.bit) f |= b.flag;
    }
    if (bits & ~known) return EINVAL;
    *flags = f;
    return 0;
}

}  // namespace wrap_lockfile::detail
