// The registry of directories whose fsync durability `batch` defers
// (batch_sync.hpp; docs/design.md, "Batch durability").
//
// Bounded and allocation-free (the shim runs it in every program, also at
// _exit, maybe in a signal handler): kSlots directories, their paths in one
// fixed arena. A directory is known by (st_dev, st_ino) and found again by
// its absolute path, so the registry holds no descriptor (a program under
// `ulimit -n 16` must not run out because of us, and a program's
// closefrom() cannot take one away). Full: flushed early, never dropped.
#include "batch_sync.hpp"

#include "internal.hpp"
#include "sysio.hpp"

#include <pthread.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace wrap_lockfile::detail {

std::atomic<int> g_dirs_pending{0};


namespace {

constexpr int kSlots = 64;
constexpr size_t kArena = 16384;

struct Slot {
    dev_t dev;
    ino_t ino;
    unsigned off, len;  // the path in g_arena (not terminated)
};

pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
Slot g_slots[kSlots];
char g_arena[kArena];
int g_count = 0;
size_t g_used = 0;
pid_t g_owner = 0;      // the process that registered them (see register_dir)
bool g_exited = false;  // the exit-time flush ran: later commits sync at once
pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

// A forked child starts with nothing deferred: its parent syncs its own
// directories (syncing them twice would only cost), and a mutex another
// thread held at fork() must not be waited for.
void reset_in_child() {
    g_mutex = PTHREAD_MUTEX_INITIALIZER;
    g_count = 0;
    g_used = 0;
    g_dirs_pending.store(0, std::memory_order_relaxed);
}
void register_atfork() { pthread_atfork(nullptr, nullptr, reset_in_child); }

struct Guard {
    Guard() { pthread_mutex_lock(&g_mutex); }
    ~Guard() { pthread_mutex_unlock(&g_mutex); }
    Guard(const Guard &) = delete;
    Guard &operator=(const Guard &) = delete;
};

int sync_now(int fd, const char *path, size_t len, wlf_error *err) {
    if (sys::fsync(fd) == 0) return 0;
    int e = errno;
    char name[WLF_PATH_MAX];
    snprintf(name, sizeof name, "%.*s", static_cast<int>(len), path);
    return fail(err, e, WLF_STEP_FSYNC_DIR, "fsync directory", name);
}

// One slot: the directory found again at its path, and fsynced. Elsewhere
// now (renamed, replaced, unreachable): its file system is synced whole, by
// syncfs when the path still leads onto it, else by sync().
[[maybe_unused]] int sync_slot(const Slot &s, wlf_error *err) {
    char path[WLF_PATH_MAX];
    memcpy(path, g_arena + s.off, s.len);
    path[s.len] = '\0';
    int fd = sys::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    bool known = fd >= 0 && sys::fstat(fd, &st) == 0;
    int rc = 0;
    if (known && st.st_dev == s.dev && st.st_ino == s.ino) {
        rc = sync_now(fd, path, s.len, err);
    } else if (known && st.st_dev == s.dev) {
        if (sys::call(SYS_syncfs, fd) != 0) rc = fail(err, errno, WLF_STEP_FSYNC_DIR, "syncfs for directory", path);
    } else {
        sys::call(SYS_sync);  // cannot fail
    }
    if (fd >= 0) sys::close(fd);
    return rc;
}

// Callers hold g_mutex. A process that did not register them (a vfork
// child, which shares its parent's memory and commits nothing) leaves them
// to their owner.
int flush_locked(wlf_error *err) {
    if (g_count == 0 || g_owner != getpid()) return 0;
    int first = 0;
    wlf_error one;
    for (int i = 0; i < g_count; ++i) {
        one.code = 0;
        // The fault suite's mutation check (tests/faultfs): its crash-state
        // test must catch a build that forgets the deferred syncs.
#ifndef WLF_MUTANT_NO_BATCH_DIR_SYNC
        int rc = sync_slot(g_slots[i], &one);
#else
        int rc = 0;
#endif
        if (rc && !first) {
            first = rc;
            if (err) *err = one;
        }
    }
    // A failed directory fsync is reported, not retried: after EIO the
    // kernel may report success for what it did not write.
    g_count = 0;
    g_used = 0;
    g_dirs_pending.store(0, std::memory_order_release);
    return first;
}

}  // namespace

int defer_dir_sync(int dir_fd, const char *dir, size_t len, wlf_error *err) {
    struct stat st;
    if (dir[0] != '/' || len >= WLF_PATH_MAX || len > kArena || sys::fstat(dir_fd, &st) != 0)
        return sync_now(dir_fd, dir, len, err);
    Guard g;
    if (g_exited) return sync_now(dir_fd, dir, len, err);
    for (int i = 0; i < g_count; ++i)
        if (g_slots[i].dev == st.st_dev && g_slots[i].ino == st.st_ino) return 0;
    int rc = 0;
    pid_t me = getpid();
    if (g_count > 0 && g_owner != me) {
        // Inherited without the fork handler (a raw clone): sync them here
        // rather than lose them.
        g_owner = me;
        rc = flush_locked(err);
    }
    if (g_count == kSlots || g_used + len > kArena) rc = flush_locked(err);
    pthread_once(&g_atfork_once, register_atfork);
    g_owner = me;
    memcpy(g_arena + g_used, dir, len);
    g_slots[g_count++] = Slot{st.st_dev, st.st_ino, static_cast<unsigned>(g_used), static_cast<unsigned>(len)};
    g_used += len;
    g_dirs_pending.store(g_count, std::memory_order_release);
    return rc;
}

int sync_pending_dirs(wlf_error *err) {
    if (!dir_syncs_pending()) return 0;
    Guard g;
    return flush_locked(err);
}

int sync_pending_dirs_now(wlf_error *err) {
    if (!dir_syncs_pending()) return 0;
    if (pthread_mutex_trylock(&g_mutex) != 0) {
        if (g_owner == getpid()) sys::call(SYS_sync);
        return 0;
    }
    int rc = flush_locked(err);
    pthread_mutex_unlock(&g_mutex);
    return rc;
}

}  // namespace wrap_lockfile::detail

using namespace wrap_lockfile;

extern "C" int wlf_sync_pending(wlf_error *err) { return detail::sync_pending_dirs(err); }

// Normal exit (exit(), a return from main, dlclose): what is still deferred
// is made durable; nobody is left to tell of a failure but stderr. Commits
// after this point (another destructor's) sync at once.
// Priority 101: after the shim's own exit-time commits in the same object
// (default priority), which register their directories here.
__attribute__((destructor(101))) static void wlf_sync_pending_at_exit() {
    wlf_error err;
    err.code = 0;
    int rc;
    {
        detail::Guard g;
        rc = detail::flush_locked(&err);
        detail::g_exited = true;
    }
    if (rc) {
        char text[WLF_PATH_MAX + 256];
        char line[WLF_PATH_MAX + 300];
        int n = snprintf(line, sizeof line, "wrap_lockfile: at exit: %s\n", wlf_error_format(&err, text, sizeof text));
        if (n > 0) sys::write(2, line, static_cast<size_t>(n) < sizeof line ? static_cast<size_t>(n) : sizeof line - 1);
    }
}
