// The per-mount lock default (mount_info.hpp): mountinfo parsing, the rule,
// and a small per-mount cache, so that only the first lock on a mount reads
// /proc/self/mountinfo and every later one costs a statx of its directory.
#include "mount_info.hpp"

#include "internal.hpp"
#include "shared_fs.hpp"
#include "sysio.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::detail {

namespace {

// Decodes mountinfo's octal escapes (\040 space, \011 tab, \012 newline,
// \134 backslash) in place.
void unescape(char *s) {
    char *out = s;
    for (const char *p = s; *p;) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
            *out++ = static_cast<char>((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 4;
        } else {
            *out++ = *p++;
        }
    }
    *out = '\0';
}

// Whether the comma-separated `opts` holds exactly the option `want`.
bool has_option(const char *opts, const char *want) {
    size_t n = strlen(want);
    for (const char *p = opts; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? static_cast<size_t>(comma - p) : strlen(p);
        if (len == n && memcmp(p, want, n) == 0) return true;
        if (!comma) break;
        p = comma + 1;
    }
    return false;
}

bool parse_ulong(const char *s, const char *end, unsigned long *out) {
    if (s == end) return false;
    unsigned long v = 0;
    for (; s < end; ++s) {
        if (*s < '0' || *s > '9' || v > (~0UL - 9) / 10) return false;
        v = v * 10 + static_cast<unsigned long>(*s - '0');
    }
    *out = v;
    return true;
}

}  // namespace

void MountinfoScanner::reset_line() {
    memset(&facts_, 0, sizeof facts_);
    tok_len_ = 0;
    tok_long_ = false;
    field_ = 0;
    after_sep_ = -1;
    bad_ = false;
}

// One field of the line is complete in tok_.
bool MountinfoScanner::end_token() {
    tok_[tok_len_] = '\0';
    const char *end = tok_ + tok_len_;
    if (after_sep_ < 0) {
        if (field_ == 0) {
            bad_ |= tok_long_ || !parse_ulong(tok_, end, &facts_.mount_id);
        } else if (field_ == 2) {
            const char *colon = strchr(tok_, ':');
            unsigned long maj = 0, min = 0;
            bad_ |= tok_long_ || !colon || !parse_ulong(tok_, colon, &maj) || !parse_ulong(colon + 1, end, &min);
            facts_.major = static_cast<unsigned int>(maj);
            facts_.minor = static_cast<unsigned int>(min);
        } else if (field_ >= 6 && tok_len_ == 1 && tok_[0] == '-') {
            after_sep_ = 0;  // the optional fields (shared:N master:N ...) end here
        }
    } else {
        if (after_sep_ == 0) {
            bad_ |= tok_long_ || tok_len_ >= sizeof facts_.fstype;
            if (!bad_) {
                memcpy(facts_.fstype, tok_, tok_len_ + 1);
                unescape(facts_.fstype);
            }
        } else if (after_sep_ == 2) {
            // Longer than we keep: cut at the last whole option.
            if (tok_long_) {
                char *comma = strrchr(tok_, ',');
                if (comma) *comma = '\0';
                else tok_[0] = '\0';
            }
            size_t n = strlen(tok_);
            if (n >= sizeof facts_.super_opts) n = sizeof facts_.super_opts - 1;
            memcpy(facts_.super_opts, tok_, n);
            facts_.super_opts[n] = '\0';
            unescape(facts_.super_opts);
        }
        ++after_sep_;
    }
    ++field_;
    tok_len_ = 0;
    tok_long_ = false;
    return true;
}

bool MountinfoScanner::end_line() {
    // Only the fields needed are checked; later kernels may append fields.
    bool ok = !bad_ && after_sep_ >= 3;
    bool go_on = !ok || on_line_(ctx_, facts_);
    reset_line();
    if (!go_on) stopped_ = true;
    return go_on;
}

