/* exit_write MODE FILE: writes "new\n" into FILE with write(), puts
 * "buffered\n" into a stdio stream on FILE without flushing it, then ends
 * without normal exit processing:
 *   _exit    _exit(3) from main
 *   _Exit    _Exit(3) from main
 *   signal   _exit(3) from a SIGUSR1 handler (raised while main waits in
 *            sigsuspend, outside the shim)
 * A plain run leaves FILE = "new\n" (what went through write()) and exit
 * status 3; under the shim the replacement must give the same. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void on_usr1(int sig) {
    (void)sig;
    _exit(3);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: exit_write _exit|_Exit|signal FILE\n");
        return 2;
    }
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "new\n", 4) != 4) {
        perror(argv[2]);
        return 2;
    }
    FILE *fp = fdopen(dup(fd), "a");
    if (!fp || fputs("buffered\n", fp) == EOF) return 2; /* stays in the buffer */
    if (strcmp(argv[1], "_exit") == 0) _exit(3);
    if (strcmp(argv[1], "_Exit") == 0) _Exit(3);
    if (strcmp(argv[1], "signal") != 0) return 2;
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    if (sigaction(SIGUSR1, &sa, NULL) != 0 || sigprocmask(SIG_BLOCK, &block, &old) != 0 || kill(getpid(), SIGUSR1) != 0)
        return 2;
    sigsuspend(&old); /* the handler runs here and never returns */
    return 2;
}
