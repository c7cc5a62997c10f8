// Unit tests for the shim's configuration parsing (shim/common): globs
// (rules.hpp), the rules file (config_file.hpp), the settings schema that the
// preload object and the launcher share (config.hpp), and the core's timeout
// grammar (timeout.hpp). The glob matcher is compared with the backtracking matcher
// it replaced, which is kept here as the reference of the semantics.
#include <gtest/gtest.h>

#include "config.hpp"
#include "config_file.hpp"
#include "internal.hpp"
#include "normalize.hpp"
#include "rules.hpp"
#include "timeout.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

namespace rules = wrap_lockfile::rules;
namespace detail = wrap_lockfile::detail;
namespace config = wrap_lockfile::config;

namespace {

// ---- the reference: the matcher before the NFA (exponential, same meaning) ----
size_t ref_bracket_length(const char *p) {
    const char *q = p + 1;
    if (*q == '!' || *q == '^') ++q;
    if (*q == ']') ++q;
    while (*q && *q != ']') {
        if (*q == '/') return 0;
        ++q;
    }
    return *q == ']' ? static_cast<size_t>(q - p + 1) : 0;
}

bool ref_bracket_match(const char *p, size_t len, char c) {
    const char *q = p + 1, *end = p + len - 1;
    bool negate = false;
    if (*q == '!' || *q == '^') {
        negate = true;
        ++q;
    }
    bool hit = false, first = true;
    while (q < end) {
        if (!first && *q == ']') break;
        first = false;
        if (q + 2 < end && q[1] == '-') {
            if (static_cast<unsigned char>(c) >= static_cast<unsigned char>(q[0]) &&
                static_cast<unsigned char>(c) <= static_cast<unsigned char>(q[2]))
                hit = true;
            q += 3;
        } else {
            if (*q == c) hit = true;
            ++q;
        }
    }
    return hit != negate;
}

bool ref_match(const char *p, const char *t) {
    while (*p) {
        if (p[0] == '*' && p[1] == '*') {
            const char *rest = p + 2;
            if (*rest == '/' && ref_match(rest + 1, t)) return true;
            for (const char *s = t;; ++s) {
                if (ref_match(rest, s)) return true;
                if (!*s) return false;
            }
        }
        if (*p == '*') {
            for (const char *s = t;; ++s) {
                if (ref_match(p + 1, s)) return true;
                if (!*s || *s == '/') return false;
            }
        }
        if (!*t) return false;
        if (*p == '?') {
            if (*t == '/') return false;
            ++p;
            ++t;
            continue;
        }
        if (*p == '[') {
            if (size_t len = ref_bracket_length(p)) {
                if (*t == '/' || !ref_bracket_match(p, len, *t)) return false;
                p += len;
                ++t;
                continue;
            }
        }
        if (*p == '\\' && p[1]) ++p;
        if (*p != *t) return false;
        ++p;
        ++t;
    }
    return *t == '\0';
}

struct Rules {
    rules::RuleSet set;
    ~Rules() { rules::clear(&set); }
};

}  // namespace

// ---- globs ----

TEST(Glob, DocumentedSemantics) {
    EXPECT_TRUE(rules::glob_match("*.txt", "a.txt"));
    EXPECT_FALSE(rules::glob_match("*.txt", "d/a.txt"));  // '*' stays in a component
    EXPECT_TRUE(rules::glob_match("/a/*/c", "/a/b/c"));
    EXPECT_FALSE(rules::glob_match("/a/*/c", "/a/b/x/c"));
    EXPECT_TRUE(rules::glob_match("/a/**/c", "/a/b/x/c"));  // '**' spans components
    EXPECT_TRUE(rules::glob_match("/a/**/c", "/a/c"));      // "**/" may be no directory
    EXPECT_TRUE(rules::glob_match("/a/**", "/a/b/c"));
    EXPECT_FALSE(rules::glob_match("?", "/"));
    EXPECT_TRUE(rules::glob_match("[a-c]x", "bx"));
    EXPECT_FALSE(rules::glob_match("[!a-c]x", "bx"));
    EXPECT_FALSE(rules::glob_match("a[/]b", "a/b"));  // brackets stay in a component
    EXPECT_TRUE(rules::glob_match("\\*", "*"));
    EXPECT_FALSE(rules::glob_match("\\*", "x"));
    EXPECT_TRUE(rules::glob_match("[]]", "]"));
}

