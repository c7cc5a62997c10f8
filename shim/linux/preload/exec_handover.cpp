#include "exec_handover.hpp"

#include "commit.hpp"
#include "fd_table.hpp"
#include "handlers.hpp"
#include "messages.hpp"
#include "preload_config.hpp"
#include "unseen_close.hpp"

#include "elf_check.hpp"
#include "handoff.hpp"
#include "path_search.hpp"
#include "sysio.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::shim {

namespace {

constexpr char kPendingVar[] = "WRAP_LOCKFILE_PENDING";

// Its token for descriptors inherited from another process's replacement.
constexpr char kInheritedToken[] = "i:";

}  // namespace

void import_pending() {
    const char *v = getenv(kPendingVar);
    if (!v) return;
    g_children.store(true, std::memory_order_relaxed);  // the image before may have had some
    const char *p = v;
    while (*p) {
        const char *end = strchr(p, ';');
        if (!end) end = p + strlen(p);
        const char *colon = static_cast<const char *>(memchr(p, ':', static_cast<size_t>(end - p)));
        wlf_file *f = nullptr;
        if (colon == p + 1 && *p == kInheritedToken[0]) {
            for (const char *q = colon + 1; q < end;) {
                char *next;
                long fd = strtol(q, &next, 10);
                if (next == q) break;
                if (fd >= 0 && fd < kMaxFds && sys::fcntl(static_cast<int>(fd), F_GETFD) >= 0)
                    set_slot(static_cast<int>(fd), kInherited);
                q = *next == '.' ? next + 1 : next;
            }
        } else if (colon && detail::file_import(p, static_cast<size_t>(colon - p), g_config.fd_floor, &f) == 0) {
            const pid_t me = getpid();
            Entry *e;
            {
                Guard g;
                e = g_replacements.add(f, nullptr, me);
            }
            if (!e) {
                wlf_discard(f);
            } else {
                // The image before may have handed its descriptors to
                // children, which may write after our last close: never
                // refused as still empty (fd_table.hpp, note_shared).
                e->shared = true;
                identity_add(f, nullptr, nullptr, me);
                Guard g;
                mark_internal(f, true);
                for (const char *q = colon + 1; q < end;) {
                    char *next;
                    long fd = strtol(q, &next, 10);
                    if (next == q) break;
                    if (fd >= 0 && fd < kMaxFds && sys::fcntl(static_cast<int>(fd), F_GETFD) >= 0)
                        g_replacements.add_handle(e, static_cast<int>(fd));
                    q = *next == '.' ? next + 1 : next;
                }
            }
            if (e && e->refs == 0) commit(e);
        } else {
            message("wrap_lockfile: %s: cannot take over a pending replacement%s\n", kPendingVar, "");
        }
        p = *end ? end + 1 : end;
    }
    unsetenv(kPendingVar);
}

namespace {

bool env_has_preload(char *const *envp) {
    for (char *const *e = envp; e && *e; ++e)
        if (strncmp(*e, "LD_PRELOAD=", 11) == 0 && strstr(*e, WLF_PRELOAD_NAME)) return true;
    return false;
}

// False when the program an exec is about to run would not load us: nobody
// would commit what we hand over.
bool program_loads_preload(const char *program, ExecLookup how) {
    if (how == ExecLookup::fd || !program || !*program) return true;
    char found[WLF_PATH_MAX];
    const char *path = program;
    if (how == ExecLookup::search && !strchr(program, '/')) {
        if (search_path(program, found, sizeof found) != 0) return true;  // execvp will fail and say so
        path = found;
    }
    // Everything the loader judges: set-id, capabilities, static, another
    // ELF class or machine (a 32-bit program from a 64-bit shell), another
    // libc's loader. A program that runs but cannot be read (mode 0711) is
    // given the same answer: committing early only loses the atomicity of
    // what it writes, handing over to a program that cannot take it loses
    // the write. One that does not exist keeps it pending: the exec fails
    // (shells try each PATH entry) and exec_failed takes it back.
    detail::ElfId self;
    detail::native_id(&self);
    detail::Unprotected why = detail::unprotected_program(path, &self, nullptr, nullptr, 0, nullptr);
    if (why == detail::Unprotected::no) return true;
    if (why == detail::Unprotected::unreadable && access(path, X_OK) != 0) return true;
    log_line("wrap_lockfile: %s cannot load the shim: committing before exec%s\n", path, "");
    return false;
}

struct Handoff {
    Entry **entries;
    int count;
};

// Replacements of this process, each once (entries malloc'd; may be null).
void collect(Handoff *h) {
    h->count = 0;
    h->entries = static_cast<Entry **>(malloc(sizeof(Entry *) * static_cast<size_t>(g_tracked.load() + 1)));
    if (!h->entries) return;
    int cap = g_tracked.load() + 1;
    pid_t me = getpid();
    for (int fd = 0; fd < kMaxFds && h->count < cap; ++fd) {
        Entry *e = entry_of(g_fds[fd].load());
        if (!e || e->opener != me) continue;
        bool seen = false;
        for (int i = 0; i < h->count && !seen; ++i) seen = h->entries[i] == e;
        if (!seen) h->entries[h->count++] = e;
    }
}

void set_cloexec(wlf_file *f, bool on) {
    int fd, lock_fd, dir_fd;
    detail::file_descriptors(f, &fd, &lock_fd, &dir_fd);
    sys::fcntl(fd, F_SETFD, on ? FD_CLOEXEC : 0);
    if (lock_fd >= 0) sys::fcntl(lock_fd, F_SETFD, on ? FD_CLOEXEC : 0);
}

// Commits e now, before an exec nobody after which would commit it. A
// descriptor of it the new image inherits writes into the file committed
// here (exec_prepare called note_shared: being empty now is no refusal).
void commit_before_exec(Entry *e) {
    g_replacements.unlist(e);
    commit(e);
}

// A growing string (malloc'd); `ok` turns false on allocation failure.
struct Text {
    char *data = nullptr;
    size_t len = 0, cap = 0;
    bool ok = true;
    void add(const char *s) {
        size_t n = strlen(s);
        if (!ok) return;
        if (len + n + 1 > cap) {
            size_t want = (len + n + 1) * 2;
            char *grown = static_cast<char *>(realloc(data, want));
            if (!grown) {
                ok = false;
                return;
            }
            data = grown;
            cap = want;
        }
        memcpy(data + len, s, n + 1);
        len += n;
    }
};

Handoff g_handoff;  // what exec_prepare exported, for exec_failed

}  // namespace

