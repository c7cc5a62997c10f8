// What each interposed libc call does, as small templates over `pass` (the
// real call with the original arguments). The fast paths (read-only opens,
// untracked descriptors, successful writes) are inline and cost a flag test
// or one table load (fd_table.hpp); everything else is out of line, in the
// file named beside its declaration below. Replacement itself is the core's.
#pragma once

#include "dirfd_cache.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "fd_table.hpp"
#include "thunk.hpp"

struct wlf_file;

extern char **environ;

namespace wrap_lockfile::shim {

// ---- the out-of-line code ----

// open.cpp
constexpr int kNotMatched = -2;
// Opens `path` as a pending replacement if a rule matches: the new fd, -1
// with errno, or kNotMatched.
int open_matched(int dirfd, const char *path, int flags, mode_t mode);
// The open family's write-opens: a pending replacement if a rule matches the
// path or its symlink target, else the real open (through open_with).
int open_write(int dirfd, const char *path, int flags, mode_t mode, OpenThunk open_with);
// close.cpp
int close_tracked(int fd, Thunk pass);
int fclose_tracked(FILE *stream, int fd, Thunk pass);
int fcloseall_tracked(Thunk pass);
int close_range_tracked(unsigned first, unsigned last, int flags);
// child_errors.cpp: a child marks the temp behind an inherited descriptor
// with its write error; the opener reads the mark at commit (0: none).
void report_child_error(int fd, int error);
// lifecycle.cpp: whether this is a vfork child (another pid in the memory
// of the process the shim was loaded or forked into).
bool in_vfork_child();
int child_error(int fd);
// stdio.cpp
FILE *fopen_matched(const char *path, const char *mode, bool *matched);
FILE *freopen_tracked(const char *path, const char *mode, FILE *stream, Thunk pass);
// truncate.cpp
int truncate_matched(const char *path, off_t length, bool *matched);
// identity.cpp: the records of pending replacements (see identity.hpp).
// identity_add is given the normalized path the program opened and its raw
// form (both nullptr for a replacement taken over across exec), and the
// opener's pid (this process).
void identity_add(const wlf_file *f, const char *opened, const char *opened_raw, pid_t opener);
// Forgets f's record; true if the program renamed something onto f's target
// since (identity_supersede): then f must be discarded, not committed.
// `me`: this process's pid (the opener's, which the caller checked).
bool identity_remove(const wlf_file *f, pid_t me);
void identity_supersede(const char *target);
// identity_remove's answer without taking a lock or forgetting anything (_exit).
bool identity_superseded(const wlf_file *f);
void identity_relocate(int from, int to);
// commit.cpp: the program renames or links `path`, a target this process
// has pending, elsewhere: the replacement is committed first, so that the
// name moves (or links) the file the program wrote, and its descriptors
// then write that file. 0, or the commit's errno.
int commit_pending_at(int dirfd, const char *path);
// Other processes' pending files this one still holds, for the next image:
// envp with WRAP_LOCKFILE_VIEW added (malloc'd; identity_exec_failed frees
// it when the exec fails), or envp itself. identity_import takes them over.
char *const *identity_exec_env(char *const *envp);
void identity_exec_failed(char *const *env);
void identity_import();
// rename.cpp
int rename_locked(int fromdir, const char *from, int todir, const char *to, Thunk pass);
// exec_handover.cpp. How an exec names its program: a path, a file to look up in PATH, or a
// descriptor (not examined).
enum class ExecLookup { path, search, fd };
char *const *exec_prepare(char *const *envp, const char *program, ExecLookup how, bool *prepared);
void exec_failed(char *const *newenv);
// lifecycle.cpp: _exit/_Exit/quick_exit in the opener: commit without
// flushing stdio or freeing anything, or (the shim busy) abandon;
// async-signal-safe. False when a replacement was not committed.
bool exit_pending();
// lifecycle.cpp: exit() remembers its status for the commit at normal exit
// (the destructor), which cannot see it otherwise.
void note_exit_status(int status);
// lifecycle.cpp: the status a process leaving with `status` gets when its
// commits at exit failed: 1 for 0, so that a caller testing $? learns that
// what the program wrote is not in the file; any other status is kept (it
// already says failure, in the program's own terms). Says so on stderr.
int status_after_failed_commit(int status);
// dir_sync.cpp: the directory fsyncs durability batch deferred, at _exit
// (async-signal-safe) and exec; one load when there are none.
void exit_dir_syncs();
void exec_dir_syncs();

// libc.cpp
using execve_fn = int (*)(const char *, char *const[], char *const[]);
execve_fn libc_execve();
execve_fn libc_execvpe();
using open_fn = int (*)(const char *, int, ...);
open_fn libc_open();
constexpr int O_CREAT_TRUNC = O_WRONLY | O_CREAT | O_TRUNC;  // what creat(2) means

// ---- handlers named in interpose.tbl ----

inline bool wants_write(int flags) {
    return (flags & O_ACCMODE) != O_RDONLY && !(flags & (O_PATH | __O_TMPFILE));
}

// identity.cpp: records of pending replacements visible in this process (its
// own, and its opener's in a child sharing the descriptor); read-opens of a
// pending target open the temp (see identity.hpp).
extern std::atomic<int> g_pending;
int open_pending_read(int dirfd, const char *path, int flags, OpenThunk open_with);
FILE *fopen_pending_read(const char *path, const char *mode, Thunk pass);

template <class OpenWith>
int open_at(OpenWith &&open_with, int dirfd, const char *path, int flags, mode_t mode) {
    if (!wants_write(flags)) {
        // Read-your-own-writes (identity.hpp): a flag test unless something is pending.
        if (g_pending.load(std::memory_order_relaxed) == 0 || !path) return served(open_with(flags));
        return served(open_pending_read(dirfd, path, flags, open_thunk(open_with)));
    }
    if (!path || !active()) return served(open_with(flags));
    int fd = open_write(dirfd, path, flags, mode, open_thunk(open_with));
    if (fd < 0 && errno == EMFILE) note_crowded(true);
    return fd;
}

inline FILE *served_stream(FILE *fp) {
    if (!fp && errno == EMFILE) note_crowded();
    if (fp && g_tracked.load(std::memory_order_acquire) != 0) served(fileno(fp));
    return fp;
}

template <class Pass>
FILE *fopen_path(Pass &&pass, const char *path, const char *mode) {
    if (!path || !mode) return served_stream(pass());
    if (mode[0] == 'r' && mode[1] != '+' && (mode[1] == '\0' || mode[2] != '+')) {
        if (g_pending.load(std::memory_order_relaxed) == 0) return served_stream(pass());
        auto p = [&]() { return reinterpret_cast<intptr_t>(pass()); };
        return served_stream(fopen_pending_read(path, mode, thunk(p)));
    }
    if (!active()) return served_stream(pass());
    bool matched = false;
    FILE *fp = fopen_matched(path, mode, &matched);
    if (!matched) return served_stream(pass());
    if (!fp && errno == EMFILE) note_crowded(true);
    return fp;
}

template <class Pass>
FILE *fdopen_fd(Pass &&pass, int fd) {
    FILE *fp = pass();
    if (fp && tracked(fd)) note_stream(fd, fp);
    return fp;
}

template <class Pass>
FILE *freopen_path(Pass &&pass, const char *path, const char *mode, FILE *stream) {
    if (!active()) return pass();
    auto p = [&]() { return reinterpret_cast<intptr_t>(pass()); };
    return freopen_tracked(path, mode, stream, thunk(p));
}

template <class Pass>
int truncate_path(Pass &&pass, const char *path, off_t length) {
    if (!path || !active()) return pass();
    bool matched = false;
    int rc = truncate_matched(path, length, &matched);
    return matched ? rc : pass();
}

template <class Pass>
int close_fd(Pass &&pass, int fd) {
    dirfd_forget(fd);
    if (!tracked(fd)) return pass();
    return close_tracked(fd, thunk(pass));
}

template <class Pass>
int fclose_stream(Pass &&pass, FILE *stream) {
    if (!stream || g_tracked.load(std::memory_order_acquire) == 0) return pass();
    int fd = fileno(stream);
    if (!tracked(fd)) return pass();
    return fclose_tracked(stream, fd, thunk(pass));
}

template <class Pass>
int fcloseall_streams(Pass &&pass) {
    if (g_tracked.load(std::memory_order_acquire) == 0) return pass();
    return fcloseall_tracked(thunk(pass));
}

template <class Pass>
int close_range_fds(Pass &&pass, unsigned first, unsigned last, int flags) {
    if (!(flags & CLOSE_RANGE_CLOEXEC)) dirfd_forget_range(first, last);
    if (g_tracked.load(std::memory_order_acquire) == 0 || (flags & CLOSE_RANGE_CLOEXEC)) return pass();
    return close_range_tracked(first, last, flags);
}

template <class Pass>
void closefrom_fds(Pass &&pass, int lowfd) {
    if (lowfd >= 0) dirfd_forget_range(static_cast<unsigned>(lowfd), ~0u);
    if (g_tracked.load(std::memory_order_acquire) == 0 || lowfd < 0) return pass();
    close_range_tracked(static_cast<unsigned>(lowfd), ~0u, 0);
}

// A descriptor of the shim's own (a lock, a kept copy of a temp), which the
// program never opened: the calls that name it (fcntl, dup, a dup2 from it,
// the writes, ftruncate, close) fail as on a number that is not open
// (EBADF), as they would without the shim. A program that probes a
// number before using it (dash saves a descriptor with fcntl(F_DUPFD) before
// a redirection onto it, and takes EBADF for "nothing to save") sees it free,
// and no dup() of it can hand the program our lock or our temp.
inline bool internal_fd(int fd) {
    return fd >= 0 && fd < kMaxFds && g_fds[fd].load(std::memory_order_acquire) == kInternal;
}

inline int not_open() {
    errno = EBADF;
    return -1;
}

template <class Pass>
int dup_fd(Pass &&pass, int fd) {
    if (internal_fd(fd)) return not_open();
    int r = served(pass());
    if (r >= 0 && tracked(fd)) attach(r, fd);
    return r;
}

template <class Pass>
int dup_onto(Pass &&pass, int fd, int fd2) {
    if (fd != fd2) dirfd_forget(fd2);
    if (!tracked(fd) && !tracked(fd2)) return pass();
    if (internal_fd(fd)) return not_open();
    // A vfork child's dup2 changes its own descriptor table only, while its
    // memory is its parent's: moving the parent's descriptor aside there
    // would point the parent's lock at a copy it does not have.
    if (fd != fd2 && internal_fd(fd2) && in_vfork_child()) return pass();
    if (fd != fd2 && internal_fd(fd2) && !relocate_internal(fd2)) {
        // Refused, where the kernel would have done it (it needs no new
        // number). A shell then closes the file it opened for the
        // redirection, nothing written, and its truncating open would
        // commit an empty file: as for any EMFILE the program meets, the
        // replacements that hold nothing are marked (note_crowded), and one
        // still empty at its commit keeps the target's content. One the
        // program writes into after all (it goes on with the descriptor)
        // commits what it wrote.
        note_crowded(true);
        return -1;
    }
    int r = pass();
    if (r < 0 || fd == fd2) return r;
    int saved = errno;
    drop_and_commit(fd2);  // dup2 closed whatever fd2 was
    if (tracked(fd)) attach(fd2, fd);
    errno = saved;
    return r;
}

// The program locks a descriptor of a pending replacement (lock_itself.cpp):
// an empty one it has written nothing into becomes the file itself.
void lock_file_itself(int fd);

template <class Pass>
auto lock_fd(Pass &&pass, int fd) -> decltype(pass()) {
    if (tracked(fd)) lock_file_itself(fd);
    return pass();
}

template <class Pass>
int fcntl_fd(Pass &&pass, int fd, int cmd) {
    if (internal_fd(fd)) return not_open();
    if ((cmd == F_SETLK || cmd == F_SETLKW || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW) && tracked(fd))
        lock_file_itself(fd);
    int r = pass();
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
        served(r);
        if (r >= 0 && tracked(fd)) attach(r, fd);
    }
    return r;
}

