// What execve, dup2 and _exit do to a lock the shim holds for a program:
// adopted from an inherited descriptor after exec, moved aside for a dup2,
// abandoned or released at _exit, and whether a lock file is the program's
// own (handoff.hpp, shim_entry.hpp).
#include "handoff.hpp"
#include "internal.hpp"
#include "lock_held.hpp"
#include "lock_file.hpp"
#include "lock_internal.hpp"
#include "shim_entry.hpp"

#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

using namespace wrap_lockfile;
using detail::Held;
using detail::LockFileOwner;

int wrap_lockfile::detail::lock_adopt(int fd, const char *lock_path, bool keep, int owner, wlf_lock **out) {
    if (owner < static_cast<int>(LockFileOwner::foreign) || owner > static_cast<int>(LockFileOwner::stale))
        return EINVAL;
    struct stat fs, ps;
    if (fstat(fd, &fs) != 0) return errno;
    // Only a descriptor that still names the lock file is the lock.
    if (lstat(lock_path, &ps) != 0) return errno;
    if (fs.st_dev != ps.st_dev || fs.st_ino != ps.st_ino || fs.st_nlink == 0) return ESTALE;
    size_t n = strlen(lock_path);
    if (n + 1 > WLF_PATH_MAX) return ENAMETOOLONG;
    auto *handle = static_cast<wlf_lock *>(malloc(sizeof(wlf_lock)));
    if (!handle) return ENOMEM;
    // Two replacements of one file handed over together share the lock
    // descriptor: one record, two references (else the first commit would
    // unlock, and the second close a descriptor twice).
    if (Held *h = detail::registry_share(fd, fs.st_dev, fs.st_ino)) {
        handle->held = h;
        *out = handle;
        return 0;
    }
    auto *h = static_cast<Held *>(malloc(sizeof(Held)));
    if (!handle || !h) {
        free(handle);
        free(h);
        return ENOMEM;
    }
    memcpy(h->path, lock_path, n + 1);
    h->backend = WLF_LOCK_FLOCK;
    h->fd = fd;
    // Its mtime as found now; its size as every flock lock file of ours is
    // made, empty: one written into before the exec holds somebody's data.
    detail::note_lock_file(h, fs);
    h->size = 0;
    h->owner_pid = getpid();
    h->owner_thread = pthread_self();
    h->depth = 1;
    h->keep = keep;
    h->dir_append_only = false;  // what the open made of it is decided; its keep came along
    detail::keep_on_shared_fs(fd, 0, h);  // a lock handed over across exec stays shared
    h->owner = static_cast<LockFileOwner>(owner);
    detail::forget_commit_check(h);
    h->mount = 0;
    h->committed_dev = 0;
    h->committed_ino = 0;
    h->next = nullptr;
    detail::lock_fd_mark(fd);  // inherited holding the flock; nothing asked since the exec
    detail::registry_add(h);
    handle->held = h;
    *out = handle;
    return 0;
}

void wrap_lockfile::detail::lock_abandon(const wlf_lock *lock) {
    const Held *h = lock ? lock->held : nullptr;
    if (!h || h->owner_pid != getpid()) return;
    // A dotlock is its file; a flock file goes if it is ours and not kept.
    // Unlink only while the name is still our inode (so a second call, or a
    // lock file somebody else has created since, is left alone), then unlock.
    if (detail::removes_file(h)) (void)detail::remove_if_still_ours(h);
    if (h->fd >= 0) flock(h->fd, LOCK_UN);
}

bool wrap_lockfile::detail::lock_file_held_by_program(int fd) {
    // The inode whose flock was refused, not whatever the path names by now.
    // A description of the library's (another thread's pending replacement,
    // even one between its flock and its registry entry) is marked, and
    // skipped: then the wait is a real one.
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return false;
    return detail::flock_held_by_own_descriptor(st.st_dev, st.st_ino);
}

void wrap_lockfile::detail::lock_fd_closed(int fd) { detail::lock_fd_unmark(fd); }
void wrap_lockfile::detail::lock_fd_busy(bool begin) {
    if (begin)
        detail::lock_fd_busy_begin();
    else
        detail::lock_fd_busy_end();
}

void wrap_lockfile::detail::lock_release_at_exit(const wlf_lock *lock) {
    Held *h = lock ? lock->held : nullptr;
    if (!h || h->owner_pid != getpid()) return;
    // A reference of two replacements sharing the lock: the other one's
    // commit, still to come, releases it.
    if (h->depth > 1) {
        --h->depth;
        detail::forget_commit_check(h);  // this commit's check, not the other's
        return;
    }
    lock_abandon(lock);
}

bool wrap_lockfile::detail::lock_relocate_fd(wlf_lock *lock, int from, int to) {
    if (!lock || !lock->held || lock->held->fd != from) return false;
    // `to` is marked here, inside the caller's busy window (lock_fd_busy);
    // `from` is unmarked by lock_fd_closed after its close, or here when it
    // is already the program's (closed behind our back, to < 0).
    if (to >= 0)
        detail::lock_fd_mark(to);
    else
        detail::lock_fd_unmark(from);
    lock->held->fd = to;
    return true;
}
