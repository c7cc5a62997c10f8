/* Writes through openat(dirfd, "f.dat", ...) after every way a directory
 * descriptor's number can come to name another directory, for
 * dirfd_cache_test.sh: the shim caches the path behind a directory
 * descriptor, and a stale entry must never send a write to the directory
 * the number named before.
 *
 *   dirfd_writes DIR   uses DIR/a ... DIR/j (created here). For each case
 *                      it first writes through the old directory's number
 *                      (filling the cache), then makes the number name a
 *                      new directory, writes "<case>\n" through it, and
 *                      the test checks where each write landed.
 *
 * Cases (each writes <dir>/f.dat):
 *   close       close(N), open b: the number comes back for b
 *   dup2        dup2(open c, N)
 *   dup3        dup3(open d, N, 0)
 *   close_range close_range(N, N, 0), open e
 *   raw         close(N) by the system call instruction (no interposer sees
 *               it), open f
 *   closedir    fdopendir(N) + closedir (libc closes internally), open g
 *   rename      the directory h behind N is renamed to h2 and a new h made:
 *               the write must land in h2, where N points
 * Prints "numbers differ CASE" and exits 3 if the kernel did not give back
 * the same number (the test then cannot check that case).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "raw_close.h"

static const char *root;

static void die(const char *what) {
    fprintf(stderr, "dirfd_writes: %s: %s\n", what, strerror(errno));
    exit(2);
}

static int open_dir(const char *name) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", root, name);
    if (mkdir(p, 0755) != 0 && errno != EEXIST) die(p);
    int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) die(p);
    return fd;
}

static void write_at(int dirfd, const char *text) {
    int fd = openat(dirfd, "f.dat", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die("openat f.dat");
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n) die("write");
    if (close(fd) != 0) die("close f.dat");
}

static void same_number(int got, int want, const char *name) {
    if (got != want) {
        printf("numbers differ %s\n", name);
        exit(3);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: dirfd_writes DIR\n");
        return 2;
    }
    root = argv[1];
    int n = open_dir("a");
    write_at(n, "a\n");  /* fills the cache for n */

    close(n);
    same_number(open_dir("b"), n, "close");
    write_at(n, "close\n");

    int c = open_dir("c");
    if (dup2(c, n) != n) die("dup2");
    close(c);
    write_at(n, "dup2\n");

    int d = open_dir("d");
    if (dup3(d, n, O_CLOEXEC) != n) die("dup3");
    close(d);
    write_at(n, "dup3\n");

    if (close_range((unsigned)n, (unsigned)n, 0) != 0) die("close_range");
    same_number(open_dir("e"), n, "close_range");
    write_at(n, "close_range\n");

    if (raw_close(n) != 0) die("raw close");
    same_number(open_dir("f"), n, "raw");
    write_at(n, "raw\n");

    DIR *dir = fdopendir(n);
    if (!dir) die("fdopendir");
    closedir(dir);
    same_number(open_dir("g"), n, "closedir");
    write_at(n, "closedir\n");

    close(n);
    same_number(open_dir("h"), n, "rename");
    write_at(n, "h\n");
    char from[4096], to[4096];
    snprintf(from, sizeof from, "%s/h", root);
    snprintf(to, sizeof to, "%s/h2", root);
    if (rename(from, to) != 0) die("rename h h2");
    if (mkdir(from, 0755) != 0) die("mkdir h");
    write_at(n, "rename\n");
    close(n);
    return 0;
}
