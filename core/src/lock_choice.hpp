// The names of the lock choices the shim and `atomically` accept, in one
// place: WRAP_LOCKFILE_LOCK_BACKEND / --lock-backend and
// WRAP_LOCKFILE_KEEP_LOCK_FILES / --keep-lock-files.
#pragma once

namespace wrap_lockfile::detail {

// "flock", "dotlock", "none" or "auto" into *backend (enum wlf_lock_backend); false
// for anything else.
bool parse_lock_backend(const char *s, int *backend);

// "1" or "0" into *keep; false for anything else.
bool parse_keep_lock_files(const char *s, int *keep);

inline constexpr const char *kLockBackendChoicesExpected = "expected flock, dotlock, none or auto";

}  // namespace wrap_lockfile::detail
