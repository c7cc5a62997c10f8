#include "open.hpp"

#include "commit.hpp"
#include "handlers.hpp"
#include "messages.hpp"
#include "preload_config.hpp"
#include "unseen_close.hpp"

#include "handoff.hpp"
#include "long_path.hpp"
#include "normalize.hpp"
#include "open_flags.hpp"
#include "replace_parts.hpp"
#include "sysio.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace wrap_lockfile::shim {

namespace {

// Which rule applies to the file the symlink at `raw` leads to; its
// resolved path goes to final[size].
rules::Kind classify_link_target(const char *raw, char *final, size_t size) {
    bool exists;
    struct stat st;
    char resolved[WLF_PATH_MAX];
    bool via_proc;
    if (detail::resolve_target(raw, false, resolved, sizeof resolved, &exists, &st, &via_proc) || via_proc)
        return rules::kNone;
    if (detail::normalize_path("/", resolved, final, size)) return rules::kNone;
    return rules::classify(&g_config.rules, final);
}

// A write-open, in a child of the opener, of a file the opener has pending
// and this process holds a descriptor of (`exec >>log 2>&1; ls >>log` in a
// shell): without the shim both are one file; here the child would wait
// for the lock its own parent holds until the parent closes, forever if the
// parent waits for the child. The new descriptor is a new open of the temp,
// marked inherited (its write errors reach the opener, child_errors.cpp);
// the opener commits.
bool join_inherited(const Pending &pend, int flags, int *out) {
    *out = -1;
    if (int e = refusal_of_existing(flags)) {
        errno = e;
        return true;
    }
    if ((flags & O_DIRECT) && direct_join_refused(pend)) return true;
    int fd = served(open_pending_temp(pend, flags));
    if (fd < 0) return errno != ENOENT && errno != ESTALE;  // no /proc, or just committed: on its own
    if (fd < kMaxFds) {
        Guard g;
        set_slot(fd, kInherited);
        g_children.store(true, std::memory_order_relaxed);
    }
    *out = fd;
    return true;
}

// A second write-open of a target this thread has pending: a shell's
// `exec >>log 2>>log`, `tee -a f f`, two SQLite connections, truncate(2) of
// an open file. Without the shim both descriptors are one file, so here they
// are one replacement: the new descriptor is a new open of the temp (its own
// offset and flags; O_TRUNC empties what the first wrote, as it would), one
// more handle of the same entry, and the commit waits for the last close.
// As two replacements, the second would start from the old file and the
// last commit would drop the other's writes. Another thread's open waits
// for the lock instead (threads serialize, docs/design.md "The shim"),
// unless it opens the pending file itself, not its path (`link`: a link
// into /proc naming it): that is one more descriptor of it in any thread,
// never a replacement of its own (opened plainly, it would write the temp
// unseen, and a staged one's memfd is dropped at the commit).
// done: the path names such a replacement, and *out is the descriptor, or
// -1 with errno; busy: wait and ask again; none: open it on its own.
enum class Join { none, done, busy };
Join join_pending(const Paths &p, int flags, bool link, int *out) {
    // Ours, its last descriptor just closed by another thread, which is
    // committing it: joining would commit it twice, and a replacement of
    // our own started before that commit has released the lock would nest
    // onto it and start from the content the commit is about to replace.
    // The caller waits for the end of it (the entry goes last). All of it
    // under the table's lock: a last close dropped between a look at the
    // entry and a look at the record (which its commit unpublishes first)
    // would be missed by both.
    if (g_replacements.count() == 0 && g_pending.load(std::memory_order_relaxed) == 0) return Join::none;
    Guard g;
    if (Entry *e = link ? nullptr : g_replacements.by_key(p.norm); e && e->refs == 0 && e->opener == getpid())
        return Join::busy;
    if (g_pending.load(std::memory_order_relaxed) == 0) return Join::none;
    Pending pend;
    if (!find_pending(AT_FDCWD, p.norm, !(flags & O_NOFOLLOW), &pend)) return Join::none;
    if (inherited_pending(pend)) return join_inherited(pend, flags, out) ? Join::done : Join::none;
    const wlf_file *f = own_pending_file(pend);
    if (!f) return Join::none;
    Entry *e = g_replacements.by_file(f);
    if (!e || e->opener != getpid()) return Join::none;
    if (e->refs == 0) return Join::busy;
    if (!link && !detail::file_locked_by_this_thread(f)) return Join::none;
    // The name must still be the file the replacement looked at: renamed
    // away meanwhile (logrotate's mv), a new open of the name makes a new
    // file, as it does plainly; joined, its writes would go with the pending
    // one, which its commit then refuses (ESTALE): dropped. (A /proc link
    // names the open file itself, wherever its name went.)
    if (!link && !detail::file_target_still_looked_at(f)) return Join::none;
    *out = -1;
    if (int e = refusal_of_existing(flags)) {
        errno = e;
        return Join::done;
    }
    if ((flags & O_DIRECT) && direct_join_refused(pend)) return Join::done;
    int fd = served(open_pending_temp(pend, flags));
    if (fd < 0 && errno == ENOENT) {
        // No /proc to open the temp again through: a second replacement
        // would start from the old file and one of them would drop the
        // other's writes. Refused, said.
        message("wrap_lockfile: cannot open '%s' for writing again while it is pending: %s\n", p.norm,
                "/proc is not mounted");
        errno = EBUSY;
        return Join::done;
    }
    if (fd < 0) return errno == ESTALE ? Join::none : Join::done;  // ESTALE: just committed
    // served() may have committed what an unseen close left behind.
    if (!still_pending(pend) || g_replacements.by_file(f) != e) {
        sys::close(fd);
        return Join::none;
    }
    if (!g_replacements.add_handle(e, fd)) {
        sys::close(fd);
        errno = EMFILE;  // beyond what the table lists
        return Join::done;
    }
    // Its writes, synchronous for the program, must survive as the first
    // open's would (docs/design.md, "Open flags").
    if (flags & O_DSYNC) detail::file_commit_durably(e->file);
    *out = fd;
    return Join::done;
}

// join_pending until it is done (true, *out as it leaves it) or finds
// nothing to join (false).
bool joined(const Paths &p, int flags, bool link, int *out) {
    for (Join j; (j = join_pending(p, flags, link, out)) != Join::none;) {
        if (j == Join::done) {
            if (*out >= 0) log_line("wrap_lockfile: %s '%s'\n", "opened again, joining the pending replacement of", p.norm);
            return true;
        }
        struct timespec wait{0, 1000000};  // another thread's commit of it: 1 ms
        nanosleep(&wait, nullptr);
    }
    return false;
}

}  // namespace

