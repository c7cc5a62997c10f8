/* The loops tools/bench.sh times with and without the LD_PRELOAD shim.
 *
 *   shim_loop open-close N PATH   open(PATH, O_WRONLY|O_CREAT, 0644) + close, N times.
 *                                 Run with rules that do not match PATH: the shim
 *                                 must pass it through.
 *   shim_loop stat-loop N PATH    stat(PATH) N times (PATH exists). Under the shim with
 *                                 nothing pending, each stat must be one flag test
 *                                 away from libc's.
 *   shim_loop write-loop N PATH   open(PATH, O_WRONLY|O_CREAT|O_TRUNC, 0644), write
 *                                 4 KiB, close, N times. Matched under the shim.
 *   shim_loop floor-loop N PATH   by hand, what the shim does for write-loop at the
 *                                 syscall floor with WRAP_LOCKFILE_FSYNC=none:
 *                                 open+flock PATH.lock, O_TMPFILE in PATH's directory
 *                                 (else a named temp), write 4 KiB, linkat (AT_EMPTY_PATH,
 *                                 else through /proc/self/fd) to a temp name + rename over PATH
 *                                 (else rename the named temp), unlink the lock,
 *                                 unlock, close. Run without the shim.
 *   shim_loop contract-loop N PATH
 *                                 floor-loop plus what docs/design.md asks of
 *                                 every replacement (lock verified by fstat and
 *                                 lstat at acquire, target metadata under the
 *                                 lock), as the shim did it by hand. Run without
 *                                 the shim.
 *   shim_loop correct-loop N PATH the fewest calls a correct replacement needs
 *                                 (issue 12): open+flock PATH.lock, fstat (st_nlink
 *                                 > 0), statx PATH, llistxattr, O_TMPFILE, write,
 *                                 lstat PATH.lock (commit check: the lock file, so
 *                                 the directory, is still the one locked), linkat
 *                                 + rename (a new target: linkat straight to PATH),
 *                                 unlink, unlock, two closes. Run without the shim.
 *   shim_loop guarded-loop N PATH correct-loop plus the calls the shim needs for
 *                                 the guarantees added since (the kernel's verdict,
 *                                 the program's descriptor numbers, one directory
 *                                 descriptor for the commit, the target and the
 *                                 lock file checked through it): 22 calls. Run
 *                                 without the shim.
 *   shim_loop tar-loop N TARBALL DEST [VAR=VALUE]...
 *                                 N times: mkdir DEST.I, posix_spawn tar -xf TARBALL
 *                                 -C DEST.I with this environment plus the variables
 *                                 (timed, the child's CPU counted), then rm -rf
 *                                 DEST.I (not timed).
 *   shim_loop spawn N PROG [VAR=VALUE]...
 *                                 posix_spawn PROG with this environment plus the
 *                                 given variables and wait for it, N times: process
 *                                 startup without an env(1) in between.
 *
 * Prints on stdout the elapsed wall-clock nanoseconds per iteration
 * (CLOCK_MONOTONIC around the whole loop) and, second, the CPU nanoseconds per
 * iteration (this process's CLOCK_PROCESS_CPUTIME_ID plus, for spawn, the
 * waited-for children's user+system time): on a busy machine the CPU figure
 * is the steadier of the two.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char block[4096];

static void die(const char *what, const char *path) {
    fprintf(stderr, "shim_loop: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static long long clock_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long children_cpu_ns(void) {
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return ((long long)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
           ((long long)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

static long long cpu_ns(void) { return clock_ns(CLOCK_PROCESS_CPUTIME_ID) + children_cpu_ns(); }

static void write_block(int fd, const char *path) {
    size_t done = 0;
    while (done < sizeof block) {
        ssize_t w = write(fd, block + done, sizeof block - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("write", path);
        }
        done += (size_t)w;
    }
}

static void open_close(long n, const char *path) {
    for (long i = 0; i < n; ++i) {
        int fd = open(path, O_WRONLY | O_CREAT, 0644);
        if (fd < 0) die("open", path);
        close(fd);
    }
}

static void stat_loop(long n, const char *path) {
    struct stat st;
    for (long i = 0; i < n; ++i)
        if (stat(path, &st) != 0) die("stat", path);
}

static void write_loop(long n, const char *path) {
    for (long i = 0; i < n; ++i) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) die("open", path);
        write_block(fd, path);
        if (close(fd) != 0) die("close", path);
    }
}

/* Gives the O_TMPFILE `fd` the name `dst`, as the library does:
 * AT_EMPTY_PATH where the kernel allows it (it may ask for
 * CAP_DAC_READ_SEARCH), else through /proc/self/fd. */
