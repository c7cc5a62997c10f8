// The state behind a wlf_lock handle, shared by its C API (lock.cpp), the
// nesting registry (lock_registry.cpp), the flock backend (posix/flock.cpp)
// and what fork, exec and _exit do to a lock (posix/lock_process.cpp).
#pragma once

#include "lock_file.hpp"  // LockFileOwner

#include <wrap_lockfile/wrap_lockfile.h>

#include <fcntl.h>  // AT_FDCWD
#include <pthread.h>
#include <sys/types.h>

#include <cstdint>

namespace wrap_lockfile::detail {

// The real lock, shared by nested handles of one thread.
struct Held {
    int backend;
    int fd;          // flock: the locked descriptor; else -1
    dev_t dev;
    ino_t ino;
    off_t size;              // its size and mtime when it became ours: a file
    struct timespec mtime;   // written since is somebody's data (remove_if_still_ours)
    uint64_t mount;  // flock: the lock file's unique mount id (0: not known)
    pid_t owner_pid;  // a forked child must not release its parent's lock
    pthread_t owner_thread;  // with owner_pid: pthread_self() costs no system call
    int depth;
    bool keep;              // keep_lock_file: never remove it
    bool dir_append_only;   // its directory is append-only (lock_dir_append_only)
    bool shared;            // on a shared file system: the lock file stays (shared_fs.hpp)
    LockFileOwner owner;    // flock: whether the release may remove the file
    bool at_path;           // just checked: the path still names our file
    int at_dir;  // with at_path: the directory descriptor it was checked through (borrowed), or -1
    dev_t committed_dev;  // the file the last commit under this lock put at the target
    ino_t committed_ino;  // (0: none): a nested replacement's, for the others' check
    Held *next;
    char path[WLF_PATH_MAX];
};

// ---- the nesting registry (lock_registry.cpp) ----

// Returns the held lock for this identity if this thread owns it (depth++).
Held *registry_nest(dev_t dev, ino_t ino);
void registry_add(Held *h);
// depth--; returns true when the caller must release the real lock.
bool registry_drop(Held *h);
// Whether this process holds any lock the registry knows: lets an
// acquisition skip the nesting check (an lstat and two ids) when it holds none.
bool registry_in_use();
// The record of this process for the locked descriptor fd on (dev, ino),
// with one more reference (depth++); nullptr if there is none.
Held *registry_share(int fd, dev_t dev, ino_t ino);

// ---- the flock backend (posix/flock.cpp) ----

// Locks the lock file at the absolute `path` as `opt` says and fills h's fd
// (at or above fd_floor when > 0), identity and owner. `probe`: only a lock
// file this call creates will do.
int flock_acquire(const char *path, const wlf_lock_options *opt, int fd_floor, Held *h, bool probe, wlf_error *err);
int flock_release(Held *h, wlf_error *err);
// On a shared file system the lock file is never unlinked (h->shared, and
// h->keep with it). Called with the verified descriptor; `mount`: its
// mount's unique id (fstat_with_mount; 0: unknown).
void keep_on_shared_fs(int fd, uint64_t mount, Held *h);
// Whether h's path still names the file we hold: after its directory was
// renamed or replaced it may name somebody else's lock file, which must not
// be removed.
// (Through h->at_dir when set: its name in that directory.)
bool still_at_path(const Held *h);
// Where h's file is reached: through h->at_dir when set (the descriptor
// the commit's check went through), by its name there; else by its path.
inline int lock_at_fd(const Held *h) { return h->at_dir >= 0 ? h->at_dir : AT_FDCWD; }
const char *lock_at_name(const Held *h);
// No commit check on record (a new record, or one whose checking handle
// let go while another still holds it).
inline void forget_commit_check(Held *h) {
    h->at_path = false;
    h->at_dir = -1;
}
// h's file is `st` (once it became ours): its identity, size and mtime.
inline void note_lock_file(Held *h, const struct stat &st) {
    h->dev = st.st_dev;
    h->ino = st.st_ino;
    h->size = st.st_size;
    h->mtime = st.st_mtim;
}
// Removes h's file if its name still is the file we hold, as we left it: the
// look and the unlink through one descriptor of its directory (h->at_dir,
// else one of its own). By path, a directory swapped between the two (a
// symlink put at a component by whoever may write the parent) makes the
// unlink remove that directory's f.lock: somebody else's. One written since
// (another size or mtime: `<target>.lock` is a data file for some, Bundler's
// Gemfile.lock, written in place by a program that does not lock) holds
// somebody's data, and stays. 0 (also: not ours, or gone), or errno.
int remove_if_still_ours(const Held *h);
// Whether the release removes h's file (while its path still names it): a
// dotlock always, a flock file if it is ours and not kept.
bool removes_file(const Held *h);

}  // namespace wrap_lockfile::detail

struct wlf_lock {
    wrap_lockfile::detail::Held *held;
};
