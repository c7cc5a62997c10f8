// The path rules (rules.hpp): lists of patterns added all or none, which
// string a pattern is matched against (the name, or the absolute normalized
// path), the order of the kinds (exclude, then replace, then lock-only),
// and room beyond the set's inline storage.
#include <gtest/gtest.h>

#include "rules.hpp"

#include <cerrno>
#include <cstddef>
#include <string>

namespace rules = wrap_lockfile::rules;

namespace {

struct Rules {
    rules::RuleSet set;
    ~Rules() { rules::clear(&set); }
};

}  // namespace

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

TEST(Rules, PatternWithoutSlashMatchesTheNameInAnyDirectory) {
    Rules r;
    ASSERT_EQ(rules::add_list(&r.set, rules::kReplace, "*.txt;c.conf", "/base", nullptr, nullptr), 0);
    EXPECT_EQ(rules::classify(&r.set, "/a/b/x.txt"), rules::kReplace);
    EXPECT_EQ(rules::classify(&r.set, "/x.txt"), rules::kReplace);
    EXPECT_EQ(rules::classify(&r.set, "/deep/er/c.conf"), rules::kReplace);
    EXPECT_EQ(rules::classify(&r.set, "/a/x.txt/y"), rules::kNone);  // a directory's name is not the file's
    EXPECT_EQ(rules::classify(&r.set, "/a/xc.conf"), rules::kNone);
}

TEST(Rules, PatternWithSlashIsAnchoredAtTheBaseDirectory) {
    Rules r;
    ASSERT_EQ(rules::add_list(&r.set, rules::kReplace, "d/*.txt;../up/*.c;/abs/./x//y", "/base/dir", nullptr, nullptr),
              0);
    ASSERT_EQ(r.set.count, 3u);
    EXPECT_STREQ(r.set.patterns[0].text, "/base/dir/d/*.txt");
    EXPECT_STREQ(r.set.patterns[1].text, "/base/up/*.c");
    EXPECT_STREQ(r.set.patterns[2].text, "/abs/x/y");
    EXPECT_EQ(rules::classify(&r.set, "/base/dir/d/a.txt"), rules::kReplace);
    EXPECT_EQ(rules::classify(&r.set, "/other/d/a.txt"), rules::kNone);
    EXPECT_EQ(rules::classify(&r.set, "/base/up/m.c"), rules::kReplace);
    EXPECT_EQ(rules::classify(&r.set, "/abs/x/y"), rules::kReplace);
    // No base: the root.
    Rules n;
    ASSERT_EQ(rules::add_list(&n.set, rules::kReplace, "d/*", nullptr, nullptr, nullptr), 0);
    EXPECT_STREQ(n.set.patterns[0].text, "/d/*");
}

TEST(Rules, ListSeparatorsBlankEntriesAndSpaces) {
    Rules r;
    ASSERT_EQ(rules::add_list(&r.set, rules::kReplace, ";a;;  b \n\nc\t;\r\n", "/", nullptr, nullptr), 0);
    ASSERT_EQ(r.set.count, 3u);
    EXPECT_STREQ(r.set.patterns[0].text, "a");
    EXPECT_STREQ(r.set.patterns[1].text, "b");
    EXPECT_STREQ(r.set.patterns[2].text, "c");
    EXPECT_EQ(rules::add_list(&r.set, rules::kReplace, "", "/", nullptr, nullptr), 0);
    EXPECT_EQ(rules::add_list(&r.set, rules::kReplace, nullptr, "/", nullptr, nullptr), 0);
    EXPECT_EQ(r.set.count, 3u);
}

TEST(Rules, ExcludeWinsWhateverTheOrder) {
    Rules r;
    ASSERT_EQ(rules::add_list(&r.set, rules::kExclude, "keep.*", "/", nullptr, nullptr), 0);
    ASSERT_EQ(rules::add_list(&r.set, rules::kReplace, "*.txt", "/", nullptr, nullptr), 0);
    ASSERT_EQ(rules::add_list(&r.set, rules::kLockOnly, "*", "/", nullptr, nullptr), 0);
    EXPECT_EQ(rules::classify(&r.set, "/d/keep.txt"), rules::kExclude);
    EXPECT_EQ(rules::classify(&r.set, "/d/a.txt"), rules::kReplace);  // replace beats a later lock-only
    EXPECT_EQ(rules::classify(&r.set, "/d/a.log"), rules::kLockOnly);
    Rules empty;
    EXPECT_EQ(rules::classify(&empty.set, "/d/a.txt"), rules::kNone);
    EXPECT_EQ(rules::classify(nullptr, "/d/a.txt"), rules::kNone);
}

