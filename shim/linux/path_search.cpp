#include "path_search.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::shim {

int runnable(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return errno;
    if (S_ISDIR(st.st_mode)) return EISDIR;
    if (!S_ISREG(st.st_mode) || faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) != 0) return EACCES;
    return 0;
}

int search_path(const char *name, char *out, size_t size) {
    const char *dirs = getenv("PATH");
    if (!dirs) dirs = "/bin:/usr/bin";
    bool denied = false;
    for (const char *d = dirs;;) {
        const char *end = strchr(d, ':');
        size_t len = end ? static_cast<size_t>(end - d) : strlen(d);
        int n = len ? snprintf(out, size, "%.*s/%s", static_cast<int>(len), d, name) : snprintf(out, size, "./%s", name);
        if (n > 0 && static_cast<size_t>(n) < size) {
            int e = runnable(out);
            if (e == 0) return 0;
            if (e != ENOENT && e != ENOTDIR) denied = true;
        }
        if (!end) break;
        d = end + 1;
    }
    out[0] = '\0';
    return denied ? EACCES : ENOENT;
}

}  // namespace wrap_lockfile::shim
