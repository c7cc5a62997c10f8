// The path behind a directory descriptor, cached and verified (see
// dirfd_cache.hpp).
#include "dirfd_cache.hpp"

#include "sysio.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace wrap_lockfile::shim {

// constinit: an early interposed call may come before dynamic initializers.
constinit DirSlot g_dir_slots[kDirSlots];

namespace {

// Whether `path` names the directory `dirfd` names, now.
bool names_it(int dirfd, const char *path) {
    struct stat a, b;
    if (sys::fstat(dirfd, &a) != 0 || !S_ISDIR(a.st_mode)) return false;
    if (sys::call(SYS_newfstatat, AT_FDCWD, sys::arg(path), sys::arg(&b), 0) != 0) return false;
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// The cached path for dirfd into out, if the slot holds one that fits.
bool lookup(DirSlot &s, int dirfd, char *out, size_t size) {
    if (s.fd.load(std::memory_order_acquire) != dirfd || s.busy.exchange(true, std::memory_order_acquire)) return false;
    bool hit = s.fd.load(std::memory_order_relaxed) == dirfd && s.len < size;
    if (hit) memcpy(out, s.path, s.len + 1);
    s.busy.store(false, std::memory_order_release);
    return hit;
}

void store(DirSlot &s, int dirfd, const char *path, size_t len) {
    if (len >= sizeof s.path || s.busy.exchange(true, std::memory_order_acquire)) return;
    // Invalid while it is written: a close of dirfd meanwhile leaves it so,
    // or it is overwritten by the store below and caught by names_it.
    s.fd.store(-1, std::memory_order_relaxed);
    memcpy(s.path, path, len + 1);
    s.len = len;
    s.fd.store(dirfd, std::memory_order_release);
    s.busy.store(false, std::memory_order_release);
}

}  // namespace

void dirfd_forget_range(unsigned first, unsigned last) {
    for (DirSlot &s : g_dir_slots) {
        int fd = s.fd.load(std::memory_order_relaxed);
        if (fd >= 0 && static_cast<unsigned>(fd) >= first && static_cast<unsigned>(fd) <= last)
            s.fd.compare_exchange_strong(fd, -1);
    }
}

int dirfd_path(int dirfd, char *out, size_t size) {
    if (dirfd < 0) return EBADF;
    DirSlot &s = dir_slot(dirfd);
    if (lookup(s, dirfd, out, size) && names_it(dirfd, out)) return 0;
    if (size < 2) return ENAMETOOLONG;
    ssize_t len = readlink(sys::ProcFdPath(dirfd).c_str(), out, size - 1);
    if (len < 0) return errno;
    if (static_cast<size_t>(len) >= size - 1) return ENAMETOOLONG;
    out[len] = '\0';
    // Only absolute answers are kept ("pipe:[…]", "anon_inode:…" are not
    // directories; a deleted directory's "… (deleted)" fails names_it).
    if (out[0] == '/') store(s, dirfd, out, static_cast<size_t>(len));
    return 0;
}

}  // namespace wrap_lockfile::shim
