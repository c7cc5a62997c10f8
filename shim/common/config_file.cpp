#include "config_file.hpp"

#include "sysio.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::rules {

namespace {

constexpr size_t kMaxConfig = 1 << 20;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

const char *not_regular(mode_t mode) {
    if (S_ISDIR(mode)) return "is a directory";
    if (S_ISFIFO(mode)) return "is a FIFO";
    if (S_ISCHR(mode)) return "is a character device";
    if (S_ISBLK(mode)) return "is a block device";
#ifdef S_ISSOCK  // no sockets in the Windows CRT's file types
    if (S_ISSOCK(mode)) return "is a socket";
#endif
    return S_ISREG(mode) ? nullptr : "is not a regular file";
}

int refuse(ConfigError *err, int code, int line, const char *what, const char *text, size_t len) {
    err->code = code;
    err->line = line;
    err->what = what;
    if (len >= sizeof err->text) len = sizeof err->text - 1;
    memcpy(err->text, text, len);
    err->text[len] = '\0';
    return code;
}

// The file's bytes, NUL-terminated, in a malloc'd *out of *len bytes.
int read_regular(const char *path, char **out, size_t *len, ConfigError *err) {
    // stat first: opening a device can have effects of its own (a tape
    // rewinds); the fstat below closes the race with a swapped path.
    struct stat st;
    if (stat(path, &st) != 0) return refuse(err, errno, 0, nullptr, "", 0);
    if (const char *what = not_regular(st.st_mode)) return refuse(err, EINVAL, 0, what, "", 0);
    sys::UniqueFd fd(sys::open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd) return refuse(err, errno, 0, nullptr, "", 0);
    if (fstat(fd.get(), &st) != 0) return refuse(err, errno, 0, nullptr, "", 0);
    if (const char *what = not_regular(st.st_mode)) return refuse(err, EINVAL, 0, what, "", 0);
    if (st.st_size > static_cast<off_t>(kMaxConfig)) return refuse(err, EFBIG, 0, "is larger than 1 MiB", "", 0);
    char *buf = static_cast<char *>(malloc(kMaxConfig + 1));
    if (!buf) return refuse(err, ENOMEM, 0, nullptr, "", 0);
    size_t n = 0;
    for (;;) {
        ssize_t r = sys::read(fd.get(), buf + n, kMaxConfig + 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            return refuse(err, e, 0, nullptr, "", 0);
        }
        if (r == 0) break;
        n += static_cast<size_t>(r);
        if (n > kMaxConfig) {  // grew since the fstat
            free(buf);
            return refuse(err, EFBIG, 0, "is larger than 1 MiB", "", 0);
        }
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

struct Keyword {
    const char *word;
    Kind kind;
};
constexpr Keyword kKeywords[] = {
    {"replace", kReplace}, {"rule", kReplace}, {"lock-only", kLockOnly}, {"exclude", kExclude}};

// Adds the rule on one line (trimmed, NUL-terminated at b..e).
int add_line(RuleSet *set, const char *b, const char *base_dir, const char **what) {
    Kind kind = kReplace;
    const char *glob = b;
    for (const Keyword &k : kKeywords) {
        size_t kl = strlen(k.word);
        if (strcmp(b, k.word) == 0) {
            *what = "a keyword without a glob";  // a mistake, not a file named "exclude"
            return EINVAL;
        }
        if (strncmp(b, k.word, kl) == 0 && is_space(b[kl])) {
            kind = k.kind;
            glob = b + kl;
            while (is_space(*glob)) ++glob;
            break;
        }
    }
    int rc = add_pattern(set, kind, glob, strlen(glob), base_dir);
    if (rc == EINVAL) *what = "a '[' without its ']' in the same path component";
    if (rc == ENAMETOOLONG) *what = "a glob longer than a path";
    return rc;
}

}  // namespace

int add_config_file(RuleSet *set, const char *path, const char *base_dir, ConfigError *err) {
    ConfigError scratch;
    if (!err) err = &scratch;
    *err = ConfigError{0, 0, nullptr, {}};
    char *buf = nullptr;
    size_t len = 0;
    if (int rc = read_regular(path, &buf, &len, err)) return rc;
    const size_t before = set->count;
    int line = 0, rc = 0;
    for (char *p = buf; p < buf + len && rc == 0;) {
        ++line;
        char *end = static_cast<char *>(memchr(p, '\n', static_cast<size_t>(buf + len - p)));
        if (!end) end = buf + len;
        // A NUL would silently cut the line (and the rule) short.
        if (memchr(p, '\0', static_cast<size_t>(end - p))) {
            rc = refuse(err, EINVAL, line, "has a NUL byte", "", 0);
            break;
        }
        *end = '\0';
        char *b = p;
        while (is_space(*b)) ++b;
        char *e = b + strlen(b);
        while (e > b && is_space(e[-1])) --e;
        *e = '\0';
        if (*b && *b != '#') {
            const char *what = nullptr;
            if ((rc = add_line(set, b, base_dir, &what)) != 0) refuse(err, rc, line, what, b, static_cast<size_t>(e - b));
        }
        p = end + 1;
    }
    free(buf);
    if (rc) truncate(set, before);
    return rc;
}

const char *format_config_error(const char *path, const ConfigError *err, char *buf, size_t size) {
    if (!buf || size == 0) return buf;
    const char *what = err->what ? err->what : strerror(err->code);
    if (err->line > 0 && err->text[0])
        snprintf(buf, size, "%s:%d: %s: '%s'", path, err->line, what, err->text);
    else if (err->line > 0)
        snprintf(buf, size, "%s:%d: %s", path, err->line, what);
    else
        snprintf(buf, size, "%s: %s", path, what);
    return buf;
}

}  // namespace wrap_lockfile::rules
