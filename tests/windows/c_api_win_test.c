/* The C API from plain C11 on Windows (under Wine): locks and the holder's
 * pid, the lock's HANDLE, one-shot and streamed replacement (by mode name
 * and by WLF_OPEN_* bits) through the CRT descriptor and through the native
 * HANDLE, discard, EEXIST for an exclusive open, EINVAL for modes and bits
 * that are no replacement, error messages. Linked by the C linker with the
 * static core. Exit status: the number of failed checks. */
#include <wrap_lockfile/wrap_lockfile.h>

#include <windows.h>

#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

/* ABI 1: the holder is an int64_t, handles are intptr_t. */
_Static_assert(WLF_ABI_VERSION == 1, "the C ABI this test was written for");
_Static_assert(_Generic(wlf_lock_holder(""), int64_t: 1, default: 0), "wlf_lock_holder returns int64_t");
_Static_assert(_Generic(wlf_file_handle((const wlf_file *)0), intptr_t: 1, default: 0), "wlf_file_handle: intptr_t");

static int failures;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                              \
        }                                                                            \
    } while (0)

static char scratch[MAX_PATH];

static void join(char *out, const char *name) { snprintf(out, MAX_PATH * 2, "%s\\%s", scratch, name); }

static int slurp(const char *path, char *buf, int size) {
    HANDLE h = CreateFileA(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_EXISTING, 0, NULL);
    if (h == INVALID_HANDLE_VALUE) return -1;
    DWORD got = 0;
    BOOL ok = ReadFile(h, buf, (DWORD)size - 1, &got, NULL);
    CloseHandle(h);
    buf[ok ? got : 0] = '\0';
    return ok ? (int)got : -1;
}

/* Entries in the scratch directory (leftover temps show up here). */
static int entries(void) {
    char pattern[MAX_PATH * 2];
    join(pattern, "*");
    WIN32_FIND_DATAA d;
    HANDLE h = FindFirstFileA(pattern, &d);
    if (h == INVALID_HANDLE_VALUE) return 0;
    int n = 0;
    do {
        if (strcmp(d.cFileName, ".") && strcmp(d.cFileName, "..")) ++n;
    } while (FindNextFileA(h, &d));
    FindClose(h);
    return n;
}

