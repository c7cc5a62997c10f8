// The hook DLL's pending replacements: each matched write-open is a
// wlf_file of the core, reached by the program through handles of its own
// (duplicates of the temp's); the replacement commits when the last of
// them is closed (CloseHandle), and answers path queries on its target
// meanwhile. One table, a critical section, and a count that the hooks
// test first so that a process with nothing pending pays nothing.
// README "Windows".
#pragma once

#include <wrap_lockfile/wrap_lockfile.h>

#include <windows.h>

namespace wrap_lockfile::dll {

constexpr size_t kMaxPending = 256;
constexpr size_t kMaxHandles = 16;

struct Pending {
    wlf_file *file;
    HANDLE handles[kMaxHandles];
    size_t handle_count;
    char *key;  // the target in match form (hook_config.hpp), malloc'd
};

// Replacements pending in this process: tested before taking the lock.
extern volatile LONG g_pending_count;

// Holds the table's lock for its lifetime.
class PendingLock {
public:
    PendingLock();
    ~PendingLock();
    PendingLock(const PendingLock &) = delete;
    PendingLock &operator=(const PendingLock &) = delete;
};

void pending_init();

// Under PendingLock: the entry holding handle `h` / the one for target
// `key`, or null.
Pending *pending_by_handle(HANDLE h);
Pending *pending_by_key(const char *key);

// Under PendingLock: a new entry for `file` reached by `h`; false when the
// table is full.
bool pending_add(wlf_file *file, HANDLE h, const char *key);
// Under PendingLock: one more / one less handle of `p`; pending_drop_handle
// returns true when it was the last one (the caller then commits).
bool pending_add_handle(Pending *p, HANDLE h);
bool pending_drop_handle(Pending *p, HANDLE h);
// Under PendingLock: removes `p`, returning its file.
wlf_file *pending_remove(Pending *p);

// At process exit: commits what is still pending (the program exited
// without closing), unless the table's lock is held by a thread the exit
// killed (then nothing is committed: the old content stays).
void pending_commit_all_at_exit();

}  // namespace wrap_lockfile::dll
