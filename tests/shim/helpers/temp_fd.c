/* temp_fd cloexec|plain (regressions_test.sh, check 13): opens t.txt for
 * writing and prints what the program got: the descriptor, the lowest free
 * number before the open, FD_CLOEXEC, the link count and inode of the open
 * file, whether this file system has O_TMPFILE, and whether t.txt still held
 * its old content while the replacement was pending. Then writes "new\n" and
 * closes. Exit: 0; 10-15 a call failed. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int cloexec = argc > 1 && strcmp(argv[1], "cloexec") == 0;
    int probe = open(".", O_TMPFILE | O_RDWR, 0600);
    int tmpfile = probe >= 0;
    if (probe >= 0) close(probe);
    int want = fcntl(0, F_DUPFD, 0);
    if (want < 0) return 10;
    close(want);
    int fd = open("t.txt", O_WRONLY | O_TRUNC | (cloexec ? O_CLOEXEC : 0));
    if (fd < 0) { perror("open t.txt"); return 11; }
    int fdflags = fcntl(fd, F_GETFD);
    if (fdflags < 0) return 12;
    if (write(fd, "new\n", 4) != 4) return 13;
    /* The descriptor's file and t.txt as the file system has them, seen
       without the shim (this process sees t.txt as the file it writes). */
    char cmd[128], buf[64] = "";
    long nlink = -1;
    unsigned long ino = 0;
    snprintf(cmd, sizeof cmd, "env -u LD_PRELOAD stat -L -c '%%h %%i' /proc/%d/fd/%d", (int)getpid(), fd);
    FILE *p = popen(cmd, "r");
    if (!p || fscanf(p, "%ld %lu", &nlink, &ino) != 2) return 15;
    pclose(p);
    p = popen("env -u LD_PRELOAD cat t.txt", "r");
    size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    if (p) pclose(p);
    int old = n == 4 && memcmp(buf, "old\n", 4) == 0;
    printf("%d %d %d %ld %lu %d %d\n", fd, want, (fdflags & FD_CLOEXEC) != 0, nlink, ino, tmpfile, old);
    fflush(stdout);
    if (close(fd) != 0) { perror("close t.txt"); return 14; }
    return 0;
}
