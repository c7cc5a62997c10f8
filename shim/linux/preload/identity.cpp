// The records behind identity.hpp: for each pending replacement of this
// process, the normalized target (and the path opened, when a symlink led
// there), the core's private descriptor of the temp and the temp's inode.
//
// Readers (every stat, access and read-open while something is pending) take
// no lock: stat and access are async-signal-safe. A record is published with
// a generation number, written last; a reader copies what it needs and
// checks afterwards that the generation is unchanged (a seqlock), so a record
// freed or reused meanwhile is never taken for the file. Writers (open,
// commit, fd relocation) serialize on g_write.
//
// Forked children share the descriptor and keep the records: until the
// opener commits or discards, they see the pending file as the opener does.
// The opener's end of a replacement is told to them through a MAP_SHARED
// page (one word per record): a child's copy of a record is valid while the
// opener's word still holds its generation. A child's own replacements use a
// page of its own. Across execve (identity_exec_env / identity_import, at the
// end of this file) a child passes on what it still holds a descriptor of;
// the opener's own replacements are recorded again by the new image, which
// takes them over.
//
// The core calls stat, lstat, statx and faccessat on the real target: those
// calls come from this object (called_from_shim) and go straight to libc.
#include "handlers.hpp"
#include "handoff.hpp"
#include "normalize.hpp"
#include "paths.hpp"
#include "sysio.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <pthread.h>
#include <sys/mman.h>

#include <cstring>

// This object's own code, from the linker: calls returning there are ours.
extern "C" char __ehdr_start[] __attribute__((visibility("hidden")));
extern "C" char __etext[] __attribute__((visibility("hidden")));

