/* thread_appends DIR N A R (regressions_test.sh, check 46): A threads each
 * append N lines "<thread> <i>" to DIR/x (open O_APPEND, one write, close)
 * while R threads rewrite DIR/y<thread> (O_TRUNC) 4N times: the library's
 * own locks come and go at the same descriptor numbers all the time, and
 * none of them is the program's. Exit: 0; 10 a call failed (printed). */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *dir;
static int lines;
static volatile int failed;

static void *append(void *arg) {
    long id = (long)arg;
    char path[4096], line[64];
    snprintf(path, sizeof path, "%s/x", dir);
    for (int i = 0; i < lines; ++i) {
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int n = snprintf(line, sizeof line, "%ld %d\n", id, i);
        if (fd < 0 || write(fd, line, (size_t)n) != n || close(fd) != 0) {
            perror(path);
            failed = 1;
        }
    }
    return NULL;
}

static void *rewrite(void *arg) {
    long id = (long)arg;
    char path[4096];
    snprintf(path, sizeof path, "%s/y%ld", dir, id);
    for (int i = 0; i < 4 * lines; ++i) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, "y\n", 2) != 2 || close(fd) != 0) {
            perror(path);
            failed = 1;
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) return 2;
    dir = argv[1];
    lines = atoi(argv[2]);
    int appenders = atoi(argv[3]), rewriters = atoi(argv[4]);
    pthread_t t[64];
    int n = 0;
    if (appenders + rewriters > 64) return 2;
    for (long i = 0; i < appenders; ++i)
        if (pthread_create(&t[n++], NULL, append, (void *)i) != 0) return 10;
    for (long i = 0; i < rewriters; ++i)
        if (pthread_create(&t[n++], NULL, rewrite, (void *)i) != 0) return 10;
    for (int i = 0; i < n; ++i) pthread_join(t[i], NULL);
    return failed ? 10 : 0;
}
