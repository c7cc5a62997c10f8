// SIGKILL at any instant of a replacement (README "What one replacement
// does", step 3): a writer looping wlf_write_content is killed after a
// random number of microseconds, many times. Each time the target holds
// exactly its old or its new content, and after one more successful write
// nothing is beside it: no lock file, no temp (a killed holder's temp has
// the per-target name, which the next holder removes). Both with O_TMPFILE
// (a kill between naming it and the rename) and with named temps (a file
// system without O_TMPFILE, emulated by a seccomp filter in the writer).
#include "test_support.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <random>
#include <string>

namespace fs = std::filesystem;
using wlf_test::read_file;

namespace {

constexpr int kRounds = 150;  // per variant; two variants, well under a minute

int deny_o_tmpfile() {
    return wlf_test::fail_syscall_in_this_thread(__NR_openat, EOPNOTSUPP, 2, 020000000 /* __O_TMPFILE bit */);
}

int write_content(const fs::path &p, const std::string &content) {
    wlf_write_options opt;
    wlf_write_options_init(&opt);
    // No fsync: a replacement takes tens of microseconds, so the random
    // instants spread over all of its steps rather than the fsyncs.
    opt.durability = WLF_DURABILITY_NONE;
    wlf_error err;
    return wlf_write_content(p.c_str(), content.data(), content.size(), &opt, &err);
}

void sleep_us(long us) {
    timespec ts{us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

// Runs the rounds; `named`: the writers have no O_TMPFILE. Returns how many
// kills left a name beside the target (to show the window was hit).
void run_rounds(bool named, int *leftovers) {
    wlf_test::TempDir dir;
    fs::path t = dir / "t";
    const std::string old_content(8192, 'o'), new_content(8192, 'n');
    std::mt19937 rng(12345u + (named ? 1u : 0u));
    std::uniform_int_distribution<long> delay(0, 600);
    *leftovers = 0;
    for (int round = 0; round < kRounds; ++round) {
        wlf_test::write_file(t, old_content);
        wlf_test::Pipe ready;
        wlf_test::Child writer([&] {
            ready.close_read();
            if (named && deny_o_tmpfile() != 0) return 3;
            if (!ready.put('r')) return 4;
            for (;;) {
                if (write_content(t, new_content) != 0) return 5;
            }
        });
        ready.close_write();
        ASSERT_EQ(wlf_test::get_byte(ready.read_fd()), 'r') << "round " << round;
        sleep_us(delay(rng));
        ASSERT_EQ(::kill(writer.pid(), SIGKILL), 0);
        ASSERT_EQ(writer.wait(), 128 + SIGKILL) << "round " << round << ": the writer stopped by itself";

        std::string seen = read_file(t);
        ASSERT_TRUE(seen == old_content || seen == new_content)
            << "round " << round << ": the target holds " << seen.size() << " bytes of neither content";
        if (wlf_test::list_names(dir.path()).size() > 1) ++*leftovers;

        // The next successful write, by a writer of the same kind.
        wlf_test::Child next([&] {
            if (named && deny_o_tmpfile() != 0) return 3;
            return write_content(t, "final\n") == 0 ? 0 : 6;
        });
        ASSERT_EQ(next.wait(), 0) << "round " << round;
        EXPECT_EQ(read_file(t), "final\n") << "round " << round;
        std::vector<std::string> names = wlf_test::list_names(dir.path());
        ASSERT_EQ(names, std::vector<std::string>{"t"})
            << "round " << round << ": left beside the target after the next write: " << ::testing::PrintToString(names);
    }
}

TEST(KillTest, AnyInstantWithOTmpfileLeavesOldOrNewAndTheNextWriteCleans) {
    {
        wlf_test::TempDir probe_dir;
        int probe = ::open(probe_dir.path().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (probe < 0) GTEST_SKIP() << "no O_TMPFILE in " << probe_dir.path() << ": " << std::strerror(errno);
        ::close(probe);
    }
    int leftovers = 0;
    run_rounds(false, &leftovers);
    RecordProperty("kills_leaving_a_name", leftovers);
}

TEST(KillTest, AnyInstantWithNamedTempsLeavesOldOrNewAndTheNextWriteCleans) {
    {
        wlf_test::Child probe([] { return deny_o_tmpfile(); });
        if (int rc = probe.wait(); rc != 0) GTEST_SKIP() << "cannot filter O_TMPFILE here: " << std::strerror(rc);
    }
    int leftovers = 0;
    run_rounds(true, &leftovers);
    RecordProperty("kills_leaving_a_name", leftovers);
    // A named temp exists for most of a replacement: most kills leave one.
    EXPECT_GT(leftovers, kRounds / 4) << "the kills missed the replacements";
}

// ---- the per-target name: only a killed holder's leftover is removed ----

// In a child without O_TMPFILE (named temps): runs fn, returns its status.
int with_named_temps(const std::function<int()> &fn) {
    wlf_test::Child c([&] {
        if (deny_o_tmpfile() != 0) return 3;
        return fn();
    });
    return c.wait();
}

bool can_filter_o_tmpfile() { return with_named_temps([] { return 0; }) == 0; }

// Names ".t.*~~" in dir: temps of t.
int temps(const fs::path &dir) {
    int n = 0;
    for (const std::string &name : wlf_test::list_names(dir))
        n += name.rfind(".t.", 0) == 0 && name.size() > 5 && name.compare(name.size() - 2, 2, "~~") == 0;
    return n;
}

TEST(PerTargetTempTest, NestedReplacementsOfOneTargetGetTwoNames) {
    if (!can_filter_o_tmpfile()) GTEST_SKIP() << "cannot filter O_TMPFILE here";
    wlf_test::TempDir dir;
    fs::path t = dir / "t";
    wlf_test::write_file(t, "old\n");
    int rc = with_named_temps([&] {
        wlf_file *outer = nullptr, *inner = nullptr;
        wlf_error err;
        if (wlf_open_flags(t.c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, nullptr, &outer, &err) != 0) return 10;
        if (wlf_open_flags(t.c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, nullptr, &inner, &err) != 0) return 11;
        // Both pending: the outer one at the per-target name, the nested one elsewhere.
        if (temps(dir.path()) != 2 || !fs::exists(dir / ".t._pending~~")) return 12;
        if (::write(wlf_file_fd(inner), "inner\n", 6) != 6 || ::write(wlf_file_fd(outer), "outer\n", 6) != 6) return 13;
        if (wlf_commit(inner, nullptr, &err) != 0) return 14;
        if (read_file(t) != "inner\n") return 15;
        if (wlf_commit(outer, nullptr, &err) != 0) return 16;
        return read_file(t) == "outer\n" ? 0 : 17;
    });
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(wlf_test::list_names(dir.path()), std::vector<std::string>{"t"});
}

TEST(PerTargetTempTest, WhatIsNotALeftoverTempStaysAtTheName) {
    // A hard link to somebody's file, a directory, a symlink: never removed;
    // the writer takes a random name instead.
    wlf_test::TempDir dir;
    fs::path t = dir / "t", name = dir / ".t._pending~~", other = dir / "other";
    wlf_test::write_file(other, "somebody's\n");
    for (int kind = 0; kind < 3; ++kind) {
        for (bool named : {false, true}) {
            if (named && !can_filter_o_tmpfile()) continue;
            wlf_test::write_file(t, "old\n");
            int made = kind == 0 ? ::link(other.c_str(), name.c_str())
                       : kind == 1 ? ::mkdir(name.c_str(), 0700)
                                   : ::symlink("other", name.c_str());
            ASSERT_EQ(made, 0);
            auto write = [&] { return write_content(t, "new\n") == 0 ? 0 : 1; };
            EXPECT_EQ(named ? with_named_temps(write) : write(), 0) << kind << named;
            EXPECT_EQ(read_file(t), "new\n");
            EXPECT_EQ(read_file(other), "somebody's\n");
            struct stat st;
            ASSERT_EQ(::lstat(name.c_str(), &st), 0) << "kind " << kind << " removed";
            EXPECT_EQ(wlf_test::list_names(dir.path()), (std::vector<std::string>{".t._pending~~", "other", "t"}));
            ASSERT_EQ(kind == 1 ? ::rmdir(name.c_str()) : ::unlink(name.c_str()), 0);
        }
    }
}

TEST(PerTargetTempTest, AnUnlockedWriterNeitherTakesNorRemovesTheName) {
    if (!can_filter_o_tmpfile()) GTEST_SKIP() << "cannot filter O_TMPFILE here";
    wlf_test::TempDir dir;
    fs::path t = dir / "t", name = dir / ".t._pending~~";
    wlf_test::write_file(t, "old\n");
    // A locked holder's pending temp, as far as an unlocked writer can tell.
    wlf_test::write_file(name, "pending\n");
    int rc = with_named_temps([&] {
        wlf_write_options opt;
        wlf_write_options_init(&opt);
        opt.use_lock = 0;
        wlf_file *f = nullptr;
        wlf_error err;
        if (wlf_open_flags(t.c_str(), WLF_OPEN_WRITE | WLF_OPEN_TRUNCATE, 0666, &opt, &f, &err) != 0) return 10;
        bool random = temps(dir.path()) == 2;  // the planted one and a random one
        if (::write(wlf_file_fd(f), "new\n", 4) != 4) return 11;
        if (wlf_commit(f, nullptr, &err) != 0) return 12;
        return random ? 0 : 13;
    });
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(read_file(t), "new\n");
    EXPECT_EQ(read_file(name), "pending\n");
}

}  // namespace
