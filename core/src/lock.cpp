// Exclusive locks on "<target>.lock": flock with the verified cleanup
// protocol, an NFS-safe link() dotlock (dotlock.cpp), and a no-op backend.
//
// Ownership (lock_file.cpp): the flock backend writes nothing into a lock
// file and removes only one it created (or an earlier holder's, recognised
// by its marker); other people's X.lock files are locked as they are.
//
// Verified cleanup: the holder unlinks the lock file before unlocking, so a
// waiter may wake up holding a lock on an inode that no longer has a name.
// After every acquisition we therefore compare the descriptor's (dev, ino)
// with what the path names now and check st_nlink > 0; on mismatch we retry.
//
// Nesting: a process-wide registry maps lock-file identity to the owning
// thread, so a thread that asks again for a lock it holds gets a reference
// instead of deadlocking against its own open file description. Handles
// asked for with no_nesting (the Python binding: the seed's fcntl lock
// excludes a second lock object even in one thread) bypass it.
#include "dotlock.hpp"
#include "handoff.hpp"
#include "internal.hpp"
#include "lock_file.hpp"
#include "shared_fs.hpp"
#include "sysio.hpp"

#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

using namespace wrap_lockfile;
using detail::fail;
using detail::LockFileOwner;

namespace {

constexpr int kMaxVerifyRetries = 1000;

// The real lock, shared by nested handles of one thread.
struct Held {
    int backend;
    int fd;          // flock: the locked descriptor; else -1
    dev_t dev;
    ino_t ino;
    pid_t owner_pid;  // a forked child must not release its parent's lock
    pthread_t owner_thread;  // with owner_pid: pthread_self() costs no system call
    int depth;
    bool keep;              // keep_lock_file: never remove it
    bool shared;            // on a shared file system: the lock file stays (shared_fs.hpp)
    LockFileOwner owner;    // flock: whether the release may remove the file
    bool at_path;           // just checked: the path still names our file
    Held *next;
    char path[WLF_PATH_MAX];
};

pthread_mutex_t g_registry_mutex = PTHREAD_MUTEX_INITIALIZER;
Held *g_registry = nullptr;
// Entries in g_registry: lets an acquisition skip the nesting check (an
// lstat and two ids) when this process holds no lock at all.
std::atomic<int> g_registry_size{0};

pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

void reset_registry_mutex() { g_registry_mutex = PTHREAD_MUTEX_INITIALIZER; }
void register_atfork() { pthread_atfork(nullptr, nullptr, reset_registry_mutex); }

struct RegistryGuard {
    RegistryGuard() { pthread_mutex_lock(&g_registry_mutex); }
    ~RegistryGuard() { pthread_mutex_unlock(&g_registry_mutex); }
};

// Returns the held lock for this identity if this thread owns it (depth++).
Held *registry_nest(dev_t dev, ino_t ino) {
    RegistryGuard g;
    pid_t pid = getpid();
    pthread_t self = pthread_self();
    for (Held *h = g_registry; h; h = h->next) {
        if (h->dev == dev && h->ino == ino && h->owner_pid == pid && pthread_equal(h->owner_thread, self)) {
            ++h->depth;
            return h;
        }
    }
    return nullptr;
}

void registry_add(Held *h) {
    // A child forked while another thread holds the registry must not wait
    // for that thread forever.
    pthread_once(&g_atfork_once, register_atfork);
    RegistryGuard g;
    h->next = g_registry;
    g_registry = h;
    g_registry_size.fetch_add(1, std::memory_order_relaxed);
}

// depth--; returns true when the caller must release the real lock.
bool registry_drop(Held *h) {
    RegistryGuard g;
    if (--h->depth > 0) return false;
    for (Held **pp = &g_registry; *pp; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            g_registry_size.fetch_sub(1, std::memory_order_relaxed);
            break;
        }
    }
    return true;
}

// ---- flock backend ----

struct FlockTry {
    int fd;
};

int flock_try(void *ctx) {
    int fd = static_cast<FlockTry *>(ctx)->fd;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
    return errno == EWOULDBLOCK ? EWOULDBLOCK : errno;
}

// ---- shared file systems (README "Shared file systems") ----

