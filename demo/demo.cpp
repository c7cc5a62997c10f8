// wrap_lockfile_demo: concurrent writers rewrite one file while readers check
// that every read is one complete version. Phase 1 writes the usual way
// (open with O_TRUNC, write in chunks), phase 2 with atomic_write_lock.
// Exit status 0 when the atomic phase had no torn read, 1 otherwise, 2 on error.
#include <wrap_lockfile/wrap_lockfile.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct Options {
    int writers = 4;
    int readers = 2;
    std::size_t size = 256 * 1024;
    int rounds = 50;
    std::optional<fs::path> dir;
};

constexpr std::size_t chunk_size = 4096;

void usage(std::ostream &out) {
    out << "usage: wrap_lockfile_demo [--writers N] [--readers N] [--size BYTES] [--rounds N] [--dir DIR]\n"
           "  N writer threads each rewrite one file N rounds times, alternating two\n"
           "  complete versions; reader threads check every read is exactly one of them.\n"
           "  Phase 1 writes with open(O_TRUNC) + write, phase 2 with atomic_write_lock.\n"
           "  --dir: where the shared file lives (default: a temporary directory, removed).\n";
}

template <typename T>
T parse_number(std::string_view name, std::string_view text, T min) {
    T value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value < min)
        throw std::invalid_argument(std::string(name) + " needs a number >= " + std::to_string(min) + ", got '" +
                                    std::string(text) + "'");
    return value;
}

Options parse_options(int argc, char **argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            usage(std::cout);
            std::exit(0);
        }
        if (arg != "--writers" && arg != "--readers" && arg != "--size" && arg != "--rounds" && arg != "--dir")
            throw std::invalid_argument("unknown option: " + std::string(arg));
        if (i + 1 >= argc) throw std::invalid_argument(std::string(arg) + " needs a value");
        std::string_view value = argv[++i];
        if (arg == "--writers") o.writers = parse_number<int>(arg, value, 1);
        else if (arg == "--readers") o.readers = parse_number<int>(arg, value, 1);
        else if (arg == "--size") o.size = parse_number<std::size_t>(arg, value, 1);
        else if (arg == "--rounds") o.rounds = parse_number<int>(arg, value, 1);
        else o.dir = fs::path(value);
    }
    return o;
}

// A version is a header, `size` filler bytes and a trailer, so a reader can
// tell a complete file from a truncated, empty or interleaved one.
std::string make_version(char fill, std::size_t size) {
    std::string v = "wrap_lockfile demo version ";
    v += fill;
    v += " (" + std::to_string(size) + " bytes)\n";
    v.append(size, fill);
    v += "\nEND OF VERSION ";
    v += fill;
    v += '\n';
    return v;
}

struct ReadStats {
    std::atomic<long> reads{0};
    std::atomic<long> complete{0};
    std::atomic<long> empty{0};
    std::atomic<long> partial{0};  // truncated or a mix of both versions
    long torn() const { return empty + partial; }
};

std::string read_whole(const fs::path &path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + path.string());
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            ::close(fd);
            throw std::system_error(e, std::generic_category(), "read " + path.string());
        }
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

// The "before" way: truncate in place, then write piece by piece.
void plain_write(const fs::path &path, const std::string &content) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + path.string());
    for (std::size_t off = 0; off < content.size();) {
        std::size_t len = std::min(chunk_size, content.size() - off);
        ssize_t n = ::write(fd, content.data() + off, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            ::close(fd);
            throw std::system_error(e, std::generic_category(), "write " + path.string());
        }
        off += static_cast<std::size_t>(n);
    }
    ::close(fd);
}

void atomic_write(const fs::path &path, const std::string &content) {
    wrap_lockfile::AtomicFile out = wrap_lockfile::atomic_write_lock(path);
    // Same chunking as the plain writer: the difference is only where the bytes go.
    for (std::size_t off = 0; off < content.size(); off += chunk_size)
        out.write(std::string_view(content).substr(off, chunk_size));
    out.commit();
}

using Writer = std::function<void(const fs::path &, const std::string &)>;

struct PhaseResult {
    explicit PhaseResult(std::string phase_name) : name(std::move(phase_name)) {}
    std::string name;
    long writes = 0;
    ReadStats stats;
    double seconds = 0;
};

