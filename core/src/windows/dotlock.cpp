// The dotlock backend on Windows (README "Windows"): "<target>.lock" is
// created with CreateFileW(CREATE_NEW), which is atomic on local volumes and
// SMB alike, and holds "<pid>\n" (liblockfile's format, for readers on other
// systems). It is opened FILE_FLAG_DELETE_ON_CLOSE: the system removes it
// when the handle closes, at the release or when the holder dies, so there
// is never a stale dotlock to judge or break by pid (pids are reused fast
// on Windows). An existing file of any other content is somebody else's:
// waited for, never removed.
#include "lock_backends.hpp"

#include "internal.hpp"

#include <cerrno>
#include <cstdio>

namespace wrap_lockfile::win {

namespace {

struct Attempt {
    const wchar_t *path;
    HANDLE h;
    const char *op;
};

int try_create(void *ctx) {
    auto *a = static_cast<Attempt *>(ctx);
    // Share read and delete: others may read the pid (and must pass
    // FILE_SHARE_DELETE to open a file that is to be deleted on close).
    HANDLE h = CreateFileW(a->path, GENERIC_WRITE | DELETE, FILE_SHARE_READ | FILE_SHARE_DELETE, nullptr, CREATE_NEW,
                           FILE_ATTRIBUTE_NORMAL | FILE_FLAG_DELETE_ON_CLOSE, nullptr);
    if (h != INVALID_HANDLE_VALUE) {
        a->h = h;
        return 0;
    }
    DWORD e = GetLastError();
    if (e != ERROR_FILE_EXISTS && e != ERROR_ALREADY_EXISTS && e != ERROR_ACCESS_DENIED) return errno_from(e);
    Handle look(open_for_query(a->path, false));
    if (!look) {
        DWORD q = GetLastError();
        // Being deleted (delete pending answers ACCESS_DENIED): it is going.
        if (q == ERROR_ACCESS_DENIED || q == ERROR_FILE_NOT_FOUND) {
            // Nothing there and yet no create: the directory refuses us.
            if (q == ERROR_FILE_NOT_FOUND && e == ERROR_ACCESS_DENIED) return EACCES;
            return EWOULDBLOCK;
        }
        return errno_from(q);
    }
    if (const char *why = lock_file_refusal(look.get(), true)) {
        a->op = why;
        return ENOLCK;
    }
    return EWOULDBLOCK;
}

}  // namespace

int dotlock_acquire(const wchar_t *path, const wlf_lock_options *opt, HANDLE *out, const char **op) {
    Attempt a{path, INVALID_HANDLE_VALUE, nullptr};
    int rc = detail::poll_until(try_create, &a, opt->has_timeout != 0, opt->timeout);
    if (rc != 0) {
        *op = rc == ENOLCK && a.op ? a.op : rc == EWOULDBLOCK || rc == ETIMEDOUT ? "lock" : "create dotlock";
        return rc;
    }
    Handle h(a.h);
    char buf[16];
    int n = snprintf(buf, sizeof buf, "%lu\n", static_cast<unsigned long>(GetCurrentProcessId()));
    DWORD written = 0;
    if (!WriteFile(h.get(), buf, static_cast<DWORD>(n), &written, nullptr) || written != static_cast<DWORD>(n)) {
        *op = "write dotlock";
        return errno_from(GetLastError());  // closing h removes the file
    }
    *out = h.release();
    return 0;
}

DWORD dotlock_holder(const wchar_t *path) {
    Handle h(CreateFileW(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                         OPEN_EXISTING, FILE_FLAG_OPEN_REPARSE_POINT, nullptr));
    if (!h || lock_file_refusal(h.get(), true)) return 0;
    char buf[17];
    DWORD got = 0;
    if (!ReadFile(h.get(), buf, sizeof buf - 1, &got, nullptr) || got == 0) return 0;
    DWORD pid = 0, i = 0;
    for (; i < got && buf[i] >= '0' && buf[i] <= '9' && i < 10; ++i) pid = pid * 10 + static_cast<DWORD>(buf[i] - '0');
    // Exactly "<digits>" or "<digits>\n", as liblockfile writes it.
    if (i == 0 || !(i == got || (i + 1 == got && buf[i] == '\n'))) return 0;
    return pid;
}

}  // namespace wrap_lockfile::win
