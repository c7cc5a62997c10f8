/* What a program sees of a file it is writing, asked every way libc offers.
 *
 *   coherent_probe identity FILE NEWFILE [LINK]
 *       FILE exists; NEWFILE does not; LINK (optional) is a symlink to FILE.
 *       Opens FILE (O_TRUNC) and NEWFILE (O_CREAT|O_EXCL) for writing, writes,
 *       and checks, in this process and in a forked child, that every stat
 *       and access entry on the paths agrees with fstat on the descriptors
 *       (device, inode, size, mtime, a link count of at least 1), that FILE
 *       keeps its inode number, that read-opens read what was written (at the
 *       number open(2) gives), and that lstat of LINK shows the link.
 *   coherent_probe renames FILE
 *       FILE does not exist. Creates it for writing (O_EXCL) and writes; then
 *       link() and renameat2(RENAME_NOREPLACE) onto it must fail with EEXIST
 *       (it exists for this program), rename() of another file onto it
 *       succeeds, and what is written to the descriptor afterwards must not
 *       undo that rename: FILE ends up holding "renamed\n".
 *   coherent_probe hold FILE
 *       Opens FILE for writing (O_TRUNC, close-on-exec), writes "pending\n",
 *       prints "ready", waits for a line on stdin, prints what a read-open of
 *       FILE reads, exits.
 *
 * Run plainly and under the shim, the answers must be the same.
 * Exit: 0 all checks passed, 1 a check failed (FAIL lines on stdout), 2 usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

/* Compatibility entries glibc still exports (programs built before 2.33
 * call them); no longer declared by its headers. */
int __xstat(int ver, const char *path, struct stat *buf);
int __xstat64(int ver, const char *path, struct stat64 *buf);
int __lxstat(int ver, const char *path, struct stat *buf);
int __lxstat64(int ver, const char *path, struct stat64 *buf);
int __fxstat(int ver, int fd, struct stat *buf);
int __fxstat64(int ver, int fd, struct stat64 *buf);
int __fxstatat(int ver, int dirfd, const char *path, struct stat *buf, int flags);
int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *buf, int flags);
#define STAT_VER 1 /* _STAT_VER_LINUX on x86_64 */

static int failures;

static void fail(const char *what, const char *path) {
    printf("FAIL: %s %s%s%s\n", what, path, errno ? ": " : "", errno ? strerror(errno) : "");
    ++failures;
}

struct seen {
    unsigned long long dev, ino, nlink;
    long long size, mtime_ns;
    int is_link;
};

#define SEEN(st)                                                                                             \
    ((struct seen){(unsigned long long)(st).st_dev, (unsigned long long)(st).st_ino,                        \
                   (unsigned long long)(st).st_nlink, (long long)(st).st_size,                              \
                   (long long)(st).st_mtim.tv_sec * 1000000000LL + (st).st_mtim.tv_nsec, S_ISLNK((st).st_mode)})

static void agree(const char *how, const char *path, int rc, struct seen got, struct seen want) {
    char what[128];
    if (rc != 0) {
        snprintf(what, sizeof what, "%s failed on", how);
        fail(what, path);
        return;
    }
    errno = 0;
    if (got.dev != want.dev || got.ino != want.ino) {
        snprintf(what, sizeof what, "%s: inode %llu:%llu, the descriptor's is %llu:%llu, for", how, got.dev, got.ino,
                 want.dev, want.ino);
        fail(what, path);
    }
    if (got.nlink < 1) {
        snprintf(what, sizeof what, "%s: link count 0 for", how);
        fail(what, path);
    }
    if (got.size != want.size || got.mtime_ns != want.mtime_ns) {
        snprintf(what, sizeof what, "%s: size %lld mtime %lld, the descriptor's %lld %lld, for", how, got.size,
                 got.mtime_ns, want.size, want.mtime_ns);
        fail(what, path);
    }
}

/* The call first: arguments are evaluated in no fixed order. */
#define CHECK(how, call, st)                      \
    do {                                          \
        int rc_ = (call);                         \
        agree(how, path, rc_, SEEN(st), w);       \
    } while (0)

