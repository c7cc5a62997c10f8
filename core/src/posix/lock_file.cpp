// Ownership of "<target>.lock" (README "Locks"). The name is a common one for
// other people's files (Gemfile.lock, Cargo.lock, git's own X.lock), so the
// library writes no byte into a lock file, never truncates one, and removes
// only its own:
//  - it creates a new lock file with O_EXCL and mode 0666 | S_ISVTX. The
//    sticky bit survives the umask and costs nothing; nobody else makes
//    empty sticky regular files, so (regular, empty, one link, S_ISVTX, our
//    uid) proves later that a file left by a holder killed with -9 is ours;
//  - it locks an existing file only if that is a regular file with one link,
//    opened read-only, without following or blocking (O_NONBLOCK: a FIFO
//    swapped in after the lstat must not hang the open). A FIFO, socket,
//    device, directory, symlink or a hard link to something else is refused
//    with ENOLCK naming what it is, untouched.
// The holder's pid is not written anywhere: /proc/locks lists every flock.
#include "lock_file.hpp"

#include "internal.hpp"

#include "sysio.hpp"
#include "wlf_config.h"

#include <dirent.h>
#include <sched.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace wrap_lockfile::detail {

namespace {

constexpr int kOpenFlags = O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
constexpr mode_t kMarkerMode = 0666 | S_ISVTX;
// A path that keeps changing between our create, lstat and open (a busy
// holder creating and removing it) is retried at once a few times, then
// with a growing sleep (1 to 25 ms): a shared file system's cached
// negative entry (O_EXCL says EEXIST, lstat ENOENT) lasts until the cache
// times out, and 1000 tries in a row were over in milliseconds. These
// bound a hostile loop.
constexpr int kMaxOpenRetries = 1000;
constexpr int kQuickOpenRetries = 8;
constexpr int64_t kMaxChangingNs = 2000000000;  // 2 s of sleeps in all

// Hard links are counted up to a few; the count is part of the message.
const char *const kLinkOps[] = {
    "lock file %s has 2 links", "lock file %s has 3 links", "lock file %s has 4 links",
    "lock file %s has 5 links", "lock file %s has 6 links", "lock file %s has 7 links",
    "lock file %s has 8 links", "lock file %s has 9 links",
};

const char *kind_refusal(mode_t mode) {
    switch (mode & S_IFMT) {
    case S_IFREG: return nullptr;
    case S_IFIFO: return "lock file %s is a FIFO";
    case S_IFDIR: return "lock file %s is a directory";
    case S_IFSOCK: return "lock file %s is a socket";
    case S_IFCHR:
    case S_IFBLK: return "lock file %s is a device";
    case S_IFLNK: return "lock file %s is a symbolic link";
    default: return "lock file %s is not a regular file";
    }
}

// Why `st` cannot be locked; nullptr if it can.
const char *refusal(const struct stat &st) {
    if (const char *op = kind_refusal(st.st_mode)) return op;
    if (st.st_nlink <= 1) return nullptr;
    size_t n = sizeof kLinkOps / sizeof kLinkOps[0];
    return st.st_nlink - 2 < n ? kLinkOps[st.st_nlink - 2] : "lock file %s has more than 9 links";
}

}  // namespace

const char *dotlock_refusal(const struct stat &st) { return kind_refusal(st.st_mode); }

