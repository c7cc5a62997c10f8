// The shim's whole configuration as COMMAND will see it: the options merged
// with what the environment already holds, every value checked the way the
// preload object reads it (shim/common/config.hpp), relative paths made
// absolute against the launcher's working directory.
#pragma once

#include "options.hpp"

#include <optional>
#include <string>

namespace wrap_lockfile::atomically {

// The working directory; a failure when it cannot be told.
std::string current_dir();

struct Environment {
    std::optional<std::string> replace, lock_only, exclude, config, timeout, fsync, log, lock_backend, keep_lock_files;
};

Environment checked_environment(const Options &o, const std::string &cwd);

// Sets COMMAND's environment: every variable the shim reads.
void export_environment(const Environment &e);

}  // namespace wrap_lockfile::atomically
