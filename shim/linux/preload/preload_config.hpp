// The preload object's configuration, read once from the environment
// (docs/design.md, "The shim"): the rules, the write options, the log.
#pragma once

#include "rules.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

namespace wrap_lockfile::shim {

struct Config {
    rules::RuleSet rules{};
    wlf_write_options options{};
    // The library's own descriptors (temp, directory, lock, log) go at or
    // above this number (detail::file_open), out of the program's way.
    int fd_floor = 0;
    int log_fd = -1;
    bool slash_rules = false;  // some rule needs the absolute path, not just the name
};

// constinit: a dynamic initializer could run after our constructor (or after
// an early interposed call) and wipe the configuration.
extern constinit Config g_config;

// Reads every WRAP_LOCKFILE_* setting; a malformed one is ignored with one
// line on stderr naming it.
void load_config();

}  // namespace wrap_lockfile::shim
