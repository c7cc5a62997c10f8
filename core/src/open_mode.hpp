// fopen(3)-style mode strings as open(2) flags: one parser for the C++ API
// (AtomicFile), the shim's stdio (fopen, freopen) and the Python binding.
#pragma once

#include <cstddef>

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

}  // namespace wrap_lockfile::detail
