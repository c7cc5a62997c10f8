// Committing a pending replacement: at the last close of its descriptors in
// the opener (commit), and at _exit (commit_at_exit, which frees nothing and
// never waits).
#pragma once

#include "fd_table.hpp"

namespace wrap_lockfile::shim {

// Commits (or, when the program saw a write error, discards) and frees e.
// Returns 0 or errno; failures are reported on stderr since many programs
// ignore close()'s result.
int commit(Entry *e);

// One replacement at _exit, with both mutexes held: what commit() does,
// through the core's entry that frees nothing. Async-signal-safe. False
// when it failed (and said so).
bool commit_at_exit(Entry *e);

}  // namespace wrap_lockfile::shim
