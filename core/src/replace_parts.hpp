// The steps of one atomic replacement, each in its own file:
// path_resolve.cpp, temp_file.cpp, seed_copy.cpp, metadata.cpp; replace.cpp
// strings them together behind the C API.
#pragma once

#include <wrap_lockfile/wrap_lockfile.h>

#include <sys/stat.h>

namespace wrap_lockfile::detail {

// Follows the symlink chain of `path` (at most 40 hops; relative links are
// relative to the link's directory) into final[size]. `exists` tells whether
// the final target exists; `st` is its lstat then. With `nofollow`, a symlink
// at `path` itself gives ELOOP, like open(O_NOFOLLOW). A chain that leads
// into /proc (/dev/stderr, /proc/self/fd/N) sets *via_proc and gives `path`
// itself as the final target: such files are written through, never replaced.
int resolve_target(const char *path, bool nofollow, char *final, size_t size, bool *exists,
                   struct stat *st, bool *via_proc);

// True for files on proc, sys and similar pseudo file systems, which are
// written directly (no temp, no lock).
bool is_pseudo_fs(const char *path);

// The directory a temp lives in: reached through a descriptor (fd, empty
// prefix) or, when the replacement keeps none, by path (fd AT_FDCWD, prefix
// "<dir>/" taken from the target's absolute path). Temp names are relative to
// fd and start with the prefix.
struct TempDir {
    int fd;
    const char *prefix;
    size_t prefix_len;
};

// Creates an unnamed temp file in dir (O_TMPFILE); fdflags is O_CLOEXEC or 0.
// Returns the fd or -1 with errno (EOPNOTSUPP and friends mean: use a named
// temp).
int create_anonymous_temp(const TempDir &dir, mode_t mode, int fdflags);

// Creates "<prefix>.<base>.<random><suffix>" in dir with O_EXCL; the name goes
// to name[size]. Returns the fd or -1 with errno.
int create_named_temp(const TempDir &dir, const char *base, const char *suffix, mode_t mode, int fdflags,
                      char *name, size_t size);

// Gives an anonymous temp the name "<prefix>.<base>.<random><suffix>" in dir
// (linkat AT_EMPTY_PATH where the kernel allows it, else /proc/self/fd).
int link_anonymous_temp(int fd, const TempDir &dir, const char *base, const char *suffix, char *name,
                        size_t size);

// True when O_TMPFILE failed because the file system cannot do it.
bool tmpfile_unsupported(int error);

// Copies all of src into dst (both at offset 0; dst is empty): FICLONE where
// the file system shares extents, else copy_file_range, else read/write.
// Leaves dst's offset unspecified (the caller positions it). 0 or errno.
int seed_copy(int src, int dst);

// Copies the rest of src from its offset to dst at its offset with
// copy_file_range, falling back to read/write. Returns 0 or errno.
int copy_range(int src, int dst);

// Gives `fd` the owner/group (where permitted), extended attributes (ACLs,
// security labels; unsupported or forbidden ones skipped) and mode of `st`,
// read from `path`. Returns 0 or errno; `op` names the failing step.
int copy_metadata(const char *path, const struct stat &st, int fd, const char **op);

}  // namespace wrap_lockfile::detail
