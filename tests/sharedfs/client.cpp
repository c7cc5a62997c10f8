// Shared-fs test client on the library's public C++ API.
//   sharedfs_client count BACKEND TARGET COUNTER LOG N
//       N read-modify-write increments of the number in COUNTER, each under
//       mylockfile(TARGET) with BACKEND (flock | dotlock); every critical
//       section appends "enter PID" and "leave PID" to LOG (a local file,
//       O_APPEND: one write a record, so the records of all processes on
//       this machine interleave exactly as the critical sections did).
//   sharedfs_client replace TARGET NAME N
//       N read-modify-write replacements of TARGET (record.h content) through
//       AtomicFile("r+"); prints "ok=K failed=F" and each failure's message.
//   sharedfs_client hold BACKEND TARGET READY RELEASE
//       takes the lock, creates READY, waits until RELEASE exists, releases.
//   sharedfs_client try BACKEND TARGET TIMEOUT
//       takes the lock within TIMEOUT seconds and releases it: exit 0, or 3
//       when it is held (LockTimeout / AlreadyLocked).
// Exit: 0 when every operation succeeded, 1 otherwise (message on stderr).
#include "record.h"

#include <wrap_lockfile/wrap_lockfile.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

namespace wl = wrap_lockfile;

namespace {

void append_record(int log_fd, const char *what) {
    char line[64];
    int n = snprintf(line, sizeof line, "%s %d\n", what, static_cast<int>(getpid()));
    if (write(log_fd, line, static_cast<size_t>(n)) != n) {
        fprintf(stderr, "client %d: write overlap log: %s\n", getpid(), strerror(errno));
        exit(1);
    }
}

wl::LockOptions lock_options(const char *backend) {
    wl::LockOptions opt;
    if (strcmp(backend, "flock") == 0) opt.backend = wl::LockBackend::flock;
    else if (strcmp(backend, "dotlock") == 0) opt.backend = wl::LockBackend::dotlock;
    else throw std::invalid_argument(std::string("unknown backend ") + backend);
    return opt;
}

int hold(const char *backend, const char *target, const char *ready, const char *release) {
    wl::mylockfile lock(target, lock_options(backend));
    int fd = open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || close(fd) != 0) throw std::runtime_error(std::string("create ready file: ") + strerror(errno));
    while (access(release, F_OK) != 0) usleep(10000);
    lock.release();
    return 0;
}

int try_lock(const char *backend, const char *target, double timeout) {
    wl::LockOptions opt = lock_options(backend);
    opt.timeout = timeout;
    try {
        wl::mylockfile lock(target, opt);
        lock.release();
        return 0;
    } catch (const wl::LockTimeout &) {
        return 3;
    } catch (const wl::AlreadyLocked &) {
        return 3;
    }
}

int count(const char *backend, const char *target, const char *counter, const char *log, int n) {
    wl::LockOptions opt = lock_options(backend);
    int log_fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        fprintf(stderr, "client: open %s: %s\n", log, strerror(errno));
        return 1;
    }
    for (int i = 0; i < n; ++i) {
        wl::mylockfile lock(target, opt);
        append_record(log_fd, "enter");
        // The counter is replaced, not rewritten in place: Gluster's client
        // caches (quick-read, io-cache) serve a file's old content to the
        // other client for a second, lock or no lock, while a new inode
        // cannot be stale (README "Shared file systems"). The lock is ours
        // already, so the replacement takes none.
        wl::WriteOptions wo;
        wo.use_lock = false;
        wo.durability = wl::Durability::none;  // not under test; keeps the suite short
        wl::AtomicFile f(counter, "r+", wo);
        long v = strtol(f.read_all().c_str(), nullptr, 10);
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%010ld\n", v + 1);
        f.seek(0);
        f.write(std::string_view(buf, static_cast<size_t>(len)));
        f.commit();
        append_record(log_fd, "leave");
        lock.release();
    }
    return 0;
}

int replace(const char *target, const char *name, int n) {
    int ok = 0, failed = 0;
    static char buf[RECORD_MAX];
    for (int i = 0; i < n; ++i) {
        try {
            wl::AtomicFile f(target, "r+", wl::WriteOptions{});
            std::string old = f.read_all();
            unsigned long long seq = 0;
            if (record_check(old.data(), old.size(), &seq) != 0) {
                fprintf(stderr, "client %d: torn content under the lock (%zu bytes)\n", getpid(), old.size());
                ++failed;
                continue;
            }
            size_t len = record_make(buf, seq + 1, name);
            f.seek(0);
            f.write(std::string_view(buf, len));
            if (ftruncate(f.fd(), static_cast<off_t>(len)) != 0)
                throw std::runtime_error(std::string("ftruncate: ") + strerror(errno));
            f.commit();
            ++ok;
        } catch (const std::exception &e) {
            fprintf(stderr, "client %d: replace %s: %s\n", getpid(), target, e.what());
            ++failed;
        }
    }
    printf("ok=%d failed=%d\n", ok, failed);
    return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char **argv) {
    try {
        if (argc == 7 && strcmp(argv[1], "count") == 0) return count(argv[2], argv[3], argv[4], argv[5], atoi(argv[6]));
        if (argc == 5 && strcmp(argv[1], "replace") == 0) return replace(argv[2], argv[3], atoi(argv[4]));
        if (argc == 6 && strcmp(argv[1], "hold") == 0) return hold(argv[2], argv[3], argv[4], argv[5]);
        if (argc == 5 && strcmp(argv[1], "try") == 0) return try_lock(argv[2], argv[3], atof(argv[4]));
    } catch (const std::exception &e) {
        fprintf(stderr, "client %d: %s\n", getpid(), e.what());
        return 1;
    }
    fprintf(stderr, "usage: sharedfs_client count BACKEND TARGET COUNTER LOG N | replace TARGET NAME N"
                    " | hold BACKEND TARGET READY RELEASE | try BACKEND TARGET TIMEOUT\n");
    return 2;
}