namespace wrap_lockfile::shim {

// constinit: our constructor records hand-overs before dynamic initializers run.
constinit std::atomic<int> g_pending{0};

namespace {

// More pending replacements at once than this get no identity (they behave
// as before: the path shows the old file until the commit).
constexpr int kRecords = 128;

struct Record {
    std::atomic<uint32_t> gen;    // 0: free; else equal to *live while valid
    std::atomic<uint32_t> *live;  // this record's word in its opener's page (null: see still_the_temp)
    std::atomic<int> fd;
    pid_t owner;  // the process whose replacement it is
    const wlf_file *file;
    dev_t dev;  // the temp's
    ino_t ino;
    Shown shown;
    uint16_t target_base, opened_base;  // offsets of the last components
    char target[WLF_PATH_MAX];          // normalized final target
    char opened[WLF_PATH_MAX];          // normalized path opened, if not the target; else ""
};

constinit Record g_records[kRecords]{};
constinit std::atomic<int> g_high{0};  // records at and above this index are free
constinit std::atomic<uint32_t> *g_page = nullptr;
constinit uint32_t g_next_gen = 0;
pthread_mutex_t g_write = PTHREAD_MUTEX_INITIALIZER;
pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

struct WriteGuard {
    WriteGuard() { pthread_mutex_lock(&g_write); }
    ~WriteGuard() { pthread_mutex_unlock(&g_write); }
};

void after_fork_child() {
    // Inherited records keep pointing at the opener's page; new ones of the
    // child go to a page of its own (slots of the two would collide).
    g_page = nullptr;
    g_write = PTHREAD_MUTEX_INITIALIZER;
}

void register_atfork() { pthread_atfork(nullptr, nullptr, after_fork_child); }

uint16_t base_offset(const char *path) {
    const char *slash = strrchr(path, '/');
    return static_cast<uint16_t>(slash ? slash + 1 - path : 0);
}

// A record taken over across execve has no page: it is valid while its
// descriptor is still the anonymous temp (no name yet: not committed).
bool still_the_temp(const Record &r) {
    struct stat st;
    return fstat(r.fd.load(std::memory_order_acquire), &st) == 0 && st.st_dev == r.dev && st.st_ino == r.ino &&
           st.st_nlink == 0;
}

bool valid(const Record &r, uint32_t gen) {
    return gen != 0 && (r.live ? r.live->load(std::memory_order_acquire) == gen : still_the_temp(r));
}

// A child's copy of a record whose opener has finished: forget it.
void drop_stale(Record &r, uint32_t gen) {
    if (r.gen.compare_exchange_strong(gen, 0, std::memory_order_acq_rel)) g_pending.fetch_sub(1);
}

void unpublish(Record &r) {
    r.gen.store(0, std::memory_order_release);
    if (r.live) r.live->store(0, std::memory_order_release);
    g_pending.fetch_sub(1);
}

void publish(Record &r) {
    if (++g_next_gen == 0) ++g_next_gen;
    if (r.live) r.live->store(g_next_gen, std::memory_order_release);
    r.gen.store(g_next_gen, std::memory_order_release);
}

// The real functions, for the calls made on the temp's behalf.
using open_real = int (*)(const char *, int, ...);
using fopen_real = FILE *(*)(const char *, const char *);
using faccessat_real = int (*)(int, const char *, int, int);
constinit std::atomic<fopen_real> g_fopen{nullptr};
constinit std::atomic<faccessat_real> g_faccessat{nullptr};

void proc_path(int fd, char *out, size_t size) { snprintf(out, size, "/proc/self/fd/%d", fd); }

// Fills and publishes a free record (callers hold g_write); with_page: its
// validity is told by this process's page, else by its descriptor.
void add_record(const wlf_file *f, pid_t owner, int fd, dev_t dev, ino_t ino, Shown shown, const char *target,
                const char *opened, bool with_page) {
    int slot = 0;
    while (slot < kRecords && g_records[slot].gen.load(std::memory_order_acquire) != 0) ++slot;
    if (slot == kRecords) return;
    Record &r = g_records[slot];
    r.live = with_page ? &g_page[slot] : nullptr;
    r.fd.store(fd, std::memory_order_release);
    r.owner = owner;
    r.file = f;
    r.dev = dev;
    r.ino = ino;
    r.shown = shown;
    snprintf(r.target, sizeof r.target, "%s", target);
    r.target_base = base_offset(r.target);
    r.opened[0] = '\0';
    if (opened && *opened && strcmp(opened, target) != 0) {
        snprintf(r.opened, sizeof r.opened, "%s", opened);
        r.opened_base = base_offset(r.opened);
    }
    g_pending.fetch_add(1);
    publish(r);
    if (slot >= g_high.load(std::memory_order_relaxed)) g_high.store(slot + 1, std::memory_order_release);
}

}  // namespace

bool called_from_shim(const void *caller) {
    auto *c = static_cast<const char *>(caller);
    return c >= __ehdr_start && c < __etext;
}

bool find_pending(int dirfd, const char *path, bool follow, Pending *out) {
    const char *base = path + base_offset(path);
    if (!*base) return false;
    // Cheap first: the last component against the pending targets' names.
    int high = g_high.load(std::memory_order_acquire);
    bool candidate = false;
    for (int i = 0; i < high && !candidate; ++i) {
        const Record &r = g_records[i];
        if (r.gen.load(std::memory_order_acquire) == 0) continue;
        candidate = strncmp(base, r.target + r.target_base, WLF_PATH_MAX - r.target_base) == 0 ||
                    (follow && r.opened[0] && strncmp(base, r.opened + r.opened_base, WLF_PATH_MAX - r.opened_base) == 0);
    }
    if (!candidate) return false;
    Paths p;
    if (make_paths(dirfd, path, &p) != 0) return false;
    for (int i = 0; i < high; ++i) {
        Record &r = g_records[i];
        uint32_t gen = r.gen.load(std::memory_order_acquire);
        if (gen == 0) continue;
        bool same = strncmp(p.norm, r.target, WLF_PATH_MAX) == 0 ||
                    (follow && r.opened[0] && strncmp(p.norm, r.opened, WLF_PATH_MAX) == 0);
        if (!same) continue;
        Pending found{r.fd.load(std::memory_order_acquire), i, gen, r.dev, r.ino, r.shown};
        if (!valid(r, gen)) {
            drop_stale(r, gen);
            continue;
        }
        if (r.gen.load(std::memory_order_acquire) != gen) continue;
        *out = found;
        return true;
    }
    return false;
}

bool still_pending(const Pending &p) {
    const Record &r = g_records[p.slot];
    return r.gen.load(std::memory_order_acquire) == p.gen && valid(r, p.gen);
}

bool pending_inode(dev_t dev, ino_t ino, Shown *w) {
    int high = g_high.load(std::memory_order_acquire);
    for (int i = 0; i < high; ++i) {
        const Record &r = g_records[i];
        uint32_t gen = r.gen.load(std::memory_order_acquire);
        if (!gen || r.dev != dev || r.ino != ino) continue;
        Shown shown = r.shown;
        if (valid(r, gen) && r.gen.load(std::memory_order_acquire) == gen) {
            *w = shown;
            return true;
        }
    }
    return false;
}

void identity_add(const wlf_file *f, const char *opened) {
    if (wlf_file_kind(f) != WLF_COMMIT_RENAME) return;  // in place: the path already is the file
    int fd, lock_fd, dir_fd;
    detail::file_descriptors(f, &fd, &lock_fd, &dir_fd);
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    // Under the lock, before the commit: the target is still the old file.
    struct stat old;
    Shown shown{st.st_dev, st.st_ino};
    if (lstat(wlf_file_target(f), &old) == 0 && S_ISREG(old.st_mode)) shown = Shown{old.st_dev, old.st_ino};
    char target[WLF_PATH_MAX];
    if (detail::normalize_path("/", wlf_file_target(f), target, sizeof target) != 0) return;
    pthread_once(&g_atfork_once, register_atfork);
    WriteGuard g;
    if (!g_page) {
        void *page = mmap(nullptr, sizeof(std::atomic<uint32_t>) * kRecords, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED) return;  // no identity; the replacement itself is unaffected
        g_page = static_cast<std::atomic<uint32_t> *>(page);
    }
    add_record(f, getpid(), fd, st.st_dev, st.st_ino, shown, target, opened, true);
}

namespace {

// Replacements whose target the program itself renamed (or linked) another
// file onto. Without the shim, what it wrote through the descriptor went to
// the inode that rename unlinked, never to F: their commit must not undo
// the rename (crudini writes a temp, renames it over F, then closes the
// descriptor it held F open and locked with).
constinit const wlf_file *g_superseded[kRecords]{};
constinit std::atomic<int> g_superseded_count{0};

// Calls fn on each live record of this process's own replacements (callers
// hold g_write).
template <class Fn>
void for_own_records(Fn &&fn) {
    pid_t me = getpid();
    int high = g_high.load(std::memory_order_relaxed);
    for (int i = 0; i < high; ++i) {
        Record &r = g_records[i];
        if (r.gen.load(std::memory_order_acquire) != 0 && r.owner == me) fn(r);
    }
}

}  // namespace

bool identity_remove(const wlf_file *f) {
    if (g_pending.load(std::memory_order_acquire) == 0 && g_superseded_count.load(std::memory_order_acquire) == 0)
        return false;
    WriteGuard g;
    for_own_records([&](Record &r) {
        if (r.file == f) unpublish(r);
    });
    for (const wlf_file *&s : g_superseded) {
        if (s != f) continue;
        s = nullptr;
        g_superseded_count.fetch_sub(1);
        return true;
    }
    return false;
}

bool identity_superseded(const wlf_file *f) {
    if (g_superseded_count.load(std::memory_order_acquire) == 0) return false;
    for (const wlf_file *s : g_superseded)
        if (s == f) return true;
    return false;
}

void identity_supersede(const char *target) {
    if (g_pending.load(std::memory_order_acquire) == 0) return;
    WriteGuard g;
    for_own_records([&](Record &r) {
        if (strcmp(r.target, target) != 0) return;
        for (const wlf_file *&s : g_superseded) {
            if (s) continue;
            s = r.file;
            g_superseded_count.fetch_add(1);
            unpublish(r);
            return;
        }
    });
}

void identity_relocate(int from, int to) {
    if (g_pending.load(std::memory_order_acquire) == 0) return;
    WriteGuard g;
    for_own_records([&](Record &r) {
        if (r.fd.load() != from) return;
        // A new generation: readers that took the old number retry.
        r.gen.store(0, std::memory_order_release);
        r.fd.store(to, std::memory_order_release);
        publish(r);
    });
}

int open_pending_read(int dirfd, const char *path, int flags, OpenThunk open_with) {
    Pending p;
    if ((flags & __O_TMPFILE) == __O_TMPFILE || !find_pending(dirfd, path, !(flags & O_NOFOLLOW), &p))
        return open_with(flags);
    if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
        errno = EEXIST;
        return -1;
    }
    if (flags & O_DIRECTORY) {
        errno = ENOTDIR;
        return -1;
    }
    // A new open file description of the temp (its own offset), at the
    // number open(2) gives. O_NOFOLLOW would refuse the /proc link itself.
    char proc[64];
    proc_path(p.fd, proc, sizeof proc);
    int fd = libc_open()(proc, flags & ~(O_NOFOLLOW | O_CREAT | O_EXCL), 0);
    if (fd < 0 && errno == ENOENT) return open_with(flags);  // no /proc: the old file, as before
    if (fd >= 0 && !still_pending(p)) {
        sys::close(fd);
        return open_with(flags);
    }
    return fd;
}

