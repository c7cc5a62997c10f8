#include "unprotected.hpp"

#include "failure.hpp"

#include <elf.h>

#include <cerrno>
#include <climits>

namespace wrap_lockfile::atomically {

std::optional<ElfInfo> read_elf(int fd) {
    ElfInfo info{};
    if (!detail::read_elf_id(fd, &info)) return std::nullopt;
    return info;
}

namespace {

std::string describe(const ElfInfo &e) {
    return std::string(e.elf_class == ELFCLASS32 ? "32-bit" : e.elf_class == ELFCLASS64 ? "64-bit" : "unknown-class") +
           (e.data == ELFDATA2MSB ? " big-endian" : "") + " ELF for machine " + std::to_string(e.machine);
}

std::string reason_text(detail::Unprotected why, const ElfInfo &found, const ElfInfo &preload) {
    switch (why) {
    case detail::Unprotected::no: return "";
    case detail::Unprotected::setuid: return "is setuid, and the dynamic loader ignores LD_PRELOAD for setuid programs";
    case detail::Unprotected::setgid: return "is setgid, and the dynamic loader ignores LD_PRELOAD for setgid programs";
    case detail::Unprotected::capabilities:
        return "has file capabilities, and the dynamic loader ignores LD_PRELOAD for such programs";
    case detail::Unprotected::foreign:
        return "is a " + describe(found) + " program, and the preload object is a " + describe(preload) +
               " one, which the dynamic loader would skip";
    case detail::Unprotected::foreign_interp:
        return std::string("runs under the program interpreter ") + found.interp +
               ", another C library's loader than the " + preload.interp +
               " the preload object is built for, so the shim would not run in it";
    case detail::Unprotected::static_binary: return "is statically linked, so no dynamic loader runs to apply LD_PRELOAD";
    case detail::Unprotected::unreadable: return "cannot be read to check how it is linked: " + error_text(errno);
    }
    return "";
}

}  // namespace

std::string unprotectable_reason(const std::string &path, const ElfInfo &preload) {
    ElfInfo found{};
    char interp[PATH_MAX];
    int interp_error = 0;
    detail::Unprotected why =
        detail::unprotected_program(path.c_str(), &preload, &found, interp, sizeof interp, &interp_error);
    if (interp_error)
        fail(path + ": bad interpreter " + interp + ": " + error_text(interp_error),
             interp_error == ENOENT ? kExitNotFound : kExitCannotRun);
    std::string reason = reason_text(why, found, preload);
    if (!reason.empty() && interp[0]) reason = std::string("runs under ") + interp + ", which " + reason;
    return reason;
}

}  // namespace wrap_lockfile::atomically