char *const *exec_prepare(char *const *envp, const char *program, ExecLookup how, bool *prepared) {
    Guard g;
    commit_unseen_closes();
    // What the new image (or, from a vfork child, whose memory is its
    // parent's, the opener's) inherits may be written after the last close
    // the opener sees.
    note_shared(true);
    collect(&g_handoff);
    // Inherited descriptors go along as "i:<fd>.<fd>...", so that the new
    // image still reports their write errors to the opener. A vfork child
    // (dash runs `cat big > t` so) sees the opener's entries themselves.
    Text inherited;
    inherited.add(kInheritedToken);
    int ninherited = 0;
    pid_t me = getpid();
    for (int fd = 0; fd < g_fd_end.load(std::memory_order_relaxed); ++fd) {
        uintptr_t v = g_fds[fd].load();
        Entry *e = entry_of(v);
        if (v != kInherited && !(e && e->opener != me && wlf_file_kind(e->file) == WLF_COMMIT_RENAME)) continue;
        int fdflags = sys::fcntl(fd, F_GETFD);
        if (fdflags < 0 || (fdflags & FD_CLOEXEC)) continue;
        char num[16];
        snprintf(num, sizeof num, "%s%d", ninherited++ ? "." : "", fd);
        inherited.add(num);
    }
    bool carry = env_has_preload(envp) && (g_handoff.count == 0 || program_loads_preload(program, how));
    if (g_handoff.count == 0 && (ninherited == 0 || !carry)) {
        free(inherited.data);
        free(g_handoff.entries);
        g_handoff.entries = nullptr;
        return envp;
    }
    Text var;
    var.add(kPendingVar);
    var.add("=");
    int exported = 0;
    // A vfork child's store lands in its parent's memory, which it shares.
    if (ninherited) g_children.store(true, std::memory_order_relaxed);
    if (ninherited && carry && inherited.ok) {
        var.add(inherited.data);
        ++exported;
    }
    free(inherited.data);
    for (int i = 0; i < g_handoff.count; ++i) {
        Entry *e = g_handoff.entries[i];
        // The program's inheritable descriptors of this replacement, all of
        // them: a partial list would let the new image commit too early.
        Text token;
        char num[16];
        int fds = 0;
        if (carry) {
            char state[WLF_PATH_MAX * 3 + 128];
            if (detail::file_export(e->file, state, sizeof state) == 0) {
                token.add(state);
                token.add(":");
                for (int fd = 0; fd < kMaxFds; ++fd) {
                    if (entry_of(g_fds[fd].load()) != e) continue;
                    int fdflags = sys::fcntl(fd, F_GETFD);
                    if (fdflags < 0 || (fdflags & FD_CLOEXEC)) continue;
                    snprintf(num, sizeof num, "%s%d", fds++ ? "." : "", fd);
                    token.add(num);
                }
            }
        }
        if (!carry || fds == 0 || !token.ok) {
            // Nobody after the exec would commit it: its last close is now.
            // What the new image writes through an inherited descriptor then
            // goes straight into the (already replaced) file.
            free(token.data);
            g_handoff.entries[i] = nullptr;
            commit_before_exec(e);
            continue;
        }
        if (exported++) var.add(";");
        var.add(token.data);
        free(token.data);
        set_cloexec(e->file, false);
    }
    size_t n = 0;
    for (char *const *e = envp; e && *e; ++e) ++n;
    auto **env = exported && var.ok ? static_cast<char **>(malloc((n + 2) * sizeof(char *))) : nullptr;
    if (!env) {
        // Nothing to hand over (or no memory to say it): commit what is
        // left, so that nothing is lost.
        for (int i = 0; i < g_handoff.count; ++i) {
            Entry *e = g_handoff.entries[i];
            if (!e) continue;
            set_cloexec(e->file, true);
            commit_before_exec(e);
        }
        free(var.data);
        free(g_handoff.entries);
        g_handoff.entries = nullptr;
        return envp;
    }
    size_t k = 0;
    for (char *const *e = envp; e && *e; ++e)
        if (strncmp(*e, kPendingVar, sizeof kPendingVar - 1) != 0 || (*e)[sizeof kPendingVar - 1] != '=')
            env[k++] = *e;
    env[k++] = var.data;
    env[k] = nullptr;
    *prepared = true;
    return env;
}

void exec_failed(char *const *newenv) {
    Guard g;
    for (int i = 0; i < g_handoff.count; ++i)
        if (g_handoff.entries[i]) set_cloexec(g_handoff.entries[i]->file, true);
    free(g_handoff.entries);
    g_handoff.entries = nullptr;
    size_t n = 0;
    while (newenv[n]) ++n;
    free(newenv[n - 1]);
    free(const_cast<char **>(newenv));
}

}  // namespace wrap_lockfile::shim
