// A replacement's C API (wlf_write_options_init, wlf_commit, wlf_discard,
// wlf_file_detach, the accessors, wlf_write_content) and what the shim does
// to a pending one at exec, dup2 and _exit; opening one: open_file.cpp.
#include "handoff.hpp"
#include "internal.hpp"
#include "lock_internal.hpp"
#include "recycle.hpp"
#include "replacement.hpp"
#include "shim_entry.hpp"
#include "sysio.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

using namespace wrap_lockfile;
using detail::at_fd;
using detail::destroy;
using detail::fail;
using detail::release_lock;

namespace wrap_lockfile::detail {

void release_lock(wlf_file *f, wlf_error *err, int *rc, bool known_owner) {
    if (!f->lock) return;
    wlf_error lerr;  // filled on failure; not cleared (4 KiB) on the hot path
    lerr.code = 0;
    int lrc = known_owner ? detail::lock_release_by_owner(f->lock, &lerr) : wlf_lock_release(f->lock, &lerr);
    f->lock = nullptr;
    if (lrc != 0 && *rc == 0) {
        *rc = lrc;
        if (err) *err = lerr;
    }
}

void destroy(wlf_file *f) {
    if (f->fd >= 0) sys::close_quietly(f->fd);
    // A named temp is reached through the directory descriptor or by its
    // absolute name; anything else (a failed hand-over) is not guessed at.
    if (f->temp[0] && (f->dir_fd >= 0 || f->temp[0] == '/')) unlinkat(at_fd(f), f->temp, 0);
    if (f->per_target_temp) detail::release_per_target_name();
    if (f->dir_fd >= 0) sys::close_quietly(f->dir_fd);
    if (f->target_fd >= 0) sys::close_quietly(f->target_fd);
    int rc = 0;
    release_lock(f, nullptr, &rc);
    detail::Recycled<wlf_file>::give(f);
}

int fail_and_destroy(wlf_file *f, wlf_error *err, int code, wlf_step step, const char *op, const char *path) {
    int saved = errno;
    fail(err, code, step, op, path);
    destroy(f);
    errno = saved;
    return code;
}

}  // namespace wrap_lockfile::detail

extern "C" int wlf_file_fd(const wlf_file *f) { return f ? f->fd : -1; }

extern "C" intptr_t wlf_file_handle(const wlf_file *f) { return wlf_file_fd(f); }
extern "C" const char *wlf_file_target(const wlf_file *f) { return f ? f->target : ""; }
extern "C" int wlf_file_kind(const wlf_file *f) { return f ? f->kind : -1; }

extern "C" void wlf_file_poison(wlf_file *f, int error) {
    if (f && f->poison == 0) f->poison = error;
}

namespace {

// A write failed: the replacement is not committed. Written straight into
// the target (lock-only, in place without a stage), the writes are there
// already, as far as they went: the step says so (WLF_STEP_IN_PLACE).
int fail_poisoned(wlf_file *f, wlf_error *err) {
    bool direct = f->kind == WLF_COMMIT_IN_PLACE && !f->staged;
    return fail(err, f->poison, direct ? WLF_STEP_IN_PLACE : WLF_STEP_WRITE, "write to", f->target);
}

int commit_file(wlf_file *f, int *kind_out, wlf_error *err, bool known_owner) {
    if (!f) return fail(err, EINVAL, WLF_STEP_OPEN, "commit", nullptr);
    if (f->poison) {
        int rc = fail_poisoned(f, err);
        destroy(f);
        return rc;
    }
    int rc = detail::commit_steps(f, err);
    if (kind_out) *kind_out = f->kind;
    release_lock(f, err, &rc, known_owner);
    destroy(f);
    return rc;
}

}  // namespace

extern "C" int wlf_commit(wlf_file *f, int *kind_out, wlf_error *err) { return commit_file(f, kind_out, err, false); }

int detail::file_commit_by_opener(wlf_file *f, int *kind_out, wlf_error *err) {
    return commit_file(f, kind_out, err, true);
}

extern "C" int wlf_file_detach(wlf_file *f) {
    if (!f || f->kind != WLF_COMMIT_PASSTHROUGH) {
        errno = EINVAL;
        return -1;
    }
    int fd = f->fd;
    f->fd = -1;
    destroy(f);
    return fd;
}

extern "C" void wlf_discard(wlf_file *f) {
    if (f) destroy(f);
}

extern "C" int wlf_write_content(const char *path, const void *data, size_t size, const wlf_write_options *opt,
                                 wlf_error *err) {
    wlf_file *f;
    if (int rc = wlf_open(path, "w", opt, &f, err)) return rc;
    if (sys::write_all(f->fd, data, size) != 0) {
        int e = errno;
        fail(err, e, WLF_STEP_WRITE, "write to", f->target);
        wlf_discard(f);
        return e;
    }
    return wlf_commit(f, nullptr, err);
}

pid_t detail::file_opener(const wlf_file *f) {
    pid_t pid = detail::lock_owner(f->lock);
    return pid > 0 ? pid : getpid();
}

bool detail::file_locked_by_this_thread(const wlf_file *f) { return detail::lock_taken_by_this_thread(f->lock); }

bool detail::file_temp_identity(const wlf_file *f, dev_t *dev, ino_t *ino) {
    if (f->temp_ino == 0) return false;
    *dev = f->temp_dev;
    *ino = f->temp_ino;
    return true;
}

bool detail::file_staged(const wlf_file *f) { return f->staged; }
int detail::file_open_flags(const wlf_file *f) { return f->flags; }
int detail::file_pinned_target(const wlf_file *f) { return f->target_fd; }
void detail::file_commit_durably(wlf_file *f) { f->durability = WLF_DURABILITY_FULL; }

bool detail::file_old_target(const wlf_file *f, struct stat *st) {
    if (!f->existed) return false;
    *st = f->st;
    return true;
}

int detail::file_commit_at_exit(wlf_file *f, int *kind_out, wlf_error *err) {
    int rc = f->poison ? fail_poisoned(f, err) : detail::commit_steps(f, err);
    if (kind_out) *kind_out = f->kind;
    // What a failed commit leaves (a named temp), then the lock; nothing is
    // freed or closed beyond what the commit itself closes: the process ends.
    if (f->temp[0]) unlinkat(at_fd(f), f->temp, 0);
    f->temp[0] = '\0';
    detail::lock_release_at_exit(f->lock);
    return rc;
}

void detail::file_abandon(wlf_file *f) {
    if (f->temp[0]) unlinkat(at_fd(f), f->temp, 0);
    f->temp[0] = '\0';
    if (f->per_target_temp) detail::release_per_target_name();
    f->per_target_temp = false;
    detail::lock_abandon(f->lock);
}

bool detail::file_relocate_fd(wlf_file *f, int from, int to) {
    if (f->fd == from) f->fd = to;
    if (f->dir_fd == from) f->dir_fd = to;
    if (f->target_fd == from) f->target_fd = to;
    return detail::lock_relocate_fd(f->lock, from, to);
}