static void link_temp(int fd, const char *dst) {
    static int empty_path_ok = 1;
    if (empty_path_ok && linkat(fd, "", AT_FDCWD, dst, AT_EMPTY_PATH) == 0) return;
    if (empty_path_ok && errno != ENOENT) die("linkat", dst);
    empty_path_ok = 0;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) != 0) die("linkat", dst);
}

/* What a hand-written replacement of `path` works with: the lock and temp
 * names, the directory, the umask and the effective ids. */
struct names {
    char lockp[PATH_MAX], temp[PATH_MAX], dir[PATH_MAX];
    const char *d;
    mode_t mask;
    uid_t euid;
    gid_t egid;
};

static void names_of(struct names *nm, const char *path) {
    snprintf(nm->lockp, sizeof nm->lockp, "%s.lock", path);
    snprintf(nm->temp, sizeof nm->temp, "%s~~", path);
    snprintf(nm->dir, sizeof nm->dir, "%s", path);
    nm->d = dirname(nm->dir);
    nm->mask = umask(0);
    umask(nm->mask);
    nm->euid = geteuid();
    nm->egid = getegid();
}

/* One replacement by hand. `contract`: also what DESIGN sections 4-5 require
 * of any replacement, at the fewest system calls a careful program needs:
 * the verified lock protocol (the lock file must still be the one at its
 * path, else another process may hold a lock on a newer file: retry) and
 * the target's metadata read under the
 * lock (lstat, the list of extended attributes; mode fixed only when the
 * umask took bits away, owner only when it differs). The bench target has
 * no extended attributes; copying them is not done here. */
