// Descriptor lifetimes the shim does not see through libc (docs/design.md,
// "Unseen lifetimes"): `syscall(SYS_close)` as libuv does, a number reused by
// a later open. What a program wrote and closed is still committed, and a
// replacement whose own descriptor was closed behind the shim's back fails
// loudly. reclaim() is declared in fd_table.hpp (the fast path calls it).
#pragma once

namespace wrap_lockfile::shim {

// Commits the replacements of this process whose last program descriptor
// was closed without the shim seeing it (a raw system call): what the
// program wrote and closed is never dropped, and the lock is freed.
void commit_unseen_closes();

}  // namespace wrap_lockfile::shim