// Whether a lookup of the lock file that failed with `err` is worth another
// round: ESTALE anywhere, ENOENT only where a cache can invent it.
bool retry_cached_lookup(detail::StaleRetry &stale, int err, const char *lock_path) {
    if (err == ENOENT && !detail::is_shared_fs_parent(lock_path)) return false;
    return stale.again(err);
}

// On a shared file system the lock file is never unlinked: a waiter on
// another client verifies (dev, ino, nlink) against cached attributes that
// can still vouch for the unlinked inode, and two holders result. Kept,
// every client locks the one inode. Called with the verified descriptor.
void keep_on_shared_fs(int fd, Held *h) {
    h->shared = detail::is_shared_fs_fd(fd);
    if (h->shared) h->keep = true;
}

// ---- end shared file systems ----

int flock_acquire(const char *path, const wlf_lock_options *opt, Held *h, bool probe, wlf_error *err) {
    // One deadline for all verification retries: a waiter that keeps waking
    // on lock files unlinked by a cycling holder must still time out on time.
    const bool timed = opt->has_timeout && opt->timeout > 0;
    const int64_t deadline = timed ? detail::monotonic_ns() + detail::timeout_ns(opt->timeout) : 0;
    // Without a timeout we wait as long as it takes, however often a busy
    // holder's unlink sends us back; a single try (timeout <= 0) gives up
    // after kMaxVerifyRetries such rounds, as contention.
    bool writable = false;
    detail::StaleRetry stale;
    for (int attempt = 0;; ++attempt) {
        if (opt->has_timeout && !timed && attempt >= kMaxVerifyRetries) return fail(err, EWOULDBLOCK, WLF_STEP_LOCK, "lock", path);
        int raw = -1;
        bool created = false;
        const char *op = nullptr;
        // `probe`: only a lock file this open creates will do (EEXIST otherwise).
        if (int rc = detail::lock_file_open(path, probe, writable, &raw, &created, &op)) {
            if (retry_cached_lookup(stale, rc, path)) continue;
            return fail(err, rc, WLF_STEP_LOCK, op, path);
        }
        sys::UniqueFd fd(raw);
        int rc;
        if (!opt->has_timeout) {
            while ((rc = flock(fd.get(), LOCK_EX)) != 0 && errno == EINTR && !opt->interruptible) {
            }
            rc = rc == 0 ? 0 : errno;
        } else {
            FlockTry ctx{fd.get()};
            double left = timed ? static_cast<double>(deadline - detail::monotonic_ns()) / 1e9 : opt->timeout;
            // Past the deadline on a retry: one last try, then ETIMEDOUT.
            rc = detail::poll_until(flock_try, &ctx, true, timed && left <= 0 ? 1e-9 : left);
        }
        if (rc == EWOULDBLOCK || rc == ETIMEDOUT) return fail(err, rc, WLF_STEP_LOCK, "lock", path);
        // NFS emulates flock with a byte-range lock, which wants a descriptor
        // open for writing: open the existing file read-write instead (that
        // changes nothing in it either).
        if (rc == EBADF && !created && !writable) {
            writable = true;
            continue;
        }
        if (rc == ESTALE && stale.again(rc)) continue;  // unlinked by another client
        if (rc != 0) return fail(err, rc, WLF_STEP_LOCK, "flock", path);

        struct stat fs, ps;
        if (fstat(fd.get(), &fs) != 0) {
            if (errno == ESTALE && stale.again(ESTALE)) continue;
            return fail(err, errno, WLF_STEP_LOCK, "fstat lock file", path);
        }
        if (lstat(path, &ps) != 0) {
            if (errno == ENOENT) continue;  // released and unlinked under us: retry
            if (errno == ESTALE && stale.again(ESTALE)) continue;
            return fail(err, errno, WLF_STEP_LOCK, "stat lock file", path);
        }
        if (fs.st_nlink == 0 || fs.st_dev != ps.st_dev || fs.st_ino != ps.st_ino) continue;

        // Locked and verified: a file we did not create is ours only if it
        // carries the marker (an earlier holder killed before its release).
        h->owner = created ? LockFileOwner::created
                   : detail::lock_file_is_marked(fs) ? LockFileOwner::stale
                                                     : LockFileOwner::foreign;
        keep_on_shared_fs(fd.get(), h);
        h->fd = detail::raise_fd(fd.release(), opt->fd_floor);
        h->dev = fs.st_dev;
        h->ino = fs.st_ino;
        return 0;
    }
}

