// Write-opens by path: the decision (replace, lock-only, pass) for the path
// or its symlink target, and opening a pending replacement. open_write and
// open_matched (handlers.hpp) are the entries; the rest serve stdio,
// truncate and rename.
#pragma once

#include "paths.hpp"

#include "rules.hpp"

#include <sys/types.h>

#include <cstddef>

namespace wrap_lockfile::shim {

// make_paths failed with `rc`: true (errno ENAMETOOLONG, one line on stderr)
// when the open must be refused rather than done in place (long_path.hpp);
// false: the caller passes it through, and the kernel gives its own error.
bool refuse_unbuildable(int rc, int dirfd, const char *path, bool link);

// Which rule applies to the path, or to the file a symlink at it leads to.
rules::Kind classify(const Paths &p, char *final, size_t size);

// Opens a pending replacement for an absolute path with a rule of `kind`.
int open_pending(const Paths &p, rules::Kind kind, int flags, mode_t mode);
// A write-open of a link into /proc naming a file pending here
// (/proc/self/fd/N, /dev/fd/N: names_open_file): true and *out the new
// descriptor of that replacement (or -1 with errno), as for a second
// write-open of its path; false when it names none.
bool open_through_link(const Paths &p, int flags, int *out);

}  // namespace wrap_lockfile::shim
