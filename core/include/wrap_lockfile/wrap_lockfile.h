/* wrap_lockfile C API: exclusive locks and atomic file replacement.
 *
 * Stable C ABI for FFI and for the LD_PRELOAD shim. Every function that can
 * fail returns 0 on success or a positive errno value; when `err` is not NULL
 * it also receives the failing step and the path it concerned, so callers can
 * print a message that names the thing. Nothing here throws, and the
 * implementation does not depend on libstdc++ at run time.
 *
 * Portable: only fixed-width types (no mode_t, pid_t or open(2) flags), paths
 * are NUL-terminated UTF-8 (on POSIX the bytes go to the kernel as given, so
 * any byte string the file system takes works too), files are opened by mode
 * name ("w", "a", "r+"...) or WLF_OPEN_* bits, and descriptors are reached
 * through an intptr_t native handle (the descriptor on POSIX, a HANDLE on
 * Windows); wlf_file_fd/wlf_lock_fd are the POSIX spellings of it.
 * ABI 1 (soname libwrap_lockfile.so.1): README "Migrating from ABI 0" lists
 * what changed from the first one.
 *
 * Design: docs/design.md; user documentation: README.md.
 */
#ifndef WRAP_LOCKFILE_H
#define WRAP_LOCKFILE_H

#include <stddef.h>
#include <stdint.h>

#include <wrap_lockfile/version.h> /* WLF_VERSION_MAJOR/MINOR/PATCH/STRING */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(_WIN32)
#define WLF_API __attribute__((visibility("default")))
#else
#define WLF_API
#endif

#define WLF_PATH_MAX 4096

/* The step that failed, and with it what became of the target. Callers
 * decide by this value, never by `op` or `path`, which are for people. */
enum wlf_step {
    WLF_STEP_NONE = 0,      /* no failure */
    WLF_STEP_LOCK = 1,      /* taking the lock on "<target>.lock" (a replacement's too) */
    WLF_STEP_UNLOCK = 2,    /* releasing it; after a commit: the target WAS replaced */
    WLF_STEP_OPEN = 3,      /* the arguments, resolving the path, the checks open(2) would
                               make, opening the target's directory; nothing was changed */
    WLF_STEP_TEMP = 4,      /* creating the temporary (or staging) file, copying the current
                               content and metadata into it; nothing was changed */
    WLF_STEP_WRITE = 5,     /* a write of the caller's content failed (wlf_file_poison,
                               wlf_write_content); a rename replacement changed nothing */
    WLF_STEP_FSYNC = 6,     /* fsync of the temporary file; nothing was changed */
    WLF_STEP_RENAME = 7,    /* naming the temporary, checking its directory, renaming it
                               over the target, or (in-place kind) opening the target and
                               checking it is still the file opened; nothing was changed
                               (unless a file system reported a failure of a rename it made) */
    WLF_STEP_FSYNC_DIR = 8, /* the target WAS replaced, but closing the renamed temporary or
                               the fsync of its directory failed: it may not survive a crash */
    WLF_STEP_IN_PLACE = 9   /* writing, truncating, fsyncing or closing the target itself
                               (in-place and pass-through kinds): it may be partly written */
};

/* Where a failure happened. `op` is a static string such as "open lock file",
 * "fsync temporary file for", "rename temporary file over" (or, with "%s"
 * where the path goes, "lock file %s is a directory"); `path` the file or
 * directory concerned. The exact op strings are pinned by
 * tests/unit/errors_test.cpp.
 * ABI note (0.1.0, no released ABI before it): `step` was added at the end;
 * code built against a header without it must be rebuilt. */
typedef struct wlf_error {
    int code;                 /* errno value, 0 when no error */
    const char *op;           /* static, never NULL after a failure */
    char path[WLF_PATH_MAX];  /* may be empty */
    int step;                 /* enum wlf_step; set with code */
} wlf_error;

/* Human readable "<op> '<path>': <strerror>" into buf; returns buf. An op
 * that contains "%s" ("lock file %s is a FIFO") gets the quoted path there
 * instead of after it. */
WLF_API const char *wlf_error_format(const wlf_error *err, char *buf, size_t size);

/* The step's name as in the enum, lower case: "lock", "fsync_dir"...; "unknown"
 * for a value that is none of them. Static. */
WLF_API const char *wlf_step_name(int step);

/* ---- locks ------------------------------------------------------------ */

