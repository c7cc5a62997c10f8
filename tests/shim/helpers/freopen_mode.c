/* freopen_mode MODE FILE: freopen(FILE, MODE, stdout), then writes "new\n"
 * to stdout and closes it. Prints nothing else to stdout. Exit status:
 *   0    written and closed
 *   10   freopen failed with EEXIST
 *   11   freopen failed with another errno (printed to stderr)
 *   12   the descriptor's close-on-exec flag differs from what MODE asks
 *        ('e' in MODE: set; no 'e': clear)
 *   13   the write or the close failed
 * A plain run and a run under the shim must agree (freopen_test.sh). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    FILE *f = freopen(argv[2], argv[1], stdout);
    if (!f) {
        int e = errno;
        if (e == EEXIST) return 10;
        fprintf(stderr, "freopen: %s\n", strerror(e));
        return 11;
    }
    int fdflags = fcntl(fileno(f), F_GETFD);
    int want = strchr(argv[1], 'e') != NULL;
    if (fdflags < 0 || ((fdflags & FD_CLOEXEC) != 0) != want) return 12;
    if (fputs("new\n", f) == EOF || fclose(f) != 0) return 13;
    return 0;
}
