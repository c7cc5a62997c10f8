// The shim's configuration schema, in one place for the preload object and
// the `atomically` launcher (and a future Windows hook DLL): the environment
// variables, the launcher option each comes from, and how each value is
// parsed into the core's write options. The preload object ignores a bad
// value with one line naming the variable; the launcher refuses it (exit
// 125) before COMMAND runs. Both word the problem with the same text (`why`).
// Built under the C-ABI layer's constraints: no libstdc++.
#pragma once

#include "rules.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <cstddef>

namespace wrap_lockfile::config {

// Glob lists (docs/design.md, "The shim"), each separated by ';' or newlines.
inline constexpr char kRulesVar[] = "WRAP_LOCKFILE_RULES";
inline constexpr char kLockOnlyVar[] = "WRAP_LOCKFILE_LOCK_ONLY";
inline constexpr char kExcludeVar[] = "WRAP_LOCKFILE_EXCLUDE";
// A rules file (config_file.hpp).
inline constexpr char kConfigVar[] = "WRAP_LOCKFILE_CONFIG";
inline constexpr char kTimeoutVar[] = "WRAP_LOCKFILE_TIMEOUT";
inline constexpr char kFsyncVar[] = "WRAP_LOCKFILE_FSYNC";
inline constexpr char kLockBackendVar[] = "WRAP_LOCKFILE_LOCK_BACKEND";
inline constexpr char kKeepLockFilesVar[] = "WRAP_LOCKFILE_KEEP_LOCK_FILES";
// "stderr" or a file the shim appends its decisions to.
inline constexpr char kLogVar[] = "WRAP_LOCKFILE_LOG";
inline constexpr char kLogToStderr[] = "stderr";
// The launcher's: the preload object to use instead of the one it finds.
inline constexpr char kPreloadVar[] = "WRAP_LOCKFILE_PRELOAD";

struct GlobList {
    const char *var;
    const char *option;  // the launcher's, repeatable
    rules::Kind kind;
};
inline constexpr GlobList kGlobLists[] = {
    {kRulesVar, "--rule", rules::kReplace},
    {kLockOnlyVar, "--lock-only", rules::kLockOnly},
    {kExcludeVar, "--exclude", rules::kExclude},
};

// A variable's value as a shim reads its environment, or nullptr when it is
// unset or empty (valid until the next call).
using EnvReader = const char *(*)(const char *var);
// Says what is wrong with one variable (`detail`: "malformed pattern 'x['",
// or the rules file's error) and that it is ignored.
using BadVariable = void (*)(const char *var, const char *detail);

// The glob lists and the rules file (kConfigVar) into *set, relative globs
// against cwd. A variable or file that cannot be used adds no rule at all
// (never some of them), and is named through `bad`.
void load_rules(rules::RuleSet *set, const char *cwd, EnvReader env, BadVariable bad);

// Each parser stores the value into *opt and returns 0, or leaves *opt alone,
// returns EINVAL (ERANGE: a timeout above the bound) and words the problem
// into why[size] ("invalid timeout 'x' (...)").
// Seconds (core/src/timeout.hpp's grammar); unset means wait.
int parse_timeout(const char *text, wlf_write_options *opt, char *why, size_t size);
// "full" (the default), "batch" or "none" (README "The shim", Durability).
int parse_fsync(const char *text, wlf_write_options *opt, char *why, size_t size);
// "auto" (the shim's default), "flock", "dotlock" or "none".
int parse_lock_backend(const char *text, wlf_write_options *opt, char *why, size_t size);
// "1" or "0".
int parse_keep_lock_files(const char *text, wlf_write_options *opt, char *why, size_t size);

}  // namespace wrap_lockfile::config
