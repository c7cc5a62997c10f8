// The preload object COMMAND gets: WRAP_LOCKFILE_PRELOAD, else next to the
// launcher (a relocated install), the build tree, then the configured install
// location; checked to load; first in LD_PRELOAD.
#pragma once

#include "unprotected.hpp"

#include <string>

namespace wrap_lockfile::atomically {

// The preload object's absolute, symlink-free path, checked to load.
std::string find_preload(ElfInfo &info);

// The preload object first, so its interposers wrap any other preloaded
// ones; other entries kept in order; earlier copies of it dropped.
std::string composed_ld_preload(const std::string &preload);

}  // namespace wrap_lockfile::atomically
