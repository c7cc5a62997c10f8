// The shim's bookkeeping: configuration from the environment, the table of
// descriptors that refer to pending replacements, commit at the last close in
// the opening process, hand-over across execve, commit at normal exit.
//
// Model: for each matched write-open the core creates a pending replacement
// (lock + temp in the target's directory). The program's descriptor is the
// temp itself, at the lowest free number as open(2) would give; the core's
// own descriptors ("internal": a duplicate of the temp, the lock, the
// directory if fsync needs it) sit at high numbers. Program descriptors are
// counted per replacement; when the last one is closed in the opener, the
// core commits.
// Forked children inherit descriptors but never commit.
#include "handlers.hpp"
#include "paths.hpp"

#include "config_file.hpp"
#include "elf_check.hpp"
#include "handoff.hpp"
#include "internal.hpp"
#include "lock_choice.hpp"
#include "long_path.hpp"
#include "normalize.hpp"
#include "replace_parts.hpp"
#include "rules.hpp"
#include "sysio.hpp"
#include "timeout.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <limits.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::shim {

std::atomic<uintptr_t> g_fds[kMaxFds];
std::atomic<int> g_state{0};
std::atomic<int> g_tracked{0};

namespace {

constexpr char kPendingVar[] = "WRAP_LOCKFILE_PENDING";
// Its token for descriptors inherited from another process's replacement.
constexpr char kInheritedToken[] = "i:";
// What wlf_open takes; the rest (O_ASYNC, O_DIRECTORY…) cannot apply to a
// replacement. O_NONBLOCK, O_NOCTTY, O_SYNC… reach pass-through targets.
constexpr int kPassFlags = O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
                           O_LARGEFILE | O_NONBLOCK | O_SYNC | O_DSYNC | O_DIRECT | O_NOATIME;

struct Entry {
    wlf_file *file;
    int refs;      // program descriptors referring to it (under g_mutex)
    pid_t opener;  // only this process commits
    FILE *stream;  // the stdio stream fopen() made for it, if any
    char *name;    // normalized path for messages (malloc'd), or nullptr
};

struct Config {
    rules::RuleSet rules{};
    wlf_write_options options{};
    int log_fd = -1;
    bool slash_rules = false;  // some rule needs the absolute path, not just the name
};

// constinit: a dynamic initializer could run after our constructor (or after
// an early interposed call) and wipe the configuration.
constinit Config g_config{};
// Recursive: commit() takes it, and exec_prepare commits while holding it.
pthread_mutex_t g_mutex = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
pthread_once_t g_once = PTHREAD_ONCE_INIT;

// How deep this thread is in the table's bookkeeping or a commit: an _exit
// from a signal handler that interrupted it must not commit (the table or
// the replacement may be half-updated; see exit_pending). Constant-
// initialized, initial-exec: reading it is one load, no TLS call.
__attribute__((tls_model("initial-exec"))) constinit thread_local int t_inside = 0;

struct Inside {
    Inside() { ++t_inside; }
    ~Inside() { --t_inside; }
};

struct Guard {
    Guard() {
        pthread_mutex_lock(&g_mutex);
        ++t_inside;
    }
    ~Guard() {
        --t_inside;
        pthread_mutex_unlock(&g_mutex);
    }
};

Entry *entry_of(uintptr_t v) { return v > kInherited ? reinterpret_cast<Entry *>(v) : nullptr; }

// Set once another process may hold one of our temps' descriptors (a fork,
// a vfork child's exec, a hand-over from an image that had children): only
// then can a commit find a child's error mark on its temp.
std::atomic<bool> g_children{false};

// One past the highest number ever listed: bounds the scans for closes that
// went unseen.
std::atomic<int> g_fd_end{0};

void set_slot(int fd, uintptr_t v) {
    if (fd < 0 || fd >= kMaxFds) return;
    if (v && fd >= g_fd_end.load(std::memory_order_relaxed)) g_fd_end.store(fd + 1, std::memory_order_relaxed);
    uintptr_t old = g_fds[fd].exchange(v, std::memory_order_acq_rel);
    if (!old && v) g_tracked.fetch_add(1);
    if (old && !v) g_tracked.fetch_sub(1);
}

void message(const char *fmt, const char *a, const char *b) {
    char line[WLF_PATH_MAX + 512];
    int n = snprintf(line, sizeof line, fmt, a, b);
    if (n < 0) return;
    size_t len = static_cast<size_t>(n) < sizeof line ? static_cast<size_t>(n) : sizeof line - 1;
    sys::write_all(2, line, len);
    if (g_config.log_fd >= 0 && g_config.log_fd != 2) sys::write_all(g_config.log_fd, line, len);
}

void log_line(const char *fmt, const char *a, const char *b) {
    if (g_config.log_fd < 0) return;
    char line[WLF_PATH_MAX + 512];
    int n = snprintf(line, sizeof line, fmt, a, b);
    if (n < 0) return;
    size_t len = static_cast<size_t>(n) < sizeof line ? static_cast<size_t>(n) : sizeof line - 1;
    sys::write_all(g_config.log_fd, line, len);
}

// Replacements of one thread on one file share the lock descriptor (nested
// locks): an internal descriptor stays protected until its last user is done.
uint16_t g_internal_refs[kMaxFds];

void mark_one(int fd, bool on) {
    if (fd < 0 || fd >= kMaxFds) return;
    if (on) {
        if (g_internal_refs[fd]++ == 0) set_slot(fd, kInternal);
    } else if (g_internal_refs[fd] > 0 && --g_internal_refs[fd] == 0) {
        set_slot(fd, 0);
    }
}

// Callers hold g_mutex.
void mark_internal(wlf_file *f, bool on) {
    int fd, lock_fd, dir_fd;
    detail::file_descriptors(f, &fd, &lock_fd, &dir_fd);
    mark_one(fd, on);
    mark_one(lock_fd, on);
    mark_one(dir_fd, on);
}

// Commits (or, when the program saw a write error, discards) and frees e.
// Returns 0 or errno; failures are reported on stderr since many programs
// ignore close()'s result.
int commit(Entry *e) {
    Inside inside;
    char target[WLF_PATH_MAX];
    snprintf(target, sizeof target, "%s", e->name ? e->name : wlf_file_target(e->file));
    free(e->name);
    bool superseded = identity_remove(e->file);
    {
        Guard g;
        mark_internal(e->file, false);
    }
    if (superseded) {
        // The program renamed another file onto the target meanwhile: that
        // file is F now, as without the shim; this descriptor's content
        // would have gone to the unlinked inode.
        wlf_discard(e->file);
        free(e);
        log_line("wrap_lockfile: '%s' was replaced by the program's own rename; not replacing it again%s\n", target, "");
        return 0;
    }
    if (g_children.load(std::memory_order_relaxed) && wlf_file_kind(e->file) == WLF_COMMIT_RENAME) {
        int own, lock_fd, dir_fd;
        detail::file_descriptors(e->file, &own, &lock_fd, &dir_fd);
        if (int error = child_error(own)) wlf_file_poison(e->file, error);
    }
    wlf_error err;  // filled on failure; not cleared (4 KiB) on the hot path
    err.code = 0;
    int kind = 0;
    int rc = detail::file_commit_by_opener(e->file, &kind, &err);
    free(e);
    if (rc) {
        char text[WLF_PATH_MAX + 256];
        wlf_error_format(&err, text, sizeof text);
        // What became of the target is told by the failing step, not by words.
        const char *what = err.step == WLF_STEP_FSYNC_DIR ? "wrap_lockfile: '%s' replaced, but not durably: %s\n"
                           : err.step == WLF_STEP_UNLOCK  ? "wrap_lockfile: '%s' replaced, but its lock was not released cleanly: %s\n"
                           : err.step == WLF_STEP_IN_PLACE ? "wrap_lockfile: '%s' written in place, perhaps partly: %s\n"
                                                           : "wrap_lockfile: '%s' not replaced, old content kept: %s\n";
        message(what, target, text);
        errno = rc;
        return rc;
    }
    log_line("wrap_lockfile: committed '%s'%s\n", target, kind == WLF_COMMIT_IN_PLACE ? " (in place, not atomic)" : "");
    return 0;
}

// Removes fd from the table; returns its entry if that was the last program
// descriptor of a replacement this process opened (the caller commits it).
Entry *detach(int fd) {
    if (fd < 0 || fd >= kMaxFds) return nullptr;
    Guard g;
    if (g_fds[fd].load() == kInherited) set_slot(fd, 0);
    Entry *e = entry_of(g_fds[fd].load());
    if (!e || e->opener != getpid()) return nullptr;
    set_slot(fd, 0);
    return --e->refs == 0 ? e : nullptr;
}

// Whether the program's descriptor fd still is e's file (the library's own
// duplicate is the reference): false once its close went unseen, even if
// the number has been reused since (by a pipe or socket, say).
bool still_open(int fd, const Entry *e) {
    int own, lock_fd, dir_fd;
    detail::file_descriptors(e->file, &own, &lock_fd, &dir_fd);
    struct stat mine, theirs;
    if (sys::fstat(fd, &theirs) != 0) return errno != EBADF;
    if (sys::fstat(own, &mine) != 0) return true;  // nothing to tell by: leave it
    return mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino;
}

// Commits the replacements of this process whose last program descriptor
// was closed without the shim seeing it (a raw system call): what the
// program wrote and closed is never dropped, and the lock is freed.
void commit_unseen_closes() {
    int saved = errno;
    Guard g;
    pid_t me = getpid();
    int end = g_fd_end.load(std::memory_order_relaxed);
    for (int fd = 0; fd < end; ++fd) {
        Entry *e = entry_of(g_fds[fd].load());
        if (!e || e->opener != me || still_open(fd, e)) continue;
        if (Entry *last = detach(fd)) commit(last);
    }
    errno = saved;
}

// One of the shim's own descriptors was closed behind its back (the number
// came back from an open): the replacements using it can no longer be
// committed safely. They fail loudly at their close; the core forgets the
// number, which is the program's now.
void forget_internal(int fd) {
    int end = g_fd_end.load(std::memory_order_relaxed);
    for (int i = 0; i < end; ++i) {
        Entry *e = entry_of(g_fds[i].load());
        if (!e) continue;
        int own, lock_fd, dir_fd;
        detail::file_descriptors(e->file, &own, &lock_fd, &dir_fd);
        if (own != fd && lock_fd != fd && dir_fd != fd) continue;
        wlf_file_poison(e->file, EBADF);
        detail::file_relocate_fd(e->file, fd, -1);
        char num[16];
        snprintf(num, sizeof num, "%d", fd);
        message("wrap_lockfile: descriptor %s of the pending replacement of '%s' was closed behind the shim's back\n",
                num, e->name ? e->name : wlf_file_target(e->file));
    }
    if (g_config.log_fd == fd) g_config.log_fd = -1;
    g_internal_refs[fd] = 0;
    set_slot(fd, 0);
}

// make_paths failed with `rc`: true (errno ENAMETOOLONG, one line on stderr)
// when the open must be refused rather than done in place (long_path.hpp);
// false: the caller passes it through, and the kernel gives its own error.
bool refuse_unbuildable(int rc, int dirfd, const char *path, bool link) {
    if (rc != ENAMETOOLONG || judge_unbounded(&g_config.rules, dirfd, path, link) == Unbounded::plain) return false;
    message("wrap_lockfile: '%s': %s\n", path,
            link ? "a symbolic link whose absolute path is longer than PATH_MAX: cannot tell whether a rule matches "
                   "its target, not writing it"
                 : "a rule matches it, but its absolute path is longer than PATH_MAX, so it cannot be replaced "
                   "atomically; not writing it");
    errno = ENAMETOOLONG;
    return true;
}

// Which rule applies to the file the symlink at `raw` leads to; its
// resolved path goes to final[size].
rules::Kind classify_link_target(const char *raw, char *final, size_t size) {
    bool exists;
    struct stat st;
    char resolved[WLF_PATH_MAX];
    bool via_proc;
    if (detail::resolve_target(raw, false, resolved, sizeof resolved, &exists, &st, &via_proc) || via_proc)
        return rules::kNone;
    if (detail::normalize_path("/", resolved, final, size)) return rules::kNone;
    return rules::classify(&g_config.rules, final);
}

// Which rule applies to the path, or to the file a symlink at it leads to.
rules::Kind classify(const Paths &p, char *final, size_t size) {
    rules::Kind kind = rules::classify(&g_config.rules, p.norm);
    if (kind != rules::kNone) return kind;
    struct stat st;
    if (lstat(p.raw, &st) != 0 || !S_ISLNK(st.st_mode)) return rules::kNone;
    return classify_link_target(p.raw, final, size);
}

// A lock failure as one line: the error, and for a busy lock the holder's
// pid where the kernel shows it (/proc/locks).
void describe_lock_failure(int rc, const wlf_error &err, char *text, size_t size) {
    wlf_error_format(&err, text, size);
    if (err.step != WLF_STEP_LOCK || (rc != ETIMEDOUT && rc != EWOULDBLOCK)) return;
    pid_t holder = detail::lock_file_holder(err.path);
    size_t n = strlen(text);
    if (holder > 0 && n < size) snprintf(text + n, size - n, " (held by pid %d)", static_cast<int>(holder));
}

// Opens a pending replacement for an absolute path with a rule of `kind`.
int open_pending(const Paths &p, rules::Kind kind, int flags, mode_t mode) {
    // A replacement whose descriptor was closed unseen is committed before
    // this one looks at the file (appending to what it wrote, say).
    if (g_tracked.load(std::memory_order_acquire) != 0) commit_unseen_closes();
    wlf_write_options opt = g_config.options;
    opt.lock_only = kind == rules::kLockOnly;
    wlf_file *f = nullptr;
    wlf_error err;  // filled on failure
    err.code = 0;
    int user = -1;
    int rc = detail::file_open_split(p.raw, flags & kPassFlags, mode, &opt, &f, &user, &err);
    if (rc) {
        char text[WLF_PATH_MAX + 256];
        describe_lock_failure(rc, err, text, sizeof text);
        bool lock_step = err.step == WLF_STEP_LOCK;
        if (lock_step && (rc == ETIMEDOUT || rc == EWOULDBLOCK)) {
            // A lock wait that gave up must never look like a silent failure.
            message("wrap_lockfile: cannot open '%s' for writing: %s (WRAP_LOCKFILE_TIMEOUT)\n", p.norm, text);
            rc = rc == EWOULDBLOCK ? EAGAIN : ETIMEDOUT;
        } else if (lock_step && rc == ENOLCK) {
            // A lock file that is not one (a FIFO, a directory, a hard link):
            // the program's own message could only name the target.
            message("wrap_lockfile: cannot open '%s' for writing: %s\n", p.norm, text);
        } else {
            log_line("wrap_lockfile: open '%s' failed: %s\n", p.norm, text);
        }
        errno = rc;
        return -1;
    }
    if (wlf_file_kind(f) == WLF_COMMIT_PASSTHROUGH) {
        int fd = served(wlf_file_detach(f));
        if (!(flags & O_CLOEXEC)) sys::fcntl(fd, F_SETFD, 0);
        return fd;
    }
    Entry *e = user < kMaxFds ? static_cast<Entry *>(malloc(sizeof(Entry))) : nullptr;
    if (!e) {
        sys::close(user);
        wlf_discard(f);
        errno = user < kMaxFds ? ENOMEM : EMFILE;
        return -1;
    }
    *e = Entry{f, 1, detail::file_opener(f), nullptr, strdup(p.norm)};
    served(user);
    {
        Guard g;
        mark_internal(f, true);
        set_slot(user, reinterpret_cast<uintptr_t>(e));
    }
    identity_add(f, p.norm);
    log_line("wrap_lockfile: %s '%s'\n", kind == rules::kLockOnly ? "locked" : "replacing", p.norm);
    return user;
}

// ---- configuration ----

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

// Takes over the replacements a previous program image of this process left
// pending (see exec_prepare).
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
        } else if (colon && detail::file_import(p, static_cast<size_t>(colon - p), g_config.options.fd_floor, &f) == 0) {
            auto *e = static_cast<Entry *>(malloc(sizeof(Entry)));
            if (!e) {
                wlf_discard(f);
            } else {
                *e = Entry{f, 0, getpid(), nullptr, nullptr};
                identity_add(f, nullptr);
                Guard g;
                mark_internal(f, true);
                for (const char *q = colon + 1; q < end;) {
                    char *next;
                    long fd = strtol(q, &next, 10);
                    if (next == q) break;
                    if (fd >= 0 && fd < kMaxFds && sys::fcntl(static_cast<int>(fd), F_GETFD) >= 0) {
                        set_slot(static_cast<int>(fd), reinterpret_cast<uintptr_t>(e));
                        ++e->refs;
                    }
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

void after_fork_child() {
    // The child inherits descriptors, not the duty to commit: it only
    // reports the write errors it sees on a temp (child_errors.cpp).
    // Another thread may have held a mutex at the fork: start them afresh.
    for (int fd = 0; fd < kMaxFds && g_tracked.load() > 0; ++fd) {
        Entry *e = entry_of(g_fds[fd].load());
        bool temp = (e && wlf_file_kind(e->file) == WLF_COMMIT_RENAME) || g_fds[fd].load() == kInherited;
        if (g_fds[fd].load()) set_slot(fd, temp ? kInherited : 0);
    }
    memset(g_internal_refs, 0, sizeof g_internal_refs);
    g_mutex = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
    detail::lock_registry_after_fork();
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

void init_once() {
    char cwd[WLF_PATH_MAX] = "/";
    if (rules_need_cwd() && !getcwd(cwd, sizeof cwd)) strcpy(cwd, "/");
    load_options();
    load_rules(cwd);
    for (size_t i = 0; i < g_config.rules.count; ++i)
        if (g_config.rules.patterns[i].has_slash) g_config.slash_rules = true;
    import_pending();
    identity_import();
    pthread_atfork(nullptr, [] { g_children.store(true, std::memory_order_relaxed); }, after_fork_child);
    g_state.store(g_config.rules.count > 0 ? 2 : 1, std::memory_order_release);
}

}  // namespace

void init_slow() { pthread_once(&g_once, init_once); }

int open_write(int dirfd, const char *path, int flags, mode_t mode, OpenThunk open_with) {
    Paths p;
    bool have_paths = false;
    rules::Kind kind;
    if (g_config.slash_rules) {
        if (int rc = make_paths(dirfd, path, &p))
            return refuse_unbuildable(rc, dirfd, path, false) ? -1 : served(open_with(flags));
        have_paths = true;
        kind = rules::classify(&g_config.rules, p.norm);
    } else {
        // Name-only rules: the last component decides, no getcwd needed.
        kind = rules::classify(&g_config.rules, path);
    }
    if (kind == rules::kExclude) return served(open_with(flags));
    if (kind == rules::kNone) {
        if (flags & O_NOFOLLOW) return served(open_with(flags));
        // Unmatched: open it for real, but refuse to follow a final symlink;
        // ELOOP then tells us (at no extra system call for plain files) that
        // the path is a link whose target a rule may match.
        int fd = open_with(flags | O_NOFOLLOW);
        if (fd >= 0 || errno != ELOOP) return served(fd);
        if (int rc = have_paths ? 0 : make_paths(dirfd, path, &p))
            return refuse_unbuildable(rc, dirfd, path, true) ? -1 : served(open_with(flags));
        char final[WLF_PATH_MAX];
        kind = classify_link_target(p.raw, final, sizeof final);
        if (kind == rules::kNone || kind == rules::kExclude) return served(open_with(flags));
        return open_pending(p, kind, flags, mode);
    }
    if (int rc = have_paths ? 0 : make_paths(dirfd, path, &p))
        return refuse_unbuildable(rc, dirfd, path, false) ? -1 : served(open_with(flags));
    return open_pending(p, kind, flags, mode);
}

int open_matched(int dirfd, const char *path, int flags, mode_t mode) {
    Paths p;
    char final[WLF_PATH_MAX];
    if (int rc = make_paths(dirfd, path, &p)) return refuse_unbuildable(rc, dirfd, path, false) ? -1 : kNotMatched;
    rules::Kind kind = classify(p, final, sizeof final);
    if (kind == rules::kNone || kind == rules::kExclude) return kNotMatched;
    return open_pending(p, kind, flags, mode);
}

int close_tracked(int fd, Thunk pass) {
    uintptr_t v = g_fds[fd].load(std::memory_order_acquire);
    // Programs that close every descriptor (daemons, closefrom loops) must
    // not take the lock or the temp away from under a pending replacement.
    if (v == kInternal) return 0;
    Entry *e;
    {
        Guard g;
        if (g_fds[fd].load() == kInherited) set_slot(fd, 0);
        e = entry_of(g_fds[fd].load());
        if (!e || e->opener != getpid()) return static_cast<int>(pass());
        set_slot(fd, 0);
        if (--e->refs != 0) e = nullptr;
    }
    int rc = static_cast<int>(pass());
    int saved = errno;
    if (e && commit(e) != 0) return -1;
    errno = saved;
    return rc;
}

int fclose_tracked(FILE *stream, int fd, Thunk pass) {
    if (g_fds[fd].load(std::memory_order_acquire) == kInherited) {
        // stdio's own writes bypass write(): its flags are the trace.
        if (fflush(stream) != 0 || ferror(stream)) report_child_error(fd, errno ? errno : EIO);
        detach(fd);
        return static_cast<int>(pass());
    }
    Entry *e = entry_of(g_fds[fd].load(std::memory_order_acquire));
    if (!e || e->opener != getpid()) return static_cast<int>(pass());
    // Buffered data must reach the temp before we decide; a failed flush
    // means the new content is incomplete.
    if (fflush(stream) != 0)
        wlf_file_poison(e->file, errno ? errno : EIO);
    else if (ferror(stream))
        wlf_file_poison(e->file, EIO);
    {
        Guard g;
        if (e->stream == stream) e->stream = nullptr;  // about to be freed
    }
    Entry *last = detach(fd);
    int rc = static_cast<int>(pass());
    if (last && commit(last) != 0) return EOF;
    return rc;
}

int fcloseall_tracked(Thunk pass) {
    fflush(nullptr);
    int rc = static_cast<int>(pass());
    for (int fd = 0; fd < kMaxFds && g_tracked.load() > 0; ++fd) {
        if (!entry_of(g_fds[fd].load())) continue;
        if (sys::fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
        if (Entry *e = detach(fd)) commit(e);
    }
    return rc;
}

int close_range_tracked(unsigned first, unsigned last, int flags) {
    // Close around our own descriptors; commit replacements whose last
    // program descriptor went away.
    unsigned stop = last < static_cast<unsigned>(kMaxFds) ? last : static_cast<unsigned>(kMaxFds - 1);
    unsigned start = first;
    int rc = 0;
    Entry *done[64];
    int ndone = 0;
    for (unsigned fd = first; fd <= stop && fd >= first; ++fd) {
        uintptr_t v = g_fds[fd].load();
        if (v == kInternal) {
            if (fd > start && sys::close_range(start, fd - 1, flags) != 0) rc = -1;
            start = fd + 1;
        } else if (v) {
            Entry *e = detach(static_cast<int>(fd));
            if (e && ndone < 64)
                done[ndone++] = e;
            else if (e)
                commit(e);  // its descriptor closes below; the temp has its own
        }
    }
    if (start <= last && sys::close_range(start, last, flags) != 0) rc = -1;
    int saved = errno;
    for (int i = 0; i < ndone; ++i) commit(done[i]);
    errno = saved;
    return rc;
}

void attach(int newfd, int fd) {
    if (newfd < 0 || newfd >= kMaxFds) return;
    Guard g;
    if (g_fds[fd].load() == kInherited) set_slot(newfd, kInherited);
    Entry *e = entry_of(g_fds[fd].load());
    if (!e || e->opener != getpid()) return;
    set_slot(newfd, reinterpret_cast<uintptr_t>(e));
    ++e->refs;
}

void drop_and_commit(int fd) {
    if (Entry *e = detach(fd)) commit(e);
}

bool relocate_internal(int fd) {
    Guard g;
    if (fd < 0 || fd >= kMaxFds || g_fds[fd].load() != kInternal) return true;
    int moved = sys::fcntl(fd, F_DUPFD_CLOEXEC, g_config.options.fd_floor);
    if (moved < 0 || moved >= kMaxFds) {
        int e = moved < 0 ? errno : EMFILE;
        if (moved >= 0) sys::close(moved);
        // Refused rather than done: dup2 would take the lock or the temp
        // away from a pending replacement.
        char num[16];
        snprintf(num, sizeof num, "%d", fd);
        message("wrap_lockfile: cannot move descriptor %s out of the way of dup2: %s\n", num, strerror(e));
        errno = e;
        return false;
    }
    for (int i = 0; i < kMaxFds; ++i)
        if (Entry *e = entry_of(g_fds[i].load())) detail::file_relocate_fd(e->file, fd, moved);
    if (g_config.log_fd == fd) g_config.log_fd = moved;
    g_internal_refs[moved] = g_internal_refs[fd];
    g_internal_refs[fd] = 0;
    set_slot(moved, kInternal);
    set_slot(fd, 0);
    identity_relocate(fd, moved);
    sys::close(fd);
    return true;
}

void reclaim(int fd) {
    Guard g;
    uintptr_t v = g_fds[fd].load();
    if (v == kInternal) {
        forget_internal(fd);
        return;
    }
    if (Entry *e = detach(fd)) commit(e);  // an inherited one is just forgotten
}

void poison(int fd, int error) {
    Guard g;
    if (g_fds[fd].load() == kInherited) report_child_error(fd, error);
    if (Entry *e = entry_of(g_fds[fd].load())) wlf_file_poison(e->file, error);
}

void note_stream(int fd, FILE *stream) {
    if (fd < 0 || fd >= kMaxFds) return;
    Guard g;
    if (Entry *e = entry_of(g_fds[fd].load())) e->stream = stream;
}

FILE *fopen_matched(const char *path, const char *mode, bool *matched) {
    int flags;
    bool plus = strchr(mode, '+') != nullptr;
    switch (mode[0]) {
    case 'w': flags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC; break;
    case 'a': flags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND; break;
    case 'r': flags = O_RDWR; break;
    default: return nullptr;
    }
    if (strchr(mode, 'x')) flags |= O_EXCL;
    if (strchr(mode, 'e')) flags |= O_CLOEXEC;
    int fd = open_matched(AT_FDCWD, path, flags, 0666);
    if (fd == kNotMatched) return nullptr;
    *matched = true;
    if (fd < 0) return nullptr;
    char m[4] = {mode[0] == 'x' ? 'w' : mode[0], plus ? '+' : '\0', '\0', '\0'};
    FILE *fp = fdopen(fd, m);
    if (fp) note_stream(fd, fp);
    if (!fp) {
        int e = errno;
        Entry *last = detach(fd);
        sys::close(fd);
        if (last) {
            identity_remove(last->file);
            {
                Guard g;
                mark_internal(last->file, false);
            }
            wlf_discard(last->file);
            free(last->name);
            free(last);
        }
        errno = e;
    }
    return fp;
}

FILE *freopen_tracked(const char *path, const char *mode, FILE *stream, Thunk pass) {
    int old_fd = stream ? fileno(stream) : -1;
    if (path && mode && mode[0] != 'r') {
        bool matched = false;
        int flags = (strchr(mode, '+') ? O_RDWR : O_WRONLY) | O_CREAT | (mode[0] == 'a' ? O_APPEND : O_TRUNC);
        int fd = kNotMatched;
        if (wants_write(flags)) fd = open_matched(AT_FDCWD, path, flags, 0666);
        matched = fd != kNotMatched;
        if (matched) {
            if (fd < 0) return nullptr;
            if (old_fd < 0) return fdopen(fd, mode);
            // Keep the FILE and its descriptor number (freopen(…, stdout) is
            // the common use): put the replacement's descriptor in its place.
            fflush(stream);
            int dupped = sys::dup3(fd, old_fd, 0);
            if (dupped < 0) return nullptr;
            drop_and_commit(old_fd);
            attach(old_fd, fd);
            note_stream(old_fd, stream);
            close_fd([&]() { return sys::close(fd); }, fd);
            clearerr(stream);
            return stream;
        }
    }
    if (old_fd >= 0 && tracked(old_fd)) fflush(stream);
    Entry *last = old_fd >= 0 ? detach(old_fd) : nullptr;
    FILE *fp = reinterpret_cast<FILE *>(pass());
    int saved = errno;
    if (last) commit(last);
    errno = saved;
    return fp;
}

int truncate_matched(const char *path, off_t length, bool *matched) {
    Paths p;
    char final[WLF_PATH_MAX];
    if (int rc = make_paths(AT_FDCWD, path, &p)) {
        if (!refuse_unbuildable(rc, AT_FDCWD, path, false)) return 0;
        *matched = true;
        return -1;
    }
    rules::Kind kind = classify(p, final, sizeof final);
    if (kind == rules::kNone || kind == rules::kExclude) return 0;
    *matched = true;
    int fd = open_pending(p, kind, O_WRONLY, 0);
    if (fd < 0) return -1;
    int rc = sys::ftruncate(fd, length);
    if (rc != 0) poison(fd, errno);
    Entry *last = detach(fd);
    sys::close(fd);
    if (last && commit(last) != 0) return -1;
    return rc;
}

int rename_locked(int todir, const char *to, Thunk pass) {
    Paths p;
    char final[WLF_PATH_MAX];
    if (int rc = make_paths(todir, to, &p)) return refuse_unbuildable(rc, todir, to, false) ? -1 : static_cast<int>(pass());
    final[0] = '\0';
    rules::Kind kind = classify(p, final, sizeof final);
    if (kind == rules::kNone || kind == rules::kExclude) return static_cast<int>(pass());
    const char *target = final[0] ? final : p.raw;
    auto rename_now = [&]() {
        int r = static_cast<int>(pass());
        int saved = errno;
        if (r == 0) identity_supersede(final[0] ? final : p.norm);
        errno = saved;
        return r;
    };
    wlf_lock *lock = nullptr;
    wlf_error err{};
    // One try first: a lock this very process holds itself (the program
    // flock()ed X.lock, then renames onto X) would never be released while
    // we wait. Such a program serializes its own writes of X: the rename
    // goes ahead without the lock.
    wlf_lock_options once = g_config.options.lock;
    once.has_timeout = 1;
    once.timeout = 0;
    int rc = wlf_lock_acquire(target, &once, &lock, &err);
    if (rc == EWOULDBLOCK && detail::lock_held_by_program(target)) {
        log_line("wrap_lockfile: '%s' is locked by this program itself: renaming without the lock%s\n", target, "");
        return rename_now();
    }
    const wlf_lock_options &lopt = g_config.options.lock;
    if (rc == EWOULDBLOCK && !(lopt.has_timeout && lopt.timeout <= 0)) {
        err = wlf_error{};
        rc = wlf_lock_acquire(target, &lopt, &lock, &err);
    }
    if (rc) {
        char text[WLF_PATH_MAX + 256];
        describe_lock_failure(rc, err, text, sizeof text);
        message("wrap_lockfile: cannot lock '%s' for rename: %s\n", p.raw, text);
        errno = rc == EWOULDBLOCK ? EAGAIN : rc;
        return -1;
    }
    int r = rename_now();
    int saved = errno;
    wlf_lock_release(lock, nullptr);
    errno = saved;
    return r;
}

namespace {

// Takes e off every number that lists it (a vfork child never gets here).
void unlist(Entry *e, int end) {
    for (int fd = 0; fd < end; ++fd)
        if (entry_of(g_fds[fd].load(std::memory_order_acquire)) == e) set_slot(fd, 0);
}

// One replacement at _exit, with both mutexes held: what commit() does,
// through the core's entry that frees nothing.
void commit_at_exit(Entry *e) {
    const char *target = e->name ? e->name : wlf_file_target(e->file);
    if (identity_superseded(e->file)) {
        detail::file_abandon(e->file);  // the program's own rename is F now (see commit)
        return;
    }
    if (g_children.load(std::memory_order_relaxed) && wlf_file_kind(e->file) == WLF_COMMIT_RENAME) {
        int own, lock_fd, dir_fd;
        detail::file_descriptors(e->file, &own, &lock_fd, &dir_fd);
        if (int error = child_error(own)) wlf_file_poison(e->file, error);
    }
    wlf_error err;
    err.code = 0;
    err.op = "";
    int kind = 0;
    if (int rc = detail::file_commit_at_exit(e->file, &kind, &err)) {
        // strerrorname_np: a constant string, where strerror may allocate.
        char why[128];
        const char *name = strerrorname_np(rc);
        snprintf(why, sizeof why, "%s failed (%s)", err.op && *err.op ? err.op : "commit", name ? name : "error");
        message("wrap_lockfile: '%s' not replaced at _exit, old content kept: %s\n", target, why);
        return;
    }
    log_line("wrap_lockfile: committed '%s'%s\n", target, kind == WLF_COMMIT_IN_PLACE ? " (in place, not atomic)" : "");
}

}  // namespace

void exit_pending() {
    // A vfork child has another pid and its parent's memory: it finds no
    // entry of its own and touches nothing.
    pid_t me = getpid();
    int end = g_fd_end.load(std::memory_order_acquire);
    bool mine = false;
    for (int fd = 0; fd < end && !mine; ++fd) {
        Entry *e = entry_of(g_fds[fd].load(std::memory_order_acquire));
        mine = e && e->opener == me;
    }
    if (!mine) return;
    // _exit may run in a signal handler: never wait for a mutex. This thread
    // interrupted inside the shim (its own g_mutex is recursive, so trylock
    // would succeed), or another thread holding either mutex: abandon, as a
    // kill would, but say so and leave nothing behind.
    const bool shim_locked = t_inside == 0 && pthread_mutex_trylock(&g_mutex) == 0;
    const bool registry_locked = shim_locked && detail::lock_registry_trylock();
    for (int fd = 0; fd < end; ++fd) {
        Entry *e = entry_of(g_fds[fd].load(std::memory_order_acquire));
        if (!e || e->opener != me) continue;
        unlist(e, end);
        if (registry_locked) {
            commit_at_exit(e);
            continue;
        }
        detail::file_abandon(e->file);
        message("wrap_lockfile: _exit while the shim was busy: '%s' not replaced, old content kept\n",
                e->name ? e->name : wlf_file_target(e->file), "");
    }
    if (registry_locked) detail::lock_registry_unlock();
    if (shim_locked) pthread_mutex_unlock(&g_mutex);
}

execve_fn libc_execve() {
    static std::atomic<execve_fn> slot{nullptr};
    return resolve(slot, "execve");
}

execve_fn libc_execvpe() {
    static std::atomic<execve_fn> slot{nullptr};
    return resolve(slot, "execvpe");
}

open_fn libc_open() {
    static std::atomic<open_fn> slot{nullptr};
    return resolve(slot, "open");
}

namespace {

bool env_has_preload(char *const *envp) {
    for (char *const *e = envp; e && *e; ++e)
        if (strncmp(*e, "LD_PRELOAD=", 11) == 0 && strstr(*e, "libwrap_lockfile_preload")) return true;
    return false;
}

// False when the program an exec is about to run would not load us: nobody
// would commit what we hand over.
bool program_loads_preload(const char *program, ExecLookup how) {
    if (how == ExecLookup::fd || !program || !*program) return true;
    char found[WLF_PATH_MAX];
    const char *path = program;
    if (how == ExecLookup::search && !strchr(program, '/')) {
        const char *dirs = getenv("PATH");
        if (!dirs) dirs = "/bin:/usr/bin";
        path = nullptr;
        for (const char *d = dirs; !path;) {
            const char *end = strchr(d, ':');
            size_t len = end ? static_cast<size_t>(end - d) : strlen(d);
            int n = snprintf(found, sizeof found, "%.*s%s%s", static_cast<int>(len), d, len ? "/" : "", program);
            if (n > 0 && static_cast<size_t>(n) < sizeof found && access(found, X_OK) == 0) path = found;
            if (!end) break;
            d = end + 1;
        }
        if (!path) return true;  // execvp will fail and say so
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
            for (int fd = 0; fd < kMaxFds; ++fd)
                if (entry_of(g_fds[fd].load()) == e) set_slot(fd, 0);
            g_handoff.entries[i] = nullptr;
            commit(e);
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
            for (int fd = 0; fd < kMaxFds; ++fd)
                if (entry_of(g_fds[fd].load()) == e) set_slot(fd, 0);
            commit(e);
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

using namespace wrap_lockfile::shim;

__attribute__((constructor)) static void wrap_lockfile_shim_init() { init_slow(); }

// Normal exit commits what this process still has pending (stdio first).
__attribute__((destructor)) static void wrap_lockfile_shim_fini() {
    // Replacements handed over by exec count even when this image has no
    // rules of its own.
    if (g_tracked.load() == 0) return;
    fflush(nullptr);
    // A child's stdout or stderr that is another process's pending temp:
    // a failed buffered write is reported to the opener.
    if (g_fds[1].load() == kInherited && ferror(stdout)) report_child_error(1, EIO);
    if (g_fds[2].load() == kInherited && ferror(stderr)) report_child_error(2, EIO);
    pid_t me = getpid();
    for (int fd = 0; fd < kMaxFds && g_tracked.load() > 0; ++fd) {
        Entry *e;
        {
            Guard g;
            e = entry_of(g_fds[fd].load());
            if (!e || e->opener != me) continue;
            for (int other = fd; other < kMaxFds; ++other)
                if (entry_of(g_fds[other].load()) == e) set_slot(other, 0);
        }
        // libc's own writes from stdio buffers do not pass through our
        // write(); the stream's error flag is the only trace of a failure.
        FILE *std_stream = fd == 1 ? stdout : fd == 2 ? stderr : nullptr;
        if ((e->stream && ferror(e->stream)) || (std_stream && ferror(std_stream)))
            wlf_file_poison(e->file, EIO);
        commit(e);
    }
}
