// Runs the README examples and checks what they leave on the file system.
#include "examples.hpp"
#include "test_support.hpp"

#include <wrap_lockfile/wrap_lockfile.hpp>

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace wlf_examples;
using wlf_test::read_file;
using wlf_test::TempDir;
using wlf_test::write_file;
using Clock = std::chrono::steady_clock;

// Holds the lock of `target` in another process (a different open file
// description, as a competing program would) until release().
class LockHolder {
public:
    explicit LockHolder(const fs::path &target) {
        int ready[2], go[2];
        if (pipe(ready) != 0 || pipe(go) != 0) throw std::runtime_error("pipe");
        pid_ = fork();
        if (pid_ < 0) throw std::runtime_error("fork");
        if (pid_ == 0) {
            close(ready[0]);
            close(go[1]);
            int status = 0;
            try {
                wrap_lockfile::mylockfile lock(target);
                char c = 'L';
                if (write(ready[1], &c, 1) != 1) status = 1;
                // Returns on the parent's byte or when the parent dies.
                if (read(go[0], &c, 1) < 0) status = 1;
            } catch (...) {
                status = 2;
            }
            _exit(status);
        }
        close(ready[1]);
        close(go[0]);
        release_fd_ = go[1];
        char c = 0;
        ssize_t n = read(ready[0], &c, 1);
        close(ready[0]);
        if (n != 1) {
            release();
            throw std::runtime_error("lock holder did not get the lock");
        }
    }
    LockHolder(const LockHolder &) = delete;
    LockHolder &operator=(const LockHolder &) = delete;
    ~LockHolder() { release(); }

    // Lets the child release the lock and exit; returns once it has.
    void release() {
        if (pid_ <= 0) return;
        close(release_fd_);
        int status = 0;
        waitpid(pid_, &status, 0);
        pid_ = -1;
    }

private:
    pid_t pid_ = -1;
    int release_fd_ = -1;
};

std::string gunzip(const std::string &data) {
    z_stream zs{};
    EXPECT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    std::string out;
    char buf[65536];
    int rc;
    do {
        zs.next_out = reinterpret_cast<Bytef *>(buf);
        zs.avail_out = sizeof buf;
        rc = inflate(&zs, Z_NO_FLUSH);
        out.append(buf, sizeof buf - zs.avail_out);
    } while (rc == Z_OK);
    inflateEnd(&zs);
    EXPECT_EQ(rc, Z_STREAM_END);
    return out;
}

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---- Example 1 ----

TEST(Example1, UpdateConfigMergesAndKeepsOtherKeys) {
    TempDir dir;
    fs::path config = dir / "config.json";
    write_file(config, R"({"name": "app", "debug": false, "limits": {"cpu": 2}})");

    update_config(config, {{"debug", true}, {"level", "info"}});

    nlohmann::json got = nlohmann::json::parse(read_file(config));
    EXPECT_EQ(got, nlohmann::json::parse(
                       R"({"name": "app", "debug": true, "level": "info", "limits": {"cpu": 2}})"));
    // Only the config remains: no temp, no lock file.
    EXPECT_EQ(wlf_test::count_entries(dir.path()), 1u);
}

// ---- Example 2 ----

TEST(Example2, ConcurrentAppendsAreWholeLines) {
    TempDir dir;
    fs::path log = dir / "app.log";
    constexpr int threads = 4, per_thread = 25;
    {
        std::vector<std::jthread> writers;
        for (int t = 0; t < threads; ++t)
            writers.emplace_back([&, t] {
                for (int i = 0; i < per_thread; ++i)
                    append_log(log, "writer " + std::to_string(t) + " message " + std::to_string(i));
            });
    }

    const std::regex line_re(R"(\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] (writer \d+ message \d+))");
    std::set<std::string> seen;
    std::istringstream in(read_file(log));
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        ASSERT_TRUE(std::regex_match(line, m, line_re)) << "malformed line: " << line;
        EXPECT_TRUE(seen.insert(m[1]).second) << "duplicate: " << line;
    }
    EXPECT_EQ(seen.size(), static_cast<size_t>(threads * per_thread));
    EXPECT_EQ(wlf_test::count_entries(dir.path()), 1u);
}

