// Data moves into a descriptor that report their error as the result rather
// than in errno. The others (copy_file_range, sendfile, splice, fallocate)
// fail like write(2) and share its handler, write_fd; ftruncate and fsync,
// which put no data in, change_fd.
#pragma once

#include "handlers.hpp"

namespace wrap_lockfile::shim {

// posix_fallocate(3): 0 or the error number, errno untouched.
template <class Pass>
int error_returned(Pass &&pass, int fd) {
    int r = pass();
    if (!tracked(fd)) return r;
    if (r == 0) r = staged_room(fd);  // as write_fd
    if (r != 0 && is_media_error(r)) {
        int saved = errno;
        poison(fd, r);
        errno = saved;
    }
    return r;
}

}  // namespace wrap_lockfile::shim