FILE *fopen_pending_read(const char *path, const char *mode, Thunk pass) {
    Pending p;
    if (!find_pending(AT_FDCWD, path, true, &p)) return reinterpret_cast<FILE *>(pass());
    char proc[64];
    proc_path(p.fd, proc, sizeof proc);
    FILE *fp = resolve(g_fopen, "fopen")(proc, mode);
    if (!fp && errno == ENOENT) return reinterpret_cast<FILE *>(pass());
    if (fp && !still_pending(p)) {
        fclose(fp);
        return reinterpret_cast<FILE *>(pass());
    }
    return fp;
}

int access_pending(const Pending &p, int mode, int flags, Thunk pass) {
    char proc[64];
    proc_path(p.fd, proc, sizeof proc);
    int saved = errno;
    int r = resolve(g_faccessat, "faccessat")(AT_FDCWD, proc, mode, flags);
    if ((r != 0 && errno == ENOENT) || !still_pending(p)) {
        errno = saved;
        return static_cast<int>(pass());
    }
    return r;
}


// ---- across execve: a child that execs keeps seeing its opener's pending
// file through the descriptor it inherited (`prog` in `prog >> f` run by a
// shell that opened f itself). Passed as lines of
//   FD RDEV RINO SDEV SINO TLEN OLEN TARGET OPENED
// in WRAP_LOCKFILE_VIEW; only anonymous temps, whose lack of a name tells the
// new image that the replacement is still pending.

