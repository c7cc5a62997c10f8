// Preparing what the caller of wlf_open writes to: a temp beside the
// target, seeded with its content and given its metadata (the rename kind);
// a staging memfd written into the target in place at commit; or the target
// itself (lock-only, in-place and pass-through kinds). Every existing target
// is first opened as the program's own open(2) would (open_check.cpp).
#include "internal.hpp"
#include "lock_internal.hpp"
#include "replace_parts.hpp"
#include "replacement.hpp"
#include "shared_fs.hpp"
#include "sysio.hpp"

#include <sys/fsuid.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

using namespace wrap_lockfile;
using detail::at_fd;
using detail::fail;
using detail::Seen;
using detail::stat_target;

namespace {

// Gives the caller's descriptor the status flags its open asked for and
// F_SETFL can set, once the seed is in: O_APPEND, and O_DIRECT, so that
// writes the kernel would refuse on the target (unaligned ones) are refused
// here too. The temp lies on the target's file system: one without direct
// I/O refuses the flag as the program's open would have (EINVAL). (A
// staging memfd has no direct I/O: begin_staged writes such a target in
// place.) O_NOATIME too, which the kernel lets only the file's owner set:
// the temp is ours (or root's to chown), and the verdict open already gave
// the program's answer on the target (EPERM), so it is dropped rather than
// refused where F_SETFL still says EPERM. O_SYNC and O_DSYNC are given at
// the temp's creation (F_SETFL cannot set them). Our temps and memfds have
// no other status flags, so no F_GETFL.
int status_flags(wlf_file *f) {
    int want = f->flags & (O_APPEND | O_DIRECT | O_NOATIME);
    if (!want || sys::fcntl(f->fd, F_SETFL, want) == 0) return 0;
    if (errno == EPERM && (want & O_NOATIME)) {
        want &= ~O_NOATIME;
        if (!want || sys::fcntl(f->fd, F_SETFL, want) == 0) return 0;
    }
    return errno;
}

// Positions the caller's descriptor as open(2) would have: appends go to the
// end (O_APPEND, status_flags), everything else starts at 0.
// `seeded`: the copy moved the offset.
int position(wlf_file *f, bool seeded) {
    if (int rc = status_flags(f)) return rc;
    return seeded && lseek(f->fd, 0, SEEK_SET) < 0 ? errno : 0;
}

// Asks the kernel once per replacement of an existing target; `want_read`
// for a seed. 0, or the program's errno recorded in err.
int look_as_program(wlf_file *f, const char *path, mode_t mode, bool want_read, Seen *seen, wlf_error *err) {
    if (seen->fd) return 0;
    int fd;
    detail::StaleRetry stale;  // a shared file system's cached handle (shared_fs.hpp)
    for (;;) {
        fd = detail::open_as_program(path, f->flags, mode, want_read, f->st, &seen->readable);
        if (fd >= 0) break;
        // ESTALE (EBADFD from GlusterFS), or EAGAIN because the cached stat
        // named the version another client replaced before we took the
        // lock, or the lower file overlayfs copied up for our very open (a
        // hard-linked one gets a new inode number): stat again, open again.
        int e = errno;
        bool cached = detail::is_stale_handle(e, f->target) ||
                      (e == EAGAIN && (detail::is_shared_fs_parent(f->target) || detail::is_overlay_fs(f->target)));
        if (!cached || !stale.again(ESTALE)) {
            errno = e;
            break;
        }
        if (stat_target(f, true) != 0) {
            errno = e;
            break;
        }
    }
    if (fd < 0) {
        int e = errno;
        return fail(err, e, WLF_STEP_OPEN, e == EAGAIN ? "open (the file changed while it was locked)" : "open", path);
    }
    seen->fd.reset(fd);
    return 0;
}

// Whether a copy of the target's whole content would pass the file-size
// limit (RLIMIT_FSIZE: prlimit --fsize, ulimit -f), which the program's own
// writes need not reach: a seed would kill it with SIGXFSZ inside its open
// (or fail it with EFBIG) where its plain update within the limit works.
bool beyond_file_size_limit(const wlf_file *f) {
    struct rlimit rl;
    return getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
           static_cast<rlim_t>(f->st.st_size) > rl.rlim_cur;
}

// Whether the target's owner is another user's, and we are not root: a
// replacement of ours could not be given it (chown needs CAP_CHOWN). Root
// without that capability finds out at the chown (copy_metadata). The file
// system uid is what the temp gets, which setfsuid(-1) reports.
bool owner_not_ours(const wlf_file *f) {
    uid_t fsuid = static_cast<uid_t>(setfsuid(static_cast<uid_t>(-1)));
    return fsuid != 0 && f->st.st_uid != fsuid;
}

// Copies the current content into the temp. A shared file system may answer
// ESTALE (GlusterFS: EBADFD) mid-copy for the version another client replaced just before we
// took the lock: look at the target again and start over (bounded,
// shared_fs.hpp).
int seed(wlf_file *f, const char *path, mode_t mode, Seen *seen, wlf_error *err) {
    detail::StaleRetry stale;
    for (;;) {
        int rc = detail::seed_copy(seen->fd.get(), f->fd, f->st);
        if (rc == 0) return 0;
        if (!stale.again_if_stale(rc, f->target))
            return fail(err, rc, WLF_STEP_TEMP, "copy current content", f->target);
        if (sys::ftruncate(f->fd, 0) != 0 || lseek(f->fd, 0, SEEK_SET) < 0)
            return fail(err, errno, WLF_STEP_TEMP, "copy current content", f->target);
        if ((rc = stat_target(f, true)) != 0) return fail(err, rc, WLF_STEP_TEMP, "stat", f->target);
        seen->fd.reset(-1);
        if ((rc = look_as_program(f, path, mode, true, seen, err))) return rc;
    }
}

// The target's inode flags, project id and extent size hints onto the
// empty temp (docs/design.md, step 6). *kept false: one cannot be given.
// A shared file system may answer ESTALE (GlusterFS) for the version
// another client replaced just before we took the lock: look again, as
// seed() does.
int give_target_attrs(wlf_file *f, const char *path, mode_t mode, bool want_read, const char *dir, Seen *seen,
                      bool *kept, wlf_error *err) {
    detail::InodeAttrs attrs;
    detail::StaleRetry stale;
    for (;;) {
        int rc = detail::read_inode_attrs(seen->fd.get(), f->st.st_dev, &attrs);
        if (rc == 0) break;
        if (!stale.again_if_stale(rc, f->target))
            return fail(err, rc, WLF_STEP_TEMP, "read inode flags of", f->target);
        if ((rc = stat_target(f, true)) != 0) return fail(err, rc, WLF_STEP_TEMP, "stat", f->target);
        seen->fd.reset(-1);
        if ((rc = look_as_program(f, path, mode, want_read, seen, err))) return rc;
    }
    const char *op = "copy inode flags";
    if (int rc = detail::give_inode_attrs(attrs, f->fd, dir, kept, &op)) return fail(err, rc, WLF_STEP_TEMP, op, f->target);
    return 0;
}

// Gives up a temp made before we knew it cannot be used, and the directory
// descriptor it needed (an in-place write follows, which has no use for it).
void drop_temp(wlf_file *f) {
    sys::close(f->fd);
    f->fd = -1;
    if (f->temp[0]) unlinkat(at_fd(f), f->temp, 0);
    f->temp[0] = '\0';
    if (f->dir_fd >= 0) {
        sys::close(f->dir_fd);
        f->dir_fd = -1;
    }
    if (f->per_target_temp) detail::release_per_target_name();
    f->per_target_temp = false;
    f->anonymous = false;
}

}  // namespace