TEST(Example2, AppendWaitsForTheLockHolder) {
    TempDir dir;
    fs::path log = dir / "app.log";
    write_file(log, "first\n");
    LockHolder holder(log);
    auto start = Clock::now();
    std::jthread releaser([&] {
        std::this_thread::sleep_for(500ms);
        holder.release();
    });

    append_log(log, "second");

    EXPECT_GE(seconds_since(start), 0.45);
    std::string text = read_file(log);
    EXPECT_EQ(text.rfind("first\n[", 0), 0u) << text;
    EXPECT_TRUE(text.ends_with("] second\n")) << text;
}

// ---- Example 3 ----

TEST(Example3, IncrementCounterLiteralStartsAtZero) {
    TempDir dir;
    fs::path counter = dir / "counter";
    EXPECT_EQ(increment_counter(counter), 1);
    EXPECT_EQ(increment_counter(counter), 2);
    EXPECT_EQ(increment_counter(counter), 3);
    EXPECT_EQ(read_file(counter), "3");
    EXPECT_EQ(wlf_test::count_entries(dir.path()), 1u);
}

TEST(Example3, SerializedIncrementsFromFourThreadsReachExactly100) {
    TempDir dir;
    fs::path counter = dir / "counter";
    std::vector<int> returned;
    std::mutex returned_mutex;
    {
        std::vector<std::jthread> workers;
        for (int t = 0; t < 4; ++t)
            workers.emplace_back([&] {
                for (int i = 0; i < 25; ++i) {
                    int v = increment_counter_serialized(counter);
                    std::lock_guard g(returned_mutex);
                    returned.push_back(v);
                }
            });
    }
    EXPECT_EQ(read_file(counter), "100");
    // No two callers saw the same value: every increment was serialized.
    std::set<int> distinct(returned.begin(), returned.end());
    EXPECT_EQ(distinct.size(), 100u);
    EXPECT_EQ(*distinct.begin(), 1);
    EXPECT_EQ(*distinct.rbegin(), 100);
    EXPECT_EQ(wlf_test::count_entries(dir.path()), 1u);
}

// ---- Example 4 ----

TEST(Example4, CompressAndSaveWritesAGzipThatRoundTrips) {
    TempDir dir;
    fs::path out = dir / "data.gz";
    write_file(out, "old content, not gzip");
    std::string input;
    for (int i = 0; i < 20000; ++i) input += "line " + std::to_string(i * 7919 % 10007) + "\n";

    compress_and_save(input, out);

    std::string stored = read_file(out);
    ASSERT_GE(stored.size(), 18u);
    EXPECT_EQ(static_cast<unsigned char>(stored[0]), 0x1f);
    EXPECT_EQ(static_cast<unsigned char>(stored[1]), 0x8b);
    EXPECT_LT(stored.size(), input.size());
    EXPECT_EQ(gunzip(stored), input);
    EXPECT_EQ(wlf_test::count_entries(dir.path()), 1u);
}

// ---- Example 5 ----

constexpr RetryTiming fast{.lock_timeout = 0.2, .pause = std::chrono::duration<double>(0.1)};

TEST(Example5, SucceedsAtOnceWhenTheLockIsFree) {
    TempDir dir;
    fs::path file = dir / "data.txt";
    // The seed's timing (2 s waits, 1 s pauses): finishing well inside one
    // wait shows there was no retry.
    auto start = Clock::now();
    EXPECT_TRUE(update_with_retry(file, "new content\n"));
    EXPECT_LT(seconds_since(start), 1.0);
    EXPECT_EQ(read_file(file), "new content\n");
}

