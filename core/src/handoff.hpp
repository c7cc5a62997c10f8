// Hand-over of pending replacements across execve, for the shim: the state
// of a wlf_file is written into a string that the next program image (which
// loads the shim again) turns back into a wlf_file owning the same
// descriptors. Internal to the project; not part of the C API.
#pragma once

#include <wrap_lockfile/wrap_lockfile.h>

#include <cstddef>

namespace wrap_lockfile::detail {

// wlf_open for the shim: the program's descriptor is the temp itself at the
// number open(2) would have given (close-on-exec only if flags has
// O_CLOEXEC), returned in *caller_fd and owned by the caller; the replacement
// keeps its own duplicate at or above opt->fd_floor. For pass-through targets
// *caller_fd is -1 and wlf_file_detach hands out the descriptor as usual.
int file_open_split(const char *path, int flags, mode_t mode, const wlf_write_options *opt, wlf_file **out,
                    int *caller_fd, wlf_error *err);

// A lock taken to look at a path before knowing it is the final target
// (wlf_open's lock-first attempt): lock_acquire_probe takes only a lock file
// it creates itself (EEXIST otherwise, without waiting or locking anything
// of somebody else's); the caller keeps it as its lock, or
// lock_release_probe gives it up, removing the file (even with keep_lock_file).
int lock_acquire_probe(const char *target, const wlf_lock_options *opt, wlf_lock **out);
void lock_release_probe(wlf_lock *lock);

// For a replacement that reaches its directory by path: whether the lock
// has a file at all (flock or dotlock), and whether that path still names
// the file we hold (false after the directory was renamed or replaced).
bool lock_has_file(const wlf_lock *lock);
bool lock_file_still_ours(const wlf_lock *lock);

// wlf_lock_release for a caller that knows it is the process that locked
// (spares the getpid that keeps forked children from releasing).
int lock_release_by_owner(wlf_lock *lock, wlf_error *err);

// wlf_commit for the shim, which has just checked that it is the opener.
int file_commit_by_opener(wlf_file *f, int *kind_out, wlf_error *err);

// The process that opened f (the lock's owner, which was asked when locking).
pid_t file_opener(const wlf_file *f);
pid_t lock_owner(const wlf_lock *lock);

// Descriptors a pending replacement owns (data fd; lock fd and directory fd,
// or -1), so the shim can protect them and clear FD_CLOEXEC before execve.
void file_descriptors(const wlf_file *f, int *fd, int *lock_fd, int *dir_fd);

// Writes f's state as one token without spaces, ';' or '=' into out[size].
// Returns 0 or ENAMETOOLONG.
int file_export(const wlf_file *f, char *out, size_t size);

// Rebuilds a wlf_file from a token of file_export in this process; checks
// that the descriptors are open and are what they claim. 0 or errno.
int file_import(const char *token, size_t len, int fd_floor, wlf_file **out);

// Rebuilds a held flock from an inherited descriptor (see lock.cpp); `owner`
// is lock_file_owner's answer in the process that locked it (a
// LockFileOwner: whether the release may remove the file).
int lock_adopt(int fd, const char *lock_path, bool keep, int owner, wlf_lock **out);
int lock_file_owner(const wlf_lock *lock);
// For a forked child of a multi-threaded parent: the registry's mutex may
// have been held by another thread at the fork.
void lock_registry_after_fork();

// The program is about to dup2() onto descriptor `from`, which f (or its
// lock) owns: f uses `to`, a copy the caller made, from now on.
void file_relocate_fd(wlf_file *f, int from, int to);
void lock_relocate_fd(wlf_lock *lock, int from, int to);
bool lock_keeps_file(const wlf_lock *lock);

// The pid holding the lock file at `lock_path` (wlf_lock_holder without the
// ".lock" to add), 0 if unknown.
pid_t lock_file_holder(const char *lock_path);

// For the shim's _exit/_Exit: the process ends now without committing; the
// kernel drops the temp's inode and the lock with it, but not the names a
// normal release removes. file_abandon unlinks a named temp and, via
// lock_abandon, the lock file (only while it still names the inode this
// process holds) and unlocks the open file description (children may share
// it). Nothing is freed; only async-signal-safe system calls; idempotent.
void file_abandon(wlf_file *f);
void lock_abandon(const wlf_lock *lock);

// Whether `target`'s lock file is flock()ed by this very process through an
// open file description the library does not hold: the program's own lock
// (git-style `X.lock` it then renames onto X). The shim's rename, which
// locks X.lock, would wait for it forever. One lstat and a read of
// /proc/locks (false when that cannot be read).
bool lock_held_by_program(const char *target);

// For the shim's _exit/_Exit in the opener: commits f like wlf_commit (the
// same steps, the same error in *err), then removes a failed commit's named
// temp and releases the lock as lock_abandon does (a reference shared with
// another pending replacement only drops its count). Frees nothing and
// takes no mutex: only async-signal-safe calls. The caller holds the lock
// registry's mutex through lock_registry_trylock (never blocking: _exit may
// run in a signal handler that interrupted the registry's holder).
int file_commit_at_exit(wlf_file *f, int *kind_out, wlf_error *err);
void lock_release_at_exit(const wlf_lock *lock);
bool lock_registry_trylock();
void lock_registry_unlock();

}  // namespace wrap_lockfile::detail
