// One atomic replacement behind the C API: resolve, lock, temp, seed,
// metadata; then commit (fsync, rename, fsync directory) or discard.
// The policies for special targets (docs/design.md, "Special targets") live here:
//  - not a regular file, or on proc/sys: written directly, no lock;
//  - hard-linked (keep policy), directory not writable, rename EBUSY, target
//    not readable for seeding: staged in a memfd and written in place under
//    the lock at commit (non-atomic, reported as WLF_COMMIT_IN_PLACE);
//  - lock_only: the target itself is opened under the lock.
#include "handoff.hpp"
#include "internal.hpp"
#include "normalize.hpp"
#include "replace_parts.hpp"
#include "shared_fs.hpp"
#include "sysio.hpp"

#include <linux/stat.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstddef>
#include <cstring>

using namespace wrap_lockfile;
using detail::fail;

struct wlf_file {
    int kind;
    int fd;       // what the caller uses
    int dir_fd;   // target's directory (rename kind), or -1: reached by path
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
    wlf_lock *lock;
    char suffix[64];
    char temp[WLF_PATH_MAX];  // named temp, relative to at_fd(); "" if none
    char target[WLF_PATH_MAX];
    const char *base;  // points into target
};

namespace {

std::atomic<dev_t> g_plain_dev{0};

// Flags that only matter for what the caller writes through directly
// (pass-through and lock-only kinds) are accepted and used there.
constexpr int kSupportedFlags = O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_NOFOLLOW | O_CLOEXEC |
                                O_NOCTTY | O_LARGEFILE | O_NONBLOCK | O_SYNC | O_DSYNC | O_DIRECT | O_NOATIME;

// The target's directory entries: through dir_fd, or, when the replacement
// keeps no directory descriptor, by the target's absolute path.
int at_fd(const wlf_file *f) { return f->dir_fd >= 0 ? f->dir_fd : AT_FDCWD; }
const char *at_base(const wlf_file *f) { return f->dir_fd >= 0 ? f->base : f->target; }
detail::TempDir temp_dir(const wlf_file *f) {
    if (f->dir_fd >= 0) return {f->dir_fd, "", 0};
    return {AT_FDCWD, f->target, static_cast<size_t>(f->base - f->target)};
}

void release_lock(wlf_file *f, wlf_error *err, int *rc, bool known_owner = false) {
    if (!f->lock) return;
    wlf_error lerr;  // filled on failure; not cleared (4 KiB) on the hot path
    lerr.code = 0;
    int lrc = known_owner ? detail::lock_release_by_owner(f->lock, &lerr) : wlf_lock_release(f->lock, &lerr);
    f->lock = nullptr;
    if (lrc != 0 && *rc == 0) {
        *rc = lrc;
        if (err) *err = lerr;
    }
}

void destroy(wlf_file *f) {
    if (f->fd >= 0) sys::close_quietly(f->fd);
    // A named temp is reached through the directory descriptor or by its
    // absolute name; anything else (a failed hand-over) is not guessed at.
    if (f->temp[0] && (f->dir_fd >= 0 || f->temp[0] == '/')) unlinkat(at_fd(f), f->temp, 0);
    if (f->per_target_temp) detail::release_per_target_name();
    if (f->dir_fd >= 0) sys::close_quietly(f->dir_fd);
    int rc = 0;
    release_lock(f, nullptr, &rc);
    free(f);
}

int fail_and_destroy(wlf_file *f, wlf_error *err, int code, wlf_step step, const char *op, const char *path) {
    int saved = errno;
    fail(err, code, step, op, path);
    destroy(f);
    errno = saved;
    return code;
}

// Positions the caller's descriptor as open(2) would have: appends go to the
// end, everything else starts at 0.
// `seeded`: the copy moved the offset. F_SETFL changes only the status
// flags (our temps and memfds have none but O_APPEND), so no F_GETFL.
int position(wlf_file *f, bool seeded) {
    if ((f->flags & O_APPEND) && sys::fcntl(f->fd, F_SETFL, O_APPEND) != 0) return errno;
    return seeded && lseek(f->fd, 0, SEEK_SET) < 0 ? errno : 0;
}

// The target as the program's open(2) would see it (open_as_program): the
// kernel's verdict, the seed source, and whose attributes the temp gets.
// Opened after the descriptor the program gets (which must have the number
// open(2) would give), closed before open_file returns.
struct Seen {
    sys::UniqueFd fd;
    bool readable = false;
};

int stat_target(wlf_file *f, bool seen_before = false);

// Asks the kernel once per replacement of an existing target; `want_read`
// for a seed. 0, or the program's errno recorded in err.
int look_as_program(wlf_file *f, const char *path, mode_t mode, bool want_read, Seen *seen, wlf_error *err) {
    if (seen->fd) return 0;
    int fd;
    detail::StaleRetry stale;  // a shared file system's cached handle (shared_fs.hpp)
    for (;;) {
        fd = detail::open_as_program(path, f->flags, mode, want_read, f->st, &seen->readable);
        if (fd >= 0) break;
        // ESTALE, or EAGAIN because the cached stat named the version another
        // client replaced before we took the lock: stat again, open again.
        int e = errno;
        if (!(e == ESTALE || (e == EAGAIN && detail::is_shared_fs_parent(f->target))) || !stale.again(ESTALE)) {
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

// Copies the current content into the temp. A shared file system may answer
// ESTALE mid-copy for the version another client replaced just before we
// took the lock: look at the target again and start over (bounded,
// shared_fs.hpp).
int seed(wlf_file *f, const char *path, mode_t mode, Seen *seen, wlf_error *err) {
    detail::StaleRetry stale;
    for (;;) {
        int rc = detail::seed_copy(seen->fd.get(), f->fd);
        if (rc == 0) return 0;
        if (rc != ESTALE || !stale.again(rc)) return fail(err, rc, WLF_STEP_TEMP, "copy current content", f->target);
        if (sys::ftruncate(f->fd, 0) != 0 || lseek(f->fd, 0, SEEK_SET) < 0)
            return fail(err, errno, WLF_STEP_TEMP, "copy current content", f->target);
        if ((rc = stat_target(f, true)) != 0) return fail(err, rc, WLF_STEP_TEMP, "stat", f->target);
        seen->fd.reset(-1);
        if ((rc = look_as_program(f, path, mode, true, seen, err))) return rc;
    }
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

// Stage the new content in memory; commit writes it into the target in place.
int begin_staged(wlf_file *f, const char *path, mode_t mode, Seen *seen, wlf_error *err) {
    f->kind = WLF_COMMIT_IN_PLACE;
    f->staged = true;
    if (f->dir_fd >= 0) {
        sys::close(f->dir_fd);
        f->dir_fd = -1;
    }
    f->fd = memfd_create("wrap_lockfile-stage", f->fdflags & O_CLOEXEC ? MFD_CLOEXEC : 0);
    if (f->fd < 0) return fail(err, errno, WLF_STEP_TEMP, "create staging memfd", f->target);
    bool seeded = f->existed && !(f->flags & O_TRUNC);
    if (f->existed) {
        if (int rc = look_as_program(f, path, mode, seeded, seen, err)) return rc;
    }
    if (seeded) {
        if (!seen->readable) return fail(err, EACCES, WLF_STEP_TEMP, "copy current content", f->target);
        if (int rc = seed(f, path, mode, seen, err)) return rc;
    }
    if (int rc = position(f, seeded)) return fail(err, rc, WLF_STEP_TEMP, "position", f->target);
    return 0;
}

// lock_only and in-place targets: the caller writes the final target itself,
// once the kernel has said the program may open its path. Pseudo files:
// the program's own path, opened as the program would (the kernel follows
// its links, with its protections).
int begin_direct(wlf_file *f, int kind, const char *path, mode_t mode, Seen *seen, wlf_error *err) {
    f->kind = kind;
    bool pass = kind == WLF_COMMIT_PASSTHROUGH;
    if (!pass && f->existed) {
        if (int rc = look_as_program(f, path, mode, false, seen, err)) return rc;
        seen->fd.reset();
    }
    int flags = pass ? f->flags & ~O_CLOEXEC : f->flags & ~(O_NOFOLLOW | O_CLOEXEC);
    f->fd = sys::open(pass ? path : f->target, flags | (pass ? O_CLOEXEC : f->fdflags), mode);
    if (f->fd < 0) return fail(err, errno, WLF_STEP_OPEN, "open", pass ? path : f->target);
    return 0;
}

// The target's directory as a descriptor: above the floor for a replacement
// that keeps it while pending (`keep`), anywhere for the moment of a commit.
int open_dir(wlf_file *f, bool keep, wlf_error *err) {
    char dir[WLF_PATH_MAX];
    const char *base;
    if (int rc = detail::split_dir_base(f->target, dir, sizeof dir, &base)) return fail(err, rc, WLF_STEP_OPEN, "path", f->target);
    f->dir_fd = sys::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->dir_fd < 0) return fail(err, errno, WLF_STEP_OPEN, "open directory", dir);
    // Out of the way before the temp is created: the temp may be the
    // caller's descriptor, which must get the number open(2) would give.
    if (keep) f->dir_fd = detail::raise_fd(f->dir_fd, f->fd_floor);
    return 0;
}

// Whether a replacement reaches its directory by path while it is pending:
// an absolute target whose lock has a file, so that the commit can check
// that the lock file still is ours at its path (a directory renamed or
// replaced meanwhile then fails the commit instead of receiving it). A
// pending replacement then holds two descriptors, its temp and its lock;
// the directory is opened only at commit, for its fsync (docs/design.md, step 7:
// a program under `ulimit -n 16` must not run out because of us).
bool reach_by_path(const wlf_file *f) { return f->target[0] == '/' && detail::lock_has_file(f->lock); }

int begin_rename(wlf_file *f, const char *path, mode_t mode, Seen *seen, wlf_error *err) {
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
        if (seeded && !seen->readable) {
            // Write-only for us: cannot copy, so cannot replace atomically.
            drop_temp(f);
            return begin_direct(f, WLF_COMMIT_IN_PLACE, path, mode, seen, err);
        }
        if (seeded) {
            if (int rc = seed(f, path, mode, seen, err)) return rc;
        }
        const char *op = "copy metadata";
        int rc = detail::copy_metadata(seen->fd.get(), f->st, f->fd, &op);
        detail::StaleRetry stale;  // as in seed(): the version another client replaced
        while (rc == ESTALE && stale.again(rc)) {
            if ((rc = stat_target(f, true)) != 0) break;
            seen->fd.reset(-1);
            if ((rc = look_as_program(f, path, mode, seeded, seen, err))) return rc;
            if (seeded && (sys::ftruncate(f->fd, 0) != 0 || lseek(f->fd, 0, SEEK_SET) < 0))
                return fail(err, errno, WLF_STEP_TEMP, "copy current content", f->target);
            if (seeded && (rc = seed(f, path, mode, seen, err))) return rc;
            op = "copy metadata";
            rc = detail::copy_metadata(seen->fd.get(), f->st, f->fd, &op);
        }
        if (rc) return fail(err, rc, WLF_STEP_TEMP, op, f->target);
    }
    if (int rc = position(f, seeded)) return fail(err, rc, WLF_STEP_TEMP, "position", f->target);
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

// Copies the whole staged content into the target, then cuts it to size.
int write_in_place(wlf_file *f, int src, wlf_error *err) {
    sys::UniqueFd dst(sys::open(f->target, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
    if (!dst) return fail(err, errno, WLF_STEP_IN_PLACE, "open for in-place write", f->target);
    off_t size = lseek(src, 0, SEEK_END);
    if (size < 0 || lseek(src, 0, SEEK_SET) < 0) return fail(err, errno, WLF_STEP_IN_PLACE, "seek staged content", f->target);
    if (int rc = detail::copy_range(src, dst.get())) return fail(err, rc, WLF_STEP_IN_PLACE, "write in place", f->target);
    if (sys::ftruncate(dst.get(), size) != 0) return fail(err, errno, WLF_STEP_IN_PLACE, "truncate in place", f->target);
    if (f->durability == WLF_DURABILITY_FULL && sys::fsync(dst.get()) != 0) return fail(err, errno, WLF_STEP_IN_PLACE, "fsync", f->target);
    int fd = dst.release();
    if (sys::close(fd) != 0) return fail(err, errno, WLF_STEP_IN_PLACE, "close", f->target);
    return 0;
}

int commit_direct(wlf_file *f, wlf_error *err) {
    int rc = 0;
    if (f->durability == WLF_DURABILITY_FULL && f->kind == WLF_COMMIT_IN_PLACE && sys::fsync(f->fd) != 0)
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
    if (f->durability == WLF_DURABILITY_FULL && sys::fsync(f->fd) != 0)
        return fail(err, errno, WLF_STEP_FSYNC, "fsync temporary file for", f->target);
#endif
    // The directory for its fsync, opened only now (see reach_by_path), then
    // checked: the lock file at its path must still be ours.
    bool by_path = f->dir_fd < 0;
    if (by_path && f->durability == WLF_DURABILITY_FULL) {
        if (int rc = open_dir(f, false, err)) return rc;
    }
    if (by_path && !detail::lock_file_still_ours(f->lock))
        return fail(err, ESTALE, WLF_STEP_RENAME, "commit (the directory was renamed or replaced meanwhile)", f->target);
    if (f->anonymous) {
        if (int rc = detail::link_anonymous_temp(f->fd, temp_dir(f), f->base, f->suffix,
                                                 detail::lock_has_file(f->lock), f->temp, sizeof f->temp))
            return fail(err, rc, WLF_STEP_RENAME, "name temporary file for", f->target);
        f->anonymous = false;
    }
    int fd = f->fd;
    f->fd = -1;
    if (sys::renameat(at_fd(f), f->temp, at_fd(f), at_base(f)) != 0) {
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
    int rc = 0;
    if (sys::close(fd) != 0) rc = fail(err, errno, WLF_STEP_FSYNC_DIR, "close", f->target);
#ifndef WLF_MUTANT_NO_DIR_FSYNC
    if (f->durability == WLF_DURABILITY_FULL && sys::fsync(f->dir_fd) != 0 && rc == 0)
        rc = fail(err, errno, WLF_STEP_FSYNC_DIR, "fsync directory of", f->target);
#endif
    return rc;
}

}  // namespace

extern "C" void wlf_write_options_init(wlf_write_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->use_lock = 1;
    wlf_lock_options_init(&opt->lock);
    opt->temp_suffix = "~~";
    opt->durability = WLF_DURABILITY_FULL;
    opt->hardlink_policy = WLF_HARDLINK_KEEP;
}

namespace {

// The target is usually a plain file at the path given: lock "<path>.lock"
// first with a single try, then look at the path under the lock. A regular
// file (or none) there means the path is the final target and its lstat is
// fresh, sparing the separate look before locking. Anything else (a
// symlink, a special or pseudo file, a busy or unusable lock) gives up the
// lock and returns false: the caller then resolves first and waits as asked.
// The probe locks only a lock file it creates itself (an existing one, held
// or not, may be somebody's: then we resolve first), writes the holder pid
// only once the path turned out to be the final target, and removes the
// file again otherwise: a symlink's path sees a "<link>.lock" come and go.
bool lock_first(wlf_file *f, const char *path, const wlf_lock_options &lock_opt) {
    if (detail::join(f->target, sizeof f->target, path, "") != 0) return false;
    wlf_lock_options once = lock_opt;
    once.has_timeout = 1;
    once.timeout = 0;
    if (detail::lock_acquire_probe(f->target, &once, &f->lock) != 0) {
        f->lock = nullptr;
        return false;
    }
    bool keep = false;
    if (int rc = stat_target(f); rc == 0) {
        f->existed = true;
        if (S_ISREG(f->st.st_mode) && f->st.st_dev == g_plain_dev.load(std::memory_order_relaxed)) {
            keep = true;
        } else if (S_ISREG(f->st.st_mode) && !detail::is_pseudo_fs(f->target)) {
            g_plain_dev.store(f->st.st_dev, std::memory_order_relaxed);
            keep = true;
        }
    } else if (rc == ENOENT) {
        f->existed = false;
        keep = true;
    }
    if (keep) return true;
    detail::lock_release_probe(f->lock);
    f->lock = nullptr;
    return false;
}

// For a target that did not exist behind the links of `path`: 0 if open(2)
// may still follow them (check_follow) and they still lead to `final` with
// nothing there, else the errno (EAGAIN: they lead elsewhere now).
int recheck_links(const char *path, const char *final) {
    if (int rc = detail::check_follow(path)) return rc;
    char again[WLF_PATH_MAX];
    bool exists = false, via_proc = false;
    struct stat st;
    if (int rc = detail::resolve_target(path, false, again, sizeof again, &exists, &st, &via_proc)) return rc;
    return exists || via_proc || strcmp(again, final) != 0 ? EAGAIN : 0;
}

// Paths where the probe's lock file would land somewhere it has no business
// (device nodes, kernel interfaces): resolve those first.
// `path` is absolute; "//dev/x" or "/tmp/../dev/x" are compared normalized.
bool probe_allowed(const char *path, const wlf_lock_options &lock_opt) {
    if (lock_opt.backend != WLF_LOCK_FLOCK || lock_opt.keep_lock_file) return false;
    char norm[WLF_PATH_MAX];
    if (strstr(path, "//") || strstr(path, "/.")) {
        if (detail::normalize_path("/", path, norm, sizeof norm) != 0) return false;
        path = norm;
    }
    return strncmp(path, "/dev/", 5) != 0 && strncmp(path, "/proc/", 6) != 0 && strncmp(path, "/sys/", 5) != 0;
}

int open_file(const char *path, int flags, mode_t mode, const wlf_write_options *opt_in, int *caller_fd,
              wlf_file **out, wlf_error *err) {
    *out = nullptr;
    wlf_write_options defaults;
    wlf_write_options_init(&defaults);
    const wlf_write_options *opt = opt_in ? opt_in : &defaults;
    if (!path || !*path) return fail(err, ENOENT, WLF_STEP_OPEN, "open", path);
    int acc = flags & O_ACCMODE;
    if ((acc != O_WRONLY && acc != O_RDWR) || (flags & ~kSupportedFlags)) return fail(err, EINVAL, WLF_STEP_OPEN, "open flags", path);
    const char *suffix = opt->temp_suffix ? opt->temp_suffix : "~~";
    if (strchr(suffix, '/') || strlen(suffix) >= sizeof(wlf_file::suffix)) return fail(err, EINVAL, WLF_STEP_OPEN, "temp suffix", suffix);
    if (opt->has_create_mode) mode = opt->create_mode;
    // Relative paths are made absolute now: a later chdir must not move the
    // lock, the commit or the lock file's removal somewhere else.
    char absolute[WLF_PATH_MAX];
    if (path[0] != '/') {
        if (int rc = detail::absolute_path(path, absolute, sizeof absolute)) return fail(err, rc, WLF_STEP_OPEN, "path", path);
        path = absolute;
    }

    auto *f = static_cast<wlf_file *>(malloc(sizeof(wlf_file)));
    if (!f) return fail(err, ENOMEM, WLF_STEP_OPEN, "open", path);
    // Only the fixed part is cleared: the path buffers are written before use.
    memset(f, 0, offsetof(wlf_file, temp));
    f->temp[0] = '\0';
    f->target[0] = '\0';
    f->base = f->target;
    f->fd = -1;
    f->dir_fd = -1;
    f->flags = flags;
    f->fdflags = caller_fd ? (flags & O_CLOEXEC) : O_CLOEXEC;
    f->durability = opt->durability;
    f->fd_floor = opt->fd_floor;
    memcpy(f->suffix, suffix, strlen(suffix) + 1);

    wlf_lock_options lock_opt = opt->lock;
    if (opt->fd_floor > lock_opt.fd_floor) lock_opt.fd_floor = opt->fd_floor;
    int rc;
    if (!(opt->use_lock && probe_allowed(path, lock_opt) && lock_first(f, path, lock_opt))) {
        // O_CREAT|O_EXCL never follows a symlink at the path (open(2) gives
        // EEXIST): following a dangling one would create a file of an
        // attacker's choosing.
        bool exclusive = (flags & O_CREAT) && (flags & O_EXCL);
        bool via_proc = false;
        detail::StaleRetry stale;  // a shared file system's cached handle (shared_fs.hpp)
        do {
            rc = detail::resolve_target(path, (flags & O_NOFOLLOW) || exclusive, f->target, sizeof f->target,
                                        &f->existed, &f->st, &via_proc);
        } while (rc == ESTALE && stale.again(rc));
        if (rc == ELOOP && exclusive && !(flags & O_NOFOLLOW)) rc = EEXIST;
        if (rc) return fail_and_destroy(f, err, rc, WLF_STEP_OPEN, "resolve", path);

        bool pseudo = via_proc || (f->existed && !S_ISREG(f->st.st_mode));
        // Most replacements hit one file system over and over: the last one
        // found ordinary is remembered, which spares the statfs next time.
        if (!pseudo && f->existed && f->st.st_dev != g_plain_dev.load(std::memory_order_relaxed)) {
            pseudo = detail::is_pseudo_fs(f->target);
            if (!pseudo) g_plain_dev.store(f->st.st_dev, std::memory_order_relaxed);
        }
        if (pseudo) {
            Seen none;
            rc = begin_direct(f, WLF_COMMIT_PASSTHROUGH, path, mode, &none, err);
            if (rc) return fail_and_destroy(f, nullptr, rc, WLF_STEP_NONE, "", "");
            *out = f;
            return 0;
        }
        // We followed links the kernel may not follow for this process
        // (fs.protected_symlinks): ask before a lock file is made beside
        // whatever they name. An existing target is asked again under the lock.
        if (strcmp(path, f->target) != 0 && (rc = detail::check_follow(path)))
            return fail_and_destroy(f, err, rc, WLF_STEP_OPEN, "open", path);
        if (opt->use_lock) {
            rc = wlf_lock_acquire(f->target, &lock_opt, &f->lock, err);
            if (rc) return fail_and_destroy(f, nullptr, rc, WLF_STEP_NONE, "", "");
            // The target may have appeared, vanished or changed while we waited.
            rc = stat_target(f, f->existed);
            if (rc != 0 && rc != ENOENT) return fail_and_destroy(f, err, rc, WLF_STEP_OPEN, "stat", f->target);
            f->existed = rc == 0;
        }
    }
    // Without a lock the resolving lstat is all we have: statx for the
    // attributes open(2) would look at (immutable, append-only, mount root).
    if (!opt->use_lock && f->existed) {
        rc = stat_target(f);
        if (rc != 0 && rc != ENOENT) return fail_and_destroy(f, err, rc, WLF_STEP_OPEN, "stat", f->target);
        f->existed = rc == 0;
    }
    if (f->existed && (flags & O_CREAT) && (flags & O_EXCL)) return fail_and_destroy(f, err, EEXIST, WLF_STEP_OPEN, "open", f->target);
    if (!f->existed && !(flags & O_CREAT)) return fail_and_destroy(f, err, ENOENT, WLF_STEP_OPEN, "open", f->target);
    // A new file behind links: no descriptor can show where open(2) would
    // create it. The links are asked again now, and must still lead where
    // we found them (a link swapped since fails instead of steering us).
    if (!f->existed && strcmp(path, f->target) != 0 && (rc = recheck_links(path, f->target)))
        return fail_and_destroy(f, err, rc, WLF_STEP_OPEN, rc == EAGAIN ? "open (its links changed while it was locked)" : "open",
                                path);
    // The kernel's verdict on the program's own open of the path it named
    // is asked in begin_* (open_check.cpp), right after the descriptor the
    // program gets is made.
    Seen seen;
    if (opt->lock_only || (f->existed && (f->attrs & STATX_ATTR_APPEND)))
        rc = begin_direct(f, WLF_COMMIT_IN_PLACE, path, mode, &seen, err);
    else if (f->existed && f->st.st_nlink > 1 && opt->hardlink_policy == WLF_HARDLINK_KEEP)
        rc = begin_staged(f, path, mode, &seen, err);
    else
        rc = begin_rename(f, path, mode, &seen, err);
    seen.fd.reset();
    if (rc) return fail_and_destroy(f, nullptr, rc, WLF_STEP_NONE, "", "");
    if (caller_fd) {
        // The caller's descriptor keeps the number open(2) would have given;
        // the library keeps its own copy out of the program's way.
        int own = sys::fcntl(f->fd, F_DUPFD_CLOEXEC, opt->fd_floor > 0 ? opt->fd_floor : 0);
        // A program may have lowered RLIMIT_NOFILE below the floor, or used
        // every number above it: then our copy goes where there is room.
        if (own < 0 && opt->fd_floor > 0) own = sys::fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
        if (own < 0) return fail_and_destroy(f, err, errno, WLF_STEP_OPEN, "duplicate descriptor of", f->target);
        *caller_fd = f->fd;
        f->fd = own;
    } else {
        f->fd = detail::raise_fd(f->fd, opt->fd_floor);
    }
    *out = f;
    return 0;
}

}  // namespace

extern "C" int wlf_open(const char *path, int flags, mode_t mode, const wlf_write_options *opt, wlf_file **out,
                        wlf_error *err) {
    return open_file(path, flags, mode, opt, nullptr, out, err);
}

int detail::file_open_split(const char *path, int flags, mode_t mode, const wlf_write_options *opt, wlf_file **out,
                            int *caller_fd, wlf_error *err) {
    *caller_fd = -1;
    return open_file(path, flags, mode, opt, caller_fd, out, err);
}

extern "C" int wlf_file_fd(const wlf_file *f) { return f ? f->fd : -1; }
extern "C" const char *wlf_file_target(const wlf_file *f) { return f ? f->target : ""; }
extern "C" int wlf_file_kind(const wlf_file *f) { return f ? f->kind : -1; }

extern "C" void wlf_file_poison(wlf_file *f, int error) {
    if (f && f->poison == 0) f->poison = error;
}

namespace {

// The new content into place, by f's kind (f not poisoned).
int commit_steps(wlf_file *f, wlf_error *err) {
    if (f->kind == WLF_COMMIT_RENAME) return commit_rename(f, err);
    if (f->staged) return write_in_place(f, f->fd, err);
    return commit_direct(f, err);
}

int commit_file(wlf_file *f, int *kind_out, wlf_error *err, bool known_owner) {
    if (!f) return fail(err, EINVAL, WLF_STEP_OPEN, "commit", nullptr);
    if (f->poison) {
        int rc = fail(err, f->poison, WLF_STEP_WRITE, "write to", f->target);
        destroy(f);
        return rc;
    }
    int rc = commit_steps(f, err);
    if (kind_out) *kind_out = f->kind;
    release_lock(f, err, &rc, known_owner);
    destroy(f);
    return rc;
}

}  // namespace

extern "C" int wlf_commit(wlf_file *f, int *kind_out, wlf_error *err) { return commit_file(f, kind_out, err, false); }

int detail::file_commit_by_opener(wlf_file *f, int *kind_out, wlf_error *err) {
    return commit_file(f, kind_out, err, true);
}

extern "C" int wlf_file_detach(wlf_file *f) {
    if (!f || f->kind != WLF_COMMIT_PASSTHROUGH) {
        errno = EINVAL;
        return -1;
    }
    int fd = f->fd;
    f->fd = -1;
    destroy(f);
    return fd;
}

extern "C" void wlf_discard(wlf_file *f) {
    if (f) destroy(f);
}

extern "C" int wlf_write_content(const char *path, const void *data, size_t size, const wlf_write_options *opt,
                                 wlf_error *err) {
    wlf_file *f;
    if (int rc = wlf_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666, opt, &f, err)) return rc;
    if (sys::write_all(f->fd, data, size) != 0) {
        int e = errno;
        fail(err, e, WLF_STEP_WRITE, "write to", f->target);
        wlf_discard(f);
        return e;
    }
    return wlf_commit(f, nullptr, err);
}

// ---- hand-over across execve (handoff.hpp) ----

namespace {

int put_hex(char *&p, char *end, const char *str) {
    static const char digits[] = "0123456789abcdef";
    for (const unsigned char *s = reinterpret_cast<const unsigned char *>(str); *s; ++s) {
        if (end - p < 3) return ENAMETOOLONG;
        *p++ = digits[*s >> 4];
        *p++ = digits[*s & 15];
    }
    return 0;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// Reads the next ','-separated field of [*p, end) into out (hex-decoded if asked).
int get_field(const char *&p, const char *end, char *out, size_t size, bool hex) {
    const char *q = p;
    while (q < end && *q != ',') ++q;
    size_t n = static_cast<size_t>(q - p);
    if (hex) {
        if (n % 2 || n / 2 + 1 > size) return EINVAL;
        for (size_t i = 0; i < n; i += 2) {
            int hi = hex_value(p[i]), lo = hex_value(p[i + 1]);
            if (hi < 0 || lo < 0) return EINVAL;
            out[i / 2] = static_cast<char>(hi << 4 | lo);
        }
        out[n / 2] = '\0';
    } else {
        if (n + 1 > size) return EINVAL;
        memcpy(out, p, n);
        out[n] = '\0';
    }
    p = q < end ? q + 1 : q;
    return 0;
}

int get_int(const char *&p, const char *end, int *value) {
    char buf[24];
    if (int rc = get_field(p, end, buf, sizeof buf, false)) return rc;
    char *e;
    long v = strtol(buf, &e, 10);
    if (!buf[0] || *e) return EINVAL;
    *value = static_cast<int>(v);
    return 0;
}

}  // namespace

pid_t detail::file_opener(const wlf_file *f) {
    pid_t pid = detail::lock_owner(f->lock);
    return pid > 0 ? pid : getpid();
}

void detail::file_descriptors(const wlf_file *f, int *fd, int *lock_fd, int *dir_fd) {
    *fd = f->fd;
    *lock_fd = wlf_lock_fd(f->lock);
    *dir_fd = f->dir_fd;
}

int detail::file_export(const wlf_file *f, char *out, size_t size) {
    // Version 3 added the lock file's owner (whether the release removes it).
    int n = snprintf(out, size, "3,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,", f->kind, f->fd, wlf_lock_fd(f->lock),
                     detail::lock_keeps_file(f->lock) ? 1 : 0, detail::lock_file_owner(f->lock), f->flags,
                     f->durability, f->anonymous ? 1 : 0, f->staged ? 1 : 0, f->existed ? 1 : 0);
    if (n < 0 || static_cast<size_t>(n) >= size) return ENAMETOOLONG;
    char *p = out + n, *end = out + size;
    const char *fields[] = {f->temp, f->suffix, f->target};
    for (const char *field : fields) {
        if (int rc = put_hex(p, end, field)) return rc;
        if (end - p < 2) return ENAMETOOLONG;
        *p++ = ',';
    }
    p[-1] = '\0';
    return 0;
}

int detail::file_import(const char *token, size_t len, int fd_floor, wlf_file **out) {
    *out = nullptr;
    const char *p = token, *end = token + len;
    int version = 0, kind = 0, fd = -1, lock_fd = -1, keep = 0, owner = 0, flags = 0, durability = 0, anonymous = 0,
        staged = 0, existed = 0;
    int *ints[] = {&version, &kind, &fd, &lock_fd, &keep, &owner, &flags, &durability, &anonymous, &staged, &existed};
    for (int *v : ints)
        if (int rc = get_int(p, end, v)) return rc;
    if (version != 3 || kind < WLF_COMMIT_RENAME || kind > WLF_COMMIT_PASSTHROUGH) return EINVAL;
    auto *f = static_cast<wlf_file *>(calloc(1, sizeof(wlf_file)));
    if (!f) return ENOMEM;
    f->fd = -1;
    f->dir_fd = -1;
    f->fdflags = O_CLOEXEC;
    int rc = get_field(p, end, f->temp, sizeof f->temp, true);
    if (!rc) rc = get_field(p, end, f->suffix, sizeof f->suffix, true);
    if (!rc) rc = get_field(p, end, f->target, sizeof f->target, true);
    struct stat st;
    if (!rc && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) rc = EBADF;
    if (rc) {
        free(f);
        return rc;
    }
    f->kind = kind;
    f->fd = fd;
    f->flags = flags;
    f->durability = durability;
    f->anonymous = anonymous != 0;
    f->staged = staged != 0;
    f->existed = existed != 0;
    if (f->existed && lstat(f->target, &f->st) != 0) f->existed = false;
    char dir[WLF_PATH_MAX];
    rc = detail::split_dir_base(f->target, dir, sizeof dir, &f->base);
    // A named temp holds its name in this image now: counted again.
    if (!rc && f->temp[0]) {
        const char *slash = strrchr(f->temp, '/');
        f->per_target_temp = detail::is_per_target_name(f->base, f->suffix, slash ? slash + 1 : f->temp);
        if (f->per_target_temp) detail::retain_per_target_name();
    }
    if (!rc && lock_fd >= 0) {
        char lock_path[WLF_PATH_MAX];
        rc = detail::join(lock_path, sizeof lock_path, f->target, ".lock");
        if (!rc) rc = detail::lock_adopt(lock_fd, lock_path, keep != 0, owner, &f->lock);
    }
    // As begin_rename decides; and a named temp's relative name needs the
    // directory it is relative to.
    f->fd_floor = fd_floor;
    if (!rc && kind == WLF_COMMIT_RENAME && (!reach_by_path(f) || (f->temp[0] && f->temp[0] != '/')))
        rc = open_dir(f, true, nullptr);
    if (rc) {
        f->fd = -1;  // still the caller's: it decides what to do with it
        destroy(f);
        return rc;
    }
    // The descriptors were inheritable for the execve; own them again.
    sys::fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (lock_fd >= 0) sys::fcntl(lock_fd, F_SETFD, FD_CLOEXEC);
    *out = f;
    return 0;
}

int detail::file_commit_at_exit(wlf_file *f, int *kind_out, wlf_error *err) {
    int rc = f->poison ? fail(err, f->poison, WLF_STEP_WRITE, "write to", f->target) : commit_steps(f, err);
    if (kind_out) *kind_out = f->kind;
    // What a failed commit leaves (a named temp), then the lock; nothing is
    // freed or closed beyond what the commit itself closes: the process ends.
    if (f->temp[0]) unlinkat(at_fd(f), f->temp, 0);
    f->temp[0] = '\0';
    detail::lock_release_at_exit(f->lock);
    return rc;
}

void detail::file_abandon(wlf_file *f) {
    if (f->temp[0]) unlinkat(at_fd(f), f->temp, 0);
    f->temp[0] = '\0';
    if (f->per_target_temp) detail::release_per_target_name();
    f->per_target_temp = false;
    detail::lock_abandon(f->lock);
}

void detail::file_relocate_fd(wlf_file *f, int from, int to) {
    if (f->fd == from) f->fd = to;
    if (f->dir_fd == from) f->dir_fd = to;
    detail::lock_relocate_fd(f->lock, from, to);
}
