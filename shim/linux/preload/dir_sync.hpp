// Durability in the shim beyond its own commits (docs/design.md, "Batch
// durability"): the directories whose fsync `batch` deferred are synced at
// the program's own sync points (fsync, fdatasync, sync, syncfs), at exec
// and at _exit (normal exit: the core's destructor); and a program's own
// rename onto a matched target is made as durable as the shim's own
// replacements (dir_sync.cpp).
#pragma once

#include "handlers.hpp"

#include "batch_sync.hpp"

namespace wrap_lockfile::shim {

// Syncs the deferred directories; a failure is one line on stderr. The
// `_now` form is async-signal-safe (_exit, maybe in a signal handler).
void sync_deferred_dirs();
void sync_deferred_dirs_now();
// One load when nothing is deferred: the program's sync calls stay as cheap.
inline void sync_deferred_dirs_before_program_sync() {
    if (!detail::dir_syncs_pending()) return;
    int saved = errno;
    sync_deferred_dirs();
    errno = saved;
}

// A program's rename of `from` onto the matched `to` (durability full or
// batch): before it, the file at `from` is fsynced (0, or the fsync's errno:
// the rename must not go ahead); after it, the directory that received the
// name `raw_to` (the absolute path as the kernel walks it) is fsynced, or
// deferred under batch.
int sync_before_rename(int fromdir, const char *from);
void sync_after_rename(const char *raw_to);

template <class Pass>
auto fsync_fd(Pass &&pass, int fd) -> decltype(pass()) {
    sync_deferred_dirs_before_program_sync();
    return change_fd(pass, fd);
}

template <class Pass>
void sync_all(Pass &&pass) {
    sync_deferred_dirs_before_program_sync();
    pass();
}

template <class Pass>
int syncfs_fd(Pass &&pass) {
    sync_deferred_dirs_before_program_sync();
    return pass();
}

}  // namespace wrap_lockfile::shim
