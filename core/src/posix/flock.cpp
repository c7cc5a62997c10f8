// The flock backend of "<target>.lock", with the verified cleanup protocol
// (lock.cpp): lock, then check that the descriptor is still the file the
// path names; the release unlinks (when the file is ours) before unlocking.
#include "internal.hpp"
#include "lock_file.hpp"
#include "lock_held.hpp"
#include "lock_internal.hpp"
#include "shared_fs.hpp"
#include "sysio.hpp"

#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

using namespace wrap_lockfile;
using detail::fail;
using detail::Held;
using detail::LockFileOwner;

namespace {

constexpr int kMaxVerifyRetries = 1000;

struct FlockTry {
    int fd;
};

int flock_try(void *ctx) {
    int fd = static_cast<FlockTry *>(ctx)->fd;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
    return errno == EWOULDBLOCK ? EWOULDBLOCK : errno;
}

// The lock file's descriptor while it is being locked: marked the whole time
// it is open (lock_fd_mark), unmarked after its close; its copy above the
// floor likewise. The open before the mark, the copy before its mark and
// the close before the unmark are busy windows (lock_fd_busy_begin): a
// fork in one leaves the child's counts wrong, and it knows.
class MarkedFd {
  public:
    // Calls lock_file_open inside a busy window, and marks what it opened.
    int open(const char *path, bool create_only, bool writable, bool *created, const char **op) {
        detail::lock_fd_busy_begin();
        int raw = -1;
        int rc = detail::lock_file_open(path, create_only, writable, &raw, created, op);
        if (rc == 0) {
            fd_ = raw;
            detail::lock_fd_mark(fd_);
        }
        detail::lock_fd_busy_end();
        return rc;
    }
    MarkedFd() = default;
    MarkedFd(const MarkedFd &) = delete;
    MarkedFd &operator=(const MarkedFd &) = delete;
    ~MarkedFd() {
        if (fd_ >= 0) detail::lock_fd_close(fd_);
    }
    int get() const { return fd_; }
    // Above `floor` (raise_fd), still marked: the copy is marked before the
    // original goes.
    int release_above(int floor) {
        int fd = std::exchange(fd_, -1);
        if (floor <= 0 || fd >= floor) return fd;
        detail::lock_fd_busy_begin();
        int moved = detail::dup_above(fd, floor);
        if (moved >= 0) {
            detail::lock_fd_mark(moved);
            sys::close(fd);
            detail::lock_fd_unmark(fd);
        }
        detail::lock_fd_busy_end();
        return moved >= 0 ? moved : fd;
    }

  private:
    int fd_ = -1;
};

// ---- shared file systems (README "Shared file systems") ----

// Whether a lookup of the lock file that failed with `err` is worth another
// round: ESTALE anywhere, ENOENT only where a cache can invent it.
bool retry_cached_lookup(detail::StaleRetry &stale, int err, const char *lock_path) {
    if (err == ENOENT && !detail::is_shared_fs_parent(lock_path)) return false;
    return stale.again(err);
}

}  // namespace

