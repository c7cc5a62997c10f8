// Exclusive locks on "<target>.lock", the C API: flock with the verified
// cleanup protocol (posix/flock.cpp), an NFS-safe link() dotlock
// (dotlock.cpp), and a no-op backend.
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
// Nesting (lock_registry.cpp): a process-wide registry maps lock-file identity to the owning
// thread, so a thread that asks again for a lock it holds gets a reference
// instead of deadlocking against its own open file description. Handles
// asked for with no_nesting (the Python binding: the seed's fcntl lock
// excludes a second lock object even in one thread) bypass it.
#include "dotlock.hpp"
#include "handoff.hpp"
#include "internal.hpp"
#include "lock_held.hpp"
#include "lock_internal.hpp"
#include "lock_file.hpp"
#include "mount_info.hpp"
#include "recycle.hpp"
#include "shim_entry.hpp"
#include "sysio.hpp"
#include "wlf_config.h"

#include <fcntl.h>
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
using detail::Held;
using detail::LockFileOwner;
using detail::flock_acquire;
using detail::flock_release;
using detail::registry_add;
using detail::registry_drop;
using detail::registry_nest;
using detail::still_at_path;

namespace {

// ---- dotlock backend: dotlock.cpp ----

int dotlock_acquire(const char *path, const wlf_lock_options *opt, Held *h, wlf_error *err) {
    h->fd = -1;
    h->owner = LockFileOwner::created;  // linked from our own temporary
    struct stat seen;
    if (int rc = detail::dotlock_acquire(path, opt, &seen, err)) return rc;
    detail::note_lock_file(h, seen);
    return 0;
}

int dotlock_release(Held *h, wlf_error *err) {
    int e = detail::remove_if_still_ours(h);
    return e ? fail(err, e, WLF_STEP_UNLOCK, "unlink lock file", h->path) : 0;
}

std::atomic<bool> g_warned_none{false};


}  // namespace

int wrap_lockfile::detail::lock_path_of(const char *target, char *dst, size_t size) {
    // Absolute, so that a chdir before the release does not make it remove
    // somebody else's lock file.
    if (size < 6) return ENAMETOOLONG;
    size_t n = strlen(target);
    if (target[0] != '/') {
        if (int rc = detail::absolute_path(target, dst, size - 5)) return rc;
        n = strlen(dst);
    } else if (n + 6 > size) {
        return ENAMETOOLONG;
    } else {
        memcpy(dst, target, n);
    }
    memcpy(dst + n, ".lock", 6);
    // A name of 251 to 255 bytes has no "<name>.lock" in a directory entry
    // (NAME_MAX): then as much of the name as fits, cut at a character
    // (UTF-8), a '~' and a hash of the whole name: one lock file per name,
    // the same in every process (the name open(2) takes has no other lock).
    const char *slash = static_cast<const char *>(memrchr(dst, '/', n));
    size_t base = slash ? static_cast<size_t>(slash - dst) + 1 : 0;
    constexpr size_t kNameMax = 255, kHash = 16, kKeep = kNameMax - 1 - kHash - 5;
    if (n - base + 5 <= kNameMax) return 0;
    uint64_t h = 14695981039346656037ull;  // FNV-1a
    for (size_t i = base; i < n; ++i) h = (h ^ static_cast<unsigned char>(dst[i])) * 1099511628211ull;
    size_t keep = kKeep;
    while (keep > 0 && (static_cast<unsigned char>(dst[base + keep]) & 0xC0) == 0x80) --keep;
    if (base + keep + 1 + kHash + 6 > size) return ENAMETOOLONG;
    snprintf(dst + base + keep, size - base - keep, "~%016llx.lock", static_cast<unsigned long long>(h));
    return 0;
}

