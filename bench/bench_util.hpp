// Helpers shared by the C++ benchmarks: fail loudly, write everything.
#pragma once

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

}  // namespace wlf_bench