namespace {

constexpr char kViewVar[] = "WRAP_LOCKFILE_VIEW";
constexpr int kScanFds = 256;  // where shells put redirections

// A descriptor that survives execve and is r's temp, or -1.
int inheritable_fd(const Record &r) {
    for (int fd = 0; fd < kScanFds; ++fd) {
        int fl = sys::fcntl(fd, F_GETFD);
        if (fl < 0 || (fl & FD_CLOEXEC)) continue;
        struct stat st;
        if (fstat(fd, &st) == 0 && st.st_dev == r.dev && st.st_ino == r.ino && st.st_nlink == 0) return fd;
    }
    return -1;
}

}  // namespace

char *const *identity_exec_env(char *const *envp) {
    int fds[kRecords];
    size_t need = sizeof kViewVar + 1;
    int count = 0;
    pid_t me = getpid();
    int high = g_high.load(std::memory_order_acquire);
    for (int i = 0; i < high; ++i) {
        const Record &r = g_records[i];
        uint32_t gen = r.gen.load(std::memory_order_acquire);
        fds[i] = -1;
        // This process's own replacements go along through exec_prepare.
        if (!gen || r.owner == me || !valid(r, gen)) continue;
        fds[i] = inheritable_fd(r);
        if (fds[i] < 0 || strchr(r.target, '\n') || strchr(r.opened, '\n')) {
            fds[i] = -1;
            continue;
        }
        need += 128 + strlen(r.target) + strlen(r.opened);
        ++count;
    }
    if (count == 0) return envp;
    size_t n = 0;
    while (envp && envp[n]) ++n;
    auto **env = static_cast<char **>(malloc((n + 2) * sizeof(char *)));
    char *var = static_cast<char *>(malloc(need));
    if (!env || !var) {
        free(env);
        free(var);
        return envp;  // the child sees the old file, as before
    }
    size_t len = static_cast<size_t>(snprintf(var, need, "%s=", kViewVar));
    for (int i = 0; i < high; ++i) {
        if (fds[i] < 0) continue;
        const Record &r = g_records[i];
        len += static_cast<size_t>(snprintf(var + len, need - len, "%d %lu %lu %lu %lu %zu %zu %s%s\n", fds[i],
                                            static_cast<unsigned long>(r.dev), static_cast<unsigned long>(r.ino),
                                            static_cast<unsigned long>(r.shown.dev),
                                            static_cast<unsigned long>(r.shown.ino), strlen(r.target),
                                            strlen(r.opened), r.target, r.opened));
    }
    size_t k = 0;
    for (size_t i = 0; i < n; ++i)
        if (strncmp(envp[i], kViewVar, sizeof kViewVar - 1) != 0 || envp[i][sizeof kViewVar - 1] != '=')
            env[k++] = envp[i];
    env[k++] = var;
    env[k] = nullptr;
    return env;
}