namespace {

int acquire(const char *target, const wlf_lock_options *opt_in, int fd_floor, bool probe, wlf_lock **out,
            wlf_error *err) {
    *out = nullptr;
    wlf_lock_options defaults;
    wlf_lock_options_init(&defaults);
    const wlf_lock_options *opt = opt_in ? opt_in : &defaults;
    if (!target || !*target) return fail(err, EINVAL, WLF_STEP_LOCK, "lock", target);

    auto *handle = detail::Recycled<wlf_lock>::take();
    if (!handle) return fail(err, ENOMEM, WLF_STEP_LOCK, "lock", target);

    if (opt->backend == WLF_LOCK_NONE) {
        if (!g_warned_none.exchange(true))
            dprintf(2, "wrap_lockfile: warning: locking disabled (backend 'none'), first for '%s'\n", target);
        handle->held = nullptr;
        *out = handle;
        return 0;
    }
    if (opt->backend != WLF_LOCK_FLOCK && opt->backend != WLF_LOCK_DOTLOCK && opt->backend != WLF_LOCK_AUTO) {
        detail::Recycled<wlf_lock>::give(handle);
        return fail(err, EINVAL, WLF_STEP_LOCK, "lock backend", target);
    }

    char path[WLF_PATH_MAX];
    if (int prc = detail::lock_path_of(target, path, sizeof path)) {
        detail::Recycled<wlf_lock>::give(handle);
        return fail(err, prc, WLF_STEP_LOCK, "lock path", target);
    }

    // Only now, when a lock is taken: the mount's choice (cached per mount).
    // The probe first guesses it from the directory's path (no statx), and
    // checks the guess by the lock file it then creates there.
    detail::DirMount guess{0, -1, false};
    const bool guessed = probe && detail::dir_mount_find(path, &guess) &&
                         (opt->backend != WLF_LOCK_AUTO || guess.backend >= 0);
    int backend = opt->backend;
    bool known = false;  // AUTO's answer came from mountinfo: the probe may remember it
    bool dir_append_only = guessed && guess.append_only;  // known only where AUTO asked the directory
    if (backend == WLF_LOCK_AUTO && !guessed) backend = detail::auto_lock_backend(path, nullptr, &known, &dir_append_only);
    else if (backend == WLF_LOCK_AUTO) backend = guess.backend;

    struct stat st;
    if (!opt->no_nesting && detail::registry_in_use() && lstat(path, &st) == 0) {
        if (Held *h = registry_nest(st.st_dev, st.st_ino)) {
            handle->held = h;
            *out = handle;
            return 0;
        }
    }

    auto *h = detail::Recycled<Held>::take();
    if (!h) {
        detail::Recycled<wlf_lock>::give(handle);
        return fail(err, ENOMEM, WLF_STEP_LOCK, "lock", target);
    }
    memcpy(h->path, path, strlen(path) + 1);
    h->backend = backend;
    // A lock file cannot be removed from an append-only directory: kept
    // without a word, and the target is written in place (no temp name
    // that would stay there too: begin_rename).
    h->keep = opt->keep_lock_file != 0 || dir_append_only;
    h->dir_append_only = dir_append_only;
    h->shared = false;
    h->owner = LockFileOwner::foreign;
    detail::forget_commit_check(h);
    h->mount = 0;
    h->committed_dev = 0;
    h->committed_ino = 0;
    h->owner_pid = getpid();
    h->owner_thread = pthread_self();
    h->depth = 1;
    h->next = nullptr;
    if (probe && backend != WLF_LOCK_FLOCK) {
        detail::Recycled<Held>::give(h);
        detail::Recycled<wlf_lock>::give(handle);
        return EINVAL;
    }
    int rc = backend == WLF_LOCK_FLOCK ? flock_acquire(path, opt, fd_floor, h, probe, err)
                                       : dotlock_acquire(path, opt, h, err);
    if (rc != 0) {
        detail::Recycled<Held>::give(h);
        detail::Recycled<wlf_lock>::give(handle);
        return rc;
    }
    if (probe && guessed && h->mount != guess.mount) {
        // Another mount there now (made or removed since the guess): the
        // probe's own file goes again, and the caller resolves and locks the
        // slow way, which asks the mount. On a dotlock mount the file would
        // read as a dotlock held, one no holder ever removes: it goes even
        // where lock files otherwise stay (a shared file system). Elsewhere
        // it goes as lock_release_probe lets it go.
        detail::dir_mount_forget(path);
        const bool dotlock_mount =
            opt->backend == WLF_LOCK_AUTO && detail::auto_lock_backend(path) == WLF_LOCK_DOTLOCK;
        if (dotlock_mount || !h->shared) h->keep = false;
        flock_release(h, nullptr);
        detail::Recycled<Held>::give(h);
        detail::Recycled<wlf_lock>::give(handle);
        return EAGAIN;
    }
    // Only an answer the mount gave is remembered (a FLOCK given because
    // mountinfo could not be read is asked again next time).
    if (probe && !guessed && (opt->backend != WLF_LOCK_AUTO || known))
        detail::dir_mount_store(path, {h->mount, opt->backend == WLF_LOCK_AUTO ? backend : -1, dir_append_only});
    // A handle of its own is nobody's to nest into: it stays out of the
    // registry (registry_drop lets it go at depth 0 all the same).
    if (!opt->no_nesting) registry_add(h);
    handle->held = h;
    *out = handle;
    return 0;
}

}  // namespace

extern "C" int wlf_lock_acquire(const char *target, const wlf_lock_options *opt, wlf_lock **out, wlf_error *err) {
    return acquire(target, opt, 0, false, out, err);
}

int wrap_lockfile::detail::lock_acquire_at_floor(const char *target, const wlf_lock_options *opt, int fd_floor,
                                                 wlf_lock **out, wlf_error *err) {
    return acquire(target, opt, fd_floor, false, out, err);
}

int wrap_lockfile::detail::lock_acquire_probe(const char *target, const wlf_lock_options *opt, int fd_floor,
                                              wlf_lock **out) {
    return acquire(target, opt, fd_floor, true, out, nullptr);
}

bool wrap_lockfile::detail::lock_has_file(const wlf_lock *lock) { return lock && lock->held; }
bool wrap_lockfile::detail::lock_dir_append_only(const wlf_lock *lock) {
    return lock && lock->held && lock->held->dir_append_only;
}

