#include "config.hpp"
#include "config_file.hpp"

#include "lock_choice.hpp"
#include "timeout.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace wrap_lockfile::config {

namespace {

// "WHAT 'TEXT' (EXPECTED)", or "WHAT 'TEXT' is too large (EXPECTED)"; the
// value cut at 40 bytes (a whole line must fit the preload object's buffer).
int refuse(int rc, char *why, size_t size, const char *what, const char *text, const char *expected) {
    snprintf(why, size, "%s '%.40s'%s%s (%s)", what, text, strlen(text) > 40 ? "..." : "",
             rc == ERANGE ? " is too large" : "", expected);
    return rc;
}

}  // namespace

int parse_timeout(const char *text, wlf_write_options *opt, char *why, size_t size) {
    double seconds;
    int rc = detail::parse_timeout(text, &seconds);
    if (rc == ERANGE) return refuse(ERANGE, why, size, "timeout", text, detail::kTimeoutGrammar);
    if (rc) return refuse(EINVAL, why, size, "invalid timeout", text, detail::kTimeoutGrammar);
    opt->lock.has_timeout = 1;
    opt->lock.timeout = seconds;
    return 0;
}

int parse_fsync(const char *text, wlf_write_options *opt, char *why, size_t size) {
    if (strcmp(text, "none") == 0)
        opt->durability = WLF_DURABILITY_NONE;
    else if (strcmp(text, "full") == 0)
        opt->durability = WLF_DURABILITY_FULL;
    else if (strcmp(text, "batch") == 0)
        opt->durability = WLF_DURABILITY_BATCH;
    else
        return refuse(EINVAL, why, size, "invalid value", text, "expected full, batch or none");
    return 0;
}

int parse_lock_backend(const char *text, wlf_write_options *opt, char *why, size_t size) {
    int backend;
    if (!detail::parse_lock_backend(text, &backend))
        return refuse(EINVAL, why, size, "invalid lock backend", text, detail::kLockBackendChoicesExpected);
    opt->lock.backend = backend;
    return 0;
}

int parse_keep_lock_files(const char *text, wlf_write_options *opt, char *why, size_t size) {
    int keep;
    if (!detail::parse_keep_lock_files(text, &keep)) return refuse(EINVAL, why, size, "invalid value", text, "expected 1 or 0");
    opt->lock.keep_lock_file = keep;
    return 0;
}

void load_rules(rules::RuleSet *set, const char *cwd, EnvReader env, BadVariable bad) {
    for (const GlobList &l : kGlobLists) {
        const char *v = env(l.var);
        if (!v) continue;
        const char *pattern = nullptr;
        size_t len = 0;
        if (rules::add_list(set, l.kind, v, cwd, &pattern, &len) != 0) {
            char detail[512];
            snprintf(detail, sizeof detail, "malformed pattern '%.*s'", static_cast<int>(len > 400 ? 400 : len),
                     pattern ? pattern : "");
            bad(l.var, detail);
        }
    }
    if (const char *path = env(kConfigVar)) {
        rules::ConfigError err;
        if (rules::add_config_file(set, path, cwd, &err) != 0) {
            char detail[WLF_PATH_MAX + 256];
            bad(kConfigVar, rules::format_config_error(path, &err, detail, sizeof detail));
        }
    }
}

}  // namespace wrap_lockfile::config
