// Path rules: which files the shim turns into atomic replacements
// (replace), which it only serializes (lock-only), which it never touches
// (exclude, which wins). Shared by the preload object and the `atomically`
// launcher; built under the C-ABI layer's constraints (no libstdc++).
//
// Glob syntax: `*`, `?` and `[...]` (with `!` or `^` negation and ranges)
// match within one path component; `**` matches across components, and
// `**/` also matches no directory at all. A pattern without `/` is matched
// against the file name in any directory; a pattern with `/` against the
// absolute, lexically normalized path (detail::normalize_path) (a relative one is made absolute
// against the directory given when it is added).
#pragma once

#include <cstddef>

namespace wrap_lockfile::rules {

// The longest pattern, in bytes (a path's worth).
constexpr size_t kMaxPattern = 4095;

enum Kind { kNone = 0, kReplace = 1, kLockOnly = 2, kExclude = 3 };

// How a pattern is matched, found once when it is added (classify runs in
// every open of every program): the literal run it starts with, and what
// follows that run.
enum class Shape : unsigned char {
    literal,    // no wildcard at all: the text itself
    below,      // "<literal>**": anything that starts with the literal
    star_tail,  // "<literal>*<literal>" (`*.json`): a suffix within one component
    general,    // anything else: the matcher over the rest
};

struct Pattern {
    char *text;
    bool has_slash;
    Kind kind;
    Shape shape;
    unsigned len;   // strlen(text)
    unsigned lead;  // bytes of text before its first *, ?, [ or backslash
};

// The first patterns and their text live inside the set: the shim's
// constructor then allocates nothing, and a program that never calls malloc
// (/bin/true) does not pay for malloc's start-up. Not copyable: `patterns`
// may point into the set itself.
struct RuleSet {
    static constexpr size_t kInline = 8;
    Pattern *patterns = nullptr;
    size_t count = 0;
    size_t capacity = 0;
    Pattern inline_patterns[kInline]{};
    char arena[512]{};
    size_t arena_used = 0;

    RuleSet() = default;
    RuleSet(const RuleSet &) = delete;
    RuleSet &operator=(const RuleSet &) = delete;
};

// 0, or EINVAL for an empty pattern or an unterminated `[`.
int validate_glob(const char *pattern);

// True when `text` matches `pattern` per the syntax above (no `/` special
// casing of the name-only form: the caller passes the right string), in time
// O(strlen(pattern) * strlen(text)). False for a pattern over kMaxPattern.
bool glob_match(const char *pattern, const char *text);

// Adds the patterns of a list separated by ';' or newlines (blank entries
// ignored), all or none. On EINVAL, *bad points into `list` at the offending
// entry and *bad_len is its length. `base_dir` makes relative patterns with '/' absolute.
int add_list(RuleSet *set, Kind kind, const char *list, const char *base_dir, const char **bad, size_t *bad_len);

// Adds one pattern of `len` bytes at `text` (no list splitting): 0, EINVAL
// (validate_glob), ENAMETOOLONG or ENOMEM.
int add_pattern(RuleSet *set, Kind kind, const char *text, size_t len, const char *base_dir);

// The one spelling of a Windows path or pattern that rules match:
// backslashes become slashes, ASCII letters lower case (Windows file names
// ignore case), and a drive letter gets a leading slash ("C:\\x" becomes
// "/c:/x"), so that the POSIX normalization and globs apply unchanged.
// `out` may be `in`; ENAMETOOLONG when out[size] is too small. On Windows
// add_pattern applies it to every pattern.
int windows_spelling(const char *in, char *out, size_t size);

// Kind for an absolute normalized path: kExclude wins over the others; then
// kReplace, then kLockOnly; kNone when nothing matches. `<X>.lock`, when
// X itself is matched (replace or lock-only), is X's lock file: kExclude.
Kind classify(const RuleSet *set, const char *abs_path);

// Drops the patterns from index `count` on (undoes a partial add).
void truncate(RuleSet *set, size_t count);

void clear(RuleSet *set);

}  // namespace wrap_lockfile::rules
