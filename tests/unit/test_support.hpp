// Shared helpers for the unit tests: scratch directories, file access.
#pragma once

#include <grp.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace wlf_test {

// A fresh directory under $TMPDIR (or /tmp), removed at destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::filesystem::path &path() const { return path_; }
    std::filesystem::path operator/(const std::string &name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

// A scratch directory directly under /tmp with `mode` (0777: every user can
// create temps in it; 0755: reach but not write), so that every user can
// reach it whatever $TMPDIR is (a TempDir may sit under a 0700 directory).
// Removed at destruction.
class SharedDir {
public:
    explicit SharedDir(mode_t mode = 0777);
    ~SharedDir();
    SharedDir(const SharedDir &) = delete;
    SharedDir &operator=(const SharedDir &) = delete;
    const std::filesystem::path &path() const { return path_; }
    std::filesystem::path operator/(const std::string &name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

std::string read_file(const std::filesystem::path &p);
void write_file(const std::filesystem::path &p, const std::string &content, mode_t mode = 0644);
struct stat lstat_or_die(const std::filesystem::path &p);
// Names in `dir` other than the ones given (to find leftover temps).
std::size_t count_entries(const std::filesystem::path &dir);
// Sorted names in `dir`, to compare a directory against exactly what belongs there.
std::vector<std::string> list_names(const std::filesystem::path &dir);

// Restores the working directory at scope exit, also when an assertion
// returns early (later tests must not run elsewhere).
class CwdGuard {
public:
    CwdGuard();
    ~CwdGuard();
    CwdGuard(const CwdGuard &) = delete;
    CwdGuard &operator=(const CwdGuard &) = delete;

private:
    int fd_;
};

// ---- processes and ordering (no sleeps as proof) ----

// A pipe whose ends close on destruction; used to order processes.
class Pipe {
public:
    Pipe();
    ~Pipe();
    Pipe(const Pipe &) = delete;
    Pipe &operator=(const Pipe &) = delete;
    int read_fd() const { return fds_[0]; }
    int write_fd() const { return fds_[1]; }
    void close_read();
    void close_write();
    // Writes one byte; false on error.
    bool put(char c);

private:
    int fds_[2] = {-1, -1};
};

// Waits up to timeout_ms for one byte on fd. Returns the byte, -1 on EOF or
// error, -2 on timeout. The timeout is a safety net, never the proof.
int get_byte(int fd, int timeout_ms = 20000);
// One byte if one is available right now, -1 on EOF/error, -2 if none.
int get_byte_now(int fd);

// A forked child running fn; its return value (or 120 if fn threw) is the
// exit status. The destructor kills and reaps a child that was not waited for.
class Child {
public:
    explicit Child(const std::function<int()> &fn);
    ~Child();
    Child(const Child &) = delete;
    Child &operator=(const Child &) = delete;
    pid_t pid() const { return pid_; }
    // Exit status, or 128 + signal number; -1 if waitpid failed.
    int wait();

private:
    pid_t pid_ = -1;
};

// A forked process that holds an exclusive flock on `lock_file` (created if
// missing, never unlinked, nothing written: like flock(1)) until released.
// The lock is taken before the constructor returns (a byte through a pipe
// says so).
class FlockHolder {
public:
    explicit FlockHolder(const std::filesystem::path &lock_file);
    bool locked() const { return locked_; }
    pid_t pid() const { return child_.pid(); }
    // Ends the holder (EOF on its pipe; its exit drops the lock); its exit
    // status.
    int release();

private:
    Pipe ready_, release_;
    Child child_;
    bool locked_ = false;
};

// Runs fn in a forked child after dropping to uid/gid 65534 (nobody); the
// child reports `Result` through a pipe. Returns false if the child died.
template <class Result, class Fn>
bool run_as_nobody(Fn &&fn, Result *out) {
    int p[2];
    if (::pipe(p) != 0) return false;
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(p[0]);
        if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
            ::setresuid(65534, 65534, 65534) != 0)
            ::_exit(2);
        Result r = fn();
        bool ok = ::write(p[1], &r, sizeof r) == static_cast<ssize_t>(sizeof r);
        ::_exit(ok ? 0 : 3);
    }
    ::close(p[1]);
    ssize_t n = ::read(p[0], out, sizeof *out);
    ::close(p[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return n == static_cast<ssize_t>(sizeof *out) && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Runs argv (argv[0] looked up in PATH) and returns its exit status
// (127 if it could not be executed).
int run_program(const std::vector<std::string> &argv);
// Absolute path of an executable found in PATH, or "" if absent.
std::string find_program(const std::string &name);

// Waits until thread/process `tid` is blocked inside system call `nr`
// (/proc/<tid>/syscall). False if that did not happen within timeout_ms.
bool wait_blocked_in_syscall(pid_t tid, long nr, int timeout_ms = 20000);

inline double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Makes system call `nr` fail with `error` in the calling thread only (a
// seccomp filter; no new privileges from then on). With arg >= 0, only calls
// whose argument `arg` has a bit of `mask` set fail. 0 or errno (ENOSYS on
// architectures the filter does not know).
int fail_syscall_in_this_thread(long nr, int error, int arg = -1, unsigned mask = 0);

}  // namespace wlf_test
