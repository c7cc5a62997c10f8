// Core library against the syscall floor, side by side in one process.
//
//   replace/<fs>/<size>/<durability>/ours        atomic_write_content_with_lock
//   replace/<fs>/<size>/<durability>/floor       open temp O_CREAT|O_EXCL in the same
//                                                directory, write, fsync (full), rename,
//                                                fsync directory (full)
//   replace/<fs>/<size>/<durability>/floor_lock  the same inside open+flock <target>.lock
//                                                ... unlink, unlock, close (what "ours" adds)
//   lock/<fs>/ours                               FileLock acquire + release, uncontended
//   lock/<fs>/floor                              open+flock+unlink+unlock+close
//
// <fs> is "tmpfs" (--tmpfs-dir=DIR, default /dev/shm) and "disk" (--disk-dir=DIR,
// default /var/tmp). Every benchmark works in a fresh subdirectory of its own,
// removed afterwards. Times are wall-clock (UseRealTime): fsync is waiting, not CPU.
// tools/bench.sh turns the JSON output into ratios; nothing here asserts a time.
#include <wrap_lockfile/wrap_lockfile.hpp>

#include "bench_util.hpp"

#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace {

using wlf_bench::die;

namespace wl = wrap_lockfile;
namespace fs = std::filesystem;

double g_min_time = 0.1;  // seconds per benchmark and repetition

// A fresh directory for one benchmark, removed with everything in it.
struct Scratch {
    std::string dir;
    explicit Scratch(const std::string &parent) {
        std::string templ = parent + "/wlf-bench-XXXXXX";
        std::vector<char> buf(templ.begin(), templ.end());
        buf.push_back('\0');
        if (!mkdtemp(buf.data())) die("mkdtemp", templ);
        dir = buf.data();
    }
    ~Scratch() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};

void replace_ours(benchmark::State &state, std::string parent, size_t size, bool full) {
    Scratch s(parent);
    const std::string target = s.dir + "/target";
    const std::string data(size, 'x');
    wl::WriteOptions opt;
    opt.durability = full ? wl::Durability::full : wl::Durability::none;
    for (auto _ : state) {
        auto kind = wl::atomic_write_content_with_lock(target, data, opt);
        benchmark::DoNotOptimize(kind);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(size));
}

// The least a careful hand-written replacement does.
void replace_floor(benchmark::State &state, std::string parent, size_t size, bool full, bool lock) {
    Scratch s(parent);
    const std::string target = s.dir + "/target";
    const std::string temp = target + "~~";
    const std::string lockp = target + ".lock";
    const std::string data(size, 'x');
    for (auto _ : state) {
        int lfd = -1;
        if (lock) {
            lfd = ::open(lockp.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
            if (lfd < 0) die("open", lockp);
            if (::flock(lfd, LOCK_EX) != 0) die("flock", lockp);
        }
        wlf_bench::floor_replace(s.dir, temp, target, data, full);
        if (lock) {
            ::unlink(lockp.c_str());
            ::flock(lfd, LOCK_UN);
            ::close(lfd);
        }
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(size));
}

void lock_ours(benchmark::State &state, std::string parent) {
    Scratch s(parent);
    const fs::path target = s.dir + "/target";
    for (auto _ : state) {
        wl::FileLock lock(target);
        benchmark::DoNotOptimize(lock);
    }
}

// open + flock + (unlink, like ours) + unlock + close.
void lock_floor(benchmark::State &state, std::string parent) {
    Scratch s(parent);
    const std::string lockp = s.dir + "/target.lock";
    for (auto _ : state) {
        int fd = ::open(lockp.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0) die("open", lockp);
        if (::flock(fd, LOCK_EX) != 0) die("flock", lockp);
        ::unlink(lockp.c_str());
        ::flock(fd, LOCK_UN);
        ::close(fd);
    }
}

bool take_flag(char *arg, const char *name, std::string *out) {
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
    *out = arg + n + 1;
    return true;
}

}  // namespace

int main(int argc, char **argv) {
    std::string tmpfs_dir = "/dev/shm", disk_dir = "/var/tmp", min_time_arg;
    // Our own flags first; the rest goes to Google Benchmark.
    int out = 1;
    for (int i = 1; i < argc; ++i) {
        if (take_flag(argv[i], "--tmpfs-dir", &tmpfs_dir) || take_flag(argv[i], "--disk-dir", &disk_dir))
            continue;
        if (take_flag(argv[i], "--min-time", &min_time_arg)) {
            g_min_time = std::strtod(min_time_arg.c_str(), nullptr);
            continue;
        }
        argv[out++] = argv[i];
    }
    argc = out;
    argv[argc] = nullptr;

    struct Fs {
        const char *name;
        std::string dir;
    } filesystems[] = {{"tmpfs", tmpfs_dir}, {"disk", disk_dir}};
    struct Size {
        const char *name;
        size_t bytes;
    } sizes[] = {{"4KiB", 4096}, {"1MiB", 1 << 20}};

    double min_time = g_min_time;
    auto reg = [&min_time](const std::string &name, auto &&fn, auto &&...args) {
        benchmark::RegisterBenchmark(name.c_str(), fn, args...)->UseRealTime()->MinTime(min_time);
    };
    for (const Fs &f : filesystems) {
        // The disk is noisier (journal, writeback of other processes): longer runs.
        min_time = f.name == std::string("disk") ? 2 * g_min_time : g_min_time;
        for (const Size &sz : sizes) {
            for (bool full : {true, false}) {
                std::string base = std::string("replace/") + f.name + "/" + sz.name + "/" + (full ? "full" : "none");
                reg(base + "/ours", replace_ours, f.dir, sz.bytes, full);
                reg(base + "/floor", replace_floor, f.dir, sz.bytes, full, false);
                reg(base + "/floor_lock", replace_floor, f.dir, sz.bytes, full, true);
            }
        }
        reg(std::string("lock/") + f.name + "/ours", lock_ours, f.dir);
        reg(std::string("lock/") + f.name + "/floor", lock_floor, f.dir);
    }

    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
