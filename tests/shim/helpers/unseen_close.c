/* unseen_close MODE: writes "A\n" to a.json and "B\n" to b.json in the
   current directory, closing each in a way libc does not show:
     syscall  close with syscall(SYS_close), as libuv does;
     raw      close with the system call instruction itself, unseen by any
              interposer; b.json's open then reuses the number;
     reuse    raw close of a.json, then a read-only open of another file takes
              the number; a shell looks at a.json right then (into a.seen);
     append   three O_APPEND opens of c.json, each written with one line and
              closed raw (each open's number is the last one's);
     pipe     raw close of a.json, then pipe() takes the number (the shim sees
              no open); b.json's open follows;
     sysdup   a.json opened, duplicated with syscall(SYS_dup) and the original
              closed with close(): the lock stays held ("lock: held"); "A\n"
              goes through the duplicate, closed with syscall(SYS_close);
     openat2  a.json opened with syscall(SYS_openat2), no resolve flags; then
              l.json (a symlink to b.json) with RESOLVE_NO_SYMLINKS, which
              the kernel refuses: prints "openat2 link: ERR";
     rename   "R\n" written to n.tmp (unmatched), then syscall(SYS_rename)
              onto a.json: prints "rename: ok" or "rename: ERR";
     execve   "A\n" written to a.json, left open, then syscall(SYS_execve)
              of /bin/true, whose exit commits it;
     internal "A\n" written to a.json, then the shim's own lock descriptor
              is closed raw and dup() is called until it returns that number;
              prints "lock N" and "close: ok" or "close: ERR" for a.json.
   After each close of a.json (syscall mode) a child checks that a.json.lock
   is free (absent, or flock LOCK_NB succeeds) and prints "lock: free" or
   "lock: held". Exit: 0, or 1 when a call failed (perror). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "raw_close.h"

static int write_file(const char *name, int flags, const char *text, int how) {
    int fd = open(name, O_WRONLY | O_CREAT | flags, 0644);
    if (fd < 0) {
        perror(name);
        exit(1);
    }
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        perror("write");
        exit(1);
    }
    long rc = how ? raw_close(fd) : syscall(SYS_close, fd);
    if (rc != 0) {
        fprintf(stderr, "close %s: %ld\n", name, rc);
        exit(1);
    }
    return fd;
}

static void lock_state(const char *lock) {
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(lock, O_RDONLY | O_NOFOLLOW);
        if (fd < 0) _exit(errno == ENOENT ? 0 : 2);
        _exit(flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("lock: %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "free" : "held");
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    const char *mode = argv[1];
    if (!strcmp(mode, "syscall")) {
        write_file("a.json", O_TRUNC, "A\n", 0);
        lock_state("a.json.lock");
        write_file("b.json", O_TRUNC, "B\n", 0);
    } else if (!strcmp(mode, "raw")) {
        int first = write_file("a.json", O_TRUNC, "A\n", 1);
        int second = write_file("b.json", O_TRUNC, "B\n", 1);
        if (first != second) fprintf(stderr, "numbers differ: %d %d\n", first, second);
    } else if (!strcmp(mode, "reuse")) {
        int first = write_file("a.json", O_TRUNC, "A\n", 1);
        int fd = open("/dev/null", O_RDONLY);
        if (fd != first) fprintf(stderr, "numbers differ: %d %d\n", first, fd);
        if (system("cat a.json > a.seen") != 0) return 1;
        close(fd);
    } else if (!strcmp(mode, "append")) {
        write_file("c.json", O_APPEND, "1\n", 1);
        write_file("c.json", O_APPEND, "2\n", 1);
        write_file("c.json", O_APPEND, "3\n", 1);
    } else if (!strcmp(mode, "pipe")) {
        int first = write_file("a.json", O_TRUNC, "A\n", 1);
        int p[2];
        if (pipe(p) != 0) return 1;
        if (p[0] != first) fprintf(stderr, "numbers differ: %d %d\n", first, p[0]);
        write_file("b.json", O_TRUNC, "B\n", 1);
    } else if (!strcmp(mode, "sysdup")) {
        int fd = open("a.json", O_WRONLY | O_TRUNC);
        int dup = fd < 0 ? -1 : (int)syscall(SYS_dup, fd);
        if (dup < 0 || close(fd) != 0) {
            perror("sysdup");
            return 1;
        }
        lock_state("a.json.lock");
        if (write(dup, "A\n", 2) != 2 || syscall(SYS_close, dup) != 0) {
            perror("sysdup");
            return 1;
        }
        lock_state("a.json.lock");
    } else if (!strcmp(mode, "openat2")) {
        struct open_how how = {O_WRONLY | O_TRUNC, 0, 0};
        int fd = (int)syscall(SYS_openat2, AT_FDCWD, "a.json", &how, sizeof how);
        if (fd < 0 || write(fd, "A\n", 2) != 2 || syscall(SYS_close, fd) != 0) {
            perror("openat2");
            return 1;
        }
        how.resolve = RESOLVE_NO_SYMLINKS;
        fd = (int)syscall(SYS_openat2, AT_FDCWD, "l.json", &how, sizeof how);
        printf("openat2 link: %s\n", fd < 0 ? strerror(errno) : "opened");
        if (fd >= 0) close(fd);
    } else if (!strcmp(mode, "rename")) {
        write_file("n.tmp", O_TRUNC, "R\n", 0);
        printf("rename: %s\n", syscall(SYS_rename, "n.tmp", "a.json") == 0 ? "ok" : strerror(errno));
    } else if (!strcmp(mode, "execve")) {
        int fd = open("a.json", O_WRONLY | O_TRUNC);
        if (fd < 0 || write(fd, "A\n", 2) != 2) {
            perror("execve");
            return 1;
        }
        char *args[] = {"true", NULL};
        extern char **environ;
        syscall(SYS_execve, "/bin/true", args, environ);
        perror("execve");
        return 1;
    } else if (!strcmp(mode, "internal")) {
        int fd = open("a.json", O_WRONLY | O_TRUNC);
        if (fd < 0 || write(fd, "A\n", 2) != 2) {
            perror("internal");
            return 1;
        }
        char lock[PATH_MAX], link[PATH_MAX], proc[300];
        if (!realpath("a.json", lock)) return 1;
        strcat(lock, ".lock");
        int lock_fd = -1;
        DIR *d = opendir("/proc/self/fd");
        for (struct dirent *e; d && (e = readdir(d));) {
            snprintf(proc, sizeof proc, "/proc/self/fd/%s", e->d_name);
            ssize_t n = readlink(proc, link, sizeof link - 1);
            if (n > 0 && (link[n] = '\0', !strcmp(link, lock))) lock_fd = atoi(e->d_name);
        }
        if (d) closedir(d);
        if (lock_fd < 0) return 77;
        printf("lock %d\n", lock_fd);
        raw_close(lock_fd);
        int got = -1, count = 0;
        while (count++ < 4096 && (got = dup(0)) >= 0 && got != lock_fd) {
        }
        printf("close: %s\n", close(fd) == 0 ? "ok" : strerror(errno));
    } else {
        return 2;
    }
    return 0;
}
