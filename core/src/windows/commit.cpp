// The commit of a replacement on Windows (README "Windows"): flush the temp
// (durability full), give it the target's attributes and creation time,
// then rename it over the target with the first method that works:
//  1. SetFileInformationByHandle(FileRenameInfoEx, REPLACE_IF_EXISTS |
//     POSIX_SEMANTICS) on the temp's own handle: replaces even a target
//     that readers hold open with FILE_SHARE_DELETE (Windows 10 1607+ on
//     NTFS). Volumes and versions without it answer INVALID_PARAMETER,
//     NOT_SUPPORTED or INVALID_FUNCTION (Wine 8 too): next method.
//  2. ReplaceFileW with absolute paths (relative ones fail under Wine),
//     for a target that exists: it keeps the target's ACL, attributes and
//     alternate data streams. 1176 (ERROR_UNABLE_TO_MOVE_REPLACEMENT: the
//     target is gone and the temp kept its name) is finished with
//     MoveFileExW.
//  3. MoveFileExW(REPLACE_EXISTING | WRITE_THROUGH).
// ERROR_ACCESS_DENIED and ERROR_SHARING_VIOLATION are often transient
// (scanners, indexers) and are retried for kTransientSeconds; a reader
// that keeps the target open without FILE_SHARE_DELETE makes the commit
// fail after that with the target untouched and the temp removed.
#include "file.hpp"

#include "internal.hpp"

#include <io.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::win {

namespace {

constexpr double kTransientSeconds = 2.0;

// Windows 10 RS1 names; mingw-w64 declares them only for later targets.
constexpr auto kFileRenameInfoEx = static_cast<FILE_INFO_BY_HANDLE_CLASS>(22);
constexpr DWORD kRenameReplaceIfExists = 0x1;  // FILE_RENAME_FLAG_REPLACE_IF_EXISTS
constexpr DWORD kRenamePosixSemantics = 0x2;   // FILE_RENAME_FLAG_POSIX_SEMANTICS

std::atomic<int> g_method{kCommitAny};

constexpr const char *kBusyOp =
    "rename temporary file over %s (a program keeps it open without FILE_SHARE_DELETE, or a scanner holds it)";

bool transient(DWORD e) { return e == ERROR_ACCESS_DENIED || e == ERROR_SHARING_VIOLATION; }
bool unsupported(DWORD e) {
    return e == ERROR_INVALID_PARAMETER || e == ERROR_NOT_SUPPORTED || e == ERROR_INVALID_FUNCTION;
}

struct Try {
    wlf_file *f;
    DWORD error;  // the last Win32 error
};

// The try functions of poll_until: 0 done, EWOULDBLOCK transient (again),
// EIO with t->error set otherwise.
int result(Try *t, BOOL ok) {
    if (ok) return 0;
    t->error = GetLastError();
    return transient(t->error) ? EWOULDBLOCK : EIO;
}

int try_rename_info_ex(void *ctx) {
    auto *t = static_cast<Try *>(ctx);
    wlf_file *f = t->f;
    // FILE_RENAME_INFO with the Flags member of Windows 10 RS1, by layout:
    // Flags (4), RootDirectory (8, aligned), FileNameLength (4), FileName.
    size_t name_bytes = f->target_w.size() * sizeof(wchar_t);
    size_t size = offsetof(FILE_RENAME_INFO, FileName) + name_bytes + sizeof(wchar_t);
    auto *info = static_cast<FILE_RENAME_INFO *>(calloc(1, size));
    if (!info) {
        t->error = ERROR_NOT_ENOUGH_MEMORY;
        return EIO;
    }
    DWORD flags = kRenamePosixSemantics | (f->exclusive ? 0 : kRenameReplaceIfExists);
    memcpy(info, &flags, sizeof flags);
    info->RootDirectory = nullptr;
    info->FileNameLength = static_cast<DWORD>(name_bytes);
    memcpy(info->FileName, f->target_w.get(), name_bytes);
    BOOL ok = SetFileInformationByHandle(f->h, kFileRenameInfoEx, info, static_cast<DWORD>(size));
    free(info);
    return result(t, ok);
}

int try_replace_file(void *ctx) {
    auto *t = static_cast<Try *>(ctx);
    return result(t, ReplaceFileW(t->f->target_w.get(), t->f->temp_w.get(), nullptr, REPLACEFILE_IGNORE_MERGE_ERRORS,
                                  nullptr, nullptr));
}

int try_move_file(void *ctx) {
    auto *t = static_cast<Try *>(ctx);
    DWORD flags = (t->f->exclusive ? 0 : MOVEFILE_REPLACE_EXISTING) |
                  (t->f->durability != WLF_DURABILITY_NONE ? MOVEFILE_WRITE_THROUGH : 0);
    return result(t, MoveFileExW(t->f->temp_w.get(), t->f->target_w.get(), flags));
}

// Runs one method with the bounded retry. 0, or the Win32 error in *error.
int run(detail::TryFn fn, wlf_file *f, DWORD *error) {
    Try t{f, ERROR_SUCCESS};
    int rc = detail::poll_until(fn, &t, true, kTransientSeconds);
    *error = t.error;
    return rc;
}

void close_descriptor(wlf_file *f) {
    if (f->fd >= 0) _close(f->fd);
    f->fd = -1;
    f->h = INVALID_HANDLE_VALUE;
}

int failed(wlf_file *f, wlf_error *err, DWORD error, const char *op) {
    remove_temp(f);
    int code = error == ERROR_SUCCESS ? EIO : errno_from(error);
    if (f->exclusive && (error == ERROR_FILE_EXISTS || error == ERROR_ALREADY_EXISTS)) code = EEXIST;
    return detail::fail(err, code, WLF_STEP_RENAME, transient(error) ? kBusyOp : op, f->target);
}

}  // namespace

