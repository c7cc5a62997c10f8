// Side-by-side loops for tools/bench.sh's peer sections (replace vs peers,
// lock hand-off, append growth). Each mode times one operation at a time and
// prints one line on stdout; nothing here asserts a time.
//
//   peer_bench replace {ours|floor} DIR SIZE {full|none} BUDGET_MS MAX_ITERS
//       ours:  wrap_lockfile::atomic_write_content_with_lock (lock + temp +
//              write + [fsync] + rename + [fsync dir])
//       floor: temp O_CREAT|O_EXCL, write, [fsync], rename, [fsync dir], no lock
//       prints "MEDIAN_NS ITERS" (per operation, wall clock)
//   peer_bench lock {ours|flock} DIR BUDGET_MS
//       ours:  FileLock acquire + release; flock: open+flock+unlink+unlock+close
//       prints "MEDIAN_NS ITERS"
//   peer_bench contend N {wait|poll} DIR BUDGET_MS
//       N processes loop FileLock acquire -> release for BUDGET_MS; every
//       acquisition that follows a release by another process records the
//       hand-off latency (acquire time - previous holder's release time, both
//       CLOCK_MONOTONIC, shared through an anonymous shared mmap).
//       wait: no timeout (blocking flock); poll: timeout 60 s (LOCK_NB + backoff)
//       prints "P50_NS P99_NS HANDOFFS ACQUISITIONS"
//   peer_bench append {ours|plain} DIR SIZE {full|none} BUDGET_MS MAX_ITERS
//       creates DIR/big of SIZE bytes, then appends one 64-byte line per
//       operation: ours = AtomicFile mode "a" (copy/reflink + write + rename),
//       plain = open O_APPEND + write + close (not atomic: the floor)
//       prints "MEDIAN_NS ITERS"
#include <wrap_lockfile/wrap_lockfile.hpp>

#include "bench_util.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

