// The `atomically` launcher (README "The shim: unmodified programs"): validates the shim's whole
// configuration, points LD_PRELOAD at the preload object and replaces itself
// with COMMAND, so the exit status is the command's own. Everything that can
// be wrong is reported before COMMAND runs, because a misconfigured shim
// would silently leave files unprotected.
#include "config_file.hpp"
#include "elf_check.hpp"
#include "lock_choice.hpp"
#include "rules.hpp"
#include "timeout.hpp"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rules = wrap_lockfile::rules;
namespace detail = wrap_lockfile::detail;

namespace {

// Exit statuses of the launcher itself, as env(1) and timeout(1) use them.
constexpr int kExitLauncherError = 125;
constexpr int kExitCannotRun = 126;
constexpr int kExitNotFound = 127;

constexpr const char *kPreloadName = "libwrap_lockfile_preload.so";

struct Failure {
    int status;
    std::string message;
};

[[noreturn]] void fail(std::string message, int status = kExitLauncherError) {
    throw Failure{status, std::move(message)};
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string error_text(int err) { return std::strerror(err); }

struct Options {
    // List options keep their order; each value may itself hold a ';' list.
    std::vector<std::string> replace, lock_only, exclude;
    std::optional<std::string> config, timeout, fsync, log, lock_backend;
    bool keep_lock_files = false;
    bool verbose = false;
    bool allow_unprotected = false;
    int command_index = 0;  // index into argv of COMMAND
};

void print_help() {
    std::fputs(
        "Usage: atomically [OPTION]... [--] COMMAND [ARG]...\n"
        "Run COMMAND with the wrap_lockfile shim preloaded: its writes to files that\n"
        "match the rules become locked, atomic replacements.\n"
        "\n"
        "  --rule GLOB          replace matching files atomically (repeatable; ';' separates globs)\n"
        "  --lock-only GLOB     only serialize writes to matching files (repeatable)\n"
        "  --exclude GLOB       never touch matching files; wins over the others (repeatable)\n"
        "  --config FILE        read rules from FILE (\"replace|lock-only|exclude GLOB\" per line)\n"
        "  --timeout SECONDS    give up waiting for a lock after SECONDS (default: wait forever)\n"
        "  --fsync full|none    flush replacements to disk before renaming (default: full)\n"
        "  --lock-backend flock|dotlock|none\n"
        "                       how files are locked (default: flock; lock files are kept\n"
        "                       on shared file systems, see README)\n"
        "  --keep-lock-files    never remove <file>.lock (for tools that do not verify)\n"
        "  --log FILE           log the shim's decisions to FILE ('stderr' for standard error)\n"
        "  -v, --verbose        log the shim's decisions to standard error\n"
        "  --allow-unprotected  run COMMAND even if it is statically linked or setuid\n"
        "  -h, --help           show this help and exit\n"
        "  --version            show the version and exit\n"
        "\n"
        "Exit status: 125 if atomically fails, 126 if COMMAND cannot be run,\n"
        "127 if it is not found, otherwise the exit status of COMMAND.\n"
        "See atomically(1).\n",
        stdout);
}

enum class Opt {
    Rule, LockOnly, Exclude, Config, Timeout, Fsync, LockBackend, KeepLockFiles, Log, Verbose, AllowUnprotected, Help, Version
};

struct OptSpec {
    std::string_view name;
    Opt opt;
    bool takes_value;
};

constexpr OptSpec kLongOptions[] = {
    {"rule", Opt::Rule, true},          {"lock-only", Opt::LockOnly, true},
    {"exclude", Opt::Exclude, true},    {"config", Opt::Config, true},
    {"timeout", Opt::Timeout, true},    {"fsync", Opt::Fsync, true},
    {"lock-backend", Opt::LockBackend, true}, {"keep-lock-files", Opt::KeepLockFiles, false},
    {"log", Opt::Log, true},            {"verbose", Opt::Verbose, false},
    {"allow-unprotected", Opt::AllowUnprotected, false},
    {"help", Opt::Help, false},         {"version", Opt::Version, false},
};

const OptSpec *find_option(std::string_view name) {
    for (const OptSpec &s : kLongOptions)
        if (s.name == name) return &s;
    return nullptr;
}

// Returns nullopt when --help or --version asked to stop after printing.
std::optional<Options> parse_options(int argc, char **argv) {
    Options o;
    int i = 1;
    for (; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--") {
            ++i;
            break;
        }
        const OptSpec *spec = nullptr;
        std::optional<std::string_view> value;
        if (arg == "-v") {
            spec = find_option("verbose");
        } else if (arg == "-h") {
            spec = find_option("help");
        } else if (arg.starts_with("--")) {
            std::string_view name = arg.substr(2);
            if (size_t eq = name.find('='); eq != std::string_view::npos) {
                value = name.substr(eq + 1);
                name = name.substr(0, eq);
            }
            spec = find_option(name);
        } else if (arg.size() < 2 || arg[0] != '-') {
            break;  // COMMAND: options end here, as with env(1)
        }
        if (!spec) fail("unknown option " + quoted(arg) + " (see atomically --help)");
        if (spec->takes_value && !value) {
            if (i + 1 >= argc) fail("option --" + std::string(spec->name) + " needs a value");
            value = argv[++i];
        } else if (!spec->takes_value && value) {
            fail("option --" + std::string(spec->name) + " takes no value");
        }
        switch (spec->opt) {
        case Opt::Rule: o.replace.emplace_back(*value); break;
        case Opt::LockOnly: o.lock_only.emplace_back(*value); break;
        case Opt::Exclude: o.exclude.emplace_back(*value); break;
        case Opt::Config:
            // One variable carries one file; silently dropping the first
            // would drop rules the user asked for.
            if (o.config) fail("option --config given more than once");
            o.config = *value;
            break;
        case Opt::Timeout: o.timeout = *value; break;
        case Opt::Fsync: o.fsync = *value; break;
        case Opt::LockBackend: o.lock_backend = *value; break;
        case Opt::KeepLockFiles: o.keep_lock_files = true; break;
        case Opt::Log: o.log = *value; break;
        case Opt::Verbose: o.verbose = true; break;
        case Opt::AllowUnprotected: o.allow_unprotected = true; break;
        case Opt::Help: print_help(); return std::nullopt;
        case Opt::Version: std::puts("atomically (wrap_lockfile) " WLF_VERSION); return std::nullopt;
        }
    }
    if (i >= argc) fail("no COMMAND given (see atomically --help)");
    o.command_index = i;
    return o;
}

std::string current_dir() {
    char *cwd = getcwd(nullptr, 0);
    if (!cwd)
        fail("cannot determine the current directory, needed to make relative paths absolute: " +
             error_text(errno));
    std::string s = cwd;
    free(cwd);
    return s;
}

// Prefixing, not lexical normalization: "link/../f" must keep naming what
// the kernel would resolve it to.
std::string absolute_path(const std::string &path, const std::string &cwd) {
    if (path.starts_with('/')) return path;
    return cwd == "/" ? "/" + path : cwd + "/" + path;
}

class ScratchRules {
public:
    ScratchRules() = default;
    ScratchRules(const ScratchRules &) = delete;
    ScratchRules &operator=(const ScratchRules &) = delete;
    ~ScratchRules() { rules::clear(&set_); }
    rules::RuleSet *get() { return &set_; }

private:
    rules::RuleSet set_;
};

std::string glob_reason(int rc) {
    if (rc == EINVAL) return "a '[' without its ']' in the same path component";
    if (rc == ENAMETOOLONG) return "too long";
    return error_text(rc);
}

// Adds a glob list to `set`, failing with a message that names `what`.
void add_globs(ScratchRules &set, rules::Kind kind, const char *list, const std::string &cwd, const std::string &what) {
    const char *bad = nullptr;
    size_t bad_len = 0;
    if (int rc = rules::add_list(set.get(), kind, list, cwd.c_str(), &bad, &bad_len))
        fail(what + ": invalid glob " + quoted(std::string_view(bad, bad_len)) + ": " + glob_reason(rc));
}

// Validates a ';'-separated glob list named `what` and returns it as the shim
// must see it: relative globs containing '/' made absolute against `cwd`, so
// their meaning survives COMMAND changing directory.
std::string checked_globs(rules::Kind kind, const std::string &list, const std::string &cwd, const std::string &what) {
    ScratchRules set;
    add_globs(set, kind, list.c_str(), cwd, what);
    if (set.get()->count == 0) fail(what + ": no glob in " + quoted(list));
    // add_list stores each pattern in the normalized form detail::normalize_path
    // gives it, which is exactly what the shim will match against.
    std::string out;
    for (size_t i = 0; i < set.get()->count; ++i) {
        if (i) out += ';';
        out += set.get()->patterns[i].text;
    }
    return out;
}

// The file's problems are worded by shim/common (config_file.hpp), as the preload object words them.
void check_config(const std::string &path, const std::string &cwd, const std::string &what) {
    ScratchRules set;
    rules::ConfigError err;
    if (rules::add_config_file(set.get(), path.c_str(), cwd.c_str(), &err) == 0) return;
    char text[PATH_MAX + 512];
    fail(what + " " + rules::format_config_error(path.c_str(), &err, text, sizeof text));
}

// The grammar is the core's, shared with the preload object.
void check_timeout(const std::string &value, const std::string &what) {
    double seconds;
    int rc = detail::parse_timeout(value.c_str(), &seconds);
    if (rc == ERANGE) fail(what + ": timeout " + quoted(value) + " is too large (" + detail::kTimeoutGrammar + ")");
    if (rc) fail(what + ": invalid timeout " + quoted(value) + " (" + detail::kTimeoutGrammar + ")");
}

void check_fsync(const std::string &value, const std::string &what) {
    if (value != "full" && value != "none") fail(what + ": invalid value " + quoted(value) + " (expected full or none)");
}

// The shim appends to the log; opening it the same way now turns a typo in
// the path into an error instead of a silently missing log.
void check_log(const std::string &path, const std::string &what) {
    if (path.empty()) fail(what + ": empty path");
    if (path == "stderr") return;
    int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) fail(what + " " + path + ": " + error_text(errno));
    close(fd);
}