TEST(Example5, GivesUpAfterMaxRetriesWhileAnotherProcessHoldsTheLock) {
    TempDir dir;
    fs::path file = dir / "data.txt";
    write_file(file, "old\n");
    LockHolder holder(file);

    auto start = Clock::now();
    EXPECT_FALSE(update_with_retry(file, "new\n", 3, fast));
    double elapsed = seconds_since(start);

    // Three full waits and two pauses: 3 * 0.2 + 2 * 0.1.
    EXPECT_GE(elapsed, 0.75);
    EXPECT_LT(elapsed, 5.0);
    EXPECT_EQ(read_file(file), "old\n");
}

TEST(Example5, RetriesUntilTheHolderLetsGo) {
    TempDir dir;
    fs::path file = dir / "data.txt";
    write_file(file, "old\n");
    LockHolder holder(file);
    // The holder lets go after the first 0.5 s attempt has timed out; the
    // three attempts leave 1.3 s of slack after that for a loaded machine.
    constexpr RetryTiming timing{.lock_timeout = 0.5, .pause = std::chrono::duration<double>(0.25)};
    auto start = Clock::now();
    std::jthread releaser([&] {
        std::this_thread::sleep_for(700ms);
        holder.release();
    });

    EXPECT_TRUE(update_with_retry(file, "new\n", 3, timing));
    EXPECT_GE(seconds_since(start), 0.65);
    EXPECT_EQ(read_file(file), "new\n");
}

TEST(Example5, OtherLockErrorsReturnFalseWithoutRetrying) {
    TempDir dir;
    // The lock file cannot be created: LockFailed, not LockTimeout.
    fs::path file = dir / "missing-dir" / "data.txt";
    auto start = Clock::now();
    EXPECT_FALSE(update_with_retry(file, "new\n"));
    EXPECT_LT(seconds_since(start), 1.0);
}

// ---- Example 6 ----

struct SymlinkCase {
    const char *name;
    bool relative;
};

class Example6 : public testing::TestWithParam<SymlinkCase> {};

TEST_P(Example6, WriteThroughSymlinkKeepsTheLinkAndUpdatesTheTarget) {
    TempDir tmp;
    fs::path root = fs::canonical(tmp.path());
    fs::create_directories(root / "data/configs");
    fs::create_directories(root / "etc");
    fs::path target = root / "data/configs/app.conf";
    fs::path link = root / "etc/app.conf";
    write_file(target, "debug=false\n");
    fs::path link_text = GetParam().relative ? fs::path("../data/configs/app.conf") : target;
    fs::create_symlink(link_text, link);

    {
        // While a replacement is pending its temp lives next to the target,
        // not next to the link and not in /tmp.
        wrap_lockfile::AtomicFile pending = wrap_lockfile::atomic_write_lock(link);
        EXPECT_TRUE(fs::equivalent(pending.target(), target)) << pending.target();
        fs::path temp = fs::read_symlink("/proc/self/fd/" + std::to_string(pending.fd()));
        EXPECT_EQ(temp.parent_path(), target.parent_path()) << temp;
    }

    write_app_conf(link);

    EXPECT_TRUE(fs::is_symlink(fs::symlink_status(link)));
    EXPECT_EQ(fs::read_symlink(link), link_text);
    EXPECT_EQ(read_file(target), "debug=true\nverbose=true\n");
    EXPECT_EQ(read_file(link), "debug=true\nverbose=true\n");
    // Nothing left behind in either directory: no temp, no lock file.
    EXPECT_EQ(wlf_test::count_entries(root / "etc"), 1u);
    EXPECT_EQ(wlf_test::count_entries(root / "data/configs"), 1u);
}

INSTANTIATE_TEST_SUITE_P(Links, Example6,
                         testing::Values(SymlinkCase{"absolute", false}, SymlinkCase{"relative", true}),
                         [](const auto &info) { return std::string(info.param.name); });

}  // namespace
