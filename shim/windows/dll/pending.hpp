// The hook DLL's pending replacements: the shared registry
// (shim/common/pending_registry.hpp) over HANDLEs. Each matched write-open is
// a wlf_file of the core, reached by the program through handles of its own
// (duplicates of the temp's); the replacement commits when the last of them
// is closed (CloseHandle), and answers path queries on its target (the key,
// in match form: hook_config.hpp) meanwhile. The hooks test the registry's
// count first, so that a process with nothing pending pays nothing.
// README "Windows".
#pragma once

#include "pending_registry.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <windows.h>

namespace wrap_lockfile::dll {

constexpr size_t kMaxPending = 256;
constexpr size_t kMaxHandles = 16;

// A critical section (recursive, as the registry needs), set up by
// pending_init().
struct PendingSection {
    static void lock();
    static void unlock();
    static bool try_lock();
};

// Opener: the process id (the handles a child inherits are its own DLL's
// business: its table starts empty).
using PendingTable = pending::PendingRegistry<HANDLE, DWORD, PendingSection, pending::HandleList<kMaxHandles>, kMaxPending>;
using Pending = PendingTable::Entry;
using PendingLock = PendingTable::Hold;
extern PendingTable g_replacements;

void pending_init();

// At process exit: commits what is still pending (the program exited
// without closing), unless the table's lock is held by a thread the exit
// killed (then nothing is committed: the old content stays).
void pending_commit_all_at_exit();

}  // namespace wrap_lockfile::dll
