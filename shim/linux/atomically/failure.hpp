// How the launcher fails: a message on stderr and an exit status, as env(1)
// and timeout(1) use them (125 atomically itself, 126 COMMAND cannot run,
// 127 COMMAND not found).
#pragma once

#include <cstring>
#include <string>
#include <string_view>

namespace wrap_lockfile::atomically {

// Exit statuses of the launcher itself, as env(1) and timeout(1) use them.
constexpr int kExitLauncherError = 125;

constexpr int kExitCannotRun = 126;

constexpr int kExitNotFound = 127;

struct Failure {
    int status;
    std::string message;
};

[[noreturn]] inline void fail(std::string message, int status = kExitLauncherError) {
    throw Failure{status, std::move(message)};
}

inline std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

inline std::string error_text(int err) { return std::strerror(err); }

}  // namespace wrap_lockfile::atomically