TEST(Glob, LinearTimeOnStarHeavyPatterns) {
    // Backtracking took over 20 s for this on a 60-character name.
    std::string name(60, 'a');
    const char *patterns[] = {"*a*a*a*a*a*a*a*ab", "**a**a**a**a**a**a**a**ab", "/**/**/**/**/**/**/**/**/x"};
    std::string deep;
    for (int i = 0; i < 30; ++i) deep += "/a";
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 100; ++i) {
        EXPECT_FALSE(rules::glob_match(patterns[0], name.c_str()));
        EXPECT_FALSE(rules::glob_match(patterns[1], name.c_str()));
        EXPECT_FALSE(rules::glob_match(patterns[2], deep.c_str()));
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(ms, 2000) << "300 matches took " << ms << " ms";
    std::string star_pattern(4000, '*');
    std::string long_name(4000, 'b');
    EXPECT_TRUE(rules::glob_match(star_pattern.c_str(), long_name.c_str()));
}

TEST(Glob, SameAnswersAsTheBacktrackingMatcher) {
    // Small alphabets so that matches are frequent; every construct appears.
    const char pattern_atoms[][6] = {"a", "b", "/", "*", "**", "?", "[ab]", "[!a]", "\\*", "[", "]", "**/", "\\"};
    const char text_chars[] = {'a', 'b', '/', '*', '[', ']', '\\'};
    std::mt19937 rng(12345);
    int matches = 0;
    for (int round = 0; round < 200000; ++round) {
        std::string p, t;
        int np = static_cast<int>(rng() % 7), nt = static_cast<int>(rng() % 9);
        for (int i = 0; i < np; ++i) p += pattern_atoms[rng() % (sizeof pattern_atoms / sizeof pattern_atoms[0])];
        for (int i = 0; i < nt; ++i) t += text_chars[rng() % sizeof text_chars];
        bool want = ref_match(p.c_str(), t.c_str());
        ASSERT_EQ(rules::glob_match(p.c_str(), t.c_str()), want) << "pattern '" << p << "' text '" << t << "'";
        matches += want;
    }
    EXPECT_GT(matches, 1000);
}

TEST(Rules, ListIsAllOrNone) {
    Rules r;
    const char *bad = nullptr;
    size_t bad_len = 0;
    ASSERT_EQ(rules::add_list(&r.set, rules::kReplace, "a;b", "/", nullptr, nullptr), 0);
    EXPECT_EQ(rules::add_list(&r.set, rules::kReplace, "c;d/[x;e", "/", &bad, &bad_len), EINVAL);
    EXPECT_EQ(std::string(bad, bad_len), "d/[x");
    EXPECT_EQ(r.set.count, 2u);
    EXPECT_EQ(rules::classify(&r.set, "/x/c"), rules::kNone);
    EXPECT_EQ(rules::classify(&r.set, "/x/a"), rules::kReplace);
}

TEST(Rules, ExcludeWinsThenReplaceThenLockOnly) {
    Rules r;
    ASSERT_EQ(rules::add_list(&r.set, rules::kLockOnly, "*.log", "/", nullptr, nullptr), 0);
    ASSERT_EQ(rules::add_list(&r.set, rules::kReplace, "/d/**", "/", nullptr, nullptr), 0);
    ASSERT_EQ(rules::add_list(&r.set, rules::kExclude, "/d/keep/*", "/", nullptr, nullptr), 0);
    EXPECT_EQ(rules::classify(&r.set, "/x/a.log"), rules::kLockOnly);
    EXPECT_EQ(rules::classify(&r.set, "/d/a.log"), rules::kReplace);
    EXPECT_EQ(rules::classify(&r.set, "/d/keep/a.log"), rules::kExclude);
}

TEST(Normalize, LexicalAndBounded) {
    char out[64];
    ASSERT_EQ(detail::normalize_path("/base/dir", "../x/./y//z", out, sizeof out), 0);
    EXPECT_STREQ(out, "/base/x/y/z");
    ASSERT_EQ(detail::normalize_path("/", "/../../a", out, sizeof out), 0);
    EXPECT_STREQ(out, "/a");
    std::string deep(100, 'a');
    EXPECT_EQ(detail::normalize_path("/", deep.c_str(), out, sizeof out), ENAMETOOLONG);
}

// ---- the rules file ----

class ConfigFile : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/wlf_config_test.XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { (void)!system(("rm -rf '" + dir_ + "'").c_str()); }
    std::string write(const std::string &name, const std::string &content) {
        std::string path = dir_ + "/" + name;
        int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        EXPECT_GE(fd, 0);
        EXPECT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
        close(fd);
        return path;
    }
    std::string message(const std::string &path, const rules::ConfigError &err) {
        char buf[4096 + 256];
        return rules::format_config_error(path.c_str(), &err, buf, sizeof buf);
    }
    std::string dir_;
};

