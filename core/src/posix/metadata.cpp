#include "internal.hpp"
#include "replace_parts.hpp"

#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::detail {

namespace {

// Attributes we may not be allowed to set (trusted.*, security.* without
// privilege) or that the temp's file system does not support are skipped:
// the seed promises metadata "where permitted".
bool xattr_skippable(int e) { return e == EPERM || e == EACCES || e == ENOTSUP || e == EOPNOTSUPP; }

struct Buffer {
    char *data = nullptr;
    ~Buffer() { free(data); }
};

constexpr char kAccessAcl[] = "system.posix_acl_access";

int copy_xattrs(int src, int fd, bool *copied) {
    ssize_t len = flistxattr(src, nullptr, 0);
    if (len < 0) return xattr_skippable(errno) ? 0 : errno;
    if (len == 0) return 0;
    Buffer names;
    for (;;) {
        free(names.data);
        names.data = static_cast<char *>(malloc(static_cast<size_t>(len)));
        if (!names.data) return ENOMEM;
        ssize_t got = flistxattr(src, names.data, static_cast<size_t>(len));
        if (got >= 0) {
            len = got;
            break;
        }
        if (errno != ERANGE) return errno;
        len = flistxattr(src, nullptr, 0);
        if (len < 0) return errno;
    }
    Buffer value;
    size_t cap = 0;
    for (const char *name = names.data; name < names.data + len; name += strlen(name) + 1) {
        ssize_t vlen = fgetxattr(src, name, nullptr, 0);
        if (vlen < 0) {
            if (errno == ENODATA || xattr_skippable(errno)) continue;
            return errno;
        }
        if (static_cast<size_t>(vlen) > cap || !value.data) {
            free(value.data);
            cap = static_cast<size_t>(vlen) + 1;
            value.data = static_cast<char *>(malloc(cap));
            if (!value.data) return ENOMEM;
        }
        vlen = fgetxattr(src, name, value.data, cap);
        if (vlen < 0) {
            if (errno == ENODATA || errno == ERANGE || xattr_skippable(errno)) continue;
            return errno;
        }
        if (fsetxattr(fd, name, value.data, static_cast<size_t>(vlen), 0) == 0)
            *copied = true;
        else if (!xattr_skippable(errno))
            return errno;
    }
    return 0;
}

}  // namespace

int copy_metadata(int src, const struct stat &st, int fd, struct stat *temp_st, const char **op, bool *owner_kept) {
    *owner_kept = true;
    struct stat &cur = *temp_st;
    if (fstat(fd, &cur) != 0) {
        *op = "fstat temporary file";
        return errno;
    }
    // A temp created in a directory with a default ACL inherits it; the
    // target's own ACL (copied below) replaces it, but a target without one
    // must not gain one. Removed while the temp is still ours to change (before
    // the chown). Removing an ACL leaves the mode bits as they are (the group
    // bits show its mask), so `cur` still decides the chmod. Some file systems
    // answer 0 here even when there was none, others ENODATA.
    if (fremovexattr(fd, kAccessAcl) != 0 && errno != ENODATA && errno != ENOTSUP && errno != EOPNOTSUPP) {
        *op = "remove inherited ACL of temporary file";
        return errno;
    }
    // Owner first: chown clears set-id bits, which fchmod below restores.
    bool chowned = false;
    if (cur.st_uid != st.st_uid || cur.st_gid != st.st_gid) {
        chowned = true;
        if (fchown(fd, st.st_uid, st.st_gid) != 0) {
            if (errno != EPERM) {
                *op = "chown temporary file";
                return errno;
            }
            // Not privileged: our own file whose group we are in keeps its
            // group; anything else would change hands.
            if (cur.st_uid != st.st_uid) {
                *owner_kept = false;
                return 0;
            }
            if (fchown(fd, static_cast<uid_t>(-1), st.st_gid) != 0) {
                if (errno != EPERM) {
                    *op = "chgrp temporary file";
                    return errno;
                }
                *owner_kept = false;
                return 0;
            }
        }
    }
    bool xattrs = false;
    if (int rc = copy_xattrs(src, fd, &xattrs)) {
        *op = "copy extended attributes";
        return rc;
    }
    // An ACL rewrites the group bits and chown may clear set-id bits: only a
    // temp untouched by both, already with the right mode, skips the chmod.
    if (!chowned && !xattrs && (cur.st_mode & 07777) == (st.st_mode & 07777)) return 0;
    if (fchmod(fd, st.st_mode & 07777) != 0) {
        *op = "chmod temporary file";
        return errno;
    }
    return 0;
}

}  // namespace wrap_lockfile::detail