enum wlf_lock_backend {
    WLF_LOCK_FLOCK = 0,   /* flock(2) on <target>.lock (default); LockFileEx on Windows */
    WLF_LOCK_DOTLOCK = 1, /* link(2)-based <target>.lock, NFS safe, liblockfile compatible */
    WLF_LOCK_NONE = 2,    /* no locking; warns once on stderr */
    WLF_LOCK_AUTO = 3     /* per mount: dotlock where flock stays on this host although the
                             files are shared (NFS local_lock=flock|all or nolock, SMB nobrl,
                             sshfs), flock elsewhere (README "Shared file systems"); the shim's default */
};

typedef struct wlf_lock_options {
    int has_timeout;      /* 0: wait forever */
    double timeout;       /* > 0: ETIMEDOUT after that many seconds; <= 0: one try, EWOULDBLOCK */
    int backend;          /* enum wlf_lock_backend */
    int keep_lock_file;   /* do not unlink <target>.lock on release (always so on
                             NFS, SMB, Ceph, FUSE...: README "Shared file systems") */
    int no_nesting;       /* every handle is a lock of its own: the same thread asking again waits
                             (or times out) like another process would, as two flock()ed open
                             files do, instead of getting a nested handle (Python binding) */
    int interruptible;    /* a wait without timeout returns EINTR when a signal interrupts it,
                             for callers that run their own signal handlers (Python binding) */
} wlf_lock_options;

WLF_API void wlf_lock_options_init(wlf_lock_options *opt);

typedef struct wlf_lock wlf_lock;

/* Lock `target` (the lock itself lives in "<target>.lock"; `target` is used
 * as given, without resolving symlinks, made absolute if relative). Results: 0; EWOULDBLOCK when held and
 * timeout <= 0; ETIMEDOUT when a positive timeout expired; any other errno
 * (ENOLCK, EACCES, EROFS, ...) means the lock could not be taken at all.
 * A thread that already holds the lock on the same lock file gets a nested
 * handle at once, unless `no_nesting` is set. */
WLF_API int wlf_lock_acquire(const char *target, const wlf_lock_options *opt,
                     wlf_lock **out, wlf_error *err);

/* Release (unlink first unless kept, then unlock, then close) and free. */
WLF_API int wlf_lock_release(wlf_lock *lock, wlf_error *err);

/* The lock file's path ("<target>.lock"). */
WLF_API const char *wlf_lock_path(const wlf_lock *lock);

/* Native handle holding the lock: the descriptor on POSIX, a HANDLE on
 * Windows; -1 when none (dotlock and none backends). Owned by the lock. */
WLF_API intptr_t wlf_lock_handle(const wlf_lock *lock);

/* The same as a POSIX descriptor, or -1 (dotlock and none backends, and on
 * Windows). */
WLF_API int wlf_lock_fd(const wlf_lock *lock);

/* Pid of the current holder of "<target>.lock": the process holding a flock
 * on it as /proc/locks lists it, else the pid a dotlock records in it
 * (liblockfile's format); on Windows the pid the holder publishes in byte
 * locks (README "Windows"); 0 if unknown. Nothing is ever written into a lock
 * file for this. */
WLF_API int64_t wlf_lock_holder(const char *target);

/* ---- atomic replacement ----------------------------------------------- */

enum wlf_durability {
    WLF_DURABILITY_FULL = 0, /* fsync temp, rename, fsync directory */
    WLF_DURABILITY_NONE = 1, /* no fsync: atomic against readers, not against power loss */
    WLF_DURABILITY_BATCH = 2 /* fsync temp, rename; the directory's fsync is deferred, once per
                                directory, to wlf_sync_pending() or normal process exit */
};

enum wlf_hardlink_policy {
    WLF_HARDLINK_KEEP = 0,  /* st_nlink > 1: keep the links, locked in-place write */
    WLF_HARDLINK_SPLIT = 1  /* replace this name only; the other links keep the old inode */
};

/* How a replacement ends up on disk. */
enum wlf_commit_kind {
    WLF_COMMIT_RENAME = 0,      /* atomic: temp renamed over the target */
    WLF_COMMIT_IN_PLACE = 1,    /* non-atomic fallback (hard links, unwritable dir, EBUSY) */
    WLF_COMMIT_PASSTHROUGH = 2  /* not a regular file: written directly */
};

typedef struct wlf_write_options {
    int use_lock;                 /* default 1 */
    wlf_lock_options lock;        /* used when use_lock */
    const char *temp_suffix;      /* default "~~"; NULL means default */
    int durability;               /* enum wlf_durability */
    int hardlink_policy;          /* enum wlf_hardlink_policy */
    int lock_only;                /* write the target in place under the lock, no temp */
    int has_create_mode;          /* use create_mode for a new file instead of 0666 (or
                                     wlf_open_flags' create_mode) */
    uint32_t create_mode;         /* permission bits (0644...), subject to umask like open(2) */
} wlf_write_options;

