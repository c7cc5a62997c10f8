// Metadata of a staged replacement (docs/design.md, "One coherent file"):
// the program's descriptor is the staging file (a memfd), while the file on
// disk stays the target until the commit writes the staged content into it
// in place. A metadata call the program makes on that descriptor, or on the
// target's path, is made on the target itself, with the kernel's verdict;
// the staging file carries what the commit's write would undo, and the
// commit restores it:
// - an explicit mtime: the write sets the mtime to "now". The staging
//   file's sticky bit says its mtime is the program's (set by the call, or
//   by a write of its own after it, as the target's would be);
// - set-id bits: a write by a process without CAP_FSETID clears them. The
//   staging file gets the target's set-id bits (and group-execute bit,
//   which decides for S_ISGID) after each chmod or chown: a later write
//   into the staging file clears them as it would the target's, and what is
//   left at the commit is what a plain run leaves.
#include "internal.hpp"
#include "replacement.hpp"
#include "shim_entry.hpp"
#include "sysio.hpp"

#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace wrap_lockfile::detail {

namespace {

constexpr mode_t kSetId = S_ISUID | S_ISGID;
constexpr mode_t kTimesMark = S_ISVTX;
constexpr char kCapability[] = "security.capability";

bool same_file(const struct stat &st, dev_t dev, ino_t ino) { return st.st_dev == dev && st.st_ino == ino; }

// c on the file behind the O_PATH descriptor fd. 0 or errno.
int change_path_fd(int fd, const MetaChange &c) {
    const sys::ProcFdPath proc_name(fd);
    const char *proc = proc_name.c_str();
    long r = -1;
    switch (c.kind) {
    case MetaChange::set_mode: r = sys::call(SYS_fchmodat, AT_FDCWD, sys::arg(proc), static_cast<long>(c.mode)); break;
    case MetaChange::set_owner:
        r = sys::call(SYS_fchownat, fd, sys::arg(""), static_cast<long>(c.uid), static_cast<long>(c.gid), AT_EMPTY_PATH);
        break;
    case MetaChange::set_times: r = sys::call(SYS_utimensat, AT_FDCWD, sys::arg(proc), c.now ? 0 : sys::arg(c.ts), 0); break;
    case MetaChange::set_xattr:
        r = sys::call(SYS_setxattr, sys::arg(proc), sys::arg(c.name), sys::arg(c.value), static_cast<long>(c.size),
                      c.flags);
        break;
    case MetaChange::remove_xattr: r = sys::call(SYS_removexattr, sys::arg(proc), sys::arg(c.name)); break;
    }
    return r == 0 ? 0 : errno;
}

// Whether `pinned`, the replacement's own descriptor of its target (held
// since the look, begin_staged), is still the inode dev/ino: a commit in
// another thread may have closed the number, and it may have been reused.
// Its stat into *st.
bool pinned_is_target(int pinned, dev_t dev, ino_t ino, struct stat *st) {
    return pinned >= 0 && sys::fstat(pinned, st) == 0 && same_file(*st, dev, ino);
}

// The staged target dev/ino by its name, looked at and acted on through one
// O_PATH descriptor of it: a file swapped in at the name (or a directory on
// the way) is never touched. None when the name holds another file.
sys::UniqueFd named_target(const char *target, dev_t dev, ino_t ino, struct stat *st) {
    const char *base;
    sys::UniqueFd dir(open_parent(target, &base));
    sys::UniqueFd file(dir ? sys::openat(dir.get(), base, O_PATH | O_NOFOLLOW | O_CLOEXEC) : -1);
    if (!file || sys::fstat(file.get(), st) != 0 || !same_file(*st, dev, ino)) return sys::UniqueFd();
    return file;
}

// What the commit needs of c, on the staging file (see the top of this file).
int carry_on_stage(int stage, const MetaChange &c, const struct stat &before, const struct stat &after) {
    struct stat st;
    if (sys::fstat(stage, &st) != 0) return errno;
    mode_t mode = st.st_mode & 07777;
    if (c.kind == MetaChange::set_times) {
        // The access time too, so that fstat shows it; but never one of
        // 1970-01-01 00:00:00, which with the sticky bit is a child's
        // error mark (the shim's child_errors.cpp).
        struct timespec ts[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
        if (!c.now) {
            ts[0] = c.ts[0].tv_nsec != UTIME_NOW && c.ts[0].tv_nsec != UTIME_OMIT && c.ts[0].tv_sec == 0
                        ? timespec{0, UTIME_OMIT}
                        : c.ts[0];
            ts[1] = c.ts[1];
        }
        if (sys::call(SYS_utimensat, stage, 0, sys::arg(ts), 0) != 0) return errno;
        if (ts[1].tv_nsec == UTIME_NOW) mode &= ~kTimesMark;  // the commit's own "now" will do
        else if (ts[1].tv_nsec != UTIME_OMIT) mode |= kTimesMark;
    }
    // After a chmod or chown the bits are the target's (chown clears them,
    // chmod may set them); an xattr counts when it changed the mode (an ACL).
    if (c.kind == MetaChange::set_mode || c.kind == MetaChange::set_owner || before.st_mode != after.st_mode) {
        mode = (mode & ~(kSetId | S_IXGRP)) | (after.st_mode & (kSetId | S_IXGRP));
    }
    if (mode != (st.st_mode & 07777) && sys::call(SYS_fchmod, stage, static_cast<long>(mode)) != 0) return errno;
    return 0;
}

}  // namespace

int change_fd(int fd, const MetaChange &c) {
    long r = -1;
    switch (c.kind) {
    case MetaChange::set_mode: r = sys::call(SYS_fchmod, fd, static_cast<long>(c.mode)); break;
    case MetaChange::set_owner: r = sys::call(SYS_fchown, fd, static_cast<long>(c.uid), static_cast<long>(c.gid)); break;
    case MetaChange::set_times: r = sys::call(SYS_utimensat, fd, 0, c.now ? 0 : sys::arg(c.ts), 0); break;
    case MetaChange::set_xattr:
        r = sys::call(SYS_fsetxattr, fd, sys::arg(c.name), sys::arg(c.value), static_cast<long>(c.size), c.flags);
        break;
    case MetaChange::remove_xattr: r = sys::call(SYS_fremovexattr, fd, sys::arg(c.name)); break;
    }
    return r == 0 ? 0 : errno;
}

int staged_change(const char *target, dev_t dev, ino_t ino, int pinned, int stage, const MetaChange &c,
                  struct stat *after, const char **why) {
    *why = nullptr;
    // The in-place write at the close removes a file capability, whoever
    // has set it: refused rather than dropped then.
    if (c.kind == MetaChange::set_xattr && c.name && strcmp(c.name, kCapability) == 0) {
        *why = "a file capability would not survive the in-place write at the close";
        return EPERM;
    }
    struct stat before;
    // The target's own descriptor: the inode the program opened, wherever
    // its names are now, and never another that got its number.
    if (pinned_is_target(pinned, dev, ino, &before)) {
        if (int e = change_fd(pinned, c)) return e;
        int e = sys::fstat(pinned, after) != 0 ? errno : carry_on_stage(stage, c, before, *after);
        if (e) *why = "the change could not be kept for the in-place write at the close";
        return e;
    }
    // None (taken over across exec): the name.
    sys::UniqueFd file = named_target(target, dev, ino, &before);
    if (!file) {
        *why = "the file it writes is no longer at its name";
        return ESTALE;
    }
    if (int e = change_path_fd(file.get(), c)) {
        if (e == ENOENT && c.kind != MetaChange::set_owner) {
            *why = "the file can be reached only through /proc, which is not mounted";
            return EPERM;
        }
        return e;
    }
    int e = sys::fstat(file.get(), after) != 0 ? errno : carry_on_stage(stage, c, before, *after);
    if (e) *why = "the change could not be kept for the in-place write at the close";
    return e;
}

int staged_room(dev_t dev, ino_t ino, int pinned, const struct stat &stage) {
    struct stat target;
    // Checked first, as in staged_change: the number may have been closed
    // by a commit in another thread, and reused.
    if (pinned < 0 || sys::fstat(pinned, &target) != 0 || !same_file(target, dev, ino)) return 0;
    // What the writes allocated, not the size: a hole the program left by
    // seeking (or ftruncate) takes no blocks in its plain run either. The
    // plain run's O_TRUNC freed the target's blocks first: they count as
    // room.
    off_t used = static_cast<off_t>(stage.st_blocks) * 512;
    if (used > stage.st_size) used = stage.st_size;
    off_t have = static_cast<off_t>(target.st_blocks) * 512;
    if (used <= have) return 0;
    auto need = static_cast<unsigned long long>(used - have);
    // A file written in small pieces asks again only once it has grown by a
    // quarter of the room seen last (a writer in 4 KiB pieces would
    // otherwise pay an fstatfs for each): an estimate either way, which the
    // commit's reservation makes exact.
    thread_local struct {
        dev_t dev;
        unsigned long long need, room;
    } last{};
    if (last.room && last.dev == target.st_dev && need >= last.need && need - last.need < last.room / 4) return 0;
    struct statfs fs;
    if (fstatfs(pinned, &fs) != 0) return 0;
    // Root may use the blocks ext4 reserves for it.
    unsigned long long blocks = geteuid() == 0 ? fs.f_bfree : fs.f_bavail;
    unsigned long long room = blocks * (fs.f_frsize ? fs.f_frsize : fs.f_bsize);
    if (need > room) return ENOSPC;
    last = {target.st_dev, need, room - need};
    return 0;
}

ssize_t read_fd(int fd, const MetaRead &r) {
    return r.name ? sys::call(SYS_fgetxattr, fd, sys::arg(r.name), sys::arg(r.buf), static_cast<long>(r.size))
                  : sys::call(SYS_flistxattr, fd, sys::arg(r.buf), static_cast<long>(r.size));
}

ssize_t staged_read(const char *target, dev_t dev, ino_t ino, int pinned, const MetaRead &r) {
    struct stat st;
    if (pinned_is_target(pinned, dev, ino, &st)) return read_fd(pinned, r);
    sys::UniqueFd file = named_target(target, dev, ino, &st);
    if (!file) {
        errno = ESTALE;
        return -1;
    }
    // An O_PATH descriptor reads nothing itself: through its /proc name.
    const sys::ProcFdPath proc(file.get());
    return r.name ? sys::call(SYS_getxattr, sys::arg(proc.c_str()), sys::arg(r.name), sys::arg(r.buf),
                              static_cast<long>(r.size))
                  : sys::call(SYS_listxattr, sys::arg(proc.c_str()), sys::arg(r.buf), static_cast<long>(r.size));
}

InPlaceTarget::~InPlaceTarget() {
    if (lent) (void)sys::call(SYS_fchmod, fd.get(), static_cast<long>(mode));
}

int open_lending_write(int dirfd, const char *name, const struct stat &looked, int flags, InPlaceTarget *out) {
    sys::UniqueFd file(sys::openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    struct stat st;
    if (!file || sys::fstat(file.get(), &st) != 0) return errno;
    // Only the file the program opened, ours, and only when our own write
    // permission is what is missing: anything else is the kernel's EACCES.
    if (!same_file(st, looked.st_dev, looked.st_ino) || st.st_uid != geteuid() || (st.st_mode & S_IWUSR))
        return EACCES;
    const sys::ProcFdPath proc_name(file.get());
    const char *proc = proc_name.c_str();
    const mode_t mode = st.st_mode & 07777;
    if (sys::call(SYS_fchmodat, AT_FDCWD, sys::arg(proc), static_cast<long>(mode | S_IWUSR)) != 0) return EACCES;
    // Through the magic link, which O_NOFOLLOW would refuse.
    int fd = sys::open(proc, flags & ~O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        (void)sys::call(SYS_fchmodat, AT_FDCWD, sys::arg(proc), static_cast<long>(mode));
        return e;
    }
    out->fd.reset(fd);
    out->lent = true;
    out->mode = mode;
    return 0;
}

int keep_staged_meta(int stage, InPlaceTarget *t) {
    struct stat s, now;
    if (sys::fstat(stage, &s) != 0 || sys::fstat(t->fd.get(), &now) != 0) return errno;
    if (s.st_mode & kTimesMark) {
        struct timespec ts[2] = {{0, UTIME_OMIT}, s.st_mtim};
        if (sys::call(SYS_utimensat, t->fd.get(), 0, sys::arg(ts), 0) != 0) return errno;
    }
    // The set-id bits the staging file kept, which the write may have
    // cleared here; the mode lent for the write given back.
    const mode_t mode = now.st_mode & 07777;
    // (A lent mode's own set-id bits predate the write, which clears them
    // when the program's write would have: only what survived it counts.)
    const mode_t want = ((t->lent ? t->mode : mode) & ~kSetId) | (mode & kSetId) | (s.st_mode & kSetId);
    if (want != mode && sys::call(SYS_fchmod, t->fd.get(), static_cast<long>(want)) != 0) return errno;
    t->lent = false;
    return 0;
}

}  // namespace wrap_lockfile::detail
