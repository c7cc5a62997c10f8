// One freed block of a kind kept for the next one of that kind. The shim
// replaces one file after another, and a wlf_file (two paths) and a lock's
// Held (one path) are too large for malloc's per-thread caches: each would
// cost two trips through the arena per replacement. One slot per kind,
// taken and given back by an atomic exchange (from any thread); a block
// given while the slot is full goes back to free(). The blocks are plain
// malloc'd memory, so free() of a taken block, or give() of a malloc'd
// one, is fine too. Under AddressSanitizer nothing is kept, so that a use
// after the free is still caught.
#pragma once

#include <atomic>
#include <cstdlib>

namespace wrap_lockfile::detail {

template <class T>
class Recycled {
public:
    // Uninitialized storage for a T, or null (ENOMEM).
    static T *take() {
#ifndef __SANITIZE_ADDRESS__
        if (void *p = slot_.exchange(nullptr, std::memory_order_acquire)) return static_cast<T *>(p);
#endif
        return static_cast<T *>(malloc(sizeof(T)));
    }
    static void give(T *p) {
#ifndef __SANITIZE_ADDRESS__
        if (p) p = static_cast<T *>(slot_.exchange(p, std::memory_order_acq_rel));
#endif
        free(p);
    }

private:
    static inline std::atomic<void *> slot_{nullptr};
};

}  // namespace wrap_lockfile::detail