/* Every stat entry on `path` (relative to the working directory, which is
 * the file's directory) against fstat of fd. */
static void stat_all(const char *path, int fd) {
    struct stat st, want;
    struct stat64 st64;
    struct statx sx;
    if (fstat(fd, &want) != 0) {
        fail("fstat", path);
        return;
    }
    struct seen w = SEEN(want);
    agree("fstat", path, 0, w, w);
    CHECK("fstat64", fstat64(fd, &st64), st64);
    CHECK("__fxstat", __fxstat(STAT_VER, fd, &st), st);
    CHECK("__fxstat64", __fxstat64(STAT_VER, fd, &st64), st64);
    CHECK("fstatat AT_EMPTY_PATH", fstatat(fd, "", &st, AT_EMPTY_PATH), st);
    CHECK("stat", stat(path, &st), st);
    CHECK("stat64", stat64(path, &st64), st64);
    CHECK("lstat", lstat(path, &st), st);
    CHECK("lstat64", lstat64(path, &st64), st64);
    CHECK("fstatat", fstatat(AT_FDCWD, path, &st, 0), st);
    CHECK("fstatat64 nofollow", fstatat64(AT_FDCWD, path, &st64, AT_SYMLINK_NOFOLLOW), st64);
    CHECK("__xstat", __xstat(STAT_VER, path, &st), st);
    CHECK("__xstat64", __xstat64(STAT_VER, path, &st64), st64);
    CHECK("__lxstat", __lxstat(STAT_VER, path, &st), st);
    CHECK("__lxstat64", __lxstat64(STAT_VER, path, &st64), st64);
    CHECK("__fxstatat", __fxstatat(STAT_VER, AT_FDCWD, path, &st, 0), st);
    CHECK("__fxstatat64", __fxstatat64(STAT_VER, AT_FDCWD, path, &st64, 0), st64);
    int dir = open(".", O_RDONLY | O_DIRECTORY);
    CHECK("fstatat(dirfd)", fstatat(dir, path, &st, 0), st);
    close(dir);
    char dotted[4096];
    snprintf(dotted, sizeof dotted, "./sub/../%s", path);
    CHECK("stat ./sub/../", stat(dotted, &st), st);
    int rc = statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, &sx);
    struct seen sxs = {((unsigned long long)sx.stx_dev_major << 8) | sx.stx_dev_minor, sx.stx_ino, sx.stx_nlink,
                       (long long)sx.stx_size, (long long)sx.stx_mtime.tv_sec * 1000000000LL + sx.stx_mtime.tv_nsec, 0};
    struct seen wx = w;
    wx.dev = ((unsigned long long)major(want.st_dev) << 8) | minor(want.st_dev);
    agree("statx", path, rc, sxs, wx);
    rc = statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx);
    sxs = (struct seen){((unsigned long long)sx.stx_dev_major << 8) | sx.stx_dev_minor, sx.stx_ino, sx.stx_nlink,
                        (long long)sx.stx_size, (long long)sx.stx_mtime.tv_sec * 1000000000LL + sx.stx_mtime.tv_nsec, 0};
    agree("statx AT_EMPTY_PATH", path, rc, sxs, wx);
    errno = 0;
    if (access(path, F_OK | R_OK | W_OK) != 0) fail("access", path);
    if (faccessat(AT_FDCWD, path, R_OK | W_OK, 0) != 0) fail("faccessat", path);
    if (faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) != 0) fail("faccessat AT_EACCESS", path);
    if (euidaccess(path, W_OK) != 0) fail("euidaccess", path);
    if (eaccess(path, W_OK) != 0) fail("eaccess", path);
}

/* A read-open of path reads `want`, at the number open(2) gives. */
static void read_back(const char *path, const char *want) {
    char buf[256];
    int expect = dup(0);
    close(expect);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fail("open O_RDONLY", path);
        return;
    }
    errno = 0;
    if (fd != expect) fail("open O_RDONLY: not the lowest free descriptor for", path);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = '\0';
    if (strcmp(buf, want) != 0) fail("open O_RDONLY: did not read what was written to", path);
    close(fd);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fail("fopen r", path);
        return;
    }
    errno = 0;
    if (!fgets(buf, sizeof buf, fp) || strcmp(buf, want) != 0) fail("fopen r: did not read what was written to", path);
    fclose(fp);
}

