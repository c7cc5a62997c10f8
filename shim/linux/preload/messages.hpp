// The shim's messages: a line on stderr (and in the log) for what the
// program must not miss, a log line for its decisions. Async-signal-safe:
// snprintf into a stack buffer, then write(2).
#pragma once

#include <wrap_lockfile/wrap_lockfile.h>

#include <cstddef>

namespace wrap_lockfile::shim {

// fmt with two string arguments, on stderr and in WRAP_LOCKFILE_LOG.
void message(const char *fmt, const char *a, const char *b);
// The same, in WRAP_LOCKFILE_LOG only (nothing when no log is set).
void log_line(const char *fmt, const char *a, const char *b);

// A lock failure as one line: the error, and for a busy lock the holder's
// pid where the kernel shows it (/proc/locks).
void describe_lock_failure(int rc, const wlf_error &err, char *text, size_t size);

}  // namespace wrap_lockfile::shim
