// Pending replacements across execve in the same process (docs/design.md,
// "The shim": `prog > file` in a shell is fork, open, dup2, exec). The
// opener's replacements go to the new image in WRAP_LOCKFILE_PENDING (the
// core's hand-over token and the program's descriptor numbers); descriptors
// inherited from another opener go along as "i:<fd>.<fd>...". A program that
// cannot load the shim gets nothing: what was pending commits before the exec.
// exec_prepare and exec_failed are declared in handlers.hpp.
#pragma once

namespace wrap_lockfile::shim {

// Takes over the replacements a previous program image of this process left
// pending (see exec_prepare).
void import_pending();

}  // namespace wrap_lockfile::shim
