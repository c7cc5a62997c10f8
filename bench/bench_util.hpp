// Helpers shared by the C++ benchmarks: fail loudly, write everything.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace wlf_bench {

[[noreturn]] inline void die(const char *what, const std::string &path) {
    std::fprintf(stderr, "bench: %s %s: %s\n", what, path.c_str(), std::strerror(errno));
    std::exit(1);
}

inline void write_all(int fd, const char *p, size_t n, const std::string &path) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("write", path);
        }
        p += w;
        n -= static_cast<size_t>(w);
    }
}

inline void fsync_dir(const std::string &dir) {
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || ::fsync(dfd) != 0) die("fsync", dir);
    ::close(dfd);
}

// The syscall floor of one replacement: temp O_CREAT|O_EXCL, write,
// [fsync], rename, [fsync dir]; no lock.
inline void floor_replace(const std::string &dir, const std::string &temp, const std::string &target,
                          const std::string &data, bool full) {
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) die("open", temp);
    write_all(fd, data.data(), data.size(), temp);
    if (full && ::fsync(fd) != 0) die("fsync", temp);
    ::close(fd);
    if (::rename(temp.c_str(), target.c_str()) != 0) die("rename", temp);
    if (full) fsync_dir(dir);
}

}  // namespace wlf_bench
