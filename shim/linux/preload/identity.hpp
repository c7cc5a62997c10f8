// One coherent file (README "The shim"): while this process has a pending
// replacement of F, F's path shows the replacement's temp, the file the
// program's descriptor already is. stat/lstat/fstatat/statx and
// access/faccessat on F answer for the temp, and fstat on any descriptor of
// the temp shows it as F (see Shown); opening F for reading opens the temp,
// so the program reads what it wrote. Other processes see the old F until
// the commit. Included by handlers.hpp (it uses its thunks).
//
// The records live in identity.cpp. Nothing pending: every handler here is
// one relaxed load of g_pending before the real call; something pending: a
// comparison of the path's last component with the pending targets' names
// before any path is built.
#pragma once

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

namespace wrap_lockfile::shim {

// The identity a pending temp shows in this process: that of the file it
// replaces, so that a program comparing the descriptor it opened with the
// path it stat()ed before (vim, crudini, sqlite, cat, tar) finds one file,
// as it would without the shim. A new file shows the temp's own identity,
// which the path has after the commit.
struct Shown {
    dev_t dev;
    ino_t ino;
    // A staged replacement (a hard-linked target, written in place at the
    // commit): the temp is a memfd, so the rest is F's too.
    bool staged;
    mode_t mode;
    nlink_t nlink;
    uid_t uid;
    gid_t gid;
    int pinned;  // staged: the library's descriptor of F itself, or -1
};

// A record found for a path; valid while still_pending() says so.
struct Pending {
    int fd;  // the core's private duplicate of the temp
    int slot;
    uint32_t gen;
    dev_t dev;  // the temp's own identity
    ino_t ino;
    Shown shown;
};

// Whether the record of a pending replacement names the file `path` (taken
// from dirfd) leads to. With `follow`, the path the program opened (which may
// be a symlink to the target) counts too.
bool find_pending(int dirfd, const char *path, bool follow, Pending *out);
// Whether p's replacement is still pending (its descriptor still the temp).
bool still_pending(const Pending &p);
// p's replacement if this process is its opener and it is still pending, else null.
const wlf_file *own_pending_file(const Pending &p);
// Whether p is another process's replacement, still pending, whose temp this
// process holds a descriptor of (a child of the opener: `exec >>log`, then
// `cmd >>log`).
bool inherited_pending(const Pending &p);
// The program unlinks `path` (from dirfd), which names a target this process
// has pending: that replacement is dropped at its close instead of
// committed, as its content would then be in an unlinked file. Sets *new_file
// when the target did not exist before (it exists only for the program).
// False when nothing of ours is pending there.
bool supersede_pending(int dirfd, const char *path, bool *new_file);
// A new open file description of p's temp (its own offset) with the
// program's flags, at the number open(2) gives; -1 and errno (ENOENT: no
// /proc; ESTALE: committed meanwhile, nothing opened).
int open_pending_temp(const Pending &p, int flags);
// A write-open of p's temp again with O_DIRECT (a join): true (errno
// EINVAL, a line on stderr) when p is staged and its memfd would take what
// the target's own file system refuses (unaligned direct writes): only a
// target on the memfd's kind of file system (tmpfs) gets its answers from
// it. A first open with O_DIRECT is written in place instead (the core's
// begin_staged), which a join cannot be.
bool direct_join_refused(const Pending &p);
// What open(2) answers these flags on a regular file that exists (for the
// program: on disk or not yet): EEXIST to O_CREAT|O_EXCL, ENOTDIR to
// O_DIRECTORY; 0 to open it.
int refusal_of_existing(int flags);
// Whether dev/ino is the temp of a pending replacement; what it shows to *w.
bool pending_inode(dev_t dev, ino_t ino, Shown *w);
// p's target (normalized) into out[size]; false when p is no longer pending.
bool pending_target(const Pending &p, char *out, size_t size);
// A staged target's metadata changed (staged_meta.cpp): fstat and stat show
// st's mode, links and owner from now on (in p's opener; a child keeps what
// it copied).
void identity_restage(const Pending &p, const struct stat &st);
// Calls made by the shim and the core themselves (which look at the real
// target) go straight to libc: `caller` is the interposer's return address.
bool called_from_shim(const void *caller);

// access on a path that find_pending matched (open_pending_read and
// fopen_pending_read, declared in handlers.hpp, are the read-opens').
int access_pending(const Pending &p, int mode, int flags, Thunk pass);

#define WLF_CALLER __builtin_return_address(0)

// ---- the stat structures, told apart by overloads ----

template <class St>
bool same_inode(const St &s, dev_t dev, ino_t ino) {
    return s.st_dev == dev && s.st_ino == ino;
}
inline bool same_inode(const struct statx &s, dev_t dev, ino_t ino) {
    return makedev(s.stx_dev_major, s.stx_dev_minor) == dev && s.stx_ino == ino;
}
// What a stat of the temp shows: the identity of the file it replaces (or
// its own, for a new file) and at least one link.
template <class St>
void show(St *s, const Shown &w) {
    s->st_dev = w.dev;
    s->st_ino = w.ino;
    if (w.staged) {
        s->st_mode = w.mode;
        s->st_nlink = w.nlink;
        s->st_uid = w.uid;
        s->st_gid = w.gid;
    } else if (s->st_nlink == 0) {
        s->st_nlink = 1;
    }
}
inline void show(struct statx *s, const Shown &w) {
    s->stx_dev_major = major(w.dev);
    s->stx_dev_minor = minor(w.dev);
    s->stx_ino = w.ino;
    if (w.staged) {
        s->stx_mode = static_cast<uint16_t>(w.mode);
        s->stx_nlink = static_cast<uint32_t>(w.nlink);
        s->stx_uid = w.uid;
        s->stx_gid = w.gid;
    } else if (s->stx_nlink == 0) {
        s->stx_nlink = 1;
    }
}
template <class St>
bool pending_inode_of(const St &s, Shown *w) {
    return pending_inode(s.st_dev, s.st_ino, w);
}
inline bool pending_inode_of(const struct statx &s, Shown *w) {
    return pending_inode(makedev(s.stx_dev_major, s.stx_dev_minor), s.stx_ino, w);
}

// ---- handlers named in interpose.tbl ----

// fstat on any descriptor of a pending temp: F as this process sees it.
template <class Pass, class St>
int fstat_fd(Pass &&pass, St *buf, const void *caller) {
    int r = pass();
    Shown w;
    if (r == 0 && g_pending.load(std::memory_order_relaxed) != 0 && !called_from_shim(caller) &&
        pending_inode_of(*buf, &w))
        show(buf, w);
    return r;
}

// stat of a path: the pending temp (through by_fd, the descriptor form of the
// same call) when the path names a pending target, else the real call.
template <class Pass, class ByFd, class St>
int stat_at(Pass &&pass, ByFd &&by_fd, int dirfd, const char *path, int atflags, St *buf, const void *caller) {
    if (g_pending.load(std::memory_order_relaxed) == 0) return pass();
    // AT_EMPTY_PATH with an empty path, or (Linux 6.11) none: the descriptor itself.
    if (!path) return atflags & AT_EMPTY_PATH ? fstat_fd(pass, buf, caller) : pass();
    if (!*path) return fstat_fd(pass, buf, caller);
    Pending p;
    if (called_from_shim(caller) || !find_pending(dirfd, path, !(atflags & AT_SYMLINK_NOFOLLOW), &p)) return pass();
    int saved = errno;
    // The record was live before and after: the descriptor was the temp.
    if (by_fd(p.fd) != 0 || !same_inode(*buf, p.dev, p.ino) || !still_pending(p)) {
        errno = saved;
        return pass();
    }
    show(buf, p.shown);
    return 0;
}

template <class Pass>
int access_at(Pass &&pass, int dirfd, const char *path, int mode, int flags, const void *caller) {
    if (g_pending.load(std::memory_order_relaxed) == 0 || !path || !*path) return pass();
    Pending p;
    if (called_from_shim(caller) || !find_pending(dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW), &p)) return pass();
    return access_pending(p, mode, flags & AT_EACCESS, thunk(pass));
}