WLF_API void wlf_write_options_init(wlf_write_options *opt);

typedef struct wlf_file wlf_file;

/* Begin a replacement of `path` (UTF-8), opened by `mode` as fopen(3) names
 * it: "w" (create or truncate), "a" (create, append), "r+" (existing file,
 * read and write, content kept), "x" (create, the file must not exist), and
 * "w+", "a+", "x+" (read too); a 'b' or 't' anywhere changes nothing. "r" is
 * no replacement: EINVAL, as for any other mode. A new file gets 0666 (or the
 * options' create_mode) minus the umask. Symlinks are followed to the final
 * target, which is locked, and a temporary file is created in its directory;
 * modes that keep the content ("a", "r+") start it as a copy of the current
 * one. The descriptors the library owns are close-on-exec. */
WLF_API int wlf_open(const char *path, const char *mode,
             const wlf_write_options *opt, wlf_file **out, wlf_error *err);

/* Bits for wlf_open_flags, the combinations no mode name spells (a truncating
 * open that must not create, an appending one that must not create...). */
enum wlf_open_flag {
    WLF_OPEN_WRITE = 0x01,    /* required: a replacement is written */
    WLF_OPEN_READ = 0x02,     /* readable too (with WRITE: O_RDWR) */
    WLF_OPEN_CREATE = 0x04,   /* create the target if missing (else ENOENT) */
    WLF_OPEN_EXCL = 0x08,     /* with CREATE: EEXIST if it exists, symlinks not followed */
    WLF_OPEN_TRUNCATE = 0x10, /* start empty (else a copy of the current content) */
    WLF_OPEN_APPEND = 0x20,   /* writes go to the end */
    WLF_OPEN_NOFOLLOW = 0x40  /* ELOOP if the path itself is a symlink */
};

/* wlf_open with WLF_OPEN_* bits (EINVAL without WLF_OPEN_WRITE or with an
 * unknown bit) and `create_mode`, the permission bits of a new file (subject
 * to umask; the options' create_mode wins when has_create_mode is set). */
WLF_API int wlf_open_flags(const char *path, uint32_t flags, uint32_t create_mode,
                   const wlf_write_options *opt, wlf_file **out, wlf_error *err);

/* Native handle the caller reads and writes (the temp file, or the target
 * itself for in-place and pass-through kinds): the descriptor on POSIX, a
 * HANDLE on Windows. Owned by `f`. */
WLF_API intptr_t wlf_file_handle(const wlf_file *f);

/* The same as a POSIX descriptor (on Windows a CRT descriptor over the
 * HANDLE, README "Windows"). */
WLF_API int wlf_file_fd(const wlf_file *f);

/* Final target path after resolving symlinks; absolute (a relative path is
 * taken against the working directory at wlf_open). */
WLF_API const char *wlf_file_target(const wlf_file *f);

/* What commit will do (may change to IN_PLACE at commit on EBUSY). */
WLF_API int wlf_file_kind(const wlf_file *f);

/* Record a write error the caller saw on the descriptor; commit then fails
 * with it and discards the temp. */
WLF_API void wlf_file_poison(wlf_file *f, int error);

/* Make the new content visible: fsync, rename, fsync directory (per options),
 * release the lock, free `f`. On failure before the rename the target is
 * untouched and the temp removed. `kind_out` (nullable) gets the commit kind. */
WLF_API int wlf_commit(wlf_file *f, int *kind_out, wlf_error *err);

/* For WLF_COMMIT_PASSTHROUGH: hand the descriptor (close-on-exec) to the
 * caller, who closes it, and free `f`. Returns -1 with EINVAL for other kinds. */
WLF_API int wlf_file_detach(wlf_file *f);

/* Drop the replacement: remove the temp, release the lock, free `f`. */
WLF_API void wlf_discard(wlf_file *f);

/* Durability batch: fsync, once each, the directories that replacements
 * committed since the last call renamed into (a commit returns with the new
 * content crash-atomic but its name maybe not yet durable). Also done at
 * normal process exit (exit(), return from main); a program leaving by _exit,
 * by a signal or by exec (the list lives in the image exec replaces) calls
 * this first. A forked child starts with an empty list. 0, or the first failure's errno (err: step
 * WLF_STEP_FSYNC_DIR, the directory named; the others are synced all the
 * same). Thread-safe. */
WLF_API int wlf_sync_pending(wlf_error *err);

/* One-shot: replace `path` with `size` bytes of `data`. */
WLF_API int wlf_write_content(const char *path, const void *data, size_t size,
                      const wlf_write_options *opt, wlf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* WRAP_LOCKFILE_H */
