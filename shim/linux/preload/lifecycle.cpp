// The process's life as the shim sees it: initialization (configuration,
// hand-overs from the image before), fork (the child inherits descriptors,
// not the duty to commit), _exit (commit without flushing stdio), and the
// commit at normal exit (stdio flushed first).
#include "commit.hpp"
#include "dir_sync.hpp"
#include "exec_handover.hpp"
#include "fd_table.hpp"
#include "handlers.hpp"
#include "messages.hpp"
#include "preload_config.hpp"

#include "handoff.hpp"
#include "sysio.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>

namespace wrap_lockfile::shim {

namespace {

pthread_once_t g_once = PTHREAD_ONCE_INIT;

// The status given to exit(), and by which process (a vfork child's exit
// writes its parent's memory; a parent returning from main calls libc's
// exit from inside libc, unseen: its status stays unknown).
std::atomic<pid_t> g_exit_pid{0};
std::atomic<int> g_exit_status{0};

// The process this memory is: the shim's init, a fork's child handler (a
// vfork runs none).
std::atomic<pid_t> g_memory_pid{0};

void after_fork_child() {
    g_memory_pid.store(getpid(), std::memory_order_relaxed);
    // The child inherits descriptors, not the duty to commit: it only
    // reports the write errors it sees on a temp (child_errors.cpp).
    // Another thread may have held a mutex at the fork: start them afresh.
    for (int fd = 0; fd < kMaxFds && g_tracked.load() > 0; ++fd) {
        Entry *e = entry_of(g_fds[fd].load());
        bool temp = (e && wlf_file_kind(e->file) == WLF_COMMIT_RENAME) || g_fds[fd].load() == kInherited;
        if (g_fds[fd].load()) set_slot(fd, temp ? kInherited : 0);
    }
    memset(g_internal_refs, 0, sizeof g_internal_refs);
    g_replacements.forget_all();  // no number lists them any more
    g_mutex = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
    detail::lock_registry_after_fork();
}

void init_once() {
    g_memory_pid.store(getpid(), std::memory_order_relaxed);
    load_config();
    import_pending();
    identity_import();
    // Before the fork, so that no other thread's last close can refuse a
    // replacement as empty while the child already holds it.
    pthread_atfork([] { note_shared(false); }, [] { g_children.store(true, std::memory_order_relaxed); },
                   after_fork_child);
    g_state.store(g_config.rules.count > 0 ? 2 : 1, std::memory_order_release);
}

}  // namespace

bool in_vfork_child() {
    const pid_t p = g_memory_pid.load(std::memory_order_relaxed);
    return p != 0 && p != getpid();
}

void init_slow() { pthread_once(&g_once, init_once); }

MainFn g_program_main = nullptr;

int main_noting_status(int argc, char **argv, char **envp) {
    int status = g_program_main(argc, argv, envp);
    note_exit_status(status);
    return status;
}

void note_exit_status(int status) {
    g_exit_status.store(status, std::memory_order_relaxed);
    g_exit_pid.store(getpid(), std::memory_order_release);
}

int status_after_failed_commit(int status) {
    if ((status & 0377) != 0) return status;  // what the parent sees
    message("wrap_lockfile: exit status 1, not 0: what the program wrote is not all in place (above)%s%s\n", "", "");
    return 1;
}

bool exit_pending() {
    // A vfork child has another pid and its parent's memory: it finds no
    // entry of its own and touches nothing.
    pid_t me = getpid();
    int end = g_fd_end.load(std::memory_order_acquire);
    bool mine = false;
    for (int fd = 0; fd < end && !mine; ++fd) {
        Entry *e = entry_of(g_fds[fd].load(std::memory_order_acquire));
        mine = e && e->opener == me;
    }
    if (!mine) return true;
    bool all = true;
    // _exit may run in a signal handler: never wait for a mutex. This thread
    // interrupted inside the shim (its own g_mutex is recursive, so trylock
    // would succeed), or another thread holding either mutex: abandon, as a
    // kill would, but say so and leave nothing behind.
    const bool shim_locked = t_inside == 0 && pthread_mutex_trylock(&g_mutex) == 0;
    const bool registry_locked = shim_locked && detail::lock_registry_trylock();
    for (int fd = 0; fd < end; ++fd) {
        Entry *e = entry_of(g_fds[fd].load(std::memory_order_acquire));
        if (!e || e->opener != me) continue;
        g_replacements.unlist(e);  // a vfork child never gets here
        if (registry_locked) {
            all = commit_at_exit(e) && all;
            continue;
        }
        detail::file_abandon(e->file);
        all = false;
        message("wrap_lockfile: _exit while the shim was busy: '%s' not replaced, old content kept\n",
                target_of(e), "");
    }
    if (registry_locked) detail::lock_registry_unlock();
    if (shim_locked) pthread_mutex_unlock(&g_mutex);
    return all;
}

}  // namespace wrap_lockfile::shim

using namespace wrap_lockfile::shim;

__attribute__((constructor)) static void wrap_lockfile_shim_init() { init_slow(); }

// Normal exit commits what this process still has pending (stdio first).
__attribute__((destructor)) static void wrap_lockfile_shim_fini() {
    // Replacements handed over by exec count even when this image has no
    // rules of its own.
    if (g_tracked.load() == 0) return;
    const int left = errno;  // a failed stdio write's (stream_error)
    fflush(nullptr);
    // A child's stdout or stderr that is another process's pending temp:
    // a failed buffered write is reported to the opener.
    if (g_fds[1].load() == kInherited && ferror(stdout)) report_child_error(1, stream_error(left));
    if (g_fds[2].load() == kInherited && ferror(stderr)) report_child_error(2, stream_error(left));
    pid_t me = getpid();
    bool all = true;
    for (int fd = 0; fd < kMaxFds && g_tracked.load() > 0; ++fd) {
        Entry *e;
        {
            Guard g;
            e = entry_of(g_fds[fd].load());
            if (!e || e->opener != me) continue;
            g_replacements.unlist(e);
        }
        // libc's own writes from stdio buffers do not pass through our
        // write(); the stream's error flag is the only trace of a failure.
        FILE *std_stream = fd == 1 ? stdout : fd == 2 ? stderr : nullptr;
        if ((e->stream && ferror(e->stream)) || (std_stream && ferror(std_stream)))
            wlf_file_poison(e->file, stream_error(left));
        all = commit(e) == 0 && all;
    }
    sync_deferred_dirs();  // what these commits deferred (batch)
    // A failed commit turns exit(0) into a failure. The status is known
    // only from exit() called by the program itself; the libraries whose
    // destructors have not run yet (libc's) need nothing more: stdio was
    // flushed above.
    if (!all && g_exit_pid.load(std::memory_order_acquire) == me) {
        int status = g_exit_status.load(std::memory_order_relaxed);
        if ((status & 0377) == 0) wrap_lockfile::sys::call(SYS_exit_group, status_after_failed_commit(status));
    }
}