int lock_file_open(const char *path, bool create_only, bool writable, int *fd, bool *created, const char **op) {
    *op = "open lock file";
    int64_t backoff = 1000000, slept = 0;
    for (int attempt = 0; attempt < kMaxOpenRetries; ++attempt) {
        if (attempt >= kQuickOpenRetries) {
            if (slept >= kMaxChangingNs) break;
            int64_t delay = backoff / 2 + static_cast<int64_t>(random_u64() % static_cast<uint64_t>(backoff));
            sleep_ns(delay);
            slept += delay;
            if (backoff < 25000000) backoff *= 2;
        }
        int raw = sys::open(path, O_RDWR | O_CREAT | O_EXCL | kOpenFlags, kMarkerMode);
        if (raw >= 0) {
            *fd = raw;
            *created = true;
            return 0;
        }
        int create_error = errno;
        if (create_only) return create_error;
        // EACCES/EROFS: a directory we may not create in (another user's,
        // a read-only mount) may still hold a lock file we can lock.
        if (create_error != EEXIST && create_error != EACCES && create_error != EROFS) return create_error;

        // Look before opening: opening a device or a FIFO has side effects.
        struct stat ps;
        if (lstat(path, &ps) != 0) {
            if (errno == ENOENT && create_error == EEXIST) continue;  // removed meanwhile: create it
            return errno == ENOENT ? create_error : errno;
        }
        if (const char *why = refusal(ps)) {
            *op = why;
            return ENOLCK;
        }
        raw = sys::open(path, (writable ? O_RDWR : O_RDONLY) | kOpenFlags);
        if (raw < 0) {
            if (errno == ENOENT) continue;
            if (errno == ELOOP) continue;  // became a symlink: look again
            return errno;
        }
        sys::UniqueFd owned(raw);
        struct stat fs;
        if (fstat(raw, &fs) != 0) return errno;
        // Swapped between the lstat and the open: judge what we opened.
        if (const char *why = refusal(fs)) {
            *op = why;
            return ENOLCK;
        }
        if (fs.st_dev != ps.st_dev || fs.st_ino != ps.st_ino) continue;
        *fd = owned.release();
        *created = false;
        return 0;
    }
    *op = "lock file %s keeps changing";
    return ENOLCK;
}

bool lock_file_is_marked(const struct stat &st) {
    // The owner check: another user's file is never ours to remove. In a
    // sticky directory the unlink would fail anyway, and anybody can make an
    // empty sticky file under a name of their choosing.
    return S_ISREG(st.st_mode) && st.st_nlink == 1 && st.st_size == 0 && (st.st_mode & S_ISVTX) &&
           st.st_uid == geteuid();
}

namespace {
// How many of the library's lock descriptions sit at each number below
// kMarkedFds (a count, not a bit: a number closed by one thread and not yet
// unmarked may already be another thread's new lock), the count of those
// above it, the busy windows open (lock_file.hpp), and a sequence that every change of
// these moves (lock_file.hpp). 128 KiB; untouched pages cost nothing.
constexpr int kMarkedFds = 1 << 16;
std::atomic<uint16_t> g_marks[kMarkedFds];
std::atomic<int> g_marked_above{0};
std::atomic<int> g_busy{0};
std::atomic<unsigned> g_mark_seq{0};

void bump() { g_mark_seq.fetch_add(1, std::memory_order_seq_cst); }
}  // namespace

void lock_fd_mark(int fd) {
    if (fd < 0) return;
    if (fd >= kMarkedFds)
        g_marked_above.fetch_add(1, std::memory_order_seq_cst);
    else
        g_marks[fd].fetch_add(1, std::memory_order_seq_cst);
    bump();
}

void lock_fd_unmark(int fd) {
    if (fd < 0) return;
    // The sequence first: a scan that still saw this description's flock
    // and then finds the count gone has seen the sequence move as well.
    bump();
    if (fd >= kMarkedFds) {
        g_marked_above.fetch_sub(1, std::memory_order_seq_cst);
        return;
    }
    uint16_t n = g_marks[fd].load(std::memory_order_seq_cst);
    while (n > 0 && !g_marks[fd].compare_exchange_weak(n, static_cast<uint16_t>(n - 1), std::memory_order_seq_cst)) {
    }
}

void lock_fd_close(int fd) {
    lock_fd_busy_begin();
    sys::close(fd);
    lock_fd_unmark(fd);
    lock_fd_busy_end();
}

void lock_fd_busy_begin() {
    g_busy.fetch_add(1, std::memory_order_seq_cst);
    bump();
}

void lock_fd_busy_end() {
    bump();
    g_busy.fetch_sub(1, std::memory_order_seq_cst);
}

