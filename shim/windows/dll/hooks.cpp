// The detours of the hook table (hooks.def): they translate Win32 calls
// into the core's replacement calls and hold no policy of their own. A
// call the DLL does not take over goes to the original at once: reads,
// unmatched paths, handles of nothing pending (one counter tested), and
// every call the core itself makes while a hook runs (a per-thread flag).
// README "Windows".
#include "hooks.hpp"

#include "hook_config.hpp"
#include "file.hpp"
#include "inject.hpp"
#include "internal.hpp"  // detail::open_replacement: the flags the CreateFileW call asked for
#include "pending.hpp"
#include "win.hpp"

#include <fcntl.h>

#include <cerrno>
#include <cstring>

namespace wrap_lockfile::dll {

#define WLF_HOOK(ret, name, params, args) name##_fn real_##name = nullptr;
#include "hooks.def"
#undef WLF_HOOK

DWORD g_tls = TLS_OUT_OF_INDEXES;
bool g_active = false;

namespace {

// Set while a hook calls into the core, whose own opens and closes must
// reach the system untouched. TlsGetValue resets the last error: kept.
bool busy() {
    DWORD e = GetLastError();
    bool b = TlsGetValue(g_tls) != nullptr;
    SetLastError(e);
    return b;
}

class Busy {
public:
    Busy() { TlsSetValue(g_tls, reinterpret_cast<void *>(1)); }
    ~Busy() { TlsSetValue(g_tls, nullptr); }
    Busy(const Busy &) = delete;
    Busy &operator=(const Busy &) = delete;
};

// The Win32 error a program expects for what the core reports as errno.
DWORD win32_from_errno(int e) {
    switch (e) {
    case ENOENT: return ERROR_FILE_NOT_FOUND;
    case EEXIST: return ERROR_FILE_EXISTS;
    case EACCES: case EPERM: case EISDIR: return ERROR_ACCESS_DENIED;
    case ENOSPC: return ERROR_DISK_FULL;
    case ENAMETOOLONG: return ERROR_FILENAME_EXCED_RANGE;
    case EINVAL: return ERROR_INVALID_PARAMETER;
    case ENOMEM: return ERROR_NOT_ENOUGH_MEMORY;
    case EMFILE: return ERROR_TOO_MANY_OPEN_FILES;
    case EROFS: return ERROR_WRITE_PROTECT;
    case ETIMEDOUT: case EWOULDBLOCK: case EBUSY: return ERROR_SHARING_VIOLATION;
    default: return ERROR_GEN_FAILURE;
    }
}

constexpr DWORD kWriteAccess = GENERIC_WRITE | GENERIC_ALL | FILE_WRITE_DATA | FILE_APPEND_DATA;
constexpr DWORD kReadAccess = GENERIC_READ | GENERIC_ALL | FILE_READ_DATA;
// Opens the core cannot stand in for (the temp is a plain synchronous,
// buffered file): they go to the system as they are, unprotected.
constexpr DWORD kForeignFlags = FILE_FLAG_OVERLAPPED | FILE_FLAG_NO_BUFFERING | FILE_FLAG_DELETE_ON_CLOSE |
                                FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT;
// Attributes a created file takes from CreateFile's flags (read-only is
// left out: it would refuse the commit's own rename).
constexpr DWORD kCreateAttributes =
    FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM | FILE_ATTRIBUTE_ARCHIVE | FILE_ATTRIBUTE_NOT_CONTENT_INDEXED;

bool is_device_name(const wchar_t *name) {
    return wcsncmp(name, L"\\\\.\\", 4) == 0 || wcsncmp(name, L"\\\\?\\GLOBALROOT", 14) == 0 ||
           _wcsicmp(name, L"NUL") == 0 || _wcsicmp(name, L"CON") == 0 || _wcsicmp(name, L"CONOUT$") == 0 ||
           _wcsicmp(name, L"CONIN$") == 0;
}

// open(2) flags for CreateFile's access and disposition; -1 for a
// disposition CreateFile itself refuses.
int open_flags(DWORD access, DWORD disposition) {
    int flags = ((access & kReadAccess) ? O_RDWR : O_WRONLY) | O_BINARY;
    if ((access & FILE_APPEND_DATA) && !(access & (GENERIC_WRITE | GENERIC_ALL | FILE_WRITE_DATA))) flags |= O_APPEND;
    switch (disposition) {
    case CREATE_NEW: return flags | O_CREAT | O_EXCL;
    case CREATE_ALWAYS: return flags | O_CREAT | O_TRUNC;
    case OPEN_EXISTING: return flags;
    case OPEN_ALWAYS: return flags | O_CREAT;
    case TRUNCATE_EXISTING: return flags | O_TRUNC;
    default: return -1;
    }
}

// A read-only open of a target this process is writing reads the pending
// content (a handle of its own on the temp); null when there is none.
HANDLE open_pending_for_reading(const char *key, DWORD access, DWORD flags) {
    PendingLock lock;
    Pending *p = g_replacements.by_key(key);
    if (!p) return nullptr;
    Busy b;
    HANDLE h = ReOpenFile(p->file->h, access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                          flags & ~kCreateAttributes);
    return h == INVALID_HANDLE_VALUE ? nullptr : h;
}

// The shared body of CreateFileW/A/2: a matched write-open becomes a
// pending replacement. *handled is false when the original must run.
HANDLE open_matched(const wchar_t *name, DWORD access, LPSECURITY_ATTRIBUTES sa, DWORD disposition, DWORD flags,
                    HANDLE tmpl, bool *handled) {
    *handled = false;
    // A template handle (CopyFileW passes its source) only lends a new file
    // its attributes, which `flags` carries too; its extended attributes are
    // not copied.
    (void)tmpl;
    if (!g_active || !name || !*name || (flags & kForeignFlags) || busy()) return INVALID_HANDLE_VALUE;
    bool write = (access & kWriteAccess) || disposition == CREATE_ALWAYS || disposition == TRUNCATE_EXISTING;
    if (!write && g_replacements.count() == 0) return INVALID_HANDLE_VALUE;
    if (is_device_name(name)) return INVALID_HANDLE_VALUE;
    DWORD saved = GetLastError();
    char key[WLF_PATH_MAX];
    if (match_form(name, key, sizeof key) != 0) {
        SetLastError(saved);
        return INVALID_HANDLE_VALUE;
    }
    if (!write) {
        HANDLE h = open_pending_for_reading(key, access, flags);
        if (h) *handled = true;
        SetLastError(h ? 0 : saved);
        return h ? h : INVALID_HANDLE_VALUE;
    }
    rules::Kind kind = rules::classify(&g_config.rules, key);
    int oflags = open_flags(access, disposition);
    if (kind == rules::kNone || kind == rules::kExclude || oflags < 0) {
        SetLastError(saved);
        return INVALID_HANDLE_VALUE;
    }
    *handled = true;
    char path[WLF_PATH_MAX];
    if (WideCharToMultiByte(CP_UTF8, 0, name, -1, path, sizeof path, nullptr, nullptr) <= 0) {
        SetLastError(ERROR_FILENAME_EXCED_RANGE);
        return INVALID_HANDLE_VALUE;
    }
    wlf_write_options opt = g_config.options;
    opt.lock_only = kind == rules::kLockOnly;
    wlf_file *f = nullptr;
    wlf_error err{};
    Busy b;
    if (int rc = detail::open_replacement(path, oflags, 0666, &opt, &f, &err)) {
        // An open the system would also refuse is the program's business;
        // anything else (a lock that timed out, no room for the temp) is said.
        if (err.step != WLF_STEP_OPEN) {
            char text[WLF_PATH_MAX + 256];
            message("%s", wlf_error_format(&err, text, sizeof text));
        }
        SetLastError(win32_from_errno(rc));
        return INVALID_HANDLE_VALUE;
    }
    if (wlf_file_kind(f) == WLF_COMMIT_PASSTHROUGH) {
        // Not a file (a pipe, a device): the system's own open, untouched.
        wlf_discard(f);
        *handled = false;
        SetLastError(saved);
        return INVALID_HANDLE_VALUE;
    }
    if (!f->target_existed && (flags & kCreateAttributes)) f->basic.FileAttributes = flags & kCreateAttributes;
    bool existed = f->target_existed;
    HANDLE mine = INVALID_HANDLE_VALUE;
    BOOL inherit = sa && sa->nLength >= sizeof *sa && sa->bInheritHandle;
    if (!real_DuplicateHandle(GetCurrentProcess(), f->h, GetCurrentProcess(), &mine, 0, inherit,
                              DUPLICATE_SAME_ACCESS)) {
        DWORD e = GetLastError();
        wlf_discard(f);
        SetLastError(e);
        return INVALID_HANDLE_VALUE;
    }
    {
        PendingLock lock;
        if (!g_replacements.add(f, mine, key, GetCurrentProcessId())) {
            real_CloseHandle(mine);
            wlf_discard(f);
            message("too many files pending in this process; refusing to open '%s'", path);
            SetLastError(ERROR_TOO_MANY_OPEN_FILES);
            return INVALID_HANDLE_VALUE;
        }
    }
    SetLastError(existed && (disposition == CREATE_ALWAYS || disposition == OPEN_ALWAYS) ? ERROR_ALREADY_EXISTS : 0);
    return mine;
}

// Commits a replacement whose last handle the program closed. FALSE with
// the error set when it failed (the old content stays, unless the error's
// step says the target was replaced).
BOOL commit(wlf_file *f) {
    char target[WLF_PATH_MAX];
    strncpy(target, wlf_file_target(f), sizeof target - 1);
    target[sizeof target - 1] = '\0';
    wlf_error err{};
    Busy b;
    int rc = wlf_commit(f, nullptr, &err);
    if (rc == 0) return TRUE;
    char text[WLF_PATH_MAX + 256];
    bool replaced = err.step == WLF_STEP_UNLOCK || err.step == WLF_STEP_FSYNC_DIR;
    message("%s (%s '%s')", wlf_error_format(&err, text, sizeof text),
            replaced ? "the new content is in" : "the old content is kept in", target);
    SetLastError(win32_from_errno(rc));
    return FALSE;
}

// What a pending file is to the program that writes it, by path or by
// handle: the temp's own information with what the commit gives it (the
// target's attributes and creation time; never the temp's hidden
// attribute). A file written in place is itself. Under PendingLock.
bool pending_view(const Pending *p, BY_HANDLE_FILE_INFORMATION *info) {
    if (!real_GetFileInformationByHandle(p->file->h, info)) return false;
    if (wlf_file_kind(p->file) != WLF_COMMIT_RENAME) return true;
    constexpr DWORD kDosAttributes = kCreateAttributes | FILE_ATTRIBUTE_READONLY | FILE_ATTRIBUTE_NORMAL;
    const FILE_BASIC_INFO &basic = p->file->basic;
    DWORD attributes = (info->dwFileAttributes & ~kDosAttributes) | (basic.FileAttributes & kDosAttributes);
    // NORMAL is valid alone only.
    if (attributes & ~FILE_ATTRIBUTE_NORMAL) attributes &= ~FILE_ATTRIBUTE_NORMAL;
    info->dwFileAttributes = attributes ? attributes : FILE_ATTRIBUTE_NORMAL;
    if (basic.CreationTime.QuadPart) {
        info->ftCreationTime.dwLowDateTime = basic.CreationTime.LowPart;
        info->ftCreationTime.dwHighDateTime = static_cast<DWORD>(basic.CreationTime.HighPart);
    }
    return true;
}

// The pending replacement for a path the program asks about, as
// pending_view; false when there is none.
bool pending_info(const wchar_t *name, BY_HANDLE_FILE_INFORMATION *info) {
    if (g_replacements.count() == 0 || !name || busy()) return false;
    DWORD saved = GetLastError();
    char key[WLF_PATH_MAX];
    bool found = false;
    if (match_form(name, key, sizeof key) == 0) {
        PendingLock lock;
        if (Pending *p = g_replacements.by_key(key)) found = pending_view(p, info);
    }
    SetLastError(saved);
    return found;
}

}  // namespace

HANDLE WINAPI hook_CreateFileW(LPCWSTR name, DWORD access, DWORD share, LPSECURITY_ATTRIBUTES sa, DWORD disposition,
                               DWORD flags, HANDLE tmpl) {
    bool handled;
    HANDLE h = open_matched(name, access, sa, disposition, flags, tmpl, &handled);
    return handled ? h : real_CreateFileW(name, access, share, sa, disposition, flags, tmpl);
}

HANDLE WINAPI hook_CreateFileA(LPCSTR name, DWORD access, DWORD share, LPSECURITY_ATTRIBUTES sa, DWORD disposition,
                               DWORD flags, HANDLE tmpl) {
    if (g_active && name && ((access & kWriteAccess) || g_replacements.count()) && !busy()) {
        DWORD saved = GetLastError();
        wchar_t wide[WLF_PATH_MAX];
        if (MultiByteToWideChar(AreFileApisANSI() ? CP_ACP : CP_OEMCP, 0, name, -1, wide, WLF_PATH_MAX) > 0) {
            bool handled;
            HANDLE h = open_matched(wide, access, sa, disposition, flags, tmpl, &handled);
            if (handled) return h;
        }
        SetLastError(saved);
    }
    return real_CreateFileA(name, access, share, sa, disposition, flags, tmpl);
}

HANDLE WINAPI hook_CreateFile2(LPCWSTR name, DWORD access, DWORD share, DWORD disposition,
                               LPCREATEFILE2_EXTENDED_PARAMETERS params) {
    DWORD flags = 0;
    LPSECURITY_ATTRIBUTES sa = nullptr;
    HANDLE tmpl = nullptr;
    if (params && params->dwSize >= sizeof *params) {
        flags = params->dwFileAttributes | params->dwFileFlags | params->dwSecurityQosFlags;
        sa = params->lpSecurityAttributes;
        tmpl = params->hTemplateFile;
    }
    bool handled;
    HANDLE h = open_matched(name, access, sa, disposition, flags, tmpl, &handled);
    return handled ? h : real_CreateFile2(name, access, share, disposition, params);
}

BOOL WINAPI hook_WriteFile(HANDLE h, LPCVOID data, DWORD size, LPDWORD written, LPOVERLAPPED ov) {
    BOOL ok = real_WriteFile(h, data, size, written, ov);
    if (ok || g_replacements.count() == 0) return ok;
    DWORD e = GetLastError();
    if (e != ERROR_IO_PENDING && !busy()) {
        // What the program could not write must not be committed as if it had.
        PendingLock lock;
        if (Pending *p = g_replacements.by_handle(h)) wlf_file_poison(p->file, win::errno_from(e));
    }
    SetLastError(e);
    return ok;
}

BOOL WINAPI hook_CloseHandle(HANDLE h) {
    if (g_replacements.count() == 0 || busy()) return real_CloseHandle(h);
    wlf_file *last = nullptr;
    {
        PendingLock lock;
        if (Pending *p = g_replacements.drop_handle(h, GetCurrentProcessId())) last = g_replacements.remove(p);
    }
    BOOL ok = real_CloseHandle(h);
    if (!last) return ok;
    DWORD e = GetLastError();
    if (!commit(last)) return FALSE;
    SetLastError(e);
    return ok;
}

BOOL WINAPI hook_DuplicateHandle(HANDLE src_process, HANDLE src, HANDLE dst_process, LPHANDLE dst, DWORD access,
                                 BOOL inherit, DWORD options) {
    if (g_replacements.count() == 0 || busy()) return real_DuplicateHandle(src_process, src, dst_process, dst, access, inherit, options);
    DWORD me = GetCurrentProcessId();
    bool from_me = GetProcessId(src_process) == me;
    bool to_me = dst_process && GetProcessId(dst_process) == me;
    BOOL ok = real_DuplicateHandle(src_process, src, dst_process, dst, access, inherit, options);
    if (!ok || !from_me) return ok;
    DWORD e = GetLastError();
    wlf_file *last = nullptr;
    {
        PendingLock lock;
        if (Pending *p = g_replacements.by_handle(src)) {
            // A copy in this process counts as one of the opener's handles;
            // one given to another process does not (the opener commits).
            if (to_me && dst && !g_replacements.add_handle(p, *dst))
                message("more than %u handles of one pending file: the commit may come early", unsigned(kMaxHandles));
            if (options & DUPLICATE_CLOSE_SOURCE)
                if (Pending *q = g_replacements.drop_handle(src, me)) last = g_replacements.remove(q);
        }
    }
    if (last && !commit(last)) return FALSE;
    SetLastError(e);
    return ok;
}

DWORD WINAPI hook_GetFileAttributesW(LPCWSTR name) {
    BY_HANDLE_FILE_INFORMATION info;
    if (!pending_info(name, &info)) return real_GetFileAttributesW(name);
    return info.dwFileAttributes;
}

BOOL WINAPI hook_GetFileAttributesExW(LPCWSTR name, GET_FILEEX_INFO_LEVELS level, LPVOID out) {
    BY_HANDLE_FILE_INFORMATION info;
    if (level != GetFileExInfoStandard || !out || !pending_info(name, &info))
        return real_GetFileAttributesExW(name, level, out);
    auto *data = static_cast<WIN32_FILE_ATTRIBUTE_DATA *>(out);
    data->dwFileAttributes = info.dwFileAttributes;
    data->ftCreationTime = info.ftCreationTime;
    data->ftLastAccessTime = info.ftLastAccessTime;
    data->ftLastWriteTime = info.ftLastWriteTime;
    data->nFileSizeHigh = info.nFileSizeHigh;
    data->nFileSizeLow = info.nFileSizeLow;
    SetLastError(0);
    return TRUE;
}

BOOL WINAPI hook_SetFileAttributesW(LPCWSTR name, DWORD attributes) {
    if (g_replacements.count() == 0 || !name || busy()) return real_SetFileAttributesW(name, attributes);
    DWORD saved = GetLastError();
    char key[WLF_PATH_MAX];
    if (match_form(name, key, sizeof key) == 0) {
        PendingLock lock;
        if (Pending *p = g_replacements.by_key(key)) {
            // The replacement takes them at its commit (commit.cpp).
            DWORD kept = attributes & (kCreateAttributes | FILE_ATTRIBUTE_READONLY);
            p->file->basic.FileAttributes = kept ? kept : FILE_ATTRIBUTE_NORMAL;
            SetLastError(saved);
            return TRUE;
        }
    }
    SetLastError(saved);
    return real_SetFileAttributesW(name, attributes);
}

// The handle the program's write-open gave it (or a copy of it in this
// process) answers as the file's path does: a program checking what it
// wrote sees the file it will have, not the hidden temp.
BOOL WINAPI hook_GetFileInformationByHandle(HANDLE h, LPBY_HANDLE_FILE_INFORMATION info) {
    if (g_replacements.count() == 0 || !info || busy()) return real_GetFileInformationByHandle(h, info);
    DWORD saved = GetLastError();
    {
        PendingLock lock;
        if (Pending *p = g_replacements.by_handle(h)) {
            if (!pending_view(p, info)) return FALSE;
            SetLastError(saved);
            return TRUE;
        }
    }
    SetLastError(saved);
    return real_GetFileInformationByHandle(h, info);
}

BOOL WINAPI hook_CreateProcessInternalW(HANDLE token, LPCWSTR app, LPWSTR cmd, LPSECURITY_ATTRIBUTES pa,
                                        LPSECURITY_ATTRIBUTES ta, BOOL inherit, DWORD flags, LPVOID env, LPCWSTR dir,
                                        LPSTARTUPINFOW si, LPPROCESS_INFORMATION pi, PHANDLE new_token) {
    if (!g_active || busy() || !pi)
        return real_CreateProcessInternalW(token, app, cmd, pa, ta, inherit, flags, env, dir, si, pi, new_token);
    // The child starts suspended so that the DLL is in it before any of its code runs.
    if (!real_CreateProcessInternalW(token, app, cmd, pa, ta, inherit, flags | CREATE_SUSPENDED, env, dir, si, pi,
                                     new_token))
        return FALSE;
    const char *why = "";
    if (DWORD rc = win_shim::inject_dll(pi->hProcess, g_config.dll_path, &why)) {
        // Running it unprotected would break the promise silently: it does not run.
        message("cannot follow child process %lu: %s; it is not run", pi->dwProcessId, why);
        TerminateProcess(pi->hProcess, 125);
        real_CloseHandle(pi->hThread);
        real_CloseHandle(pi->hProcess);
        *pi = PROCESS_INFORMATION{};
        SetLastError(rc);
        return FALSE;
    }
    if (!(flags & CREATE_SUSPENDED)) ResumeThread(pi->hThread);
    SetLastError(0);
    return TRUE;
}

}  // namespace wrap_lockfile::dll