void check_lock_backend(const std::string &value, const std::string &what) {
    int backend;
    if (!detail::parse_lock_backend(value.c_str(), &backend))
        fail(what + ": invalid lock backend " + quoted(value) + " (expected " + detail::kLockBackendChoices + ")");
}

void check_keep_lock_files(const std::string &value, const std::string &what) {
    int keep;
    if (!detail::parse_keep_lock_files(value.c_str(), &keep))
        fail(what + ": invalid value " + quoted(value) + " (expected 1 or 0)");
}

struct Environment {
    std::optional<std::string> replace, lock_only, exclude, config, timeout, fsync, log, lock_backend, keep_lock_files;
};

// Appends the option values of one glob list to the inherited variable,
// validating both.
std::optional<std::string> merged_globs(rules::Kind kind, const char *var, const std::vector<std::string> &values,
                                        const char *option, const std::string &cwd) {
    std::optional<std::string> out;
    if (const char *inherited = getenv(var)) {
        // Passed on unchanged: the shim interprets it as it would have
        // without the launcher; only its validity is the launcher's concern.
        ScratchRules set;
        add_globs(set, kind, inherited, cwd, var);
        out = inherited;
    }
    for (const std::string &v : values) {
        std::string globs = checked_globs(kind, v, cwd, option);
        out = out && !out->empty() ? *out + ";" + globs : globs;
    }
    return out;
}

