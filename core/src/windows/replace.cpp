// The replacement API on Windows: resolve, lock "<final target>.lock", open
// the target as the program would, create the temp next to it (a copy of the
// content for modes that keep it), and at the commit rename it over the
// target (commit.cpp). The caller's descriptor is a CRT descriptor
// (_open_osfhandle) on the temp, so read/write/lseek work on it. README
// "Windows".
#include "file.hpp"

#include "internal.hpp"
#include "open_mode.hpp"  // kOpenNoFollow

#include <fcntl.h>
#include <io.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

using namespace wrap_lockfile;
using detail::fail;

namespace {

constexpr int kSupportedFlags =
    O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_BINARY | O_TEXT | O_NOINHERIT | detail::kOpenNoFollow;
// Attributes a replacement carries over (READONLY never gets here: the
// target's open for writing refuses it).
constexpr DWORD kKeptAttributes = FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM | FILE_ATTRIBUTE_ARCHIVE |
                                  FILE_ATTRIBUTE_NOT_CONTENT_INDEXED;

wlf_file *new_file() {
    void *mem = malloc(sizeof(wlf_file));
    return mem ? new (mem) wlf_file() : nullptr;
}

void free_file(wlf_file *f) {
    f->~wlf_file();
    free(f);
}

// Drops what wlf_open has built so far and returns rc (recorded in err by the caller).
int abandon(wlf_file *f, int rc) {
    if (f->kind == WLF_COMMIT_RENAME) win::remove_temp(f);
    else if (f->fd >= 0) _close(f->fd);
    else if (f->h != INVALID_HANDLE_VALUE) CloseHandle(f->h);
    if (f->lock) wlf_lock_release(f->lock, nullptr);
    free_file(f);
    return rc;
}

// The CRT descriptor over f->h (which it then owns).
int attach_fd(wlf_file *f, int flags) {
    int crt = (flags & O_APPEND ? _O_APPEND : 0) | (flags & O_TEXT ? _O_TEXT : 0);
    int fd = _open_osfhandle(reinterpret_cast<intptr_t>(f->h), crt);
    if (fd < 0) return EMFILE;
    f->fd = fd;
    return 0;
}

int open_in_place(wlf_file *f, int flags) {
    f->h = win::open_target(f->target_w, true, (flags & O_ACCMODE) == O_RDWR, false);
    if (f->h == INVALID_HANDLE_VALUE) return win::errno_from(GetLastError());
    if (flags & O_TRUNC) {
        if (!SetEndOfFile(f->h)) return win::errno_from(GetLastError());
    }
    return attach_fd(f, flags);
}

// The temp for an existing target: its content (unless truncating) and DACL.
int fill_temp(wlf_file *f, int flags, const char **op) {
    bool keep_content = !(flags & O_TRUNC);
    *op = "open";
    win::Handle target(win::open_target(f->target_w, true, keep_content, true));
    if (!target) return win::errno_from(GetLastError());
    FILE_BASIC_INFO basic;
    *op = "examine";
    if (!GetFileInformationByHandleEx(target.get(), FileBasicInfo, &basic, sizeof basic))
        return win::errno_from(GetLastError());
    f->basic.CreationTime = basic.CreationTime;
    f->basic.FileAttributes = (basic.FileAttributes & kKeptAttributes) ? basic.FileAttributes & kKeptAttributes
                                                                       : FILE_ATTRIBUTE_NORMAL;
    *op = "copy security descriptor of";
    if (int rc = win::copy_security(target.get(), f->h)) return rc;
    if (keep_content) {
        *op = "copy content of";
        if (int rc = win::copy_content(target.get(), f->h)) return rc;
        LARGE_INTEGER zero{};
        if (!(flags & O_APPEND) && !SetFilePointerEx(f->h, zero, nullptr, FILE_BEGIN))
            return win::errno_from(GetLastError());
    }
    return 0;
}

}  // namespace

