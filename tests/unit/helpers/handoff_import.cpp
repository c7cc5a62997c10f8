// handoff_import TOKEN: the new program image of an exec hand-over
// (handoff_test.cpp). Takes over the pending replacement TOKEN describes (its
// descriptors were inherited), checks that exporting it again gives TOKEN
// back, appends "+after-exec" through its descriptor and commits.
// Exit: 0; 3 the import failed, 4 the re-export differs (both printed),
// 5 the write failed, 6 the commit failed; errno on stderr.
#include "handoff.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace detail = wrap_lockfile::detail;

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    const char *token = argv[1];
    wlf_file *f = nullptr;
    if (int rc = detail::file_import(token, strlen(token), 0, &f)) {
        fprintf(stderr, "import: %s\n", strerror(rc));
        return 3;
    }
    char again[WLF_PATH_MAX * 3 + 128];
    if (detail::file_export(f, again, sizeof again) != 0 || strcmp(again, token) != 0) {
        fprintf(stderr, "re-export differs:\n  %s\n  %s\n", token, again);
        return 4;
    }
    static const char more[] = "+after-exec";
    if (write(wlf_file_fd(f), more, sizeof more - 1) != static_cast<ssize_t>(sizeof more - 1)) {
        perror("write");
        return 5;
    }
    wlf_error err{};
    if (wlf_commit(f, nullptr, &err) != 0) {
        char buf[WLF_PATH_MAX + 256];
        fprintf(stderr, "commit: %s\n", wlf_error_format(&err, buf, sizeof buf));
        return 6;
    }
    return 0;
}