int main(void) {
    char tmp[MAX_PATH];
    GetTempPathA(sizeof tmp, tmp);
    snprintf(scratch, sizeof scratch, "%swlf-c-api-%lu", tmp, (unsigned long)GetCurrentProcessId());
    CHECK(CreateDirectoryA(scratch, NULL));
    char target[MAX_PATH * 2], buf[256];
    join(target, "data.txt");

    /* Locks: held, the holder is us, a second handle without nesting is busy. */
    wlf_lock_options lo;
    wlf_lock_options_init(&lo);
    wlf_lock *lock = NULL, *again = NULL;
    wlf_error err;
    memset(&err, 0, sizeof err);
    CHECK(wlf_lock_acquire(target, &lo, &lock, &err) == 0);
    CHECK(wlf_lock_holder(target) == (int64_t)GetCurrentProcessId());
    /* The byte-locked lock file's HANDLE, not a CRT descriptor. */
    CHECK(wlf_lock_fd(lock) == -1);
    CHECK(wlf_lock_handle(lock) != -1 && GetFileType((HANDLE)wlf_lock_handle(lock)) == FILE_TYPE_DISK);
    CHECK(strstr(wlf_lock_path(lock), "data.txt.lock") != NULL);
    lo.no_nesting = 1;
    lo.has_timeout = 1;
    lo.timeout = 0;
    CHECK(wlf_lock_acquire(target, &lo, &again, &err) == EWOULDBLOCK);
    CHECK(err.step == WLF_STEP_LOCK);
    CHECK(strstr(wlf_error_format(&err, buf, sizeof buf), "data.txt.lock") != NULL);
    CHECK(wlf_lock_release(lock, &err) == 0);
    CHECK(wlf_lock_holder(target) == 0);

    /* One-shot replacement. */
    CHECK(wlf_write_content(target, "one\n", 4, NULL, &err) == 0);
    CHECK(slurp(target, buf, sizeof buf) == 4 && strcmp(buf, "one\n") == 0);

    /* Streamed, append mode, through the CRT descriptor. */
    wlf_file *f = NULL;
    CHECK(wlf_open(target, "a", NULL, &f, &err) == 0);
    if (f) {
        CHECK(wlf_file_kind(f) == WLF_COMMIT_RENAME);
        CHECK(_write(wlf_file_fd(f), "two\n", 4) == 4);
        int kind = -1;
        CHECK(wlf_commit(f, &kind, &err) == 0);
        CHECK(kind == WLF_COMMIT_RENAME);
    }
    CHECK(slurp(target, buf, sizeof buf) == 8 && strcmp(buf, "one\ntwo\n") == 0);

    /* Through the native handle: the temp's, which WriteFile reaches and
     * the commit renames over the target. */
    f = NULL;
    CHECK(wlf_open_flags(target, WLF_OPEN_WRITE | WLF_OPEN_APPEND, 0, NULL, &f, &err) == 0);
    if (f) {
        HANDLE h = (HANDLE)wlf_file_handle(f);
        CHECK(h != INVALID_HANDLE_VALUE && GetFileType(h) == FILE_TYPE_DISK);
        CHECK(h == (HANDLE)_get_osfhandle(wlf_file_fd(f)));
        DWORD put = 0;
        CHECK(WriteFile(h, "six\n", 4, &put, NULL) && put == 4);
        CHECK(slurp(target, buf, sizeof buf) == 8); /* not yet */
        CHECK(wlf_commit(f, NULL, &err) == 0);
    }
    CHECK(slurp(target, buf, sizeof buf) == 12 && strcmp(buf, "one\ntwo\nsix\n") == 0);

    /* Discard. */
    f = NULL;
    CHECK(wlf_open(target, "w", NULL, &f, &err) == 0);
    if (f) {
        CHECK(_write(wlf_file_fd(f), "gone", 4) == 4);
        wlf_discard(f);
    }
    CHECK(slurp(target, buf, sizeof buf) == 12 && strcmp(buf, "one\ntwo\nsix\n") == 0);

    /* Exclusive on an existing file, by name and by bits. */
    f = NULL;
    CHECK(wlf_open(target, "x", NULL, &f, &err) == EEXIST);
    CHECK(f == NULL);
    CHECK(err.step == WLF_STEP_OPEN);
    CHECK(wlf_open_flags(target, WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_EXCL, 0666, NULL, &f, &err) == EEXIST);

    /* No replacement: a read-only mode, no mode, no WRITE bit, unknown bits. */
    CHECK(wlf_open(target, "r", NULL, &f, &err) == EINVAL && f == NULL);
    CHECK(wlf_open(target, "q", NULL, &f, &err) == EINVAL && f == NULL);
    CHECK(wlf_open(target, NULL, NULL, &f, &err) == EINVAL && f == NULL);
    CHECK(wlf_open_flags(target, WLF_OPEN_READ, 0666, NULL, &f, &err) == EINVAL && f == NULL);
    CHECK(wlf_open_flags(target, WLF_OPEN_WRITE | 0x80, 0666, NULL, &f, &err) == EINVAL && f == NULL);
    CHECK(slurp(target, buf, sizeof buf) == 12 && strcmp(buf, "one\ntwo\nsix\n") == 0);

    /* The target and its kept lock file, nothing else. */
    CHECK(entries() == 2);

    char lockfile[MAX_PATH * 2];
    join(lockfile, "data.txt.lock");
    DeleteFileA(lockfile);
    DeleteFileA(target);
    RemoveDirectoryA(scratch);
    if (failures) fprintf(stderr, "%d checks failed\n", failures);
    return failures > 100 ? 100 : failures;
}
