/* dup2_onto_shim_fd temp|lock|full|full-write|probe (regressions_test.sh,
 * checks 6, 33, 34 and 36):
 * opens other.dat and target.txt (matched, O_TRUNC), finds the shim's own
 * descriptor for the temp ("temp": same inode as the program's fd) or the
 * lock ("lock", "full": a link ending in target.txt.lock), and dup2()s the
 * unrelated file onto it, then closes target.txt.
 * temp, lock: the shim's descriptors sit from 700 up; "new content\n" is
 * written before the dup2.
 full: a shell's redirection when no number is free: the open-file limit
 * is lowered to 16 first (the shim's descriptors then sit among the
 * program's), every free number is taken (dups of other.dat), and
 * target.txt's descriptor, nothing written, is dup2()ed onto the lock's
 * number, which the kernel would do (it needs no new number) and the shim
 * cannot: its lock has nowhere to go.
 * Prints "dup2 <result> <errno> close <result>" for full.
 * full-write: as full, but the program goes on after the refused dup2 and
 * writes "new content\n" into target.txt's descriptor before closing it
 * (the plain run's dup2 succeeds and the file ends up with that line).
 * probe: the lock's and the temp's numbers (from 700 up), which the program
 * never opened, asked as a program asks whether a number is open:
 * fcntl(F_GETFD), fcntl(F_DUPFD), dup, dup2 from it, and the calls that
 * would change it (write, ftruncate, close); prints
 * "<call> <result> <errno>" for each, "closed" when all failed with EBADF
 * as on a number that is not open.
 * Exit: 0; 11 when no such descriptor was found; 10, 12, 13 a call failed;
 * 14 (full) the dup2 succeeded: a number was free after all. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
static int ends_with(const char *s, const char *tail) {
    size_t len = strlen(s), t = strlen(tail);
    return len >= t && strcmp(s + len - t, tail) == 0;
}
static int report(const char *call, int r, int *closed) {
    int err = r < 0 ? errno : 0;
    printf("%s %d %s\n", call, r, err ? strerrorname_np(err) : "0");
    if (r >= 0 || err != EBADF) *closed = 0;
    return r;
}
static int probe(void) {
    int fd = open("target.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); return 10; }
    struct stat me, st;
    fstat(fd, &me);
    int found = 0, closed = 1;
    for (int n = 700; n < 1024; ++n) {
        char p[64], l[4096];
        snprintf(p, sizeof p, "/proc/self/fd/%d", n);
        ssize_t k = readlink(p, l, sizeof l - 1);
        if (k <= 0) continue;
        l[k] = 0;
        if (!ends_with(l, "target.txt.lock") && !(stat(p, &st) == 0 && st.st_ino == me.st_ino && st.st_dev == me.st_dev))
            continue;
        ++found;
        report("F_GETFD", fcntl(n, F_GETFD), &closed);
        report("F_DUPFD", fcntl(n, F_DUPFD, 10), &closed);
        report("dup", dup(n), &closed);
        report("dup2", dup2(n, 100), &closed);
        report("write", (int)write(n, "stale\n", 6), &closed);
        report("ftruncate", ftruncate(n, 0), &closed);
        report("close", close(n), &closed);
    }
    if (found != 2) { fprintf(stderr, "found %d of the shim's 2 descriptors\n", found); return 11; }
    if (closed) printf("closed\n");
    if (write(fd, "new content\n", 12) != 12) return 12;
    close(fd);
    return 0;
}
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int full_write = strcmp(argv[1], "full-write") == 0;
    int full = full_write || strcmp(argv[1], "full") == 0;
    if (strcmp(argv[1], "probe") == 0) return probe();
    int lock = full || strcmp(argv[1], "lock") == 0;
    if (full) {
        struct rlimit rl = {16, 16};
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) { perror("setrlimit"); return 10; }
    }
    int o = open("other.dat", O_RDWR);
    int fd = open("target.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (o < 0 || fd < 0) { perror("open"); return 10; }
    struct stat me, st;
    fstat(fd, &me);
    int victim = -1;
    DIR *d = opendir("/proc/self/fd");
    if (!d) { perror("opendir"); return 10; }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int n = atoi(e->d_name);
        if (n == dirfd(d) || n == fd || n == o || n < (full ? 3 : 700)) continue;
        char p[64], l[4096];
        snprintf(p, sizeof p, "/proc/self/fd/%d", n);
        ssize_t k = readlink(p, l, sizeof l - 1);
        if (k <= 0) continue;
        l[k] = 0;
        if (lock) {
            if (ends_with(l, "target.txt.lock")) victim = n;
        } else if (fstat(n, &st) == 0 && st.st_ino == me.st_ino && st.st_dev == me.st_dev) {
            victim = n;
        }
    }
    closedir(d);
    if (victim < 0) { fprintf(stderr, "no internal %s descriptor found\n", argv[1]); return 11; }
    if (full) {
        while (dup(o) >= 0) {
        }
        int r = dup2(fd, victim);
        int err = r < 0 ? errno : 0;
        if (full_write && write(fd, "new content\n", 12) != 12) return 12;
        int c = close(fd);
        printf("dup2 %d %s close %d\n", r, err ? strerrorname_np(err) : "0", c);
        return r < 0 ? 0 : 14;
    }
    if (write(fd, "new content\n", 12) != 12) return 12;
    if (dup2(o, victim) != victim) { perror("dup2"); return 13; }
    close(fd);
    return 0;
}
