/* data_move CALL TARGET SOURCE: writes SOURCE's content into TARGET (opened
   O_WRONLY|O_CREAT|O_TRUNC) with one way of moving data, as programs do,
   then closes TARGET. Built without _FILE_OFFSET_BITS so that both the plain
   and the *64 entry points can be called by name.
   CALL: copy_file_range sendfile sendfile64 splice fallocate fallocate64
         posix_fallocate posix_fallocate64 ftruncate ftruncate64, or
         sys_copy_file_range sys_sendfile sys_splice sys_fallocate
         sys_ftruncate sys_write (the same through syscall(2)).
   The allocation and truncation calls grow TARGET to SOURCE's size times 4;
   ftruncate runs under RLIMIT_FSIZE = SOURCE's size (EFBIG, SIGXFSZ ignored).
   Prints "move: ERR" for the first error of the move and "close: ERR" when
   close fails. Exit: 0 all well, 1 the move failed, 2 usage or setup, 3 only
   close failed, 4 both. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int loop_move(const char *call, int in, int out) {
    int pipefd[2] = {-1, -1};
    if (!strcmp(call, "splice") || !strcmp(call, "sys_splice")) {
        if (pipe(pipefd) != 0) return errno;
    }
    for (;;) {
        ssize_t n;
        if (!strcmp(call, "copy_file_range"))
            n = copy_file_range(in, NULL, out, NULL, 1 << 20, 0);
        else if (!strcmp(call, "sys_copy_file_range"))
            n = syscall(SYS_copy_file_range, in, NULL, out, NULL, 1 << 20, 0);
        else if (!strcmp(call, "sendfile"))
            n = sendfile(out, in, NULL, 1 << 20);
        else if (!strcmp(call, "sendfile64"))
            n = sendfile64(out, in, NULL, 1 << 20);
        else if (!strcmp(call, "sys_sendfile"))
            n = syscall(SYS_sendfile, out, in, NULL, 1 << 20);
        else if (!strcmp(call, "sys_write")) {
            char buf[65536];
            n = read(in, buf, sizeof buf);
            if (n > 0) {
                ssize_t w = syscall(SYS_write, out, buf, n);
                if (w < 0) return errno;
                if (w < n) lseek(in, w - n, SEEK_CUR);  /* a short count: the rest goes next */
                n = w;
            }
        } else {
            /* splice: file -> pipe -> file */
            n = splice(in, NULL, pipefd[1], NULL, 65536, 0);
            if (n > 0) {
                ssize_t left = n;
                while (left > 0) {
                    ssize_t m = !strcmp(call, "splice") ? splice(pipefd[0], NULL, out, NULL, left, 0)
                                                        : syscall(SYS_splice, pipefd[0], NULL, out, NULL, left, 0);
                    if (m < 0) return errno;
                    left -= m;
                }
            }
        }
        if (n == 0) return 0;
        if (n < 0) return errno;
    }
}

static int grow(const char *call, int out, off_t size) {
    if (!strcmp(call, "fallocate")) return fallocate(out, 0, 0, size) ? errno : 0;
    if (!strcmp(call, "fallocate64")) return fallocate64(out, 0, 0, size) ? errno : 0;
    if (!strcmp(call, "sys_fallocate")) return syscall(SYS_fallocate, out, 0, 0L, (long)size) ? errno : 0;
    if (!strcmp(call, "posix_fallocate")) return posix_fallocate(out, 0, size);
    if (!strcmp(call, "posix_fallocate64")) return posix_fallocate64(out, 0, size);
    if (!strcmp(call, "ftruncate")) return ftruncate(out, size) ? errno : 0;
    if (!strcmp(call, "ftruncate64")) return ftruncate64(out, size) ? errno : 0;
    if (!strcmp(call, "sys_ftruncate")) return syscall(SYS_ftruncate, out, (long)size) ? errno : 0;
    return -1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: data_move CALL TARGET SOURCE\n");
        return 2;
    }
    const char *call = argv[1];
    int in = open(argv[3], O_RDONLY);
    struct stat st;
    if (in < 0 || fstat(in, &st) != 0) {
        perror(argv[3]);
        return 2;
    }
    int truncating = strstr(call, "ftruncate") != NULL;
    if (truncating) {
        struct rlimit rl = {(rlim_t)st.st_size, (rlim_t)st.st_size};
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) {
            perror("setrlimit");
            return 2;
        }
    }
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) {
        perror(argv[2]);
        return 2;
    }
    int err = grow(call, out, st.st_size * 4);
    if (err == -1) err = loop_move(call, in, out);
    if (err) printf("move: %s\n", strerror(err));
    int rc = close(out);
    if (rc != 0) printf("close: %s\n", strerror(errno));
    return (err ? 1 : 0) + (rc ? 3 : 0);
}
