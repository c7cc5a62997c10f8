#include "identity_records.hpp"

#include "handlers.hpp"

#include "sysio.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::shim {

// ---- across execve: a child that execs keeps seeing its opener's pending
// file through the descriptor it inherited (`prog` in `prog >> f` run by a
// shell that opened f itself). Passed as lines of
//   FD RDEV RINO SDEV SINO TLEN OLEN TARGET OPENED
// in WRAP_LOCKFILE_VIEW; only anonymous temps, whose lack of a name tells the
// new image that the replacement is still pending.

namespace {

constexpr char kViewVar[] = "WRAP_LOCKFILE_VIEW";
constexpr int kScanFds = 256;  // where shells put redirections

// A descriptor that survives execve and is r's temp, or -1.
int inheritable_fd(const Record &r) {
    for (int fd = 0; fd < kScanFds; ++fd) {
        int fl = sys::fcntl(fd, F_GETFD);
        if (fl < 0 || (fl & FD_CLOEXEC)) continue;
        struct stat st;
        if (fstat(fd, &st) == 0 && st.st_dev == r.dev && st.st_ino == r.ino && st.st_nlink == 0) return fd;
    }
    return -1;
}

}  // namespace

char *const *identity_exec_env(char *const *envp) {
    int fds[kRecords];
    size_t need = sizeof kViewVar + 1;
    int count = 0;
    pid_t me = getpid();
    int high = g_high.load(std::memory_order_acquire);
    for (int i = 0; i < high; ++i) {
        const Record &r = g_records[i];
        uint32_t gen = r.gen.load(std::memory_order_acquire);
        fds[i] = -1;
        // This process's own replacements go along through exec_prepare.
        if (!gen || r.owner == me || !valid(r, gen)) continue;
        fds[i] = inheritable_fd(r);
        if (fds[i] < 0 || strchr(r.target, '\n') || strchr(r.opened, '\n')) {
            fds[i] = -1;
            continue;
        }
        need += 128 + strlen(r.target) + strlen(r.opened);
        ++count;
    }
    if (count == 0) return envp;
    size_t n = 0;
    while (envp && envp[n]) ++n;
    auto **env = static_cast<char **>(malloc((n + 2) * sizeof(char *)));
    char *var = static_cast<char *>(malloc(need));
    if (!env || !var) {
        free(env);
        free(var);
        return envp;  // the child sees the old file, as before
    }
    size_t len = static_cast<size_t>(snprintf(var, need, "%s=", kViewVar));
    for (int i = 0; i < high; ++i) {
        if (fds[i] < 0) continue;
        const Record &r = g_records[i];
        len += static_cast<size_t>(snprintf(var + len, need - len, "%d %lu %lu %lu %lu %zu %zu %s%s\n", fds[i],
                                            static_cast<unsigned long>(r.dev), static_cast<unsigned long>(r.ino),
                                            static_cast<unsigned long>(r.shown.dev),
                                            static_cast<unsigned long>(r.shown.ino), strlen(r.target),
                                            strlen(r.opened), r.target, r.opened));
    }
    size_t k = 0;
    for (size_t i = 0; i < n; ++i)
        if (strncmp(envp[i], kViewVar, sizeof kViewVar - 1) != 0 || envp[i][sizeof kViewVar - 1] != '=')
            env[k++] = envp[i];
    env[k++] = var;
    env[k] = nullptr;
    return env;
}

void identity_exec_failed(char *const *env) {
    size_t n = 0;
    while (env[n]) ++n;
    free(env[n - 1]);
    free(const_cast<char **>(env));
}

void identity_import() {
    const char *v = getenv(kViewVar);
    if (!v) return;
    for (const char *p = v; *p;) {
        char *end;
        unsigned long num[7];
        const char *q = p;
        bool ok = true;
        for (unsigned long &x : num) {
            x = strtoul(q, &end, 10);
            ok = ok && end != q && *end == ' ';
            q = ok ? end + 1 : q;
        }
        size_t tlen = num[5], olen = num[6];
        if (!ok || tlen == 0 || tlen >= WLF_PATH_MAX || olen >= WLF_PATH_MAX || strnlen(q, tlen + olen) < tlen + olen)
            break;
        char target[WLF_PATH_MAX], opened[WLF_PATH_MAX];
        memcpy(target, q, tlen);
        target[tlen] = '\0';
        memcpy(opened, q + tlen, olen);
        opened[olen] = '\0';
        int fd = static_cast<int>(num[0]);
        struct stat st;
        if (fstat(fd, &st) == 0 && st.st_dev == num[1] && st.st_ino == num[2] && st.st_nlink == 0) {
            WriteGuard g;
            add_record(nullptr, 0, fd, st.st_dev, st.st_ino, Shown{num[3], num[4]}, target, opened, false);
        }
        p = q + tlen + olen;
        if (*p != '\n') break;
        ++p;
    }
    unsetenv(kViewVar);
}

}  // namespace wrap_lockfile::shim
