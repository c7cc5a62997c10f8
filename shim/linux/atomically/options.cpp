#include "options.hpp"

#include "failure.hpp"

#include <wrap_lockfile/version.h>

#include <cstdio>

namespace wrap_lockfile::atomically {

namespace {

void print_help() {
    std::fputs(
        "Usage: atomically [OPTION]... [--] COMMAND [ARG]...\n"
        "Run COMMAND with the wrap_lockfile shim preloaded: its writes to files that\n"
        "match the rules become locked, atomic replacements.\n"
        "\n"
        "  --rule GLOB          replace matching files atomically (repeatable; ';' separates globs)\n"
        "  --lock-only GLOB     only serialize writes to matching files (repeatable)\n"
        "  --exclude GLOB       never touch matching files; wins over the others (repeatable)\n"
        "                       (X.lock, when X matches --rule or --lock-only, is X's lock\n"
        "                       file: never touched either)\n"
        "  --config FILE        read rules from FILE (\"replace|lock-only|exclude GLOB\" per line)\n"
        "  --timeout SECONDS    give up waiting for a lock after SECONDS (default: wait forever)\n"
        "  --fsync full|batch|none  flush replacements to disk before renaming (default: full;\n"
        "                       batch: each file before its rename, each directory once, at\n"
        "                       the program's fsync/sync, exec and exit)\n"
        "  --lock-backend flock|dotlock|none|auto\n"
        "                       how files are locked (default: auto: dotlock on mounts where\n"
        "                       flock stays on this host, e.g. sshfs, NFS local_lock=flock;\n"
        "                       else flock, whose lock files stay on shared file systems)\n"
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

}  // namespace

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
        case Opt::Version: std::puts("atomically (wrap_lockfile) " WLF_VERSION_STRING); return std::nullopt;
        }
    }
    if (i >= argc) fail("no COMMAND given (see atomically --help)");
    o.command_index = i;
    return o;
}

}  // namespace wrap_lockfile::atomically
