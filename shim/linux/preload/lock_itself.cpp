// A lock the program takes on a matched file it opened (flock, lockf,
// fcntl's F_SETLK family): flock(1)'s `( flock 9; ... ) 9>>counter.lock`,
// with a rule that covers the directory. On a pending replacement's
// descriptor the lock would be taken on the temp, which nobody else sees,
// and the commit would put a new inode at the name: plain processes locking
// the real file, and this one, would exclude nobody. A descriptor the
// program has written nothing into, of a file that is empty (a lock file),
// becomes the file itself before the lock is taken, if it exists: opened
// as the program opened it, at its number, and the replacement dropped. Nothing is lost:
// both are empty. Anything else (content, another handle of it) stays a
// replacement, as before.
#include "fd_table.hpp"
#include "handlers.hpp"
#include "messages.hpp"

#include "shim_entry.hpp"
#include "sysio.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>

namespace wrap_lockfile::shim {

namespace {

// The target itself, opened as the program opened it (the resolved name,
// never through a symlink put there since), or -1: it must still be the
// empty inode looked at under the lock.
int open_target(const wlf_file *f, int fd) {
    struct stat temp, old, now;
    if (sys::fstat(fd, &temp) != 0 || temp.st_size != 0) return -1;
    // Only an existing file: the descriptor has shown its identity all
    // along (identity.hpp), which stays. A new file's descriptor has shown
    // the temp's, and a program may have noted it (SQLite takes a changed
    // inode for a database moved away: "readonly database").
    if (!detail::file_old_target(f, &old) || old.st_size != 0 || !detail::file_target_still_looked_at(f)) return -1;
    int flags = detail::file_open_flags(f) & ~(O_CLOEXEC | O_CREAT | O_EXCL);
    int real = sys::open(wlf_file_target(f), flags | O_NOFOLLOW | O_CLOEXEC);
    if (real < 0) return -1;
    if (sys::fstat(real, &now) != 0 || now.st_size != 0 || now.st_dev != old.st_dev || now.st_ino != old.st_ino) {
        sys::close(real);
        return -1;
    }
    return real;
}

}  // namespace

void lock_file_itself(int fd) {
    int saved = errno;
    char target[WLF_PATH_MAX];
    Entry *last;
    {
        Guard g;
        Entry *e = entry_of(g_fds[fd].load());
        if (!e || e->opener != getpid() || e->refs != 1 || wlf_file_kind(e->file) != WLF_COMMIT_RENAME) {
            errno = saved;
            return;
        }
        int real = open_target(e->file, fd);
        int fdflags = real >= 0 ? sys::fcntl(fd, F_GETFD) : -1;
        // The program's number names the file from now on (the temp's
        // handle goes; the library's own copy of it goes with the drop).
        if (fdflags < 0 || sys::dup3(real, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
            if (real >= 0) sys::close(real);
            errno = saved;
            return;
        }
        sys::close(real);
        snprintf(target, sizeof target, "%s", target_of(e));
        last = detach(fd);
    }
    discard_detached(last);
    log_line("wrap_lockfile: '%s' is locked by the program: %s\n", target, "it has the file itself, not a replacement");
    errno = saved;
}

}  // namespace wrap_lockfile::shim
