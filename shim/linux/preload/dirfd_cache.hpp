// The absolute path behind a directory descriptor, for openat(dirfd, ...)
// and friends: the kernel's answer (readlink of /proc/self/fd/N) costs a
// walk through /proc on every call, and programs such as tar open every
// file relative to one directory descriptor.
//
// A small direct-mapped cache remembers the last answer per slot. It is
// never trusted on its own: a hit is used only when the descriptor and the
// cached path name the same directory right now (fstat of the descriptor,
// stat of the path: same device and inode), so a descriptor closed or
// replaced behind the shim's back (closedir, a raw system call) or a
// directory renamed since can never redirect a write; it costs a readlink
// again instead. The interposed close, dup2/dup3 and close_range drop the
// slots of the numbers they end, so a reused number usually misses at once.
//
// Async-signal-safe: no lock is waited for (a slot busy in an interrupted
// thread is a miss) and nothing is allocated.
#pragma once

#include <atomic>
#include <cstddef>

namespace wrap_lockfile::shim {

struct DirSlot {
    std::atomic<int> fd{-1};  // the descriptor the path was read for; -1: empty
    std::atomic<bool> busy{false};
    size_t len = 0;
    char path[4096] = {};
};

constexpr unsigned kDirSlots = 4;
extern DirSlot g_dir_slots[kDirSlots];

inline DirSlot &dir_slot(int fd) { return g_dir_slots[static_cast<unsigned>(fd) % kDirSlots]; }

// fd no longer names what it named (closed, or dup2'ed over): a load and a
// compare, nothing more, on every interposed close.
inline void dirfd_forget(int fd) {
    if (fd < 0) return;
    DirSlot &s = dir_slot(fd);
    int cur = fd;
    if (s.fd.load(std::memory_order_relaxed) == fd) s.fd.compare_exchange_strong(cur, -1);
}

// The same for every number in [first, last] (close_range, closefrom).
void dirfd_forget_range(unsigned first, unsigned last);

// The absolute path of the directory `dirfd` names, into out[size] (no
// trailing '/' added); 0 or errno (ENAMETOOLONG when it does not fit).
int dirfd_path(int dirfd, char *out, size_t size);

}  // namespace wrap_lockfile::shim
