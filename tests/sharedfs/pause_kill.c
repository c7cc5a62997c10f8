/* LD_PRELOAD interposer for dotlock_recheck_test.sh: the first
 * kill(WLF_PAUSE_KILL_PID, 0) of the process stops at a barrier, so that a
 * test can change the lock between the breaker's liveness check and what it
 * does next, deterministically (the issue reproduced the race by delaying
 * that kill by 500 ms).
 *   WLF_PAUSE_KILL_PID   the pid whose first signal-0 probe pauses
 *   WLF_PAUSE_KILL_FIFO  a FIFO: the interposer opens it for writing (the
 *                        test's reader learns that the probe has begun),
 *                        then waits until the test closes its end (POLLERR
 *                        on the write side), and only then does the real
 *                        kill().
 * Every other kill() goes straight through. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int paused;

static void barrier(const char *fifo) {
    /* Blocks until the test opens the FIFO for reading: "paused". */
    int fd = open(fifo, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    /* Then until the test closes its end: "go on". */
    struct pollfd p = {fd, 0, 0};
    while (poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
    close(fd);
}

int kill(pid_t pid, int sig) {
    static int (*real)(pid_t, int);
    if (!real) real = (int (*)(pid_t, int))dlsym(RTLD_NEXT, "kill");
    const char *want = getenv("WLF_PAUSE_KILL_PID");
    const char *fifo = getenv("WLF_PAUSE_KILL_FIFO");
    if (!paused && sig == 0 && want && fifo && atol(want) == (long)pid) {
        paused = 1;
        int saved = errno;
        barrier(fifo);
        errno = saved;
    }
    return real(pid, sig);
}
