#include "long_path.hpp"

#include "normalize.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::shim {

Unbounded judge_unbounded(const rules::RuleSet *set, int dirfd, const char *path, bool link) {
    if (path[0] == '/') return Unbounded::plain;  // too long for open(2) itself
    if (dirfd != AT_FDCWD) return Unbounded::refuse;
    // glibc's getcwd(nullptr, 0) walks up with ".." where the kernel's
    // getcwd gives up at a page.
    char *cwd = getcwd(nullptr, 0);
    if (!cwd) return Unbounded::refuse;
    size_t size = strlen(cwd) + 1 + strlen(path) + 1;
    char *norm = static_cast<char *>(malloc(size));
    Unbounded verdict = Unbounded::refuse;
    if (norm && detail::normalize_path(cwd, path, norm, size) == 0) {
        rules::Kind kind = rules::classify(set, norm);
        if (kind == rules::kExclude || (kind == rules::kNone && !link)) verdict = Unbounded::plain;
    }
    free(norm);
    free(cwd);
    return verdict;
}

}  // namespace wrap_lockfile::shim