Environment checked_environment(const Options &o, const std::string &cwd) {
    Environment e;
    e.replace = merged_globs(rules::kReplace, "WRAP_LOCKFILE_RULES", o.replace, "--rule", cwd);
    e.lock_only = merged_globs(rules::kLockOnly, "WRAP_LOCKFILE_LOCK_ONLY", o.lock_only, "--lock-only", cwd);
    e.exclude = merged_globs(rules::kExclude, "WRAP_LOCKFILE_EXCLUDE", o.exclude, "--exclude", cwd);

    if (o.config) {
        e.config = absolute_path(*o.config, cwd);
        check_config(*e.config, cwd, "--config");
    } else if (const char *inherited = getenv("WRAP_LOCKFILE_CONFIG")) {
        check_config(inherited, cwd, "WRAP_LOCKFILE_CONFIG");
    }
    if (o.timeout) {
        check_timeout(*o.timeout, "--timeout");
        e.timeout = o.timeout;
    } else if (const char *inherited = getenv("WRAP_LOCKFILE_TIMEOUT")) {
        check_timeout(inherited, "WRAP_LOCKFILE_TIMEOUT");
    }
    if (o.fsync) {
        check_fsync(*o.fsync, "--fsync");
        e.fsync = o.fsync;
    } else if (const char *inherited = getenv("WRAP_LOCKFILE_FSYNC")) {
        check_fsync(inherited, "WRAP_LOCKFILE_FSYNC");
    }
    if (o.lock_backend) {
        check_lock_backend(*o.lock_backend, "--lock-backend");
        e.lock_backend = o.lock_backend;
    } else if (const char *inherited = getenv("WRAP_LOCKFILE_LOCK_BACKEND")) {
        check_lock_backend(inherited, "WRAP_LOCKFILE_LOCK_BACKEND");
    }
    if (o.keep_lock_files) {
        e.keep_lock_files = "1";
    } else if (const char *inherited = getenv("WRAP_LOCKFILE_KEEP_LOCK_FILES")) {
        check_keep_lock_files(inherited, "WRAP_LOCKFILE_KEEP_LOCK_FILES");
    }
    if (o.log) {
        e.log = *o.log == "stderr" ? *o.log : absolute_path(*o.log, cwd);
        check_log(*e.log, "--log");
    } else if (o.verbose) {
        e.log = "stderr";
    } else if (const char *inherited = getenv("WRAP_LOCKFILE_LOG")) {
        check_log(inherited, "WRAP_LOCKFILE_LOG");
    }
    return e;
}

