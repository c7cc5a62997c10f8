// Lexical path normalization (normalize.hpp), the one spelling of an absolute
// path the rules, the pending targets and the lock-first probe compare.
#include <gtest/gtest.h>

#include "normalize.hpp"

#include <cerrno>
#include <string>

namespace detail = wrap_lockfile::detail;

TEST(Normalize, LexicalAndBounded) {
    char out[64];
    ASSERT_EQ(detail::normalize_path("/base/dir", "../x/./y//z", out, sizeof out), 0);
    EXPECT_STREQ(out, "/base/x/y/z");
    ASSERT_EQ(detail::normalize_path("/", "/../../a", out, sizeof out), 0);
    EXPECT_STREQ(out, "/a");
    std::string deep(100, 'a');
    EXPECT_EQ(detail::normalize_path("/", deep.c_str(), out, sizeof out), ENAMETOOLONG);
}

TEST(Normalize, RelativeAgainstTheBaseAndEdgeCases) {
    char out[64];
    struct Case {
        const char *base, *path, *want;
    } cases[] = {
        {"/b", "x", "/b/x"},      {"/b", ".", "/b"},       {"/b", "", "/b"},         {"/b/c", "..", "/b"},
        {"/", "..", "/"},         {"/a/b/", "c/", "/a/b/c"}, {"/x", "/a/b/..", "/a"}, {"/x", "//", "/"},
        {nullptr, "rel", "/rel"}, {"/x", "/a/./../b", "/b"}, {"/x", "/...", "/..."},
    };
    for (const Case &c : cases) {
        ASSERT_EQ(detail::normalize_path(c.base, c.path, out, sizeof out), 0) << c.path;
        EXPECT_STREQ(out, c.want) << (c.base ? c.base : "(null)") << " + " << c.path;
    }
}

TEST(Normalize, ExactFitAndOneByteShort) {
    char out[16];
    ASSERT_EQ(detail::normalize_path("/", "/abc/defgh", out, 11), 0);  // 10 bytes and the NUL
    EXPECT_STREQ(out, "/abc/defgh");
    EXPECT_EQ(detail::normalize_path("/", "/abc/defgh", out, 10), ENAMETOOLONG);
    EXPECT_EQ(detail::normalize_path("/", "/", out, 1), ENAMETOOLONG);
    ASSERT_EQ(detail::normalize_path("/", "/", out, 2), 0);
    EXPECT_STREQ(out, "/");
}
