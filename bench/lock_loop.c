/* The lock measurement tools/bench.sh interleaves: the C API against the
 * system calls it stands for.
 *
 *   lock_loop capi N PATH   wlf_lock_acquire(PATH) + wlf_lock_release, N times
 *                           (the lock file is PATH.lock, created and removed
 *                           each time).
 *   lock_loop raw N PATH    open(PATH.lock, O_CREAT) + flock + unlink + flock(UN)
 *                           + close, N times: the same without verification,
 *                           ownership or nesting (not correct: two holders can
 *                           get in, see tests/unit/lock_test.cpp).
 *
 * Prints "WALL_NS CPU_NS" per iteration, as shim_loop does.
 */
#include <wrap_lockfile/wrap_lockfile.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static long long clock_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what, const char *path, int err) {
    fprintf(stderr, "lock_loop: %s %s: %s\n", what, path, strerror(err));
    exit(1);
}

static void capi_loop(long n, const char *path) {
    wlf_lock_options opt;
    wlf_lock_options_init(&opt);
    for (long i = 0; i < n; ++i) {
        wlf_lock *lock;
        wlf_error err;
        int rc = wlf_lock_acquire(path, &opt, &lock, &err);
        if (rc != 0) die("wlf_lock_acquire", path, rc);
        rc = wlf_lock_release(lock, &err);
        if (rc != 0) die("wlf_lock_release", path, rc);
    }
}

static void raw_loop(long n, const char *path) {
    char lockp[PATH_MAX];
    snprintf(lockp, sizeof lockp, "%s.lock", path);
    for (long i = 0; i < n; ++i) {
        int fd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0) die("open", lockp, errno);
        if (flock(fd, LOCK_EX) != 0) die("flock", lockp, errno);
        if (unlink(lockp) != 0) die("unlink", lockp, errno);
        flock(fd, LOCK_UN);
        close(fd);
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: lock_loop {capi|raw} N PATH\n");
        return 2;
    }
    char *end;
    long n = strtol(argv[2], &end, 10);
    if (*end || n <= 0) {
        fprintf(stderr, "lock_loop: bad count '%s'\n", argv[2]);
        return 2;
    }
    long long c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID), t0 = clock_ns(CLOCK_MONOTONIC);
    if (strcmp(argv[1], "capi") == 0)
        capi_loop(n, argv[3]);
    else if (strcmp(argv[1], "raw") == 0)
        raw_loop(n, argv[3]);
    else {
        fprintf(stderr, "lock_loop: unknown mode '%s'\n", argv[1]);
        return 2;
    }
    long long t1 = clock_ns(CLOCK_MONOTONIC), c1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    printf("%.1f %.1f\n", (double)(t1 - t0) / (double)n, (double)(c1 - c0) / (double)n);
    return 0;
}
