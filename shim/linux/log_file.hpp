// The log file (WRAP_LOCKFILE_LOG, --log) opened as the preload object
// writes it and the launcher checks it: appending, created 0644.
#pragma once

#include "sysio.hpp"

#include <fcntl.h>

namespace wrap_lockfile::shim {

// The descriptor, or -1 with errno.
inline int open_log(const char *path) {
    return sys::open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
}

}  // namespace wrap_lockfile::shim
