/* What a shimmed shell execs into (exec_test.sh): writes "hello" and a
 * newline to standard output (whatever its arguments: it also runs as a
 * script's interpreter); exit 1 if that fails.
 * Built by meson as programs the preload object cannot load: static,
 * 32-bit, against musl. */
#include <string.h>
#include <unistd.h>

int main(void) {
    static const char text[] = "hello\n";
    return write(1, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : 1;
}
