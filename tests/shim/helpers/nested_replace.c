/* nested_replace (regressions_test.sh, check 7): two pending replacements of
 * n.txt in one thread; the first is committed. Is the lock still held (asked
 * from another process, flock -n) before and after a close loop that spares
 * the second one's descriptor? Then "B\n" through the second.
 * Exit: 0, or the bits 2 (lock free after the first commit) and 4 (free
 * after the close loop); 10-13 a call failed. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static int lock_free(void) {
    int st = system("flock -n n.txt.lock true");
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}
int main(void) {
    int a = open("n.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int b = open("n.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (a < 0 || b < 0) return 10;
    if (write(a, "A\n", 2) != 2 || close(a) != 0) return 11;
    int rc = 0;
    if (lock_free()) rc |= 2;
    for (int fd = 3; fd < 1024; fd++)
        if (fd != b) close(fd);
    if (lock_free()) rc |= 4;
    if (write(b, "B\n", 2) != 2) return 12;
    if (close(b) != 0) return 13;
    return rc;
}
