// Lock choices by name (lock_choice.hpp).
#include "lock_choice.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <cstring>

namespace wrap_lockfile::detail {

bool parse_lock_backend(const char *s, int *backend) {
    static constexpr struct {
        const char *name;
        int backend;
    } kNames[] = {{"flock", WLF_LOCK_FLOCK}, {"dotlock", WLF_LOCK_DOTLOCK}, {"none", WLF_LOCK_NONE}, {"auto", WLF_LOCK_AUTO}};
    for (const auto &n : kNames) {
        if (strcmp(s, n.name) == 0) {
            *backend = n.backend;
            return true;
        }
    }
    return false;
}

bool parse_keep_lock_files(const char *s, int *keep) {
    if (strcmp(s, "1") != 0 && strcmp(s, "0") != 0) return false;
    *keep = s[0] == '1';
    return true;
}

}  // namespace wrap_lockfile::detail
