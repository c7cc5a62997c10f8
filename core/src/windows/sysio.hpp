// The few descriptor calls of sysio.hpp that the platform-neutral shim code
// (shim/common: the rules file) makes, on the Windows CRT. The POSIX layer's
// sysio.hpp makes raw system calls so that the preload object never calls
// its own interposers; the hook DLL reads its configuration before its
// hooks are installed, so the CRT is fine here. No libstdc++.
#pragma once

#include <fcntl.h>
#include <io.h>

#include <cerrno>
#include <cstddef>

// Flags the POSIX callers pass that mean nothing here.
#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif
#ifndef O_NOCTTY
#define O_NOCTTY 0
#endif
#ifndef O_NONBLOCK
#define O_NONBLOCK 0
#endif

namespace wrap_lockfile::sys {

inline int open(const char *path, int flags) { return ::_open(path, flags | _O_BINARY | _O_NOINHERIT); }
inline long read(int fd, void *buf, size_t n) {
    return ::_read(fd, buf, n > 0x7FFFFFFF ? 0x7FFFFFFFu : static_cast<unsigned>(n));
}

inline void close_quietly(int fd) {
    if (fd < 0) return;
    int saved = errno;
    ::_close(fd);
    errno = saved;
}

// Owns a CRT descriptor; closes it on destruction.
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(const UniqueFd &) = delete;
    UniqueFd &operator=(const UniqueFd &) = delete;
    ~UniqueFd() { close_quietly(fd_); }
    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }

private:
    int fd_ = -1;
};

}  // namespace wrap_lockfile::sys
