/* GLib peer for tools/bench.sh: g_file_set_contents_full in a loop.
 *
 *   glib_replace DIR SIZE {full|none} BUDGET_MS MAX_ITERS
 *     full: G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE
 *     none: G_FILE_SET_CONTENTS_CONSISTENT only (temp + rename; GLib still
 *           fsyncs the temp when the target exists and is non-empty)
 *   prints "MEDIAN_NS ITERS" (per operation, wall clock)
 */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: glib_replace DIR SIZE {full|none} BUDGET_MS MAX_ITERS\n");
        return 2;
    }
    char *target = g_strdup_printf("%s/target", argv[1]);
    size_t size = strtoull(argv[2], NULL, 10);
    GFileSetContentsFlags flags = G_FILE_SET_CONTENTS_CONSISTENT;
    if (strcmp(argv[3], "full") == 0) flags |= G_FILE_SET_CONTENTS_DURABLE;
    long long budget = atoll(argv[4]) * 1000000LL;
    long max_iters = atol(argv[5]);
    char *data = malloc(size);
    memset(data, 'x', size);
    long long *t = malloc(sizeof *t * (size_t)(max_iters + 1));
    long n = -1; /* the first operation is a warm-up */
    long long end = now_ns() + budget;
    while (n < max_iters && (n < 2 || now_ns() < end)) {
        GError *err = NULL;
        long long a = now_ns();
        if (!g_file_set_contents_full(target, data, (gssize)size, flags, 0666, &err)) {
            fprintf(stderr, "glib_replace: %s\n", err->message);
            return 1;
        }
        if (n >= 0) t[n] = now_ns() - a;
        ++n;
    }
    qsort(t, (size_t)n, sizeof *t, cmp);
    printf("%lld %ld\n", n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2, n);
    unlink(target);
    return 0;
}
