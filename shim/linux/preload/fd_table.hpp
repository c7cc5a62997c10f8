// The table of descriptors that refer to pending replacements (the pending-
// replacement registry, keyed by descriptor number), and the mutex its
// bookkeeping runs under.
//
// Model: for each matched write-open the core creates a pending replacement
// (lock + temp in the target's directory). The program's descriptor is the
// temp itself, at the lowest free number as open(2) would give; the core's
// own descriptors ("internal": a duplicate of the temp, the lock, the
// directory if fsync needs it) sit at high numbers. Program descriptors are
// counted per replacement; when the last one is closed in the opener, the
// core commits (commit.hpp). Forked children inherit descriptors but never
// commit.
//
// The inline part is what the fast paths in handlers.hpp read: one table
// load tells whether a descriptor is ours.
#pragma once

#include <pthread.h>
#include <stdio.h>
#include <sys/types.h>

#include "pending_registry.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <atomic>
#include <cstdint>

struct wlf_file;

namespace wrap_lockfile::shim {

constexpr int kMaxFds = 1 << 16;
constexpr uintptr_t kInternal = 1;  // a descriptor the shim itself owns
// A descriptor this process inherited (fork, then maybe exec) from the
// opener of a pending replacement: it does not commit, but reports the write
// errors it sees (child_errors.cpp).
constexpr uintptr_t kInherited = 2;
extern std::atomic<uintptr_t> g_fds[kMaxFds];
extern std::atomic<int> g_state;  // 0 not yet initialized, 1 no rules, 2 active
extern std::atomic<int> g_tracked;

// lifecycle.cpp: reads the configuration, once.
void init_slow();
inline bool active() {
    int s = g_state.load(std::memory_order_acquire);
    if (s == 0) {
        init_slow();
        s = g_state.load(std::memory_order_acquire);
    }
    return s == 2;
}
inline bool tracked(int fd) {
    return fd >= 0 && fd < kMaxFds && g_fds[fd].load(std::memory_order_acquire) != 0;
}

// The kernel handed out a number the table still lists: its close went
// unseen (a raw system call). What was pending on it is committed first
// (unseen_close.cpp).
void reclaim(int fd);
// A descriptor an interposed open or dup returns, served clean (docs/design.md, "Unseen lifetimes":
// a number reused after an unseen close must not drop the earlier
// replacement). One table load when the number is not listed.
// A failure with EMFILE is noted (note_crowded). by_shim: the shim's own
// refusal (a matched open, a dup2 onto its descriptor), not the kernel's.
void note_crowded(bool by_shim = false);
// A child may take descriptors of the pending replacements along (a fork,
// a spawn; an exec in a vfork child, whose memory is its parent's): what it
// writes after the opener's last close must land, so they are never kept
// from committing for being empty (note_crowded). inheritable_only (an
// exec): of this process's own, only those with a descriptor open across
// the exec; another process's (a vfork child's view of its parent's, whose
// dup2()s onto 0-2 are not listed for it) all.
void note_shared(bool inheritable_only);
inline int served(int fd) {
    if (fd >= 0) {
        if (fd < kMaxFds && g_fds[fd].load(std::memory_order_acquire) != 0) reclaim(fd);
    } else if (errno == EMFILE) {
        note_crowded();
    }
    return fd;
}

void attach(int newfd, int fd);
void drop_and_commit(int fd);
// dup2()/dup3() onto one of our own descriptors: move ours elsewhere first.
// False (errno set, a line on stderr) when there is no room to move it.
bool relocate_internal(int fd);
void poison(int fd, int error);
// Remembers the stdio stream over a tracked descriptor: at exit its error
// flag is the only trace of a failed buffered write.
void note_stream(int fd, FILE *stream);

// ---- for the out-of-line bookkeeping (the .cpp files of this object) ----

// Recursive: commit() takes it, and exec_prepare commits while holding it.
extern pthread_mutex_t g_mutex;

// How deep this thread is in the table's bookkeeping or a commit: an _exit
// from a signal handler that interrupted it must not commit (the table or
// the replacement may be half-updated; see exit_pending). Constant-
// initialized, initial-exec: reading it is one load, no TLS call.
extern __attribute__((tls_model("initial-exec"))) constinit thread_local int t_inside;

struct Inside {
    Inside() { ++t_inside; }
    ~Inside() { --t_inside; }
};

// g_mutex as the registry's lock policy: held means inside.
struct ShimLock {
    static void lock() {
        pthread_mutex_lock(&g_mutex);
        ++t_inside;
    }
    static void unlock() {
        --t_inside;
        pthread_mutex_unlock(&g_mutex);
    }
    static bool try_lock() {
        if (pthread_mutex_trylock(&g_mutex) != 0) return false;
        ++t_inside;
        return true;
    }
};
using Guard = pending::Held<ShimLock>;

// Set once another process may hold one of our temps' descriptors (a fork,
// a vfork child's exec, a hand-over from an image that had children): only
// then can a commit find a child's error mark on its temp.
extern std::atomic<bool> g_children;

// One past the highest number ever listed: bounds the scans for closes that
// went unseen.
extern std::atomic<int> g_fd_end;

void set_slot(int fd, uintptr_t v);

// g_fds as the registry's handle map: the word the fast paths load.
struct FdIndex {
    static constexpr uintptr_t kMarks = kInherited;
    static bool holds(int fd) { return fd >= 0 && fd < kMaxFds; }
    static uintptr_t load(int fd) { return g_fds[fd].load(std::memory_order_acquire); }
    static void store(int fd, uintptr_t v) { set_slot(fd, v); }
    static int end() { return g_fd_end.load(std::memory_order_acquire); }
};

struct PerReplacement {
    FILE *stream;  // the stdio stream fopen() made for it, if any
    // The program met EMFILE while this replacement held nothing
    // (note_crowded): kept from committing if it still holds nothing.
    bool crowded;
    // Another process may hold a descriptor of it (note_shared): what that
    // one writes after the opener's last close lands in the committed
    // file, so being empty then says nothing, and it is never marked.
    bool shared;
};

// The pending replacements (shim/common/pending_registry.hpp), keyed by the
// normalized path (for messages; null for one taken over across exec).
// As many entries as descriptor numbers: a program runs out of descriptors
// before the table is full. An entry commit() is working on stays in the
// table, unlisted, until commit() returns (its file may be freed by then):
// the walks here go by descriptor, reaching listed entries only.
using Registry = pending::PendingRegistry<int, pid_t, ShimLock, pending::IndexedHandles<FdIndex>, kMaxFds, PerReplacement>;
using Entry = Registry::Entry;
extern constinit Registry g_replacements;

inline Entry *entry_of(uintptr_t v) { return Registry::entry_of(v); }

// The target an entry's messages name: its key, or for one taken over across
// exec (no key) the core's target.
inline const char *target_of(const Entry *e) { return e->key ? e->key : wlf_file_target(e->file); }

// Replacements of one thread on one file share the lock descriptor (nested
// locks): an internal descriptor stays protected until its last user is done.
extern uint16_t g_internal_refs[kMaxFds];

// Marks (or unmarks) f's own descriptors as internal. Callers hold g_mutex.
void mark_internal(wlf_file *f, bool on);

// Removes fd from the table; returns its entry if that was the last program
// descriptor of a replacement this process opened (the caller commits it).
Entry *detach(int fd);
// Drops `last` (detach's answer, or nullptr) without committing it: its
// records, its descriptors' marks, its table entry, and the replacement.
void discard_detached(Entry *last);

}  // namespace wrap_lockfile::shim
