// Dotlock backend. The lock file's content is one line,
//     "<pid> host=<hostname> boot=<boot id> pidns=<pid namespace inode>\n"
// liblockfile reads the leading number (atoi) as the holder's pid, so its
// dotlockfile(1) and lockfile_create(3) understand our locks, and we
// understand theirs ("<pid>\n", or "0\n" without a pid). Content in neither
// form is somebody else's file (Gemfile.lock, git's X.lock): never broken.
//
// Breaking a stale lock is the dangerous step: a pid means something only
// on the kernel and in the pid namespace that wrote it. A lock written on
// another host (boot id or host name differs) or in another pid namespace
// is never broken by pid, however dead that pid looks here; a lock in
// liblockfile's own format is judged as liblockfile judges it (same host
// assumed; without a pid, older than 5 minutes by mtime). The lock's
// identity (dev, ino, mtime, size) and content are checked again
// immediately before the unlink, so a breaker that judged one holder dead
// never removes the lock of the next. Success: link() reporting success is
// believed (it never reports a link it did not make); a reported failure is
// decided by inode comparison, as liblockfile does (NFS can report failure
// after succeeding, and st_nlink may be cached). sshfs numbers inodes per
// path, so there only link()'s success tells.
#include "dotlock.hpp"

#include "internal.hpp"
#include "lock_file.hpp"
#include "shared_fs.hpp"
#include "sysio.hpp"
#include "wlf_config.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace wrap_lockfile::detail {

