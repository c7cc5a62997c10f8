// The dotlock backend: liblockfile's link() protocol on "<target>.lock",
// safe across hosts and pid namespaces. README "Shared file systems".
#pragma once

#include <wrap_lockfile/wrap_lockfile.h>

#include <sys/stat.h>
#include <sys/types.h>

namespace wrap_lockfile::detail {

// Takes the dotlock `lock_path` (wait, one try or a deadline as in `opt`).
// 0 and the lock file's identity in *dev / *ino; EWOULDBLOCK, ETIMEDOUT or
// the errno of a hard failure, recorded in `err`.
int dotlock_acquire(const char *lock_path, const wlf_lock_options *opt, struct stat *seen, wlf_error *err);

// Released by remove_if_still_ours (lock_held.hpp): a lock broken and taken
// by somebody else meanwhile stays theirs.

// The pid recorded in the dotlock at `path` if it is still the file `st`
// describes (0: none, or not a dotlock).
pid_t dotlock_holder_pid(const char *path, const struct stat &st);

}  // namespace wrap_lockfile::detail
