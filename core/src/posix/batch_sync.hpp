// Durability `batch` (docs/design.md, "Batch durability"): each temp is
// fsynced before its name appears, so every replacement stays crash-atomic;
// the fsync of the directory that received the name is deferred to a
// bounded, allocation-free registry of touched directories and done once per
// directory at wlf_sync_pending() (the shim: the program's fsync, fdatasync,
// sync, syncfs, exec and exit) and at normal process exit.
#pragma once

#include <wrap_lockfile/wrap_lockfile.h>

#include <atomic>
#include <cstddef>

namespace wrap_lockfile::detail {

// Directories registered and not yet synced: the hooks test this (one load).
extern std::atomic<int> g_dirs_pending;
inline bool dir_syncs_pending() { return g_dirs_pending.load(std::memory_order_acquire) > 0; }

// The replacement just renamed into the directory `dir_fd`, whose absolute
// path is dir[len]: registers it for a deferred fsync. A directory that
// cannot be registered (no absolute path, a path too long for the registry,
// after the exit-time flush) is fsynced now; a full registry is flushed
// first. 0, or the errno of a failed fsync (err: WLF_STEP_FSYNC_DIR, the
// directory named).
int defer_dir_sync(int dir_fd, const char *dir, size_t len, wlf_error *err);

// Fsyncs every registered directory once and forgets them (what
// wlf_sync_pending does). 0, or the first failure's errno (err names the
// directory). A directory no longer at its path (renamed or replaced
// meanwhile) is covered by a syncfs of its file system, or by sync().
int sync_pending_dirs(wlf_error *err);

// _exit, exec: as sync_pending_dirs, but async-signal-safe: never waits for
// the registry's mutex (busy, e.g. a signal handler interrupted a flush:
// sync(), which covers everything).
int sync_pending_dirs_now(wlf_error *err);

}  // namespace wrap_lockfile::detail