TEST_F(ConfigFile, KeywordsCommentsBlankLines) {
    Rules r;
    rules::ConfigError err;
    std::string path = write("ok.conf", "# c\n\n  replace *.txt  \nlock-only *.log\r\nexclude /x/*\n*.md\nrule a;b\n");
    ASSERT_EQ(rules::add_config_file(&r.set, path.c_str(), "/", &err), 0);
    ASSERT_EQ(r.set.count, 5u);
    EXPECT_EQ(rules::classify(&r.set, "/d/a.log"), rules::kLockOnly);
    EXPECT_EQ(rules::classify(&r.set, "/x/a.txt"), rules::kExclude);
    EXPECT_EQ(rules::classify(&r.set, "/d/a.md"), rules::kReplace);
    EXPECT_EQ(rules::classify(&r.set, "/d/a;b"), rules::kReplace);  // one rule a line: ';' is literal
}

TEST_F(ConfigFile, MalformedLineNamedAndNothingAdded) {
    Rules r;
    rules::ConfigError err;
    std::string path = write("bad.conf", "replace *.txt\nlock-only [oops\n");
    EXPECT_EQ(rules::add_config_file(&r.set, path.c_str(), "/", &err), EINVAL);
    EXPECT_EQ(err.line, 2);
    EXPECT_EQ(r.set.count, 0u);
    EXPECT_EQ(message(path, err), path + ":2: a '[' without its ']' in the same path component: 'lock-only [oops'");
    path = write("kw.conf", "exclude\n");
    EXPECT_EQ(rules::add_config_file(&r.set, path.c_str(), "/", &err), EINVAL);
    EXPECT_EQ(err.line, 1);
}

TEST_F(ConfigFile, NulByteRefusedWithItsLine) {
    Rules r;
    rules::ConfigError err;
    std::string path = write("nul.conf", std::string("replace *.txt\nreplace *.c\0.h\n", 28));
    EXPECT_EQ(rules::add_config_file(&r.set, path.c_str(), "/", &err), EINVAL);
    EXPECT_EQ(err.line, 2);
    EXPECT_EQ(r.set.count, 0u);
    EXPECT_EQ(message(path, err), path + ":2: has a NUL byte");
}

TEST_F(ConfigFile, NonRegularFilesRefusedWithoutBlocking) {
    Rules r;
    rules::ConfigError err;
    std::string fifo = dir_ + "/fifo";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    // Would block forever in open(2) or read(2) without O_NONBLOCK and fstat.
    EXPECT_EQ(rules::add_config_file(&r.set, fifo.c_str(), "/", &err), EINVAL);
    EXPECT_EQ(message(fifo, err), fifo + ": is a FIFO");
    EXPECT_EQ(rules::add_config_file(&r.set, "/dev/null", "/", &err), EINVAL);
    EXPECT_EQ(message("/dev/null", err), "/dev/null: is a character device");
    EXPECT_EQ(rules::add_config_file(&r.set, dir_.c_str(), "/", &err), EINVAL);
    EXPECT_EQ(message(dir_, err), dir_ + ": is a directory");
    std::string missing = dir_ + "/missing";
    EXPECT_EQ(rules::add_config_file(&r.set, missing.c_str(), "/", &err), ENOENT);
    EXPECT_EQ(message(missing, err), missing + ": No such file or directory");
    EXPECT_EQ(r.set.count, 0u);
}

TEST_F(ConfigFile, TooLarge) {
    Rules r;
    rules::ConfigError err;
    std::string path = write("big.conf", std::string((1 << 20) + 1, '#'));
    EXPECT_EQ(rules::add_config_file(&r.set, path.c_str(), "/", &err), EFBIG);
}

// ---- timeouts ----

TEST(Timeout, GrammarIsPlainBoundedDecimal) {
    double v = -1;
    EXPECT_EQ(detail::parse_timeout("0", &v), 0);
    EXPECT_EQ(v, 0);
    EXPECT_EQ(detail::parse_timeout("2.5", &v), 0);
    EXPECT_EQ(v, 2.5);
    EXPECT_EQ(detail::parse_timeout("007", &v), 0);
    EXPECT_EQ(v, 7);
    EXPECT_EQ(detail::parse_timeout("0.000000001", &v), 0);
    EXPECT_EQ(v, 1e-9);
    EXPECT_EQ(detail::parse_timeout("1000000000", &v), 0);
    EXPECT_EQ(v, 1e9);
    for (const char *bad : {"", "0x10", "1e1", " 2", "2 ", "+1", "-1", "1.", ".5", "1,5", "inf", "nan", "1..2", "1.2.3"})
        EXPECT_EQ(detail::parse_timeout(bad, &v), EINVAL) << "'" << bad << "'";
    for (const char *huge : {"1000000000.1", "10000000000", "99999999999999999999999999"})
        EXPECT_EQ(detail::parse_timeout(huge, &v), ERANGE) << huge;
    EXPECT_EQ(detail::parse_timeout("99999999999999999999x", &v), EINVAL);
}

