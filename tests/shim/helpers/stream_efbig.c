/* stream_efbig (regressions_test.sh, check 9): fdopen(open(big.txt,
 * O_WRONLY|O_TRUNC)), 9000 bytes buffered under RLIMIT_FSIZE 4096 (EFBIG,
 * SIGXFSZ ignored), exit 0 without fclose: the flush at exit fails, and the
 * old content must stay. Exit: 0; 10, 11 a call failed. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
int main(void) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {4096, 4096};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 10;
    static char buf[3000];
    memset(buf, 'n', sizeof buf);
    int fd = open("big.txt", O_WRONLY | O_TRUNC);
    FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!fp) return 11;
    for (int i = 0; i < 3; i++) fwrite(buf, 1, sizeof buf, fp);
    return 0;
}
