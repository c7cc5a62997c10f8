// Lexical path normalization, the one way the core and the shim spell an
// absolute path for comparison (rules, pending targets, the lock-first
// probe's exclusions). Text only: no file system access. C-ABI layer rules:
// no libstdc++.
#pragma once

#include <cstddef>

namespace wrap_lockfile::detail {

// Lexically normalizes `path` (made absolute against `base` when relative):
// collapses "//", removes ".", resolves ".." textually. ENAMETOOLONG if it
// does not fit in out[size].
int normalize_path(const char *base, const char *path, char *out, size_t size);

}  // namespace wrap_lockfile::detail
