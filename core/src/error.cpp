// Errors of the C API: recording a failing step in a wlf_error, its message
// (wlf_error_format) and the step's name (wlf_step_name).
#include "internal.hpp"

#include <cstdio>
#include <cstring>

namespace wrap_lockfile::detail {

int fail(wlf_error *err, int code, wlf_step step, const char *op, const char *path) {
    if (err) {
        err->code = code;
        err->step = step;
        err->op = op;
        err->path[0] = '\0';
        if (path) {
            size_t n = strnlen(path, sizeof err->path - 1);
            memcpy(err->path, path, n);
            err->path[n] = '\0';
        }
    }
    return code;
}

}  // namespace wrap_lockfile::detail

extern "C" const char *wlf_error_format(const wlf_error *err, char *buf, size_t size) {
    if (!buf || size == 0) return buf;
    if (!err || err->code == 0) {
        snprintf(buf, size, "no error");
        return buf;
    }
    char tmp[256];
    const char *msg = wrap_lockfile::detail::error_text(err->code, tmp, sizeof tmp);
    const char *op = err->op ? err->op : "operation";
    // An op with a "%s" names the path inside ("lock file %s is a FIFO");
    // it is the library's own static text, never a format for printf.
    const char *slot = strstr(op, "%s");
    if (slot)
        snprintf(buf, size, "%.*s'%s'%s: %s", static_cast<int>(slot - op), op, err->path, slot + 2, msg);
    else if (err->path[0])
        snprintf(buf, size, "%s '%s': %s", op, err->path, msg);
    else
        snprintf(buf, size, "%s: %s", op, msg);
    return buf;
}

extern "C" const char *wlf_step_name(int step) {
    static const char *const kNames[] = {"none",  "lock",  "unlock", "open",      "temp",
                                         "write", "fsync", "rename", "fsync_dir", "in_place"};
    static_assert(sizeof kNames / sizeof kNames[0] == WLF_STEP_IN_PLACE + 1, "a name for every wlf_step");
    return step >= 0 && step <= WLF_STEP_IN_PLACE ? kNames[step] : "unknown";
}