// `<X>.lock` is X's lock file: when X is matched, a replacement of it would
// put a program's flock on a temp and rename a new inode over the one other
// writers of X hold locked, so it is left alone; matched on its own, or with
// X excluded, it follows its rules.
TEST(Rules, LockFileOfAMatchedFileIsLeftAlone) {
    Rules r;
    ASSERT_EQ(rules::add_list(&r.set, rules::kReplace, "/d/*;Cargo.lock", "/", nullptr, nullptr), 0);
    ASSERT_EQ(rules::add_list(&r.set, rules::kLockOnly, "/log/*", "/", nullptr, nullptr), 0);
    ASSERT_EQ(rules::add_list(&r.set, rules::kExclude, "/d/own", "/", nullptr, nullptr), 0);
    EXPECT_EQ(rules::classify(&r.set, "/d/counter"), rules::kReplace);
    EXPECT_EQ(rules::classify(&r.set, "/d/counter.lock"), rules::kExclude);  // counter is matched
    EXPECT_EQ(rules::classify(&r.set, "/log/x.lock"), rules::kExclude);      // x is locked (lock-only)
    EXPECT_EQ(rules::classify(&r.set, "/d/own.lock"), rules::kReplace);      // own is excluded
    EXPECT_EQ(rules::classify(&r.set, "/p/Cargo.lock"), rules::kReplace);    // Cargo is not matched
    EXPECT_EQ(rules::classify(&r.set, "/d/.lock"), rules::kReplace);         // a name, not X's lock
    EXPECT_EQ(rules::classify(&r.set, "/d/x.locks"), rules::kReplace);
    EXPECT_EQ(rules::classify(&r.set, "/e/x.lock"), rules::kNone);
    // The name alone, as the shim classifies a relative path under name-only rules.
    Rules names;
    ASSERT_EQ(rules::add_list(&names.set, rules::kReplace, "*.conf*", "/", nullptr, nullptr), 0);
    EXPECT_EQ(rules::classify(&names.set, "app.conf.lock"), rules::kExclude);
    EXPECT_EQ(rules::classify(&names.set, "sub/app.conf.lock"), rules::kExclude);
    EXPECT_EQ(rules::classify(&names.set, "app.conf"), rules::kReplace);
}

// Past the 8 inline patterns and 512 inline bytes (the shim's constructor
// allocates nothing below that): the 20th and the long ones still match,
// and a failed list takes back only its own entries.
TEST(Rules, BeyondTheInlineRoom) {
    Rules r;
    std::string list, long_name(600, 'x');
    for (int i = 0; i < 19; ++i) list += "p" + std::to_string(i) + ";";
    list += long_name + "*;last";
    ASSERT_EQ(rules::add_list(&r.set, rules::kReplace, list.c_str(), "/", nullptr, nullptr), 0);
    ASSERT_EQ(r.set.count, 21u);
    EXPECT_EQ(rules::classify(&r.set, "/d/p18"), rules::kReplace);
    EXPECT_EQ(rules::classify(&r.set, ("/d/" + long_name + "yz").c_str()), rules::kReplace);
    EXPECT_EQ(rules::classify(&r.set, "/d/last"), rules::kReplace);
    const char *bad = nullptr;
    size_t bad_len = 0;
    std::string more = long_name + "a;" + long_name + "b;[";
    EXPECT_EQ(rules::add_list(&r.set, rules::kExclude, more.c_str(), "/", &bad, &bad_len), EINVAL);
    EXPECT_EQ(std::string(bad, bad_len), "[");
    EXPECT_EQ(r.set.count, 21u);
    EXPECT_EQ(rules::classify(&r.set, ("/d/" + long_name + "a").c_str()), rules::kReplace);
    rules::truncate(&r.set, 2);
    EXPECT_EQ(r.set.count, 2u);
    EXPECT_EQ(rules::classify(&r.set, "/d/last"), rules::kNone);
    EXPECT_EQ(rules::classify(&r.set, "/d/p1"), rules::kReplace);
    rules::clear(&r.set);
    EXPECT_EQ(r.set.count, 0u);
    ASSERT_EQ(rules::add_list(&r.set, rules::kReplace, "again", "/", nullptr, nullptr), 0);
    EXPECT_EQ(rules::classify(&r.set, "/again"), rules::kReplace);
}

TEST(Rules, PatternLengthIsBounded) {
    Rules r;
    std::string at_limit(rules::kMaxPattern, 'a'), over(rules::kMaxPattern + 1, 'a');
    EXPECT_EQ(rules::add_pattern(&r.set, rules::kReplace, at_limit.data(), at_limit.size(), "/"), 0);
    EXPECT_EQ(rules::add_pattern(&r.set, rules::kReplace, over.data(), over.size(), "/"), ENAMETOOLONG);
    EXPECT_EQ(r.set.count, 1u);
    EXPECT_FALSE(rules::glob_match(over.c_str(), over.c_str()));  // over the bound: never a match
}

TEST(Rules, ValidateGlobRefusesEmptyAndUnterminatedBrackets) {
    for (const char *bad : {"", "[", "[abc", "a[/]b", "x/[y"}) EXPECT_EQ(rules::validate_glob(bad), EINVAL) << bad;
    EXPECT_EQ(rules::validate_glob(nullptr), EINVAL);
    for (const char *good : {"*", "\\[", "[]]", "[!a]", "a/**/b", "\\"}) EXPECT_EQ(rules::validate_glob(good), 0) << good;
    Rules r;
    EXPECT_EQ(rules::add_pattern(&r.set, rules::kReplace, "[x", 2, "/"), EINVAL);
    EXPECT_EQ(r.set.count, 0u);
}
