#include "normalize.hpp"

#include <cerrno>
#include <cstring>

namespace wrap_lockfile::detail {

int normalize_path(const char *base, const char *path, char *out, size_t size) {
    if (size < 2) return ENAMETOOLONG;
    size_t len = 0;
    out[len++] = '/';
    out[len] = '\0';
    // Walk base (if path is relative) then path, component by component.
    const char *parts[2] = {path[0] == '/' ? "" : (base ? base : "/"), path};
    for (const char *src : parts) {
        const char *p = src;
        while (*p) {
            while (*p == '/') ++p;
            if (!*p) break;
            const char *end = p;
            while (*end && *end != '/') ++end;
            size_t n = static_cast<size_t>(end - p);
            if (n == 1 && p[0] == '.') {
                // skip
            } else if (n == 2 && p[0] == '.' && p[1] == '.') {
                if (len > 1) {
                    while (len > 1 && out[len - 1] != '/') --len;
                    if (len > 1) --len;  // drop the slash too, except the root
                    out[len] = '\0';
                }
            } else {
                if (len + (len > 1 ? 1 : 0) + n + 1 > size) return ENAMETOOLONG;
                if (len > 1) out[len++] = '/';
                memcpy(out + len, p, n);
                len += n;
                out[len] = '\0';
            }
            p = end;
        }
    }
    return 0;
}

}  // namespace wrap_lockfile::detail