namespace {

constexpr time_t kPidlessStaleSeconds = 300;  // liblockfile's rule for locks without a pid

struct Identity {
    char host[72];
    char boot[40];
    unsigned long long pidns;
};

#if WLF_HAVE_PROC
void read_small(const char *path, char *buf, size_t size) {
    buf[0] = '\0';
    sys::UniqueFd fd(sys::open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) return;
    ssize_t n = sys::read(fd.get(), buf, size - 1);
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
}
#endif

// This process's host, kernel and pid namespace; unknown parts stay empty/0.
void own_identity(Identity *id) {
    if (gethostname(id->host, sizeof id->host - 1) != 0) id->host[0] = '\0';
    id->host[sizeof id->host - 1] = '\0';
    for (char *p = id->host; *p; ++p)
        if (*p == ' ' || *p == '\n') *p = '_';
#if WLF_HAVE_PROC
    read_small("/proc/sys/kernel/random/boot_id", id->boot, sizeof id->boot);
    struct stat st;
    id->pidns = stat("/proc/self/ns/pid", &st) == 0 ? static_cast<unsigned long long>(st.st_ino) : 0;
#else
    id->boot[0] = '\0';
    id->pidns = 0;
#endif
}

// A dotlock's content, parsed strictly: liblockfile's "<pid>\n" (at most 16
// bytes, as liblockfile reads) or ours, exactly as write_content makes it.
struct Content {
    long pid;
    bool ours;  // host, boot and pidns are known
    Identity id;
};

bool parse_content(const char *buf, size_t n, Content *c) {
    memset(c, 0, sizeof *c);
    size_t digits = 0;
    while (digits < n && buf[digits] >= '0' && buf[digits] <= '9') ++digits;
    if (digits == 0 || digits > 7) return false;
    c->pid = strtol(buf, nullptr, 10);
    if (c->pid > 0x3fffff) return false;
    if (n <= 16 && (digits == n || (digits + 1 == n && buf[digits] == '\n'))) return true;
    // Ours: re-formatted from what was parsed, it must be the very same bytes.
    char host[72], boot[40];
    unsigned long long pidns;
    if (sscanf(buf, "%*d host=%71s boot=%39s pidns=%llu", host, boot, &pidns) != 3) return false;
    char again[192];
    int m = snprintf(again, sizeof again, "%ld host=%s boot=%s pidns=%llu\n", c->pid, host, boot, pidns);
    if (m < 0 || static_cast<size_t>(m) != n || memcmp(again, buf, n) != 0) return false;
    c->ours = true;
    memcpy(c->id.host, host, sizeof host);
    memcpy(c->id.boot, boot, sizeof boot);
    c->id.pidns = pidns;
    return true;
}

// Reads the dotlock at `path` (relative to `dirfd`) through one descriptor;
// its identity into *st.
bool read_content(int dirfd, const char *path, struct stat *st, Content *c) {
    sys::UniqueFd fd(sys::openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    if (!fd || fstat(fd.get(), st) != 0 || !S_ISREG(st->st_mode) || st->st_size > 191) return false;
    char buf[192];
    ssize_t n = sys::read(fd.get(), buf, sizeof buf - 1);
    if (n <= 0) return false;
    buf[n] = '\0';
    return parse_content(buf, static_cast<size_t>(n), c);
}

bool same_content(const Content &a, const Content &b) {
    return a.pid == b.pid && a.ours == b.ours && strcmp(a.id.host, b.id.host) == 0 &&
           strcmp(a.id.boot, b.id.boot) == 0 && a.id.pidns == b.id.pidns;
}

bool pid_is_dead(long pid) { return kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH; }

int write_content(int fd) {
    Identity id;
    own_identity(&id);
    char buf[192];
    int n = snprintf(buf, sizeof buf, "%d host=%s boot=%s pidns=%llu\n", static_cast<int>(getpid()),
                     id.host[0] ? id.host : "?", id.boot[0] ? id.boot : "?", id.pidns);
    if (n < 0 || static_cast<size_t>(n) >= sizeof buf) return EOVERFLOW;
    return sys::write_all(fd, buf, static_cast<size_t>(n)) == 0 ? 0 : errno;
}

bool holder_dead(const Content &c, time_t mtime, time_t now) {
    if (!c.ours) {
        // liblockfile's format: same host assumed; no pid, 5 minutes untouched.
        if (c.pid > 0) return pid_is_dead(c.pid);
        return now >= mtime + kPidlessStaleSeconds;
    }
    Identity me;
    own_identity(&me);
    bool boot_known = strcmp(c.id.boot, "?") != 0 && me.boot[0];
    bool same_kernel = boot_known ? strcmp(c.id.boot, me.boot) == 0 : strcmp(c.id.host, me.host) == 0;
    if (!same_kernel || c.pid <= 0) return false;
    // A pid of another namespace (or of one we cannot name) is not ours to test.
    if (!me.pidns || c.id.pidns != me.pidns) return false;
    return pid_is_dead(c.pid);
}

// Whether the server still has, at `path`, the lock file this client's
// caches show (`seen`, content `c`). A client of a shared file system may go
// on showing, for as long as its caches keep them, the name, attributes and
// content of a lock file its holder has since removed through another
// client (GlusterFS: the FUSE entry and attribute caches, md-cache,
// quick-read), dead by now, while the server has a live holder's lock at
// the name, which an unlink by name would remove. A hard link made from the
// path under our own unused name `probe` is looked up afresh (a name no
// cache has seen): it must show the judged file again. (GlusterFS links
// whatever the server has at the name when the cached handle is gone.)
bool judged_file_on_server(int dirfd, const char *name, const char *probe, const struct stat &seen, const Content &c) {
    if (sys::linkat(dirfd, name, dirfd, probe, 0) != 0) return false;
    struct stat ps;
    Content pc;
    bool same = read_content(dirfd, probe, &ps, &pc) && same_content(pc, c) && ps.st_size == seen.st_size &&
                ps.st_mtim.tv_sec == seen.st_mtim.tv_sec && ps.st_mtim.tv_nsec == seen.st_mtim.tv_nsec;
    unlinkat(dirfd, probe, 0);
    return same;
}

// Breaks the lock at `path` if its holder is provably gone. Returns true when
// it removed it (the caller tries again at once). `probe`: a name of this
// attempt's own, unused, in the lock's directory.
bool break_if_stale(const char *path, const char *probe) {
    // Every look and the unlink through one descriptor of the directory: by
    // path, a directory swapped after the last look would have its own
    // lock file removed (remove_if_still_ours, lock_held.hpp).
    const char *name;
    sys::UniqueFd dfd(open_parent(path, &name));
    if (!dfd) return false;
    const char *slash = strrchr(probe, '/');
    const char *probe_name = slash ? slash + 1 : probe;
    struct stat before, now;
    Content c, again;
    if (!read_content(dfd.get(), name, &before, &c) || !holder_dead(c, before.st_mtime, time(nullptr))) return false;
    // Immediately before the unlink: still the very file we judged, read
    // again (sshfs numbers inodes per path and keeps whole-second mtimes:
    // there the content, the holder's pid, is what tells two locks apart),
    // and not only in this client's caches.
    if (!read_content(dfd.get(), name, &now, &again) || !same_content(again, c) || now.st_dev != before.st_dev ||
        now.st_ino != before.st_ino ||
        now.st_mtim.tv_sec != before.st_mtim.tv_sec || now.st_mtim.tv_nsec != before.st_mtim.tv_nsec ||
        now.st_size != before.st_size || !judged_file_on_server(dfd.get(), name, probe_name, now, again))
        return false;
    return unlinkat(dfd.get(), name, 0) == 0;
}

// Removes a name of our own (our temporary, or the lock we linked); a stale
// handle (shared_fs.hpp) is asked again, bounded: the name stays otherwise,
// for good.
void remove_own(const char *path) {
    StaleRetry stale;
    while (unlink(path) != 0 && stale.again_if_stale(errno, path)) {
    }
}

struct Attempt {
    const char *path;
    const char *tmp;
    const char *probe;  // break_if_stale's
    struct stat seen;  // the lock file as its path shows it once ours
    int lookups_failed;
    const char *op;  // for ENOLCK: what is in the way
};

// The lock file, as its path shows it (the release compares that), into
// *lock, after a link() that succeeded (`linked`) or answered a stale
// handle, which may come after the link was made (a client's look at what
// it linked). A stale answer here is the cache's: nobody else removes a
// live holder's lock, so it is asked again (bounded, shared_fs.hpp), not
// taken for "not ours yet" with our file in place, where it would block
// every other locker for as long as we live. Without an answer a link that
// succeeded is undone: 0 or the errno.
int look_after_link(const Attempt *a, bool linked, struct stat *lock) {
    StaleRetry stale;
    while (lstat(a->path, lock) != 0) {
        int e = errno;
        bool cached = is_stale_handle(e, a->path) || (e == ENOENT && is_shared_fs_parent(a->path));
        if (!cached || !stale.again(e)) {
            if (linked && e != ENOENT) remove_own(a->path);
            return e;
        }
    }
    return 0;
}

int try_link(void *ctx) {
    auto *a = static_cast<Attempt *>(ctx);
    for (int round = 0; round < 2; ++round) {
        // Success is believed; a failure may be a lost reply of a success
        // (NFS), or a stale look after it: decided by the inodes.
        bool linked = sys::linkat(AT_FDCWD, a->tmp, AT_FDCWD, a->path, 0) == 0;
        bool maybe_linked = linked || is_stale_handle(errno, a->path);
        struct stat mine, lock;
        if (maybe_linked) {
            // ENOENT: removed under us (by a breaker that judged us dead),
            // or never made: try again, a few times (as below).
            int e = look_after_link(a, linked, &lock);
            if (e == ENOENT) return ++a->lookups_failed <= 50 ? EWOULDBLOCK : e;
            if (e) return e;
            if (linked) {
                a->seen = lock;
                return 0;
            }
        }
        if (lstat(a->tmp, &mine) != 0) {
            // Our temporary's stale handle: as the lock's, below.
            int e = errno;
            if (is_stale_handle(e, a->tmp) && ++a->lookups_failed <= 50) return EWOULDBLOCK;
            return e;
        }
        if (!maybe_linked && lstat(a->path, &lock) != 0) {
            // Neither we nor anybody holds it, or a cache lied: a few times is
            // the cache's, more is an error (liblockfile gives up likewise).
            // A holder's release on another client between the lookup and
            // the attributes leaves a stale handle: ESTALE, or GlusterFS's
            // EBADFD (is_stale_handle).
            int e = errno;
            if ((e == ENOENT || is_stale_handle(e, a->path)) && ++a->lookups_failed <= 50) return EWOULDBLOCK;
            return e;
        }
        a->lookups_failed = 0;
        if (lock.st_dev == mine.st_dev && lock.st_ino == mine.st_ino) {
            // The lock file as its path shows it (the release compares that).
            a->seen = lock;
            return 0;
        }
        // A FIFO, directory, symlink... is nobody's dotlock: waiting for it
        // to go would be forever.
        if (const char *why = dotlock_refusal(lock)) {
            a->op = why;
            return ENOLCK;
        }
        if (!break_if_stale(a->path, a->probe)) break;
    }
    return EWOULDBLOCK;
}

}  // namespace

pid_t dotlock_holder_pid(const char *path, const struct stat &st) {
    struct stat fs;
    Content c;
    if (!read_content(AT_FDCWD, path, &fs, &c) || fs.st_dev != st.st_dev || fs.st_ino != st.st_ino) return 0;
    return static_cast<pid_t>(c.pid);
}

int dotlock_acquire(const char *path, const wlf_lock_options *opt, struct stat *seen, wlf_error *err) {
    char dir[WLF_PATH_MAX];
    const char *base;
    if (int rc = split_dir_base(path, dir, sizeof dir, &base)) return fail(err, rc, WLF_STEP_LOCK, "lock path", path);
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    if (char *dot = strchr(host, '.')) *dot = '\0';
    // liblockfile's temporary name, made unique per process and attempt.
    char tmp[WLF_PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s/.lk%05d%llx%s", dir, static_cast<int>(getpid()),
                     static_cast<unsigned long long>(random_u64() & 0xffffffffu), host);
    if (n < 0 || static_cast<size_t>(n) >= sizeof tmp) return fail(err, ENAMETOOLONG, WLF_STEP_LOCK, "lock path", path);

    int fd = sys::open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    // Errors name the lock file, not the temporary: that is the file the
    // user knows (callers classify by the step, WLF_STEP_LOCK, not by name).
    if (fd < 0) {
        // A stale handle may come after the file was made (a client's look
        // at what it created): the name is ours alone, so it goes.
        int e = errno;
        if (is_stale_handle(e, tmp)) remove_own(tmp);
        return fail(err, e, WLF_STEP_LOCK, "create dotlock temporary", path);
    }
    int wrc = write_content(fd);
    if (sys::close(fd) != 0 && wrc == 0) wrc = errno;
    if (wrc != 0) {
        remove_own(tmp);
        return fail(err, wrc, WLF_STEP_LOCK, "write dotlock temporary", path);
    }
    char probe[WLF_PATH_MAX];
    if (snprintf(probe, sizeof probe, "%s.b", tmp) >= static_cast<int>(sizeof probe)) {
        remove_own(tmp);
        return fail(err, ENAMETOOLONG, WLF_STEP_LOCK, "lock path", path);
    }
    Attempt a{path, tmp, probe, {}, 0, nullptr};
    int rc = poll_until(try_link, &a, opt->has_timeout != 0, opt->timeout);
    remove_own(tmp);
    if (rc == EWOULDBLOCK || rc == ETIMEDOUT) return fail(err, rc, WLF_STEP_LOCK, "lock", path);
    if (rc == ENOLCK && a.op) return fail(err, rc, WLF_STEP_LOCK, a.op, path);
    if (rc != 0) return fail(err, rc, WLF_STEP_LOCK, "dotlock", path);
    *seen = a.seen;
    return 0;
}

}  // namespace wrap_lockfile::detail
