/* dup2_internal TARGET [full]: opens TARGET for writing, finds the shim's
   lock descriptor (the one naming TARGET.lock), leaves no free number at or
   above the lowest descriptor the shim keeps (RLIMIT_NOFILE; with "full", no
   free number at all: the rest filled with /dev/null), then dup2()s stdout
   onto the lock descriptor, as a shell's `exec 768>&1` would. Prints
   "lock N" and "dup2: ok" or "dup2: ERR", writes "new\n" and closes TARGET.
   Exit: 0, 1 when a call other than dup2 failed, 77 when no lock descriptor
   was found. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) return 2;
    char lock[PATH_MAX];
    if (!realpath(".", lock)) return 1;
    snprintf(lock + strlen(lock), sizeof lock - strlen(lock), "/%s.lock", argv[1]);
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    int lock_fd = -1, highest = -1;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return 1;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        int n = atoi(e->d_name);
        char proc[64], link[PATH_MAX];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", n);
        ssize_t len = readlink(proc, link, sizeof link - 1);
        if (len < 0) continue;
        link[len] = '\0';
        if (!strcmp(link, lock)) lock_fd = n;
        if (n > highest && n != dirfd(d)) highest = n;
    }
    closedir(d);
    if (lock_fd < 0) {
        printf("no descriptor names %s\n", lock);
        return 77;
    }
    printf("lock %d\n", lock_fd);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1;
    rl.rlim_cur = (rlim_t)highest + 1;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("setrlimit");
        return 1;
    }
    if (argc == 3)
        while (open("/dev/null", O_RDONLY) >= 0) {
        }
    if (dup2(1, lock_fd) < 0)
        printf("dup2: %s\n", strerror(errno));
    else
        printf("dup2: ok\n");
    fflush(stdout);
    if (write(fd, "new\n", 4) != 4 || close(fd) != 0) {
        perror(argv[1]);
        return 1;
    }
    return 0;
}
