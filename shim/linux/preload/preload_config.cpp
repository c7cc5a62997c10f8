#include "preload_config.hpp"

#include "fd_table.hpp"
#include "messages.hpp"

#include "config.hpp"
#include "log_file.hpp"
#include "internal.hpp"
#include "lock_internal.hpp"

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

const char *env_value(const char *var) {
    const char *v = getenv(var);
    return v && *v ? v : nullptr;
}

// One setting: a bad value is ignored (the default stays) and named.
void load_setting(const char *var, int (*parse)(const char *, wlf_write_options *, char *, size_t)) {
    const char *v = getenv(var);
    if (!v || !*v) return;
    char why[256];
    if (parse(v, &g_config.options, why, sizeof why) != 0) bad_variable(var, why);
}

void load_options() {
    wlf_write_options_init(&g_config.options);
    // An ignored timeout means none: waiting for the lock loses nothing.
    load_setting(config::kTimeoutVar, config::parse_timeout);
    // Unset: auto, the mount's choice when a lock is taken (core,
    // mount_info.hpp); flock keeps its lock files on shared file systems.
    g_config.options.lock.backend = WLF_LOCK_AUTO;
    load_setting(config::kLockBackendVar, config::parse_lock_backend);
    load_setting(config::kKeepLockFilesVar, config::parse_keep_lock_files);
    load_setting(config::kFsyncVar, config::parse_fsync);
    // Our descriptors live high up, so that the program still gets the
    // lowest free numbers and its dup2() to small fixed numbers is unaffected.
    struct rlimit rl;
    int floor = detail::kDescriptorFloor;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 1024)
        floor = static_cast<int>(rl.rlim_cur * 3 / 4);
    g_config.fd_floor = floor;
    // The locks are ours, not the program's: a lock its ancestor holds is
    // not waited for (open.cpp, lock_refuse_ancestor_holders).
    detail::lock_refuse_ancestor_holders();
    if (const char *l = getenv(config::kLogVar); l && *l) {
        if (strcmp(l, config::kLogToStderr) == 0) {
            g_config.log_fd = 2;
        } else {
            int fd = shim::open_log(l);
            if (fd < 0)
                bad_variable(config::kLogVar, strerror(errno));
            else
                g_config.log_fd = detail::raise_fd(fd, floor);
            set_slot(g_config.log_fd, kInternal);
        }
    }
}

// True when rules from the environment may be relative paths, which are
// made absolute against the working directory.
bool rules_need_cwd() {
    for (const config::GlobList &l : config::kGlobLists) {
        const char *v = getenv(l.var);
        if (v && strchr(v, '/')) return true;
    }
    const char *file = getenv(config::kConfigVar);
    return file && *file;
}

}  // namespace

void load_config() {
    char cwd[WLF_PATH_MAX] = "/";
    if (rules_need_cwd() && !getcwd(cwd, sizeof cwd)) strcpy(cwd, "/");
    load_options();
    config::load_rules(&g_config.rules, cwd, env_value, bad_variable);
    for (size_t i = 0; i < g_config.rules.count; ++i)
        if (g_config.rules.patterns[i].has_slash) g_config.slash_rules = true;
}

}  // namespace wrap_lockfile::shim
