/* pending_fds TARGET: opens TARGET for writing and prints how many
   descriptors the process has (/proc/self/fd) before ("before N") and while
   the write is pending ("pending N"), then writes and closes it. Exit 0, or
   1 when a call failed. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') ++n;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    printf("before %d\n", count_fds());
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    printf("pending %d\n", count_fds());
    if (write(fd, "new\n", 4) != 4 || close(fd) != 0) {
        perror(argv[1]);
        return 1;
    }
    printf("after %d\n", count_fds());
    return 0;
}