// ---- ELF inspection: would the dynamic loader apply LD_PRELOAD? ----
// The checks themselves are in shim/linux/elf_check.hpp, shared with the preload object.

using ElfInfo = detail::ElfId;

std::optional<ElfInfo> read_elf(int fd) {
    ElfInfo info{};
    if (!detail::read_elf_id(fd, &info)) return std::nullopt;
    return info;
}

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

// Why COMMAND's files could not be protected, or "" when they can. A '#!'
// script is judged by its interpreter, one level deep.
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

// ---- preload object ----

std::string self_dir() {
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return "";
    std::string exe(buf, static_cast<size_t>(n));
    return exe.substr(0, exe.rfind('/'));
}

// The preload object's absolute, symlink-free path, checked to load.
std::string find_preload(ElfInfo &info) {
    std::string candidate;
    if (const char *forced = getenv("WRAP_LOCKFILE_PRELOAD")) {
        if (!*forced) fail("WRAP_LOCKFILE_PRELOAD: empty path");
        candidate = forced;
    } else {
        // Next to the launcher (a relocated install), the build tree, then
        // the configured install location.
        std::string dir = self_dir();
        std::vector<std::string> places;
        if (!dir.empty()) {
            places.push_back(dir + "/" + kPreloadName);
            places.push_back(dir + "/preload/" + kPreloadName);
        }
        places.push_back(WLF_PRELOAD_INSTALLED);
        for (const std::string &p : places) {
            if (access(p.c_str(), F_OK) == 0) {
                candidate = p;
                break;
            }
        }
        if (candidate.empty()) {
            std::string list;
            for (const std::string &p : places) list += (list.empty() ? "" : ", ") + p;
            fail(std::string("cannot find the preload object ") + kPreloadName + " (looked for " + list +
                 "; set WRAP_LOCKFILE_PRELOAD to its path)");
        }
    }
    char *real = realpath(candidate.c_str(), nullptr);
    if (!real) fail("cannot load the preload object " + candidate + ": " + error_text(errno));
    std::string path = real;
    free(real);
    // ':' and ' ' separate LD_PRELOAD entries; no quoting exists.
    if (path.find_first_of(": \t") != std::string::npos)
        fail("the preload object's path " + quoted(path) + " contains a character that separates LD_PRELOAD entries");
    if (!dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL))
        fail("cannot load the preload object " + path + ": " + dlerror());
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    std::optional<ElfInfo> elf = fd >= 0 ? read_elf(fd) : std::nullopt;
    if (fd >= 0) close(fd);
    if (!elf) fail("cannot read the ELF headers of the preload object " + path);
    info = *elf;
    // The preload object is built with this launcher: the loader running us
    // is the one it needs.
    ElfInfo self;
    detail::native_id(&self);
    std::memcpy(info.interp, self.interp, sizeof info.interp);
    return path;
}

