// libFuzzer target for everything the shim parses from its environment:
// globs (matching, lists), the rules file, the timeout grammar. The first
// byte picks the parser; the rest is its input. Checks invariants beyond
// "no crash, no sanitizer report": a parsed timeout is within its bound, a
// failed list or file adds no rule, a pattern matches itself when it has no
// special characters.
#include "config_file.hpp"
#include "internal.hpp"
#include "rules.hpp"
#include "timeout.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace rules = wrap_lockfile::rules;
namespace detail = wrap_lockfile::detail;

namespace {

void check(bool ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "invariant broken: %s\n", what);
        abort();
    }
}

void fuzz_match(const std::string &in) {
    size_t nl = in.find('\n');
    std::string pattern = in.substr(0, nl), text = nl == std::string::npos ? "" : in.substr(nl + 1);
    bool plain = pattern.find_first_of("*?[\\") == std::string::npos;
    bool m = rules::glob_match(pattern.c_str(), text.c_str());
    if (plain && pattern.size() <= rules::kMaxPattern) check(m == (pattern == text), "plain pattern matches exactly itself");
}

void fuzz_list(const std::string &in, int kind) {
    rules::RuleSet set;
    const char *bad = nullptr;
    size_t bad_len = 0;
    int rc = rules::add_list(&set, static_cast<rules::Kind>(kind), in.c_str(), "/base", &bad, &bad_len);
    if (rc) check(set.count == 0, "a failed list adds nothing");
    (void)rules::classify(&set, "/base/dir/file.txt");
    rules::clear(&set);
}

void fuzz_config(const std::string &in) {
    int fd = memfd_create("fuzz.conf", MFD_CLOEXEC);
    if (fd < 0) return;
    if (write(fd, in.data(), in.size()) != static_cast<ssize_t>(in.size())) {
        close(fd);
        return;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    rules::RuleSet set;
    rules::ConfigError err;
    int rc = rules::add_config_file(&set, path, "/base", &err);
    if (rc) {
        check(set.count == 0, "a refused file adds nothing");
        char text[512];
        rules::format_config_error(path, &err, text, sizeof text);
        check(memchr(in.data(), '\0', in.size()) == nullptr || err.code != 0, "a NUL is refused");
    } else {
        check(memchr(in.data(), '\0', in.size()) == nullptr, "a file with a NUL is refused");
    }
    (void)rules::classify(&set, "/base/x.txt");
    rules::clear(&set);
    close(fd);
}

void fuzz_timeout(const std::string &in) {
    double v = -1;
    int rc = detail::parse_timeout(in.c_str(), &v);
    if (rc == 0) {
        check(v >= 0 && v <= static_cast<double>(detail::kMaxTimeoutSeconds), "timeout within its bound");
        check(in.find_first_not_of("0123456789.") == std::string::npos, "only digits and a dot");
    }
    double d;
    memcpy(&d, in.data(), in.size() < sizeof d ? in.size() : sizeof d);
    int64_t ns = detail::timeout_ns(in.size() >= sizeof d ? d : 0.0);
    check(ns >= 0 && ns <= detail::kMaxTimeoutSeconds * 1000000000, "timeout_ns clamped");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    // C strings: the environment cannot carry a NUL, so cut at the first one
    // (the rules file gets the raw bytes).
    std::string raw(reinterpret_cast<const char *>(data) + 1, size - 1);
    std::string cstr = raw.substr(0, raw.find('\0'));
    switch (data[0] % 4) {
    case 0: fuzz_match(cstr); break;
    case 1: fuzz_list(cstr, 1 + data[0] / 4 % 3); break;
    case 2: fuzz_config(raw); break;
    case 3: fuzz_timeout(cstr); break;
    }
    return 0;
}