// Whether h's path still names the file we hold: after its directory was
// renamed or replaced it may name somebody else's lock file, which must not
// be removed.
bool still_at_path(const Held *h) {
    struct stat st;
    return lstat(h->path, &st) == 0 && st.st_dev == h->dev && st.st_ino == h->ino;
}

// Whether the release removes h's file (while its path still names it): a
// dotlock always, a flock file if it is ours and not kept.
bool removes_file(const Held *h) {
    if (h->backend == WLF_LOCK_DOTLOCK) return true;
    return h->owner != LockFileOwner::foreign && !h->keep;
}

int flock_release(Held *h, wlf_error *err) {
    int rc = 0;
    if (removes_file(h) && (h->at_path || still_at_path(h)) && unlink(h->path) != 0 && errno != ENOENT &&
        h->owner == LockFileOwner::created)
        // An earlier holder's file that we may not remove (the directory
        // became read-only) stays: the lock itself was good.
        rc = fail(err, errno, WLF_STEP_UNLOCK, "unlink lock file", h->path);
    // Unlock the open file description itself: children that inherited the
    // descriptor must not keep the lock alive.
    flock(h->fd, LOCK_UN);
    sys::close(h->fd);
    return rc;
}

// ---- dotlock backend: dotlock.cpp ----

int dotlock_acquire(const char *path, const wlf_lock_options *opt, Held *h, wlf_error *err) {
    h->fd = -1;
    h->owner = LockFileOwner::created;  // linked from our own temporary
    return detail::dotlock_acquire(path, opt, &h->dev, &h->ino, err);
}

int dotlock_release(Held *h, wlf_error *err) { return detail::dotlock_release(h->path, h->dev, h->ino, err); }

std::atomic<bool> g_warned_none{false};

}  // namespace

struct wlf_lock {
    Held *held;
};

extern "C" void wlf_lock_options_init(wlf_lock_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->backend = WLF_LOCK_FLOCK;
}

namespace {

int acquire(const char *target, const wlf_lock_options *opt_in, bool probe, wlf_lock **out, wlf_error *err) {
    *out = nullptr;
    wlf_lock_options defaults;
    wlf_lock_options_init(&defaults);
    const wlf_lock_options *opt = opt_in ? opt_in : &defaults;
    if (!target || !*target) return fail(err, EINVAL, WLF_STEP_LOCK, "lock", target);

    auto *handle = static_cast<wlf_lock *>(malloc(sizeof(wlf_lock)));
    if (!handle) return fail(err, ENOMEM, WLF_STEP_LOCK, "lock", target);

    if (opt->backend == WLF_LOCK_NONE) {
        if (!g_warned_none.exchange(true))
            dprintf(2, "wrap_lockfile: warning: locking disabled (backend 'none'), first for '%s'\n", target);
        handle->held = nullptr;
        *out = handle;
        return 0;
    }
    if (opt->backend != WLF_LOCK_FLOCK && opt->backend != WLF_LOCK_DOTLOCK) {
        free(handle);
        return fail(err, EINVAL, WLF_STEP_LOCK, "lock backend", target);
    }

    // Absolute, so that a chdir before the release does not make it remove
    // somebody else's lock file.
    char path[WLF_PATH_MAX];
    int prc = detail::absolute_path(target, path, sizeof path - 5);
    if (!prc) memcpy(path + strlen(path), ".lock", 6);
    if (prc) {
        free(handle);
        return fail(err, prc, WLF_STEP_LOCK, "lock path", target);
    }

    struct stat st;
    if (!opt->no_nesting && g_registry_size.load(std::memory_order_relaxed) > 0 && lstat(path, &st) == 0) {
        if (Held *h = registry_nest(st.st_dev, st.st_ino)) {
            handle->held = h;
            *out = handle;
            return 0;
        }
    }

    auto *h = static_cast<Held *>(malloc(sizeof(Held)));
    if (!h) {
        free(handle);
        return fail(err, ENOMEM, WLF_STEP_LOCK, "lock", target);
    }
    memcpy(h->path, path, strlen(path) + 1);
    h->backend = opt->backend;
    h->keep = opt->keep_lock_file != 0;
    h->shared = false;
    h->owner = LockFileOwner::foreign;
    h->at_path = false;
    h->owner_pid = getpid();
    h->owner_thread = pthread_self();
    h->depth = 1;
    h->next = nullptr;
    if (probe && opt->backend != WLF_LOCK_FLOCK) {
        free(h);
        free(handle);
        return EINVAL;
    }
    int rc = opt->backend == WLF_LOCK_FLOCK ? flock_acquire(path, opt, h, probe, err)
                                            : dotlock_acquire(path, opt, h, err);
    if (rc != 0) {
        free(h);
        free(handle);
        return rc;
    }
    // A handle of its own is nobody's to nest into: it stays out of the
    // registry (registry_drop lets it go at depth 0 all the same).
    if (!opt->no_nesting) registry_add(h);
    handle->held = h;
    *out = handle;
    return 0;
}

}  // namespace

