#include "internal.hpp"
#include "replace_parts.hpp"
#include "sysio.hpp"
#include "wlf_config.h"

#if WLF_HAVE_MEMFD
#include <sys/mman.h>
#endif
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::detail {

namespace {

constexpr int kNameAttempts = 100;

#if WLF_HAVE_O_TMPFILE
// Whether linkat(fd, "", ..., AT_EMPTY_PATH) may name an O_TMPFILE here:
// 0 not tried yet, 1 it may, -1 it may not (no CAP_DAC_READ_SEARCH on a
// kernel that asks for it), so /proc/self/fd is used.
std::atomic<int> g_empty_path_link{0};
#endif

// The middle of a temp's name: 8 random characters, or (per target, see
// replace_parts.hpp) "_pending", which no random name can be ('_' is not in
// the alphabet) and which has the same length.
constexpr char kPerTargetTag[] = "_pending";

// The longest directory entry name (NAME_MAX on Linux).
constexpr size_t kNameMax = 255;

// Whether the per-target temp name of base (".<base>._pending<suffix>") fits
// in a directory entry.
bool per_target_fits(const char *base, const char *suffix) { return 1 + strlen(base) + 1 + 8 + strlen(suffix) <= kNameMax; }

int temp_name(const TempDir &dir, const char *base, const char *suffix, bool per_target, char *name, size_t size) {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char rnd[9];
    if (per_target) {
        memcpy(rnd, kPerTargetTag, sizeof rnd);
    } else {
        uint64_t r = random_u64();
        for (int i = 0; i < 8; ++i) {
            rnd[i] = alphabet[r % 62];
            r /= 62;
        }
        rnd[8] = '\0';
    }
    // "<prefix>.<base>.<rnd><suffix>", without printf on the hot path. A
    // name too long for a directory entry takes as much of <base> as fits:
    // a random one (the random part keeps it apart), never the per-target
    // one (two targets would share it; callers ask per_target_fits first).
    size_t lb = strlen(base), ls = strlen(suffix);
    if (1 + lb + 1 + 8 + ls > kNameMax) {
        if (per_target || 1 + 1 + 8 + ls > kNameMax) return ENAMETOOLONG;
        lb = kNameMax - (1 + 1 + 8 + ls);
    }
    size_t total = dir.prefix_len + 1 + lb + 1 + 8 + ls;
    if (total + 1 > size) return ENAMETOOLONG;
    char *p = name;
    memcpy(p, dir.prefix, dir.prefix_len);
    p += dir.prefix_len;
    *p++ = '.';
    memcpy(p, base, lb);
    p += lb;
    *p++ = '.';
    memcpy(p, rnd, 8);
    p += 8;
    memcpy(p, suffix, ls + 1);
    return 0;
}

// Per-target temps with a name held by a pending replacement of this
// process (named temps between open and commit).
std::atomic<int> g_pending_per_target{0};

// At the per-target name there is something. While we hold the target's
// lock no other process can be using the name, so it was left by a holder
// killed before its rename, unless a replacement of this process holds it:
// a nested replacement of the same target in this thread (or, since only a
// count is kept, any pending one). A leftover is removed (a regular file
// with one link only, as ours were: a link to somebody's file, a directory
// or a symlink is left alone) and true returned: try the name again. Only
// one of our own uid's: another user's file at that name (root writing in a
// sticky /tmp directory may unlink anybody's) was not made by a holder of
// this lock as far as we can know, and a plain open would never remove it.
bool clear_leftover(const TempDir &dir, const char *name) {
    if (g_pending_per_target.load(std::memory_order_relaxed) > 0) return false;
    struct stat st;
    if (fstatat(dir.fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
        st.st_uid != geteuid())
        return false;
    return unlinkat(dir.fd, name, 0) == 0 || errno == ENOENT;
}

#if WLF_HAVE_O_TMPFILE
int link_once(int fd, const TempDir &dir, const char *name) {
    bool tried = false;
    if (g_empty_path_link.load(std::memory_order_relaxed) >= 0) {
        if (sys::linkat(fd, "", dir.fd, name, AT_EMPTY_PATH) == 0) {
            g_empty_path_link.store(1, std::memory_order_relaxed);
            return 0;
        }
        // ENOENT: the kernel may want CAP_DAC_READ_SEARCH (or the opener's
        // credentials) for this; /proc tells. Other errors are the directory's.
        if (errno != ENOENT) return -1;
        tried = true;
    }
    int rc = sys::linkat(AT_FDCWD, sys::ProcFdPath(fd).c_str(), dir.fd, name, AT_SYMLINK_FOLLOW);
    // Remember only a verdict /proc confirmed (ENOENT there too means the
    // directory went away, not that AT_EMPTY_PATH is refused).
    if (rc == 0 && tried) g_empty_path_link.store(-1, std::memory_order_relaxed);
    return rc;
}
#else
// Never reached: without O_TMPFILE no temp is anonymous.
int link_once(int, const TempDir &, const char *) {
    errno = EOPNOTSUPP;
    return -1;
}
#endif

}  // namespace

bool tmpfile_unsupported(int error) {
    return error == EOPNOTSUPP || error == EISDIR || error == EINVAL || error == ENOENT;
}

int create_anonymous_temp(const TempDir &dir, mode_t mode, int fdflags) {
#if !WLF_HAVE_O_TMPFILE
    // As a file system without O_TMPFILE answers: the caller names its temp.
    (void)dir;
    (void)mode;
    (void)fdflags;
    errno = EOPNOTSUPP;
    return -1;
#else
    if (!dir.prefix_len) return sys::openat(dir.fd, ".", O_TMPFILE | O_RDWR | fdflags, mode);
    // The directory by path: "<dir>/" names it (a trailing slash is fine).
    char path[WLF_PATH_MAX];
    if (dir.prefix_len + 1 > sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, dir.prefix, dir.prefix_len);
    path[dir.prefix_len] = '\0';
    return sys::openat(dir.fd, path, O_TMPFILE | O_RDWR | fdflags, mode);
#endif
}

int create_staging_file(int fdflags) {
#if WLF_HAVE_MEMFD
    return memfd_create("wrap_lockfile-stage", fdflags & O_CLOEXEC ? MFD_CLOEXEC : 0);
#else
    // An unlinked file in the temporary directory, as tmpfile(3) makes one
    // (0600, O_EXCL): only this descriptor reaches it.
    const char *tmpdir = getenv("TMPDIR");
    if (!tmpdir || tmpdir[0] != '/') tmpdir = "/tmp";
    char path[WLF_PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/.wrap_lockfile-stage.XXXXXX", tmpdir);
    if (n < 0 || static_cast<size_t>(n) >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkostemp(path, fdflags & O_CLOEXEC);
    if (fd >= 0) (void)unlink(path);
    return fd;
#endif
}

int create_named_temp(const TempDir &dir, const char *base, const char *suffix, mode_t mode, int fdflags,
                      bool per_target, char *name, size_t size, bool *named_per_target) {
    *named_per_target = false;
    for (int i = 0; i < kNameAttempts; ++i) {
        // The per-target name first (twice if a leftover was cleared), then random ones.
        bool fixed = per_target && i < 2 && per_target_fits(base, suffix);
        if (int rc = temp_name(dir, base, suffix, fixed, name, size)) {
            errno = rc;
            return -1;
        }
        int fd = sys::openat(dir.fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | fdflags, mode);
        if (fd >= 0) {
            if (fixed) {
                *named_per_target = true;
                retain_per_target_name();
            }
            return fd;
        }
        if (errno != EEXIST) return fd;
        if (fixed && !(i == 0 && clear_leftover(dir, name))) i = 1;
    }
    errno = EEXIST;
    return -1;
}

void retain_per_target_name() { g_pending_per_target.fetch_add(1, std::memory_order_relaxed); }
void release_per_target_name() { g_pending_per_target.fetch_sub(1, std::memory_order_relaxed); }

bool is_per_target_name(const char *base, const char *suffix, const char *name) {
    char fixed[WLF_PATH_MAX];
    return temp_name(TempDir{AT_FDCWD, "", 0}, base, suffix, true, fixed, sizeof fixed) == 0 && strcmp(fixed, name) == 0;
}

int link_anonymous_as(int fd, const TempDir &dir, const char *name) { return link_once(fd, dir, name) == 0 ? 0 : errno; }

int link_anonymous_temp(int fd, const TempDir &dir, const char *base, const char *suffix, bool per_target,
                        char *name, size_t size) {
    for (int i = 0; i < kNameAttempts; ++i) {
        bool fixed = per_target && i < 2 && per_target_fits(base, suffix);
        if (int rc = temp_name(dir, base, suffix, fixed, name, size)) return rc;
        if (link_once(fd, dir, name) == 0) return 0;
        if (errno != EEXIST) return errno;
        if (fixed && !(i == 0 && clear_leftover(dir, name))) i = 1;
    }
    return EEXIST;
}

}  // namespace wrap_lockfile::detail