inline bool is_media_error(int e) { return e == EIO || e == ENOSPC || e == EDQUOT || e == EFBIG; }
// The error of a stream whose error flag is set: libc's own writes from its
// buffers never pass through our write(), so the errno it left (`saved`,
// read before anything else could change it) names the failure when it is
// one a write gives (a full disk: ENOSPC, not "Input/output error"); else EIO.
inline int stream_error(int saved) { return is_media_error(saved) ? saved : EIO; }

// A failed call that changes a pending replacement's data (or syncs it)
// poisons it: its content is not what the program meant.
template <class Pass>
auto change_fd(Pass &&pass, int fd) -> decltype(pass()) {
    // Not into our lock or our copy of a temp through a stale number.
    if (internal_fd(fd)) return not_open();
    auto r = pass();
    if (r < 0 && is_media_error(errno) && tracked(fd)) {
        int saved = errno;
        poison(fd, saved);
        errno = saved;
    }
    return r;
}

// 0, or ENOSPC when fd is a staged replacement's memfd and its target's
// file system has no room for what it now holds (staged_meta.cpp, the
// core's staged_room).
int staged_room(int fd);

// A call that puts data into fd (the write family, copy_file_range,
// sendfile, splice, fallocate): as change_fd, and a staged replacement's
// target's file system must have room for it, as the program's plain write
// needed (docs/design.md, "Special targets"): else the call fails with that
// error and the replacement is poisoned (its memfd took the data, the
// target keeps its old content).
template <class Pass>
auto write_fd(Pass &&pass, int fd) -> decltype(pass()) {
    auto r = change_fd(pass, fd);
    if (r < 0 || !tracked(fd)) return r;
    if (int e = staged_room(fd)) {
        poison(fd, e);
        errno = e;
        return -1;
    }
    return r;
}

