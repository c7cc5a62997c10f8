// wlf_open and wlf_open_flags: a mode name or WLF_OPEN_* bits made into the
// open flags of the platform's replacement open (detail::open_replacement)
// by the one parser of both (open_mode.cpp), as the C++ API, the Python
// binding and the shims' stdio read modes.
#include <wrap_lockfile/wrap_lockfile.h>

#include "internal.hpp"
#include "open_mode.hpp"

#include <cerrno>
#include <cstring>

using namespace wrap_lockfile;

extern "C" int wlf_open(const char *path, const char *mode, const wlf_write_options *opt, wlf_file **out,
                        wlf_error *err) {
    int flags;
    if (!mode || detail::open_mode_flags(mode, strlen(mode), detail::ModeSyntax::api, &flags) != 0) {
        *out = nullptr;
        return detail::fail(err, EINVAL, WLF_STEP_OPEN, "open mode", mode ? mode : "");
    }
    return detail::open_replacement(path, flags, 0666, opt, out, err);
}

extern "C" int wlf_open_flags(const char *path, uint32_t flags, uint32_t create_mode, const wlf_write_options *opt,
                              wlf_file **out, wlf_error *err) {
    int oflags;
    if (detail::open_bits_flags(flags, &oflags) != 0) {
        *out = nullptr;
        return detail::fail(err, EINVAL, WLF_STEP_OPEN, "open flags", path);
    }
    return detail::open_replacement(path, oflags, create_mode, opt, out, err);
}
