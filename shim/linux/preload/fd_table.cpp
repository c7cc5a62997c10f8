// The descriptor table (fd_table.hpp): listing, counting, attaching dups,
// moving the shim's own descriptors out of a dup2's way.
#include "fd_table.hpp"

#include "commit.hpp"
#include "handlers.hpp"
#include "messages.hpp"
#include "preload_config.hpp"

#include "handoff.hpp"
#include "internal.hpp"
#include "sysio.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <sys/resource.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>

namespace wrap_lockfile::shim {

std::atomic<uintptr_t> g_fds[kMaxFds];
std::atomic<int> g_state{0};
std::atomic<int> g_tracked{0};

pthread_mutex_t g_mutex = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
__attribute__((tls_model("initial-exec"))) constinit thread_local int t_inside = 0;
std::atomic<bool> g_children{false};
std::atomic<int> g_fd_end{0};
uint16_t g_internal_refs[kMaxFds];
constinit Registry g_replacements;

void set_slot(int fd, uintptr_t v) {
    if (fd < 0 || fd >= kMaxFds) return;
    if (v && fd >= g_fd_end.load(std::memory_order_relaxed)) g_fd_end.store(fd + 1, std::memory_order_relaxed);
    uintptr_t old = g_fds[fd].exchange(v, std::memory_order_acq_rel);
    if (!old && v) g_tracked.fetch_add(1);
    if (old && !v) g_tracked.fetch_sub(1);
}

namespace {

void mark_one(int fd, bool on) {
    if (fd < 0 || fd >= kMaxFds) return;
    if (on) {
        if (g_internal_refs[fd]++ == 0) set_slot(fd, kInternal);
    } else if (g_internal_refs[fd] > 0 && --g_internal_refs[fd] == 0) {
        set_slot(fd, 0);
    }
}

}  // namespace

void mark_internal(wlf_file *f, bool on) {
    int fd, lock_fd, dir_fd;
    detail::file_descriptors(f, &fd, &lock_fd, &dir_fd);
    mark_one(fd, on);
    mark_one(lock_fd, on);
    mark_one(dir_fd, on);
}

Entry *detach(int fd) {
    if (fd < 0 || fd >= kMaxFds) return nullptr;
    Guard g;
    if (g_fds[fd].load() == kInherited) set_slot(fd, 0);
    return g_replacements.drop_handle(fd, getpid());
}

void attach(int newfd, int fd) {
    if (newfd < 0 || newfd >= kMaxFds) return;
    Guard g;
    if (g_fds[fd].load() == kInherited) set_slot(newfd, kInherited);
    Entry *e = entry_of(g_fds[fd].load());
    if (e && e->opener == getpid()) g_replacements.add_handle(e, newfd);
}

void drop_and_commit(int fd) {
    if (Entry *e = detach(fd)) commit(e);
}

void discard_detached(Entry *last) {
    if (!last) return;
    identity_remove(last->file, last->opener);
    wlf_file *f;
    {
        Guard g;
        mark_internal(last->file, false);
        f = g_replacements.remove(last);
    }
    wlf_discard(f);
}

bool relocate_internal(int fd) {
    Guard g;
    if (fd < 0 || fd >= kMaxFds || g_fds[fd].load() != kInternal) return true;
    // Anywhere with room rather than nowhere: a refused dup2 fails the
    // program's redirection after its truncating open, so the shell commits
    // an empty file (a program that lowered its descriptor limit below the
    // floor since the load, a small limit).
    detail::lock_fd_busy(true);
    int moved = detail::dup_kept(fd, g_config.fd_floor);
    if (moved < 0 || moved >= kMaxFds) {
        int e = moved < 0 ? errno : EMFILE;
        if (moved >= 0) sys::close(moved);
        detail::lock_fd_busy(false);
        // Refused rather than done: dup2 would take the lock or the temp
        // away from a pending replacement.
        char num[16];
        snprintf(num, sizeof num, "%d", fd);
        message("wrap_lockfile: cannot move descriptor %s out of the way of dup2: %s\n", num, strerror(e));
        errno = e;
        return false;
    }
    bool lock_moved = false;
    for (int i = 0; i < kMaxFds; ++i)
        if (Entry *e = entry_of(g_fds[i].load())) lock_moved = detail::file_relocate_fd(e->file, fd, moved) || lock_moved;
    if (g_config.log_fd == fd) g_config.log_fd = moved;
    g_internal_refs[moved] = g_internal_refs[fd];
    g_internal_refs[fd] = 0;
    set_slot(moved, kInternal);
    set_slot(fd, 0);
    identity_relocate(fd, moved);
    sys::close(fd);
    if (lock_moved) detail::lock_fd_closed(fd);  // a lock's number is unmarked only now
    detail::lock_fd_busy(false);
    return true;
}

void poison(int fd, int error) {
    Guard g;
    if (g_fds[fd].load() == kInherited) report_child_error(fd, error);
    if (Entry *e = entry_of(g_fds[fd].load())) wlf_file_poison(e->file, error);
}

namespace {

// fn(fd, entry) for each descriptor that reaches a pending replacement,
// under the mutex, errno kept; nothing while nothing is tracked.
template <class Fn>
void each_listed(Fn &&fn) {
    if (g_tracked.load(std::memory_order_acquire) == 0) return;
    int saved = errno;
    {
        Guard g;
        int end = g_fd_end.load(std::memory_order_acquire);
        for (int fd = 0; fd < end && fd < kMaxFds; ++fd)
            if (Entry *e = entry_of(g_fds[fd].load())) fn(fd, e);
    }
    errno = saved;
}

// Whether one of the shim's own descriptors sits below the open-file limit
// (where the plain run would have had that number free). errno kept.
bool ours_below_limit() {
    int saved = errno;
    int below = g_fd_end.load(std::memory_order_acquire);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < static_cast<rlim_t>(below))
        below = static_cast<int>(rl.rlim_cur);
    errno = saved;
    for (int fd = 0; fd < below && fd < kMaxFds; ++fd)
        if (g_fds[fd].load(std::memory_order_acquire) == kInternal) return true;
    return false;
}

}  // namespace

