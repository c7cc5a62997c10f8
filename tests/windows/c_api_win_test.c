/* The C API from plain C11 on Windows (under Wine): locks and the holder's
 * pid, one-shot and streamed replacement through the CRT descriptor,
 * discard, EEXIST for an exclusive open, error messages. Linked by the C
 * linker with the static core. Exit status: the number of failed checks. */
#include <wrap_lockfile/wrap_lockfile.h>

#include <windows.h>

#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <stdio.h>
#include <string.h>

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
    CHECK(wlf_lock_holder(target) == (pid_t)GetCurrentProcessId());
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
    CHECK(wlf_open(target, O_WRONLY | O_CREAT | O_APPEND, 0666, NULL, &f, &err) == 0);
    if (f) {
        CHECK(wlf_file_kind(f) == WLF_COMMIT_RENAME);
        CHECK(_write(wlf_file_fd(f), "two\n", 4) == 4);
        int kind = -1;
        CHECK(wlf_commit(f, &kind, &err) == 0);
        CHECK(kind == WLF_COMMIT_RENAME);
    }
    CHECK(slurp(target, buf, sizeof buf) == 8 && strcmp(buf, "one\ntwo\n") == 0);

    /* Discard. */
    f = NULL;
    CHECK(wlf_open(target, O_WRONLY | O_TRUNC, 0666, NULL, &f, &err) == 0);
    if (f) {
        CHECK(_write(wlf_file_fd(f), "gone", 4) == 4);
        wlf_discard(f);
    }
    CHECK(slurp(target, buf, sizeof buf) == 8 && strcmp(buf, "one\ntwo\n") == 0);

    /* Exclusive on an existing file. */
    f = NULL;
    CHECK(wlf_open(target, O_WRONLY | O_CREAT | O_EXCL, 0666, NULL, &f, &err) == EEXIST);
    CHECK(f == NULL);
    CHECK(err.step == WLF_STEP_OPEN);

    /* Unsupported flags. */
    CHECK(wlf_open(target, O_RDONLY, 0666, NULL, &f, &err) == EINVAL);

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