TEST(Timeout, NanosecondsClampedNeverOverflow) {
    EXPECT_EQ(detail::timeout_ns(1.5), 1500000000);
    EXPECT_EQ(detail::timeout_ns(-3), 0);
    EXPECT_EQ(detail::timeout_ns(__builtin_nan("")), 0);
    EXPECT_EQ(detail::timeout_ns(1e10), detail::kMaxTimeoutSeconds * 1000000000);
    EXPECT_EQ(detail::timeout_ns(__builtin_inf()), detail::kMaxTimeoutSeconds * 1000000000);
}

// One parser per setting, for the preload object (which ignores a bad value)
// and the launcher (which refuses it): a value is stored only when valid, and
// both word a bad one the same way.
TEST(Settings, ValidValuesStored) {
    wlf_write_options opt;
    wlf_write_options_init(&opt);
    char why[256];
    ASSERT_EQ(config::parse_timeout("2.5", &opt, why, sizeof why), 0);
    EXPECT_TRUE(opt.lock.has_timeout);
    EXPECT_DOUBLE_EQ(opt.lock.timeout, 2.5);
    ASSERT_EQ(config::parse_fsync("none", &opt, why, sizeof why), 0);
    EXPECT_EQ(opt.durability, WLF_DURABILITY_NONE);
    ASSERT_EQ(config::parse_fsync("batch", &opt, why, sizeof why), 0);
    EXPECT_EQ(opt.durability, WLF_DURABILITY_BATCH);
    ASSERT_EQ(config::parse_fsync("full", &opt, why, sizeof why), 0);
    EXPECT_EQ(opt.durability, WLF_DURABILITY_FULL);
    ASSERT_EQ(config::parse_lock_backend("dotlock", &opt, why, sizeof why), 0);
    EXPECT_EQ(opt.lock.backend, WLF_LOCK_DOTLOCK);
    ASSERT_EQ(config::parse_keep_lock_files("1", &opt, why, sizeof why), 0);
    EXPECT_EQ(opt.lock.keep_lock_file, 1);
}

TEST(Settings, BadValuesLeaveDefaultsAndAreNamed) {
    wlf_write_options opt, defaults;
    wlf_write_options_init(&opt);
    wlf_write_options_init(&defaults);
    char why[256];
    EXPECT_EQ(config::parse_timeout("1e3", &opt, why, sizeof why), EINVAL);
    EXPECT_NE(std::string(why).find("invalid timeout '1e3'"), std::string::npos) << why;
    EXPECT_EQ(config::parse_timeout("10000000000", &opt, why, sizeof why), ERANGE);
    EXPECT_NE(std::string(why).find("is too large"), std::string::npos) << why;
    EXPECT_EQ(config::parse_fsync("sometimes", &opt, why, sizeof why), EINVAL);
    EXPECT_NE(std::string(why).find("expected full, batch or none"), std::string::npos) << why;
    EXPECT_EQ(config::parse_lock_backend("fcntl", &opt, why, sizeof why), EINVAL);
    EXPECT_NE(std::string(why).find("expected flock, dotlock or none"), std::string::npos) << why;
    EXPECT_EQ(config::parse_keep_lock_files("yes", &opt, why, sizeof why), EINVAL);
    EXPECT_NE(std::string(why).find("expected 1 or 0"), std::string::npos) << why;
    EXPECT_EQ(opt.lock.has_timeout, defaults.lock.has_timeout);
    EXPECT_EQ(opt.durability, defaults.durability);
    EXPECT_EQ(opt.lock.backend, defaults.lock.backend);
    EXPECT_EQ(opt.lock.keep_lock_file, defaults.lock.keep_lock_file);
    // A long value is cut, never overflows the line.
    std::string long_value(1000, 'x');
    EXPECT_EQ(config::parse_fsync(long_value.c_str(), &opt, why, sizeof why), EINVAL);
    EXPECT_LT(strlen(why), sizeof why);
}

TEST(Settings, GlobListsNameTheirVariablesAndOptions) {
    ASSERT_EQ(std::size(config::kGlobLists), 3u);
    EXPECT_STREQ(config::kGlobLists[0].var, "WRAP_LOCKFILE_RULES");
    EXPECT_STREQ(config::kGlobLists[0].option, "--rule");
    EXPECT_EQ(config::kGlobLists[0].kind, rules::kReplace);
    EXPECT_STREQ(config::kGlobLists[1].var, "WRAP_LOCKFILE_LOCK_ONLY");
    EXPECT_EQ(config::kGlobLists[1].kind, rules::kLockOnly);
    EXPECT_STREQ(config::kGlobLists[2].var, "WRAP_LOCKFILE_EXCLUDE");
    EXPECT_EQ(config::kGlobLists[2].kind, rules::kExclude);
}