// A failed write through stdio, about to be forgotten: on a pending
// replacement's descriptor it goes to the replacement first, as a failed
// write() would (the program then exits having written less than it meant).
template <class Pass>
void clearerr_stream(Pass &&pass, FILE *stream) {
    if (stream && g_tracked.load(std::memory_order_acquire) != 0) {
        int fd = fileno(stream);
        if (tracked(fd) && ferror(stream)) {
            int saved = errno;
            poison(fd, stream_error(saved));
            errno = saved;
        }
    }
    pass();
}

template <class Pass>
int locked_rename(Pass &&pass, int fromdir, const char *from, int todir, const char *to) {
    if (!to || !from || !active()) return pass();
    // Renaming (or linking) away a file it has pending: the program moves
    // what it wrote (identity.hpp, commit_pending_at).
    if (g_pending.load(std::memory_order_relaxed) != 0) {
        if (int e = commit_pending_at(fromdir, from)) {
            errno = e;
            return -1;
        }
    }
    return rename_locked(fromdir, from, todir, to, thunk(pass));
}

// _exit/_Exit (and quick_exit, whose own call of _exit is inside libc) skip
// the destructor that commits: without this, what the program wrote with
// write() (what a plain _exit leaves in the file) would be dropped (dash
// leaves through _exit: `sh -c 'exec > f; echo new'`). stdio is not
// flushed, as by a plain _exit. A failed commit makes status 0 a failure
// (pass() reads `status`). Async-signal-safe.
template <class Pass>
[[noreturn]] void exit_now(int &status, Pass &&pass) {
    if (g_tracked.load(std::memory_order_acquire) > 0 && !exit_pending()) status = status_after_failed_commit(status);
    exit_dir_syncs();
    pass();
    __builtin_unreachable();
}