static void replace_loop(long n, const char *path, int contract) {
    struct names nm;
    names_of(&nm, path);
    const char *lockp = nm.lockp, *temp = nm.temp, *d = nm.d;
    const mode_t mask = nm.mask;
    const uid_t euid = nm.euid;
    const gid_t egid = nm.egid;
    for (long i = 0; i < n; ++i) {
        int lfd = open(lockp, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (lfd < 0) die("open", lockp);
        if (flock(lfd, LOCK_EX) != 0) die("flock", lockp);
        mode_t mode = 0644;
        struct stat ts;
        int existed = 0;
        if (contract) {
            struct stat fs, ps;
            if (fstat(lfd, &fs) != 0) die("fstat", lockp);
            if (lstat(lockp, &ps) != 0 || fs.st_nlink == 0 || fs.st_dev != ps.st_dev || fs.st_ino != ps.st_ino) {
                close(lfd);
                --i;
                continue;
            }
            existed = lstat(path, &ts) == 0;
            if (!existed && errno != ENOENT) die("lstat", path);
            if (existed) {
                mode = ts.st_mode & 07777;
                ssize_t x = llistxattr(path, NULL, 0);
                if (x < 0) die("llistxattr", path);
                if (x > 0) {
                    fprintf(stderr, "shim_loop: %s has extended attributes; the contract loop does not copy them\n", path);
                    exit(1);
                }
            }
        }
        int fd = open(d, O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
        int anonymous = fd >= 0;
        if (!anonymous) {
            if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) die("open O_TMPFILE in", d);
            fd = open(temp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, contract && existed ? 0600 : mode);
            if (fd < 0) die("open", temp);
        }
        if (contract && existed) {
            if ((ts.st_uid != euid || ts.st_gid != egid) && fchown(fd, ts.st_uid, ts.st_gid) != 0) die("fchown", temp);
            if (((mode & ~mask) != mode || !anonymous || ts.st_uid != euid || ts.st_gid != egid) && fchmod(fd, mode) != 0)
                die("fchmod", temp);
        }
        write_block(fd, temp);
        if (anonymous) link_temp(fd, temp);
        if (rename(temp, path) != 0) die("rename", temp);
        unlink(lockp);
        flock(lfd, LOCK_UN);
        close(lfd);
        close(fd);
    }
}

/* open + flock of the lock file as the library does it (O_EXCL and the
 * sticky marker mode: only a lock file this loop created is removed; an
 * existing one is locked as it is), then fstat: st_nlink > 0, else a
 * releasing holder unlinked it between our open and our flock. The
 * descriptor, or -1 for "try again". */
static int lock_verified(const char *lockp, int *created, struct stat *ls) {
    *created = 1;
    int lfd = open(lockp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0666 | S_ISVTX);
    if (lfd < 0 && errno == EEXIST) {
        *created = 0;
        lfd = open(lockp, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    }
    if (lfd < 0) die("open", lockp);
    if (flock(lfd, LOCK_EX) != 0) die("flock", lockp);
    if (fstat(lfd, ls) != 0) die("fstat", lockp);
    if (ls->st_nlink == 0) {
        close(lfd);
        return -1;
    }
    return lfd;
}

/* The correct floor (docs/design.md "Locks", "Atomic replacement"): each
 * call is there for a guarantee.
 *  - open (no O_EXCL: whoever comes first creates it) + flock;
 *  - fstat: st_nlink > 0, else a releasing holder unlinked the file between
 *    our open and our flock and a newer one may be held by somebody else
 *    (tests/unit/lock_test.cpp, UnverifiedUnlinkProtocolLetsTwoHoldersIn):
 *    retry. No path check here: the commit check below covers a lock file
 *    renamed away (its directory moved) before anything is visible;
 *  - statx of the target under the lock: exists?, mode, owner;
 *  - llistxattr: extended attributes (ACLs, labels) to copy;
 *  - O_TMPFILE, mode and owner fixed only where they differ;
 *  - lstat of the lock path: the name we are about to link into still lies
 *    in the directory we locked in (same lock inode);
 *  - linkat to a temp name + rename over an existing target; a new target
 *    is linked straight to its name (linkat fails with EEXIST rather than
 *    overwrite: nothing is lost if somebody created it unlocked);
 *  - unlink while holding, unlock, close the lock, close the temp. */
static void correct_loop(long n, const char *path) {
    struct names nm;
    names_of(&nm, path);
    const char *lockp = nm.lockp, *temp = nm.temp, *d = nm.d;
    const mode_t mask = nm.mask;
    const uid_t euid = nm.euid;
    const gid_t egid = nm.egid;
    for (long i = 0; i < n; ++i) {
        int created;
        struct stat ls;
        int lfd = lock_verified(lockp, &created, &ls);
        if (lfd < 0) {
            --i;
            continue;
        }
        struct statx tx;
        int existed = statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_MODE | STATX_UID | STATX_GID, &tx) == 0;
        if (!existed && errno != ENOENT) die("statx", path);
        mode_t mode = existed ? tx.stx_mode & 07777 : 0666 & ~mask;
        if (existed) {
            ssize_t x = llistxattr(path, NULL, 0);
            if (x < 0) die("llistxattr", path);
            if (x > 0) {
                fprintf(stderr, "shim_loop: %s has extended attributes; the correct loop does not copy them\n", path);
                exit(1);
            }
        }
        int fd = open(d, O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
        if (fd < 0) die("open O_TMPFILE in", d);
        if (existed) {
            if ((tx.stx_uid != euid || tx.stx_gid != egid) && fchown(fd, tx.stx_uid, tx.stx_gid) != 0) die("fchown", temp);
            if (((mode & ~mask) != mode || tx.stx_uid != euid || tx.stx_gid != egid) && fchmod(fd, mode) != 0)
                die("fchmod", temp);
        }
        write_block(fd, temp);
        struct stat ps;
        if (lstat(lockp, &ps) != 0 || ps.st_dev != ls.st_dev || ps.st_ino != ls.st_ino) die("commit check", lockp);
        if (existed) {
            link_temp(fd, temp);
            if (rename(temp, path) != 0) die("rename", temp);
        } else {
            link_temp(fd, path);
        }
        if (created) unlink(lockp);
        flock(lfd, LOCK_UN);
        close(lfd);
        close(fd);
    }
}

/* correct-loop plus what the shim has to do beyond it for guarantees that
 * each have a test (README "Performance" lists them with their costs):
 *  - the kernel's verdict: the target opened as the program's open(2) would
 *    (never blocking, no O_TRUNC), fstat'ed (it is the inode looked at), its
 *    extended attributes listed through that descriptor, closed (3 calls
 *    more; llistxattr becomes flistxattr);
 *  - the lock's descriptor moved out of the low numbers the program's own
 *    descriptors get (F_DUPFD + close);
 *  - the commit through one directory descriptor (O_PATH open + close): the
 *    lock check, the target check, the link, the rename and the lock file's
 *    removal all in the directory checked;
 *  - the target still the inode looked at under the lock (fstatat);
 *  - the release's own look at the lock file before its unlink (fstatat).
 * 22 calls besides the write for an existing target. What the shim makes
 * beyond these is its own bookkeeping. Run without the shim. */
static void guarded_loop(long n, const char *path) {
    struct names nm;
    names_of(&nm, path);
    const char *lockp = nm.lockp, *d = nm.d;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *lbase = strrchr(lockp, '/') ? strrchr(lockp, '/') + 1 : lockp;
    char tbase[NAME_MAX + 1];
    snprintf(tbase, sizeof tbase, ".%s~~", base);
    const mode_t mask = nm.mask;
    const uid_t euid = nm.euid;
    const gid_t egid = nm.egid;
    for (long i = 0; i < n; ++i) {
        int created;
        struct stat ls;
        int raw = lock_verified(lockp, &created, &ls);
        if (raw < 0) {
            --i;
            continue;
        }
        int lfd = fcntl(raw, F_DUPFD_CLOEXEC, 768);
        if (lfd < 0) die("F_DUPFD", lockp);
        close(raw);
        struct statx tx;
        int existed = statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_MODE | STATX_UID | STATX_GID | STATX_INO, &tx) == 0;
        if (!existed && errno != ENOENT) die("statx", path);
        mode_t mode = existed ? tx.stx_mode & 07777 : 0666 & ~mask;
        int fd = open(d, O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
        if (fd < 0) die("open O_TMPFILE in", d);
        if (existed) {
            int vfd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
            if (vfd < 0) die("open (verdict)", path);
            struct stat vs;
            if (fstat(vfd, &vs) != 0 || vs.st_ino != tx.stx_ino) die("verdict: another file at", path);
            ssize_t x = flistxattr(vfd, NULL, 0);
            if (x < 0) die("flistxattr", path);
            if (x > 0) {
                fprintf(stderr, "shim_loop: %s has extended attributes; the guarded loop does not copy them\n", path);
                exit(1);
            }
            close(vfd);
            if ((tx.stx_uid != euid || tx.stx_gid != egid) && fchown(fd, tx.stx_uid, tx.stx_gid) != 0) die("fchown", path);
            if (((mode & ~mask) != mode || tx.stx_uid != euid || tx.stx_gid != egid) && fchmod(fd, mode) != 0)
                die("fchmod", path);
        }
        write_block(fd, path);
        int dfd = open(d, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) die("open directory", d);
        struct stat ps, ts;
        if (fstatat(dfd, lbase, &ps, AT_SYMLINK_NOFOLLOW) != 0 || ps.st_dev != ls.st_dev || ps.st_ino != ls.st_ino)
            die("commit check", lockp);
        if (existed && (fstatat(dfd, base, &ts, AT_SYMLINK_NOFOLLOW) != 0 || ts.st_ino != tx.stx_ino))
            die("commit check (target)", path);
        if (existed) {
            if (linkat(fd, "", dfd, tbase, AT_EMPTY_PATH) != 0) die("linkat", path);
            if (renameat(dfd, tbase, dfd, base) != 0) die("rename", path);
        } else if (linkat(fd, "", dfd, base, AT_EMPTY_PATH) != 0) {
            die("linkat", path);
        }
        close(fd);
        if (created && fstatat(dfd, lbase, &ps, AT_SYMLINK_NOFOLLOW) == 0 && ps.st_ino == ls.st_ino) unlinkat(dfd, lbase, 0);
        flock(lfd, LOCK_UN);
        close(lfd);
        close(dfd);
    }
}

/* This environment plus `vars` (VAR=VALUE each, overriding), for posix_spawn. */
static char **child_env(int nvars, char **vars) {
    size_t nenv = 0;
    while (environ[nenv]) ++nenv;
    char **envp = malloc((nenv + (size_t)nvars + 1) * sizeof *envp);
    if (!envp) die("malloc", "");
    size_t k = 0;
    for (int v = 0; v < nvars; ++v) envp[k++] = vars[v];
    for (size_t e = 0; e < nenv; ++e) {
        int shadowed = 0;
        for (int v = 0; v < nvars && !shadowed; ++v) {
            size_t len = strcspn(vars[v], "=") + 1;
            shadowed = strncmp(environ[e], vars[v], len) == 0;
        }
        if (!shadowed) envp[k++] = environ[e];
    }
    envp[k] = NULL;
    return envp;
}

/* posix_spawn args[0] and wait; exits unless it exits 0. */
static void run(char **args, char **envp) {
    pid_t pid;
    int rc = posix_spawn(&pid, args[0], NULL, NULL, args, envp);
    if (rc != 0) {
        errno = rc;
        die("posix_spawn", args[0]);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) die("waitpid", args[0]);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "shim_loop: %s failed (status %d)\n", args[0], status);
        exit(1);
    }
}

