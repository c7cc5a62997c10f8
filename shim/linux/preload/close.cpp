// The close family on tracked descriptors: close, fclose, fcloseall,
// close_range. The last program descriptor of a replacement closed in the
// opener commits it; the shim's own descriptors are never closed for the
// program.
#include "commit.hpp"
#include "fd_table.hpp"
#include "handlers.hpp"

#include "handoff.hpp"
#include "sysio.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <unistd.h>

#include <cerrno>

namespace wrap_lockfile::shim {

int close_tracked(int fd, Thunk pass) {
    uintptr_t v = g_fds[fd].load(std::memory_order_acquire);
    // Programs that close every descriptor (daemons, closefrom loops) must
    // not take the lock or the temp away from under a pending replacement:
    // to them the number is not open (EBADF), as without the shim.
    if (v == kInternal) {
        errno = EBADF;
        return -1;
    }
    Entry *e;
    {
        Guard g;
        if (g_fds[fd].load() == kInherited) set_slot(fd, 0);
        const pid_t me = getpid();
        e = entry_of(g_fds[fd].load());
        if (!e || e->opener != me) return static_cast<int>(pass());
        e = g_replacements.drop_handle(fd, me);
    }
    int rc = static_cast<int>(pass());
    int saved = errno;
    if (e && commit(e) != 0) return -1;
    errno = saved;
    return rc;
}

int fclose_tracked(FILE *stream, int fd, Thunk pass) {
    const int left = errno;  // the failed stdio write's, if one failed (stream_error)
    if (g_fds[fd].load(std::memory_order_acquire) == kInherited) {
        // stdio's own writes bypass write(): its flags are the trace.
        if (fflush(stream) != 0)
            report_child_error(fd, errno ? errno : EIO);
        else if (ferror(stream))
            report_child_error(fd, stream_error(left));
        detach(fd);
        return static_cast<int>(pass());
    }
    Entry *e = entry_of(g_fds[fd].load(std::memory_order_acquire));
    if (!e || e->opener != getpid()) return static_cast<int>(pass());
    // Buffered data must reach the temp before we decide; a failed flush
    // means the new content is incomplete.
    if (fflush(stream) != 0)
        wlf_file_poison(e->file, errno ? errno : EIO);
    else if (ferror(stream))
        wlf_file_poison(e->file, stream_error(left));
    {
        Guard g;
        if (e->stream == stream) e->stream = nullptr;  // about to be freed
    }
    Entry *last = detach(fd);
    int rc = static_cast<int>(pass());
    if (last && commit(last) != 0) return EOF;
    return rc;
}

int fcloseall_tracked(Thunk pass) {
    fflush(nullptr);
    int rc = static_cast<int>(pass());
    for (int fd = 0; fd < kMaxFds && g_tracked.load() > 0; ++fd) {
        if (!entry_of(g_fds[fd].load())) continue;
        if (sys::fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
        if (Entry *e = detach(fd)) commit(e);
    }
    return rc;
}

int close_range_tracked(unsigned first, unsigned last, int flags) {
    // Close around our own descriptors; commit replacements whose last
    // program descriptor went away.
    unsigned stop = last < static_cast<unsigned>(kMaxFds) ? last : static_cast<unsigned>(kMaxFds - 1);
    unsigned start = first;
    int rc = 0;
    Entry *done[64];
    int ndone = 0;
    for (unsigned fd = first; fd <= stop && fd >= first; ++fd) {
        uintptr_t v = g_fds[fd].load();
        if (v == kInternal) {
            if (fd > start && sys::close_range(start, fd - 1, flags) != 0) rc = -1;
            start = fd + 1;
        } else if (v) {
            Entry *e = detach(static_cast<int>(fd));
            if (e && ndone < 64)
                done[ndone++] = e;
            else if (e)
                commit(e);  // its descriptor closes below; the temp has its own
        }
    }
    if (start <= last && sys::close_range(start, last, flags) != 0) rc = -1;
    int saved = errno;
    for (int i = 0; i < ndone; ++i) commit(done[i]);
    errno = saved;
    return rc;
}

}  // namespace wrap_lockfile::shim
