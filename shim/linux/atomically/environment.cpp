#include "environment.hpp"

#include "failure.hpp"

#include "config.hpp"
#include "config_file.hpp"
#include "log_file.hpp"
#include "rules.hpp"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace wrap_lockfile::atomically {

std::string current_dir() {
    char *cwd = getcwd(nullptr, 0);
    if (!cwd)
        fail("cannot determine the current directory, needed to make relative paths absolute: " +
             error_text(errno));
    std::string s = cwd;
    free(cwd);
    return s;
}

namespace {

// Prefixing, not lexical normalization: "link/../f" must keep naming what
// the kernel would resolve it to.
std::string absolute_path(const std::string &path, const std::string &cwd) {
    if (path.starts_with('/')) return path;
    return cwd == "/" ? "/" + path : cwd + "/" + path;
}

class ScratchRules {
public:
    ScratchRules() = default;
    ScratchRules(const ScratchRules &) = delete;
    ScratchRules &operator=(const ScratchRules &) = delete;
    ~ScratchRules() { rules::clear(&set_); }
    rules::RuleSet *get() { return &set_; }

private:
    rules::RuleSet set_;
};

std::string glob_reason(int rc) {
    if (rc == EINVAL) return "a '[' without its ']' in the same path component";
    if (rc == ENAMETOOLONG) return "too long";
    return error_text(rc);
}

// Adds a glob list to `set`, failing with a message that names `what`.
void add_globs(ScratchRules &set, rules::Kind kind, const char *list, const std::string &cwd, const std::string &what) {
    const char *bad = nullptr;
    size_t bad_len = 0;
    if (int rc = rules::add_list(set.get(), kind, list, cwd.c_str(), &bad, &bad_len))
        fail(what + ": invalid glob " + quoted(std::string_view(bad, bad_len)) + ": " + glob_reason(rc));
}

// Validates a ';'-separated glob list named `what` and returns it as the shim
// must see it: relative globs containing '/' made absolute against `cwd`, so
// their meaning survives COMMAND changing directory.
std::string checked_globs(rules::Kind kind, const std::string &list, const std::string &cwd, const std::string &what) {
    ScratchRules set;
    add_globs(set, kind, list.c_str(), cwd, what);
    if (set.get()->count == 0) fail(what + ": no glob in " + quoted(list));
    // add_list stores each pattern in the normalized form detail::normalize_path
    // gives it, which is exactly what the shim will match against.
    std::string out;
    for (size_t i = 0; i < set.get()->count; ++i) {
        if (i) out += ';';
        out += set.get()->patterns[i].text;
    }
    return out;
}

// The file's problems are worded by shim/common (config_file.hpp), as the preload object words them.
void check_config(const std::string &path, const std::string &cwd, const std::string &what) {
    ScratchRules set;
    rules::ConfigError err;
    if (rules::add_config_file(set.get(), path.c_str(), cwd.c_str(), &err) == 0) return;
    char text[PATH_MAX + 512];
    fail(what + " " + rules::format_config_error(path.c_str(), &err, text, sizeof text));
}

using Parser = int (*)(const char *, wlf_write_options *, char *, size_t);

// A value checked by the parser the preload object uses, refused in its words.
void check_value(Parser parse, const std::string &value, const std::string &what) {
    wlf_write_options scratch;
    wlf_write_options_init(&scratch);
    char why[512];
    if (parse(value.c_str(), &scratch, why, sizeof why) != 0) fail(what + ": " + why);
}

// The shim appends to the log; opening it the same way now turns a typo in
// the path into an error instead of a silently missing log.
void check_log(const std::string &path, const std::string &what) {
    if (path.empty()) fail(what + ": empty path");
    if (path == config::kLogToStderr) return;
    int fd = shim::open_log(path.c_str());
    if (fd < 0) fail(what + " " + path + ": " + error_text(errno));
    close(fd);
}

// The option's value (checked) if given, else the inherited variable's
// (checked, passed on unchanged).
std::optional<std::string> checked_setting(const std::optional<std::string> &option, const char *option_name,
                                           const char *var, Parser parse) {
    if (option) {
        check_value(parse, *option, option_name);
        return option;
    }
    if (const char *inherited = getenv(var)) check_value(parse, inherited, var);
    return std::nullopt;
}

// Appends the option values of one glob list to the inherited variable,
// validating both.
std::optional<std::string> merged_globs(const config::GlobList &list, const std::vector<std::string> &values,
                                        const std::string &cwd) {
    std::optional<std::string> out;
    if (const char *inherited = getenv(list.var)) {
        // Passed on unchanged: the shim interprets it as it would have
        // without the launcher; only its validity is the launcher's concern.
        ScratchRules set;
        add_globs(set, list.kind, inherited, cwd, list.var);
        out = inherited;
    }
    for (const std::string &v : values) {
        std::string globs = checked_globs(list.kind, v, cwd, list.option);
        out = out && !out->empty() ? *out + ";" + globs : globs;
    }
    return out;
}

}  // namespace

Environment checked_environment(const Options &o, const std::string &cwd) {
    Environment e;
    e.replace = merged_globs(config::kGlobLists[0], o.replace, cwd);
    e.lock_only = merged_globs(config::kGlobLists[1], o.lock_only, cwd);
    e.exclude = merged_globs(config::kGlobLists[2], o.exclude, cwd);

    if (o.config) {
        e.config = absolute_path(*o.config, cwd);
        check_config(*e.config, cwd, "--config");
    } else if (const char *inherited = getenv(config::kConfigVar)) {
        check_config(inherited, cwd, config::kConfigVar);
    }
    e.timeout = checked_setting(o.timeout, "--timeout", config::kTimeoutVar, config::parse_timeout);
    e.fsync = checked_setting(o.fsync, "--fsync", config::kFsyncVar, config::parse_fsync);
    e.lock_backend = checked_setting(o.lock_backend, "--lock-backend", config::kLockBackendVar, config::parse_lock_backend);
    if (o.keep_lock_files) {
        e.keep_lock_files = "1";
    } else if (const char *inherited = getenv(config::kKeepLockFilesVar)) {
        check_value(config::parse_keep_lock_files, inherited, config::kKeepLockFilesVar);
    }
    if (o.log) {
        e.log = *o.log == config::kLogToStderr ? *o.log : absolute_path(*o.log, cwd);
        check_log(*e.log, "--log");
    } else if (o.verbose) {
        e.log = config::kLogToStderr;
    } else if (const char *inherited = getenv(config::kLogVar)) {
        check_log(inherited, config::kLogVar);
    }
    return e;
}

namespace {

void set_env(const char *name, const std::optional<std::string> &value) {
    if (value && setenv(name, value->c_str(), 1) != 0) fail(std::string("cannot set ") + name + ": " + error_text(errno));
}

}  // namespace

void export_environment(const Environment &e) {
    set_env(config::kRulesVar, e.replace);
    set_env(config::kLockOnlyVar, e.lock_only);
    set_env(config::kExcludeVar, e.exclude);
    set_env(config::kConfigVar, e.config);
    set_env(config::kTimeoutVar, e.timeout);
    set_env(config::kFsyncVar, e.fsync);
    set_env(config::kLockBackendVar, e.lock_backend);
    set_env(config::kKeepLockFilesVar, e.keep_lock_files);
    set_env(config::kLogVar, e.log);
}

}  // namespace wrap_lockfile::atomically