namespace wrap_lockfile::detail {

// On a shared file system the lock file is never unlinked: a waiter on
// another client verifies (dev, ino, nlink) against cached attributes that
// can still vouch for the unlinked inode, and two holders result. Kept,
// every client locks the one inode. Called with the verified descriptor.
void keep_on_shared_fs(int fd, uint64_t mount, Held *h) {
    h->shared = detail::is_shared_fs_fd(fd, mount);
    if (h->shared) h->keep = true;
}

int flock_acquire(const char *path, const wlf_lock_options *opt, int fd_floor, Held *h, bool probe, wlf_error *err) {
    // One deadline for all verification retries: a waiter that keeps waking
    // on lock files unlinked by a cycling holder must still time out on time.
    const bool timed = opt->has_timeout && opt->timeout > 0;
    const int64_t deadline = timed ? detail::monotonic_ns() + detail::timeout_ns(opt->timeout) : 0;
    // Without a timeout we wait as long as it takes, however often a busy
    // holder's unlink sends us back; a single try (timeout <= 0) gives up
    // after kMaxVerifyRetries such rounds, as contention.
    bool writable = false;
    detail::StaleRetry stale;
    for (int attempt = 0;; ++attempt) {
        if (opt->has_timeout && !timed && attempt >= kMaxVerifyRetries) return fail(err, EWOULDBLOCK, WLF_STEP_LOCK, "lock", path);
        bool created = false;
        const char *op = nullptr;
        MarkedFd fd;
        // `probe`: only a lock file this open creates will do (EEXIST otherwise).
        if (int rc = fd.open(path, probe, writable, &created, &op)) {
            if (retry_cached_lookup(stale, rc, path)) continue;
            return fail(err, rc, WLF_STEP_LOCK, op, path);
        }
        int rc;
        // Held by this program itself or by a process this one descends
        // from (the shim's policy, lock_refuse_ancestor_holders): not
        // waited for.
        const char *never = nullptr;
        if (flock(fd.get(), LOCK_EX | LOCK_NB) == 0) {
            rc = 0;
        } else if (errno == EWOULDBLOCK && (never = detail::lock_wait_never_ends(path, fd.get()))) {
            return fail(err, EDEADLK, WLF_STEP_LOCK, never, path);
        } else if (!opt->has_timeout) {
            while ((rc = flock(fd.get(), LOCK_EX)) != 0 && errno == EINTR && !opt->interruptible) {
            }
            rc = rc == 0 ? 0 : errno;
        } else {
            FlockTry ctx{fd.get()};
            double left = timed ? static_cast<double>(deadline - detail::monotonic_ns()) / 1e9 : opt->timeout;
            // Past the deadline on a retry: one last try, then ETIMEDOUT.
            rc = detail::poll_until(flock_try, &ctx, true, timed && left <= 0 ? 1e-9 : left);
        }
        if (rc == EWOULDBLOCK || rc == ETIMEDOUT) return fail(err, rc, WLF_STEP_LOCK, "lock", path);
        // NFS emulates flock with a byte-range lock, which wants a descriptor
        // open for writing: open the existing file read-write instead (that
        // changes nothing in it either).
        if (rc == EBADF && !created && !writable) {
            writable = true;
            continue;
        }
        // Unlinked or replaced by another client: ESTALE, GlusterFS's EBADFD.
        if (stale.again_if_stale(rc, path)) continue;
        if (rc != 0) return fail(err, rc, WLF_STEP_LOCK, "flock", path);

        struct stat fs, ps;
        uint64_t mount = 0;
        if (detail::fstat_with_mount(fd.get(), &fs, &mount) != 0) {
            int e = errno;
            if (stale.again_if_stale(e, path)) continue;
            return fail(err, e, WLF_STEP_LOCK, "fstat lock file", path);
        }
        // Released and unlinked between our open and our flock: retry.
        if (fs.st_nlink == 0) continue;
        // A file this open created had no name but this one, and a holder
        // removes it only while holding the lock (which we now hold): with
        // a link it is still the file at the path, unless somebody outside
        // the protocol renamed it, which the path check could not rule out
        // for the time after it either. A file found there may have been
        // replaced by its owner (git's X.lock is renamed into place):
        // compare it with what the path names now.
        if (!created) {
            if (lstat(path, &ps) != 0) {
                int e = errno;
                if (e == ENOENT) continue;  // released and unlinked under us: retry
                if (stale.again_if_stale(e, path)) continue;
                return fail(err, e, WLF_STEP_LOCK, "stat lock file", path);
            }
            if (fs.st_dev != ps.st_dev || fs.st_ino != ps.st_ino) continue;
        }

        // Locked and verified: a file we did not create is ours only if it
        // carries the marker (an earlier holder killed before its release).
        h->owner = created ? LockFileOwner::created
                   : detail::lock_file_is_marked(fs) ? LockFileOwner::stale
                                                     : LockFileOwner::foreign;
        keep_on_shared_fs(fd.get(), mount, h);
        h->fd = fd.release_above(fd_floor);
        note_lock_file(h, fs);
        h->mount = mount;
        return 0;
    }
}

// Whether h's path still names the file we hold: after its directory was
// renamed or replaced it may name somebody else's lock file, which must not
// be removed.
// (Through h->at_dir when set: its name in that directory.) A stale handle
// (shared_fs.hpp) is no answer: asked again, bounded.
bool still_at_path(const Held *h) {
    struct stat st;
    StaleRetry stale;
    while (fstatat(lock_at_fd(h), lock_at_name(h), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (!stale.again_if_stale(errno, h->path)) return false;
    }
    return st.st_dev == h->dev && st.st_ino == h->ino;
}

const char *lock_at_name(const Held *h) {
    if (h->at_dir < 0) return h->path;
    const char *slash = strrchr(h->path, '/');
    return slash ? slash + 1 : h->path;
}

namespace {

// Removes `name` in dfd if it is still h's file, unchanged since we wrote
// it. 0 (removed, or somebody's: left) or errno; *gone: no file of ours is
// at that name (nothing there, or another inode).
int remove_ours_at(int dfd, const char *name, const Held *h, bool *gone) {
    struct stat st;
    StaleRetry stale;  // a shared file system's cached handle (shared_fs.hpp)
    for (;;) {
        while (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) {
                *gone = true;
                return 0;
            }
            if (!stale.again(errno)) return errno;
        }
        if (st.st_dev != h->dev || st.st_ino != h->ino) {  // somebody else's now
            *gone = true;
            return 0;
        }
        if (st.st_size != h->size || st.st_mtim.tv_sec != h->mtime.tv_sec || st.st_mtim.tv_nsec != h->mtime.tv_nsec)
            return 0;  // written since: somebody's data
        if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT) return 0;
        // The unlink's own look at the name may be stale too: looked at
        // again, then removed only if it is still ours.
        if (!stale.again(errno)) return errno;
    }
}

// h's file's name now, from /proc/self/fd: its directory may have been
// renamed since it was locked (`mv d d2` with a replacement of d/f
// pending). False without /proc or for a dotlock (no descriptor). A removed
// file's name ends in " (deleted)": its callers' checks of our inode at
// that name find nothing there.
bool name_now(const Held *h, char *out, size_t size) {
    if (h->fd < 0) return false;
    ssize_t n = readlink(sys::ProcFdPath(h->fd).c_str(), out, size - 1);
    if (n <= 0 || static_cast<size_t>(n) >= size - 1 || out[0] != '/') return false;
    out[n] = '\0';
    return true;
}

// Our file, where the path no longer leads to it (name_now): d2/f.lock
// would stay for good, where git and others take an X.lock for a lock
// held. Checked there as at the path; without a name, nothing is removed.
int remove_where_it_went(const Held *h) {
    char now[WLF_PATH_MAX];
    if (!name_now(h, now, sizeof now)) return 0;
    const char *name = nullptr;
    sys::UniqueFd dir(open_parent(now, &name));
    if (!dir) return 0;
    bool gone = false;
    return remove_ours_at(dir.get(), name, h, &gone);
}

}  // namespace

