// The launcher's command line: [OPTION]... [--] COMMAND [ARG]... (atomically.1).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace wrap_lockfile::atomically {

struct Options {
    // List options keep their order; each value may itself hold a ';' list.
    std::vector<std::string> replace, lock_only, exclude;
    std::optional<std::string> config, timeout, fsync, log, lock_backend;
    bool keep_lock_files = false;
    bool verbose = false;
    bool allow_unprotected = false;
    int command_index = 0;  // index into argv of COMMAND
};

// Returns nullopt when --help or --version asked to stop after printing.
std::optional<Options> parse_options(int argc, char **argv);

}  // namespace wrap_lockfile::atomically
