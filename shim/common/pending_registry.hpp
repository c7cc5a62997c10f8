// The pending replacements of one process, as both shims keep them
// (docs/design.md, "The shim" and "Windows"): each is a wlf_file of the core
// that the program reaches through handles of its own (descriptors on Linux,
// HANDLEs on Windows). A matched open adds an entry with its first handle; a
// dup (dup2, DuplicateHandle) adds one more; the last handle closed in the
// process that opened it tells the caller to commit, a close in any other
// process (a vfork child sharing the table) changes nothing; a full table
// refuses and changes nothing; at exit, what is still pending is walked once
// per entry. Lookup by handle and by target key.
//
// Template parameters:
//   Handle   int (Linux descriptors) or HANDLE.
//   Opener   the identity of the process that alone commits (pid_t, DWORD).
//   Lock     static lock() / unlock() / try_lock() of a recursive lock.
//            Callers hold it (Hold) around the operations, as they do around
//            the steps of one close; only try_for_each takes it itself.
//            by_handle on an index is also read without it by fast paths.
//   Map      how a handle finds its entry: HandleList<N> (each entry lists
//            its handles; by_handle looks through the entries) or
//            IndexedHandles<Index> (small numbers, an O(1) table the caller
//            owns and its fast paths read with one load).
//   kCapacity  entries at most (fixed storage: nothing allocated but the key).
//   Extra    fields a platform adds to each entry (Linux: the stdio stream).
//
// Built under the C-ABI layer's constraints (the preload object links it
// into C programs): no new/delete, no exceptions; the key is malloc'd. A
// program replaces one file after another: a key that fits kKeyBlock gets a
// block of that size, and the block a remove() frees is kept for the next
// add() (one spare, as core/src/recycle.hpp keeps the core's blocks), so a
// replacement after the first allocates nothing here.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

struct wlf_file;

namespace wrap_lockfile::pending {

// Holds Lock for its lifetime.
template <class Lock>
class Held {
public:
    Held() { Lock::lock(); }
    ~Held() { Lock::unlock(); }
    Held(const Held &) = delete;
    Held &operator=(const Held &) = delete;
};

// Each entry lists its handles itself, N at most: for handles that are not
// small numbers (Windows HANDLEs).
template <size_t N>
struct HandleList {
    static constexpr bool kIndexed = false;
    template <class Handle>
    struct PerEntry {
        Handle list[N];
        size_t n;
    };
};

// The handles are small numbers and Index maps each to one word: 0, one of
// Index's own marks (values up to Index::kMarks, never an entry), or the
// entry's address. Index provides:
//   static constexpr uintptr_t kMarks;
//   static bool holds(int h);              whether h has a word
//   static uintptr_t load(int h);          its word
//   static void store(int h, uintptr_t);   sets it
//   static int end();                      one past the highest h ever set
template <class Index>
struct IndexedHandles {
    static constexpr bool kIndexed = true;
    template <class Handle>
    struct PerEntry {};
};

struct NoExtra {};

template <class Handle, class Opener, class Lock, class Map, size_t kCapacity, class Extra = NoExtra>
class PendingRegistry {
public:
    struct Entry : Extra {
        wlf_file *file;  // null: the slot is free
        int refs;        // the program's handles that reach it
        Opener opener;   // only this process's last close commits
        char *key;       // the target as add() was given it (malloc'd), or null
        [[no_unique_address]] typename Map::template PerEntry<Handle> handles;
    };
    using Hold = Held<Lock>;

    // A new entry for `file`, opened by `opener`, with no handle yet (an exec
    // hand-over adds them one by one); `key` is copied. Null when the table is
    // full or the copy cannot be made: nothing is added then.
    Entry *add(wlf_file *file, const char *key, Opener opener) {
        size_t i = 0;
        while (i < end_ && entries_[i].file) ++i;
        if (i == kCapacity) return nullptr;
        char *copy = nullptr;
        if (key) {
            size_t n = strlen(key) + 1;
            copy = n <= kKeyBlock ? take_block() : static_cast<char *>(malloc(n));
            if (!copy) return nullptr;
            memcpy(copy, key, n);
        }
        Entry &e = entries_[i];
        e = Entry{};
        e.file = file;
        e.opener = opener;
        e.key = copy;
        if (i == end_) ++end_;
        count_.fetch_add(1, std::memory_order_release);
        return &e;
    }

    // The same, reached by handle h: the open itself. Null (nothing added)
    // also when h cannot be listed.
    Entry *add(wlf_file *file, Handle h, const char *key, Opener opener) {
        if constexpr (Map::kIndexed) {
            if (!Index<Map>::holds(h)) return nullptr;
        }
        Entry *e = add(file, key, opener);
        if (e) add_handle(e, h);  // a new entry has room for one, and h can be listed
        return e;
    }

    // One more handle of e (a dup in the opener); false when e lists as many
    // as it can or h cannot be listed: nothing changes then.
    bool add_handle(Entry *e, Handle h) {
        if constexpr (Map::kIndexed) {
            if (!Index<Map>::holds(h)) return false;
            Index<Map>::store(h, reinterpret_cast<uintptr_t>(e));
        } else {
            if (e->handles.n == sizeof e->handles.list / sizeof e->handles.list[0]) return false;
            e->handles.list[e->handles.n++] = h;
        }
        ++e->refs;
        return true;
    }

