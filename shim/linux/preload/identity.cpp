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
// page of its own. Across execve (identity_exec_env / identity_import, in
// identity_exec.cpp) a child passes on what it still holds a descriptor of;
// the opener's own replacements are recorded again by the new image, which
// takes them over.
//
// The core calls stat, lstat, statx and faccessat on the real target: those
// calls come from this object (called_from_shim) and go straight to libc.
#include "identity_records.hpp"

#include "handlers.hpp"
#include "paths.hpp"

#include "handoff.hpp"
#include "normalize.hpp"
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

constinit Record g_records[kRecords]{};
constinit std::atomic<int> g_high{0};
pthread_mutex_t g_write = PTHREAD_MUTEX_INITIALIZER;

namespace {

constinit std::atomic<uint32_t> *g_page = nullptr;
constinit uint32_t g_next_gen = 0;
pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

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

}  // namespace

bool valid(const Record &r, uint32_t gen) {
    return gen != 0 && (r.live ? r.live->load(std::memory_order_acquire) == gen : still_the_temp(r));
}

namespace {

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

// snprintf(out, size, "%s", s) without the formatting machinery (a record
// is filled on every matched open).
void copy_path(char *out, size_t size, const char *s) {
    size_t n = strnlen(s, size - 1);
    memcpy(out, s, n);
    out[n] = '\0';
}

}  // namespace

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
    copy_path(r.target, sizeof r.target, target);
    r.target_base = base_offset(r.target);
    r.opened[0] = '\0';
    if (opened && *opened && strcmp(opened, target) != 0) {
        copy_path(r.opened, sizeof r.opened, opened);
        r.opened_base = base_offset(r.opened);
    }
    g_pending.fetch_add(1);
    publish(r);
    if (slot >= g_high.load(std::memory_order_relaxed)) g_high.store(slot + 1, std::memory_order_release);
}

bool called_from_shim(const void *caller) {
    auto *c = static_cast<const char *>(caller);
    return c >= __ehdr_start && c < __etext;
}

namespace {

// The record whose temp is dev/ino, copied into *out while valid.
bool record_of_inode(dev_t dev, ino_t ino, Pending *out) {
    int high = g_high.load(std::memory_order_acquire);
    for (int i = 0; i < high; ++i) {
        const Record &r = g_records[i];
        uint32_t gen = r.gen.load(std::memory_order_acquire);
        if (!gen || r.dev != dev || r.ino != ino) continue;
        Pending found{r.fd.load(std::memory_order_acquire), i, gen, r.dev, r.ino, r.shown};
        if (valid(r, gen) && r.gen.load(std::memory_order_acquire) == gen) {
            *out = found;
            return true;
        }
    }
    return false;
}

}  // namespace

