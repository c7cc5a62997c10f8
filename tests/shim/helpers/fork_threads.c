/* fork_threads N (regressions_test.sh, check 12): spinning threads
 * open/close matched files while the main thread forks children that each
 * open (and commit) c.txt; a child stuck for 3 s (a lock held at fork by
 * another thread) is killed by SIGALRM and reported. At least N children,
 * more until 8 s have passed: the window is narrow (a hang showed within
 * ~500 forks). Exit: 0; 2 a child failed (printed); 10, 11 a call failed. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static volatile int stop;
static void *spin(void *arg) {
    const char *name = arg;
    while (!stop) {
        int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) close(fd);
    }
    return NULL;
}
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int n = atoi(argv[1]);
    static char *names[] = {"t1.txt", "t2.txt", "t3.txt"};
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, spin, names[i]);
    time_t start = time(NULL);
    for (int i = 0; i < n || time(NULL) - start < 8; i++) {
        pid_t p = fork();
        if (p < 0) return 10;
        if (p == 0) {
            alarm(3);
            int fd = open("c.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || write(fd, "child\n", 6) != 6 || close(fd) != 0) _exit(1);
            _exit(0);
        }
        int st;
        if (waitpid(p, &st, 0) != p) return 11;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            printf("child %d: %s %d\n", i, WIFSIGNALED(st) ? "killed by signal" : "exit status",
                   WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            return 2;
        }
    }
    stop = 1;
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    return 0;
}
