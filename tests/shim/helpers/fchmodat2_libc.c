/* libfchmodat2_libc.so (staged_meta_test.sh): the fchmodat of glibc 2.39
 * and later, for a system with an older one. From 2.39 glibc hands the
 * flags it used to refuse (AT_EMPTY_PATH: EINVAL) to fchmodat2 (Linux 6.6),
 * so fchmodat(fd, "", mode, AT_EMPTY_PATH) changes the file behind fd.
 * Preloaded after the shim, it stands where libc's fchmodat would: the
 * shim's interposer reaches it as "the next fchmodat". Its system calls go
 * through libc's own syscall(), which the shim never sees. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define NR_FCHMODAT2 452 /* x86_64 and aarch64 alike */

int fchmodat(int fd, const char *path, mode_t mode, int flags) {
    long (*sys)(long, ...) = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    if (!sys) {
        errno = ENOSYS;
        return -1;
    }
    if (flags == 0) return (int)sys(SYS_fchmodat, (long)fd, path, (long)mode);
    return (int)sys(NR_FCHMODAT2, (long)fd, path, (long)mode, (long)flags);
}
