#include "preload_config.hpp"

#include "fd_table.hpp"
#include "messages.hpp"

#include "config_file.hpp"
#include "internal.hpp"
#include "lock_choice.hpp"
#include "sysio.hpp"
#include "timeout.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::shim {

constinit Config g_config{};

namespace {

void bad_variable(const char *var, const char *detail) {
    message("wrap_lockfile: %s: %s; ignoring it\n", var, detail);
}

// A variable or file that cannot be used adds no rule at all (never some of
// them), and says so in one line.
void load_rules(const char *cwd) {
    struct {
        const char *var;
        rules::Kind kind;
    } lists[] = {{"WRAP_LOCKFILE_RULES", rules::kReplace},
                 {"WRAP_LOCKFILE_LOCK_ONLY", rules::kLockOnly},
                 {"WRAP_LOCKFILE_EXCLUDE", rules::kExclude}};
    for (auto &l : lists) {
        const char *v = getenv(l.var);
        if (!v || !*v) continue;
        const char *bad = nullptr;
        size_t bad_len = 0;
        if (rules::add_list(&g_config.rules, l.kind, v, cwd, &bad, &bad_len) != 0) {
            char detail[512];
            snprintf(detail, sizeof detail, "malformed pattern '%.*s'", static_cast<int>(bad_len > 400 ? 400 : bad_len),
                     bad ? bad : "");
            bad_variable(l.var, detail);
        }
    }
    if (const char *path = getenv("WRAP_LOCKFILE_CONFIG"); path && *path) {
        rules::ConfigError err;
        if (rules::add_config_file(&g_config.rules, path, cwd, &err) != 0) {
            char detail[WLF_PATH_MAX + 256];
            bad_variable("WRAP_LOCKFILE_CONFIG", rules::format_config_error(path, &err, detail, sizeof detail));
        }
    }
}

void load_options() {
    wlf_write_options_init(&g_config.options);
    if (const char *t = getenv("WRAP_LOCKFILE_TIMEOUT"); t && *t) {
        double v;
        if (int rc = detail::parse_timeout(t, &v); rc == 0) {
            g_config.options.lock.has_timeout = 1;
            g_config.options.lock.timeout = v;
        } else {
            // Ignored means no timeout: waiting for the lock loses nothing.
            char text[256];
            snprintf(text, sizeof text, rc == ERANGE ? "timeout '%.40s' is too large (%s)" : "invalid timeout '%.40s' (%s)",
                     t, detail::kTimeoutGrammar);
            bad_variable("WRAP_LOCKFILE_TIMEOUT", text);
        }
    }
    // Unset: flock, and lock files are kept on shared file systems (core).
    if (const char *b = getenv("WRAP_LOCKFILE_LOCK_BACKEND"); b && *b) {
        if (!detail::parse_lock_backend(b, &g_config.options.lock.backend))
            bad_variable("WRAP_LOCKFILE_LOCK_BACKEND", "expected flock, dotlock or none");
    }
    if (const char *k = getenv("WRAP_LOCKFILE_KEEP_LOCK_FILES"); k && *k) {
        if (!detail::parse_keep_lock_files(k, &g_config.options.lock.keep_lock_file))
            bad_variable("WRAP_LOCKFILE_KEEP_LOCK_FILES", "expected 1 or 0");
    }
    if (const char *s = getenv("WRAP_LOCKFILE_FSYNC"); s && *s) {
        if (strcmp(s, "none") == 0)
            g_config.options.durability = WLF_DURABILITY_NONE;
        else if (strcmp(s, "full") != 0)
            bad_variable("WRAP_LOCKFILE_FSYNC", "expected 'full' or 'none'");
    }
    // Our descriptors live high up, so that the program still gets the
    // lowest free numbers and its dup2() to small fixed numbers is unaffected.
    struct rlimit rl;
    int floor = 768;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 1024)
        floor = static_cast<int>(rl.rlim_cur * 3 / 4);
    g_config.options.fd_floor = floor;
    if (const char *l = getenv("WRAP_LOCKFILE_LOG"); l && *l) {
        if (strcmp(l, "stderr") == 0) {
            g_config.log_fd = 2;
        } else {
            int fd = sys::open(l, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
            if (fd < 0)
                bad_variable("WRAP_LOCKFILE_LOG", strerror(errno));
            else
                g_config.log_fd = detail::raise_fd(fd, floor);
            set_slot(g_config.log_fd, kInternal);
        }
    }
}

// True when rules from the environment may be relative paths, which are
// made absolute against the working directory.
bool rules_need_cwd() {
    const char *vars[] = {"WRAP_LOCKFILE_RULES", "WRAP_LOCKFILE_LOCK_ONLY", "WRAP_LOCKFILE_EXCLUDE"};
    for (const char *var : vars) {
        const char *v = getenv(var);
        if (v && strchr(v, '/')) return true;
    }
    const char *config = getenv("WRAP_LOCKFILE_CONFIG");
    return config && *config;
}

}  // namespace

void load_config() {
    char cwd[WLF_PATH_MAX] = "/";
    if (rules_need_cwd() && !getcwd(cwd, sizeof cwd)) strcpy(cwd, "/");
    load_options();
    load_rules(cwd);
    for (size_t i = 0; i < g_config.rules.count; ++i)
        if (g_config.rules.patterns[i].has_slash) g_config.slash_rules = true;
}

}  // namespace wrap_lockfile::shim