bool refuse_unbuildable(int rc, int dirfd, const char *path, bool link) {
    if (rc != ENAMETOOLONG || judge_unbounded(&g_config.rules, dirfd, path, link) == Unbounded::plain) return false;
    message("wrap_lockfile: '%s': %s\n", path,
            link ? "a symbolic link whose absolute path is longer than PATH_MAX: cannot tell whether a rule matches "
                   "its target, not writing it"
                 : "a rule matches it, but its absolute path is longer than PATH_MAX, so it cannot be replaced "
                   "atomically; not writing it");
    errno = ENAMETOOLONG;
    return true;
}

rules::Kind classify(const Paths &p, char *final, size_t size) {
    rules::Kind kind = rules::classify(&g_config.rules, p.norm);
    if (kind != rules::kNone) return kind;
    struct stat st;
    if (lstat(p.raw, &st) != 0 || !S_ISLNK(st.st_mode)) return rules::kNone;
    return classify_link_target(p.raw, final, size);
}

bool open_through_link(const Paths &p, int flags, int *out) {
    return g_pending.load(std::memory_order_relaxed) != 0 && names_open_file(p.norm) && joined(p, flags, true, out);
}

int open_pending(const Paths &p, rules::Kind kind, int flags, mode_t mode) {
    // A replacement whose descriptor was closed unseen is committed before
    // this one looks at the file (appending to what it wrote, say).
    if (g_tracked.load(std::memory_order_acquire) != 0) commit_unseen_closes();
    if (int fd; joined(p, flags, false, &fd)) return fd;
    wlf_write_options opt = g_config.options;
    opt.lock_only = kind == rules::kLockOnly;
    wlf_file *f = nullptr;
    wlf_error err;  // filled on failure
    err.code = 0;
    int user = -1;
    int rc = detail::file_open(p.raw, flags & detail::kSupportedOpenFlags, mode, &opt, g_config.fd_floor, &f, &user,
                               &err);
    bool own = detail::held_by_program(rc, err);
    if (own || (rc == EDEADLK && err.step == WLF_STEP_LOCK && opt.lock_only)) {
        // Locked by this program itself (`( flock 9; cmd > X ) 9>>X.lock`):
        // its writes of X go ahead without our lock. One that truncates is
        // replaced as ever; one that keeps the content (an append) is made
        // in place: the lock's description may be held by several of the
        // program's processes at once (`( flock 9; a >> X & b >> X; wait )`),
        // and two copies of the old X, each appended to, would drop one
        // line at the second commit (README "holds the file's lock
        // itself"). Locked by a process this one descends from (a log the
        // parent holds open while its child appends to it): in place under
        // the parent's lock, as the two share the file without the shim.
        const bool in_place = !own || !(flags & O_TRUNC);
        log_line("wrap_lockfile: '%s' is locked by %s\n", p.norm,
                 !own       ? "a process this one descends from: writing it in place under that lock"
                 : in_place ? "this program itself: writing it in place without our lock"
                            : "this program itself: writing it without our lock");
        if (own && in_place) opt.lock_only = 1;
        opt.use_lock = 0;
        err.code = 0;
        rc = detail::file_open(p.raw, flags & detail::kSupportedOpenFlags, mode, &opt, g_config.fd_floor, &f, &user,
                               &err);
    }
    if (rc) {
        char text[WLF_PATH_MAX + 256];
        describe_lock_failure(rc, err, text, sizeof text);
        bool lock_step = err.step == WLF_STEP_LOCK;
        if (lock_step && (rc == ETIMEDOUT || rc == EWOULDBLOCK)) {
            // A lock wait that gave up must never look like a silent failure.
            message("wrap_lockfile: cannot open '%s' for writing: %s (WRAP_LOCKFILE_TIMEOUT)\n", p.norm, text);
            rc = rc == EWOULDBLOCK ? EAGAIN : ETIMEDOUT;
        } else if (lock_step && rc == EDEADLK) {
            // Its replacement pending in an ancestor, which may be waiting
            // for this process: an error now rather than a wait for ever.
            // Writes into the parent's pending file cannot be joined without
            // a descriptor of it; --lock-only writes such a file in place.
            message("wrap_lockfile: cannot open '%s' for writing: %s; not waiting for it (a --lock-only rule lets "
                    "both write it)\n",
                    p.norm, text);
        } else if (lock_step && (rc == ENOLCK || rc == EACCES || rc == EPERM || rc == EROFS)) {
            // A lock file that is not one (a FIFO, a directory, a hard link),
            // or one that cannot be created (a directory we may not create
            // in, though the file itself is writable): the program's own
            // message could only name the target.
            message("wrap_lockfile: cannot open '%s' for writing: %s\n", p.norm, text);
        } else {
            log_line("wrap_lockfile: open '%s' failed: %s\n", p.norm, text);
        }
        errno = rc;
        return -1;
    }
    if (wlf_file_kind(f) == WLF_COMMIT_PASSTHROUGH) {
        int fd = served(wlf_file_detach(f));
        if (!(flags & O_CLOEXEC)) sys::fcntl(fd, F_SETFD, 0);
        return fd;
    }
    const pid_t opener = detail::file_opener(f);
    served(user);
    bool added;
    {
        Guard g;
        added = g_replacements.add(f, user, p.norm, opener) != nullptr;
        if (added) mark_internal(f, true);
    }
    if (!added) {
        sys::close(user);
        wlf_discard(f);
        errno = user < kMaxFds ? ENOMEM : EMFILE;
        return -1;
    }
    identity_add(f, p.norm, p.raw, opener);
    log_line("wrap_lockfile: %s '%s'\n", opt.lock_only ? "locked" : "replacing", p.norm);
    return user;
}