bool MountinfoScanner::feed(const char *data, size_t n) {
    if (stopped_) return false;
    for (size_t i = 0; i < n; ++i) {
        char c = data[i];
        if (c == '\n') {
            if (tok_len_ > 0 || field_ > 0) end_token();
            if (!end_line()) return false;
        } else if (c == ' ') {
            end_token();
        } else if (tok_len_ < sizeof tok_ - 1) {
            tok_[tok_len_++] = c;
        } else {
            tok_long_ = true;
        }
    }
    return true;
}

bool MountinfoScanner::finish() {
    if (stopped_) return false;
    if (tok_len_ > 0 || field_ > 0) {
        end_token();
        return end_line();
    }
    return true;
}

bool flock_stays_local(const char *fstype, const char *super_opts) {
    // NFS: local_lock=flock|all keeps flock on the client; nolock (v3) too
    // (older kernels show it without local_lock).
    if (strcmp(fstype, "nfs") == 0 || strcmp(fstype, "nfs4") == 0)
        return has_option(super_opts, "local_lock=flock") || has_option(super_opts, "local_lock=all") ||
               has_option(super_opts, "nolock");
    // SMB: flock is emulated with byte-range locks, which nobrl keeps local.
    if (strcmp(fstype, "cifs") == 0 || strcmp(fstype, "smb3") == 0) return has_option(super_opts, "nobrl");
    // sshfs implements no locks: the kernel's FUSE keeps flock on this
    // client, while the files are another host's. Its link() works
    // (hardlink@openssh.com), so a dotlock does.
    return strcmp(fstype, "fuse.sshfs") == 0;
}