namespace {
[[maybe_unused]] bool lock_fd_marked(int fd) { return fd >= 0 && fd < kMarkedFds && g_marks[fd].load(std::memory_order_seq_cst) != 0; }
}  // namespace

#if WLF_HAVE_PROC
namespace {

// Parses the unsigned number at *p in `base`; advances *p. False if none.
bool parse_number(const char **p, const char *end, int base, unsigned long long *out) {
    const char *s = *p;
    unsigned long long v = 0;
    bool any = false;
    for (; s < end; ++s) {
        int d;
        if (*s >= '0' && *s <= '9') d = *s - '0';
        else if (base == 16 && *s >= 'a' && *s <= 'f') d = *s - 'a' + 10;
        else break;
        if (v > (~0ULL - static_cast<unsigned>(d)) / static_cast<unsigned>(base)) return false;
        v = v * static_cast<unsigned>(base) + static_cast<unsigned>(d);
        any = true;
    }
    *p = s;
    *out = v;
    return any;
}

// Next whitespace-separated word of [*p, end).
bool next_word(const char **p, const char *end, const char **word, size_t *len) {
    const char *s = *p;
    while (s < end && *s == ' ') ++s;
    const char *w = s;
    while (s < end && *s != ' ') ++s;
    *p = s;
    *word = w;
    *len = static_cast<size_t>(s - w);
    return *len > 0;
}

bool word_is(const char *w, size_t n, const char *lit) { return n == strlen(lit) && memcmp(w, lit, n) == 0; }

// One line of /proc/locks (fs/locks.c lock_get_status):
//   "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
// with "-> " after the id for a waiter. The device is the superblock's,
// major:minor in hex; the inode is decimal. Whether it is a granted
// flock on (maj:min, ino), exclusive (WRITE) unless `shared_too`; its
// locker's pid into *pid (0 where that pid is not visible in our pid
// namespace).
bool flock_line(const char *s, const char *end, unsigned maj, unsigned min, unsigned long long ino, bool shared_too,
                pid_t *pid) {
    const char *w;
    size_t n;
    if (!next_word(&s, end, &w, &n) || w[n - 1] != ':') return false;  // the id
    if (!next_word(&s, end, &w, &n) || !word_is(w, n, "FLOCK")) return false;  // "->" (a waiter) or another kind
    if (!next_word(&s, end, &w, &n)) return false;                             // ADVISORY
    if (!next_word(&s, end, &w, &n) || !(word_is(w, n, "WRITE") || (shared_too && word_is(w, n, "READ"))))
        return false;
    if (!next_word(&s, end, &w, &n)) return false;
    const char *q = w;
    unsigned long long locker, dmaj, dmin, dino;
    if (!parse_number(&q, w + n, 10, &locker) || q != w + n || locker > 0x7fffffff) return false;
    if (!next_word(&s, end, &w, &n)) return false;
    q = w;
    const char *wend = w + n;
    if (!parse_number(&q, wend, 16, &dmaj) || q == wend || *q++ != ':') return false;
    if (!parse_number(&q, wend, 16, &dmin) || q == wend || *q++ != ':') return false;
    if (!parse_number(&q, wend, 10, &dino) || q != wend) return false;
    *pid = static_cast<pid_t>(locker);
    return dmaj == maj && dmin == min && dino == ino;
}

pid_t holder_in_line(const char *s, const char *end, unsigned maj, unsigned min, unsigned long long ino) {
    pid_t pid = 0;
    return flock_line(s, end, maj, min, ino, false, &pid) ? pid : 0;
}

// Whether /proc/self/fdinfo/<name> (opened through `dir`) lists a flock
// (shared or exclusive) on (maj:min, ino): it shows the locks of that
// descriptor's own open file description, each as a /proc/locks line after
// "lock:\t" (fs/locks.c show_fd_locks).
bool fdinfo_has_flock(int dir, const char *name, unsigned maj, unsigned min, unsigned long long ino) {
    sys::UniqueFd fd(sys::openat(dir, name, O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) return false;
    char buf[4096];
    ssize_t n = sys::read(fd.get(), buf, sizeof buf);
    if (n <= 0) return false;
    static constexpr char kPrefix[] = "lock:\t";
    const char *end = buf + n;
    for (const char *line = buf, *nl; line < end; line = nl + 1) {
        nl = static_cast<const char *>(memchr(line, '\n', static_cast<size_t>(end - line)));
        if (!nl) nl = end;
        pid_t pid;
        if (static_cast<size_t>(nl - line) > sizeof kPrefix - 1 && memcmp(line, kPrefix, sizeof kPrefix - 1) == 0 &&
            flock_line(line + sizeof kPrefix - 1, nl, maj, min, ino, true, &pid))
            return true;
    }
    return false;
}

}  // namespace

namespace {

enum class Scan { program, none, changed };

// One pass over /proc/self/fdinfo: a descriptor on (dev, ino) whose
// description holds a flock and that is not the library's.
Scan scan_own_descriptors(dev_t dev, ino_t ino) {
    sys::UniqueFd dir(sys::open("/proc/self/fdinfo", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) return Scan::none;
    const unsigned maj = major(dev), min = minor(dev);
    alignas(struct dirent64) char buf[4096];
    for (;;) {
        ssize_t n = getdents64(dir.get(), buf, sizeof buf);
        if (n <= 0) return Scan::none;
        for (ssize_t off = 0; off < n;) {
            const auto *d = reinterpret_cast<const struct dirent64 *>(buf + off);
            off += d->d_reclen;
            const char *q = d->d_name;
            unsigned long long num;
            if (!parse_number(&q, d->d_name + strlen(d->d_name), 10, &num) || *q || num > 0x7fffffff) continue;
            int fd = static_cast<int>(num);
            struct stat st;
            if (fd == dir.get() || fstat(fd, &st) != 0 || st.st_dev != dev || st.st_ino != ino) continue;
            // The mark is read after the flock was seen: a description of
            // ours holding it was marked then (marked before its flock,
            // unmarked after its close), and is still, unless the sequence
            // moved meanwhile.
            if (fdinfo_has_flock(dir.get(), d->d_name, maj, min, static_cast<unsigned long long>(ino)) &&
                !lock_fd_marked(fd))
                return Scan::program;
        }
    }
}

}  // namespace

bool flock_held_by_own_descriptor(dev_t dev, ino_t ino) {
    // A seqlock read: an answer counts only if no lock descriptor of the
    // library was marked, unmarked or copied while it was looked for. Asked
    // again a few times; then no: the lock is waited for.
    for (int attempt = 0; attempt < 64; ++attempt) {
        if (attempt > 0) sched_yield();
        const unsigned before = g_mark_seq.load(std::memory_order_seq_cst);
        if (g_busy.load(std::memory_order_seq_cst) != 0 || g_marked_above.load(std::memory_order_seq_cst) != 0)
            continue;
        Scan found = scan_own_descriptors(dev, ino);
        if (g_mark_seq.load(std::memory_order_seq_cst) != before) continue;
        return found == Scan::program;
    }
    return false;
}

pid_t flock_holder(dev_t dev, ino_t ino) {
    sys::UniqueFd fd(sys::open("/proc/locks", O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) return 0;
    const unsigned maj = major(dev), min = minor(dev);
    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t n = sys::read(fd.get(), buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        have += static_cast<size_t>(n);
        const char *line = buf, *end = buf + have;
        for (const char *nl; (nl = static_cast<const char *>(memchr(line, '\n', static_cast<size_t>(end - line))));
             line = nl + 1) {
            if (pid_t pid = holder_in_line(line, nl, maj, min, static_cast<unsigned long long>(ino))) return pid;
        }
        have = static_cast<size_t>(end - line);
        // A line longer than the buffer is no line of ours: drop it.
        if (have == sizeof buf) have = 0;
        memmove(buf, line, have);
    }
    return 0;
}
#else
// No /proc/locks to read: the holder is not known.
pid_t flock_holder(dev_t, ino_t) { return 0; }
bool flock_held_by_own_descriptor(dev_t, ino_t) { return false; }
#endif

}  // namespace wrap_lockfile::detail
