// See dir_sync.hpp.
#include "dir_sync.hpp"

#include "messages.hpp"
#include "preload_config.hpp"

#include "internal.hpp"
#include "sysio.hpp"

#include <sys/stat.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstring>

namespace wrap_lockfile::shim {

void sync_deferred_dirs() {
    wlf_error err;
    err.code = 0;
    if (detail::sync_pending_dirs(&err) == 0) return;
    char text[WLF_PATH_MAX + 256];
    message("wrap_lockfile: replaced, but not durably: %s%s\n", wlf_error_format(&err, text, sizeof text), "");
}

void sync_deferred_dirs_now() {
    wlf_error err;
    err.code = 0;
    err.op = "";
    int rc = detail::sync_pending_dirs_now(&err);
    if (rc == 0) return;
    // strerrorname_np: a constant string, where strerror may allocate.
    const char *name = strerrorname_np(rc);
    message("wrap_lockfile: '%s' replaced, but not durably: fsync of the directory failed at _exit (%s)\n", err.path,
                 name ? name : "error");
}

void exit_dir_syncs() {
    if (detail::dir_syncs_pending()) sync_deferred_dirs_now();
}

void exec_dir_syncs() {
    if (detail::dir_syncs_pending()) sync_deferred_dirs();
}

int sync_before_rename(int fromdir, const char *from) {
    if (g_config.options.durability == WLF_DURABILITY_NONE) return 0;
    // Only a regular file is opened (opening a device has side effects);
    // a symlink is renamed as a link, with no data of its own to sync.
    struct stat st;
    // (The kernel's call: libc's fstatat is our own interposer.)
    if (sys::call(SYS_newfstatat, fromdir, sys::arg(from), sys::arg(&st), AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
        return 0;
    constexpr int kFlags = O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    int fd = sys::openat(fromdir, from, O_RDONLY | kFlags);
    // A file the program may write but not read: fsync works on a write-only
    // descriptor, and opening one without O_TRUNC changes nothing.
    if (fd < 0 && errno == EACCES) fd = sys::openat(fromdir, from, O_WRONLY | kFlags);
    if (fd < 0) return 0;  // nothing we may open: renamed as it is
    struct stat now;
    int rc = 0;
    if (sys::fstat(fd, &now) == 0 && now.st_dev == st.st_dev && now.st_ino == st.st_ino && sys::fsync(fd) != 0) rc = errno;
    sys::close(fd);
    return rc;
}

void sync_after_rename(const char *raw_to) {
    int durability = g_config.options.durability;
    if (durability == WLF_DURABILITY_NONE) return;
    const char *slash = strrchr(raw_to, '/');
    if (!slash) return;
    size_t len = slash == raw_to ? 1 : static_cast<size_t>(slash - raw_to);
    char dir[WLF_PATH_MAX];
    memcpy(dir, raw_to, len);
    dir[len] = '\0';
    int fd = sys::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    wlf_error err;
    err.code = 0;
    int rc = fd < 0 ? detail::fail(&err, errno, WLF_STEP_FSYNC_DIR, "open directory", dir)
             : durability == WLF_DURABILITY_BATCH ? detail::defer_dir_sync(fd, dir, len, &err)
             : sys::fsync(fd) != 0               ? detail::fail(&err, errno, WLF_STEP_FSYNC_DIR, "fsync directory", dir)
                                                 : 0;
    if (fd >= 0) sys::close(fd);
    if (rc == 0) return;
    char text[WLF_PATH_MAX + 256];
    message("wrap_lockfile: '%s' renamed, but not durably: %s\n", raw_to, wlf_error_format(&err, text, sizeof text));
}

}  // namespace wrap_lockfile::shim
