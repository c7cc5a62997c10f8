// wlf_open: from the path a caller names to the kind of replacement it gets
// (the lock-first probe, resolving links, locking, the checks open(2) would
// make), then the caller's descriptor. The steps: posix/prepare.cpp; the
// commit: posix/commit.cpp.
// The policies for special targets (docs/design.md, "Special targets"), here
// and in the steps (prepare.cpp, commit.cpp):
//  - not a regular file, or on proc/sys: written directly, no lock;
//  - hard-linked (keep policy), directory not writable, rename EBUSY, target
//    not readable for seeding: staged in a memfd and written in place under
//    the lock at commit (non-atomic, reported as WLF_COMMIT_IN_PLACE);
//  - lock_only: the target itself is opened under the lock.
#include "internal.hpp"
#include "lock_internal.hpp"
#include "open_flags.hpp"
#include "recycle.hpp"
#include "replace_parts.hpp"
#include "replacement.hpp"
#include "mount_info.hpp"
#include "normalize.hpp"
#include "shared_fs.hpp"
#include "shim_entry.hpp"
#include "sysio.hpp"

#include <linux/stat.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstddef>
#include <cstring>

using namespace wrap_lockfile;
using detail::fail;
using detail::fail_and_destroy;
using detail::Seen;
using detail::stat_target;