    // Handle h closed in process `me`. Returns its entry when that was the
    // entry's last handle in its opener: the caller commits it, then
    // remove()s it. Null otherwise; a handle of another opener's entry (the
    // table a vfork child shares with its parent) is left as it was.
    Entry *drop_handle(Handle h, Opener me) {
        Entry *e = by_handle(h);
        if (!e || !(e->opener == me)) return nullptr;
        if constexpr (Map::kIndexed) {
            Index<Map>::store(h, 0);
        } else {
            for (size_t i = 0; i < e->handles.n; ++i) {
                if (e->handles.list[i] != h) continue;
                e->handles.list[i] = e->handles.list[--e->handles.n];
                break;
            }
        }
        return --e->refs == 0 ? e : nullptr;
    }

    // The entry handle h reaches, or null.
    Entry *by_handle(Handle h) {
        if constexpr (Map::kIndexed) {
            return Index<Map>::holds(h) ? entry_of(Index<Map>::load(h)) : nullptr;
        } else {
            for (size_t i = 0; i < end_; ++i) {
                Entry &e = entries_[i];
                if (!e.file) continue;
                for (size_t k = 0; k < e.handles.n; ++k)
                    if (e.handles.list[k] == h) return &e;
            }
            return nullptr;
        }
    }

    // The entry whose key is `key`, or null.
    Entry *by_key(const char *key) {
        for (size_t i = 0; i < end_; ++i)
            if (entries_[i].file && entries_[i].key && strcmp(entries_[i].key, key) == 0) return &entries_[i];
        return nullptr;
    }

    // The entry of `file`, or null.
    Entry *by_file(const wlf_file *file) {
        for (size_t i = 0; i < end_; ++i)
            if (file && entries_[i].file == file) return &entries_[i];
        return nullptr;
    }

    // Takes e off every handle still listing it (a commit at exit or before
    // an exec, whatever the program still holds). Allocates nothing and
    // frees nothing: safe where remove() is not (an _exit in a signal
    // handler).
    void unlist(Entry *e) {
        if constexpr (Map::kIndexed) {
            const int end = Index<Map>::end();
            for (int h = 0; h < end; ++h)
                if (Index<Map>::load(h) == reinterpret_cast<uintptr_t>(e)) Index<Map>::store(h, 0);
        } else {
            e->handles.n = 0;
        }
        e->refs = 0;
    }

    // Frees e's slot and key; returns its file (now the caller's alone).
    // Handles still listing e are unlisted first.
    wlf_file *remove(Entry *e) {
        if (e->refs != 0) unlist(e);
        wlf_file *f = e->file;
        give_key(e->key);
        *e = Entry{};
        while (end_ > 0 && !entries_[end_ - 1].file) --end_;
        count_.fetch_sub(1, std::memory_order_release);
        return f;
    }

    // Calls fn(Entry *) for each entry once, in the order they were added
    // into free slots; fn may remove() the entry it is given.
    template <class Fn>
    void for_each(Fn &&fn) {
        for (size_t i = 0, end = end_; i < end; ++i)
            if (entries_[i].file) fn(&entries_[i]);
    }
    // The same at exit, where waiting could hang: false (nothing walked) when
    // the lock is held elsewhere, perhaps by a thread the exit killed.
    template <class Fn>
    bool try_for_each(Fn &&fn) {
        if (!Lock::try_lock()) return false;
        for_each(fn);
        Lock::unlock();
        return true;
    }

    // A forked child's copy: the parent's entries are the parent's to
    // commit. Forgets them without freeing (the child may not own the
    // allocator's state either).
    void forget_all() {
        for (size_t i = 0; i < end_; ++i) entries_[i] = Entry{};
        end_ = 0;
        count_.store(0, std::memory_order_release);
    }

    // Entries pending; read without the lock by fast paths that have
    // nothing to do when it is 0.
    size_t count() const { return count_.load(std::memory_order_acquire); }

    // The entry an index word names (Map = IndexedHandles), or null for 0
    // and the index's marks.
    static Entry *entry_of(uintptr_t word) {
        if constexpr (Map::kIndexed) {
            return word > Index<Map>::kMarks ? reinterpret_cast<Entry *>(word) : nullptr;
        } else {
            return nullptr;
        }
    }

private:
    // Keys up to this size (with the NUL) come in blocks of it: most paths.
    static constexpr size_t kKeyBlock = 256;

    // The spare block, or a new one; null (ENOMEM) when malloc fails.
    char *take_block() {
#ifndef __SANITIZE_ADDRESS__
        if (char *p = spare_.exchange(nullptr, std::memory_order_acquire)) return p;
#endif
        return static_cast<char *>(malloc(kKeyBlock));
    }
    // A key's memory back: a block becomes the spare (a use after the free
    // is still caught under AddressSanitizer: nothing is kept there).
    void give_key(char *key) {
#ifndef __SANITIZE_ADDRESS__
        if (key && strlen(key) + 1 <= kKeyBlock) key = spare_.exchange(key, std::memory_order_acq_rel);
#endif
        free(key);
    }

    template <class M>
    struct IndexOf;
    template <class I>
    struct IndexOf<IndexedHandles<I>> {
        using type = I;
    };
    template <class M>
    using Index = typename IndexOf<M>::type;

    // Zero-initialized in static storage, before any constructor runs.
    Entry entries_[kCapacity]{};
    size_t end_ = 0;  // one past the last slot in use
    std::atomic<size_t> count_{0};
    // Exchanged atomically, so that no caller's lock is assumed. A forked
    // child inherits it as its own memory (forget_all leaves it).
    std::atomic<char *> spare_{nullptr};
};

}  // namespace wrap_lockfile::pending
