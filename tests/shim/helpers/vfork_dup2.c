/* vfork_dup2 DIR (regressions_test.sh, check 47): the main thread opens
 * DIR/x with O_TRUNC (a pending replacement holding the shim's lock on
 * DIR/x.lock at descriptor L) and writes "one"; a vfork child dup2()s
 * /dev/null onto L and _exits. A second thread then opens DIR/x with O_TRUNC:
 * it must wait for the main thread's lock (/proc/locks shows it blocked
 * on x.lock) and write "two" after the main thread's commit. Then no
 * descriptor of x.lock may be left open.
 * Exit: 0; 3 the second writer got in while the lock was held; 4 it never
 * blocked; 5 a descriptor of x.lock left open after both commits; 10, 11 a
 * call failed. */

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char path[4096], lock_path[4096];
static atomic_int second_done;

// A descriptor of this process open on x.lock, or -1.
static int find_lock(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    struct dirent *e;
    char link[4096], p[300];
    int found = -1;
    while ((e = readdir(d))) {
        snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(p, link, sizeof link - 1);
        if (n <= 0) continue;
        link[n] = 0;
        if (strcmp(link, lock_path) == 0) found = atoi(e->d_name);
    }
    closedir(d);
    return found;
}

// Whether /proc/locks shows a waiter ("->") for a flock on (dev, ino).
static int waiter_on(dev_t dev, ino_t ino) {
    FILE *f = fopen("/proc/locks", "r");
    if (!f) return 0;
    char line[512], want[128];
    snprintf(want, sizeof want, " %02x:%02x:%lu ", major(dev), minor(dev), (unsigned long)ino);
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n') line[n - 1] = ' ';
        if (strstr(line, "->") && strstr(line, "FLOCK") && strstr(line, want)) found = 1;
    }
    fclose(f);
    return found;
}

static void *second(void *arg) {
    (void)arg;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "two\n", 4) != 4 || close(fd) != 0) perror(path);
    atomic_store(&second_done, 1);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    snprintf(path, sizeof path, "%s/x", argv[1]);
    snprintf(lock_path, sizeof lock_path, "%s/x.lock", argv[1]);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "one\n", 4) != 4) return 10;
    int lock = find_lock();
    struct stat ls;
    if (lock < 0 || stat(lock_path, &ls) != 0) return 11;
    int nul = open("/dev/null", O_WRONLY);
    if (nul < 0) return 10;
    pid_t pid = vfork();
    if (pid == 0) {
        dup2(nul, lock);
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, NULL, 0) != pid) return 10;
    pthread_t t;
    if (pthread_create(&t, NULL, second, NULL) != 0) return 10;
    int rc = 4;
    for (int i = 0; i < 2000 && rc == 4; ++i) {  // up to 20 s
        if (atomic_load(&second_done)) rc = 3;
        else if (waiter_on(ls.st_dev, ls.st_ino)) rc = 0;
        else nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    if (rc == 3) fprintf(stderr, "vfork_dup2: the second writer got in while the lock was held\n");
    if (close(fd) != 0) perror(path);
    pthread_join(t, NULL);
    if (rc == 0 && find_lock() >= 0) {
        fprintf(stderr, "vfork_dup2: a descriptor of %s is left open\n", lock_path);
        rc = 5;
    }
    return rc;
}
