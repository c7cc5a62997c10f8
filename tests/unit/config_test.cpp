// The configuration the preload object and the launcher read alike: the
// rules file (config_file.hpp), the settings schema (config.hpp) and the
// core's timeout grammar (timeout.hpp).
#include <gtest/gtest.h>

#include "config.hpp"
#include "config_file.hpp"
#include "internal.hpp"
#include "rules.hpp"
#include "timeout.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace rules = wrap_lockfile::rules;
namespace detail = wrap_lockfile::detail;
namespace config = wrap_lockfile::config;

namespace {

struct Rules {
    rules::RuleSet set;
    ~Rules() { rules::clear(&set); }
};

}  // namespace

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

// config::load_rules, as both shims call it: each variable on its own,
// a bad one adding nothing and named once, the others kept.
namespace {
std::vector<std::pair<std::string, std::string>> g_env;
std::vector<std::pair<std::string, std::string>> g_bad;
const char *fake_env(const char *var) {
    for (const auto &[k, v] : g_env)
        if (k == var) return v.empty() ? nullptr : v.c_str();
    return nullptr;
}
void record_bad(const char *var, const char *detail) { g_bad.emplace_back(var, detail); }
}  // namespace

TEST_F(ConfigFile, LoadRulesFromTheEnvironment) {
    std::string conf = write("env.conf", "exclude /w/skip.txt\n");
    g_env = {{"WRAP_LOCKFILE_RULES", "*.txt; sub/*.json"},
             {"WRAP_LOCKFILE_LOCK_ONLY", "*.log;[oops"},
             {"WRAP_LOCKFILE_EXCLUDE", ""},
             {"WRAP_LOCKFILE_CONFIG", conf}};
    g_bad.clear();
    Rules r;
    config::load_rules(&r.set, "/w", fake_env, record_bad);
    EXPECT_EQ(rules::classify(&r.set, "/d/a.txt"), rules::kReplace);
    EXPECT_EQ(rules::classify(&r.set, "/w/sub/a.json"), rules::kReplace);  // relative to cwd
    EXPECT_EQ(rules::classify(&r.set, "/x/sub/a.json"), rules::kNone);
    EXPECT_EQ(rules::classify(&r.set, "/w/skip.txt"), rules::kExclude);
    // The malformed list adds none of its patterns, the good "*.log" neither.
    EXPECT_EQ(rules::classify(&r.set, "/d/a.log"), rules::kNone);
    ASSERT_EQ(g_bad.size(), 1u);
    EXPECT_EQ(g_bad[0].first, "WRAP_LOCKFILE_LOCK_ONLY");
    EXPECT_EQ(g_bad[0].second, "malformed pattern '[oops'");

    // A rules file that cannot be read is named with its path, and adds nothing.
    std::string missing = dir_ + "/missing.conf";
    g_env = {{"WRAP_LOCKFILE_CONFIG", missing}};
    g_bad.clear();
    Rules none;
    config::load_rules(&none.set, "/w", fake_env, record_bad);
    EXPECT_EQ(none.set.count, 0u);
    ASSERT_EQ(g_bad.size(), 1u);
    EXPECT_EQ(g_bad[0].first, "WRAP_LOCKFILE_CONFIG");
    EXPECT_EQ(g_bad[0].second, missing + ": No such file or directory");
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
    EXPECT_NE(std::string(why).find("expected flock, dotlock, none or auto"), std::string::npos) << why;
    EXPECT_EQ(config::parse_keep_lock_files("yes", &opt, why, sizeof why), EINVAL);
    EXPECT_NE(std::string(why).find("expected 1 or 0"), std::string::npos) << why;
    EXPECT_EQ(opt.lock.has_timeout, defaults.lock.has_timeout);
    EXPECT_EQ(opt.durability, defaults.durability);
    EXPECT_EQ(opt.lock.backend, defaults.lock.backend);
    EXPECT_EQ(opt.lock.keep_lock_file, defaults.lock.keep_lock_file);
    // auto (the shim's default, chosen per mount) is a value like the others.
    wlf_write_options chosen;
    wlf_write_options_init(&chosen);
    EXPECT_EQ(config::parse_lock_backend("auto", &chosen, why, sizeof why), 0);
    EXPECT_EQ(chosen.lock.backend, WLF_LOCK_AUTO);
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
