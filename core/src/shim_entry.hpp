// Entry points for the shim beyond the C API: a replacement whose
// descriptor has the number open(2) would have given, and what fork, dup2,
// rename and _exit do to pending replacements and locks. Internal to the
// project; not part of the C API.
#pragma once

#include <wrap_lockfile/wrap_lockfile.h>

#include <sys/stat.h>
#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <ctime>

namespace wrap_lockfile::detail {

// wlf_open with open(2) flags, for the shim (and the tests of the core).
// fd_floor > 0: the descriptors the library keeps open (temp, directory,
// lock) are moved to numbers >= fd_floor, so that a program under the shim
// still gets the lowest free descriptor. caller_fd NULL: as wlf_open. Else
// the program's descriptor is the temp itself at the number open(2) would
// have given (close-on-exec only if flags has O_CLOEXEC), returned in
// *caller_fd and owned by the caller; the replacement keeps its own
// duplicate. For pass-through targets *caller_fd is -1 and wlf_file_detach
// hands out the descriptor as usual.
int file_open(const char *path, int flags, mode_t mode, const wlf_write_options *opt, int fd_floor, wlf_file **out,
              int *caller_fd, wlf_error *err);

// wlf_commit for the shim, which has just checked that it is the opener.
int file_commit_by_opener(wlf_file *f, int *kind_out, wlf_error *err);

// The process that opened f (the lock's owner, which was asked when locking).
pid_t file_opener(const wlf_file *f);
// Whether the calling thread took f's lock (another thread's open of the
// same file waits for it, docs/design.md "The shim"); true without a lock.
bool file_locked_by_this_thread(const wlf_file *f);

// The temp's device and inode when opening f asked for them already (an
// existing target's); false: fstat f's descriptor.
bool file_temp_identity(const wlf_file *f, dev_t *dev, ino_t *ino);

// Whether f is staged: an in-place replacement written from a memfd at
// commit (a hard-linked target, a directory we may not create in).
bool file_staged(const wlf_file *f);
// A staged replacement's own descriptor of its target (held from the look
// under the lock to the commit), or -1 (none: a replacement taken over
// across exec reaches its target by name).
int file_pinned_target(const wlf_file *f);
// A second descriptor of f's temp was opened with O_SYNC or O_DSYNC: f is
// committed with durability full, as an open with them is (open_file.cpp).
void file_commit_durably(wlf_file *f);

// The open(2) flags f was opened with.
int file_open_flags(const wlf_file *f);

// Whether f's target existed when it was opened (under the lock), and then
// its lstat into *st: until the commit, the file the path names.
bool file_old_target(const wlf_file *f, struct stat *st);
// Whether f's existing target is still at its name (the commit's check,
// commit.cpp): renamed away or replaced meanwhile, the name is another
// file's, or nobody's. Always true for a new target.
bool file_target_still_looked_at(const wlf_file *f);

// A metadata call of the program (fchmod, fchown, futimens, fsetxattr,
// fremovexattr, or one of their by-path forms) as data. `now`: times NULL
// (both now); else `times` as utimensat(2) takes them (UTIME_NOW, UTIME_OMIT).
struct MetaChange {
    enum Kind { set_mode, set_owner, set_times, set_xattr, remove_xattr } kind;
    mode_t mode = 0;
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    bool now = false;
    struct timespec ts[2] = {};
    const char *name = nullptr;
    const void *value = nullptr;
    size_t size = 0;
    int flags = 0;
};

// c made on descriptor fd itself (the rename kind's temp). 0 or errno.
int change_fd(int fd, const MetaChange &c);

// c made for a staged replacement (docs/design.md, "One coherent file"):
// on the target through `pinned`, the replacement's own descriptor of it
// (file_pinned_target), while that is still the inode dev/ino looked at
// under the lock; without one (-1), on the target at `target` (absolute) if
// its name still holds that inode, never on another file there. With the
// kernel's verdict; what the in-place commit's write would undo (an
// explicit mtime, set-id bits) is carried on the staging file `stage` for
// the commit. 0 and the target's stat after it in *after; or errno, with
// *why naming a refusal of our own (nullptr: the kernel refused c).
int staged_change(const char *target, dev_t dev, ino_t ino, int pinned, int stage, const MetaChange &c,
                  struct stat *after, const char **why);

// A write into a staged replacement's staging file (a memfd: no disk
// behind it) has made it `stage` (its fstat): whether the target's file
// system, where the in-place commit will write it, has room for it, as the
// program's plain write needed (the target's own blocks count, which the
// plain run's O_TRUNC freed). Asked through `pinned` while that is still
// the inode dev/ino; nothing is reserved (the commit reserves, and fails
// cleanly: quotas and a disk filled meanwhile show only there), nothing on
// the target changes. Without a pinned descriptor (taken over across exec)
// 0. 0 or ENOSPC.
int staged_room(dev_t dev, ino_t ino, int pinned, const struct stat &stage);

// An xattr read of the program's (getxattr, listxattr and their forms) as
// data: the value of `name` into buf[size], or with no name the list of
// names. What the kernel answers: the size (with size 0, the size needed),
// or -1 and errno (ERANGE, ENODATA).
struct MetaRead {
    const char *name = nullptr;
    void *buf = nullptr;
    size_t size = 0;
};
// r of descriptor fd itself (a pending temp).
ssize_t read_fd(int fd, const MetaRead &r);
// r of a staged replacement's target, reached as staged_change reaches it
// (`pinned` while it is the inode dev/ino, else `target` if its name still
// holds that inode: ESTALE otherwise).
ssize_t staged_read(const char *target, dev_t dev, ino_t ino, int pinned, const MetaRead &r);

// For a forked child of a multi-threaded parent: the registry's mutex may
// have been held by another thread at the fork.
void lock_registry_after_fork();

// The program is about to dup2() onto descriptor `from`, which f (or its
// lock) owns: f uses `to`, a copy the caller made, from now on. True when
// `from` was f's lock descriptor: the caller made the copy inside
// lock_fd_busy(true) ... (false), and calls lock_fd_closed(from) there
// once it has closed `from`.
bool file_relocate_fd(wlf_file *f, int from, int to);

// For the shim's _exit/_Exit: the process ends now without committing; the
// kernel drops the temp's inode and the lock with it, but not the names a
// normal release removes. file_abandon unlinks a named temp and, via
// lock_abandon, the lock file (only while it still names the inode this
// process holds) and unlocks the open file description (children may share
// it). Nothing is freed; only async-signal-safe system calls; idempotent.
void file_abandon(wlf_file *f);

// Whether the lock file that `fd` (a descriptor of ours whose flock was
// refused) is open on is flock()ed through an open file description of
// this very process's descriptors that the library does not hold (none it
// marked, lock_file.hpp lock_fd_mark): the program's own lock (it
// flock()ed X.lock, or flock(1) did on the shell's `9>>X.lock`, then it
// writes or renames onto X). The shim, which locks X.lock, would wait for
// it forever. An fstat and a read of /proc/self/fdinfo (false when that
// cannot be read).
bool lock_file_held_by_program(int fd);
// The shim copies one of its descriptors aside for a dup2 (relocate_internal):
// a lock's copy holds the flock before file_relocate_fd marks it, and its
// old number is unmarked by lock_fd_closed after its close; the whole move
// is a busy window, between lock_fd_busy(true) and lock_fd_busy(false)
// (lock_file.hpp).
void lock_fd_busy(bool begin);
void lock_fd_closed(int fd);
// The op of the EDEADLK that a lock acquisition under the shim's policy
// (lock_refuse_ancestor_holders) gives when the program holds the lock
// itself, through a description of its own: the shim then writes or
// renames without our lock.
extern const char kLockHeldByProgram[];
inline bool held_by_program(int rc, const wlf_error &err) {
    return rc == EDEADLK && err.step == WLF_STEP_LOCK && err.op == kLockHeldByProgram;
}

// For the shim's _exit/_Exit in the opener: commits f like wlf_commit (the
// same steps, the same error in *err), then removes a failed commit's named
// temp and releases the lock as lock_abandon does (a reference shared with
// another pending replacement only drops its count). Frees nothing and
// takes no mutex: only async-signal-safe calls. The caller holds the lock
// registry's mutex through lock_registry_trylock (never blocking: _exit may
// run in a signal handler that interrupted the registry's holder).
int file_commit_at_exit(wlf_file *f, int *kind_out, wlf_error *err);
bool lock_registry_trylock();
void lock_registry_unlock();

}  // namespace wrap_lockfile::detail
