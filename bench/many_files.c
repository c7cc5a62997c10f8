/* The writer tools/bench_batch.sh times: NFILES files of SIZE bytes spread
 * over NDIRS directories (DIR/dNN/fNNNN, round robin, the directories made
 * first), each written as open(O_WRONLY|O_CREAT|O_TRUNC) + write + close.
 *
 *   many_files [--fsync] DIR NFILES NDIRS SIZE
 *
 * --fsync: fsync(2) each file before its close: the program that makes every
 * file's data durable itself (its names are not: no directory fsync), the
 * floor durability `batch` is measured against. Without it, the program run
 * under the shim. Prints the wall-clock nanoseconds of the whole run.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what, const char *path) {
    fprintf(stderr, "many_files: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

int main(int argc, char **argv) {
    int i = 1, do_fsync = 0;
    if (i < argc && strcmp(argv[i], "--fsync") == 0) do_fsync = 1, ++i;
    if (argc - i != 4) {
        fprintf(stderr, "usage: many_files [--fsync] DIR NFILES NDIRS SIZE\n");
        return 2;
    }
    const char *dir = argv[i];
    long nfiles = atol(argv[i + 1]), ndirs = atol(argv[i + 2]), size = atol(argv[i + 3]);
    if (nfiles <= 0 || ndirs <= 0 || size < 0) return 2;
    char *buf = malloc((size_t)size + 1);
    if (!buf) return 1;
    for (long k = 0; k < size; ++k) buf[k] = (char)('a' + k % 26);
    char path[4096];
    for (long d = 0; d < ndirs; ++d) {
        snprintf(path, sizeof path, "%s/d%02ld", dir, d);
        if (mkdir(path, 0755) != 0 && errno != EEXIST) die("mkdir", path);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long f = 0; f < nfiles; ++f) {
        snprintf(path, sizeof path, "%s/d%02ld/f%04ld", dir, f % ndirs, f);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) die("open", path);
        if (write(fd, buf, (size_t)size) != size) die("write", path);
        if (do_fsync && fsync(fd) != 0) die("fsync", path);
        if (close(fd) != 0) die("close", path);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%lld\n", (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
    free(buf);
    return 0;
}
