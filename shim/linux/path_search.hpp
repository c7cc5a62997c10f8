// The one PATH search (execvp's), for the launcher (which COMMAND it runs and
// checks) and the preload object (whether the program an execvp is about to
// run can load it). C-ABI layer rules: no libstdc++.
#pragma once

#include <cstddef>

namespace wrap_lockfile::shim {

// Whether `path` is a regular file this process may execute: 0, or the
// errno execve would give (ENOENT, ENOTDIR, EISDIR, EACCES...).
int runnable(const char *path);

// The file execvp would run for `name` (which has no '/'), searched in
// $PATH (unset: "/bin:/usr/bin", glibc's default; an empty entry is the
// working directory), into out[size]: 0, or ENOENT when nothing is there,
// EACCES when only entries that cannot run are (execvp goes on past those).
int search_path(const char *name, char *out, size_t size);

}  // namespace wrap_lockfile::shim
