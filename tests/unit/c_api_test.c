/* The C API from plain C11: locks, one-shot and streamed replacement (by
 * mode name and by WLF_OPEN_* bits), native handles, discard, error reporting.
 * The ABI's types are pinned at compile time (fixed-width, no POSIX types). Linked statically with the C linker, so a
 * dependency of the core on libstdc++ fails the build; the run checks that
 * none got mapped in anyway. Exit status: number of failed checks (capped). */
#include <wrap_lockfile/wrap_lockfile.h>

#include "wlf_config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ABI 1: fixed-width types where the old header had mode_t and pid_t, and
 * intptr_t native handles. */
_Static_assert(WLF_ABI_VERSION == 1, "the C ABI this test was written for");
_Static_assert(_Generic(wlf_lock_holder(""), int64_t: 1, default: 0), "wlf_lock_holder returns int64_t");
_Static_assert(_Generic(((wlf_write_options *)0)->create_mode, uint32_t: 1, default: 0), "create_mode is uint32_t");
_Static_assert(_Generic(wlf_file_handle((const wlf_file *)0), intptr_t: 1, default: 0), "wlf_file_handle: intptr_t");
_Static_assert(_Generic(wlf_lock_handle((const wlf_lock *)0), intptr_t: 1, default: 0), "wlf_lock_handle: intptr_t");

static int failures;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                              \
        }                                                                            \
    } while (0)

