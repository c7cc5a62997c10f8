// What the rest of the library (the replacement, the hand-over, the C++ API
// and the shim's messages) needs of a lock beyond the C API. Internal to the
// project; not part of the C API.
#pragma once

#include <wrap_lockfile/wrap_lockfile.h>

#include <sys/types.h>

#include <cstddef>

namespace wrap_lockfile::detail {

// The lock file of `target`: "<target>.lock", made absolute against the
// current directory, into dst[size]; for a name of 251 to 255 bytes, whose
// "<name>.lock" no directory entry holds, "<its first 233 bytes or
// fewer>~<16 hex digits of its hash>.lock". 0 or ENAMETOOLONG.
int lock_path_of(const char *target, char *dst, size_t size);

// A lock taken to look at a path before knowing it is the final target
// (wlf_open's lock-first attempt): lock_acquire_probe takes only a lock file
// it creates itself (EEXIST otherwise, without waiting or locking anything
// of somebody else's); the caller keeps it as its lock, or
// lock_release_probe gives it up, removing the file (even with keep_lock_file).
int lock_acquire_probe(const char *target, const wlf_lock_options *opt, int fd_floor, wlf_lock **out);

// wlf_lock_acquire for a replacement: fd_floor > 0 keeps the flock
// descriptor at or above that number (the shim's, shim_entry.hpp).
int lock_acquire_at_floor(const char *target, const wlf_lock_options *opt, int fd_floor, wlf_lock **out,
                          wlf_error *err);
void lock_release_probe(wlf_lock *lock);

// For a replacement that reaches its directory by path: whether the lock
// has a file at all (flock or dotlock), and whether that path still names
// the file we hold (false after the directory was renamed or replaced).
// `dir_fd` >= 0, the directory the commit renames into: whether our file
// is there, under its name; the release that follows (no other use of the
// lock in between) then removes it through dir_fd, which must stay open
// until then.
bool lock_has_file(const wlf_lock *lock);
// Whether the lock file's directory was seen append-only (chattr +a) when
// the lock was taken: nothing made there can be removed or renamed over.
// Known where the backend was chosen by WLF_LOCK_AUTO (the shim's default).
bool lock_dir_append_only(const wlf_lock *lock);
bool lock_file_still_ours(const wlf_lock *lock, int dir_fd);
// The directory the lock file's name is in now, opened (O_PATH when
// path_only), or -1: where the commit finds it when the path no longer
// leads there (the directory renamed while the lock was held). From
// /proc/self/fd (posix/flock.cpp); -1 without /proc, for a dotlock, or with
// no name left. The caller checks it (lock_file_still_ours).
int lock_file_dir_now(const wlf_lock *lock, bool path_only);

// wlf_lock_release for a caller that knows it is the process that locked
// (spares the getpid that keeps forked children from releasing).
int lock_release_by_owner(wlf_lock *lock, wlf_error *err);

// The process that locked (asked when locking); 0 without a lock file.
pid_t lock_owner(const wlf_lock *lock);
// Whether the calling thread took the lock (true without a lock file:
// nothing serializes threads then).
bool lock_taken_by_this_thread(const wlf_lock *lock);
// A commit under `lock` put (dev, ino) at its target; whether the last one
// did: a replacement nested in the same lock (same thread) committed
// before this one, which then finds that file at its target, not somebody
// else's.
void lock_note_commit(wlf_lock *lock, dev_t dev, ino_t ino);
bool lock_last_commit_was(const wlf_lock *lock, dev_t dev, ino_t ino);

// The pid holding the lock file at `lock_path` (wlf_lock_holder without the
// ".lock" to add), 0 if unknown.
pid_t lock_file_holder(const char *lock_path);

// The shim's locks are the library's, not the program's: a program that
// holds a file open while its child (exec'd, holding no descriptor of it)
// writes the same file waits for that child, which would wait for the
// parent's lock forever. With this set (by the shim, for its process), a
// flock lock found held by a process this one descends from is not waited
// for: EDEADLK (step WLF_STEP_LOCK) at once; nor is one this very process
// holds through a descriptor of the program's own (lock_file_held_by_program,
// shim_entry.hpp). The library's own API waits, as a lock must.
void lock_refuse_ancestor_holders();
// With that policy set, for a flock refused to `fd` (our descriptor of the
// lock file at `lock_path`): the op of the EDEADLK when waiting would be
// for ever (its holder is this program itself, or a process this one
// descends from), else nullptr.
const char *lock_wait_never_ends(const char *lock_path, int fd);

// The program is about to dup2() onto descriptor `from`, which the lock
// owns: it uses `to`, a copy the caller made, from now on. Whether `from`
// was the lock's (then lock_fd_closed(from) follows its close).
bool lock_relocate_fd(wlf_lock *lock, int from, int to);

// For the shim's _exit/_Exit (file_abandon, file_commit_at_exit): removes
// the lock file (only while it still names the inode this process holds)
// and unlocks the open file description (children may share it); a
// reference shared with another pending replacement only drops its count
// (lock_release_at_exit). Nothing is freed; only async-signal-safe calls.
void lock_abandon(const wlf_lock *lock);
void lock_release_at_exit(const wlf_lock *lock);

}  // namespace wrap_lockfile::detail
