// fopen(3)-style mode strings as open(2) flags: one parser for wlf_open (and
// through it the C++ API and the Python binding) and the shim's stdio
// (fopen, freopen); and wlf_open_flags' WLF_OPEN_* bits as the same flags.
#pragma once

#include <fcntl.h>

#include <cstddef>
#include <cstdint>

namespace wrap_lockfile::detail {

enum class ModeSyntax {
    // The library's own modes: w, a, r+, w+, a+, x, x+, each optionally with
    // 'b' or 't' anywhere. A read-only "r" is no replacement: EINVAL.
    api,
    // fopen(3)'s, as glibc reads them: 'r', 'w' or 'a' first, then anywhere
    // '+' (read and write), 'x' (O_EXCL) and 'e' (O_CLOEXEC); the rest
    // ('b', 'c', 'm', ",ccs=...") changes no open flag.
    stdio,
};

// The open(2) flags for mode[0, len) in `syntax`: 0 with *flags, or EINVAL.
int open_mode_flags(const char *mode, size_t len, ModeSyntax syntax, int *flags);

#ifdef O_NOFOLLOW
inline constexpr int kOpenNoFollow = O_NOFOLLOW;
#else
// The Windows CRT has no O_NOFOLLOW: a bit no CRT flag uses, which the
// Windows layer reads (windows/replace.cpp) and never hands to the CRT.
inline constexpr int kOpenNoFollow = 0x01000000;
#endif

// wlf_open_flags' WLF_OPEN_* bits as open(2) flags (WLF_OPEN_NOFOLLOW as
// kOpenNoFollow): 0 with *flags, or EINVAL (no WLF_OPEN_WRITE, an unknown bit).
int open_bits_flags(uint32_t bits, int *flags);

}  // namespace wrap_lockfile::detail