// link() and renameat2(RENAME_NOREPLACE) onto F while F is pending here: F
// exists for this program (it may not yet on disk), so EEXIST, as without
// the shim; going ahead would put the other file at F and the commit would
// then replace it, or (a rename) drop what the program wrote.
template <class Pass>
int locked_link(Pass &&pass, int fromdir, const char *from, int todir, const char *to) {
    Pending p;
    if (to && g_pending.load(std::memory_order_relaxed) != 0 && find_pending(todir, to, false, &p)) {
        errno = EEXIST;
        return -1;
    }
    return locked_rename(pass, fromdir, from, todir, to);
}

// unlink, unlinkat and remove of a target this process has pending (see
// supersede_pending): its replacement is dropped at its close, not committed
// over the unlink. One that existed only for the program (a new file) is
// unlinked as it would be: 0.
template <class Pass>
int unlink_at(Pass &&pass, int dirfd, const char *path, int flags, const void *caller) {
    if (g_pending.load(std::memory_order_relaxed) == 0 || !path || (flags & AT_REMOVEDIR) || called_from_shim(caller))
        return static_cast<int>(pass());
    bool new_file = false;
    bool ours = supersede_pending(dirfd, path, &new_file);
    int saved = errno;
    int r = static_cast<int>(pass());
    if (r != 0 && ours && new_file && errno == ENOENT) {
        errno = saved;
        return 0;
    }
    return r;
}

}  // namespace wrap_lockfile::shim
