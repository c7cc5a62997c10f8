#include "commit.hpp"

#include "handlers.hpp"
#include "messages.hpp"

#include "handoff.hpp"
#include "sysio.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::shim {

namespace {

// What became of the target, told by the failing step, not by words.
const char *failure_format(int step, bool at_exit) {
    switch (step) {
    case WLF_STEP_FSYNC_DIR: return "wrap_lockfile: '%s' replaced, but not durably: %s\n";
    case WLF_STEP_UNLOCK: return "wrap_lockfile: '%s' replaced, but its lock was not released cleanly: %s\n";
    case WLF_STEP_IN_PLACE: return "wrap_lockfile: '%s' written in place, perhaps partly: %s\n";
    default:
        return at_exit ? "wrap_lockfile: '%s' not replaced at _exit, old content kept: %s\n"
                       : "wrap_lockfile: '%s' not replaced, old content kept: %s\n";
    }
}

// A replacement the program met EMFILE over while it held nothing
// (fd_table.cpp, note_crowded) and that still holds nothing is not
// committed over a target with content: an empty file would take the place
// of the content a shell's failed redirection never wrote. Poisoned, the
// target keeps its content and the close fails. A new or empty target is
// committed: nothing is lost. Async-signal-safe (commit_at_exit).
void refuse_if_still_empty(Entry *e, const char *target) {
    if (!e->crowded || (wlf_file_kind(e->file) != WLF_COMMIT_RENAME && !detail::file_staged(e->file))) return;
    struct stat st;
    if (!detail::file_old_target(e->file, &st) || st.st_size == 0) return;
    int own, lock_fd, dir_fd;
    detail::file_descriptors(e->file, &own, &lock_fd, &dir_fd);
    if (own < 0 || sys::fstat(own, &st) != 0 || st.st_size != 0) return;
    message("wrap_lockfile: '%s' is still empty after the program ran out of descriptors (EMFILE), which the shim's "
            "own may have taken%s\n",
            target, ": not committing the empty file");
    wlf_file_poison(e->file, EMFILE);
}

}  // namespace

int commit(Entry *e) {
    Inside inside;
    // e, and the name it carries, is removed on every way out (the messages
    // below name the target after the core has freed its own copy).
    struct Removed {
        Entry *e;
        ~Removed() {
            Guard g;
            g_replacements.remove(e);
        }
    } removed{e};
    char copy[WLF_PATH_MAX];
    const char *target = e->key;
    if (!target) {
        // Taken over across exec: no name of its own.
        const char *t = wlf_file_target(e->file);
        size_t n = strnlen(t, sizeof copy - 1);
        memcpy(copy, t, n);
        copy[n] = '\0';
        target = copy;
    }
    bool superseded = identity_remove(e->file, e->opener);
    {
        Guard g;
        mark_internal(e->file, false);
    }
    if (superseded) {
        // The program renamed another file onto the target meanwhile: that
        // file is F now, as without the shim; this descriptor's content
        // would have gone to the unlinked inode.
        wlf_discard(e->file);
        log_line("wrap_lockfile: '%s' was replaced by the program's own rename; not replacing it again%s\n", target, "");
        return 0;
    }
    if (g_children.load(std::memory_order_relaxed) && wlf_file_kind(e->file) == WLF_COMMIT_RENAME) {
        int own, lock_fd, dir_fd;
        detail::file_descriptors(e->file, &own, &lock_fd, &dir_fd);
        if (int error = child_error(own)) wlf_file_poison(e->file, error);
    }
    refuse_if_still_empty(e, target);
    wlf_error err;  // filled on failure; not cleared (4 KiB) on the hot path
    err.code = 0;
    int kind = 0;
    int rc = detail::file_commit_by_opener(e->file, &kind, &err);
    if (rc) {
        char text[WLF_PATH_MAX + 256];
        wlf_error_format(&err, text, sizeof text);
        message(failure_format(err.step, false), target, text);
        errno = rc;
        return rc;
    }
    log_line("wrap_lockfile: committed '%s'%s\n", target, kind == WLF_COMMIT_IN_PLACE ? " (in place, not atomic)" : "");
    return 0;
}

int commit_pending_at(int dirfd, const char *path) {
    Pending p;
    // A staged target is written in place through its name at the commit:
    // renamed, the name no longer leads there, and the commit says so.
    if (!find_pending(dirfd, path, false, &p) || p.shown.staged) return 0;
    Guard g;  // held through the commit: another thread's last close cannot commit it too
    const wlf_file *f = own_pending_file(p);
    Entry *e = f ? g_replacements.by_file(f) : nullptr;
    if (!e || e->opener != getpid()) return 0;
    return commit(e);
}

bool commit_at_exit(Entry *e) {
    const char *target = target_of(e);
    if (identity_superseded(e->file)) {
        detail::file_abandon(e->file);  // the program's own rename is F now (see commit)
        return true;
    }
    if (g_children.load(std::memory_order_relaxed) && wlf_file_kind(e->file) == WLF_COMMIT_RENAME) {
        int own, lock_fd, dir_fd;
        detail::file_descriptors(e->file, &own, &lock_fd, &dir_fd);
        if (int error = child_error(own)) wlf_file_poison(e->file, error);
    }
    refuse_if_still_empty(e, target);
    wlf_error err;
    err.code = 0;
    err.op = "";
    int kind = 0;
    if (int rc = detail::file_commit_at_exit(e->file, &kind, &err)) {
        // strerrorname_np: a constant string, where strerror may allocate.
        char why[128];
        const char *name = strerrorname_np(rc);
        snprintf(why, sizeof why, "%s failed (%s)", err.op && *err.op ? err.op : "commit", name ? name : "error");
        message(failure_format(err.step, true), target, why);
        return false;
    }
    log_line("wrap_lockfile: committed '%s'%s\n", target, kind == WLF_COMMIT_IN_PLACE ? " (in place, not atomic)" : "");
    return true;
}

// A child's write error on the temp behind an inherited descriptor
// (child_errors.cpp) poisons the replacement.

}  // namespace wrap_lockfile::shim
