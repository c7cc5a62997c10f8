// Helpers shared by the core's C-ABI layer. This layer is built without
// exceptions or RTTI and must not need libstdc++ at run time (the shim loads
// it into C programs): no new/delete, no std::string, no function-local
// statics with dynamic initialisation.
#pragma once

#include <wrap_lockfile/wrap_lockfile.h>

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace wrap_lockfile::detail {

// ---- errors (error.cpp) ----

// Records a failure of `step` in `err` (nullable) and returns `code`. The
// step is what callers classify by (C++ exception types, the shim's
// messages); `op` only words the message.
int fail(wlf_error *err, int code, wlf_step step, const char *op, const char *path);

// ---- path strings (posix/path_names.cpp) ----

// Copies `a` then `b` into dst[size]; ENAMETOOLONG if it does not fit.
int join(char *dst, size_t size, const char *a, const char *b);

// `path` made absolute against the current directory into dst[size] (as is
// if already absolute, or if the current directory has no name any more).
int absolute_path(const char *path, char *dst, size_t size);

// Splits `path` into its directory (".", "/" or the prefix) and base name.
int split_dir_base(const char *path, char *dir, size_t dir_size, const char **base);

// An O_PATH descriptor of `path`'s directory, and *base its name in it (a
// pointer into path): to look at a name and act on it through one
// directory, never by path twice. The descriptor, or -1 and errno.
int open_parent(const char *path, const char **base);

// ---- descriptors (posix/sysio.cpp) ----

// A close-on-exec copy of fd at the lowest free number >= floor, out of the
// program's way. A program may have lowered RLIMIT_NOFILE to the floor or
// below since the floor was chosen (F_DUPFD's EINVAL): then at or above
// three quarters of the limit now. -1 and errno when neither has room.
int dup_above(int fd, int floor);

// A close-on-exec copy of fd that the library keeps: dup_above, else (no
// room up there) the lowest free number. -1 and errno (EMFILE).
int dup_kept(int fd, int floor);

// Moves fd above floor (dup_above), closing the original; returns the new
// fd, or fd itself when floor <= 0, fd >= floor, or there is no room above.
int raise_fd(int fd, int floor);

// The floor of the library's own descriptors in a program that has room
// (RLIMIT_NOFILE of 1024 or more): well above the numbers it uses.
inline constexpr int kDescriptorFloor = 768;

// Whether n (at most 3) more descriptor numbers are free below the limit:
// asked by taking them (an O_PATH descriptor of / and copies) and giving
// them back at once. For the rare limit too small to keep the library's
// descriptors out of the program's way (replacement.hpp, leaves_room).
bool descriptors_free(int n);

// ---- the clock (posix/clock.cpp, windows/clock.cpp) ----

// Monotonic clock in nanoseconds.
int64_t monotonic_ns();

// Sleeps for `ns` nanoseconds (restarts on EINTR until the time has passed).
void sleep_ns(int64_t ns);

// The calling thread's number (gettid, GetCurrentThreadId): seeds random_u64.
uint64_t thread_number();

// ---- error texts (posix/error_text.cpp, windows/error_text.cpp) ----

// The message for errno value `code`, in buf[size] or a static string.
const char *error_text(int code, char *buf, size_t size);

// ---- backoff (backoff.cpp; timeout_ns: timeout.cpp) ----

// Small fast PRNG for jitter and temp names (not for secrets).
uint64_t random_u64();

// Polls `try_once` until it succeeds, fails hard, or the deadline passes
// (no deadline when !has_timeout).
// try_once returns 0 (done), EWOULDBLOCK (busy, try again) or another errno.
// Backoff grows exponentially from 1 ms to 25 ms with +-50% jitter.
// Returns 0, the hard errno, EWOULDBLOCK (timeout <= 0) or ETIMEDOUT.
using TryFn = int (*)(void *ctx);
// `seconds` as nanoseconds, clamped to [0, kMaxTimeoutSeconds] seconds
// (timeout.hpp; NaN is 0): API callers may pass any double, and deadline
// arithmetic must never overflow.
int64_t timeout_ns(double seconds);
int poll_until(TryFn try_once, void *ctx, bool has_timeout, double timeout);

// ---- the replacement's open (open_file.cpp, windows/replace.cpp) ----

// wlf_open with open(2) flags (the CRT's on Windows; open_mode.hpp makes them
// from a mode name or WLF_OPEN_* bits, open_api.cpp) and the permission bits
// of a new file. The Windows shim calls it directly; the Linux shim calls
// file_open (shim_entry.hpp), which this is with no fd_floor.
int open_replacement(const char *path, int flags, uint32_t create_mode, const wlf_write_options *opt, wlf_file **out,
                     wlf_error *err);

}  // namespace wrap_lockfile::detail
