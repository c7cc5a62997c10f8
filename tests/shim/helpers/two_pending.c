/* two_pending (regressions_test.sh, check 8): started as
 * `exec two_pending > f.txt 2> f.txt`, so fds 1 and 2 are two pending
 * replacements sharing one lock. A descriptor of the program's own, put on
 * the number of the lock's fd once fd 1 is committed, must survive the
 * commit of fd 2.
 * Exit: 0; 2 or 3 the program's descriptor was closed or replaced under it;
 * 10-12 a call failed. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    int lockfd = -1;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[320], l[4096];
        snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(p, l, sizeof l - 1);
        if (n > 0) { l[n] = 0; if (strstr(l, "f.txt.lock")) lockfd = atoi(e->d_name); }
    }
    closedir(d);
    if (write(1, "out\n", 4) != 4 || write(2, "err\n", 4) != 4) return 10;
    close(1);
    int mine = open("mine.dat", O_RDONLY);
    if (mine < 0) return 11;
    int moved = fcntl(mine, F_DUPFD, lockfd >= 0 ? lockfd : 700);
    close(mine);
    struct stat before, after;
    if (moved < 0 || fstat(moved, &before) != 0) return 12;
    close(2);
    if (fstat(moved, &after) != 0) return 2;  /* closed under the program */
    if (after.st_ino != before.st_ino || after.st_dev != before.st_dev) return 3;
    return 0;
}
