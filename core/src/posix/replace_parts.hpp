// The steps of one atomic replacement, each in its own file:
// path_resolve.cpp, temp_file.cpp, seed_copy.cpp, metadata.cpp; replace.cpp
// strings them together behind the C API.
#pragma once

#include <wrap_lockfile/wrap_lockfile.h>

#include <sys/stat.h>

#include <cstdint>

struct statx;  // <sys/stat.h> with _GNU_SOURCE, where there is one

namespace wrap_lockfile::detail {

// Follows the symlink chain of `path` (at most 40 hops; relative links are
// relative to the link's directory) into final[size]. `exists` tells whether
// the final target exists; `st` is its lstat then. With `nofollow`, a symlink
// at `path` itself gives ELOOP, like open(O_NOFOLLOW). A chain that leads
// into /proc (/dev/stderr), or a /proc link named directly (/proc/self/fd/N),
// sets *via_proc and gives `path` itself as the final target: such files are
// written through, never replaced.
int resolve_target(const char *path, bool nofollow, char *final, size_t size, bool *exists,
                   struct stat *st, bool *via_proc);

// True for files on proc, sys and similar pseudo file systems, which are
// written directly (no temp, no lock).
bool is_pseudo_fs(const char *path);

// True for a file on overlayfs, where the first open for writing copies a
// lower file up: a new inode (for a hard-linked lower file, st_ino changes).
bool is_overlay_fs(const char *path);

// For an absolute, normalized `path` under /dev/: true when its directory
// is an ordinary tmpfs mounted there (/dev/shm), false for the file system
// /dev itself is on (devtmpfs, or a container's tmpfs of device nodes: no
// place for a probe's lock file) and anything else.
bool ordinary_tmpfs_under_dev(const char *path);

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

// An anonymous file for staging content in memory (a memfd; without one, an
// unlinked file in $TMPDIR or /tmp). fdflags is O_CLOEXEC or 0. The fd or -1
// with errno.
int create_staging_file(int fdflags);

// Temp names are "<prefix>.<base>.<random><suffix>". With `per_target` (only
// while the target's lock is held) the name ".<base>._pending<suffix>" is
// tried first: a holder killed with a named temp leaves it at that one name,
// which the next holder removes (a regular file there, and only when no
// pending replacement of its own process holds a per-target name: a nested
// replacement of the same target gets a random name) before taking it.

// Creates a named temp in dir with O_EXCL; the name goes to name[size];
// *named_per_target tells whether it got the per-target name (then
// release_per_target_name() once it is renamed or removed). Returns the fd
// or -1 with errno.
int create_named_temp(const TempDir &dir, const char *base, const char *suffix, mode_t mode, int fdflags,
                      bool per_target, char *name, size_t size, bool *named_per_target);
void release_per_target_name();
// For a replacement handed over across execve: whether the base name of its
// temp is the per-target name, which this image then counts (retain).
bool is_per_target_name(const char *base, const char *suffix, const char *name);
void retain_per_target_name();

// Gives an anonymous temp a name in dir (linkat AT_EMPTY_PATH where the
// kernel allows it, else /proc/self/fd), right before the rename. Never
// called without O_TMPFILE (WLF_HAVE_O_TMPFILE).
int link_anonymous_temp(int fd, const TempDir &dir, const char *base, const char *suffix, bool per_target,
                        char *name, size_t size);
// Gives the anonymous temp fd the name `name` (relative to dir.fd) itself: a
// new target's content appears under its name in one step. 0 or errno
// (EEXIST: something is there now).
int link_anonymous_as(int fd, const TempDir &dir, const char *name);

// True when O_TMPFILE failed because the file system cannot do it.
bool tmpfile_unsupported(int error);

// Whether descriptors a and b (both readable) hold the same first `size`
// bytes; false also when either cannot be read.
bool same_content(int a, int b, off_t size);

// Whether a file of this stat has holes (fewer blocks than its size).
bool is_sparse(const struct stat &st);

// Copies all of src (whose stat is src_st) into dst (both at offset 0; dst
// is empty): FICLONE where the file system shares extents, else
// copy_file_range, else read/write; a sparse src by its data extents only,
// its holes left holes in dst. Leaves both offsets unspecified (the caller
// positions them). 0 or errno.
int seed_copy(int src, int dst, const struct stat &src_st);

// Copies the rest of src from its offset to dst at its offset with
// copy_file_range, falling back to read/write. Returns 0 or errno.
int copy_range(int src, int dst);

// Copies src's first `size` bytes to dst at the same offsets by their data
// extents alone (SEEK_DATA/SEEK_HOLE). dst_size < 0: dst is empty, and is
// cut to `size` at the end. Else dst holds dst_size bytes of old content:
// what lies under src's holes is punched out (zeros written where the file
// system cannot punch); the caller cuts dst to size. Offsets unspecified.
int copy_sparse(int src, int dst, off_t size, off_t dst_size);

// Reserves `size` bytes of blocks from the start of fd, a target about to
// be written in place (or a staged one being written in memory), its size
// kept: readers still see the old content. `before` is fd's stat when the
// caller has it. A reservation that fails gives back what it got and the
// mtime it moved (ext4 moves both; the ctime stays moved). 0 where the file
// system cannot reserve (a copy-on-write one may still need more blocks for
// an overwrite); else 0 or errno (ENOSPC, EDQUOT, EFBIG). With the
// content's descriptor src and its stat, a sparse content gets blocks for
// its data extents only.
int reserve_in_place(int fd, off_t size, const struct stat *before, int src = -1,
                     const struct stat *src_st = nullptr);

// Gives `fd` the owner/group, extended attributes (ACLs, security labels;
// unsupported or forbidden ones skipped) and mode of `st`, read from `src`
// (the target, open). The temp's ACL ends up the target's: one inherited
// from a directory default ACL is removed when the target has none. `fd`'s
// fstat before the changes goes into *temp_st (its device and inode are the
// pending file's identity). Returns 0 or errno; `op` names the failing step.
// An owner or group we may not give (another user's file we may write) is
// not an error: *owner_kept is false then, and nothing more is done (the
// replacement would change who may read the file: the caller writes the
// file in place instead).
int copy_metadata(int src, const struct stat &st, int fd, struct stat *temp_st, const char **op, bool *owner_kept);

// The target's inode flags and per-inode attributes a replacement carries
// (chattr's nodump, noatime, sync, nocow, data journalling...; the project
// id, XFS's extent size hints; inode_flags.cpp). `any`: something to give.
struct InodeAttrs {
    uint32_t flags = 0;   // FS_*_FL
    uint32_t xflags = 0;  // FS_XFLAG_* not among `flags`
    uint32_t extsize = 0, cowextsize = 0, projid = 0;
    bool any = false;
};
// Reads them through `src` (the target, open; `dev` its device). A file
// system without them gives none (one failed ioctl). 0 or errno.
int read_inode_attrs(int src, dev_t dev, InodeAttrs *out);
// Gives them to the temp `fd` in `dir`, while it is still empty (nocow,
// the real-time device and extent size hints take only an empty file);
// nothing is asked when there is nothing to give. One the writer may not
// give, or that `dir` would refuse at the commit (a project other than the
// one it passes on), is not an error: *kept is false, the caller writes in
// place. 0 or errno; `op` names the failing step.
int give_inode_attrs(const InodeAttrs &a, int fd, const char *dir, bool *kept, const char **op);

// The target's statx (or fstatat) as a struct stat, plus its attributes
// (append-only, immutable; 0 without statx). 0 or errno.
int stat_with_attrs(int dirfd, const char *path, int atflags, struct stat *st, uint64_t *attrs);
// The struct stat a statx answer stands for (builds with statx).
void stat_of_statx(const struct statx &sx, struct stat *st);

// Opens `path` as the program's open(2) with `flags` would (following links
// as it would), without O_TRUNC or creating anything, O_NONBLOCK: the
// kernel's verdict (fs.protected_*, permissions, LSMs, attributes) is its
// errno. `want_read`: open it readable too if allowed (*readable tells).
// Refuses with EAGAIN if it is not the inode `st` (looked at under the lock).
// Returns the descriptor or -1 with errno (open_check.cpp).
int open_as_program(const char *path, int flags, mode_t mode, bool want_read, const struct stat &st, bool *readable);

// For a target that does not exist yet behind links: whether open(2) may
// follow them (fs.protected_symlinks). 0 or errno.
int check_follow(const char *path);

}  // namespace wrap_lockfile::detail
