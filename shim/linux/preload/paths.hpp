// A path as a libc call names it (relative to a directory descriptor or the
// working directory), in the two absolute forms the shim works with.
#pragma once

#include <wrap_lockfile/wrap_lockfile.h>

#include <cstddef>

namespace wrap_lockfile::shim {

// Both forms: `raw` for every operation, the lexically normalized `norm`
// only for matching rules and pending targets.
struct Paths {
    char raw[WLF_PATH_MAX];
    char norm[WLF_PATH_MAX];
};

// The path as the kernel will walk it: absolute, with ".." left alone (after
// a symlinked directory, ".." is not what the text suggests). 0 or errno.
int make_raw(int dirfd, const char *path, char *out, size_t size);
// Both forms of `path` relative to `dirfd` (AT_FDCWD: the working directory).
int make_paths(int dirfd, const char *path, Paths *p);

// Whether `path` is spelled as a link into /proc that names an open file
// (/proc/self/fd/N, /proc/thread-self/fd/N, /proc/PID/fd/N,
// /proc/PID/task/TID/fd/N, /dev/fd/N, /dev/stdin, /dev/stdout,
// /dev/stderr): the kernel follows it to the file open there, not to a
// name. The text only; what it leads to is the caller's to look at.
bool names_open_file(const char *path);

}  // namespace wrap_lockfile::shim
