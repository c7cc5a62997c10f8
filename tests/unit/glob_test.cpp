// The glob matcher of the path rules (rules.hpp): the documented syntax, time
// linear in pattern x path, and the same answers as the backtracking matcher
// it replaced, which is kept here as the reference of the semantics.
#include <gtest/gtest.h>

#include "rules.hpp"

#include <chrono>
#include <cstddef>
#include <random>
#include <string>
#include <utility>

namespace rules = wrap_lockfile::rules;

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

}  // namespace

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

// A literal and '*' + literal are matched without the NFA: the answers must
// be the NFA's (a one-character bracket sends the same pattern through it).
TEST(Glob, ShortcutShapesAgreeWithTheNfa) {
    const char *texts[] = {"", "a.txt", ".txt", "txt", "a.txt.bak", "d/a.txt", "/d/a.txt", "a/b", "x/a/b", "a/b/c",
                           "ab", "b", "/", "a.tx", "aa.txt"};
    const std::pair<const char *, const char *> same[] = {
        {"*.txt", "*.tx[t]"}, {"a.txt", "a.tx[t]"}, {"*/b", "*/[b]"}, {"*b", "*[b]"}, {"*a.txt", "*a.tx[t]"}};
    for (const auto &[fast, slow] : same)
        for (const char *t : texts) EXPECT_EQ(rules::glob_match(fast, t), rules::glob_match(slow, t)) << fast << " " << t;
    EXPECT_TRUE(rules::glob_match("*", "abc"));
    EXPECT_TRUE(rules::glob_match("*", ""));
    EXPECT_FALSE(rules::glob_match("*", "a/b"));
    EXPECT_TRUE(rules::glob_match("*.txt", ".txt"));
    EXPECT_FALSE(rules::glob_match("a.txt", "a.txt/"));
}

// A leading literal run is compared as bytes and the rest matched on its
// own: the answers must be the reference matcher's over the whole pattern.
TEST(Glob, LeadingLiteralAgreesWithTheReference) {
    const char *texts[] = {"", "/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/a/b.txt", "/a/x/b.txt", "/a/.txt",
                           "/b/a", "a", "/a/b/c/d.txt", "/a/bb", "/a/*", "/a/b/"};
    const char *patterns[] = {"/a/**", "/a**", "/a/*.txt", "/a/*", "/a/**/b.txt", "/a/b*", "/a/?", "/a/\\*",
                              "/a/[b]", "/a/*/c", "/a/b/**", "/a/b/*", "**", "/**", "a*"};
    for (const char *p : patterns)
        for (const char *t : texts) EXPECT_EQ(rules::glob_match(p, t), ref_match(p, t)) << p << " " << t;
    EXPECT_TRUE(rules::glob_match("/a/**", "/a/"));
    EXPECT_FALSE(rules::glob_match("/a/**", "/a"));
    EXPECT_FALSE(rules::glob_match("/a/**", "/ab/c"));
    EXPECT_TRUE(rules::glob_match("/a/*.txt", "/a/b.txt"));
    EXPECT_FALSE(rules::glob_match("/a/*.txt", "/a/x/b.txt"));
    EXPECT_FALSE(rules::glob_match("/a/b/**", "/a"));  // text shorter than the literal run
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
