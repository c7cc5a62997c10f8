#include "rules.hpp"

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

bool match_here(const char *p, const char *t) {
    while (*p) {
        if (p[0] == '*' && p[1] == '*') {
            const char *rest = p + 2;
            bool slash_after = *rest == '/';
            // "**/" may match no directory at all.
            if (slash_after && match_here(rest + 1, t)) return true;
            for (const char *s = t;; ++s) {
                if (match_here(rest, s)) return true;
                if (!*s) return false;
            }
        }
        if (*p == '*') {
            for (const char *s = t;; ++s) {
                if (match_here(p + 1, s)) return true;
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
            size_t len = bracket_length(p);
            if (len) {
                if (*t == '/' || !bracket_match(p, len, *t)) return false;
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

int add_pattern(RuleSet *set, Kind kind, const char *text, size_t len, const char *base_dir) {
    char raw[4096];
    if (len >= sizeof raw) return ENAMETOOLONG;
    memcpy(raw, text, len);
    raw[len] = '\0';
    if (validate_glob(raw) != 0) return EINVAL;
    bool has_slash = memchr(raw, '/', len) != nullptr;
    char norm[4096];
    const char *final = raw;
    if (has_slash) {
        if (int rc = normalize(base_dir ? base_dir : "/", raw, norm, sizeof norm)) return rc;
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
    set->patterns[set->count++] = Pattern{copy, has_slash, kind};
    return 0;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

}  // namespace

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

bool glob_match(const char *pattern, const char *text) { return match_here(pattern, text); }

int add_list(RuleSet *set, Kind kind, const char *list, const char *base_dir, const char **bad, size_t *bad_len) {
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
                if (bad) *bad = b;
                if (bad_len) *bad_len = static_cast<size_t>(e - b);
                return rc;
            }
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

int add_config_file(RuleSet *set, const char *path, const char *base_dir, int *bad_line) {
    sys::UniqueFd fd(sys::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd) return errno;
    // Config files are small; cap them so a wrong path (a device) cannot hang us.
    constexpr size_t kMax = 1 << 20;
    char *buf = static_cast<char *>(malloc(kMax + 1));
    if (!buf) return ENOMEM;
    size_t len = 0;
    for (;;) {
        ssize_t n = sys::read(fd.get(), buf + len, kMax - len);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            free(buf);
            return e;
        }
        if (n == 0) break;
        len += static_cast<size_t>(n);
        if (len == kMax) {
            free(buf);
            return EFBIG;
        }
    }
    buf[len] = '\0';
    int line = 0, rc = 0;
    for (char *p = buf; *p && rc == 0;) {
        ++line;
        char *end = strchr(p, '\n');
        if (end) *end = '\0';
        char *b = p;
        while (is_space(*b)) ++b;
        char *e = b + strlen(b);
        while (e > b && is_space(e[-1])) --e;
        *e = '\0';
        if (*b && *b != '#') {
            Kind kind = kReplace;
            const char *glob = b;
            struct Keyword {
                const char *word;
                Kind kind;
            };
            static const Keyword keywords[] = {{"replace", kReplace}, {"rule", kReplace},
                                               {"lock-only", kLockOnly}, {"exclude", kExclude}};
            for (const Keyword &k : keywords) {
                size_t kl = strlen(k.word);
                if (strcmp(b, k.word) == 0) {
                    // A keyword without a glob is a mistake, not a file name.
                    rc = EINVAL;
                    break;
                }
                if (strncmp(b, k.word, kl) == 0 && is_space(b[kl])) {
                    kind = k.kind;
                    glob = b + kl;
                    while (is_space(*glob)) ++glob;
                    break;
                }
            }
            if (rc == 0) rc = add_pattern(set, kind, glob, strlen(glob), base_dir);
            if (rc && bad_line) *bad_line = line;
        }
        if (!end) break;
        p = end + 1;
    }
    free(buf);
    return rc;
}

Kind classify(const RuleSet *set, const char *abs_path) {
    if (!set || set->count == 0) return kNone;
    const char *name = strrchr(abs_path, '/');
    name = name ? name + 1 : abs_path;
    Kind best = kNone;
    for (size_t i = 0; i < set->count; ++i) {
        const Pattern &p = set->patterns[i];
        if (p.kind == kLockOnly && best != kNone) continue;  // cannot improve on a match
        if (!glob_match(p.text, p.has_slash ? abs_path : name)) continue;
        if (p.kind == kExclude) return kExclude;
        if (p.kind == kReplace || best == kNone) best = p.kind;
    }
    return best;
}

void clear(RuleSet *set) {
    for (size_t i = 0; i < set->count; ++i) {
        char *text = set->patterns[i].text;
        auto at = reinterpret_cast<uintptr_t>(text), arena = reinterpret_cast<uintptr_t>(set->arena);
        if (at < arena || at >= arena + sizeof set->arena) free(text);
    }
    if (set->patterns != set->inline_patterns) free(set->patterns);
    set->patterns = nullptr;
    set->count = set->capacity = set->arena_used = 0;
}

int normalize(const char *base, const char *path, char *out, size_t size) {
    if (size < 2) return ENAMETOOLONG;
    size_t len = 0;
    out[len++] = '/';
    out[len] = '\0';
    // Walk base (if path is relative) then path, component by component.
    const char *parts[2] = {path[0] == '/' ? "" : (base ? base : "/"), path};
    for (const char *src : parts) {
        const char *p = src;
        while (*p) {
            while (*p == '/') ++p;
            if (!*p) break;
            const char *end = p;
            while (*end && *end != '/') ++end;
            size_t n = static_cast<size_t>(end - p);
            if (n == 1 && p[0] == '.') {
                // skip
            } else if (n == 2 && p[0] == '.' && p[1] == '.') {
                if (len > 1) {
                    while (len > 1 && out[len - 1] != '/') --len;
                    if (len > 1) --len;  // drop the slash too, except the root
                    out[len] = '\0';
                }
            } else {
                if (len + (len > 1 ? 1 : 0) + n + 1 > size) return ENAMETOOLONG;
                if (len > 1) out[len++] = '/';
                memcpy(out + len, p, n);
                len += n;
                out[len] = '\0';
            }
            p = end;
        }
    }
    return 0;
}

}  // namespace wrap_lockfile::rules