// exit(): its status, for the destructor's commits (lifecycle.cpp).
template <class Pass>
[[noreturn]] void exit_normally(int status, Pass &&pass) {
    note_exit_status(status);
    pass();
    __builtin_unreachable();
}

// __libc_start_main: the program's main, run through main_noting_status
// (lifecycle.cpp), which notes what it returns: libc passes that to its
// own exit, which the exit interposer never sees. pass() reads `main`.
using MainFn = int (*)(int, char **, char **);
using VoidFn = void (*)(void);
extern MainFn g_program_main;
int main_noting_status(int argc, char **argv, char **envp);
template <class Pass>
int start_main(MainFn &main, Pass &&pass) {
    if (main) {
        g_program_main = main;
        main = main_noting_status;
    }
    return pass();
}

// posix_spawn, popen, system: the child libc makes may write into a pending
// replacement after the opener's last close (fd_table.hpp, note_shared).
template <class Pass>
auto spawn_call(Pass &&pass) -> decltype(pass()) {
    note_shared(false);
    return pass();
}

template <class Exec>
int exec_with_env(char *const *envp, const char *program, ExecLookup how, Exec &&exec) {
    bool prepared = false;
    char *const *env =
        g_tracked.load(std::memory_order_acquire) ? exec_prepare(envp, program, how, &prepared) : envp;
    exec_dir_syncs();  // before the image that deferred them is gone (batch)
    char *const *view = g_pending.load(std::memory_order_relaxed) ? identity_exec_env(env) : env;
    int r = exec(view);
    if (view != env) {
        int saved = errno;
        identity_exec_failed(view);
        errno = saved;
    }
    if (prepared) {
        int saved = errno;
        exec_failed(env);
        errno = saved;
    }
    return r;
}

}  // namespace wrap_lockfile::shim

#include "identity.hpp"
#include "pending_meta.hpp"