namespace {

struct Want {
    unsigned long mount_id;  // 0: unknown, match the device
    unsigned int major, minor;
    bool found;
    bool local;
};

bool match_line(void *ctx, const MountFacts &f) {
    auto *w = static_cast<Want *>(ctx);
    bool same = w->mount_id ? f.mount_id == w->mount_id : f.major == w->major && f.minor == w->minor;
    if (!same) return true;
    w->found = true;
    w->local = flock_stays_local(f.fstype, f.super_opts);
    return false;
}

// Scans `mountinfo` for *w; false if it cannot be read.
bool scan(const char *mountinfo, Want *w) {
    sys::UniqueFd fd(sys::open(mountinfo, O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) return false;
    MountinfoScanner scanner(match_line, w);
    char buf[4096];
    for (;;) {
        ssize_t n = sys::read(fd.get(), buf, sizeof buf);
        if (n < 0) return false;
        if (n == 0) break;
        if (!scanner.feed(buf, static_cast<size_t>(n))) return true;
    }
    scanner.finish();
    return true;
}

// Per mount, for the life of the process. A mount's device number and id
// are reused only after it is gone; see README for what that means.
struct CacheEntry {
    unsigned long mount_id;
    unsigned int major, minor;
    int backend;
    bool used;  // WLF_LOCK_FLOCK is 0: an empty slot needs its own mark
};
constexpr int kCacheSize = 16;
CacheEntry g_cache[kCacheSize];
int g_cache_next = 0;
pthread_mutex_t g_cache_mutex = PTHREAD_MUTEX_INITIALIZER;
pthread_once_t g_cache_atfork = PTHREAD_ONCE_INIT;
void reset_cache_mutex() { g_cache_mutex = PTHREAD_MUTEX_INITIALIZER; }
void register_cache_atfork() { pthread_atfork(nullptr, nullptr, reset_cache_mutex); }

struct CacheGuard {
    CacheGuard() {
        pthread_once(&g_cache_atfork, register_cache_atfork);
        pthread_mutex_lock(&g_cache_mutex);
    }
    ~CacheGuard() { pthread_mutex_unlock(&g_cache_mutex); }
};

bool cache_find(const Want &w, int *backend) {
    CacheGuard g;
    for (const CacheEntry &e : g_cache) {
        if (e.used && e.mount_id == w.mount_id && e.major == w.major && e.minor == w.minor) {
            *backend = e.backend;
            return true;
        }
    }
    return false;
}

void cache_store(const Want &w, int backend) {
    CacheGuard g;
    g_cache[g_cache_next] = CacheEntry{w.mount_id, w.major, w.minor, backend, true};
    g_cache_next = (g_cache_next + 1) % kCacheSize;
}

}  // namespace

int auto_lock_backend(const char *lock_path, const char *mountinfo, bool *known, bool *dir_append_only) {
    bool known_here = false, append_here = false;
    if (!known) known = &known_here;
    if (!dir_append_only) dir_append_only = &append_here;
    *known = false;
    *dir_append_only = false;
    char dir[WLF_PATH_MAX];
    const char *base;
    if (split_dir_base(lock_path, dir, sizeof dir, &base) != 0) return WLF_LOCK_FLOCK;
    // The directory's mount is the lock file's. statx names the mount
    // (since Linux 5.8), which tells bind mounts, btrfs subvolumes and
    // overlayfs apart where the device number alone may not.
    // Straight to the kernel (sysio.hpp): the shim interposes statx.
    // A stale handle of the directory (ESTALE, GlusterFS's EBADFD) says
    // nothing about the mount: taken for "cannot be told", a dotlock mount
    // would get a flock that excludes no other client, and the probe's own
    // lock file would stay there, a dotlock held for good (shared_fs.hpp;
    // EBADFD is judged by the file system that holds the directory).
    struct statx sx;
    StaleRetry stale;
    while (sys::call(SYS_statx, AT_FDCWD, sys::arg(dir), 0, STATX_MNT_ID, sys::arg(&sx)) != 0) {
        if (!stale.again_if_stale(errno, dir)) return WLF_LOCK_FLOCK;
    }
    *dir_append_only = (sx.stx_attributes_mask & sx.stx_attributes & STATX_ATTR_APPEND) != 0;
    Want w{(sx.stx_mask & STATX_MNT_ID) ? static_cast<unsigned long>(sx.stx_mnt_id) : 0, sx.stx_dev_major,
           sx.stx_dev_minor, false, false};
    int backend;
    if (!mountinfo && cache_find(w, &backend)) {
        *known = true;
        return backend;
    }
    if (!scan(mountinfo ? mountinfo : "/proc/self/mountinfo", &w)) return WLF_LOCK_FLOCK;  // not cached: may work later
    *known = true;
    backend = w.found && w.local ? WLF_LOCK_DOTLOCK : WLF_LOCK_FLOCK;
    if (!mountinfo) cache_store(w, backend);
    return backend;
}

namespace {

struct DirEntry {
    char dir[WLF_PATH_MAX];
    size_t len;  // 0: empty
    DirMount m;
};
constexpr int kDirEntries = 4;
DirEntry g_dirs[kDirEntries];
int g_dirs_next = 0;

// The length of the directory part of a path in it, without copying it.
size_t dir_length(const char *path_in_dir) {
    const char *slash = strrchr(path_in_dir, '/');
    return slash ? static_cast<size_t>(slash - path_in_dir) : 0;
}

DirEntry *dir_entry(const char *path_in_dir, size_t len) {
    for (DirEntry &e : g_dirs)
        if (e.len == len && memcmp(e.dir, path_in_dir, len) == 0) return &e;
    return nullptr;
}

}  // namespace

bool dir_mount_find(const char *path_in_dir, DirMount *out) {
    size_t len = dir_length(path_in_dir);
    if (len == 0) return false;
    CacheGuard g;
    const DirEntry *e = dir_entry(path_in_dir, len);
    if (e) *out = e->m;
    return e != nullptr;
}

void dir_mount_store(const char *path_in_dir, DirMount m) {
    size_t len = dir_length(path_in_dir);
    if (len == 0 || len >= WLF_PATH_MAX || m.mount == 0) return;
    CacheGuard g;
    DirEntry *e = dir_entry(path_in_dir, len);
    if (!e) {
        e = &g_dirs[g_dirs_next];
        g_dirs_next = (g_dirs_next + 1) % kDirEntries;
        memcpy(e->dir, path_in_dir, len);
        e->len = len;
    }
    e->m = m;
}

void dir_mount_forget(const char *path_in_dir) {
    size_t len = dir_length(path_in_dir);
    if (len == 0) return;
    CacheGuard g;
    if (DirEntry *e = dir_entry(path_in_dir, len)) e->len = 0;
}

}  // namespace wrap_lockfile::detail
