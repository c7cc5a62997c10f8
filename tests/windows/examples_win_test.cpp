// The README examples (tests/examples/examples.cpp, unchanged) on Windows,
// under Wine. Lock files stay on Windows, so each directory holds the file
// and its ".lock".
#include "examples.hpp"
#include "win_support.hpp"

#include <wrap_lockfile/wrap_lockfile.hpp>

#include <gtest/gtest.h>
#include <zlib.h>

#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

namespace {

using namespace wlf_win;
using namespace wlf_examples;
using namespace std::chrono_literals;

std::vector<std::string> file_and_lock(const std::string &name) { return {name, name + ".lock"}; }

TEST(Example1, UpdateConfigMergesAndKeepsOtherKeys) {
    TempDir dir;
    fs::path config = dir / "config.json";
    write_file(config, R"({"name": "app", "debug": false, "limits": {"cpu": 2}})");
    update_config(config, {{"debug", true}, {"level", "info"}});
    nlohmann::json got = nlohmann::json::parse(read_file(config));
    EXPECT_EQ(got, nlohmann::json::parse(R"({"name": "app", "debug": true, "level": "info", "limits": {"cpu": 2}})"));
    EXPECT_EQ(list_names(dir.path()), file_and_lock("config.json"));
}

TEST(Example2, ConcurrentAppendsAreWholeLines) {
    TempDir dir;
    fs::path log = dir / "app.log";
    constexpr int threads = 4, per_thread = 25;
    {
        std::vector<std::thread> writers;
        for (int t = 0; t < threads; ++t)
            writers.emplace_back([&, t] {
                for (int i = 0; i < per_thread; ++i)
                    append_log(log, "writer " + std::to_string(t) + " message " + std::to_string(i));
            });
        for (auto &w : writers) w.join();
    }
    const std::regex line_re(R"(\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] (writer \d+ message \d+)\r?)");
    std::set<std::string> seen;
    std::istringstream in(read_file(log));
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        ASSERT_TRUE(std::regex_match(line, m, line_re)) << "malformed line: " << line;
        EXPECT_TRUE(seen.insert(m[1]).second) << "duplicate: " << line;
    }
    EXPECT_EQ(seen.size(), static_cast<size_t>(threads * per_thread));
}

TEST(Example2, AppendWaitsForTheLockHolder) {
    TempDir dir;
    fs::path log = dir / "app.log";
    write_file(log, "first\n");
    Holder holder(log);
    ASSERT_TRUE(holder.locked());
    double start = now_seconds();
    std::thread releaser([&] {
        std::this_thread::sleep_for(500ms);
        holder.release();
    });
    append_log(log, "second");
    releaser.join();
    EXPECT_GE(now_seconds() - start, 0.45);
    std::string text = read_file(log);
    EXPECT_EQ(text.rfind("first\n[", 0), 0u) << text;
    EXPECT_NE(text.find("] second"), std::string::npos) << text;
}

TEST(Example3, IncrementCounterLiteralStartsAtZero) {
    TempDir dir;
    fs::path counter = dir / "counter";
    EXPECT_EQ(increment_counter(counter), 1);
    EXPECT_EQ(increment_counter(counter), 2);
    EXPECT_EQ(increment_counter(counter), 3);
    EXPECT_EQ(read_file(counter), "3");
    EXPECT_EQ(list_names(dir.path()), file_and_lock("counter"));
}

TEST(Example3, SerializedIncrementsFromFourThreadsReachExactly100) {
    TempDir dir;
    fs::path counter = dir / "counter";
    std::vector<int> returned;
    std::mutex returned_mutex;
    {
        std::vector<std::thread> workers;
        for (int t = 0; t < 4; ++t)
            workers.emplace_back([&] {
                for (int i = 0; i < 25; ++i) {
                    int v = increment_counter_serialized(counter);
                    std::lock_guard g(returned_mutex);
                    returned.push_back(v);
                }
            });
        for (auto &w : workers) w.join();
    }
    EXPECT_EQ(read_file(counter), "100");
    std::set<int> distinct(returned.begin(), returned.end());
    EXPECT_EQ(distinct.size(), 100u);
    EXPECT_EQ(list_names(dir.path()), file_and_lock("counter"));
}

