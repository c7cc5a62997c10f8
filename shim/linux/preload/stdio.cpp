// stdio opens of matched paths: fopen's mode as open flags, the FILE over the
// replacement's descriptor; freopen keeps the FILE and its number.
#include "commit.hpp"
#include "fd_table.hpp"
#include "handlers.hpp"

#include "handoff.hpp"
#include "open_mode.hpp"
#include "sysio.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::shim {

FILE *fopen_matched(const char *path, const char *mode, bool *matched) {
    int flags;
    if (detail::open_mode_flags(mode, strlen(mode), detail::ModeSyntax::stdio, &flags) != 0) return nullptr;
    bool plus = strchr(mode, '+') != nullptr;
    int fd = open_matched(AT_FDCWD, path, flags, 0666);
    if (fd == kNotMatched) return nullptr;
    *matched = true;
    if (fd < 0) return nullptr;
    char m[4] = {mode[0] == 'x' ? 'w' : mode[0], plus ? '+' : '\0', '\0', '\0'};
    FILE *fp = fdopen(fd, m);
    if (fp) note_stream(fd, fp);
    if (!fp) {
        int e = errno;
        Entry *last = detach(fd);
        sys::close(fd);
        discard_detached(last);
        errno = e;
    }
    return fp;
}

FILE *freopen_tracked(const char *path, const char *mode, FILE *stream, Thunk pass) {
    int old_fd = stream ? fileno(stream) : -1;
    int flags = 0;
    // The mode as glibc's freopen reads it (fopen's grammar: 'x' is O_EXCL,
    // 'e' O_CLOEXEC), so "wx" on an existing file fails with EEXIST as it
    // does without the shim. A mode glibc refuses is left to glibc.
    if (path && mode && detail::open_mode_flags(mode, strlen(mode), detail::ModeSyntax::stdio, &flags) == 0 &&
        wants_write(flags)) {
        int fd = open_matched(AT_FDCWD, path, flags, 0666);
        if (fd != kNotMatched) {
            if (fd < 0) return nullptr;
            if (old_fd < 0) return fdopen(fd, mode);
            // Keep the FILE and its descriptor number (freopen(…, stdout) is
            // the common use): put the replacement's descriptor in its place.
            fflush(stream);
            int dupped = sys::dup3(fd, old_fd, flags & O_CLOEXEC);
            if (dupped < 0) return nullptr;
            drop_and_commit(old_fd);
            attach(old_fd, fd);
            note_stream(old_fd, stream);
            close_fd([&]() { return sys::close(fd); }, fd);
            clearerr(stream);
            return stream;
        }
    }
    if (old_fd >= 0 && tracked(old_fd)) fflush(stream);
    Entry *last = old_fd >= 0 ? detach(old_fd) : nullptr;
    FILE *fp = reinterpret_cast<FILE *>(pass());
    int saved = errno;
    if (last) commit(last);
    errno = saved;
    return fp;
}

}  // namespace wrap_lockfile::shim
