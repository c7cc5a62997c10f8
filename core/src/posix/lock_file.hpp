// The file at "<target>.lock": how the flock backend opens it without
// changing anything that is not its own, how it recognises its own, and who
// holds a flock on it (README "Locks", "Ownership").
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

namespace wrap_lockfile::detail {

// Who made the lock file, which decides whether the release may remove it.
enum class LockFileOwner : int {
    foreign = 0,  // somebody else's (Gemfile.lock, git's X.lock, flock(1)'s): never written or removed
    created = 1,  // this open created it (O_EXCL)
    stale = 2,    // the marker of an earlier holder of this library (killed before its release)
};

// Opens the lock file at the absolute `path` for flock. A new one is created
// with O_EXCL and the marker mode (0666 | S_ISVTX); an existing one is opened
// read-only (`writable`: read-write, for NFS, whose flock emulation wants a
// descriptor open for writing), never truncated, never followed, never
// blocked on. `create_only`: an existing file gives EEXIST. Anything that is
// not a regular file with one link gives ENOLCK and *op names what it is
// (a format with one "%s" for the path, see wlf_error_format).
// Returns 0 with *fd and *created, or an errno with *op set.
int lock_file_open(const char *path, bool create_only, bool writable, int *fd, bool *created, const char **op);

// Whether `st` (the locked descriptor's fstat, at the path) is the marker of
// a lock file this library created: a regular, empty, single-link file with
// S_ISVTX, owned by our effective uid.
bool lock_file_is_marked(const struct stat &st);

// The pid of a process holding a flock (not waiting for one) on the inode
// (dev, ino), as /proc/locks shows it; 0 when unknown.
pid_t flock_holder(dev_t dev, ino_t ino);

// The descriptors of this process that refer to a description the
// library's own flock locks use, held or being taken, moved or released
// (in any thread; a forked child inherits the marks with the descriptors),
// counted by number. A descriptor is marked right after its open and
// unmarked right after its close; those two windows, and a copy (dup)
// until it is marked, are busy (lock_fd_busy_begin/end): there a
// description of ours may hold a flock at an unmarked number, or a closed
// number still counts. flock_held_by_own_descriptor answers only from a
// look during which nothing of this changed and nothing was busy, and
// while a lock of ours sits past the table (65535) it answers no. A child
// forked inside a busy window keeps it open for good: it always answers no.
void lock_fd_mark(int fd);
void lock_fd_unmark(int fd);
void lock_fd_close(int fd);  // close, then unmark, in a busy window
void lock_fd_busy_begin();
void lock_fd_busy_end();

// Whether one of this process's descriptors that is not the library's
// (lock_fd_mark) is an open file description holding a flock (shared or
// exclusive: either way ours waits for it for ever) on (dev, ino), whoever
// took it: /proc/locks names only the process that called flock(), and
// flock(1) has exited by the time the shell that opened `9>>X.lock` for it
// writes X. Reads /proc/self/fdinfo (false without it).
bool flock_held_by_own_descriptor(dev_t dev, ino_t ino);

// What a dotlock path holds that is not a lock file: nullptr for a regular
// file (of any link count: link() protocols pass through two), else the op
// for ENOLCK as lock_file_open gives it.
const char *dotlock_refusal(const struct stat &st);

}  // namespace wrap_lockfile::detail