// Runs writers to completion with readers checking all along. The first
// error of any thread aborts the demo after the threads are joined.
void run_phase(const Options &o, const fs::path &file, const Writer &write, const std::string &a,
               const std::string &b, PhaseResult &result) {
    atomic_write(file, a);  // every phase starts from a complete version

    std::atomic<bool> writers_done{false};
    std::mutex error_mutex;
    std::string first_error;
    auto record_error = [&](const std::exception &e) {
        std::lock_guard g(error_mutex);
        if (first_error.empty()) first_error = e.what();
    };

    auto start = std::chrono::steady_clock::now();
    {
        std::vector<std::jthread> readers;
        for (int r = 0; r < o.readers; ++r)
            readers.emplace_back([&] {
                try {
                    // At least one read after the writers finish, so even a
                    // tiny run checks something.
                    bool last = false;
                    while (!last) {
                        last = writers_done.load();
                        std::string got = read_whole(file);
                        ++result.stats.reads;
                        if (got == a || got == b) ++result.stats.complete;
                        else if (got.empty()) ++result.stats.empty;
                        else ++result.stats.partial;
                    }
                } catch (const std::exception &e) {
                    record_error(e);
                }
            });

        std::vector<std::jthread> writers;
        for (int w = 0; w < o.writers; ++w)
            writers.emplace_back([&, w] {
                try {
                    for (int i = 0; i < o.rounds; ++i) write(file, (w + i) % 2 == 0 ? b : a);
                } catch (const std::exception &e) {
                    record_error(e);
                }
            });
        for (auto &t : writers) t.join();
        writers_done = true;
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.writes = static_cast<long>(o.writers) * o.rounds;
    if (!first_error.empty()) throw std::runtime_error(result.name + ": " + first_error);
}

void print_table(const std::vector<PhaseResult *> &phases) {
    std::printf("\n%-26s %8s %8s %10s %8s %14s %8s\n", "phase", "writes", "reads", "complete", "empty",
                "torn/partial", "seconds");
    for (const PhaseResult *p : phases)
        std::printf("%-26s %8ld %8ld %10ld %8ld %14ld %8.2f\n", p->name.c_str(), p->writes, p->stats.reads.load(),
                    p->stats.complete.load(), p->stats.empty.load(), p->stats.partial.load(), p->seconds);
    std::printf("\n");
}

// mkdtemp directory, removed with everything in it at scope exit.
class ScratchDir {
public:
    ScratchDir() {
        const char *base = std::getenv("TMPDIR");
        std::string tmpl = std::string(base && *base ? base : "/tmp") + "/wrap_lockfile_demo-XXXXXX";
        if (!::mkdtemp(tmpl.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp");
        path_ = tmpl;
    }
    ScratchDir(const ScratchDir &) = delete;
    ScratchDir &operator=(const ScratchDir &) = delete;
    ~ScratchDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path &path() const { return path_; }

private:
    fs::path path_;
};

int run(const Options &o) {
    std::optional<ScratchDir> scratch;
    if (!o.dir) scratch.emplace();
    const fs::path file = (o.dir ? *o.dir : scratch->path()) / "shared.txt";
    const std::string a = make_version('A', o.size), b = make_version('B', o.size);

    std::printf("%d writer threads x %d rounds, %d reader threads, %zu bytes per version\nfile: %s\n",
                o.writers, o.rounds, o.readers, a.size(), file.c_str());

    PhaseResult plain("plain open(O_TRUNC)+write");
    PhaseResult atomic("atomic_write_lock");
    run_phase(o, file, plain_write, a, b, plain);
    run_phase(o, file, atomic_write, a, b, atomic);
    print_table({&plain, &atomic});

    if (plain.stats.torn() == 0)
        std::printf("The plain phase happened to show no torn read this time; it can (try more --rounds).\n");
    else
        std::printf("Plain writes: %ld of %ld reads saw an empty or partial file.\n", plain.stats.torn(),
                    plain.stats.reads.load());
    if (atomic.stats.torn() == 0) {
        std::printf("atomic_write_lock: every one of %ld reads saw a complete version.\n",
                    atomic.stats.reads.load());
        return 0;
    }
    std::printf("FAIL: atomic_write_lock let %ld reads see a torn file.\n", atomic.stats.torn());
    return 1;
}

}  // namespace

int main(int argc, char **argv) {
    Options options;
    try {
        options = parse_options(argc, argv);
    } catch (const std::exception &e) {
        std::cerr << "wrap_lockfile_demo: " << e.what() << '\n';
        usage(std::cerr);
        return 2;
    }
    try {
        return run(options);
    } catch (const std::exception &e) {
        std::cerr << "wrap_lockfile_demo: " << e.what() << '\n';
        return 2;
    }
}
