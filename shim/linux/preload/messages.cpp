#include "messages.hpp"

#include "preload_config.hpp"

#include "handoff.hpp"
#include "sysio.hpp"

#include <sys/resource.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace wrap_lockfile::shim {

namespace {

// A line into fd, unless it would take the file past the process's
// file-size limit (RLIMIT_FSIZE): the kernel would kill the program with
// SIGXFSZ for a log line of the shim's, which its plain run never wrote.
void write_line(int fd, const char *line, size_t len) {
    struct rlimit rl;
    struct stat st;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && sys::fstat(fd, &st) == 0 &&
        S_ISREG(st.st_mode) && static_cast<rlim_t>(st.st_size) + len > rl.rlim_cur)
        return;
    sys::write_all(fd, line, len);
}

}  // namespace

void message(const char *fmt, const char *a, const char *b) {
    char line[WLF_PATH_MAX + 512];
    int n = snprintf(line, sizeof line, fmt, a, b);
    if (n < 0) return;
    size_t len = static_cast<size_t>(n) < sizeof line ? static_cast<size_t>(n) : sizeof line - 1;
    write_line(2, line, len);
    if (g_config.log_fd >= 0 && g_config.log_fd != 2) write_line(g_config.log_fd, line, len);
}

void log_line(const char *fmt, const char *a, const char *b) {
    if (g_config.log_fd < 0) return;
    char line[WLF_PATH_MAX + 512];
    int n = snprintf(line, sizeof line, fmt, a, b);
    if (n < 0) return;
    size_t len = static_cast<size_t>(n) < sizeof line ? static_cast<size_t>(n) : sizeof line - 1;
    write_line(g_config.log_fd, line, len);
}

void describe_lock_failure(int rc, const wlf_error &err, char *text, size_t size) {
    wlf_error_format(&err, text, size);
    if (err.step != WLF_STEP_LOCK || (rc != ETIMEDOUT && rc != EWOULDBLOCK && rc != EDEADLK)) return;
    pid_t holder = detail::lock_file_holder(err.path);
    size_t n = strlen(text);
    if (holder > 0 && n < size) snprintf(text + n, size - n, " (held by pid %d)", static_cast<int>(holder));
}

}  // namespace wrap_lockfile::shim
