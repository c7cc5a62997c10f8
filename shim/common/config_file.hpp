// The rules file (WRAP_LOCKFILE_CONFIG, `atomically --config`): one rule per
// line, "replace GLOB", "lock-only GLOB", "exclude GLOB" or a bare GLOB
// (= replace); '#' starts a comment line; blank lines are ignored. Read the
// same way by the launcher and the preload object, and refused the same way:
// one error names the file, and the line for what is in it. C-ABI layer
// rules: no libstdc++.
#pragma once

#include "rules.hpp"

namespace wrap_lockfile::rules {

struct ConfigError {
    int code;          // errno; EINVAL for content the grammar refuses
    int line;          // 1-based line of a content error, else 0
    const char *what;  // static text ("is a FIFO", "has a NUL byte"), or null: strerror(code)
    char text[128];    // the offending line, trimmed (may be cut short), for content errors
};

// Adds the file's rules to `set`, all or none. Never blocks on a FIFO or a
// device and never opens one: anything but a regular file is refused
// (O_NONBLOCK, then fstat before the first read). Larger than 1 MiB: EFBIG.
// Returns 0 or err->code.
int add_config_file(RuleSet *set, const char *path, const char *base_dir, ConfigError *err);

// "PATH: what" or "PATH:LINE: what 'TEXT'" into buf[size]; returns buf.
const char *format_config_error(const char *path, const ConfigError *err, char *buf, size_t size);

}  // namespace wrap_lockfile::rules
