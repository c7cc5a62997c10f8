// Raw system calls for the entry points the LD_PRELOAD shim interposes.
// The core runs inside the shim too: calling libc's open/close/write/rename
// there would re-enter the interposers. Going straight to the kernel keeps the
// core usable in both places and async-signal-safe. Each returns -1 and sets
// errno on failure, like libc.
#pragma once

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>

namespace wrap_lockfile::sys {

inline int openat(int dirfd, const char *path, int flags, mode_t mode = 0) {
    return static_cast<int>(::syscall(SYS_openat, dirfd, path, flags, mode));
}
inline int open(const char *path, int flags, mode_t mode = 0) {
    return openat(AT_FDCWD, path, flags, mode);
}
inline int close(int fd) { return static_cast<int>(::syscall(SYS_close, fd)); }
inline ssize_t read(int fd, void *buf, size_t n) { return ::syscall(SYS_read, fd, buf, n); }
inline ssize_t write(int fd, const void *buf, size_t n) { return ::syscall(SYS_write, fd, buf, n); }
inline ssize_t pread(int fd, void *buf, size_t n, off_t off) {
    return ::syscall(SYS_pread64, fd, buf, n, off);
}
inline ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    return ::syscall(SYS_pwrite64, fd, buf, n, off);
}
inline int fcntl(int fd, int cmd, long arg = 0) {
    return static_cast<int>(::syscall(SYS_fcntl, fd, cmd, arg));
}
inline int ftruncate(int fd, off_t len) { return static_cast<int>(::syscall(SYS_ftruncate, fd, len)); }
inline int renameat(int olddir, const char *oldpath, int newdir, const char *newpath) {
    return static_cast<int>(::syscall(SYS_renameat2, olddir, oldpath, newdir, newpath, 0));
}
inline int linkat(int olddir, const char *oldpath, int newdir, const char *newpath, int flags) {
    return static_cast<int>(::syscall(SYS_linkat, olddir, oldpath, newdir, newpath, flags));
}

// Closes and keeps errno intact (for cleanup on error paths).
inline void close_quietly(int fd) {
    if (fd < 0) return;
    int saved = errno;
    close(fd);
    errno = saved;
}

// Owns a descriptor; closes it on destruction.
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(UniqueFd &&o) noexcept : fd_(o.release()) {}
    UniqueFd &operator=(UniqueFd &&o) noexcept {
        if (this != &o) reset(o.release());
        return *this;
    }
    UniqueFd(const UniqueFd &) = delete;
    UniqueFd &operator=(const UniqueFd &) = delete;
    ~UniqueFd() { close_quietly(fd_); }

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    int release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }
    void reset(int fd = -1) {
        close_quietly(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

// Full write at the current position, retrying on EINTR and short writes.
int write_all(int fd, const void *data, size_t size);
// Full positional write.
int pwrite_all(int fd, const void *data, size_t size, off_t offset);

}  // namespace wrap_lockfile::sys
