// truncate(2) of a matched path: a replacement opened, cut and committed at
// once, so that readers never see the file half-cut.
#include "commit.hpp"
#include "handlers.hpp"
#include "open.hpp"

#include "sysio.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <fcntl.h>

namespace wrap_lockfile::shim {

int truncate_matched(const char *path, off_t length, bool *matched) {
    Paths p;
    char final[WLF_PATH_MAX];
    if (int rc = make_paths(AT_FDCWD, path, &p)) {
        if (!refuse_unbuildable(rc, AT_FDCWD, path, false)) return 0;
        *matched = true;
        return -1;
    }
    rules::Kind kind = classify(p, final, sizeof final);
    int fd;
    if (kind == rules::kNone || kind == rules::kExclude) {
        // A link into /proc naming a pending file: that replacement.
        if (!open_through_link(p, O_WRONLY, &fd)) return 0;
    } else {
        fd = open_pending(p, kind, O_WRONLY, 0);
    }
    *matched = true;
    if (fd < 0) return -1;
    int rc = sys::ftruncate(fd, length);
    if (rc != 0) poison(fd, errno);
    Entry *last = detach(fd);
    sys::close(fd);
    if (last && commit(last) != 0) return -1;
    return rc;
}

}  // namespace wrap_lockfile::shim
