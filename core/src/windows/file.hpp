// One pending replacement on Windows and the steps that make it:
// target.cpp (resolving and opening the target), temp_file.cpp (the temp and
// what it takes over from the target), commit.cpp (the rename methods);
// replace.cpp strings them together behind the C API. README "Windows".
#pragma once

#include <wrap_lockfile/wrap_lockfile.h>

#include "win.hpp"

struct wlf_file {
    int fd = -1;                      // CRT descriptor the caller uses; owns `h`
    HANDLE h = INVALID_HANDLE_VALUE;  // the temp (rename kind) or the target itself
    int kind = WLF_COMMIT_RENAME;
    int durability = WLF_DURABILITY_FULL;
    int poison = 0;
    bool exclusive = false;       // O_EXCL: the commit must not replace anything
    bool target_existed = false;
    FILE_BASIC_INFO basic{};      // attributes and creation time the temp takes at commit
    wlf_lock *lock = nullptr;
    wrap_lockfile::win::WPath target_w;  // final target, \\?\ form
    wrap_lockfile::win::WPath temp_w;    // the temp's name (rename kind)
    char target[WLF_PATH_MAX] = {};      // final target, UTF-8, for people
};

namespace wrap_lockfile::win {

// The final target of `path`: every symbolic link and junction on the way
// resolved by the system (the links themselves stay links). A missing file
// resolves through its directory; a link whose target is missing is
// refused (ENOENT). `info` and `type` describe an existing target.
int resolve_target(const char *path, WPath *final, bool *exists, BY_HANDLE_FILE_INFORMATION *info, DWORD *type,
                   const char **op);

// Whether `path` itself (not what it leads to) is a symbolic link or
// another reparse point: WLF_OPEN_NOFOLLOW's ELOOP.
bool is_link(const char *path);

// Opens the existing target with the access the program asked for (plus
// reading, when its content is to be copied, and READ_CONTROL for its
// security descriptor), sharing everything, without truncating: where the
// program's own open would be refused, so is the replacement.
HANDLE open_target(const WPath &target, bool write, bool read, bool read_control);

// Creates the temp "<dir>\.<base>.<random><suffix>" next to the target
// (CREATE_NEW, hidden, readable and writable, deletable by handle).
int create_temp(const WPath &target, const char *suffix, WPath *temp, HANDLE *out);

// Removes the temp: by handle when it is still open (then closes it),
// else by name.
void remove_temp(wlf_file *f);

// Gives the temp the target's DACL (protected or inheriting as the
// target's is). 0 or errno.
int copy_security(HANDLE target, HANDLE temp);

// Copies the target's content into the (empty) temp. 0 or errno.
int copy_content(HANDLE target, HANDLE temp);

// Flushes, renames the temp over the target by the first method that works
// (see commit.cpp) and closes the descriptor. On failure the target is
// untouched and the temp removed, unless *err says otherwise.
int commit_rename(wlf_file *f, wlf_error *err);

// Test-only (tests/windows): 0 tries the methods in order, 1 only
// FileRenameInfoEx, 2 only ReplaceFileW, 3 only MoveFileExW.
enum CommitMethod { kCommitAny = 0, kCommitRenameInfoEx = 1, kCommitReplaceFile = 2, kCommitMoveFileEx = 3 };
void set_commit_method_for_tests(int method);

}  // namespace wrap_lockfile::win
