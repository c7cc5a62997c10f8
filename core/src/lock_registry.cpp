// The nesting registry: a process-wide list of the locks this process
// holds, by lock-file identity and owning thread, so that a thread asking
// again for a lock it holds gets a reference instead of deadlocking against
// its own open file description (lock.cpp).
#include "lock_held.hpp"
#include "nesting_list.hpp"
#include "shim_entry.hpp"

#include <pthread.h>
#include <unistd.h>

using namespace wrap_lockfile;
using detail::Held;

namespace {

pthread_mutex_t g_registry_mutex = PTHREAD_MUTEX_INITIALIZER;
// Its size lets an acquisition skip the nesting check (an lstat and two
// ids) when this process holds no lock at all.
detail::NestingList<Held> g_registry;

pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

void reset_registry_mutex() { g_registry_mutex = PTHREAD_MUTEX_INITIALIZER; }
void register_atfork() { pthread_atfork(nullptr, nullptr, reset_registry_mutex); }

struct RegistryGuard {
    RegistryGuard() { pthread_mutex_lock(&g_registry_mutex); }
    ~RegistryGuard() { pthread_mutex_unlock(&g_registry_mutex); }
};

}  // namespace

namespace wrap_lockfile::detail {

// Returns the held lock for this identity if this thread owns it (depth++).
Held *registry_nest(dev_t dev, ino_t ino) {
    RegistryGuard g;
    pid_t pid = getpid();
    pthread_t self = pthread_self();
    return g_registry.nest([&](const Held &h) {
        return h.dev == dev && h.ino == ino && h.owner_pid == pid && pthread_equal(h.owner_thread, self);
    });
}

void registry_add(Held *h) {
    // A child forked while another thread holds the registry must not wait
    // for that thread forever.
    pthread_once(&g_atfork_once, register_atfork);
    RegistryGuard g;
    g_registry.add(h);
}

// depth--; returns true when the caller must release the real lock.
bool registry_drop(Held *h) {
    RegistryGuard g;
    return g_registry.drop(h);
}

bool registry_in_use() { return g_registry.in_use(); }

Held *registry_share(int fd, dev_t dev, ino_t ino) {
    RegistryGuard g;
    pid_t pid = getpid();
    return g_registry.nest(
        [&](const Held &h) { return h.fd == fd && h.dev == dev && h.ino == ino && h.owner_pid == pid; });
}

void lock_registry_after_fork() { reset_registry_mutex(); }
bool lock_registry_trylock() { return pthread_mutex_trylock(&g_registry_mutex) == 0; }
void lock_registry_unlock() { pthread_mutex_unlock(&g_registry_mutex); }

}  // namespace wrap_lockfile::detail