bool find_pending(int dirfd, const char *path, bool follow, Pending *out) {
    // A link into /proc naming an open file (/proc/self/fd/N, /dev/fd/N)
    // names a pending one when it leads to its temp: without the shim it
    // leads to the target.
    if (follow && names_open_file(path)) {
        struct stat st;
        int saved = errno;
        bool found = sys::fstatat(AT_FDCWD, path, &st, 0) == 0 && record_of_inode(st.st_dev, st.st_ino, out);
        errno = saved;
        return found;
    }
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

const wlf_file *own_pending_file(const Pending &p) {
    const Record &r = g_records[p.slot];
    const wlf_file *f = r.file;
    pid_t owner = r.owner;
    return still_pending(p) && owner == getpid() ? f : nullptr;
}

bool inherited_pending(const Pending &p) {
    pid_t owner = g_records[p.slot].owner;
    return still_pending(p) && owner != getpid();
}

bool supersede_pending(int dirfd, const char *path, bool *new_file) {
    Pending p;
    if (!find_pending(dirfd, path, false, &p)) return false;
    char target[WLF_PATH_MAX];
    const Record &r = g_records[p.slot];
    copy_path(target, sizeof target, r.target);
    pid_t owner = r.owner;
    // A staged target keeps its inode (its other links): unlinking one name
    // orphans nothing, and its in-place commit finds the name gone.
    if (!still_pending(p) || owner != getpid() || p.shown.staged) return false;
    *new_file = p.shown.dev == p.dev && p.shown.ino == p.ino;
    identity_supersede(target);
    return true;
}

bool pending_inode(dev_t dev, ino_t ino, Shown *w) {
    Pending p;
    if (!record_of_inode(dev, ino, &p)) return false;
    *w = p.shown;
    return true;
}

namespace {

// Whether any record is of a staged replacement: most programs never have
// one, and their metadata calls on a pending descriptor (tar sets times,
// owner and mode on every file it writes) then cost no fstat.
bool any_staged() {
    int high = g_high.load(std::memory_order_acquire);
    for (int i = 0; i < high; ++i)
        if (g_records[i].gen.load(std::memory_order_acquire) && g_records[i].shown.staged) return true;
    return false;
}

}  // namespace

bool staged_pending_fd(int fd, Pending *out, struct stat *st) {
    if (!any_staged()) return false;
    struct stat own;
    if (!st) st = &own;
    return sys::fstat(fd, st) == 0 && record_of_inode(st->st_dev, st->st_ino, out) && out->shown.staged;
}

bool pending_target(const Pending &p, char *out, size_t size) {
    copy_path(out, size, g_records[p.slot].target);
    return still_pending(p);
}

void identity_restage(const Pending &p, const struct stat &st) {
    WriteGuard g;
    Record &r = g_records[p.slot];
    // Only a record of this process's own: a child's copy is told valid by
    // its opener's page, which a new generation would contradict.
    if (r.gen.load(std::memory_order_acquire) != p.gen || r.owner != getpid()) return;
    r.gen.store(0, std::memory_order_release);
    r.shown.mode = st.st_mode;
    r.shown.nlink = st.st_nlink;
    r.shown.uid = st.st_uid;
    r.shown.gid = st.st_gid;
    publish(r);
}

void identity_add(const wlf_file *f, const char *opened, const char *opened_raw, pid_t opener) {
    // In place, written directly: the path already is the file.
    const bool staged = detail::file_staged(f);
    if (wlf_file_kind(f) != WLF_COMMIT_RENAME && !staged) return;
    int fd, lock_fd, dir_fd;
    detail::file_descriptors(f, &fd, &lock_fd, &dir_fd);
    struct stat st;
    if (!detail::file_temp_identity(f, &st.st_dev, &st.st_ino) && sys::fstat(fd, &st) != 0) return;
    // Under the lock, before the commit: the target is still the old file,
    // as the core found it under the lock.
    struct stat old;
    Shown shown{st.st_dev, st.st_ino};
    if (detail::file_old_target(f, &old) && S_ISREG(old.st_mode)) {
        shown = Shown{old.st_dev, old.st_ino};
        if (staged) {
            shown.staged = true;
            shown.mode = old.st_mode;
            shown.nlink = old.st_nlink;
            shown.uid = old.st_uid;
            shown.gid = old.st_gid;
            shown.pinned = detail::file_pinned_target(f);
        }
    } else if (staged) {
        return;
    }
    // The target is usually the path opened (no symlink on the way): its
    // normalized form is known already.
    char normalized[WLF_PATH_MAX];
    const char *target = opened;
    if (!opened || !opened_raw || strcmp(wlf_file_target(f), opened_raw) != 0) {
        if (detail::normalize_path("/", wlf_file_target(f), normalized, sizeof normalized) != 0) return;
        target = normalized;
    }
    pthread_once(&g_atfork_once, register_atfork);
    WriteGuard g;
    if (!g_page) {
        void *page = mmap(nullptr, sizeof(std::atomic<uint32_t>) * kRecords, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED) return;  // no identity; the replacement itself is unaffected
        g_page = static_cast<std::atomic<uint32_t> *>(page);
    }
    add_record(f, opener, fd, st.st_dev, st.st_ino, shown, target, opened, true);
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
void for_own_records(Fn &&fn, pid_t me = getpid()) {
    int high = g_high.load(std::memory_order_relaxed);
    for (int i = 0; i < high; ++i) {
        Record &r = g_records[i];
        if (r.gen.load(std::memory_order_acquire) != 0 && r.owner == me) fn(r);
    }
}

}  // namespace

bool identity_remove(const wlf_file *f, pid_t me) {
    if (g_pending.load(std::memory_order_acquire) == 0 && g_superseded_count.load(std::memory_order_acquire) == 0)
        return false;
    WriteGuard g;
    for_own_records(
        [&](Record &r) {
            if (r.file == f) unpublish(r);
        },
        me);
    if (g_superseded_count.load(std::memory_order_acquire) == 0) return false;
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
        const bool temp = r.fd.load() == from, pinned = r.shown.staged && r.shown.pinned == from;
        if (!temp && !pinned) return;
        // A new generation: readers that took the old number retry.
        r.gen.store(0, std::memory_order_release);
        if (temp) r.fd.store(to, std::memory_order_release);
        if (pinned) r.shown.pinned = to;
        publish(r);
    });
}

}  // namespace wrap_lockfile::shim
