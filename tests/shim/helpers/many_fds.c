/* many_fds (regressions_test.sh, check 10): 250 descriptors of one pending
 * replacement of many.txt (3 and dups 4..253) handed over by exec to itself;
 * the new image closes 3..199 (many.txt must still be old), writes through
 * fd 250, closes the rest.
 * Exit: 0; 2 committed while descriptors were still open; 10-14 a call
 * failed. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc == 1) {
        int fd = open("many.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd != 3) return 10;
        if (write(fd, "first-half ", 11) != 11) return 11;
        for (int i = 0; i < 250; i++)
            if (dup(fd) < 0) return 12;
        execl(argv[0], argv[0], "child", (char *)0);
        return 13;
    }
    for (int fd = 3; fd < 200; fd++) close(fd);
    /* What the file system holds, seen without the shim (this process
       itself reads its own pending content). */
    char buf[64] = "";
    FILE *r = popen("env -u LD_PRELOAD cat many.txt", "r");
    size_t n = r ? fread(buf, 1, sizeof buf - 1, r) : 0;
    if (r) pclose(r);
    int rc = (n == 4 && memcmp(buf, "old\n", 4) == 0) ? 0 : 2;
    if (write(250, "second-half\n", 12) != 12) return 14;
    for (int fd = 200; fd < 254; fd++) close(fd);
    return rc;
}