#define CHECK_RC(expr, want)                                                              \
    do {                                                                                  \
        int rc_ = (expr);                                                                 \
        if (rc_ != (want)) {                                                              \
            fprintf(stderr, "%s:%d: %s returned %d (%s), want %d\n", __FILE__, __LINE__, \
                    #expr, rc_, strerror(rc_), (want));                                   \
            ++failures;                                                                   \
        }                                                                                 \
    } while (0)

/* Short enough that every path built from it fits PATH_MAX. */
static char scratch[1024];

static void join(char *out, const char *name) {
    snprintf(out, PATH_MAX, "%s/%s", scratch, name);
}

static int exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Whole file into buf (NUL-terminated); -1 if it cannot be read. */
static ssize_t slurp(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t got = 0;
    ssize_t n;
    while (got + 1 < size && (n = read(fd, buf + got, size - 1 - got)) > 0) got += (size_t)n;
    close(fd);
    buf[got] = '\0';
    return (ssize_t)got;
}

static void spit(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

static int write_str(int fd, const char *text) {
    return write(fd, text, strlen(text)) == (ssize_t)strlen(text);
}

/* Entries in `dir`, to catch leftover temps and lock files. */
static int entries_in(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) ++n;
    closedir(d);
    return n;
}

static int scratch_entries(void) { return entries_in(scratch); }

/* Result of one lock attempt on `target` from a child process, i.e. from a
 * separate open file description as a competing program would make. */
static int try_lock_in_child(const char *target, double timeout) {
    pid_t pid = fork();
    if (pid == 0) {
        wlf_lock_options opt;
        wlf_lock_options_init(&opt);
        opt.has_timeout = 1;
        opt.timeout = timeout;
        wlf_lock *lock = NULL;
        int rc = wlf_lock_acquire(target, &opt, &lock, NULL);
        if (rc == 0) wlf_lock_release(lock, NULL);
        _exit(rc > 255 ? 255 : rc);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

static void test_locks(void) {
    char target[PATH_MAX], lock_path[PATH_MAX + sizeof ".lock"];
    join(target, "locked");
    snprintf(lock_path, sizeof lock_path, "%s.lock", target);

    wlf_lock *lock = NULL, *nested = NULL;
    wlf_error err;
    CHECK_RC(wlf_lock_acquire(target, NULL, &lock, &err), 0);
    CHECK(lock != NULL);
    if (!lock) return;
    CHECK(strcmp(wlf_lock_path(lock), lock_path) == 0);
    CHECK(wlf_lock_fd(lock) >= 0);
    CHECK(wlf_lock_handle(lock) == wlf_lock_fd(lock));
    CHECK(wlf_lock_holder(target) == (WLF_HAVE_PROC ? (int64_t)getpid() : 0)); /* /proc/locks, else unknown */
    CHECK(try_lock_in_child(target, 0) == EWOULDBLOCK);
    CHECK(try_lock_in_child(target, 0.2) == ETIMEDOUT);

    /* The same thread nests instead of deadlocking; the inner release keeps the lock. */
    CHECK_RC(wlf_lock_acquire(target, NULL, &nested, &err), 0);
    CHECK_RC(wlf_lock_release(nested, &err), 0);
    CHECK(try_lock_in_child(target, 0) == EWOULDBLOCK);

    CHECK_RC(wlf_lock_release(lock, &err), 0);
    CHECK(!exists(lock_path));
    CHECK(try_lock_in_child(target, 0) == 0);

    /* keep_lock_file leaves the file for tools that do not verify the inode. */
    wlf_lock_options keep;
    wlf_lock_options_init(&keep);
    keep.keep_lock_file = 1;
    CHECK_RC(wlf_lock_acquire(target, &keep, &lock, &err), 0);
    CHECK_RC(wlf_lock_release(lock, &err), 0);
    CHECK(exists(lock_path));
    unlink(lock_path);
}

static void test_write_content(void) {
    char target[PATH_MAX], buf[256];
    join(target, "content.txt");
    wlf_error err;
    const char text[] = "hello\0binary\n";

    mode_t old_umask = umask(022);
    CHECK_RC(wlf_write_content(target, text, sizeof text - 1, NULL, &err), 0);
    umask(old_umask);

    CHECK(slurp(target, buf, sizeof buf) == (ssize_t)(sizeof text - 1));
    CHECK(memcmp(buf, text, sizeof text - 1) == 0);
    struct stat st;
    CHECK(stat(target, &st) == 0 && (st.st_mode & 07777) == 0644);
    CHECK(scratch_entries() == 1);

    /* Replacing keeps the existing file's mode. */
    CHECK(chmod(target, 0600) == 0);
    CHECK_RC(wlf_write_content(target, "v2\n", 3, NULL, &err), 0);
    CHECK(slurp(target, buf, sizeof buf) == 3 && strcmp(buf, "v2\n") == 0);
    CHECK(stat(target, &st) == 0 && (st.st_mode & 07777) == 0600);
    CHECK(scratch_entries() == 1);
    unlink(target);
}

static void test_open_commit(void) {
    char target[PATH_MAX], real[PATH_MAX], buf[256];
    join(target, "stream.txt");
    spit(target, "old\n");
    CHECK(realpath(target, real) != NULL);
    wlf_error err;

    wlf_file *f = NULL;
    CHECK_RC(wlf_open(target, "w", NULL, &f, &err), 0);
    CHECK(f != NULL);
    if (!f) return;
    CHECK(wlf_file_handle(f) == wlf_file_fd(f));
    CHECK(strcmp(wlf_file_target(f), real) == 0);
    CHECK(wlf_file_kind(f) == WLF_COMMIT_RENAME);
    CHECK(write_str(wlf_file_fd(f), "new "));
    CHECK(write_str(wlf_file_fd(f), "content\n"));
    /* Readers still see the old content until the commit. */
    CHECK(slurp(target, buf, sizeof buf) >= 0 && strcmp(buf, "old\n") == 0);
    int kind = -1;
    CHECK_RC(wlf_commit(f, &kind, &err), 0);
    CHECK(kind == WLF_COMMIT_RENAME);
    CHECK(slurp(target, buf, sizeof buf) >= 0 && strcmp(buf, "new content\n") == 0);
    CHECK(scratch_entries() == 1);

    /* "r+" starts the temp as a copy of the current content. */
    CHECK_RC(wlf_open(target, "r+b", NULL, &f, &err), 0);
    if (!f) return;
    ssize_t n = read(wlf_file_fd(f), buf, sizeof buf - 1);
    CHECK(n == 12);
    buf[n > 0 ? n : 0] = '\0';
    CHECK(strcmp(buf, "new content\n") == 0);
    CHECK(write_str(wlf_file_fd(f), "more\n"));
    CHECK_RC(wlf_commit(f, NULL, &err), 0);
    CHECK(slurp(target, buf, sizeof buf) >= 0 && strcmp(buf, "new content\nmore\n") == 0);

    /* A write error the caller saw fails the commit and keeps the old content. */
    CHECK_RC(wlf_open(target, "w", NULL, &f, &err), 0);
    if (!f) return;
    CHECK(write_str(wlf_file_fd(f), "half"));
    wlf_file_poison(f, EIO);
    CHECK_RC(wlf_commit(f, NULL, &err), EIO);
    CHECK(slurp(target, buf, sizeof buf) >= 0 && strcmp(buf, "new content\nmore\n") == 0);
    CHECK(scratch_entries() == 1);

    /* "x" on an existing target fails like open(2) with O_EXCL. */
    f = NULL;
    CHECK_RC(wlf_open(target, "x", NULL, &f, &err), EEXIST);
    CHECK(f == NULL);
    CHECK(scratch_entries() == 1);

    /* Modes that are no replacement, or no mode at all: EINVAL at the open step. */
    const char *bad[] = {"r", "rb", "q", "", "w+x", "wa"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        f = (wlf_file *)&err; /* must be cleared */
        memset(&err, 0, sizeof err);
        CHECK_RC(wlf_open(target, bad[i], NULL, &f, &err), EINVAL);
        CHECK(f == NULL);
        CHECK(err.step == WLF_STEP_OPEN);
    }
    CHECK_RC(wlf_open(target, NULL, NULL, &f, &err), EINVAL);
    CHECK(slurp(target, buf, sizeof buf) >= 0 && strcmp(buf, "new content\nmore\n") == 0);
    CHECK(scratch_entries() == 1);
    unlink(target);
}

/* One open of "<dir>/t" by mode name (mode != NULL) or by WLF_OPEN_* bits,
 * the target holding "old\n" before when `existing`: then, when the open
 * succeeds, what a pread of byte 0 gives for a reading open (1 byte, 0 for an
 * empty start; -1: a write-only open, not checked, as the temp's descriptor
 * may read too), one write() of "N" and the content after the commit. */
struct open_case {
    const char *mode;
    uint32_t bits;
    int existing;
    int rc;              /* wlf_open's result */
    int reads;           /* pread's result, -1: not checked */
    const char *content; /* after writing "N" and committing */
};

static void check_open_case(const char *dir, const struct open_case *c) {
    char target[PATH_MAX], lock_path[PATH_MAX + 8], buf[64];
    snprintf(target, sizeof target, "%s/t", dir);
    snprintf(lock_path, sizeof lock_path, "%s.lock", target);
    unlink(target);
    if (c->existing) spit(target, "old\n");
    wlf_file *f = NULL;
    wlf_error err;
    memset(&err, 0, sizeof err);
    int rc =
        c->mode ? wlf_open(target, c->mode, NULL, &f, &err) : wlf_open_flags(target, c->bits, 0644, NULL, &f, &err);
    if (rc != c->rc) {
        fprintf(stderr, "mode %s bits 0x%x: rc %d (%s), want %d\n", c->mode ? c->mode : "-", (unsigned)c->bits, rc,
                strerror(rc), c->rc);
        ++failures;
    }
    if (rc != 0) {
        CHECK(f == NULL);
        CHECK(err.code == rc && err.step == WLF_STEP_OPEN);
        /* Refused: the target as it was, no lock file, no temp. */
        CHECK(c->existing ? slurp(target, buf, sizeof buf) == 4 && strcmp(buf, "old\n") == 0 : !exists(target));
        CHECK(entries_in(dir) == (c->existing ? 1 : 0));
        return;
    }
    if (!f) return;
    char byte;
    ssize_t got = pread(wlf_file_fd(f), &byte, 1, 0);
    if (c->reads != -1 && got != c->reads) {
        fprintf(stderr, "mode %s bits 0x%x: pread %zd, want %d\n", c->mode ? c->mode : "-", (unsigned)c->bits, got,
                c->reads);
        ++failures;
    }
    CHECK(write_str(wlf_file_fd(f), "N"));
    CHECK_RC(wlf_commit(f, NULL, &err), 0);
    if (slurp(target, buf, sizeof buf) < 0 || strcmp(buf, c->content) != 0) {
        fprintf(stderr, "mode %s bits 0x%x: content \"%s\", want \"%s\"\n", c->mode ? c->mode : "-", (unsigned)c->bits,
                buf, c->content);
        ++failures;
    }
    CHECK(!exists(lock_path) && entries_in(dir) == 1);
}

/* wlf_open: every mode name means what fopen(3) says; anything else is
 * EINVAL and creates nothing. */
static void test_open_modes(void) {
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/modes", scratch);
    CHECK(mkdir(dir, 0755) == 0);
    const struct open_case cases[] = {
        {"w", 0, 1, 0, -1, "N"},
        {"wb", 0, 1, 0, -1, "N"},
        {"w", 0, 0, 0, -1, "N"},
        {"w+", 0, 1, 0, 0, "N"},
        {"w+b", 0, 1, 0, 0, "N"},
        {"a", 0, 1, 0, -1, "old\nN"},
        {"ab", 0, 1, 0, -1, "old\nN"},
        {"a", 0, 0, 0, -1, "N"},
        {"a+", 0, 1, 0, 1, "old\nN"},
        {"ab+", 0, 1, 0, 1, "old\nN"},
        {"r+", 0, 1, 0, 1, "Nld\n"},
        {"rb+", 0, 1, 0, 1, "Nld\n"},
        {"r+b", 0, 1, 0, 1, "Nld\n"},
        {"r+t", 0, 1, 0, 1, "Nld\n"},
        {"r+", 0, 0, ENOENT, 0, NULL},
        {"x", 0, 0, 0, -1, "N"},
        {"xb", 0, 0, 0, -1, "N"},
        {"x+", 0, 0, 0, 0, "N"},
        {"x", 0, 1, EEXIST, 0, NULL},
        {"x+", 0, 1, EEXIST, 0, NULL},
        /* No replacement, or no mode at all: on a missing target nothing is created. */
        {"r", 0, 0, EINVAL, 0, NULL},
        {"rb", 0, 0, EINVAL, 0, NULL},
        {"", 0, 0, EINVAL, 0, NULL},
        {"q", 0, 0, EINVAL, 0, NULL},
        {"wa", 0, 0, EINVAL, 0, NULL},
        {"w+x", 0, 0, EINVAL, 0, NULL},
        {"+", 0, 0, EINVAL, 0, NULL},
        {"w++", 0, 0, EINVAL, 0, NULL},
        {"we", 0, 0, EINVAL, 0, NULL},
        {"r", 0, 1, EINVAL, 0, NULL},
        {"w ", 0, 1, EINVAL, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) check_open_case(dir, &cases[i]);
    char target[PATH_MAX];
    snprintf(target, sizeof target, "%s/t", dir);
    unlink(target);
    wlf_file *f = (wlf_file *)&f;
    CHECK_RC(wlf_open(target, NULL, NULL, &f, NULL), EINVAL);
    CHECK(f == NULL && entries_in(dir) == 0);
    CHECK(rmdir(dir) == 0);
}

/* wlf_open_flags: what each WLF_OPEN_* bit does alone and in the
 * combinations no mode name spells; no WRITE bit or an unknown bit is
 * EINVAL and creates nothing. */
static void test_open_bits(void) {
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/bits", scratch);
    CHECK(mkdir(dir, 0755) == 0);
    const uint32_t W = WLF_OPEN_WRITE;
    const struct open_case cases[] = {
        {NULL, W, 1, 0, -1, "Nld\n"},  /* WRITE: the content kept, writes from the start */
        {NULL, W, 0, ENOENT, 0, NULL}, /* and nothing created */
        {NULL, W | WLF_OPEN_READ, 1, 0, 1, "Nld\n"},
        {NULL, W | WLF_OPEN_CREATE, 0, 0, -1, "N"},
        {NULL, W | WLF_OPEN_CREATE, 1, 0, -1, "Nld\n"},
        {NULL, W | WLF_OPEN_CREATE | WLF_OPEN_EXCL, 1, EEXIST, 0, NULL},
        {NULL, W | WLF_OPEN_CREATE | WLF_OPEN_EXCL, 0, 0, -1, "N"},
        {NULL, W | WLF_OPEN_TRUNCATE, 1, 0, -1, "N"},
        {NULL, W | WLF_OPEN_TRUNCATE, 0, ENOENT, 0, NULL},
        {NULL, W | WLF_OPEN_READ | WLF_OPEN_TRUNCATE, 1, 0, 0, "N"},
        {NULL, W | WLF_OPEN_APPEND, 1, 0, -1, "old\nN"},
        {NULL, W | WLF_OPEN_APPEND, 0, ENOENT, 0, NULL},
        {NULL, W | WLF_OPEN_NOFOLLOW, 1, 0, -1, "Nld\n"}, /* a plain file: no matter */
        /* No WRITE bit. */
        {NULL, 0, 0, EINVAL, 0, NULL},
        {NULL, WLF_OPEN_READ, 1, EINVAL, 0, NULL},
        {NULL, WLF_OPEN_CREATE | WLF_OPEN_TRUNCATE, 0, EINVAL, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) check_open_case(dir, &cases[i]);
    /* Every bit the ABI does not define, even beside a valid creating open. */
    for (int bit = 7; bit < 32; ++bit) {
        struct open_case c = {NULL, W | WLF_OPEN_CREATE | (UINT32_C(1) << bit), 0, EINVAL, 0, NULL};
        check_open_case(dir, &c);
    }

    /* WLF_OPEN_NOFOLLOW on a symbolic link: ELOOP, the link and its target unchanged. */
    char target[PATH_MAX], link_path[PATH_MAX], buf[16];
    snprintf(target, sizeof target, "%s/t", dir);
    snprintf(link_path, sizeof link_path, "%s/link", dir);
    spit(target, "old\n");
    CHECK(symlink("t", link_path) == 0);
    wlf_file *f = NULL;
    CHECK_RC(wlf_open_flags(link_path, W | WLF_OPEN_NOFOLLOW, 0644, NULL, &f, NULL), ELOOP);
    CHECK(f == NULL);
    /* Without it the link is followed to its target. */
    CHECK_RC(wlf_open_flags(link_path, W | WLF_OPEN_TRUNCATE, 0644, NULL, &f, NULL), 0);
    if (f) {
        CHECK(write_str(wlf_file_fd(f), "via link"));
        CHECK_RC(wlf_commit(f, NULL, NULL), 0);
    }
    struct stat st;
    CHECK(lstat(link_path, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(slurp(target, buf, sizeof buf) >= 0 && strcmp(buf, "via link") == 0);
    CHECK(entries_in(dir) == 2);
    unlink(link_path);
    unlink(target);
    CHECK(rmdir(dir) == 0);
}

/* README "C API": the example as it is printed there. */
static void test_readme_example(void) {
    char path[PATH_MAX], buf[64];
    join(path, "settings.json");
    const char text[] = "{}\n";
    size_t len = sizeof text - 1;
    int committed = -1;

    wlf_file *f;
    wlf_error err;
    if (wlf_open(path, "w", NULL, &f, &err) == 0) {
        if (write(wlf_file_fd(f), text, len) != (ssize_t)len) wlf_file_poison(f, errno);
        committed = wlf_commit(f, NULL, &err);
    }
    CHECK(committed == 0);
    CHECK(slurp(path, buf, sizeof buf) == (ssize_t)len && strcmp(buf, text) == 0);
    CHECK(scratch_entries() == 1);
    unlink(path);
}

/* wlf_open_flags: the combinations no mode name spells, a create mode. */
static void test_open_flags(void) {
    char target[PATH_MAX], buf[256];
    join(target, "bits.txt");
    wlf_error err;
    wlf_file *f = NULL;

    /* Truncating without WLF_OPEN_CREATE: a missing target stays missing. */
    CHECK_RC(wlf_open_flags(target, WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, NULL, &f, &err), ENOENT);
    CHECK(f == NULL && !exists(target));

    /* A new file gets create_mode minus the umask. */
    mode_t old_umask = umask(022);
    CHECK_RC(wlf_open_flags(target, WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_EXCL, 0640, NULL, &f, &err), 0);
    umask(old_umask);
    if (!f) return;
    CHECK(write_str(wlf_file_fd(f), "one\n"));
    CHECK_RC(wlf_commit(f, NULL, &err), 0);
    struct stat st;
    CHECK(stat(target, &st) == 0 && (st.st_mode & 07777) == 0640);

    /* Appending keeps the content; READ makes the descriptor readable. */
    CHECK_RC(wlf_open_flags(target, WLF_OPEN_WRITE | WLF_OPEN_READ | WLF_OPEN_APPEND, 0, NULL, &f, &err), 0);
    if (!f) return;
    CHECK(read(wlf_file_fd(f), buf, 4) == 4 && memcmp(buf, "one\n", 4) == 0);
    CHECK(write_str(wlf_file_fd(f), "two\n"));
    CHECK_RC(wlf_commit(f, NULL, &err), 0);
    CHECK(slurp(target, buf, sizeof buf) >= 0 && strcmp(buf, "one\ntwo\n") == 0);

    /* No WLF_OPEN_WRITE, or a bit the ABI does not define: EINVAL, nothing changed. */
    const uint32_t bad[] = {0, WLF_OPEN_READ, WLF_OPEN_CREATE | WLF_OPEN_TRUNCATE, WLF_OPEN_WRITE | 0x80,
                            WLF_OPEN_WRITE | 0x80000000u};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        memset(&err, 0, sizeof err);
        CHECK_RC(wlf_open_flags(target, bad[i], 0666, NULL, &f, &err), EINVAL);
        CHECK(f == NULL);
        CHECK(err.step == WLF_STEP_OPEN);
    }
    CHECK(slurp(target, buf, sizeof buf) >= 0 && strcmp(buf, "one\ntwo\n") == 0);
    CHECK(scratch_entries() == 1);
    unlink(target);
}

static void test_discard(void) {
    char target[PATH_MAX], lock_path[PATH_MAX + sizeof ".lock"], buf[256];
    join(target, "discard.txt");
    snprintf(lock_path, sizeof lock_path, "%s.lock", target);
    spit(target, "keep me\n");

    wlf_file *f = NULL;
    wlf_error err;
    CHECK_RC(wlf_open(target, "w", NULL, &f, &err), 0);
    if (!f) return;
    CHECK(exists(lock_path));
    CHECK(write_str(wlf_file_fd(f), "never seen\n"));
    wlf_discard(f);

    CHECK(slurp(target, buf, sizeof buf) >= 0 && strcmp(buf, "keep me\n") == 0);
    CHECK(!exists(lock_path));
    CHECK(try_lock_in_child(target, 0) == 0);
    CHECK(scratch_entries() == 1);
    unlink(target);
}

static void test_errors(void) {
    char target[PATH_MAX], buf[WLF_PATH_MAX + 256];
    join(target, "no-such-dir/file");
    wlf_error err;
    memset(&err, 0, sizeof err);

    wlf_lock *lock = NULL;
    CHECK_RC(wlf_lock_acquire(target, NULL, &lock, &err), ENOENT);
    CHECK(lock == NULL);
    CHECK(err.code == ENOENT);
    CHECK(err.step == WLF_STEP_LOCK);
    CHECK(err.op != NULL);
    CHECK(strstr(err.path, "no-such-dir/file.lock") != NULL);

    const char *msg = wlf_error_format(&err, buf, sizeof buf);
    CHECK(msg == buf);
    CHECK(strstr(msg, err.op) != NULL);
    CHECK(strstr(msg, err.path) != NULL);
    CHECK(strstr(msg, strerror(ENOENT)) != NULL);

    /* A short buffer is truncated, still terminated. */
    char tiny[8];
    memset(tiny, 'x', sizeof tiny);
    wlf_error_format(&err, tiny, sizeof tiny);
    CHECK(memchr(tiny, '\0', sizeof tiny) != NULL);

    memset(&err, 0, sizeof err);
    CHECK_RC(wlf_write_content(target, "x", 1, NULL, &err), ENOENT);
    CHECK(err.code == ENOENT && err.op != NULL && err.path[0] != '\0');
    CHECK(err.step == WLF_STEP_LOCK); /* its lock file cannot be created there */
    CHECK(scratch_entries() == 0);
}

/* The point of the C layer: C programs (and the shim inside them) do not get
 * libstdc++ loaded. */
/* Another program's "<target>.lock" (Gemfile.lock, Cargo.lock, git's X.lock)
 * is locked as it is: after 100 replacements of the target it has the same
 * inode, modification time and bytes, and it is still there. */
static void test_foreign_lock_file_unchanged(void) {
    char target[PATH_MAX], lock_path[PATH_MAX + sizeof ".lock"], buf[256];
    join(target, "Gemfile");
    snprintf(lock_path, sizeof lock_path, "%s.lock", target);
    spit(lock_path, "LOCKED DEPS\n");
    struct stat before, after;
    CHECK(lstat(lock_path, &before) == 0);
    wlf_error err;
    for (int i = 0; i < 100; ++i) CHECK_RC(wlf_write_content(target, "x\n", 2, NULL, &err), 0);
    CHECK(slurp(target, buf, sizeof buf) == 2 && strcmp(buf, "x\n") == 0);
    CHECK(lstat(lock_path, &after) == 0);
    CHECK(after.st_ino == before.st_ino && after.st_dev == before.st_dev);
    CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
    CHECK(after.st_nlink == 1);
    CHECK(slurp(lock_path, buf, sizeof buf) >= 0 && strcmp(buf, "LOCKED DEPS\n") == 0);
    CHECK(unlink(lock_path) == 0);
    CHECK(unlink(target) == 0);
}

/* A FIFO at "<target>.lock" is refused at once with ENOLCK, the error naming
 * the lock file and what it is; nothing waits on the FIFO, not even with a
 * timeout, and it stays. */
static void test_fifo_lock_file_refused(void) {
    char target[PATH_MAX], lock_path[PATH_MAX + sizeof ".lock"], text[PATH_MAX + 256], want[PATH_MAX + 64];
    join(target, "piped");
    snprintf(lock_path, sizeof lock_path, "%s.lock", target);
    CHECK(mkfifo(lock_path, 0644) == 0);
    wlf_write_options opt;
    wlf_write_options_init(&opt);
    opt.lock.has_timeout = 1;
    opt.lock.timeout = 1;
    wlf_error err;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_RC(wlf_write_content(target, "x", 1, &opt, &err), ENOLCK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9 < 0.5);
    CHECK(strcmp(err.path, lock_path) == 0);
    CHECK(err.step == WLF_STEP_LOCK);
    wlf_error_format(&err, text, sizeof text);
    snprintf(want, sizeof want, "lock file '%s' is a FIFO", lock_path);
    CHECK(strstr(text, want) != NULL);
    struct stat st;
    CHECK(lstat(lock_path, &st) == 0 && S_ISFIFO(st.st_mode));
    CHECK(!exists(target));
    CHECK(unlink(lock_path) == 0);
}

static void test_no_libstdcxx(void) {
#ifdef __SANITIZE_ADDRESS__
    /* The ASan and UBSan runtimes (tools/dev test's build-asan) bring libstdc++
     * themselves; the unsanitized build checks the core. */
    return;
#endif
    FILE *maps = fopen("/proc/self/maps", "re");
    CHECK(maps != NULL);
    if (!maps) return;
    char line[4096];
    while (fgets(line, sizeof line, maps)) {
        if (strstr(line, "libstdc++")) {
            fprintf(stderr, "libstdc++ is mapped: %s", line);
            ++failures;
        }
    }
    fclose(maps);
}

/* The generated <wrap_lockfile/version.h> is the project's version, and its
 * parts add up to its string. */
static void test_version(void) {
    CHECK(strcmp(WLF_VERSION_STRING, WLF_TEST_PROJECT_VERSION) == 0);
    char parts[64];
    snprintf(parts, sizeof parts, "%d.%d.%d", WLF_VERSION_MAJOR, WLF_VERSION_MINOR, WLF_VERSION_PATCH);
    CHECK(strcmp(parts, WLF_VERSION_STRING) == 0);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    int len = snprintf(scratch, sizeof scratch, "%s/wlf-c-api-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (len < 0 || (size_t)len >= sizeof scratch) {
        fprintf(stderr, "TMPDIR too long\n");
        return 1;
    }
    if (!mkdtemp(scratch)) {
        perror("mkdtemp");
        return 1;
    }

    test_version();
    test_locks();
    test_write_content();
    test_open_commit();
    test_open_flags();
    test_open_modes();
    test_open_bits();
    test_readme_example();
    test_discard();
    test_errors();
    test_foreign_lock_file_unchanged();
    test_fifo_lock_file_refused();
    test_no_libstdcxx();

    if (rmdir(scratch) != 0) {
        fprintf(stderr, "scratch directory %s not empty: %s\n", scratch, strerror(errno));
        ++failures;
    }
    if (failures) fprintf(stderr, "c_api_test: %d check(s) failed\n", failures);
    else printf("c_api_test: all checks passed\n");
    return failures > 100 ? 100 : failures;
}
