// Hand-over of pending replacements across execve, for the shim: the state
// of a wlf_file is written into a string that the next program image (which
// loads the shim again) turns back into a wlf_file owning the same
// descriptors (handoff.cpp). Internal to the project; not part of the C API.
#pragma once

#include <wrap_lockfile/wrap_lockfile.h>

#include <cstddef>

// The shim's other entry points and the lock internals it uses were
// declared here before they got headers of their own; the shim still
// reaches them through this header until its sources include those.
#include "lock_internal.hpp"
#include "shim_entry.hpp"

namespace wrap_lockfile::detail {

// Descriptors a pending replacement owns (data fd; lock fd and directory fd,
// or -1), so the shim can protect them and clear FD_CLOEXEC before execve.
void file_descriptors(const wlf_file *f, int *fd, int *lock_fd, int *dir_fd);

// Writes f's state as one token without spaces, ';', ':' or '=' into
// out[size]: comma-separated fields (a version first), the last one a seal
// of everything before it (8 hex digits). Returns 0 or ENAMETOOLONG.
int file_export(const wlf_file *f, char *out, size_t size);

// Rebuilds a wlf_file from a token of file_export in this process; checks
// that the descriptors are open and are what they claim. A token of another
// version, cut short or changed anywhere is refused (EINVAL) and nothing is
// touched: the descriptors stay the caller's. 0 or errno.
int file_import(const char *token, size_t len, int fd_floor, wlf_file **out);

// The lock's part of a token: whether its file is kept, and its owner
// (lock_file_owner, a LockFileOwner: whether the release may remove the
// file), from which lock_adopt rebuilds the held flock from the inherited
// descriptor in the next image (posix/lock_process.cpp).
bool lock_keeps_file(const wlf_lock *lock);
int lock_file_owner(const wlf_lock *lock);
int lock_adopt(int fd, const char *lock_path, bool keep, int owner, wlf_lock **out);

}  // namespace wrap_lockfile::detail
