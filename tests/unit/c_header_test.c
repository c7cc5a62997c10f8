/* <wrap_lockfile/wrap_lockfile.h> is portable C: it needs nothing but the C
 * standard library (stddef.h, stdint.h), so a Windows or FFI user compiles it
 * as it is. The POSIX types the old ABI used are declared here first, as
 * something else: had the header pulled in <sys/types.h> (mode_t, pid_t) or
 * <fcntl.h>, this file would not compile. Compiled as C11 without
 * _GNU_SOURCE or _POSIX_C_SOURCE. Exit status 0. */
typedef struct not_posix_mode mode_t;
typedef struct not_posix_pid pid_t;
typedef struct not_posix_off off_t;
#define O_WRONLY "not an open(2) flag"

#include <wrap_lockfile/wrap_lockfile.h>

int main(void) {
    /* Everything the header declares is usable from here alone. */
    wlf_write_options opt;
    wlf_write_options_init(&opt);
    opt.create_mode = 0644u;
    int64_t holder = wlf_lock_holder("");
    return holder == 0 && opt.create_mode == 0644u && WLF_OPEN_WRITE == 1 ? 0 : 1;
}