static void spawn_loop(long n, char **argv_prog, int nvars, char **vars) {
    char **envp = child_env(nvars, vars);
    char *args[] = {argv_prog[0], NULL};
    for (long i = 0; i < n; ++i) run(args, envp);
    free(envp);
}

/* Returns the time (wall, CPU incl. children) spent in the tar runs only. */
static void tar_loop(long n, char *tarball, const char *dest, int nvars, char **vars, long long *wall, long long *cpu) {
    char **envp = child_env(nvars, vars);
    char **plain = child_env(0, NULL);
    char d[PATH_MAX];
    char tar[] = "/usr/bin/tar", xf[] = "-xf", cdir[] = "-C", rm[] = "/bin/rm", rf[] = "-rf";
    *wall = *cpu = 0;
    for (long i = 0; i < n; ++i) {
        snprintf(d, sizeof d, "%s.%ld", dest, i);
        if (mkdir(d, 0755) != 0) die("mkdir", d);
        char *args[] = {tar, xf, tarball, cdir, d, NULL};
        long long c0 = cpu_ns(), t0 = clock_ns(CLOCK_MONOTONIC);
        run(args, envp);
        *wall += clock_ns(CLOCK_MONOTONIC) - t0;
        *cpu += cpu_ns() - c0;
        char *rmargs[] = {rm, rf, d, NULL};
        run(rmargs, plain);
    }
    free(envp);
    free(plain);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr,
                "usage: shim_loop {open-close|stat-loop|write-loop|floor-loop|contract-loop|correct-loop|guarded-loop} N PATH\n"
                "       shim_loop tar-loop N TARBALL DEST [VAR=VALUE]...\n"
                "       shim_loop spawn N PROG [VAR=VALUE]...\n");
        return 2;
    }
    const char *mode = argv[1];
    char *end;
    long n = strtol(argv[2], &end, 10);
    if (*end || n <= 0) {
        fprintf(stderr, "shim_loop: bad count '%s'\n", argv[2]);
        return 2;
    }
    memset(block, 'x', sizeof block);
    long long c0 = cpu_ns();
    long long t0 = clock_ns(CLOCK_MONOTONIC);
    if (strcmp(mode, "open-close") == 0)
        open_close(n, argv[3]);
    else if (strcmp(mode, "stat-loop") == 0)
        stat_loop(n, argv[3]);
    else if (strcmp(mode, "write-loop") == 0)
        write_loop(n, argv[3]);
    else if (strcmp(mode, "floor-loop") == 0)
        replace_loop(n, argv[3], 0);
    else if (strcmp(mode, "contract-loop") == 0)
        replace_loop(n, argv[3], 1);
    else if (strcmp(mode, "correct-loop") == 0)
        correct_loop(n, argv[3]);
    else if (strcmp(mode, "guarded-loop") == 0)
        guarded_loop(n, argv[3]);
    else if (strcmp(mode, "tar-loop") == 0) {
        if (argc < 5) {
            fprintf(stderr, "usage: shim_loop tar-loop N TARBALL DEST [VAR=VALUE]...\n");
            return 2;
        }
        long long wall, cpu;
        tar_loop(n, argv[3], argv[4], argc - 5, &argv[5], &wall, &cpu);
        printf("%.1f %.1f\n", (double)wall / (double)n, (double)cpu / (double)n);
        return 0;
    }
    else if (strcmp(mode, "spawn") == 0)
        spawn_loop(n, &argv[3], argc - 4, &argv[4]);
    else {
        fprintf(stderr, "shim_loop: unknown mode '%s'\n", mode);
        return 2;
    }
    long long t1 = clock_ns(CLOCK_MONOTONIC);
    long long c1 = cpu_ns();
    printf("%.1f %.1f\n", (double)(t1 - t0) / (double)n, (double)(c1 - c0) / (double)n);
    return 0;
}
