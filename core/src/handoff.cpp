// The hand-over token of a pending replacement across execve (handoff.hpp):
// its state as comma-separated fields, the paths hex-encoded; and the
// rebuilding of a wlf_file from it in the next program image.
#include "handoff.hpp"
#include "internal.hpp"
#include "lock_internal.hpp"
#include "replace_parts.hpp"
#include "replacement.hpp"
#include "sysio.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

using namespace wrap_lockfile;
using detail::at_fd;

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
    errno = 0;
    long v = strtol(buf, &e, 10);
    if (!buf[0] || *e || errno || v < INT_MIN || v > INT_MAX) return EINVAL;
    *value = static_cast<int>(v);
    return 0;
}

// The token's seal: FNV-1a (32 bits) of everything before it. A token cut
// short, or with any byte changed, no longer matches its seal, so it is
// refused rather than taken for another (shorter) target path.
constexpr size_t kSealDigits = 8;

uint32_t seal_of(const char *data, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; ++i) h = (h ^ static_cast<unsigned char>(data[i])) * 16777619u;
    return h;
}

int get_u64(const char *&p, const char *end, unsigned long long *value) {
    char buf[24];
    if (int rc = get_field(p, end, buf, sizeof buf, false)) return rc;
    char *e;
    errno = 0;
    unsigned long long v = strtoull(buf, &e, 10);
    if (!buf[0] || buf[0] == '-' || *e || errno) return EINVAL;
    *value = v;
    return 0;
}

// The token's version: 5 added the old target's identity (an in-place
// commit writes only that file); 4 the seal; 3 the lock file's owner
// (whether the release removes it).
constexpr int kTokenVersion = 5;

}  // namespace

void detail::file_descriptors(const wlf_file *f, int *fd, int *lock_fd, int *dir_fd) {
    *fd = f->fd;
    *lock_fd = wlf_lock_fd(f->lock);
    // The library's third descriptor: the directory's, or a staged target's
    // own (a staged replacement holds no directory descriptor).
    *dir_fd = f->dir_fd >= 0 ? f->dir_fd : f->target_fd;
}

int detail::file_export(const wlf_file *f, char *out, size_t size) {
    int n = snprintf(out, size, "%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%llu,%llu,", kTokenVersion, f->kind, f->fd,
                     wlf_lock_fd(f->lock), detail::lock_keeps_file(f->lock) ? 1 : 0,
                     detail::lock_file_owner(f->lock), f->flags, f->durability, f->anonymous ? 1 : 0,
                     f->staged ? 1 : 0, f->existed ? 1 : 0, f->existed ? static_cast<unsigned long long>(f->st.st_dev) : 0ULL,
                     f->existed ? static_cast<unsigned long long>(f->st.st_ino) : 0ULL);
    if (n < 0 || static_cast<size_t>(n) >= size) return ENAMETOOLONG;
    char *p = out + n, *end = out + size;
    const char *fields[] = {f->temp, f->suffix, f->target};
    for (const char *field : fields) {
        if (int rc = put_hex(p, end, field)) return rc;
        if (end - p < 2) return ENAMETOOLONG;
        *p++ = ',';
    }
    if (static_cast<size_t>(end - p) < kSealDigits + 1) return ENAMETOOLONG;
    snprintf(p, kSealDigits + 1, "%08x", static_cast<unsigned>(seal_of(out, static_cast<size_t>(p - out))));
    return 0;
}

