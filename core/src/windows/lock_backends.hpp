// The two lock backends of the Windows layer (README "Windows", "Locks"):
// a LockFileEx lock on one byte far beyond the data of "<target>.lock"
// (byte_lock.cpp; the flock backend's counterpart) and a dotlock made with
// CreateFileW(CREATE_NEW) (dotlock.cpp). lock.cpp puts them behind the C API.
#pragma once

#include <wrap_lockfile/wrap_lockfile.h>

#include "win.hpp"

namespace wrap_lockfile::win {

// Identity of a file: volume serial and file index.
struct FileId {
    DWORD volume;
    DWORD index_high;
    DWORD index_low;
    bool operator==(const FileId &o) const {
        return volume == o.volume && index_high == o.index_high && index_low == o.index_low;
    }
};

int file_id(HANDLE h, FileId *id);

// Why the file behind `h` (opened without following links) is no lock
// file: a format with "%s" for the path as lock_file.hpp's, or nullptr.
// `any_links`: a dotlock's test (hard links are not its business).
const char *lock_file_refusal(HANDLE h, bool any_links);

// Opens (creating it if missing, CREATE_NEW) the lock file at `path` and
// takes the byte lock: wait without timeout, one try for timeout <= 0,
// else polling against the deadline. On success *out is the locked handle
// and the holder's pid is published (see byte_lock.cpp). 0, EWOULDBLOCK,
// ETIMEDOUT, or an errno with *op naming what failed.
int byte_lock_acquire(const wchar_t *path, const wlf_lock_options *opt, HANDLE *out, const char **op);
// Unlocks everything byte_lock_acquire locked and closes the handle.
void byte_lock_release(HANDLE h);
// The pid a byte lock holder published on the lock file at `path`, 0 if none.
DWORD byte_lock_holder(const wchar_t *path);

// Creates the dotlock `path` (CREATE_NEW, delete on close, content "<pid>\n")
// as the options say. *out is its handle: closing it removes the file,
// which also happens when the holder dies. Same results as above.
int dotlock_acquire(const wchar_t *path, const wlf_lock_options *opt, HANDLE *out, const char **op);
// The pid in a dotlock's content ("<digits>\n"), 0 if it is not one.
DWORD dotlock_holder(const wchar_t *path);

}  // namespace wrap_lockfile::win