namespace {

std::atomic<dev_t> g_plain_dev{0};

// Whether `s` starts with the literal `prefix`, compared in line (strncmp
// was a call per prefix on every matched open).
template <size_t N>
bool starts_with(const char *s, const char (&prefix)[N]) {
    for (size_t i = 0; i + 1 < N; ++i)
        if (s[i] != prefix[i]) return false;
    return true;
}

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
bool lock_first(wlf_file *f, const char *path, const wlf_lock_options &lock_opt, int fd_floor) {
    if (detail::join(f->target, sizeof f->target, path, "") != 0) return false;
    wlf_lock_options once = lock_opt;
    once.has_timeout = 1;
    once.timeout = 0;
    if (detail::lock_acquire_probe(f->target, &once, fd_floor, &f->lock) != 0) {
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
// (device nodes, kernel interfaces): resolve those first. Under /dev/ an
// ordinary tmpfs (/dev/shm) is a place for files like any other; /dev's own
// file system is not.
// `path` is absolute; "//dev/x" or "/tmp/../dev/x" are compared normalized.
bool probe_allowed(const char *path, const wlf_lock_options &lock_opt) {
    // AUTO: the lock decides per mount, and refuses the probe on a dotlock mount.
    if ((lock_opt.backend != WLF_LOCK_FLOCK && lock_opt.backend != WLF_LOCK_AUTO) || lock_opt.keep_lock_file) return false;
    const char *given = path;
    char norm[WLF_PATH_MAX];
    if (strstr(path, "//") || strstr(path, "/.")) {
        // After a symlink, ".." goes where the kernel resolves it, not where
        // the lexical normalization below says (/dev/shm/link/../null can be
        // /dev/null): such paths take the slow way, which resolves them.
        for (const char *s = strstr(path, "/.."); s; s = strstr(s + 1, "/.."))
            if (s[3] == '/' || s[3] == '\0') return false;
        if (detail::normalize_path("/", path, norm, sizeof norm) != 0) return false;
        path = norm;
    }
    if (starts_with(path, "/proc/") || starts_with(path, "/sys/")) return false;
    if (!starts_with(path, "/dev/")) return true;
    // A directory where a probe succeeded before was found an ordinary
    // tmpfs then; the lock, which checks that its file lands on the same
    // mount as that time, catches a mount changed since.
    detail::DirMount known;
    return detail::dir_mount_find(given, &known) || detail::ordinary_tmpfs_under_dev(path);
}

int open_file(const char *path, int flags, mode_t mode, const wlf_write_options *opt_in, int fd_floor,
              int *caller_fd, wlf_file **out, wlf_error *err) {
    *out = nullptr;
    wlf_write_options defaults;
    wlf_write_options_init(&defaults);
    const wlf_write_options *opt = opt_in ? opt_in : &defaults;
    if (!path || !*path) return fail(err, ENOENT, WLF_STEP_OPEN, "open", path);
    int acc = flags & O_ACCMODE;
    if ((acc != O_WRONLY && acc != O_RDWR) || (flags & ~detail::kSupportedOpenFlags)) return fail(err, EINVAL, WLF_STEP_OPEN, "open flags", path);
    const char *suffix = opt->temp_suffix ? opt->temp_suffix : "~~";
    if (strchr(suffix, '/') || strlen(suffix) >= sizeof(wlf_file::suffix)) return fail(err, EINVAL, WLF_STEP_OPEN, "temp suffix", suffix);
    if (opt->durability < WLF_DURABILITY_FULL || opt->durability > WLF_DURABILITY_BATCH)
        return fail(err, EINVAL, WLF_STEP_OPEN, "durability", path);
    if (opt->has_create_mode) mode = opt->create_mode;
    // Relative paths are made absolute now: a later chdir must not move the
    // lock, the commit or the lock file's removal somewhere else.
    char absolute[WLF_PATH_MAX];
    if (path[0] != '/') {
        if (int rc = detail::absolute_path(path, absolute, sizeof absolute)) return fail(err, rc, WLF_STEP_OPEN, "path", path);
        path = absolute;
    }

    auto *f = detail::Recycled<wlf_file>::take();
    if (!f) return fail(err, ENOMEM, WLF_STEP_OPEN, "open", path);
    // Only the fixed part is cleared: the path buffers are written before use.
    memset(f, 0, offsetof(wlf_file, temp));
    f->temp[0] = '\0';
    f->target[0] = '\0';
    f->base = f->target;
    f->fd = -1;
    f->dir_fd = -1;
    f->target_fd = -1;
    f->flags = flags;
    // The caller's descriptor is the temp: O_SYNC and O_DSYNC go on it at
    // its creation (O_DIRECT once seeded: prepare.cpp, status_flags).
    f->fdflags = caller_fd ? (flags & (O_CLOEXEC | O_SYNC | O_DSYNC)) : O_CLOEXEC;
    // A program that opens with O_SYNC or O_DSYNC wants what it wrote on
    // disk by the time its call returns: its replacement is committed with
    // durability full whatever the default (docs/design.md, "Open flags").
    f->durability = (flags & O_DSYNC) ? WLF_DURABILITY_FULL : opt->durability;
    f->fd_floor = fd_floor;
    memcpy(f->suffix, suffix, strlen(suffix) + 1);

    const wlf_lock_options &lock_opt = opt->lock;
    int rc;
    if (!(opt->use_lock && probe_allowed(path, lock_opt) && lock_first(f, path, lock_opt, fd_floor))) {
        // O_CREAT|O_EXCL never follows a symlink at the path (open(2) gives
        // EEXIST): following a dangling one would create a file of an
        // attacker's choosing.
        bool exclusive = (flags & O_CREAT) && (flags & O_EXCL);
        bool via_proc = false;
        detail::StaleRetry stale;  // a shared file system's cached handle (shared_fs.hpp)
        do {
            rc = detail::resolve_target(path, (flags & O_NOFOLLOW) || exclusive, f->target, sizeof f->target,
                                        &f->existed, &f->st, &via_proc);
        } while (stale.again_if_stale(rc, path));
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
            rc = detail::begin_direct(f, WLF_COMMIT_PASSTHROUGH, path, mode, &none, err);
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
            rc = detail::lock_acquire_at_floor(f->target, &lock_opt, fd_floor, &f->lock, err);
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
        rc = detail::begin_direct(f, WLF_COMMIT_IN_PLACE, path, mode, &seen, err);
    else if (f->existed && f->st.st_nlink > 1 && opt->hardlink_policy == WLF_HARDLINK_KEEP)
        rc = detail::begin_staged(f, path, mode, &seen, err);
    else
        rc = detail::begin_rename(f, path, mode, &seen, err);
    seen.fd.reset();
    if (rc) return fail_and_destroy(f, nullptr, rc, WLF_STEP_NONE, "", "");
    if (caller_fd) {
        // The caller's descriptor keeps the number open(2) would have given;
        // the library keeps its own copy out of the program's way.
        int own = detail::dup_kept(f->fd, fd_floor);
        if (own < 0) return fail_and_destroy(f, err, errno, WLF_STEP_OPEN, "duplicate descriptor of", f->target);
        // Nothing is changed yet (a direct target's truncation asked first):
        // refused now rather than failing the program's next descriptor.
        if (!detail::leaves_room(f, 1)) {
            sys::close(own);
            return fail_and_destroy(f, err, EMFILE, WLF_STEP_OPEN,
                                    "open (the descriptor limit leaves no room for the program's next descriptor)", f->target);
        }
        *caller_fd = f->fd;
        f->fd = own;
    } else {
        f->fd = detail::raise_fd(f->fd, fd_floor);
    }
    *out = f;
    return 0;
}

}  // namespace

int detail::open_replacement(const char *path, int flags, uint32_t create_mode, const wlf_write_options *opt,
                             wlf_file **out, wlf_error *err) {
    return open_file(path, flags, static_cast<mode_t>(create_mode), opt, 0, nullptr, out, err);
}

int detail::file_open(const char *path, int flags, mode_t mode, const wlf_write_options *opt, int fd_floor,
                      wlf_file **out, int *caller_fd, wlf_error *err) {
    if (caller_fd) *caller_fd = -1;
    return open_file(path, flags, mode, opt, fd_floor, caller_fd, out, err);
}
