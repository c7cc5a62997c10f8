// Committing a replacement: fsync the temp, rename it over the target,
// fsync the directory (docs/design.md, "Replacement"; durability batch defers
// that fsync: batch_sync.hpp); or write a staged
// content into the target in place; or close what the caller wrote directly.
#include "batch_sync.hpp"
#include "internal.hpp"
#include "lock_internal.hpp"
#include "replace_parts.hpp"
#include "replacement.hpp"
#include "shared_fs.hpp"
#include "shim_entry.hpp"
#include "sysio.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>  // RENAME_NOREPLACE

using namespace wrap_lockfile;
using detail::at_base;
using detail::at_fd;
using detail::open_dir;
using detail::temp_dir;
using detail::fail;

namespace {

// Length of the target's directory in f->target ("/" for a file at the root).
size_t dir_len(const wlf_file *f) {
    size_t n = static_cast<size_t>(f->base - f->target);
    return n > 1 ? n - 1 : n;
}

// Opens the target for its in-place write: the file looked at under the
// lock (and judged by the open check), or nothing. Something renamed or
// mounted over the name since (a newer file of somebody's, a FIFO, a
// device, another file bound there) was never opened by the program:
// writing it would destroy it, and even opening it can act (a FIFO's
// waiting reader is let go, a tape rewinds). So the name is looked at
// through an O_PATH descriptor, which opens nothing, and only the inode
// looked at under the lock is then opened for writing, through
// /proc/self/fd (without /proc: by name, checked after). Through the
// directory descriptor when one is held; never blocking on a FIFO (a lease
// is waited for, as open(2) does). A staged target the program chmod()ed
// read-only meanwhile is written all the same, as its descriptor would be
// (open_lending_write). Nothing is written yet, so a failure is the commit
// check's step (WLF_STEP_RENAME).
int open_in_place(wlf_file *f, detail::InPlaceTarget *out, wlf_error *err) {
    constexpr int kFlags = O_WRONLY | O_CLOEXEC | O_NOCTTY;
    if (f->target_fd >= 0) {
        // A staged target held since the look (begin_staged): that inode,
        // written from the start (the look's O_APPEND and O_NONBLOCK off;
        // the seed read it to the end).
        out->fd.reset(f->target_fd);
        f->target_fd = -1;
        if (sys::fcntl(out->fd.get(), F_SETFL, 0) != 0 || lseek(out->fd.get(), 0, SEEK_SET) < 0)
            return fail(err, errno, WLF_STEP_RENAME, "open for in-place write", f->target);
        return 0;
    }
    auto open_waiting = [](int dirfd, const char *name, int flags) {
        int fd = sys::openat(dirfd, name, flags | O_NONBLOCK);
        return fd < 0 && errno == EWOULDBLOCK ? sys::openat(dirfd, name, flags) : fd;
    };
    sys::UniqueFd looked(sys::openat(at_fd(f), at_base(f), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!looked) return fail(err, errno, WLF_STEP_RENAME, "open for in-place write", f->target);
    if (int e = detail::is_looked_at(looked.get(), f, ESTALE))
        return fail(err, e, WLF_STEP_RENAME, "in-place write (the file was replaced meanwhile)", f->target);
    int fd = open_waiting(AT_FDCWD, sys::ProcFdPath(looked.get()).c_str(), kFlags);
    // No /proc: the name, then the check.
    if (fd < 0 && errno == ENOENT) fd = open_waiting(at_fd(f), at_base(f), kFlags | O_NOFOLLOW);
    if (fd >= 0) {
        out->fd.reset(fd);
    } else if (errno != EACCES || !f->staged) {
        return fail(err, errno, WLF_STEP_RENAME, "open for in-place write", f->target);
    } else if (int e = detail::open_lending_write(at_fd(f), at_base(f), f->st, kFlags | O_NONBLOCK, out)) {
        return fail(err, e, WLF_STEP_RENAME, "open for in-place write", f->target);
    }
    if (int e = detail::is_looked_at(out->fd.get(), f, ESTALE))
        return fail(err, e, WLF_STEP_RENAME, "in-place write (the file was replaced meanwhile)", f->target);
    return 0;
}

// After the in-place write (or none, `written` false): a staged target gets
// back the times and set-id bits the program's metadata calls set, and what
// was written is flushed and closed.
int finish_in_place(wlf_file *f, int src, detail::InPlaceTarget *dst, bool written, wlf_error *err) {
    if (f->staged) {
        if (int rc = detail::keep_staged_meta(src, dst))
            return fail(err, rc, WLF_STEP_IN_PLACE, "restore the times and mode set", f->target);
    }
    if (written && f->durability != WLF_DURABILITY_NONE && sys::fsync(dst->fd.get()) != 0)
        return fail(err, errno, WLF_STEP_IN_PLACE, "fsync", f->target);
    int fd = dst->fd.release();
    if (sys::close(fd) != 0) return fail(err, errno, WLF_STEP_IN_PLACE, "close", f->target);
    return 0;
}

// Copies the whole staged content into the target, then cuts it to size;
// a staged one then gets back what the program's metadata calls set and
// the write undid (staged_meta.cpp).
int write_in_place(wlf_file *f, int src, wlf_error *err) {
    detail::InPlaceTarget dst;
    if (int rc = open_in_place(f, &dst, err)) return rc;
    // The library reads the content back with buffers of its own: without
    // O_DIRECT (a rename's temp, when the rename fell back to this, has the
    // program's), else the copy stops at an unaligned end with EINVAL,
    // halfway through the target.
    if (f->flags & O_DIRECT) {
        int fl = sys::fcntl(src, F_GETFL);
        if (fl < 0 || ((fl & O_DIRECT) && sys::fcntl(src, F_SETFL, fl & ~O_DIRECT) != 0))
            return fail(err, errno, WLF_STEP_IN_PLACE, "read staged content", f->target);
    }
    off_t size = lseek(src, 0, SEEK_END);
    if (size < 0 || lseek(src, 0, SEEK_SET) < 0) return fail(err, errno, WLF_STEP_IN_PLACE, "seek staged content", f->target);
    // The blocks first: a staged copy lives in memory, so the program's own
    // writes may not have met a full disk (staged_room only asks), and a copy
    // stopped by ENOSPC half way would leave the target truncated and torn.
    // A sparse content (a program's seeks past the end, cp --sparse) gets
    // blocks and writes for its data alone, its holes punched in the target.
    struct stat src_st, dst_st;
    if (sys::fstat(src, &src_st) != 0) return fail(err, errno, WLF_STEP_IN_PLACE, "stat staged content", f->target);
    if (sys::fstat(dst.fd.get(), &dst_st) != 0) return fail(err, errno, WLF_STEP_RENAME, "stat", f->target);
    // Nothing to write: the target already holds exactly this content (an
    // open for writing that wrote nothing: `true >> f`, `exec 9>>f` for a
    // lock). A rewrite would move its mtime, and the kernel would clear its
    // file capability and set-id bits, all of which the plain open leaves.
    // (A program's rewrite of identical bytes then leaves them too.) The
    // target is read through a descriptor of its own (ours writes only);
    // where it cannot be read, it is written.
    if (dst_st.st_size == size) {
        sys::UniqueFd reader(sys::open(sys::ProcFdPath(dst.fd.get()).c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
        if (reader && detail::same_content(src, reader.get(), size)) return finish_in_place(f, src, &dst, false, err);
    }
    if (int rc = detail::reserve_in_place(dst.fd.get(), size, &dst_st, src, &src_st))
        return fail(err, rc, WLF_STEP_RENAME, "reserve space for the in-place write of", f->target);
    int rc = detail::is_sparse(src_st) ? detail::copy_sparse(src, dst.fd.get(), size, dst_st.st_size)
                                       : detail::copy_range(src, dst.fd.get());
    if (rc) return fail(err, rc, WLF_STEP_IN_PLACE, "write in place", f->target);
    if (sys::ftruncate(dst.fd.get(), size) != 0) return fail(err, errno, WLF_STEP_IN_PLACE, "truncate in place", f->target);
    return finish_in_place(f, src, &dst, true, err);
}

// A new target opened with O_EXCL, from a named temp: named without ever
// replacing a file that appeared at the name meanwhile. renameat2's
// RENAME_NOREPLACE, or where a file system lacks it a hard link (EEXIST
// too) and the temp name's removal. 0 or errno.
int name_exclusively(wlf_file *f) {
    if (sys::call(SYS_renameat2, at_fd(f), sys::arg(f->temp), at_fd(f), sys::arg(at_base(f)), RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS) return errno;  // ENOSYS: an old kernel, a seccomp profile
    if (sys::linkat(at_fd(f), f->temp, at_fd(f), at_base(f), 0) != 0) return errno;
    (void)unlinkat(at_fd(f), f->temp, 0);
    return 0;
}

int commit_direct(wlf_file *f, wlf_error *err) {
    int rc = 0;
    if (f->durability != WLF_DURABILITY_NONE && f->kind == WLF_COMMIT_IN_PLACE && sys::fsync(f->fd) != 0)
        rc = fail(err, errno, WLF_STEP_IN_PLACE, "fsync", f->target);
    int fd = f->fd;
    f->fd = -1;
    if (sys::close(fd) != 0 && rc == 0) rc = fail(err, errno, WLF_STEP_IN_PLACE, "close", f->target);
    return rc;
}

int commit_rename(wlf_file *f, wlf_error *err) {
    // The WLF_MUTANT_* macros exist only for the fault suite's mutation check
    // (tests/faultfs): its crash-state test must catch a build without them.
#ifndef WLF_MUTANT_NO_TEMP_FSYNC
    if (f->durability != WLF_DURABILITY_NONE && sys::fsync(f->fd) != 0)
        return fail(err, errno, WLF_STEP_FSYNC, "fsync temporary file for", f->target);
#endif
    // The directory, opened only now (see reach_by_path), then checked: the
    // lock file in it must still be ours. From here on the check, the link,
    // the rename, the fsync and the lock file's removal at the release all
    // go through that one descriptor: by path, a directory swapped after the
    // check (a symlink put at a component by whoever may write its parent)
    // would receive the new content over its own file, and lose its f.lock.
    // Without fsync an O_PATH descriptor is enough.
    bool by_path = f->dir_fd < 0;
    const bool path_only = f->durability == WLF_DURABILITY_NONE;
    if (by_path) {
        if (int rc = open_dir(f, false, err, path_only)) {
            // Renamed while pending (`mv d d2`): where the lock file went.
            if (rc != ENOENT || !detail::lock_has_file(f->lock) ||
                (f->dir_fd = detail::lock_file_dir_now(f->lock, path_only)) < 0)
                return rc;
        }
    }
    // A directory held since the open (a named temp) is checked too: it was
    // opened after the lock, by path, and may not be the lock's. One the
    // path leads to no longer holds our lock file when ours was renamed (and
    // perhaps another put at its name): the lock file's directory is then
    // the one the program's file went with, as a named temp's held
    // descriptor follows it, and the commit goes there, checked the same way.
    if (detail::lock_has_file(f->lock) && !detail::lock_file_still_ours(f->lock, f->dir_fd)) {
        int moved = by_path ? detail::lock_file_dir_now(f->lock, path_only) : -1;
        if (moved < 0 || !detail::lock_file_still_ours(f->lock, moved)) {
            if (moved >= 0) sys::close(moved);
            return fail(err, ESTALE, WLF_STEP_RENAME, "commit (the directory was renamed or replaced meanwhile)", f->target);
        }
        sys::close(f->dir_fd);
        f->dir_fd = moved;
    }
    if (!detail::file_target_still_looked_at(f))
        return fail(err, ESTALE, WLF_STEP_RENAME, "commit (the file was replaced or removed meanwhile)", f->target);
    // A new target is linked straight to its name: no temp name, no
    // rename. Something there now (made by a writer that does not lock) is
    // replaced as any existing target is when the program's open truncates
    // (O_TRUNC: the plain open would have emptied it). Otherwise it stays
    // and the commit fails: with O_EXCL as its open would have (git's
    // index.lock, a shell's noclobber), with EEXIST; an append or a write
    // without O_TRUNC would have kept its content (appended to it, written
    // over a part), which a replacement loses: ESTALE. A file this very
    // lock's last commit put there (a nested replacement's) is replaced.
    bool linked = false;
    const bool exclusive = !f->existed && (f->flags & O_CREAT) && (f->flags & O_EXCL);
    const bool keeps_content = !f->existed && !exclusive && !(f->flags & O_TRUNC);
    auto refuse_newcomer = [&](int rc, const char *what) {
        if (rc == EEXIST && exclusive)
            return fail(err, rc, WLF_STEP_RENAME, "name new file (O_EXCL: created meanwhile by another writer)", f->target);
        if (rc == EEXIST)
            return fail(err, ESTALE, WLF_STEP_RENAME,
                        "commit (a file was created meanwhile by another writer; this open without O_TRUNC would "
                        "have kept its content)",
                        f->target);
        return fail(err, rc, WLF_STEP_RENAME, what, f->target);
    };
    auto ours_there = [&] {
        struct stat now;
        return sys::fstatat(at_fd(f), at_base(f), &now, AT_SYMLINK_NOFOLLOW) == 0 &&
               detail::lock_last_commit_was(f->lock, now.st_dev, now.st_ino);
    };
    if (f->anonymous && !f->existed) {
        int rc = detail::link_anonymous_as(f->fd, detail::TempDir{at_fd(f), "", 0}, at_base(f));
        if (rc != 0 && (rc != EEXIST || exclusive || (keeps_content && !ours_there())))
            return refuse_newcomer(rc, "link new file");
        linked = rc == 0;
    }
    if (f->anonymous && !linked) {
        if (int rc = detail::link_anonymous_temp(f->fd, temp_dir(f), f->base, f->suffix,
                                                 detail::lock_has_file(f->lock), f->temp, sizeof f->temp))
            return fail(err, rc, WLF_STEP_RENAME, "name temporary file for", f->target);
    }
    f->anonymous = false;
    if ((exclusive || keeps_content) && !linked && (exclusive || !ours_there())) {
        int rc = name_exclusively(f);
        if (rc) return refuse_newcomer(rc, "name new file");
        linked = true;
    }
    int fd = f->fd;
    f->fd = -1;
    if (!linked && sys::renameat(at_fd(f), f->temp, at_fd(f), at_base(f)) != 0) {
        int e = errno;
        if (e != EBUSY && e != EPERM) {
            sys::close_quietly(fd);
            return fail(err, e, WLF_STEP_RENAME, "rename temporary file over", f->target);
        }
        // A single-file bind mount cannot be renamed over, nor another
        // user's file in a sticky directory (EPERM), which the program may
        // write all the same: write in place. (An immutable or append-only
        // target refuses the in-place open below too.)
        f->kind = WLF_COMMIT_IN_PLACE;
        int rc = write_in_place(f, fd, err);
        sys::close_quietly(fd);
        return rc;
    }
    f->temp[0] = '\0';
    if (f->temp_ino) detail::lock_note_commit(f->lock, f->temp_dev, f->temp_ino);
    int rc = 0;
    if (sys::close(fd) != 0) rc = fail(err, errno, WLF_STEP_FSYNC_DIR, "close", f->target);
#ifndef WLF_MUTANT_NO_DIR_FSYNC
    if (f->durability == WLF_DURABILITY_FULL && sys::fsync(f->dir_fd) != 0 && rc == 0)
        rc = fail(err, errno, WLF_STEP_FSYNC_DIR, "fsync directory of", f->target);
#endif
    // batch: deferred, once per directory (batch_sync.hpp).
    if (f->durability == WLF_DURABILITY_BATCH && rc == 0) rc = detail::defer_dir_sync(f->dir_fd, f->target, dir_len(f), err);
    return rc;
}

}  // namespace

// Whether an existing target is still the file looked at under the lock
// (and seeded from). A file renamed over its name since by a writer that
// does not lock stays: without the shim the program's writes went to the
// file that rename orphaned. One removed stays removed. And a directory
// swapped in before the look and back before the commit (the look saw
// another directory's file, perhaps somebody's secret) gives nothing of
// that file to this one. A shared file system's cache may miss the name
// for a moment (shared_fs.hpp): only a file seen there counts. A stale
// handle (ESTALE, GlusterFS's EBADFD) is what a client answers for a file
// another client replaced: looked at again (bounded), and where the answer
// never comes, not committed. A nested
// replacement of the same target under the same lock that committed first
// put its own file there: that one is replaced (the last commit wins).
// Identities only: straight to the kernel (sysio.hpp).
bool detail::file_target_still_looked_at(const wlf_file *f) {
    if (!f->existed) return true;
    struct stat now;
    detail::StaleRetry stale;
    while (sys::fstatat(at_fd(f), at_base(f), &now, AT_SYMLINK_NOFOLLOW) != 0) {
        int e = errno;
        if (!detail::is_stale_handle(e, f->target)) return e != ENOENT || detail::is_shared_fs_parent(f->target);
        if (!stale.again(ESTALE)) return false;
    }
    return (now.st_dev == f->st.st_dev && now.st_ino == f->st.st_ino) ||
           detail::lock_last_commit_was(f->lock, now.st_dev, now.st_ino);
}

// The new content into place, by f's kind (f not poisoned).
int detail::commit_steps(wlf_file *f, wlf_error *err) {
    if (f->kind == WLF_COMMIT_RENAME) return commit_rename(f, err);
    if (f->staged) return write_in_place(f, f->fd, err);
    return commit_direct(f, err);
}