static int write_open(const char *path, int flags, const char *text) {
    int fd = open(path, O_WRONLY | flags, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        fail("write-open", path);
        exit(1);
    }
    return fd;
}

static void check_link(const char *link, int fd) {
    struct stat st, want;
    fstat(fd, &want);
    errno = 0;
    if (lstat(link, &st) != 0 || !S_ISLNK(st.st_mode)) fail("lstat does not show the symlink", link);
    if (stat(link, &st) != 0 || st.st_ino != want.st_ino) fail("stat through the symlink is not the file", link);
}

static int identity(const char *file, const char *newfile, const char *link) {
    struct stat old;
    if (stat(file, &old) != 0) {
        fail("stat before", file);
        return 1;
    }
    if (mkdir("sub", 0755) != 0 && errno != EEXIST) fail("mkdir", "sub");
    int fd = write_open(file, O_TRUNC, "pending\n");
    int nfd = write_open(newfile, O_CREAT | O_EXCL, "new\n");
    struct stat st;
    errno = 0;
    if (fstat(fd, &st) != 0 || st.st_ino != old.st_ino || st.st_dev != old.st_dev)
        fail("the descriptor does not show the inode of the file it writes", file);
    for (int child = 0; child < 2; ++child) {
        pid_t pid = child ? fork() : 0;
        if (pid < 0) fail("fork", file);
        if (pid > 0) {
            int status;
            waitpid(pid, &status, 0);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
            continue;
        }
        stat_all(file, fd);
        stat_all(newfile, nfd);
        read_back(file, "pending\n");
        read_back(newfile, "new\n");
        if (link) check_link(link, fd);
        if (child) _exit(failures ? 1 : 0);
    }
    close(fd);
    close(nfd);
    return failures ? 1 : 0;
}

static void put(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || close(fd) != 0) fail("write", path);
}

static int renames(const char *file) {
    put("src1", "linked\n");
    put("src2", "renamed\n");
    int fd = write_open(file, O_CREAT | O_EXCL, "mine\n");
    errno = 0;
    if (link("src1", file) == 0 || errno != EEXIST) fail("link onto the file being written did not fail with EEXIST", file);
    errno = 0;
    if (renameat2(AT_FDCWD, "src1", AT_FDCWD, file, RENAME_NOREPLACE) == 0 || errno != EEXIST)
        fail("renameat2 RENAME_NOREPLACE onto the file being written did not fail with EEXIST", file);
    errno = 0;
    if (rename("src2", file) != 0) fail("rename onto", file);
    if (write(fd, "more\n", 5) != 5) fail("write after the rename", file);
    if (close(fd) != 0) fail("close", file);
    char buf[64] = "";
    int r = open(file, O_RDONLY);
    ssize_t n = r >= 0 ? read(r, buf, sizeof buf - 1) : -1;
    buf[n > 0 ? n : 0] = '\0';
    errno = 0;
    if (strcmp(buf, "renamed\n") != 0) fail("the descriptor's close undid the rename onto", file);
    close(r);
    unlink("src1");
    return failures ? 1 : 0;
}

static int hold(const char *file) {
    int fd = write_open(file, O_TRUNC | O_CLOEXEC, "pending\n");
    printf("ready\n");
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin)) return 1;
    char buf[256];
    int rfd = open(file, O_RDONLY);
    ssize_t n = rfd >= 0 ? read(rfd, buf, sizeof buf - 1) : -1;
    buf[n > 0 ? n : 0] = '\0';
    printf("%s", buf);
    close(rfd);
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "identity") == 0) return identity(argv[2], argv[3], argc > 4 ? argv[4] : NULL);
    if (argc == 3 && strcmp(argv[1], "hold") == 0) return hold(argv[2]);
    if (argc == 3 && strcmp(argv[1], "renames") == 0) return renames(argv[2]);
    fprintf(stderr, "usage: coherent_probe identity FILE NEWFILE [LINK] | renames FILE | hold FILE\n");
    return 2;
}
