#include "unseen_close.hpp"

#include "commit.hpp"
#include "fd_table.hpp"
#include "messages.hpp"
#include "preload_config.hpp"

#include "handoff.hpp"
#include "sysio.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace wrap_lockfile::shim {

namespace {

// Whether the program's descriptor fd still is e's file (the library's own
// duplicate is the reference): false once its close went unseen, even if
// the number has been reused since (by a pipe or socket, say).
bool still_open(int fd, const Entry *e) {
    int own, lock_fd, dir_fd;
    detail::file_descriptors(e->file, &own, &lock_fd, &dir_fd);
    struct stat mine, theirs;
    if (sys::fstat(fd, &theirs) != 0) return errno != EBADF;
    if (sys::fstat(own, &mine) != 0) return true;  // nothing to tell by: leave it
    return mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino;
}

}  // namespace

void commit_unseen_closes() {
    int saved = errno;
    Guard g;
    pid_t me = getpid();
    int end = g_fd_end.load(std::memory_order_relaxed);
    for (int fd = 0; fd < end; ++fd) {
        Entry *e = entry_of(g_fds[fd].load());
        if (!e || e->opener != me || still_open(fd, e)) continue;
        if (Entry *last = detach(fd)) commit(last);
    }
    errno = saved;
}

namespace {

// One of the shim's own descriptors was closed behind its back (the number
// came back from an open): the replacements using it can no longer be
// committed safely. They fail loudly at their close; the core forgets the
// number, which is the program's now.
void forget_internal(int fd) {
    int end = g_fd_end.load(std::memory_order_relaxed);
    for (int i = 0; i < end; ++i) {
        Entry *e = entry_of(g_fds[i].load());
        if (!e) continue;
        int own, lock_fd, dir_fd;
        detail::file_descriptors(e->file, &own, &lock_fd, &dir_fd);
        if (own != fd && lock_fd != fd && dir_fd != fd) continue;
        wlf_file_poison(e->file, EBADF);
        detail::file_relocate_fd(e->file, fd, -1);
        char num[16];
        snprintf(num, sizeof num, "%d", fd);
        message("wrap_lockfile: descriptor %s of the pending replacement of '%s' was closed behind the shim's back\n",
                num, target_of(e));
    }
    if (g_config.log_fd == fd) g_config.log_fd = -1;
    g_internal_refs[fd] = 0;
    set_slot(fd, 0);
}

}  // namespace

void reclaim(int fd) {
    Guard g;
    uintptr_t v = g_fds[fd].load();
    if (v == kInternal) {
        forget_internal(fd);
        return;
    }
    if (Entry *e = detach(fd)) commit(e);  // an inherited one is just forgotten
}

}  // namespace wrap_lockfile::shim