bool wrap_lockfile::detail::lock_file_still_ours(const wlf_lock *lock, int dir_fd) {
    if (!lock || !lock->held) return false;
    Held *h = lock->held;
    // The release right after removes the file through the same
    // descriptor, so a directory swapped at the path in between cannot turn
    // it into somebody else's. It may trust a check by path (one look, not
    // two); through the descriptor it looks again (flock_release).
    h->at_dir = dir_fd;
    h->at_path = still_at_path(h);
    if (!h->at_path) detail::forget_commit_check(h);
    return h->at_path;
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
    detail::Recycled<wlf_lock>::give(lock);
    if (!h) return 0;
    if (!known_owner && h->owner_pid != getpid()) {
        // Forked copy of a parent's handle: the parent still holds the lock.
        if (h->fd >= 0) detail::lock_fd_close(h->fd);
        return 0;
    }
    if (!registry_drop(h)) {
        // Still held for another handle: a check made for this one's
        // commit (and the descriptor it borrowed) is not that handle's.
        detail::forget_commit_check(h);
        return 0;
    }
    int rc = h->backend == WLF_LOCK_FLOCK ? flock_release(h, err) : dotlock_release(h, err);
    detail::Recycled<Held>::give(h);
    return rc;
}

}  // namespace

extern "C" int wlf_lock_release(wlf_lock *lock, wlf_error *err) { return release(lock, err, false); }

int wrap_lockfile::detail::lock_release_by_owner(wlf_lock *lock, wlf_error *err) { return release(lock, err, true); }

extern "C" const char *wlf_lock_path(const wlf_lock *lock) {
    return lock && lock->held ? lock->held->path : "";
}

extern "C" int wlf_lock_fd(const wlf_lock *lock) { return lock && lock->held ? lock->held->fd : -1; }

extern "C" intptr_t wlf_lock_handle(const wlf_lock *lock) { return wlf_lock_fd(lock); }

extern "C" int64_t wlf_lock_holder(const char *target) {
    char path[WLF_PATH_MAX];
    if (!target || detail::lock_path_of(target, path, sizeof path) != 0) return 0;
    return detail::lock_file_holder(path);
}

pid_t wrap_lockfile::detail::lock_file_holder(const char *lock_path) {
    struct stat st;
    if (lstat(lock_path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    if (pid_t pid = detail::flock_holder(st.st_dev, st.st_ino)) return pid;
#if !WLF_HAVE_PROC
    // Without /proc/locks a flocked file's holder is unknown (0), and its
    // content (a kept foreign lock file's) does not name the holder.
    int fd = open(lock_path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
        bool held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
        close(fd);
        if (held) return 0;
    }
#endif
    return detail::dotlock_holder_pid(lock_path, st);
}

namespace {
std::atomic<bool> g_refuse_ancestor_holders{false};

// The parent of `pid` from /proc/<pid>/stat (its fourth field, after the
// parenthesized name, which may hold anything), or 0.
pid_t parent_of(pid_t pid) {
    char path[32], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
    int fd = sys::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = sys::read(fd, buf, sizeof buf - 1);
    sys::close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')');
    int ppid = 0;
    return close_paren && sscanf(close_paren + 1, " %*c %d", &ppid) == 1 ? ppid : 0;
}
}  // namespace

void wrap_lockfile::detail::lock_refuse_ancestor_holders() { g_refuse_ancestor_holders.store(true); }

const char wrap_lockfile::detail::kLockHeldByProgram[] =
    "lock (held by this program itself, through a descriptor of its own)";

const char *wrap_lockfile::detail::lock_wait_never_ends(const char *lock_path, int fd) {
    if (!g_refuse_ancestor_holders.load(std::memory_order_relaxed)) return nullptr;
    if (detail::lock_file_held_by_program(fd)) return kLockHeldByProgram;
    pid_t h = detail::lock_file_holder(lock_path);
    if (h <= 0) return nullptr;
    pid_t p = getppid();
    for (int depth = 0; p > 1 && depth < 64; ++depth, p = parent_of(p))
        if (p == h) return "lock (held by a process this one descends from)";
    return nullptr;
}

pid_t wrap_lockfile::detail::lock_owner(const wlf_lock *lock) {
    return lock && lock->held ? lock->held->owner_pid : 0;
}

void wrap_lockfile::detail::lock_note_commit(wlf_lock *lock, dev_t dev, ino_t ino) {
    if (!lock || !lock->held) return;
    lock->held->committed_dev = dev;
    lock->held->committed_ino = ino;
}

bool wrap_lockfile::detail::lock_last_commit_was(const wlf_lock *lock, dev_t dev, ino_t ino) {
    return lock && lock->held && lock->held->committed_ino != 0 && lock->held->committed_dev == dev &&
           lock->held->committed_ino == ino;
}

bool wrap_lockfile::detail::lock_taken_by_this_thread(const wlf_lock *lock) {
    return !lock || !lock->held || pthread_equal(lock->held->owner_thread, pthread_self());
}

bool wrap_lockfile::detail::lock_keeps_file(const wlf_lock *lock) { return lock && lock->held && lock->held->keep; }

int wrap_lockfile::detail::lock_file_owner(const wlf_lock *lock) {
    return lock && lock->held ? static_cast<int>(lock->held->owner) : 0;
}
