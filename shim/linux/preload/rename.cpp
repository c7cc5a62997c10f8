// rename/renameat/renameat2/link onto a matched target run under that
// target's lock, so they serialize with the shim's own commits.
#include "dir_sync.hpp"
#include "handlers.hpp"
#include "messages.hpp"
#include "open.hpp"
#include "preload_config.hpp"

#include "handoff.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <cerrno>
#include <cstring>

namespace wrap_lockfile::shim {

int rename_locked(int fromdir, const char *from, int todir, const char *to, Thunk pass) {
    Paths p;
    char final[WLF_PATH_MAX];
    if (int rc = make_paths(todir, to, &p)) return refuse_unbuildable(rc, todir, to, false) ? -1 : static_cast<int>(pass());
    final[0] = '\0';
    rules::Kind kind = classify(p, final, sizeof final);
    if (kind == rules::kNone || kind == rules::kExclude) return static_cast<int>(pass());
    const char *target = final[0] ? final : p.raw;
    auto rename_now = [&]() {
        // As durable as the shim's own replacements (dir_sync.hpp): the
        // file before its name appears, the directory after.
        if (int e = sync_before_rename(fromdir, from)) {
            message("wrap_lockfile: not renaming onto '%s': fsync of the renamed file failed: %s\n", p.raw, strerror(e));
            errno = e;
            return -1;
        }
        int r = static_cast<int>(pass());
        int saved = errno;
        if (r == 0) {
            identity_supersede(final[0] ? final : p.norm);
            sync_after_rename(p.raw);
        }
        errno = saved;
        return r;
    };
    wlf_lock *lock = nullptr;
    wlf_error err{};
    // One try first: a lock this very process holds itself (the program
    // flock()ed X.lock, then renames onto X) would never be released while
    // we wait. Such a program serializes its own writes of X: the rename
    // goes ahead without the lock.
    wlf_lock_options once = g_config.options.lock;
    once.has_timeout = 1;
    once.timeout = 0;
    int rc = wlf_lock_acquire(target, &once, &lock, &err);
    if (detail::held_by_program(rc, err)) {
        log_line("wrap_lockfile: '%s' is locked by this program itself: renaming without the lock%s\n", target, "");
        return rename_now();
    }
    const wlf_lock_options &lopt = g_config.options.lock;
    if (rc == EWOULDBLOCK && !(lopt.has_timeout && lopt.timeout <= 0)) {
        err = wlf_error{};
        rc = wlf_lock_acquire(target, &lopt, &lock, &err);
    }
    if (rc) {
        char text[WLF_PATH_MAX + 256];
        describe_lock_failure(rc, err, text, sizeof text);
        message("wrap_lockfile: cannot lock '%s' for rename: %s\n", p.raw, text);
        errno = rc == EWOULDBLOCK ? EAGAIN : rc;
        return -1;
    }
    int r = rename_now();
    int saved = errno;
    wlf_lock_release(lock, nullptr);
    errno = saved;
    return r;
}

}  // namespace wrap_lockfile::shim
