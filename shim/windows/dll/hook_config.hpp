// The hook DLL's configuration: the same WRAP_LOCKFILE_* variables and rules
// as the Linux shim (shim/common), read once from the environment the
// launcher (or the parent process) gave. Windows paths are matched in one
// spelling, "/c:/dir/file": slashes, the drive letter after a leading slash,
// ASCII lower case (the file system ignores case). README "Windows".
#pragma once

#include <wrap_lockfile/wrap_lockfile.h>

#include "rules.hpp"

#include <windows.h>

namespace wrap_lockfile::dll {

struct Config {
    rules::RuleSet rules;
    wlf_write_options options{};
    HANDLE log = INVALID_HANDLE_VALUE;  // where messages go (stderr by default)
    wchar_t dll_path[MAX_PATH] = {};    // this DLL, for the children
};

extern Config g_config;

// Reads the variables; a malformed one is reported (one line) and adds
// nothing. `self` is the DLL's module.
void load_config(HMODULE self);

// The matching spelling of a path (see above) into out[size]: 0, or errno.
int match_form(const wchar_t *path, char *out, size_t size);

// One line "wrap_lockfile: ..." on the log.
void message(const char *fmt, ...);

}  // namespace wrap_lockfile::dll
