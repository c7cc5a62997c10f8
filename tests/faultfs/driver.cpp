// The core C API as a command for the fault suite's scripts:
//   driver [--timeout SECONDS] write PATH CONTENT    one-shot replacement
//   driver [--timeout SECONDS] append PATH CONTENT   O_APPEND replacement
// Prints "ok" and exits 0, or "error: <message> errno=N NAME step=STEP"
// (wlf_step_name: lock, open, temp, write, fsync, rename, fsync_dir...) and exits 1;
// usage errors exit 2. Linked against the real core or a mutant of it.
#include <wrap_lockfile/wrap_lockfile.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace {

int usage() {
    fprintf(stderr, "usage: driver [--timeout SECONDS] {write|append} PATH CONTENT\n");
    return 2;
}

int report(int rc, const wlf_error &err) {
    if (rc == 0) {
        printf("ok\n");
        return 0;
    }
    char text[WLF_PATH_MAX + 256];
    printf("error: %s errno=%d %s step=%s\n", wlf_error_format(&err, text, sizeof text), rc, strerrorname_np(rc),
           wlf_step_name(err.step));
    return 1;
}

int append(const char *path, std::string_view content, const wlf_write_options &opt) {
    wlf_error err{};
    wlf_file *f;
    int rc = wlf_open(path, O_WRONLY | O_CREAT | O_APPEND, 0666, &opt, &f, &err);
    if (rc) return report(rc, err);
    int fd = wlf_file_fd(f);
    size_t done = 0;
    while (done < content.size()) {
        ssize_t n = write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            // The C API's contract for callers that write themselves.
            wlf_file_poison(f, errno);
            break;
        }
        done += static_cast<size_t>(n);
    }
    return report(wlf_commit(f, nullptr, &err), err);
}

}  // namespace

int main(int argc, char **argv) {
    wlf_write_options opt;
    wlf_write_options_init(&opt);
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "--timeout") == 0) {
        char *end;
        double t = strtod(argv[i + 1], &end);
        if (*end || end == argv[i + 1]) return usage();
        opt.lock.has_timeout = 1;
        opt.lock.timeout = t;
        i += 2;
    }
    if (argc - i != 3) return usage();
    std::string_view cmd = argv[i];
    const char *path = argv[i + 1];
    std::string_view content = argv[i + 2];
    if (cmd == "write") {
        wlf_error err{};
        return report(wlf_write_content(path, content.data(), content.size(), &opt, &err), err);
    }
    if (cmd == "append") return append(path, content, opt);
    return usage();
}
