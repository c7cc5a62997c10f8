// The LockFileEx backend (README "Windows"). Windows byte-range locks are
// mandatory: a locked range cannot be read by anybody else. The lock is
// therefore on one byte at offset 2^62, far beyond any data, so a lock
// file's content (somebody's Gemfile.lock) stays readable; nothing is ever
// written into a lock file, and one that exists is opened read-only.
//
// Waiting: without a timeout a blocking LockFileEx (a synchronous handle);
// with one, LOCKFILE_FAIL_IMMEDIATELY polled with the core's jittered
// backoff against a monotonic deadline (an overlapped wait never completes
// under Wine 8).
//
// The holder's pid: Windows has no /proc/locks, and the lock file is not
// ours to write into. The holder publishes its pid in locks instead: after
// taking the lock it locks, exclusively, the byte kPidBase + 1 + i for each
// bit i set in its pid, then kPidBase (the "published" byte). Anybody can
// read the pid back by trying shared one-byte locks (a failed try is a set
// bit) without disturbing the holder or each other. It is for messages: a
// reader racing a release and a new acquisition may read a mix.
#include "lock_backends.hpp"

#include "internal.hpp"

#include <cerrno>

namespace wrap_lockfile::win {

namespace {

constexpr DWORD kLockOffsetHigh = 0x40000000;  // offset 2^62, as (high << 32)
constexpr DWORD kPidBase = 0x100;              // low words after the lock byte
constexpr int kPidBits = 32;
constexpr int kMaxOpenRetries = 1000;
constexpr DWORD kShareAll = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;

OVERLAPPED at(DWORD low) {
    OVERLAPPED ov{};
    ov.Offset = low;
    ov.OffsetHigh = kLockOffsetHigh;
    return ov;
}

// 0, EWOULDBLOCK (held by somebody else) or an errno.
int lock_byte(HANDLE h, DWORD low, DWORD flags) {
    OVERLAPPED ov = at(low);
    if (LockFileEx(h, flags, 0, 1, 0, &ov)) return 0;
    DWORD e = GetLastError();
    if (e == ERROR_LOCK_VIOLATION || e == ERROR_IO_PENDING) return EWOULDBLOCK;
    return errno_from(e);
}

void unlock_byte(HANDLE h, DWORD low) {
    OVERLAPPED ov = at(low);
    UnlockFileEx(h, 0, 1, 0, &ov);
}

int try_lock(void *ctx) {
    return lock_byte(static_cast<HANDLE>(ctx), 0, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY);
}

void publish_pid(HANDLE h) {
    DWORD pid = GetCurrentProcessId();
    // Blocking locks: a reader holds one of these bytes for the moment of
    // its try only, and never waits while it does.
    for (int i = 0; i < kPidBits; ++i)
        if (pid & (DWORD{1} << i)) lock_byte(h, kPidBase + 1 + i, LOCKFILE_EXCLUSIVE_LOCK);
    lock_byte(h, kPidBase, LOCKFILE_EXCLUSIVE_LOCK);
}

// Whether somebody holds the byte exclusively: a shared try fails.
bool byte_taken(HANDLE h, DWORD low) {
    int rc = lock_byte(h, low, LOCKFILE_FAIL_IMMEDIATELY);
    if (rc == 0) unlock_byte(h, low);
    return rc == EWOULDBLOCK;
}

// Opens the existing lock file at `path` read-only, if it is one (a regular
// file with one link, reached without following a link). EAGAIN: it went
// away or changed meanwhile, look again.
int open_existing(const wchar_t *path, HANDLE *out, const char **op) {
    Handle look(open_for_query(path, false));
    if (!look) return GetLastError() == ERROR_FILE_NOT_FOUND ? EAGAIN : errno_from(GetLastError());
    if (const char *why = lock_file_refusal(look.get(), false)) {
        *op = why;
        return ENOLCK;
    }
    FileId seen{};
    if (int rc = file_id(look.get(), &seen)) return rc;
    Handle h(CreateFileW(path, GENERIC_READ, kShareAll, nullptr, OPEN_EXISTING, FILE_FLAG_OPEN_REPARSE_POINT,
                         nullptr));
    if (!h) return GetLastError() == ERROR_FILE_NOT_FOUND ? EAGAIN : errno_from(GetLastError());
    FileId got{};
    if (int rc = file_id(h.get(), &got)) return rc;
    if (!(got == seen)) return EAGAIN;  // swapped between the look and the open
    if (const char *why = lock_file_refusal(h.get(), false)) {
        *op = why;
        return ENOLCK;
    }
    *out = h.release();
    return 0;
}

int open_lock_file(const wchar_t *path, HANDLE *out, const char **op) {
    *op = "open lock file";
    for (int attempt = 0; attempt < kMaxOpenRetries; ++attempt) {
        HANDLE h = CreateFileW(path, GENERIC_READ | GENERIC_WRITE, kShareAll, nullptr, CREATE_NEW,
                               FILE_ATTRIBUTE_NORMAL, nullptr);
        if (h != INVALID_HANDLE_VALUE) {
            *out = h;
            return 0;
        }
        DWORD create_error = GetLastError();
        // ACCESS_DENIED: a directory we may not create in may still hold a
        // lock file we can lock (or something that is no lock file at all).
        if (create_error != ERROR_FILE_EXISTS && create_error != ERROR_ALREADY_EXISTS &&
            create_error != ERROR_ACCESS_DENIED)
            return errno_from(create_error);
        int rc = open_existing(path, out, op);
        if (rc == EAGAIN) {
            if (create_error == ERROR_ACCESS_DENIED) return EACCES;  // nothing there, and we may not create
            continue;
        }
        return rc;
    }
    *op = "lock file %s keeps changing";
    return ENOLCK;
}

}  // namespace

int file_id(HANDLE h, FileId *id) {
    BY_HANDLE_FILE_INFORMATION info;
    if (!GetFileInformationByHandle(h, &info)) return errno_from(GetLastError());
    *id = FileId{info.dwVolumeSerialNumber, info.nFileIndexHigh, info.nFileIndexLow};
    return 0;
}

const char *lock_file_refusal(HANDLE h, bool any_links) {
    static const char *const kLinkOps[] = {
        "lock file %s has 2 links", "lock file %s has 3 links", "lock file %s has 4 links",
        "lock file %s has 5 links", "lock file %s has 6 links", "lock file %s has 7 links",
        "lock file %s has 8 links", "lock file %s has 9 links",
    };
    if (GetFileType(h) != FILE_TYPE_DISK) return "lock file %s is a device";
    BY_HANDLE_FILE_INFORMATION info;
    if (!GetFileInformationByHandle(h, &info)) return "lock file %s cannot be examined";
    if (info.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) return "lock file %s is a symbolic link";
    if (info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) return "lock file %s is a directory";
    if (any_links || info.nNumberOfLinks <= 1) return nullptr;
    size_t n = sizeof kLinkOps / sizeof kLinkOps[0];
    return info.nNumberOfLinks - 2 < n ? kLinkOps[info.nNumberOfLinks - 2] : "lock file %s has more than 9 links";
}

int byte_lock_acquire(const wchar_t *path, const wlf_lock_options *opt, HANDLE *out, const char **op) {
    HANDLE raw = INVALID_HANDLE_VALUE;
    if (int rc = open_lock_file(path, &raw, op)) return rc;
    Handle h(raw);
    *op = "lock";
    int rc;
    if (!opt->has_timeout)
        rc = lock_byte(h.get(), 0, LOCKFILE_EXCLUSIVE_LOCK);
    else
        rc = detail::poll_until(try_lock, h.get(), true, opt->timeout);
    if (rc != 0) {
        if (rc != EWOULDBLOCK && rc != ETIMEDOUT) *op = "LockFileEx";
        return rc;
    }
    publish_pid(h.get());
    *out = h.release();
    return 0;
}

void byte_lock_release(HANDLE h) {
    // The published byte first: a reader stops believing the bits.
    unlock_byte(h, kPidBase);
    DWORD pid = GetCurrentProcessId();
    for (int i = 0; i < kPidBits; ++i)
        if (pid & (DWORD{1} << i)) unlock_byte(h, kPidBase + 1 + i);
    // Explicitly: the locks of a closed handle go "when resources allow".
    unlock_byte(h, 0);
    CloseHandle(h);
}

DWORD byte_lock_holder(const wchar_t *path) {
    Handle h(CreateFileW(path, GENERIC_READ, kShareAll, nullptr, OPEN_EXISTING, FILE_FLAG_OPEN_REPARSE_POINT,
                         nullptr));
    if (!h || lock_file_refusal(h.get(), false)) return 0;
    if (!byte_taken(h.get(), kPidBase)) return 0;
    DWORD pid = 0;
    for (int i = 0; i < kPidBits; ++i)
        if (byte_taken(h.get(), kPidBase + 1 + i)) pid |= DWORD{1} << i;
    // Released while we read: the bits may belong to nobody.
    return byte_taken(h.get(), kPidBase) ? pid : 0;
}

}  // namespace wrap_lockfile::win