int detail::file_import(const char *token, size_t len, int fd_floor, wlf_file **out) {
    *out = nullptr;
    // "<fields>,<seal>": the seal first, then the fields up to (without) its comma.
    if (len < kSealDigits + 1 || token[len - kSealDigits - 1] != ',') return EINVAL;
    uint32_t seal = 0;
    for (size_t i = len - kSealDigits; i < len; ++i) {
        int v = hex_value(token[i]);
        if (v < 0) return EINVAL;
        seal = seal << 4 | static_cast<uint32_t>(v);
    }
    if (seal != seal_of(token, len - kSealDigits)) return EINVAL;
    const char *p = token, *end = token + len - kSealDigits - 1;
    int version = 0, kind = 0, fd = -1, lock_fd = -1, keep = 0, owner = 0, flags = 0, durability = 0, anonymous = 0,
        staged = 0, existed = 0;
    int *ints[] = {&version, &kind, &fd, &lock_fd, &keep, &owner, &flags, &durability, &anonymous, &staged, &existed};
    for (int *v : ints)
        if (int rc = get_int(p, end, v)) return rc;
    // Version 4 (an image of the release before, exec'd into this one, or
    // the other way round) has no identity of the old target: it is taken
    // from the target's lstat, as then.
    unsigned long long old_dev = 0, old_ino = 0;
    const bool has_identity = version == kTokenVersion;
    if (has_identity) {
        if (int rc = get_u64(p, end, &old_dev)) return rc;
        if (int rc = get_u64(p, end, &old_ino)) return rc;
    }
    if ((version != kTokenVersion && version != 4) || kind < WLF_COMMIT_RENAME || kind > WLF_COMMIT_PASSTHROUGH || fd < 0 ||
        lock_fd < -1)
        return EINVAL;
    auto *f = static_cast<wlf_file *>(calloc(1, sizeof(wlf_file)));
    if (!f) return ENOMEM;
    f->fd = -1;
    f->dir_fd = -1;
    f->target_fd = -1;  // not handed over: the new image reaches a staged target by name
    f->fdflags = O_CLOEXEC;
    int rc = get_field(p, end, f->temp, sizeof f->temp, true);
    if (!rc) rc = get_field(p, end, f->suffix, sizeof f->suffix, true);
    if (!rc) rc = get_field(p, end, f->target, sizeof f->target, true);
    if (!rc && (p != end || end[-1] == ',' || !f->target[0])) rc = EINVAL;  // a field too many, or none
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
    // The old target as the first image looked at it: its attributes now,
    // its identity then (a file renamed over it since is somebody else's).
    if (f->existed && lstat(f->target, &f->st) != 0) f->existed = false;
    if (has_identity) {
        f->st.st_dev = static_cast<dev_t>(old_dev);
        f->st.st_ino = static_cast<ino_t>(old_ino);
    }
    char dir[WLF_PATH_MAX];
    rc = detail::split_dir_base(f->target, dir, sizeof dir, &f->base);
    if (!rc && (f->target[0] != '/' || !f->base[0])) rc = EINVAL;  // wlf_open's targets are absolute files
    // A named temp holds its name in this image now: counted again.
    if (!rc && f->temp[0]) {
        const char *slash = strrchr(f->temp, '/');
        f->per_target_temp = detail::is_per_target_name(f->base, f->suffix, slash ? slash + 1 : f->temp);
        if (f->per_target_temp) detail::retain_per_target_name();
    }
    // As begin_rename decides (reach_by_path: an adopted flock has its
    // file); and a named temp's relative name needs the directory it is
    // relative to. Before the lock is adopted, the last step that can fail:
    // a refused token must leave the caller's lock alone.
    f->fd_floor = fd_floor;
    bool by_path = f->target[0] == '/' && lock_fd >= 0;
    if (!rc && kind == WLF_COMMIT_RENAME && (!by_path || (f->temp[0] && f->temp[0] != '/')))
        rc = detail::open_dir(f, true, nullptr);
    if (!rc && lock_fd >= 0) {
        char lock_path[WLF_PATH_MAX];
        rc = detail::lock_path_of(f->target, lock_path, sizeof lock_path);
        if (!rc) rc = detail::lock_adopt(lock_fd, lock_path, keep != 0, owner, &f->lock);
    }
    if (rc) {
        // Still the caller's, to decide about: the descriptor and a named temp.
        f->fd = -1;
        f->temp[0] = '\0';
        detail::destroy(f);
        return rc;
    }
    // The descriptors were inheritable for the execve; own them again.
    sys::fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (lock_fd >= 0) sys::fcntl(lock_fd, F_SETFD, FD_CLOEXEC);
    *out = f;
    return 0;
}
