// The `atomically` launcher (README "The shim: unmodified programs"): validates the shim's whole
// configuration, points LD_PRELOAD at the preload object and replaces itself
// with COMMAND, so the exit status is the command's own. Everything that can
// be wrong is reported before COMMAND runs, because a misconfigured shim
// would silently leave files unprotected.
#include "environment.hpp"
#include "failure.hpp"
#include "options.hpp"
#include "preload_lookup.hpp"
#include "unprotected.hpp"

#include "path_search.hpp"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>

namespace wrap_lockfile::atomically {

// The file execvp would run for `command`, or a failure with 127 (not
// found) or 126 (found but not runnable).
std::string resolve_command(const std::string &command) {
    int err = ENOENT;
    if (command.find('/') != std::string::npos) {
        err = shim::runnable(command.c_str());
        if (err == 0) return command;
    } else if (!command.empty()) {
        char found[PATH_MAX];
        err = shim::search_path(command.c_str(), found, sizeof found);
        if (err == 0) return found;
    }
    fail(command + ": " + error_text(err), err == ENOENT ? kExitNotFound : kExitCannotRun);
}

int run(int argc, char **argv) {
    std::optional<Options> opts = parse_options(argc, argv);
    if (!opts) return 0;
    const std::string cwd = current_dir();
    Environment e = checked_environment(*opts, cwd);

    ElfInfo preload_elf;
    std::string preload = find_preload(preload_elf);

    std::string command = argv[opts->command_index];
    std::string file = resolve_command(command);
    if (std::string reason = unprotectable_reason(file, preload_elf); !reason.empty()) {
        if (!opts->allow_unprotected)
            fail("refusing to run " + file + ": it " + reason + "; its files could not be protected "
                 "(use --allow-unprotected to run it anyway)");
        std::fprintf(stderr, "atomically: warning: running %s unprotected: it %s\n", file.c_str(), reason.c_str());
    }

    export_environment(e);
    if (setenv("LD_PRELOAD", composed_ld_preload(preload).c_str(), 1) != 0)
        fail(std::string("cannot set LD_PRELOAD: ") + error_text(errno));

    std::fflush(stdout);
    execv(file.c_str(), argv + opts->command_index);
    int err = errno;
    fail(command + ": " + error_text(err), err == ENOENT ? kExitNotFound : kExitCannotRun);
}

}  // namespace wrap_lockfile::atomically

int main(int argc, char **argv) {
    using namespace wrap_lockfile::atomically;
    try {
        return run(argc, argv);
    } catch (const Failure &f) {
        std::fprintf(stderr, "atomically: %s\n", f.message.c_str());
        return f.status;
    } catch (const std::exception &ex) {
        std::fprintf(stderr, "atomically: %s\n", ex.what());
        return kExitLauncherError;
    }
}