int detail::open_replacement(const char *path, int flags, uint32_t, const wlf_write_options *opt_in, wlf_file **out,
                             wlf_error *err) {
    *out = nullptr;
    wlf_write_options defaults;
    wlf_write_options_init(&defaults);
    const wlf_write_options *opt = opt_in ? opt_in : &defaults;
    if (!path || !*path) return fail(err, ENOENT, WLF_STEP_OPEN, "open", path);
    int acc = flags & O_ACCMODE;
    if ((acc != O_WRONLY && acc != O_RDWR) || (flags & ~kSupportedFlags))
        return fail(err, EINVAL, WLF_STEP_OPEN, "open flags", path);
    const char *suffix = opt->temp_suffix ? opt->temp_suffix : "~~";
    if (strpbrk(suffix, "/\\:") || strlen(suffix) >= 60) return fail(err, EINVAL, WLF_STEP_OPEN, "temp suffix", suffix);
    if ((flags & detail::kOpenNoFollow) && win::is_link(path)) return fail(err, ELOOP, WLF_STEP_OPEN, "open", path);

    wlf_file *f = new_file();
    if (!f) return fail(err, ENOMEM, WLF_STEP_OPEN, "open", path);
    f->durability = opt->durability;
    f->exclusive = (flags & O_CREAT) && (flags & O_EXCL);
    BY_HANDLE_FILE_INFORMATION info{};
    DWORD type = FILE_TYPE_DISK;
    bool exists = false;
    const char *op = "open";
    int rc = win::resolve_target(path, &f->target_w, &exists, &info, &type, &op);
    if (!rc) rc = win::to_utf8(f->target_w.get(), f->target, sizeof f->target);
    if (rc) {
        abandon(f, rc);
        return fail(err, rc, WLF_STEP_OPEN, op, path);
    }
    f->target_existed = exists;
    if (exists && f->exclusive) return fail(err, abandon(f, EEXIST), WLF_STEP_OPEN, "open", f->target);
    if (!exists && !(flags & O_CREAT)) return fail(err, abandon(f, ENOENT), WLF_STEP_OPEN, "open", f->target);

    if (exists && type != FILE_TYPE_DISK) {
        // A device or pipe (NUL, CON, \\.\pipe\x): written directly, no lock.
        f->kind = WLF_COMMIT_PASSTHROUGH;
        HANDLE h = CreateFileW(f->target_w.get(), GENERIC_WRITE | (acc == O_RDWR ? GENERIC_READ : 0),
                               FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr, OPEN_EXISTING, 0, nullptr);
        if (h == INVALID_HANDLE_VALUE) return fail(err, abandon(f, win::errno_from(GetLastError())), WLF_STEP_OPEN, "open", f->target);
        f->h = h;
        if ((rc = attach_fd(f, flags))) return fail(err, abandon(f, rc), WLF_STEP_OPEN, "open", f->target);
        *out = f;
        return 0;
    }
    if (exists && (info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY))
        return fail(err, abandon(f, EISDIR), WLF_STEP_OPEN, "open", f->target);

    if (opt->use_lock) {
        if ((rc = wlf_lock_acquire(f->target, &opt->lock, &f->lock, err))) {
            f->lock = nullptr;
            return abandon(f, rc);
        }
    }
    // Under the lock: what is there now decides.
    win::Handle now(win::open_for_query(f->target_w.get(), false));
    bool exists_now = static_cast<bool>(now);
    if (exists_now && !exists && f->exclusive) return fail(err, abandon(f, EEXIST), WLF_STEP_OPEN, "open", f->target);
    if (exists_now) {
        if (!GetFileInformationByHandle(now.get(), &info))
            return fail(err, abandon(f, win::errno_from(GetLastError())), WLF_STEP_OPEN, "examine", f->target);
        if (info.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT)
            // Became a link after we resolved it: look again next time.
            return fail(err, abandon(f, EAGAIN), WLF_STEP_OPEN, "target %s changed while being opened", f->target);
        // Windows refuses to open a read-only file for writing; Wine running
        // as root does not, so the attribute is checked as Windows would.
        if (info.dwFileAttributes & FILE_ATTRIBUTE_READONLY)
            return fail(err, abandon(f, EACCES), WLF_STEP_OPEN, "open", f->target);
    } else if (!(flags & O_CREAT)) {
        return fail(err, abandon(f, ENOENT), WLF_STEP_OPEN, "open", f->target);
    }
    now.reset();
    f->target_existed = exists_now;

    bool in_place = exists_now && (opt->lock_only || (info.nNumberOfLinks > 1 && opt->hardlink_policy == WLF_HARDLINK_KEEP));
    if (in_place) {
        f->kind = WLF_COMMIT_IN_PLACE;
        if ((rc = open_in_place(f, flags))) return fail(err, abandon(f, rc), WLF_STEP_OPEN, "open", f->target);
        *out = f;
        return 0;
    }
    if (opt->lock_only) {
        // A new file under lock_only: created in place, like open(2) would.
        f->kind = WLF_COMMIT_IN_PLACE;
        f->h = CreateFileW(f->target_w.get(), GENERIC_WRITE | (acc == O_RDWR ? GENERIC_READ : 0),
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr, CREATE_NEW,
                           FILE_ATTRIBUTE_NORMAL, nullptr);
        if (f->h == INVALID_HANDLE_VALUE) return fail(err, abandon(f, win::errno_from(GetLastError())), WLF_STEP_OPEN, "create", f->target);
        if ((rc = attach_fd(f, flags))) return fail(err, abandon(f, rc), WLF_STEP_OPEN, "open", f->target);
        *out = f;
        return 0;
    }

    f->kind = WLF_COMMIT_RENAME;
    if ((rc = win::create_temp(f->target_w, suffix, &f->temp_w, &f->h)))
        return fail(err, abandon(f, rc), WLF_STEP_TEMP, "create temporary file for", f->target);
    f->basic.FileAttributes = FILE_ATTRIBUTE_NORMAL;
    if (exists_now && (rc = fill_temp(f, flags, &op))) {
        // The program's own open would have been refused: that is an open
        // error, not a temp one.
        wlf_step step = strcmp(op, "open") == 0 ? WLF_STEP_OPEN : WLF_STEP_TEMP;
        return fail(err, abandon(f, rc), step, op, f->target);
    }
    if ((rc = attach_fd(f, flags))) return fail(err, abandon(f, rc), WLF_STEP_TEMP, "create temporary file for", f->target);
    *out = f;
    return 0;
}

