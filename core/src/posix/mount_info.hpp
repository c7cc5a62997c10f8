// The lock backend a mount needs when the caller left the choice to us
// (WLF_LOCK_AUTO), from /proc/self/mountinfo: dotlock where flock is known
// to stay on this host although other hosts share the files, flock
// everywhere else. README "Shared file systems", docs/design.md "Locks".
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace wrap_lockfile::detail {

// What the choice needs of one line of mountinfo (proc(5)):
//   ID PARENT MAJ:MIN ROOT MOUNTPOINT MOUNTOPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
struct MountFacts {
    unsigned long mount_id;
    unsigned int major, minor;
    char fstype[64];       // decoded (\040 and friends), e.g. "fuse.sshfs"
    char super_opts[1024]; // decoded; truncated at a comma boundary if longer
};

// Reads mountinfo text in pieces of any size and calls on_line for every
// complete, well-formed line (malformed ones are skipped). Memory is the
// struct itself: a long mount point costs nothing.
class MountinfoScanner {
public:
    using OnLine = bool (*)(void *ctx, const MountFacts &facts);  // false: stop
    MountinfoScanner(OnLine on_line, void *ctx) : on_line_(on_line), ctx_(ctx) { reset_line(); }
    // false once on_line asked to stop.
    bool feed(const char *data, size_t n);
    // A last line without its newline.
    bool finish();

private:
    void reset_line();
    bool end_token();
    bool end_line();

    OnLine on_line_;
    void *ctx_;
    MountFacts facts_;
    char tok_[1024];
    size_t tok_len_;
    bool tok_long_;
    int field_;      // index of the current field on the line
    int after_sep_;  // -1 before the "-" separator, else the index past it
    bool bad_;
    bool stopped_ = false;
};

// Whether flock on a mount of `fstype` with these super options is local
// to this client while the files are shared with other hosts: NFS with
// local_lock=flock|all or nolock, SMB mounted nobrl, sshfs.
bool flock_stays_local(const char *fstype, const char *super_opts);

// WLF_LOCK_DOTLOCK or WLF_LOCK_FLOCK for a lock file at `lock_path` (its
// directory's mount), remembered per (device, mount id) for the life of the
// process; WLF_LOCK_FLOCK whenever the mount cannot be told. `mountinfo` is
// the file to read (nullptr: /proc/self/mountinfo; tests pass their own).
// *known (if given) says whether the answer came from mountinfo or the
// cache: false for the FLOCK given when the mount could not be told.
// *dir_append_only (if given): whether the directory is append-only
// (chattr +a), from the same statx; false when it could not be looked at.
int auto_lock_backend(const char *lock_path, const char *mountinfo = nullptr, bool *known = nullptr,
                      bool *dir_append_only = nullptr);

// The probe's shortcut (lock.cpp, open_file.cpp): the last directories a
// probe locked in, each with the mount its lock file was on (statx's unique
// mount id) and the backend WLF_LOCK_AUTO chose there (-1: not asked). Found
// by the directory's path, without a system call. A hit is only a guess
// until the probe's own lock file, created in that directory, shows the same
// mount: a mount since made or removed there is caught by that.
struct DirMount {
    uint64_t mount;
    int backend;
    bool append_only;  // the directory was append-only (chattr +a) when asked
};
// Each takes a path in the directory (its part before the last '/').
bool dir_mount_find(const char *path_in_dir, DirMount *out);
void dir_mount_store(const char *path_in_dir, DirMount m);
void dir_mount_forget(const char *path_in_dir);

}  // namespace wrap_lockfile::detail
