// Write errors seen by a process that inherited a pending replacement's
// descriptor: `cat big > t` in a shell is fork, open (in the shell), exec
// cat; cat's copy_file_range fails with ENOSPC, but the shell commits. The
// error must reach the opener, which may live in another program image, with
// no descriptor or memory to share: the child marks the temp itself, the one
// file both can see. The mark is the sticky bit plus an access time of
// 1970-01-01 whose nanoseconds carry the errno: on an unnamed (O_TMPFILE)
// temp nobody else looks at that, and the opener, which checks it at
// commit, discards the temp then.
#include "handlers.hpp"

#include "sysio.hpp"

#include <sys/stat.h>

#include <fcntl.h>

namespace wrap_lockfile::shim {

namespace {

// The errno a mark carries (1..4095), else 0: a program that sets the
// sticky bit and an access time of exactly 1970-01-01 (touch -d @0, cp -p,
// tar -x of such a file) has written nothing wrong.
int mark_of(const struct stat &st) {
    if (!(st.st_mode & S_ISVTX) || st.st_atim.tv_sec != 0) return 0;
    long e = st.st_atim.tv_nsec;
    return e > 0 && e < 4096 ? static_cast<int>(e) : 0;
}

}  // namespace

void report_child_error(int fd, int error) {
    struct stat st;
    // Only an unnamed temp: once committed (linked) it is the user's file,
    // whose mode and times are not ours to touch.
    if (sys::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 0) return;
    // The first error stays: a write()'s ENOSPC is more than the EIO that a
    // stream's error flag says later.
    if (mark_of(st)) return;
    int saved = errno;
    struct timespec times[2] = {{0, error > 0 && error < 4096 ? error : EIO}, {0, UTIME_OMIT}};
    (void)sys::call(SYS_fchmod, fd, static_cast<long>((st.st_mode & 07777) | S_ISVTX));
    (void)sys::call(SYS_utimensat, fd, 0, sys::arg(times), 0);
    errno = saved;
}

int child_error(int fd) {
    struct stat st;
    return sys::fstat(fd, &st) == 0 ? mark_of(st) : 0;
}

}  // namespace wrap_lockfile::shim
