// The message of an errno value (wlf_error_format, error.cpp) on Windows:
// msvcrt's strerror knows the classic errno values only; the POSIX ones
// mingw-w64 adds (ETIMEDOUT, EWOULDBLOCK...) would read "Unknown error".
#include "internal.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace wrap_lockfile::detail {

const char *error_text(int code, char *buf, size_t size) {
    switch (code) {
    case ETIMEDOUT: return "Connection timed out";
    case EWOULDBLOCK: return "Resource temporarily unavailable";
    case ENOTSUP: return "Operation not supported";
    case ELOOP: return "Too many levels of symbolic links";
    case EOVERFLOW: return "Value too large for defined data type";
    default:
        if (strerror_s(buf, size, code) != 0) snprintf(buf, size, "error %d", code);
        return buf;
    }
}

}  // namespace wrap_lockfile::detail
