#include "test_support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <cstddef>

namespace wlf_test {

CwdGuard::CwdGuard() : fd_(::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
    if (fd_ < 0) throw std::runtime_error("open . failed");
}

CwdGuard::~CwdGuard() {
    if (::fchdir(fd_) != 0) std::abort();
    ::close(fd_);
}

TempDir::TempDir() {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/wlf-test-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

SharedDir::SharedDir(mode_t mode) {
    std::string tmpl = "/tmp/wlf-shared-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    path_ = tmpl;
    if (::chmod(path_.c_str(), mode) != 0) throw std::system_error(errno, std::generic_category(), "chmod");
}

SharedDir::~SharedDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::filesystem::path &p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_file(const std::filesystem::path &p, const std::string &content, mode_t mode) {
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + p.string());
    if (::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
        ::close(fd);
        throw std::system_error(errno, std::generic_category(), "write " + p.string());
    }
    ::fchmod(fd, mode);
    ::close(fd);
}

struct stat lstat_or_die(const std::filesystem::path &p) {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) throw std::system_error(errno, std::generic_category(), "lstat " + p.string());
    return st;
}

std::size_t count_entries(const std::filesystem::path &dir) {
    std::size_t n = 0;
    for ([[maybe_unused]] auto &e : std::filesystem::directory_iterator(dir)) ++n;
    return n;
}

std::vector<std::string> list_names(const std::filesystem::path &dir) {
    std::vector<std::string> names;
    for (auto &e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

Pipe::Pipe() {
    if (::pipe2(fds_, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
}

Pipe::~Pipe() {
    close_read();
    close_write();
}

void Pipe::close_read() {
    if (fds_[0] >= 0) ::close(fds_[0]);
    fds_[0] = -1;
}

void Pipe::close_write() {
    if (fds_[1] >= 0) ::close(fds_[1]);
    fds_[1] = -1;
}

bool Pipe::put(char c) {
    ssize_t n;
    while ((n = ::write(fds_[1], &c, 1)) < 0 && errno == EINTR) {
    }
    return n == 1;
}

int get_byte(int fd, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    int rc;
    while ((rc = ::poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
    }
    if (rc == 0) return -2;
    if (rc < 0) return -1;
    unsigned char c;
    ssize_t n;
    while ((n = ::read(fd, &c, 1)) < 0 && errno == EINTR) {
    }
    return n == 1 ? c : -1;
}

int get_byte_now(int fd) { return get_byte(fd, 0); }

Child::Child(const std::function<int()> &fn) {
    pid_ = ::fork();
    if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork");
    if (pid_ == 0) {
        int rc = 120;
        try {
            rc = fn();
        } catch (const std::exception &e) {
            std::fprintf(stderr, "child %d: %s\n", static_cast<int>(::getpid()), e.what());
        } catch (...) {
            std::fprintf(stderr, "child %d: unknown exception\n", static_cast<int>(::getpid()));
        }
        // _exit: the child must not run the test framework's exit handlers.
        ::_exit(rc);
    }
}

Child::~Child() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        wait();
    }
}

int Child::wait() {
    if (pid_ <= 0) return -1;
    int status;
    pid_t r;
    while ((r = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    if (r < 0) return -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

FlockHolder::FlockHolder(const std::filesystem::path &lock_file)
    : child_([this, lock_file] {
          ready_.close_read();
          release_.close_write();
          int fd = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
          if (fd < 0 || ::flock(fd, LOCK_EX) != 0) return 1;
          if (!ready_.put('L')) return 2;
          get_byte(release_.read_fd(), 60000);  // EOF: let go
          return 0;
      }) {
    ready_.close_write();
    release_.close_read();
    locked_ = get_byte(ready_.read_fd()) == 'L';
}

int FlockHolder::release() {
    release_.close_write();
    return child_.wait();
}

std::string find_program(const std::string &name) {
    const char *path = std::getenv("PATH");
    std::string dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
    size_t start = 0;
    while (start <= dirs.size()) {
        size_t end = dirs.find(':', start);
        if (end == std::string::npos) end = dirs.size();
        std::string candidate = dirs.substr(start, end - start) + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
        start = end + 1;
    }
    return "";
}

int run_program(const std::vector<std::string> &argv) {
    Child child([&] {
        std::vector<char *> args;
        for (const auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
        return 127;
    });
    return child.wait();
}

bool wait_blocked_in_syscall(pid_t tid, long nr, int timeout_ms) {
    std::string file = "/proc/" + std::to_string(tid) + "/syscall";
    auto start = std::chrono::steady_clock::now();
    for (;;) {
        std::ifstream in(file);
        long current = -1;
        // "running" (not a number) while on a CPU; the number while blocked.
        if (in >> current && current == nr) return true;
        if (seconds_since(start) * 1000 > timeout_ms) return false;
        ::usleep(1000);
    }
}

int fail_syscall_in_this_thread(long nr, int error, int arg, unsigned mask) {
#if defined(__x86_64__)
    constexpr uint32_t arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
    constexpr uint32_t arch = AUDIT_ARCH_AARCH64;
#else
    return ENOSYS;
#endif
#if defined(__x86_64__) || defined(__aarch64__)
    // Both are little-endian: an argument's low word is at offset 0.
    bool any = arg < 0;
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                 static_cast<uint32_t>(offsetof(seccomp_data, args) + sizeof(uint64_t) * (any ? 0 : arg))),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, any ? 0xffffffffu : mask, 0, static_cast<__u8>(any ? 0 : 1)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (static_cast<uint32_t>(error) & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, any ? SECCOMP_RET_ERRNO | (static_cast<uint32_t>(error) & SECCOMP_RET_DATA)
                                      : SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return errno;
    return 0;
#endif
}

}  // namespace wlf_test
