// Metadata calls on a staged replacement (pending_meta.hpp): made by the
// core on the target the replacement looked at under the lock
// (core/src/posix/staged_meta.cpp); the record then shows the target's new
// mode and owner. Its xattrs are read there too.
#include "handlers.hpp"
#include "messages.hpp"

#include "shim_entry.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <cerrno>

namespace wrap_lockfile::shim {

int staged_meta(const Pending &p, int stage, const MetaChange &c) {
    char target[WLF_PATH_MAX];
    struct stat after;
    const char *why = "it was committed meanwhile";
    int e = ESTALE;
    if (pending_target(p, target, sizeof target))
        e = detail::staged_change(target, p.shown.dev, p.shown.ino, p.shown.pinned, stage, c, &after, &why);
    else
        target[0] = '\0';
    if (e == 0) {
        identity_restage(p, after);
        return 0;
    }
    if (why) message("wrap_lockfile: a metadata change of '%s' refused: %s\n", target, why);
    errno = e;
    return -1;
}

int staged_room(int fd) {
    Pending p;
    struct stat stage;
    if (!staged_pending_fd(fd, &p, &stage)) return 0;
    return detail::staged_room(p.shown.dev, p.shown.ino, p.shown.pinned, stage);
}

ssize_t staged_read_meta(const Pending &p, const MetaRead &r) {
    char target[WLF_PATH_MAX];
    if (!pending_target(p, target, sizeof target)) {
        message("wrap_lockfile: a metadata read of '%s' refused: %s\n", target, "it was committed meanwhile");
        errno = ESTALE;
        return -1;
    }
    ssize_t n = detail::staged_read(target, p.shown.dev, p.shown.ino, p.shown.pinned, r);
    if (n < 0 && errno == ESTALE)
        message("wrap_lockfile: a metadata read of '%s' refused: %s\n", target, "the file it writes is no longer at its name");
    return n;
}

}  // namespace wrap_lockfile::shim
