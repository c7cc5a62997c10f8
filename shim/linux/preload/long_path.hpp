// Write-opens whose absolute path does not fit in PATH_MAX (a relative path
// under a very deep working directory, or a dirfd that deep): the core names
// files by absolute path, so it cannot replace them. Such a path must never be
// written in place silently when a rule matches it.
#pragma once

#include "rules.hpp"

namespace wrap_lockfile::shim {

enum class Unbounded { plain, refuse };

// After make_paths failed with ENAMETOOLONG: `plain` when no rule matches the
// path (or the kernel refuses it anyway: an absolute one that long), so it is
// opened as the program asked; `refuse` when a rule matches it, or when that
// cannot be told (a dirfd deeper than the kernel names; a symbolic link,
// `link`, whose target a rule might match). Only this rare path allocates.
Unbounded judge_unbounded(const rules::RuleSet *set, int dirfd, const char *path, bool link);

}  // namespace wrap_lockfile::shim