namespace {

using wlf_bench::die;
using wlf_bench::write_all;

namespace wl = wrap_lockfile;

int64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t median(std::vector<int64_t> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int64_t pct(std::vector<int64_t> &v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t i = size_t(p * double(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

// Runs op() at least twice, until BUDGET_MS is spent or MAX_ITERS done;
// prints the median per-operation time.
template <class Op>
void timed_loop(Op op, long budget_ms, long max_iters) {
    std::vector<int64_t> t;
    const int64_t end = now_ns() + budget_ms * 1000000;
    op();  // warm-up (page cache, dentries, first allocation)
    while (long(t.size()) < max_iters && (t.size() < 2 || now_ns() < end)) {
        int64_t a = now_ns();
        op();
        t.push_back(now_ns() - a);
    }
    printf("%lld %zu\n", (long long)median(t), t.size());
}

int replace(const std::string &impl, const std::string &dir, size_t size, bool full, long budget,
            long max_iters) {
    const std::string target = dir + "/target";
    const std::string temp = target + "~~";
    const std::string data(size, 'x');
    if (impl == "ours") {
        wl::WriteOptions opt;
        opt.durability = full ? wl::Durability::full : wl::Durability::none;
        timed_loop([&] { wl::atomic_write_content_with_lock(target, data, opt); }, budget, max_iters);
    } else if (impl == "floor") {
        timed_loop([&] { wlf_bench::floor_replace(dir, temp, target, data, full); }, budget, max_iters);
    } else {
        fprintf(stderr, "peer_bench: unknown replace impl '%s'\n", impl.c_str());
        return 2;
    }
    ::unlink(target.c_str());
    return 0;
}

int lock(const std::string &impl, const std::string &dir, long budget) {
    const std::string target = dir + "/locktarget";
    const std::string lockp = target + ".lock";
    if (impl == "ours") {
        timed_loop([&] { wl::FileLock l(target); }, budget, 1000000);
    } else if (impl == "flock") {
        timed_loop(
            [&] {
                int fd = ::open(lockp.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
                if (fd < 0) die("open", lockp);
                if (::flock(fd, LOCK_EX) != 0) die("flock", lockp);
                ::unlink(lockp.c_str());
                ::flock(fd, LOCK_UN);
                ::close(fd);
            },
            budget, 1000000);
    } else {
        fprintf(stderr, "peer_bench: unknown lock impl '%s'\n", impl.c_str());
        return 2;
    }
    return 0;
}

struct Shared {
    std::atomic<int64_t> last_release_ns;
    std::atomic<int> last_holder;
    std::atomic<int> ready;
    std::atomic<int64_t> start_ns;
};
constexpr size_t kMaxSamples = 200000;

int contend(int n, bool poll, const std::string &dir, long budget) {
    const std::string target = dir + "/contended";
    size_t bytes = sizeof(Shared) + size_t(n) * (sizeof(int64_t) * (kMaxSamples + 2));
    void *mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) die("mmap", "");
    auto *sh = new (mem) Shared{};
    sh->last_holder = -1;
    auto slot = [&](int i) {
        return reinterpret_cast<int64_t *>(static_cast<char *>(mem) + sizeof(Shared)) +
               size_t(i) * (kMaxSamples + 2);
    };
    wl::LockOptions opt;
    if (poll) opt.timeout = 60.0;
    std::vector<pid_t> kids;
    for (int i = 0; i < n; ++i) {
        pid_t pid = fork();
        if (pid < 0) die("fork", "");
        if (pid == 0) {
            int64_t *s = slot(i);  // s[0] = hand-offs, s[1] = acquisitions, s[2..] samples
            sh->ready.fetch_add(1);
            while (sh->start_ns.load() == 0) {
            }
            const int64_t end = sh->start_ns.load() + budget * 1000000;
            try {
                while (now_ns() < end) {
                    wl::FileLock l(target, opt);
                    int64_t got = now_ns();
                    int prev = sh->last_holder.load();
                    ++s[1];
                    if (prev >= 0 && prev != i && s[0] < int64_t(kMaxSamples)) {
                        s[2 + s[0]] = got - sh->last_release_ns.load();
                        ++s[0];
                    }
                    sh->last_holder.store(i);
                    sh->last_release_ns.store(now_ns());
                    l.release();
                }
            } catch (const std::exception &e) {
                fprintf(stderr, "peer_bench contend: %s\n", e.what());
                _exit(1);
            }
            _exit(0);
        }
        kids.push_back(pid);
    }
    while (sh->ready.load() < n) usleep(100);
    sh->start_ns.store(now_ns());
    int bad = 0;
    for (pid_t p : kids) {
        int st;
        while (waitpid(p, &st, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad = 1;
    }
    if (bad) return 1;
    std::vector<int64_t> all;
    int64_t acq = 0;
    for (int i = 0; i < n; ++i) {
        int64_t *s = slot(i);
        all.insert(all.end(), s + 2, s + 2 + s[0]);
        acq += s[1];
    }
    size_t handoffs = all.size();
    int64_t p50 = pct(all, 0.5), p99 = pct(all, 0.99);
    printf("%lld %lld %zu %lld\n", (long long)p50, (long long)p99, handoffs, (long long)acq);
    return 0;
}

int append(const std::string &impl, const std::string &dir, size_t size, bool full, long budget,
           long max_iters) {
    const std::string path = dir + "/big";
    {
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) die("open", path);
        std::string chunk(size_t(1) << 20, 'y');
        for (size_t done = 0; done < size; done += chunk.size())
            write_all(fd, chunk.data(), std::min(chunk.size(), size - done), path);
        if (::fsync(fd) != 0) die("fsync", path);
        ::close(fd);
    }
    const std::string line(63, 'l');
    const std::string nl = line + "\n";
    if (impl == "ours") {
        wl::WriteOptions opt;
        opt.durability = full ? wl::Durability::full : wl::Durability::none;
        timed_loop(
            [&] {
                wl::AtomicFile f = wl::atomic_write(path, "a", std::nullopt, opt);
                f.write(nl);
                f.commit();
            },
            budget, max_iters);
    } else if (impl == "plain") {
        timed_loop(
            [&] {
                int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
                if (fd < 0) die("open", path);
                write_all(fd, nl.data(), nl.size(), path);
                if (full && ::fsync(fd) != 0) die("fsync", path);
                ::close(fd);
            },
            budget, max_iters);
    } else {
        fprintf(stderr, "peer_bench: unknown append impl '%s'\n", impl.c_str());
        return 2;
    }
    ::unlink(path.c_str());
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    std::vector<std::string> a(argv + 1, argv + argc);
    try {
        if (a.size() == 7 && a[0] == "replace")
            return replace(a[1], a[2], std::stoul(a[3]), a[4] == "full", std::stol(a[5]), std::stol(a[6]));
        if (a.size() == 4 && a[0] == "lock") return lock(a[1], a[2], std::stol(a[3]));
        if (a.size() == 5 && a[0] == "contend")
            return contend(std::stoi(a[1]), a[2] == "poll", a[3], std::stol(a[4]));
        if (a.size() == 7 && a[0] == "append")
            return append(a[1], a[2], std::stoul(a[3]), a[4] == "full", std::stol(a[5]), std::stol(a[6]));
    } catch (const std::exception &e) {
        fprintf(stderr, "peer_bench: %s\n", e.what());
        return 1;
    }
    fprintf(stderr, "usage: see the comment at the top of bench/peer_bench.cpp\n");
    return 2;
}
