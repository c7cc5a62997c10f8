// The real libc functions the out-of-line code calls by name (the
// interposers resolve their own next symbols).
#include "handlers.hpp"

namespace wrap_lockfile::shim {

execve_fn libc_execve() {
    static std::atomic<execve_fn> slot{nullptr};
    return resolve(slot, "execve");
}

execve_fn libc_execvpe() {
    static std::atomic<execve_fn> slot{nullptr};
    return resolve(slot, "execvpe");
}

open_fn libc_open() {
    static std::atomic<open_fn> slot{nullptr};
    return resolve(slot, "open");
}

}  // namespace wrap_lockfile::shim