namespace wrap_lockfile::detail {

bool leaves_room(const wlf_file *f, int spare) {
    if (f->fd_floor <= 0) return true;
    bool cramped = f->fd_floor < detail::kDescriptorFloor;
    if (!cramped) {
        // The lock went below the floor: the limit is lower now. A lock
        // without a descriptor (dotlock, none) cannot tell: the limit asked.
        int lock_fd = wlf_lock_fd(f->lock);
        struct rlimit rl;
        cramped = lock_fd >= 0 ? lock_fd < f->fd_floor
                               : getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur <= static_cast<rlim_t>(f->fd_floor);
    }
    return !cramped || detail::descriptors_free(spare);
}

int begin_staged(wlf_file *f, const char *path, mode_t mode, Seen *seen, wlf_error *err) {
    if (f->dir_fd >= 0) {
        sys::close(f->dir_fd);
        f->dir_fd = -1;
    }
    // A memfd has no direct I/O, and a program that bypasses the page cache
    // wants its writes to reach the file as they are: written in place
    // under the lock, with the flags of its own open (docs/design.md, "Open
    // flags").
    if (f->flags & O_DIRECT) return begin_direct(f, WLF_COMMIT_IN_PLACE, path, mode, seen, err);
    f->kind = WLF_COMMIT_IN_PLACE;
    f->staged = true;
    f->fd = detail::create_staging_file(f->fdflags & O_CLOEXEC);
    if (f->fd < 0) return fail(err, errno, WLF_STEP_TEMP, "create staging file", f->target);
    bool seeded = f->existed && !(f->flags & O_TRUNC);
    if (f->existed) {
        if (int rc = look_as_program(f, path, mode, seeded, seen, err)) return rc;
    }
    if (seeded && beyond_file_size_limit(f)) {
        // No copy fits under the file-size limit: the target itself, as
        // for O_DIRECT (see begin_rename).
        sys::close(f->fd);
        f->fd = -1;
        f->staged = false;
        seen->fd.reset();
        return begin_direct(f, WLF_COMMIT_IN_PLACE, path, mode, seen, err);
    }
    if (seeded) {
        if (!seen->readable) return fail(err, EACCES, WLF_STEP_TEMP, "copy current content", f->target);
        if (int rc = seed(f, path, mode, seen, err)) return rc;
    }
    // The look's descriptor is kept to the commit, which writes through it,
    // as the metadata calls on the program's descriptor do (staged_meta.cpp):
    // the inode the program opened, whatever the name shows meanwhile (a
    // file renamed over it, a new file given its inode number once it is
    // removed: nothing else may be written or chmod()ed), and writable as
    // the program's descriptor is even after a chmod took the permission
    // away. Above the program's numbers.
    if (seen->fd) {
        f->target_fd = detail::raise_fd(seen->fd.release(), f->fd_floor);
    }
    if (int rc = position(f, seeded)) return fail(err, rc, WLF_STEP_OPEN, rc == EINVAL ? "open (O_DIRECT)" : "position", f->target);
    return 0;
}

int begin_direct(wlf_file *f, int kind, const char *path, mode_t mode, Seen *seen, wlf_error *err) {
    f->kind = kind;
    bool pass = kind == WLF_COMMIT_PASSTHROUGH;
    if (!pass && f->existed) {
        if (int rc = look_as_program(f, path, mode, false, seen, err)) return rc;
        seen->fd.reset();
    }
    if (pass) {
        f->fd = sys::open(path, (f->flags & ~O_CLOEXEC) | O_CLOEXEC, mode);
        if (f->fd < 0) return fail(err, errno, WLF_STEP_OPEN, "open", path);
        return 0;
    }
    // The target again, now for the caller's writes: the file just judged
    // and nothing else. f->target is the resolved name, so never through a
    // symlink put there since; an existing file must still be the inode
    // looked at under the lock, and is truncated only once that is known
    // (else a file swapped in at its name or a directory on the way would
    // be truncated and written, one the program never opened).
    int flags = f->flags & ~(O_CLOEXEC | (f->existed ? O_TRUNC | O_CREAT : 0));
    // Before the open creates or truncates anything: its descriptor, the
    // copy the library keeps of it and one more for the program must fit.
    if (!leaves_room(f, 3))
        return fail(err, EMFILE, WLF_STEP_OPEN,
                    "open (the descriptor limit leaves no room for the program's next descriptor)", f->target);
    f->fd = sys::open(f->target, flags | O_NOFOLLOW | f->fdflags, mode);
    if (f->fd < 0) return fail(err, errno, WLF_STEP_OPEN, "open", f->target);
    if (!f->existed) return 0;
    int e = detail::is_looked_at(f->fd, f, EAGAIN);
    if (!e && (f->flags & O_TRUNC) && sys::ftruncate(f->fd, 0) != 0) e = errno;
    if (e) {
        sys::close_quietly(f->fd);
        f->fd = -1;
        return fail(err, e, WLF_STEP_OPEN, e == EAGAIN ? "open (the file changed while it was locked)" : "open", f->target);
    }
    return 0;
}

int open_dir(wlf_file *f, bool keep, wlf_error *err, bool path_only) {
    char dir[WLF_PATH_MAX];
    const char *base;
    if (int rc = detail::split_dir_base(f->target, dir, sizeof dir, &base)) return fail(err, rc, WLF_STEP_OPEN, "path", f->target);
    f->dir_fd = sys::open(dir, (path_only ? O_PATH : O_RDONLY) | O_DIRECTORY | O_CLOEXEC);
    if (f->dir_fd < 0) return fail(err, errno, WLF_STEP_OPEN, "open directory", dir);
    // Out of the way before the temp is created: the temp may be the
    // caller's descriptor, which must get the number open(2) would give.
    if (keep) f->dir_fd = detail::raise_fd(f->dir_fd, f->fd_floor);
    return 0;
}

bool reach_by_path(const wlf_file *f) { return f->target[0] == '/' && detail::lock_has_file(f->lock); }

int begin_rename(wlf_file *f, const char *path, mode_t mode, Seen *seen, wlf_error *err) {
    // An append-only directory (chattr +a) refuses the rename over an
    // existing target and the removal of a temp's name: every attempt would
    // leave a copy of the content behind for good. Written in place.
    if (f->existed && detail::lock_dir_append_only(f->lock)) return begin_staged(f, path, mode, seen, err);
    char dir[WLF_PATH_MAX];
    if (int rc = detail::split_dir_base(f->target, dir, sizeof dir, &f->base)) return fail(err, rc, WLF_STEP_OPEN, "path", f->target);
    if (!reach_by_path(f)) {
        if (int rc = open_dir(f, true, err)) return rc;
    }

    // An existing target's content must not be readable by others through a
    // named temp before its mode is copied: start private. An O_TMPFILE has
    // no name, so it may start with the target's mode (often sparing the chmod).
    mode_t create = f->existed ? 0600 : mode;
    f->fd = detail::create_anonymous_temp(temp_dir(f), f->existed ? (f->st.st_mode & 0777) : mode, f->fdflags);
    f->anonymous = f->fd >= 0;
    if (f->fd < 0 && detail::tmpfile_unsupported(errno)) {
        // A named temp is reached through a descriptor: by path, its name
        // could be left behind in a directory renamed meanwhile (a third
        // descriptor, only where the file system has no O_TMPFILE).
        if (f->dir_fd < 0) {
            if (int rc = open_dir(f, true, err)) return rc;
        }
        f->fd = detail::create_named_temp(temp_dir(f), f->base, f->suffix, create, f->fdflags,
                                          detail::lock_has_file(f->lock), f->temp, sizeof f->temp,
                                          &f->per_target_temp);
    }
    bool seeded = f->existed && !(f->flags & O_TRUNC);
    if (f->fd < 0) {
        int e = errno;
        if (f->existed) {
            // The program's own verdict comes first: its errno is the one to give.
            if (int rc = look_as_program(f, path, mode, false, seen, err)) return rc;
            // Directory not writable but the file is: write it in place
            // (the stage's descriptor gets the number the program's would).
            seen->fd.reset();
            if (e == EACCES || e == EPERM) return begin_staged(f, path, mode, seen, err);
        }
        return fail(err, e, WLF_STEP_TEMP, "create temporary file in", dir);
    }
    if (f->existed) {
        if (int rc = look_as_program(f, path, mode, seeded, seen, err)) return rc;
        if (seeded && (!seen->readable || beyond_file_size_limit(f))) {
            // Write-only for us, or more than the file-size limit lets any
            // copy hold: cannot copy, so cannot replace atomically.
            drop_temp(f);
            return begin_direct(f, WLF_COMMIT_IN_PLACE, path, mode, seen, err);
        }
        // Inode flags before the seed: some take only an empty file.
        bool attrs_kept;
        if (int rc = give_target_attrs(f, path, mode, seeded, dir, seen, &attrs_kept, err)) return rc;
        if (!attrs_kept) {
            // One the writer may not give a new inode (data journalling
            // without the privilege, a project from a user namespace):
            // written in place, where the inode keeps them all.
            drop_temp(f);
            seen->fd.reset();
            return begin_staged(f, path, mode, seen, err);
        }
        if (seeded && owner_not_ours(f)) {
            // Another user's file, which a replacement could not be given
            // (see !owner_kept below): staged before its copy takes room on
            // the disk, which an in-place update does not need.
            drop_temp(f);
            seen->fd.reset();
            return begin_staged(f, path, mode, seen, err);
        }
        if (seeded) {
            if (int rc = seed(f, path, mode, seen, err)) return rc;
        }
        const char *op = "copy metadata";
        struct stat temp_st;
        bool owner_kept;
        int rc = detail::copy_metadata(seen->fd.get(), f->st, f->fd, &temp_st, &op, &owner_kept);
        detail::StaleRetry stale;  // as in seed(): the version another client replaced
        while (stale.again_if_stale(rc, f->target)) {
            if ((rc = stat_target(f, true)) != 0) break;
            seen->fd.reset(-1);
            if ((rc = look_as_program(f, path, mode, seeded, seen, err))) return rc;
            if (seeded && (sys::ftruncate(f->fd, 0) != 0 || lseek(f->fd, 0, SEEK_SET) < 0))
                return fail(err, errno, WLF_STEP_TEMP, "copy current content", f->target);
            if (seeded && (rc = seed(f, path, mode, seen, err))) return rc;
            op = "copy metadata";
            rc = detail::copy_metadata(seen->fd.get(), f->st, f->fd, &temp_st, &op, &owner_kept);
        }
        if (rc) return fail(err, rc, WLF_STEP_TEMP, op, f->target);
        if (!owner_kept) {
            // Another user's file (or a group we are not in) that we may
            // write: a replacement would be ours and change who may read
            // it. Written in place under the lock, as open(2) would.
            drop_temp(f);
            seen->fd.reset();
            return begin_staged(f, path, mode, seen, err);
        }
        f->temp_dev = temp_st.st_dev;
        f->temp_ino = temp_st.st_ino;
    }
    if (int rc = position(f, seeded)) return fail(err, rc, WLF_STEP_OPEN, rc == EINVAL ? "open (O_DIRECT)" : "position", f->target);
    return 0;
}

// The target under the lock: lstat's answer plus the attributes open(2)
// would look at. 0, or errno (ENOENT: no such file). A shared file system's
// caches may still answer for the version another client replaced (ESTALE,
// or EBADFD from GlusterFS),
// or miss a name that was there a moment ago (ENOENT, `seen_before`):
// retried, bounded (shared_fs.hpp).
int stat_target(wlf_file *f, bool seen_before) {
    detail::StaleRetry stale;
    for (;;) {
        int rc = detail::stat_with_attrs(AT_FDCWD, f->target, AT_SYMLINK_NOFOLLOW, &f->st, &f->attrs);
        bool cached = rc == ESTALE || ((rc == EBADFD || (rc == ENOENT && seen_before)) && detail::is_shared_fs_parent(f->target));
        if (!cached || !stale.again(rc)) return rc;
    }
}

}  // namespace wrap_lockfile::detail
