#include "rules.hpp"

#include "normalize.hpp"
#include "sysio.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstdint>
#include <cstring>

namespace wrap_lockfile::rules {

namespace {

// Length of the bracket expression starting at p ('['), or 0 if unterminated.
size_t bracket_length(const char *p) {
    const char *q = p + 1;
    if (*q == '!' || *q == '^') ++q;
    if (*q == ']') ++q;  // a leading ']' is literal
    while (*q && *q != ']') {
        if (*q == '/') return 0;
        ++q;
    }
    return *q == ']' ? static_cast<size_t>(q - p + 1) : 0;
}

bool bracket_match(const char *p, size_t len, char c) {
    const char *q = p + 1, *end = p + len - 1;
    bool negate = false;
    if (*q == '!' || *q == '^') {
        negate = true;
        ++q;
    }
    bool hit = false;
    bool first = true;
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

// Matching simulates the pattern's NFA (Thompson): the set of pattern
// positions still alive after each text character, so the time is
// O(pattern x text) whatever the pattern, where backtracking is exponential
// in the number of stars (`*a*a*a*a*a*a*a*ab`). A position is a byte offset
// into the pattern ("the token there is next"; its length: "all matched"),
// decoded on the fly: no allocation, about 1 KiB of stack.
enum class Tok : unsigned char { literal, any, bracket, star, globstar };

struct Token {
    Tok tok;
    char c;       // the literal
    size_t len;   // bytes of pattern it takes
    size_t skip;  // for "**/": its length with the '/', which it may skip
};

Token token_at(const char *p) {
    if (p[0] == '*' && p[1] == '*') return Token{Tok::globstar, 0, 2, p[2] == '/' ? size_t{3} : size_t{0}};
    if (*p == '*') return Token{Tok::star, 0, 1, 0};
    if (*p == '?') return Token{Tok::any, 0, 1, 0};
    if (*p == '[')
        if (size_t len = bracket_length(p)) return Token{Tok::bracket, 0, len, 0};
    if (*p == '\\' && p[1]) return Token{Tok::literal, p[1], 2, 0};
    return Token{Tok::literal, *p, 1, 0};
}

struct PositionSet {
    static constexpr size_t kWords = (kMaxPattern + 1 + 63) / 64;
    uint64_t w[kWords];
    void clear(size_t words) { memset(w, 0, words * sizeof w[0]); }
    void add(size_t i) { w[i / 64] |= uint64_t{1} << (i % 64); }
    bool has(size_t i) const { return (w[i / 64] >> (i % 64)) & 1; }
};

// The positions: a token's first byte ("it is next"), the pattern's end
// ("all matched"), and for a globstar its second byte, "inside it, having
// matched at least one character": from there "**/" may no longer match
// nothing and skip its '/' (`/a/**/c` matches "/a/c", never "/a/xc").
struct Nfa {
    const char *pattern;
    size_t end;
    PositionSet inside;  // the second bytes of globstars

    // Adds position i and what is reachable from it without reading a
    // character: past a star (which may match nothing), past a whole "**/".
    void add_closure(PositionSet *set, size_t i) const {
        for (;;) {
            if (set->has(i)) return;  // with its closure: each position costs once per character
            set->add(i);
            if (i == end) return;
            if (inside.has(i)) {
                ++i;
                continue;
            }
            Token k = token_at(pattern + i);
            if (k.tok != Tok::star && k.tok != Tok::globstar) return;
            if (k.skip) add_closure(set, i + k.skip);
            i += k.len;
        }
    }
};

bool nfa_match(const char *pattern, size_t end, const char *text) {
    const size_t words = (end + 1 + 63) / 64;
    Nfa nfa{pattern, end, {}};
    nfa.inside.clear(words);
    for (size_t i = 0; i < end;) {
        Token k = token_at(pattern + i);
        if (k.tok == Tok::globstar) nfa.inside.add(i + 1);
        i += k.len;
    }
    PositionSet sets[2];
    PositionSet *cur = &sets[0], *next = &sets[1];
    cur->clear(words);
    nfa.add_closure(cur, 0);
    for (const char *t = text; *t; ++t) {
        next->clear(words);
        bool alive = false;
        for (size_t wi = 0; wi < words; ++wi) {
            for (uint64_t bits = cur->w[wi]; bits; bits &= bits - 1) {
                size_t i = wi * 64 + static_cast<size_t>(__builtin_ctzll(bits));
                if (i == end) continue;
                if (nfa.inside.has(i)) {
                    nfa.add_closure(next, i);  // a globstar takes any character
                    alive = true;
                    continue;
                }
                Token k = token_at(pattern + i);
                bool step = false;
                size_t to = i + k.len;
                switch (k.tok) {
                case Tok::literal: step = *t == k.c; break;
                case Tok::any: step = *t != '/'; break;
                case Tok::bracket: step = *t != '/' && bracket_match(pattern + i, k.len, *t); break;
                case Tok::star:
                    step = *t != '/';
                    to = i;
                    break;
                case Tok::globstar:
                    step = true;
                    to = i + 1;
                    break;
                }
                if (step) nfa.add_closure(next, to);
                alive |= step;
            }
        }
        if (!alive) return false;
        PositionSet *swap = cur;
        cur = next;
        next = swap;
    }
    return cur->has(end);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

}  // namespace

int windows_spelling(const char *in, char *out, size_t size) {
    size_t n = strlen(in);
    bool drive = ((in[0] >= 'a' && in[0] <= 'z') || (in[0] >= 'A' && in[0] <= 'Z')) && in[1] == ':';
    if (n + (drive ? 1 : 0) + 1 > size) return ENAMETOOLONG;
    memmove(out + (drive ? 1 : 0), in, n + 1);
    if (drive) out[0] = '/';
    for (char *c = out; *c; ++c) {
        if (*c == '\\') *c = '/';
        else if (*c >= 'A' && *c <= 'Z') *c = static_cast<char>(*c - 'A' + 'a');
    }
    return 0;
}

namespace {

// Whether p has no wildcard, bracket or escape: it matches only itself.
bool plain_literal(const char *p) {
    for (; *p; ++p)
        if (*p == '*' || *p == '?' || *p == '[' || *p == '\\') return false;
    return true;
}

// The common shapes, matched without the NFA with its answers (Shape).
Shape shape_of(const char *pattern, size_t len, size_t lead) {
    if (lead == len) return Shape::literal;
    const char *rest = pattern + lead;
    if (len - lead == 2 && rest[0] == '*' && rest[1] == '*') return Shape::below;
    if (rest[0] == '*' && rest[1] != '*' && plain_literal(rest + 1)) return Shape::star_tail;
    return Shape::general;
}

// A leading run of plain characters (a rule's absolute directory, most
// often) is one literal token per byte: the NFA could only step through it
// byte for byte, so it is compared as bytes and the NFA, if needed, starts
// after it. Most paths a program opens fail right there.
bool match_shaped(const char *pattern, size_t len, size_t lead, Shape shape, const char *text) {
    if (shape == Shape::literal) return strcmp(pattern, text) == 0;
    if (strncmp(pattern, text, lead) != 0) return false;
    pattern += lead;
    text += lead;
    len -= lead;
    switch (shape) {
    case Shape::below: return true;  // "<dir>/**": anything below
    case Shape::star_tail: {
        // `*.json`: the star stays inside one component.
        size_t tail = len - 1, n = strlen(text);
        if (n < tail || memcmp(text + n - tail, pattern + 1, tail) != 0) return false;
        return memchr(text, '/', n - tail) == nullptr;
    }
    default: return nfa_match(pattern, len, text);
    }
}

// The patterns alone decide.
Kind classify_by_patterns(const RuleSet *set, const char *abs_path) {
    if (!set || set->count == 0) return kNone;
    const char *name = strrchr(abs_path, '/');
    name = name ? name + 1 : abs_path;
    Kind best = kNone;
    for (size_t i = 0; i < set->count; ++i) {
        const Pattern &p = set->patterns[i];
        if (p.kind == kLockOnly && best != kNone) continue;  // cannot improve on a match
        if (!match_shaped(p.text, p.len, p.lead, p.shape, p.has_slash ? abs_path : name)) continue;
        if (p.kind == kExclude) return kExclude;
        if (p.kind == kReplace || best == kNone) best = p.kind;
    }
    return best;
}

// `<X>.lock` is X's lock file, the shim's and other programs' alike
// (`( flock 9; cmd > X ) 9>>X.lock`): when a rule matches X, a replacement
// of X.lock would put a program's flock on a temp that nobody else locks,
// and its commit would rename a new inode over the one that other writers of
// X hold locked, letting the next one in beside them. Such a lock file is
// left alone, as an exclude rule would (docs/design.md, "Lock files under a
// rule"); excluding X gives X.lock back to its own rules.
bool lock_file_of_matched(const RuleSet *set, const char *path) {
    static constexpr char kSuffix[] = ".lock";
    constexpr size_t kSuffixLen = sizeof kSuffix - 1;
    const size_t n = strlen(path);
    const char *slash = strrchr(path, '/');
    const size_t name_len = slash ? static_cast<size_t>(path + n - slash - 1) : n;
    if (name_len <= kSuffixLen || memcmp(path + n - kSuffixLen, kSuffix, kSuffixLen) != 0) return false;
    char owner[kMaxPattern + 2];
    // Longer than any path the shim classifies: cannot tell, leave it alone.
    if (n - kSuffixLen >= sizeof owner) return true;
    memcpy(owner, path, n - kSuffixLen);
    owner[n - kSuffixLen] = '\0';
    const Kind kind = classify_by_patterns(set, owner);
    return kind == kReplace || kind == kLockOnly;
}

}  // namespace

int add_pattern(RuleSet *set, Kind kind, const char *text, size_t len, const char *base_dir) {
    char raw[kMaxPattern + 1];
    if (len >= sizeof raw) return ENAMETOOLONG;
    memcpy(raw, text, len);
    raw[len] = '\0';
#ifdef _WIN32
    // Patterns are spelled as the paths they are matched against.
    if (int rc = windows_spelling(raw, raw, sizeof raw)) return rc;
    len = strlen(raw);
#endif
    if (validate_glob(raw) != 0) return EINVAL;
    bool has_slash = memchr(raw, '/', len) != nullptr;
    char norm[kMaxPattern + 1];
    const char *final = raw;
    if (has_slash) {
        if (int rc = detail::normalize_path(base_dir ? base_dir : "/", raw, norm, sizeof norm)) return rc;
        final = norm;
    }
    if (!set->patterns) {
        set->patterns = set->inline_patterns;
        set->capacity = RuleSet::kInline;
    }
    if (set->count == set->capacity) {
        size_t cap = set->capacity * 2;
        auto *grown = static_cast<Pattern *>(malloc(cap * sizeof(Pattern)));
        if (!grown) return ENOMEM;
        memcpy(grown, set->patterns, set->count * sizeof(Pattern));
        if (set->patterns != set->inline_patterns) free(set->patterns);
        set->patterns = grown;
        set->capacity = cap;
    }
    size_t n = strlen(final) + 1;
    char *copy;
    if (n <= sizeof set->arena - set->arena_used) {
        copy = set->arena + set->arena_used;
        memcpy(copy, final, n);
        set->arena_used += n;
    } else if (!(copy = strdup(final))) {
        return ENOMEM;
    }
    Pattern &added = set->patterns[set->count++];
    added = Pattern{copy, has_slash, kind, Shape::general, static_cast<unsigned>(n - 1), 0};
    added.lead = static_cast<unsigned>(strcspn(copy, "*?[\\"));
    added.shape = shape_of(copy, added.len, added.lead);
    return 0;
}


int validate_glob(const char *pattern) {
    if (!pattern || !*pattern) return EINVAL;
    for (const char *p = pattern; *p; ++p) {
        if (*p == '\\' && p[1]) {
            ++p;
            continue;
        }
        if (*p == '[') {
            size_t len = bracket_length(p);
            if (!len) return EINVAL;
            p += len - 1;
        }
    }
    return 0;
}

bool glob_match(const char *pattern, const char *text) {
    size_t len = strnlen(pattern, kMaxPattern + 1);
    if (len > kMaxPattern) return false;
    size_t lead = strcspn(pattern, "*?[\\");
    return match_shaped(pattern, len, lead, shape_of(pattern, len, lead), text);
}

int add_list(RuleSet *set, Kind kind, const char *list, const char *base_dir, const char **bad, size_t *bad_len) {
    const size_t before = set->count;
    const char *p = list;
    while (p && *p) {
        const char *end = p;
        while (*end && *end != ';' && *end != '\n') ++end;
        const char *b = p, *e = end;
        while (b < e && is_space(*b)) ++b;
        while (e > b && is_space(e[-1])) --e;
        if (e > b) {
            int rc = add_pattern(set, kind, b, static_cast<size_t>(e - b), base_dir);
            if (rc) {
                truncate(set, before);
                if (bad) *bad = b;
                if (bad_len) *bad_len = static_cast<size_t>(e - b);
                return rc;
            }
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

Kind classify(const RuleSet *set, const char *abs_path) {
    Kind kind = classify_by_patterns(set, abs_path);
    if ((kind == kReplace || kind == kLockOnly) && lock_file_of_matched(set, abs_path)) return kExclude;
    return kind;
}

void truncate(RuleSet *set, size_t count) {
    for (size_t i = count; i < set->count; ++i) {
        char *text = set->patterns[i].text;
        auto at = reinterpret_cast<uintptr_t>(text), arena = reinterpret_cast<uintptr_t>(set->arena);
        if (at < arena || at >= arena + sizeof set->arena) free(text);
    }
    if (count < set->count) set->count = count;
}

void clear(RuleSet *set) {
    truncate(set, 0);
    if (set->patterns != set->inline_patterns) free(set->patterns);
    set->patterns = nullptr;
    set->count = set->capacity = set->arena_used = 0;
}

}  // namespace wrap_lockfile::rules