bool same_file(const std::string &a, const struct stat &b) {
    struct stat st;
    return stat(a.c_str(), &st) == 0 && st.st_dev == b.st_dev && st.st_ino == b.st_ino;
}

// The preload object first, so its interposers wrap any other preloaded
// ones; other entries kept in order; earlier copies of it dropped.
std::string composed_ld_preload(const std::string &preload) {
    std::string out = preload;
    const char *existing = getenv("LD_PRELOAD");
    if (!existing) return out;
    struct stat self;
    bool have_self = stat(preload.c_str(), &self) == 0;
    std::string_view rest = existing;
    while (!rest.empty()) {
        size_t end = rest.find_first_of(": ");  // the separators ld.so accepts
        std::string entry(rest.substr(0, end));
        rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
        if (entry.empty() || entry == preload || (have_self && same_file(entry, self))) continue;
        out += ':' + entry;
    }
    return out;
}

// ---- COMMAND ----

bool is_runnable(const std::string &path, int &err) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
        err = errno;
        return false;
    }
    if (S_ISDIR(st.st_mode)) {
        err = EISDIR;
        return false;
    }
    if (!S_ISREG(st.st_mode) || faccessat(AT_FDCWD, path.c_str(), X_OK, AT_EACCESS) != 0) {
        err = EACCES;
        return false;
    }
    return true;
}

// The file execvp would run for `command`, or a failure with 127 (not
// found) or 126 (found but not runnable).
std::string resolve_command(const std::string &command) {
    int err = ENOENT;
    if (command.find('/') != std::string::npos) {
        if (is_runnable(command, err)) return command;
    } else if (!command.empty()) {
        const char *path = getenv("PATH");
        std::string_view dirs = path ? path : "/bin:/usr/bin";  // glibc execvp's default
        bool denied = false;
        for (;;) {
            size_t end = dirs.find(':');
            std::string dir(dirs.substr(0, end));
            std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + command;
            int e = 0;
            if (is_runnable(candidate, e)) return candidate;
            // Like execvp: an entry that exists but cannot run is remembered
            // and the search goes on.
            if (e != ENOENT && e != ENOTDIR) denied = true;
            if (end == std::string_view::npos) break;
            dirs = dirs.substr(end + 1);
        }
        err = denied ? EACCES : ENOENT;
    }
    fail(command + ": " + error_text(err), err == ENOENT ? kExitNotFound : kExitCannotRun);
}

void set_env(const char *name, const std::optional<std::string> &value) {
    if (value && setenv(name, value->c_str(), 1) != 0) fail(std::string("cannot set ") + name + ": " + error_text(errno));
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

    set_env("WRAP_LOCKFILE_RULES", e.replace);
    set_env("WRAP_LOCKFILE_LOCK_ONLY", e.lock_only);
    set_env("WRAP_LOCKFILE_EXCLUDE", e.exclude);
    set_env("WRAP_LOCKFILE_CONFIG", e.config);
    set_env("WRAP_LOCKFILE_TIMEOUT", e.timeout);
    set_env("WRAP_LOCKFILE_FSYNC", e.fsync);
    set_env("WRAP_LOCKFILE_LOCK_BACKEND", e.lock_backend);
    set_env("WRAP_LOCKFILE_KEEP_LOCK_FILES", e.keep_lock_files);
    set_env("WRAP_LOCKFILE_LOG", e.log);
    set_env("LD_PRELOAD", composed_ld_preload(preload));

    std::fflush(stdout);
    execv(file.c_str(), argv + opts->command_index);
    int err = errno;
    fail(command + ": " + error_text(err), err == ENOENT ? kExitNotFound : kExitCannotRun);
}

}  // namespace

int main(int argc, char **argv) {
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