void set_commit_method_for_tests(int method) { g_method.store(method); }

int commit_rename(wlf_file *f, wlf_error *err) {
    using detail::fail;
    if (f->durability != WLF_DURABILITY_NONE && !FlushFileBuffers(f->h)) {
        int code = errno_from(GetLastError());
        remove_temp(f);
        return fail(err, code, WLF_STEP_FSYNC, "fsync temporary file for", f->target);
    }
    // Visible at last: the target's attributes (not hidden unless it was).
    if (!SetFileInformationByHandle(f->h, FileBasicInfo, &f->basic, sizeof f->basic)) {
        int code = errno_from(GetLastError());
        remove_temp(f);
        return fail(err, code, WLF_STEP_TEMP, "set attributes of temporary file for", f->target);
    }
    const int method = g_method.load();
    DWORD error = ERROR_SUCCESS;
    if (method == kCommitAny || method == kCommitRenameInfoEx) {
        if (run(try_rename_info_ex, f, &error) == 0) {
            close_descriptor(f);
            return 0;
        }
        if (method != kCommitAny || !unsupported(error))
            return failed(f, err, error, "rename temporary file over (FileRenameInfoEx)");
    }
    // The name-based methods open the temp themselves.
    close_descriptor(f);
    if ((method == kCommitAny && f->target_existed && !f->exclusive) || method == kCommitReplaceFile) {
        if (run(try_replace_file, f, &error) == 0) return 0;
        if (error == ERROR_UNABLE_TO_MOVE_REPLACEMENT) {
            // The target is gone, the temp kept its name: finish the move.
            // Should that fail too, the temp is the only copy: it stays.
            if (run(try_move_file, f, &error) == 0) return 0;
            return fail(err, errno_from(error), WLF_STEP_RENAME,
                        "ReplaceFileW removed the target and could not move the new content in: it is kept beside %s",
                        f->target);
        }
        if (error == ERROR_UNABLE_TO_MOVE_REPLACEMENT_2)  // only with a backup name, which is never given
            return fail(err, errno_from(error), WLF_STEP_RENAME, "ReplaceFileW moved %s aside: the temporary is kept",
                        f->target);
        // A target that has disappeared meanwhile is created by the move.
        if (method == kCommitReplaceFile || error != ERROR_FILE_NOT_FOUND)
            return failed(f, err, error, "rename temporary file over (ReplaceFileW)");
    }
    if (run(try_move_file, f, &error) == 0) return 0;
    return failed(f, err, error, "rename temporary file over (MoveFileExW)");
}

}  // namespace wrap_lockfile::win

// Durability batch on Windows: every file is flushed before its name appears
// and the rename writes through, as with full; nothing is deferred, so there
// is nothing to sync here.
extern "C" int wlf_sync_pending(wlf_error *err) {
    (void)err;
    return 0;
}