int remove_if_still_ours(const Held *h) {
    int dfd = h->at_dir;
    const char *name = lock_at_name(h);
    sys::UniqueFd own;
    if (dfd < 0) {
        own.reset(open_parent(h->path, &name));
        if (own) {
            dfd = own.get();
        } else if (errno == EMFILE || errno == ENFILE) {
            // No descriptor left for the directory (a program at its
            // limit): by path, rather than leaving our file behind for
            // good. Only a rename of a directory above it between the two
            // calls below could then point them at another directory.
            dfd = AT_FDCWD;
            name = h->path;
        } else {
            return errno == ENOENT ? remove_where_it_went(h) : errno;
        }
    }
    bool gone = false;
    int rc = remove_ours_at(dfd, name, h, &gone);
    return gone ? remove_where_it_went(h) : rc;
}

int lock_file_dir_now(const wlf_lock *lock, bool path_only) {
    char now[WLF_PATH_MAX], dir[WLF_PATH_MAX];
    const char *base = nullptr;
    if (!lock || !lock->held || !name_now(lock->held, now, sizeof now) ||
        split_dir_base(now, dir, sizeof dir, &base) != 0)
        return -1;
    return sys::open(dir, (path_only ? O_PATH : O_RDONLY) | O_DIRECTORY | O_CLOEXEC);
}

// Whether the release removes h's file (while its path still names it): a
// dotlock always, a flock file if it is ours and not kept.
bool removes_file(const Held *h) {
    if (h->backend == WLF_LOCK_DOTLOCK) return true;
    return h->owner != LockFileOwner::foreign && !h->keep;
}

int flock_release(Held *h, wlf_error *err) {
    int rc = 0;
    // A check made through a borrowed directory descriptor is made again:
    // the number may name another directory by now (a thread of the program
    // closed and reused it), whose f.lock is not ours.
    if (removes_file(h)) {
        // An earlier holder's file that we may not remove (the directory
        // became read-only) stays: the lock itself was good.
        if (int e = remove_if_still_ours(h); e && h->owner == LockFileOwner::created)
            rc = fail(err, e, WLF_STEP_UNLOCK, "unlink lock file", h->path);
    }
    // Unlock the open file description itself: children that inherited the
    // descriptor must not keep the lock alive.
    flock(h->fd, LOCK_UN);
    detail::lock_fd_close(h->fd);
    return rc;
}

}  // namespace wrap_lockfile::detail
