/* dup2_onto_shim_fd temp|lock (regressions_test.sh, check 6): opens
 * other.dat and target.txt (matched), finds the shim's own descriptor (>= 700)
 * for the temp ("temp": same inode as the program's fd) or the lock ("lock":
 * a link ending in target.txt.lock), writes "new content\n", dup2()s the
 * unrelated file onto that descriptor, then closes target.txt.
 * Exit: 0; 11 when no such descriptor was found; 10, 12, 13 a call failed. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int lock = strcmp(argv[1], "lock") == 0;
    int o = open("other.dat", O_RDWR);
    int fd = open("target.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (o < 0 || fd < 0) { perror("open"); return 10; }
    struct stat me, st;
    fstat(fd, &me);
    int victim = -1;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while ((e = readdir(d))) {
        int n = atoi(e->d_name);
        if (n < 700 || n == dirfd(d)) continue;
        char p[64], l[4096];
        snprintf(p, sizeof p, "/proc/self/fd/%d", n);
        ssize_t k = readlink(p, l, sizeof l - 1);
        if (k <= 0) continue;
        l[k] = 0;
        if (lock) {
            size_t len = strlen(l), s = strlen("target.txt.lock");
            if (len >= s && strcmp(l + len - s, "target.txt.lock") == 0) victim = n;
        } else if (fstat(n, &st) == 0 && st.st_ino == me.st_ino && st.st_dev == me.st_dev) {
            victim = n;
        }
    }
    closedir(d);
    if (victim < 0) { fprintf(stderr, "no internal %s descriptor found\n", argv[1]); return 11; }
    if (write(fd, "new content\n", 12) != 12) return 12;
    if (dup2(o, victim) != victim) { perror("dup2"); return 13; }
    close(fd);
    return 0;
}
