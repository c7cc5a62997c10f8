// The list behind the nesting registry, shared by the POSIX and the Windows
// lock layers (docs/design.md "Locks"): held locks linked through their
// `next`, each with a `depth`. The platform supplies the node type, what
// "the same lock of the same owner" means, and the mutex around every call.
// Header-only and allocation-free: the C-ABI layer's rules hold.
#pragma once

#include <atomic>

namespace wrap_lockfile::detail {

template <class Held>
struct NestingList {
    Held *head = nullptr;
    // Entries in the list: lets an acquisition skip the nesting check when
    // this process holds no lock at all (read without the mutex).
    std::atomic<int> size{0};

    // The entry `same` accepts, with depth+1; nullptr if there is none.
    template <class Same>
    Held *nest(Same same) {
        for (Held *h = head; h; h = h->next) {
            if (same(*h)) {
                ++h->depth;
                return h;
            }
        }
        return nullptr;
    }

    void add(Held *h) {
        h->next = head;
        head = h;
        size.fetch_add(1, std::memory_order_relaxed);
    }

    // depth-1; true (and h unlinked) when the caller must release the lock.
    bool drop(Held *h) {
        if (--h->depth > 0) return false;
        for (Held **pp = &head; *pp; pp = &(*pp)->next) {
            if (*pp == h) {
                *pp = h->next;
                size.fetch_sub(1, std::memory_order_relaxed);
                break;
            }
        }
        return true;
    }

    bool in_use() const { return size.load(std::memory_order_relaxed) > 0; }
};

}  // namespace wrap_lockfile::detail