void identity_exec_failed(char *const *env) {
    size_t n = 0;
    while (env[n]) ++n;
    free(env[n - 1]);
    free(const_cast<char **>(env));
}

void identity_import() {
    const char *v = getenv(kViewVar);
    if (!v) return;
    for (const char *p = v; *p;) {
        char *end;
        unsigned long num[7];
        const char *q = p;
        bool ok = true;
        for (unsigned long &x : num) {
            x = strtoul(q, &end, 10);
            ok = ok && end != q && *end == ' ';
            q = ok ? end + 1 : q;
        }
        size_t tlen = num[5], olen = num[6];
        if (!ok || tlen == 0 || tlen >= WLF_PATH_MAX || olen >= WLF_PATH_MAX || strnlen(q, tlen + olen) < tlen + olen)
            break;
        char target[WLF_PATH_MAX], opened[WLF_PATH_MAX];
        memcpy(target, q, tlen);
        target[tlen] = '\0';
        memcpy(opened, q + tlen, olen);
        opened[olen] = '\0';
        int fd = static_cast<int>(num[0]);
        struct stat st;
        if (fstat(fd, &st) == 0 && st.st_dev == num[1] && st.st_ino == num[2] && st.st_nlink == 0) {
            WriteGuard g;
            add_record(nullptr, 0, fd, st.st_dev, st.st_ino, Shown{num[3], num[4]}, target, opened, false);
        }
        p = q + tlen + olen;
        if (*p != '\n') break;
        ++p;
    }
    unsetenv(kViewVar);
}

}  // namespace wrap_lockfile::shim
