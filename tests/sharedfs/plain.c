/* Shared-fs test client with plain system calls only (no library), for runs
 * under the shim and for readers.
 *   sharedfs_plain rmw FILE NAME N
 *       N read-modify-writes of FILE (record.h content): open O_RDWR, read,
 *       write the next record, ftruncate, close. Under `atomically` each one
 *       is a locked atomic replacement. Prints "ok=K failed=F".
 *   sharedfs_plain read FILE STOPFILE
 *       reads FILE whole, again and again, until STOPFILE exists; prints
 *       "ok=... torn=... estale=... enoent=... ebadfd=... other=...". Torn: a read that
 *       returned something that is not one whole record.
 *   sharedfs_plain init FILE      write the record of sequence 0 (O_CREAT|O_EXCL)
 *   sharedfs_plain check FILE     print "SEQ HASH-LINE" of FILE's record; exit 1
 *                                 when torn, 2 when it cannot be read
 * Exit 0 when nothing failed (writer) / nothing was torn (reader), else 1. */
#include "record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int read_whole(int fd, char *buf, size_t cap, size_t *n) {
    *n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + *n, cap - *n);
        if (r < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (r == 0 || *n + (size_t)r == cap) {
            *n += (size_t)r;
            return 0;
        }
        *n += (size_t)r;
    }
}

static int rmw(const char *file, const char *name, int count) {
    static char old[RECORD_MAX + 1], buf[RECORD_MAX];
    int ok = 0, failed = 0;
    for (int i = 0; i < count; ++i) {
        int fd = open(file, O_RDWR);
        if (fd < 0) {
            fprintf(stderr, "plain %d: open %s: %s\n", getpid(), file, strerror(errno));
            ++failed;
            continue;
        }
        size_t n;
        unsigned long long seq = 0;
        int rc = read_whole(fd, old, sizeof old, &n);
        if (rc == 0 && record_check(old, n, &seq) != 0) rc = -1;
        if (rc == 0) {
            size_t len = record_make(buf, seq + 1, name);
            if (pwrite(fd, buf, len, 0) != (ssize_t)len || ftruncate(fd, (off_t)len) != 0) rc = errno;
        }
        if (close(fd) != 0 && rc == 0) rc = errno;
        if (rc == 0) {
            ++ok;
        } else {
            fprintf(stderr, "plain %d: rewrite %s: %s\n", getpid(), file, rc < 0 ? "torn content" : strerror(rc));
            ++failed;
        }
    }
    printf("ok=%d failed=%d\n", ok, failed);
    return failed == 0 ? 0 : 1;
}

static int reader(const char *file, const char *stop) {
    static char buf[RECORD_MAX + 1];
    long ok = 0, torn = 0, estale = 0, enoent = 0, ebadfd = 0, other = 0;
    while (access(stop, F_OK) != 0) {
        int fd = open(file, O_RDONLY);
        size_t n = 0;
        int rc = fd < 0 ? errno : read_whole(fd, buf, sizeof buf, &n);
        if (fd >= 0) close(fd);
        unsigned long long seq;
        if (rc == 0) {
            if (record_check(buf, n, &seq) == 0) {
                ++ok;
            } else {
                ++torn;
                if (torn <= 3) fprintf(stderr, "plain %d: torn read of %s: %zu bytes\n", getpid(), file, n);
            }
        } else if (rc == ESTALE) {
            ++estale;
        } else if (rc == ENOENT) {
            ++enoent;
        } else if (rc == EBADFD) {
            ++ebadfd;  /* Gluster: the file was replaced between open and read */
        } else {
            ++other;
            if (other <= 3) fprintf(stderr, "plain %d: read %s: %s\n", getpid(), file, strerror(rc));
        }
    }
    printf("ok=%ld torn=%ld estale=%ld enoent=%ld ebadfd=%ld other=%ld\n", ok, torn, estale, enoent, ebadfd, other);
    return torn == 0 ? 0 : 1;
}

static int init(const char *file) {
    static char buf[RECORD_MAX];
    size_t len = record_make(buf, 0, "init");
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0 || write(fd, buf, len) != (ssize_t)len || close(fd) != 0) {
        fprintf(stderr, "plain: init %s: %s\n", file, strerror(errno));
        return 1;
    }
    return 0;
}

static int check(const char *file) {
    static char buf[RECORD_MAX + 1];
    int fd = open(file, O_RDONLY);
    if (fd < 0) return 2;
    size_t n;
    int rc = read_whole(fd, buf, sizeof buf, &n);
    close(fd);
    if (rc != 0) return 2;
    unsigned long long seq;
    if (record_check(buf, n, &seq) != 0) return 1;
    printf("%llu %016llx\n", seq, (unsigned long long)record_hash(buf, n));
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "init") == 0) return init(argv[2]);
    if (argc == 3 && strcmp(argv[1], "check") == 0) return check(argv[2]);
    if (argc == 5 && strcmp(argv[1], "rmw") == 0) return rmw(argv[2], argv[3], atoi(argv[4]));
    if (argc == 4 && strcmp(argv[1], "read") == 0) return reader(argv[2], argv[3]);
    fprintf(stderr, "usage: sharedfs_plain rmw FILE NAME N | read FILE STOPFILE | init FILE | check FILE\n");
    return 2;
}