// The program met EMFILE (an open, dup or fcntl(F_DUPFD) of its failed, or
// a matched open the shim refused for want of room). The shim's own
// descriptors may be what took the numbers: a shell whose next redirection
// or descriptor save fails so closes the file it just opened with O_TRUNC,
// nothing written, and the replacement would commit an empty file where the
// plain run writes it. Every replacement of this process that holds
// nothing yet is marked; commit.cpp keeps one from committing if it still
// holds nothing then (the target keeps its content, the close fails). A
// failure path only: the walk costs nothing to a program that has room.
// by_shim false (an EMFILE the kernel gave the program's own call): only
// when one of the shim's descriptors sits below the open-file limit, where
// the plain run would have had that number free; above it (a limit the
// program lowered since they were opened) they took nothing, the plain run
// meets the same EMFILE, and an empty file it then leaves is its own.
void note_crowded(bool by_shim) {
    if (g_tracked.load(std::memory_order_acquire) == 0 || (!by_shim && !ours_below_limit())) return;
    const pid_t me = getpid();
    each_listed([me](int fd, Entry *e) {
        struct stat st;
        if (!e->crowded && !e->shared && e->opener == me && sys::fstat(fd, &st) == 0 && st.st_size == 0)
            e->crowded = true;
    });
}

void note_shared(bool inheritable_only) {
    const pid_t me = getpid();
    each_listed([me, inheritable_only](int fd, Entry *e) {
        if (e->shared) return;
        // Another's (a vfork child's view of its parent's): the child's own
        // dup2()s onto 0-2 are not listed for it.
        if (inheritable_only && e->opener == me) {
            int fdflags = sys::fcntl(fd, F_GETFD);
            if (fdflags < 0 || (fdflags & FD_CLOEXEC)) return;
        }
        e->shared = true;
        e->crowded = false;
    });
}

void note_stream(int fd, FILE *stream) {
    if (fd < 0 || fd >= kMaxFds) return;
    Guard g;
    if (Entry *e = entry_of(g_fds[fd].load())) e->stream = stream;
}

}  // namespace wrap_lockfile::shim
