// The state of one replacement (a wlf_file) and the steps it goes through,
// shared by the files that carry it: open_file.cpp (the path to the kind of
// replacement), posix/prepare.cpp (the temp, stage or target the caller
// writes), posix/commit.cpp, replace.cpp (the C API), handoff.cpp.
#pragma once

#include "replace_parts.hpp"  // TempDir
#include "sysio.hpp"           // UniqueFd

#include <wrap_lockfile/wrap_lockfile.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>

struct wlf_file {
    int kind;
    int fd;       // what the caller uses
    int dir_fd;   // target's directory (rename kind), or -1: reached by path
    // A staged target's own descriptor, held from the look under the lock
    // to the commit (posix/prepare.cpp, begin_staged), or -1.
    int target_fd;
    int flags;
    int fdflags;  // O_CLOEXEC, or for the caller's descriptor what it asked for
    int poison;
    int durability;
    int fd_floor;    // the library's own descriptors go at or above this
    bool anonymous;  // O_TMPFILE not yet linked
    bool staged;     // in-place kind staged in a memfd
    bool existed;
    bool per_target_temp;  // temp holds the per-target name (temp_file.cpp)
    struct stat st;   // target's lstat when it existed
    uint64_t attrs;   // its statx attributes (append-only decides the kind)
    dev_t temp_dev;   // the temp's device and inode where begin_rename
    ino_t temp_ino;   // fstat it anyway (0: not known)
    wlf_lock *lock;
    char suffix[64];
    char temp[WLF_PATH_MAX];  // named temp, relative to at_fd(); "" if none
    char target[WLF_PATH_MAX];
    const char *base;  // points into target
};

namespace wrap_lockfile::detail {

// The target's directory entries: through dir_fd, or, when the replacement
// keeps no directory descriptor, by the target's absolute path.
inline int at_fd(const wlf_file *f) { return f->dir_fd >= 0 ? f->dir_fd : AT_FDCWD; }
inline const char *at_base(const wlf_file *f) { return f->dir_fd >= 0 ? f->base : f->target; }
// Whether descriptor fd is the existing target looked at under the lock
// (f->st): 0, fstat's errno, or `mismatch` when it is another file (or the
// target did not exist then).
inline int is_looked_at(int fd, const wlf_file *f, int mismatch) {
    struct stat st;
    if (fstat(fd, &st) != 0) return errno;
    return f->existed && st.st_dev == f->st.st_dev && st.st_ino == f->st.st_ino ? 0 : mismatch;
}
inline TempDir temp_dir(const wlf_file *f) {
    if (f->dir_fd >= 0) return {f->dir_fd, "", 0};
    return {AT_FDCWD, f->target, static_cast<size_t>(f->base - f->target)};
}

// ---- the life of a wlf_file (replace.cpp) ----

// Releases f's lock; a failure goes into *rc and err unless *rc already
// holds one.
void release_lock(wlf_file *f, wlf_error *err, int *rc, bool known_owner = false);
// Closes and removes what f still owns (its temp, its lock) and frees it.
void destroy(wlf_file *f);
// fail(), then destroy(f), keeping errno.
int fail_and_destroy(wlf_file *f, wlf_error *err, int code, wlf_step step, const char *op, const char *path);

// ---- what the caller writes (posix/prepare.cpp) ----

// The target as the program's open(2) would see it (open_as_program): the
// kernel's verdict, the seed source, and whose attributes the temp gets.
// Opened after the descriptor the program gets (which must have the number
// open(2) would give), closed before open_file returns.
struct Seen {
    sys::UniqueFd fd;
    bool readable = false;
};

// The target under the lock: lstat's answer plus the attributes open(2)
// would look at. 0, or errno (ENOENT: no such file). A shared file system's
// caches may still answer for the version another client replaced (ESTALE,
// or EBADFD from GlusterFS),
// or miss a name that was there a moment ago (ENOENT, `seen_before`):
// retried, bounded (shared_fs.hpp).
int stat_target(wlf_file *f, bool seen_before = false);

// Stage the new content in memory; commit writes it into the target in place.
int begin_staged(wlf_file *f, const char *path, mode_t mode, Seen *seen, wlf_error *err);
// lock_only and in-place targets: the caller writes the final target itself,
// once the kernel has said the program may open its path. Pseudo files:
// the program's own path, opened as the program would (the kernel follows
// its links, with its protections).
int begin_direct(wlf_file *f, int kind, const char *path, mode_t mode, Seen *seen, wlf_error *err);
// The usual kind: a temp beside the target, seeded with its content and
// given its metadata, renamed over it at commit.
int begin_rename(wlf_file *f, const char *path, mode_t mode, Seen *seen, wlf_error *err);

// Whether the program keeps `spare` free descriptor numbers beside those
// the replacement holds. Asked only where the library's descriptors cannot
// stay out of the program's way: a limit below 1024 when the shim was
// loaded (its floor is three quarters of it) or lowered below the floor
// since (the lock went lower). There a replacement that took the last
// numbers would fail the program's next open or dup after its truncating
// open: a shell then gives up the redirection and its close commits an
// empty file (docs/design.md, "The shim", descriptor table).
bool leaves_room(const wlf_file *f, int spare);

// The target's directory as a descriptor: above the floor for a replacement
// that keeps it while pending (`keep`), anywhere for the moment of a commit;
// `path_only`: an O_PATH descriptor (one nobody fsyncs).
int open_dir(wlf_file *f, bool keep, wlf_error *err, bool path_only = false);

// Whether a replacement reaches its directory by path while it is pending:
// an absolute target whose lock has a file, so that the commit can check
// that the lock file still is ours at its path (a directory renamed or
// replaced meanwhile then fails the commit instead of receiving it). A
// pending replacement then holds two descriptors, its temp and its lock;
// the directory is opened only at commit, for its fsync (docs/design.md, step 7:
// a program under `ulimit -n 16` must not run out because of us).
bool reach_by_path(const wlf_file *f);

// ---- a staged replacement's metadata (posix/staged_meta.cpp) ----

// The target, open for the in-place write. The program's own chmod may
// have taken away the owner's write permission its descriptor kept (cp -p
// of a read-only file): then it is lent for the write, and given back when
// this goes, whatever happened.
struct InPlaceTarget {
    sys::UniqueFd fd;
    bool lent = false;
    mode_t mode = 0;  // the mode to give back
    ~InPlaceTarget();
};
// The target at dirfd/name opened with `flags`, lending write permission:
// only if it is the inode looked at (looked) and ours, and only our write
// permission is missing. 0 or errno (EACCES: none of that).
int open_lending_write(int dirfd, const char *name, const struct stat &looked, int flags, InPlaceTarget *out);
// After the in-place write from `stage`: the mtime and set-id bits that the
// program's metadata calls left (staged_change) made the target's again,
// and the lent permission given back. 0 or errno.
int keep_staged_meta(int stage, InPlaceTarget *t);

// ---- commit (posix/commit.cpp) ----

// The new content into place, by f's kind (f not poisoned).
int commit_steps(wlf_file *f, wlf_error *err);

}  // namespace wrap_lockfile::detail
