// Would the dynamic loader apply LD_PRELOAD to COMMAND? The checks are
// shim/linux/elf_check.hpp's, shared with the preload object; here they
// are worded for the user.
#pragma once

#include "elf_check.hpp"

#include <optional>
#include <string>

namespace wrap_lockfile::atomically {

using ElfInfo = detail::ElfId;

std::optional<ElfInfo> read_elf(int fd);

// Why COMMAND's files could not be protected, or "" when they can. A '#!'
// script is judged by its interpreter, one level deep.
std::string unprotectable_reason(const std::string &path, const ElfInfo &preload);

}  // namespace wrap_lockfile::atomically
