// The defaults of the C API's option structs, the same on every platform
// (README "C API"): lock with the system's own lock (flock, or LockFileEx on
// Windows), temp suffix "~~", durability full, hard links kept.
#include <wrap_lockfile/wrap_lockfile.h>

#include <cstring>

extern "C" void wlf_lock_options_init(wlf_lock_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->backend = WLF_LOCK_FLOCK;
}

extern "C" void wlf_write_options_init(wlf_write_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->use_lock = 1;
    wlf_lock_options_init(&opt->lock);
    opt->temp_suffix = "~~";
    opt->durability = WLF_DURABILITY_FULL;
    opt->hardlink_policy = WLF_HARDLINK_KEEP;
}
