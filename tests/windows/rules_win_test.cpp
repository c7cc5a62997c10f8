// The shared rules (shim/common) on Windows: patterns and paths in one
// spelling (rules::windows_spelling): either slash, ASCII case ignored, a
// drive letter as a first component. README "Windows".
#include "rules.hpp"

#include "skip_aware.hpp"

#include <gtest/gtest.h>

#include <cstring>

namespace rules = wrap_lockfile::rules;

namespace {

std::string spelled(const char *in) {
    char out[256];
    EXPECT_EQ(rules::windows_spelling(in, out, sizeof out), 0);
    return out;
}

TEST(RulesWin, Spelling) {
    EXPECT_EQ(spelled("C:\\Data\\Report.JSON"), "/c:/data/report.json");
    EXPECT_EQ(spelled("c:/data/report.json"), "/c:/data/report.json");
    EXPECT_EQ(spelled("*.TXT"), "*.txt");
    EXPECT_EQ(spelled("sub\\*.txt"), "sub/*.txt");
    char small[4];
    EXPECT_EQ(rules::windows_spelling("C:\\x", small, sizeof small), ENAMETOOLONG);
}

TEST(RulesWin, PatternsMatchInEitherSpelling) {
    rules::RuleSet set;
    const char *bad = nullptr;
    size_t bad_len = 0;
    ASSERT_EQ(rules::add_list(&set, rules::kReplace, "C:\\Data\\*.JSON;Notes.TXT", "/c:/work", &bad, &bad_len), 0);
    ASSERT_EQ(rules::add_list(&set, rules::kExclude, "c:/data/skip.json", "/c:/work", &bad, &bad_len), 0);
    ASSERT_EQ(rules::add_list(&set, rules::kLockOnly, "logs\\*.log", "/c:/work", &bad, &bad_len), 0);
    EXPECT_EQ(rules::classify(&set, "/c:/data/a.json"), rules::kReplace);
    EXPECT_EQ(rules::classify(&set, "/c:/data/skip.json"), rules::kExclude);
    EXPECT_EQ(rules::classify(&set, "/d:/any/notes.txt"), rules::kReplace);
    EXPECT_EQ(rules::classify(&set, "/c:/work/logs/x.log"), rules::kLockOnly);  // relative to the base
    EXPECT_EQ(rules::classify(&set, "/c:/data/sub/a.json"), rules::kNone);
    rules::clear(&set);
}

}  // namespace

int main(int argc, char **argv) {
    testing::InitGoogleTest(&argc, argv);
    return wlf_test::skip_aware_result(RUN_ALL_TESTS());
}