extern "C" int wlf_lock_acquire(const char *target, const wlf_lock_options *opt, wlf_lock **out, wlf_error *err) {
    return acquire(target, opt, false, out, err);
}

int wrap_lockfile::detail::lock_acquire_probe(const char *target, const wlf_lock_options *opt, wlf_lock **out) {
    return acquire(target, opt, true, out, nullptr);
}

bool wrap_lockfile::detail::lock_has_file(const wlf_lock *lock) { return lock && lock->held; }

bool wrap_lockfile::detail::lock_file_still_ours(const wlf_lock *lock) {
    if (!lock || !lock->held) return false;
    // The release right after may trust this answer (one lstat, not two).
    return lock->held->at_path = still_at_path(lock->held);
}

void wrap_lockfile::detail::lock_release_probe(wlf_lock *lock) {
    // The probe's own file (it locks no other) goes even with keep_lock_file:
    // it is not the lock file of any target. A nested handle only drops its
    // reference.
    // On a shared file system it stays, like every lock file there.
    if (lock && lock->held && lock->held->depth == 1 && !lock->held->shared) lock->held->keep = false;
    wlf_lock_release(lock, nullptr);
}

namespace {

int release(wlf_lock *lock, wlf_error *err, bool known_owner) {
    if (!lock) return 0;
    Held *h = lock->held;
    free(lock);
    if (!h) return 0;
    if (!known_owner && h->owner_pid != getpid()) {
        // Forked copy of a parent's handle: the parent still holds the lock.
        if (h->fd >= 0) sys::close(h->fd);
        return 0;
    }
    if (!registry_drop(h)) return 0;
    int rc = h->backend == WLF_LOCK_FLOCK ? flock_release(h, err) : dotlock_release(h, err);
    free(h);
    return rc;
}

}  // namespace

extern "C" int wlf_lock_release(wlf_lock *lock, wlf_error *err) { return release(lock, err, false); }

int wrap_lockfile::detail::lock_release_by_owner(wlf_lock *lock, wlf_error *err) { return release(lock, err, true); }

extern "C" const char *wlf_lock_path(const wlf_lock *lock) {
    return lock && lock->held ? lock->held->path : "";
}

extern "C" int wlf_lock_fd(const wlf_lock *lock) { return lock && lock->held ? lock->held->fd : -1; }

extern "C" pid_t wlf_lock_holder(const char *target) {
    char path[WLF_PATH_MAX];
    if (!target || detail::absolute_path(target, path, sizeof path - 5) != 0) return 0;
    memcpy(path + strlen(path), ".lock", 6);
    return detail::lock_file_holder(path);
}

