// Raw system calls for the entry points the LD_PRELOAD shim interposes.
// The core runs inside the shim too: calling libc's open/close/write/rename
// there would re-enter the interposers. Going straight to the kernel keeps the
// core usable in both places and async-signal-safe. Each returns -1 and sets
// errno on failure, like libc.
//
// Not through libc's syscall() either: the shim interposes that as well
// (libuv closes with syscall(SYS_close)), and inside the preload object a
// call of ::syscall binds to the shim's own wrapper. call() issues the
// instruction itself where it knows the calling convention, and elsewhere
// asks the dynamic linker for the definition after the calling object's.
#pragma once

#include "wlf_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>

#if !defined(__x86_64__) && !defined(__aarch64__)
#include <dlfcn.h>

#include <atomic>
#endif

namespace wrap_lockfile::sys {

// The kernel's system call `nr`; -1 with errno on failure.
inline long call(long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0) {
    long ret;
#if defined(__x86_64__)
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a1;
    register long x1 __asm__("x1") = a2;
    register long x2 __asm__("x2") = a3;
    register long x3 __asm__("x3") = a4;
    register long x4 __asm__("x4") = a5;
    register long x5 __asm__("x5") = a6;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    ret = x0;
#else
    using syscall_fn = long (*)(long, ...);
    static std::atomic<syscall_fn> next{nullptr};
    syscall_fn fn = next.load(std::memory_order_acquire);
    if (!fn) {
        fn = reinterpret_cast<syscall_fn>(dlsym(RTLD_NEXT, "syscall"));
        next.store(fn, std::memory_order_release);
    }
    return fn(nr, a1, a2, a3, a4, a5, a6);
#endif
#if defined(__x86_64__) || defined(__aarch64__)
    if (ret < 0 && ret > -4096) {
        errno = static_cast<int>(-ret);
        return -1;
    }
    return ret;
#endif
}

// Pointers and descriptors as the kernel's long arguments.
template <class T>
inline long arg(T *p) {
    return reinterpret_cast<long>(p);
}

inline int openat(int dirfd, const char *path, int flags, mode_t mode = 0) {
    return static_cast<int>(call(SYS_openat, dirfd, arg(path), flags, mode));
}
inline int open(const char *path, int flags, mode_t mode = 0) {
    return openat(AT_FDCWD, path, flags, mode);
}
inline int close(int fd) { return static_cast<int>(call(SYS_close, fd)); }
inline ssize_t read(int fd, void *buf, size_t n) { return call(SYS_read, fd, arg(buf), static_cast<long>(n)); }
inline ssize_t write(int fd, const void *buf, size_t n) { return call(SYS_write, fd, arg(buf), static_cast<long>(n)); }
inline ssize_t pread(int fd, void *buf, size_t n, off_t off) {
    return call(SYS_pread64, fd, arg(buf), static_cast<long>(n), off);
}
inline ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    return call(SYS_pwrite64, fd, arg(buf), static_cast<long>(n), off);
}
inline int fcntl(int fd, int cmd, long value = 0) {
    return static_cast<int>(call(SYS_fcntl, fd, cmd, value));
}
inline int ftruncate(int fd, off_t len) { return static_cast<int>(call(SYS_ftruncate, fd, len)); }
inline int renameat(int olddir, const char *oldpath, int newdir, const char *newpath) {
    return static_cast<int>(call(SYS_renameat2, olddir, arg(oldpath), newdir, arg(newpath), 0));
}
inline int linkat(int olddir, const char *oldpath, int newdir, const char *newpath, int flags) {
    return static_cast<int>(call(SYS_linkat, olddir, arg(oldpath), newdir, arg(newpath), flags));
}
inline int fsync(int fd) { return static_cast<int>(call(SYS_fsync, fd)); }
inline int fstat(int fd, struct stat *st) { return static_cast<int>(call(SYS_fstat, fd, arg(st))); }
// Where call() issues the instruction itself, the kernel's struct stat is
// libc's; elsewhere libc's fstatat (in the shim: through its interposer).
inline int fstatat(int dirfd, const char *path, struct stat *st, int flags) {
#if defined(__x86_64__) || defined(__aarch64__)
    return static_cast<int>(call(SYS_newfstatat, dirfd, arg(path), arg(st), flags));
#else
    return ::fstatat(dirfd, path, st, flags);
#endif
}
inline int dup3(int fd, int fd2, int flags) { return static_cast<int>(call(SYS_dup3, fd, fd2, flags)); }
inline int close_range(unsigned first, unsigned last, int flags) {
    return static_cast<int>(call(SYS_close_range, first, last, flags));
}
#if WLF_HAVE_COPY_FILE_RANGE
inline ssize_t copy_file_range(int in, int out, size_t n) {
    return call(SYS_copy_file_range, in, 0, out, 0, static_cast<long>(n), 0);
}
#endif
#if WLF_HAVE_FALLOCATE
inline int fallocate(int fd, int mode, off_t off, off_t len) {
    return static_cast<int>(call(SYS_fallocate, fd, mode, off, len));
}
#endif

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

// "/proc/self/fd/<fd>": the name through which an open file is reached
// again (reopened, linked, chmod()ed when its descriptor is an O_PATH one),
// made without snprintf (it runs on the hot path and in signal handlers).
struct ProcFdPath {
    char text[32];
    explicit ProcFdPath(int fd) {
        static constexpr char kPrefix[] = "/proc/self/fd/";
        char digits[12];
        int n = 0;
        unsigned v = static_cast<unsigned>(fd);
        do digits[n++] = static_cast<char>('0' + v % 10);
        while ((v /= 10) != 0);
        size_t i = 0;
        for (; kPrefix[i]; ++i) text[i] = kPrefix[i];
        while (n > 0) text[i++] = digits[--n];
        text[i] = '\0';
    }
    const char *c_str() const { return text; }
};

}  // namespace wrap_lockfile::sys