extern "C" int wlf_file_fd(const wlf_file *f) { return f ? f->fd : -1; }

// The HANDLE under the CRT descriptor (which owns it).
extern "C" intptr_t wlf_file_handle(const wlf_file *f) {
    return f ? reinterpret_cast<intptr_t>(f->h) : reinterpret_cast<intptr_t>(INVALID_HANDLE_VALUE);
}
extern "C" const char *wlf_file_target(const wlf_file *f) { return f ? f->target : ""; }
extern "C" int wlf_file_kind(const wlf_file *f) { return f ? f->kind : WLF_COMMIT_RENAME; }

extern "C" void wlf_file_poison(wlf_file *f, int error) {
    if (f && !f->poison) f->poison = error ? error : EIO;
}

extern "C" int wlf_commit(wlf_file *f, int *kind_out, wlf_error *err) {
    if (!f) return fail(err, EINVAL, WLF_STEP_OPEN, "commit", nullptr);
    if (kind_out) *kind_out = f->kind;
    int rc = 0;
    if (f->poison) {
        rc = fail(err, f->poison, f->kind == WLF_COMMIT_RENAME ? WLF_STEP_WRITE : WLF_STEP_IN_PLACE, "write to",
                  f->target);
        if (f->kind == WLF_COMMIT_RENAME) win::remove_temp(f);
    } else if (f->kind == WLF_COMMIT_RENAME) {
        rc = win::commit_rename(f, err);
    } else {
        if (f->kind == WLF_COMMIT_IN_PLACE && f->durability != WLF_DURABILITY_NONE && !FlushFileBuffers(f->h))
            rc = fail(err, win::errno_from(GetLastError()), WLF_STEP_IN_PLACE, "fsync", f->target);
    }
    if (f->fd >= 0) _close(f->fd);
    f->fd = -1;
    f->h = INVALID_HANDLE_VALUE;
    wlf_error unlock_err{};
    int urc = f->lock ? wlf_lock_release(f->lock, &unlock_err) : 0;
    if (!rc && urc && err) *err = unlock_err;
    free_file(f);
    return rc ? rc : urc;
}

extern "C" int wlf_file_detach(wlf_file *f) {
    if (!f || f->kind != WLF_COMMIT_PASSTHROUGH) {
        errno = EINVAL;
        return -1;
    }
    int fd = f->fd;
    if (f->lock) wlf_lock_release(f->lock, nullptr);
    free_file(f);
    return fd;
}

extern "C" void wlf_discard(wlf_file *f) {
    if (!f) return;
    if (f->kind == WLF_COMMIT_RENAME) win::remove_temp(f);
    else if (f->fd >= 0) _close(f->fd);
    if (f->lock) wlf_lock_release(f->lock, nullptr);
    free_file(f);
}

extern "C" int wlf_write_content(const char *path, const void *data, size_t size, const wlf_write_options *opt,
                                 wlf_error *err) {
    wlf_file *f = nullptr;
    if (int rc = detail::open_replacement(path, O_WRONLY | O_CREAT | O_TRUNC | O_BINARY, 0666, opt, &f, err))
        return rc;
    const char *p = static_cast<const char *>(data);
    while (size > 0) {
        DWORD chunk = size > 0x40000000 ? 0x40000000 : static_cast<DWORD>(size), put = 0;
        if (!WriteFile(f->h, p, chunk, &put, nullptr)) {
            int rc = win::errno_from(GetLastError());
            wlf_discard(f);
            return fail(err, rc, WLF_STEP_WRITE, "write to", path);
        }
        p += put;
        size -= put;
    }
    return wlf_commit(f, nullptr, err);
}