pid_t wrap_lockfile::detail::lock_file_holder(const char *lock_path) {
    struct stat st;
    if (lstat(lock_path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    if (pid_t pid = detail::flock_holder(st.st_dev, st.st_ino)) return pid;
    return detail::dotlock_holder_pid(lock_path, st);
}

int wrap_lockfile::detail::lock_adopt(int fd, const char *lock_path, bool keep, int owner, wlf_lock **out) {
    if (owner < static_cast<int>(LockFileOwner::foreign) || owner > static_cast<int>(LockFileOwner::stale))
        return EINVAL;
    struct stat fs, ps;
    if (fstat(fd, &fs) != 0) return errno;
    // Only a descriptor that still names the lock file is the lock.
    if (lstat(lock_path, &ps) != 0) return errno;
    if (fs.st_dev != ps.st_dev || fs.st_ino != ps.st_ino || fs.st_nlink == 0) return ESTALE;
    size_t n = strlen(lock_path);
    if (n + 1 > WLF_PATH_MAX) return ENAMETOOLONG;
    auto *handle = static_cast<wlf_lock *>(malloc(sizeof(wlf_lock)));
    if (!handle) return ENOMEM;
    {
        // Two replacements of one file handed over together share the lock
        // descriptor: one record, two references (else the first commit
        // would unlock, and the second close a descriptor twice).
        RegistryGuard g;
        pid_t pid = getpid();
        for (Held *h = g_registry; h; h = h->next) {
            if (h->fd == fd && h->dev == fs.st_dev && h->ino == fs.st_ino && h->owner_pid == pid) {
                ++h->depth;
                handle->held = h;
                *out = handle;
                return 0;
            }
        }
    }
    auto *h = static_cast<Held *>(malloc(sizeof(Held)));
    if (!handle || !h) {
        free(handle);
        free(h);
        return ENOMEM;
    }
    memcpy(h->path, lock_path, n + 1);
    h->backend = WLF_LOCK_FLOCK;
    h->fd = fd;
    h->dev = fs.st_dev;
    h->ino = fs.st_ino;
    h->owner_pid = getpid();
    h->owner_thread = pthread_self();
    h->depth = 1;
    h->keep = keep;
    keep_on_shared_fs(fd, h);  // a lock handed over across exec stays shared
    h->owner = static_cast<LockFileOwner>(owner);
    h->at_path = false;
    h->next = nullptr;
    registry_add(h);
    handle->held = h;
    *out = handle;
    return 0;
}

pid_t wrap_lockfile::detail::lock_owner(const wlf_lock *lock) {
    return lock && lock->held ? lock->held->owner_pid : 0;
}

bool wrap_lockfile::detail::lock_keeps_file(const wlf_lock *lock) { return lock && lock->held && lock->held->keep; }

int wrap_lockfile::detail::lock_file_owner(const wlf_lock *lock) {
    return lock && lock->held ? static_cast<int>(lock->held->owner) : 0;
}

void wrap_lockfile::detail::lock_abandon(const wlf_lock *lock) {
    const Held *h = lock ? lock->held : nullptr;
    if (!h || h->owner_pid != getpid()) return;
    // A dotlock is its file; a flock file goes if it is ours and not kept.
    // Unlink only while the name is still our inode (so a second call, or a
    // lock file somebody else has created since, is left alone), then unlock.
    if (removes_file(h) && still_at_path(h)) unlink(h->path);
    if (h->fd >= 0) flock(h->fd, LOCK_UN);
}

void wrap_lockfile::detail::lock_registry_after_fork() { reset_registry_mutex(); }

bool wrap_lockfile::detail::lock_held_by_program(const char *target) {
    char path[WLF_PATH_MAX];
    if (!target || detail::absolute_path(target, path, sizeof path - 5) != 0) return false;
    memcpy(path + strlen(path), ".lock", 6);
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) return false;
    const pid_t me = getpid();
    if (detail::flock_holder(st.st_dev, st.st_ino) != me) return false;
    // Held by this process, but maybe by the library itself (another
    // thread's pending replacement): then the wait is a real one.
    RegistryGuard g;
    for (const Held *h = g_registry; h; h = h->next)
        if (h->dev == st.st_dev && h->ino == st.st_ino && h->owner_pid == me) return false;
    return true;
}

bool wrap_lockfile::detail::lock_registry_trylock() { return pthread_mutex_trylock(&g_registry_mutex) == 0; }
void wrap_lockfile::detail::lock_registry_unlock() { pthread_mutex_unlock(&g_registry_mutex); }

void wrap_lockfile::detail::lock_release_at_exit(const wlf_lock *lock) {
    Held *h = lock ? lock->held : nullptr;
    if (!h || h->owner_pid != getpid()) return;
    // A reference of two replacements sharing the lock: the other one's
    // commit, still to come, releases it.
    if (h->depth > 1) {
        --h->depth;
        return;
    }
    lock_abandon(lock);
}

void wrap_lockfile::detail::lock_relocate_fd(wlf_lock *lock, int from, int to) {
    if (lock && lock->held && lock->held->fd == from) lock->held->fd = to;
}
