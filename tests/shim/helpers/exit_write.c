/* exit_write MODE FILE: writes "new\n" into FILE with write(), puts
 * "buffered\n" into a stdio stream on FILE without flushing it, then ends
 * without normal exit processing:
 *   _exit    _exit(3) from main
 *   _Exit    _Exit(3) from main
 *   signal   _exit(3) from a SIGUSR1 handler (raised while main waits in
 *            sigsuspend, outside the shim)
 * A plain run leaves FILE = "new\n" (what went through write()) and exit
 * status 3; under the shim the replacement must give the same.
 *
 * exit_write busy FILE LINKED: FILE pending as above, then LINKED (a
 * hard-linked file: the shim stages it and writes it in place at its close)
 * gets 64 KiB, RLIMIT_FSIZE drops to 4 KiB and LINKED is closed: the shim's
 * in-place commit raises SIGXFSZ inside the shim, whose handler calls
 * _exit(3) there. The shim must not commit FILE then (it was interrupted):
 * FILE keeps its old content and no FILE.lock stays. Under the shim only. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void on_usr1(int sig) {
    (void)sig;
    _exit(3);
}

static int busy(const char *linked) {
    static char block[65536];
    memset(block, 'x', sizeof block);
    int fd = open(linked, O_WRONLY | O_TRUNC);
    if (fd < 0 || write(fd, block, sizeof block) != (ssize_t)sizeof block) return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    struct rlimit lim = {4096, RLIM_INFINITY};
    if (sigaction(SIGXFSZ, &sa, NULL) != 0 || setrlimit(RLIMIT_FSIZE, &lim) != 0) return 2;
    close(fd); /* the handler runs in here and never returns */
    return 4;
}

int main(int argc, char **argv) {
    if (argc != 3 && !(argc == 4 && strcmp(argv[1], "busy") == 0)) {
        fprintf(stderr, "usage: exit_write _exit|_Exit|signal FILE | busy FILE LINKED\n");
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
    if (strcmp(argv[1], "busy") == 0) return busy(argv[3]);
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