int open_write(int dirfd, const char *path, int flags, mode_t mode, OpenThunk open_with) {
    Paths p;
    bool have_paths = false;
    rules::Kind kind;
    if (g_config.slash_rules) {
        if (int rc = make_paths(dirfd, path, &p))
            return refuse_unbuildable(rc, dirfd, path, false) ? -1 : served(open_with(flags));
        have_paths = true;
        kind = rules::classify(&g_config.rules, p.norm);
    } else {
        // Name-only rules: the last component decides, no getcwd needed.
        kind = rules::classify(&g_config.rules, path);
    }
    if (kind == rules::kExclude) return served(open_with(flags));
    if (kind == rules::kNone) {
        if (flags & O_NOFOLLOW) return served(open_with(flags));
        // Unmatched: open it for real, but refuse to follow a final symlink;
        // ELOOP then tells us (at no extra system call for plain files) that
        // the path is a link whose target a rule may match.
        int fd = open_with(flags | O_NOFOLLOW);
        if (fd >= 0 || errno != ELOOP) return served(fd);
        if (int rc = have_paths ? 0 : make_paths(dirfd, path, &p))
            return refuse_unbuildable(rc, dirfd, path, true) ? -1 : served(open_with(flags));
        char final[WLF_PATH_MAX];
        kind = classify_link_target(p.raw, final, sizeof final);
        if (kind == rules::kNone || kind == rules::kExclude) {
            if (int joined; open_through_link(p, flags, &joined)) return joined;
            return served(open_with(flags));
        }
        return open_pending(p, kind, flags, mode);
    }
    if (int rc = have_paths ? 0 : make_paths(dirfd, path, &p))
        return refuse_unbuildable(rc, dirfd, path, false) ? -1 : served(open_with(flags));
    return open_pending(p, kind, flags, mode);
}

int open_matched(int dirfd, const char *path, int flags, mode_t mode) {
    Paths p;
    char final[WLF_PATH_MAX];
    if (int rc = make_paths(dirfd, path, &p)) return refuse_unbuildable(rc, dirfd, path, false) ? -1 : kNotMatched;
    rules::Kind kind = classify(p, final, sizeof final);
    if (kind == rules::kNone || kind == rules::kExclude) {
        int joined;
        return open_through_link(p, flags, &joined) ? joined : kNotMatched;
    }
    return open_pending(p, kind, flags, mode);
}

}  // namespace wrap_lockfile::shim