std::string gunzip(const std::string &data) {
    z_stream zs{};
    EXPECT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    std::string out;
    std::vector<char> buf(65536);
    int rc;
    do {
        zs.next_out = reinterpret_cast<Bytef *>(buf.data());
        zs.avail_out = static_cast<uInt>(buf.size());
        rc = inflate(&zs, Z_NO_FLUSH);
        out.append(buf.data(), buf.size() - zs.avail_out);
    } while (rc == Z_OK);
    inflateEnd(&zs);
    EXPECT_EQ(rc, Z_STREAM_END);
    return out;
}

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
    EXPECT_EQ(gunzip(stored), input);  // binary: no newline translation on the way
    EXPECT_EQ(list_names(dir.path()), file_and_lock("data.gz"));
}

constexpr RetryTiming fast{.lock_timeout = 0.2, .pause = std::chrono::duration<double>(0.1)};

TEST(Example5, SucceedsAtOnceWhenTheLockIsFree) {
    TempDir dir;
    fs::path file = dir / "data.txt";
    double start = now_seconds();
    EXPECT_TRUE(update_with_retry(file, "new content\n"));
    EXPECT_LT(now_seconds() - start, 1.0);
    EXPECT_EQ(read_file(file).substr(0, 11), "new content");
}

TEST(Example5, GivesUpAfterMaxRetriesWhileAnotherProcessHoldsTheLock) {
    TempDir dir;
    fs::path file = dir / "data.txt";
    write_file(file, "old\n");
    Holder holder(file);
    ASSERT_TRUE(holder.locked());
    double start = now_seconds();
    EXPECT_FALSE(update_with_retry(file, "new\n", 3, fast));
    double elapsed = now_seconds() - start;
    EXPECT_GE(elapsed, 0.75);
    EXPECT_LT(elapsed, 5.0);
    EXPECT_EQ(read_file(file), "old\n");
}

TEST(Example5, RetriesUntilTheHolderLetsGo) {
    TempDir dir;
    fs::path file = dir / "data.txt";
    write_file(file, "old\n");
    Holder holder(file);
    ASSERT_TRUE(holder.locked());
    constexpr RetryTiming timing{.lock_timeout = 0.5, .pause = std::chrono::duration<double>(0.25)};
    double start = now_seconds();
    std::thread releaser([&] {
        std::this_thread::sleep_for(700ms);
        holder.release();
    });
    EXPECT_TRUE(update_with_retry(file, "new\n", 3, timing));
    releaser.join();
    EXPECT_GE(now_seconds() - start, 0.65);
    EXPECT_EQ(read_file(file).substr(0, 3), "new");
}

TEST(Example5, OtherLockErrorsReturnFalseWithoutRetrying) {
    TempDir dir;
    fs::path file = dir / "missing-dir" / "data.txt";
    double start = now_seconds();
    EXPECT_FALSE(update_with_retry(file, "new\n"));
    EXPECT_LT(now_seconds() - start, 1.0);
}

TEST(Example6, WriteThroughSymlinkKeepsTheLinkAndUpdatesTheTarget) {
    TempDir tmp;
    fs::create_directories(tmp / "data" / "configs");
    fs::create_directories(tmp / "etc");
    fs::path target = tmp.path() / "data" / "configs" / "app.conf";
    fs::path link = tmp.path() / "etc" / "app.conf";
    write_file(target, "debug=false\n");
    // Wine 8's CreateSymbolicLinkW is a stub: it succeeds and creates nothing.
    if (!CreateSymbolicLinkW(long_path(link).c_str(), long_path(target).c_str(), 0) ||
        GetFileAttributesW(long_path(link).c_str()) == INVALID_FILE_ATTRIBUTES)
        GTEST_SKIP() << "no symbolic link could be made here (Wine 8 creates none)";
    write_app_conf(link);
    EXPECT_TRUE(GetFileAttributesW(long_path(link).c_str()) & FILE_ATTRIBUTE_REPARSE_POINT);
    EXPECT_EQ(read_file(target), "debug=true\nverbose=true\n");
    EXPECT_EQ(list_names(tmp / "etc"), std::vector<std::string>{"app.conf"});
    EXPECT_EQ(list_names(tmp / "data" / "configs"), file_and_lock("app.conf"));
}

}  // namespace
