// The core C API as a command for the fault suite's scripts:
//   driver [OPTIONS] write PATH CONTENT    one-shot replacement
//   driver [OPTIONS] append PATH CONTENT   O_APPEND replacement
//   driver [OPTIONS] write-all CONTENT PATH...   one-shot replacements, in order
//   driver [OPTIONS] write-sync-exit CONTROL CONTENT PATH...   as write-all,
//          then wlf_sync_pending(), then "mark committed" into the faultfs
//          CONTROL file, then _exit(0): what was durable before the exit
//          (the exit-time sync does not run)
// OPTIONS: --timeout SECONDS, --backend flock|dotlock|auto, --fsync full|batch|none, --lock-only (locked
// writes in place, no replacement)
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
    fprintf(stderr, "usage: driver [--timeout SECONDS] [--backend flock|dotlock|auto] [--fsync full|batch|none] [--lock-only] {write|append} PATH CONTENT\n"
                    "       driver [OPTIONS] write-all CONTENT PATH...\n"
                    "       driver [OPTIONS] write-sync-exit CONTROL CONTENT PATH...\n");
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
    int rc = wlf_open_flags(path, WLF_OPEN_WRITE | WLF_OPEN_CREATE | WLF_OPEN_APPEND, 0666, &opt, &f, &err);
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
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--lock-only") == 0) {
            opt.lock_only = 1;
            --i;  // takes no value
        } else if (strcmp(argv[i], "--timeout") == 0) {
            char *end;
            double t = strtod(argv[i + 1], &end);
            if (*end || end == argv[i + 1]) return usage();
            opt.lock.has_timeout = 1;
            opt.lock.timeout = t;
        } else if (strcmp(argv[i], "--backend") == 0) {
            std::string_view v = argv[i + 1];
            opt.lock.backend = v == "flock" ? WLF_LOCK_FLOCK : v == "dotlock" ? WLF_LOCK_DOTLOCK
                               : v == "auto" ? WLF_LOCK_AUTO : -1;
            if (opt.lock.backend < 0) return usage();
        } else if (strcmp(argv[i], "--fsync") == 0) {
            std::string_view v = argv[i + 1];
            opt.durability = v == "full" ? WLF_DURABILITY_FULL : v == "batch" ? WLF_DURABILITY_BATCH
                             : v == "none" ? WLF_DURABILITY_NONE : -1;
            if (opt.durability < 0) return usage();
        } else {
            return usage();
        }
    }
    if (i < argc && (strcmp(argv[i], "write-all") == 0 || strcmp(argv[i], "write-sync-exit") == 0)) {
        bool sync_exit = strcmp(argv[i], "write-sync-exit") == 0;
        const char *control = sync_exit && i + 1 < argc ? argv[++i] : nullptr;
        if (argc - i < 3) return usage();
        std::string_view content = argv[i + 1];
        for (int k = i + 2; k < argc; ++k) {
            wlf_error err{};
            int rc = wlf_write_content(argv[k], content.data(), content.size(), &opt, &err);
            if (rc) return report(rc, err);
        }
        if (!sync_exit) return report(0, wlf_error{});
        wlf_error err{};
        if (int rc = wlf_sync_pending(&err)) return report(rc, err);
        int fd = open(control, O_WRONLY);
        static const char mark[] = "mark committed\n";
        if (fd < 0 || write(fd, mark, sizeof mark - 1) != static_cast<ssize_t>(sizeof mark - 1) || close(fd) != 0) {
            perror(control);
            _exit(1);
        }
        printf("ok\n");
        fflush(stdout);
        _exit(0);
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
