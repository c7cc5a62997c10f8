// The lock API on Windows: "<target>.lock" with the LockFileEx backend
// (WLF_LOCK_FLOCK asks for the system's native lock, which here is
// LockFileEx), the dotlock backend or none; the same nesting registry as
// the POSIX layer (a thread asking again for a lock it holds gets a
// reference; byte-range locks are per handle, so a second handle of the
// same thread would otherwise wait for itself forever).
//
// Lock files are kept on Windows (keep_lock_file is implied): deleting an
// open file only marks it delete-pending, new opens then fail or (Wine)
// still reach the doomed file, and there is no unlink-then-verify protocol
// that makes removal safe for a waiter that already has it open. README
// "Windows".
#include "lock_backends.hpp"

#include "lock_internal.hpp"  // lock_file_holder
#include "internal.hpp"
#include "nesting_list.hpp"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

using namespace wrap_lockfile;
using detail::fail;
using win::FileId;

namespace {

struct Held {
    int backend;
    HANDLE h;  // the byte-locked lock file, or the dotlock's delete-on-close handle
    FileId id;
    DWORD owner_thread;
    int depth;
    Held *next;
    char path[WLF_PATH_MAX];  // UTF-8, for wlf_lock_path and messages
};

SRWLOCK g_registry_lock = SRWLOCK_INIT;
detail::NestingList<Held> g_registry;
std::atomic<bool> g_warned_none{false};

struct RegistryGuard {
    RegistryGuard() { AcquireSRWLockExclusive(&g_registry_lock); }
    ~RegistryGuard() { ReleaseSRWLockExclusive(&g_registry_lock); }
};

Held *registry_nest(const FileId &id) {
    RegistryGuard g;
    DWORD self = GetCurrentThreadId();
    return g_registry.nest([&](const Held &h) { return h.id == id && h.owner_thread == self; });
}

void registry_add(Held *h) {
    RegistryGuard g;
    g_registry.add(h);
}

bool registry_drop(Held *h) {
    RegistryGuard g;
    return g_registry.drop(h);
}

// "<target>.lock", absolute: as UTF-8 for people and as a \\?\ path.
int lock_paths(const char *target, char *utf8, size_t size, win::WPath *wide) {
    if (int rc = win::full_path(target, wide)) return rc;
    if (int rc = wide->append(L".lock")) return rc;
    return win::to_utf8(wide->get(), utf8, size);
}

}  // namespace

struct wlf_lock {
    Held *held;
};

extern "C" int wlf_lock_acquire(const char *target, const wlf_lock_options *opt_in, wlf_lock **out, wlf_error *err) {
    *out = nullptr;
    wlf_lock_options defaults;
    wlf_lock_options_init(&defaults);
    const wlf_lock_options *opt = opt_in ? opt_in : &defaults;
    if (!target || !*target) return fail(err, EINVAL, WLF_STEP_LOCK, "lock", target);
    if (opt->backend != WLF_LOCK_FLOCK && opt->backend != WLF_LOCK_DOTLOCK && opt->backend != WLF_LOCK_NONE &&
        opt->backend != WLF_LOCK_AUTO)
        return fail(err, EINVAL, WLF_STEP_LOCK, "lock backend", target);
    // AUTO picks per mount on Linux; LockFileEx holds across SMB clients
    // (server-side byte-range locks), so on Windows it is the byte lock.
    const int backend = opt->backend == WLF_LOCK_AUTO ? WLF_LOCK_FLOCK : opt->backend;

    auto *handle = static_cast<wlf_lock *>(malloc(sizeof(wlf_lock)));
    if (!handle) return fail(err, ENOMEM, WLF_STEP_LOCK, "lock", target);
    handle->held = nullptr;
    if (backend == WLF_LOCK_NONE) {
        if (!g_warned_none.exchange(true))
            fprintf(stderr, "wrap_lockfile: warning: locking disabled (backend 'none'), first for '%s'\n", target);
        *out = handle;
        return 0;
    }

    auto *h = static_cast<Held *>(malloc(sizeof(Held)));
    win::WPath wpath;
    int prc = h ? lock_paths(target, h->path, sizeof h->path, &wpath) : ENOMEM;
    if (prc) {
        free(h);
        free(handle);
        return fail(err, prc, WLF_STEP_LOCK, "lock path", target);
    }
    if (!opt->no_nesting && g_registry.in_use()) {
        win::Handle look(win::open_for_query(wpath.get(), false));
        FileId id;
        if (look && win::file_id(look.get(), &id) == 0) {
            if (Held *nested = registry_nest(id)) {
                free(h);
                handle->held = nested;
                *out = handle;
                return 0;
            }
        }
    }
    h->backend = backend;
    h->owner_thread = GetCurrentThreadId();
    h->depth = 1;
    h->next = nullptr;
    const char *op = "lock";
    HANDLE raw = INVALID_HANDLE_VALUE;
    int rc = backend == WLF_LOCK_FLOCK ? win::byte_lock_acquire(wpath.get(), opt, &raw, &op)
                                            : win::dotlock_acquire(wpath.get(), opt, &raw, &op);
    if (rc == 0) {
        h->h = raw;
        rc = win::file_id(raw, &h->id);
        if (rc) {
            op = "examine lock file";
            if (h->backend == WLF_LOCK_FLOCK) win::byte_lock_release(raw);
            else CloseHandle(raw);
        }
    }
    if (rc) {
        fail(err, rc, WLF_STEP_LOCK, op, h->path);
        free(h);
        free(handle);
        return rc;
    }
    if (!opt->no_nesting) registry_add(h);
    handle->held = h;
    *out = handle;
    return 0;
}

extern "C" int wlf_lock_release(wlf_lock *lock, wlf_error *) {
    if (!lock) return 0;
    Held *h = lock->held;
    free(lock);
    if (!h || !registry_drop(h)) return 0;
    // The byte lock's file stays (see the top); the dotlock goes with its handle.
    if (h->backend == WLF_LOCK_FLOCK) win::byte_lock_release(h->h);
    else CloseHandle(h->h);
    free(h);
    return 0;
}

extern "C" const char *wlf_lock_path(const wlf_lock *lock) { return lock && lock->held ? lock->held->path : ""; }

// No descriptor holds a Windows lock: the handle is not a CRT descriptor.
extern "C" int wlf_lock_fd(const wlf_lock *) { return -1; }

// The byte-locked handle; a dotlock's handle (delete on close) holds no lock
// of the system's, so none, as for the POSIX dotlock.
extern "C" intptr_t wlf_lock_handle(const wlf_lock *lock) {
    if (!lock || !lock->held || lock->held->backend != WLF_LOCK_FLOCK) return -1;
    return reinterpret_cast<intptr_t>(lock->held->h);
}

extern "C" int64_t wlf_lock_holder(const char *target) {
    char path[WLF_PATH_MAX];
    win::WPath wide;
    if (!target || lock_paths(target, path, sizeof path, &wide) != 0) return 0;
    return detail::lock_file_holder(path);
}

pid_t wrap_lockfile::detail::lock_file_holder(const char *lock_path) {
    win::WPath wide;
    if (win::full_path(lock_path, &wide) != 0) return 0;
    if (DWORD pid = win::byte_lock_holder(wide.get())) return static_cast<pid_t>(pid);
    return static_cast<pid_t>(win::dotlock_holder(wide.get()));
}
