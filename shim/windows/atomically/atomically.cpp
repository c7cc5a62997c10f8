// atomically.exe (README "Windows"): the Windows launcher. The same options
// and checks as the Linux `atomically` (the rules and their grammars come
// from shim/common and the core), then COMMAND is started suspended, the
// hook DLL (next to this program) is loaded into it, and it runs; the exit
// code is COMMAND's own. Everything that can be wrong is reported before
// COMMAND runs: 125 for atomically's own failures (a 32-bit COMMAND and an
// injection that did not work included), 126 when COMMAND cannot be run,
// 127 when it is not found.
#include <wrap_lockfile/wrap_lockfile.h>

#include "command_line.hpp"
#include "config.hpp"
#include "config_file.hpp"
#include "image_check.hpp"
#include "inject.hpp"
#include "rules.hpp"

#include <windows.h>

#include <cstdio>
#include <cstring>
#include <cwchar>
#include <optional>
#include <string>
#include <vector>

namespace rules = wrap_lockfile::rules;
namespace config = wrap_lockfile::config;
using wrap_lockfile::win::quote_arg;

namespace {

constexpr int kExitLauncherError = 125;
constexpr int kExitCannotRun = 126;
constexpr int kExitNotFound = 127;
constexpr const wchar_t *kDllName = L"wrap_lockfile_hook.dll";

struct Failure {
    int status;
    std::string message;
};

[[noreturn]] void fail(std::string message, int status = kExitLauncherError) { throw Failure{status, std::move(message)}; }

std::string utf8(const std::wstring &w) {
    if (w.empty()) return {};
    int n = WideCharToMultiByte(CP_UTF8, 0, w.data(), static_cast<int>(w.size()), nullptr, 0, nullptr, nullptr);
    std::string s(static_cast<size_t>(n > 0 ? n : 0), '\0');
    if (n > 0) WideCharToMultiByte(CP_UTF8, 0, w.data(), static_cast<int>(w.size()), s.data(), n, nullptr, nullptr);
    return s;
}

std::wstring wide(const std::string &s) {
    if (s.empty()) return {};
    int n = MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), nullptr, 0);
    std::wstring w(static_cast<size_t>(n > 0 ? n : 0), L'\0');
    if (n > 0) MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), w.data(), n);
    return w;
}

std::string quoted(const std::string &s) { return "'" + s + "'"; }

std::string win_error(DWORD e) {
    wchar_t *text = nullptr;
    DWORD n = FormatMessageW(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                             nullptr, e, 0, reinterpret_cast<wchar_t *>(&text), 0, nullptr);
    std::wstring w = n ? std::wstring(text, n) : L"error " + std::to_wstring(e);
    if (text) LocalFree(text);
    while (!w.empty() && (w.back() == L'\n' || w.back() == L'\r' || w.back() == L'.')) w.pop_back();
    return utf8(w) + " (" + std::to_string(e) + ")";
}

std::optional<std::string> get_env(const char *name) {
    std::wstring wname = wide(name);
    DWORD n = GetEnvironmentVariableW(wname.c_str(), nullptr, 0);
    if (n == 0) return std::nullopt;
    std::wstring v(n, L'\0');
    n = GetEnvironmentVariableW(wname.c_str(), v.data(), n);
    v.resize(n);
    return utf8(v);
}

void set_env(const char *name, const std::optional<std::string> &value) {
    if (value && !SetEnvironmentVariableW(wide(name).c_str(), wide(*value).c_str()))
        fail(std::string("cannot set ") + name + ": " + win_error(GetLastError()));
}

void print_help() {
    std::fputs(
        "Usage: atomically.exe [OPTION]... [--] COMMAND [ARG]...\n"
        "Run COMMAND with the wrap_lockfile hook DLL loaded: its writes to files that\n"
        "match the rules become locked, atomic replacements (and so do its children's).\n"
        "\n"
        "  --rule GLOB          replace matching files atomically (repeatable; ';' separates globs)\n"
        "  --lock-only GLOB     only serialize writes to matching files (repeatable)\n"
        "  --exclude GLOB       never touch matching files; wins over the others (repeatable)\n"
        "                       (X.lock, when X matches --rule or --lock-only, is X's lock\n"
        "                       file: never touched either)\n"
        "  --config FILE        read rules from FILE (\"replace|lock-only|exclude GLOB\" per line)\n"
        "  --timeout SECONDS    give up waiting for a lock after SECONDS (default: wait forever)\n"
        "  --fsync full|batch|none  flush replacements to disk before renaming (default: full;\n"
        "                       batch is full here: each file is flushed before its rename)\n"
        "  --lock-backend flock|dotlock|none|auto\n"
        "                       how files are locked (default: flock, which is LockFileEx here;\n"
        "                       auto is the same)\n"
        "  --keep-lock-files    never remove <file>.lock (always so on Windows)\n"
        "  --log FILE           where the DLL's messages go ('stderr' for standard error)\n"
        "  -h, --help           show this help and exit\n"
        "  --version            show the version and exit\n"
        "\n"
        "Paths and globs are matched without regard to case, with either slash.\n"
        "Exit status: 125 if atomically fails (including when COMMAND is a 32-bit\n"
        "program or the DLL cannot be loaded into it), 126 if COMMAND cannot be run,\n"
        "127 if it is not found, otherwise the exit code of COMMAND. See README \"Windows\".\n",
        stdout);
}

struct Options {
    std::vector<std::string> replace, lock_only, exclude;
    std::optional<std::string> config, timeout, fsync, log, lock_backend;
    bool keep_lock_files = false;
    int command_index = 0;
};

std::optional<Options> parse_options(const std::vector<std::string> &argv) {
    Options o;
    size_t i = 1;
    for (; i < argv.size(); ++i) {
        std::string arg = argv[i];
        if (arg == "--") {
            ++i;
            break;
        }
        if (arg == "-h" || arg == "--help") {
            print_help();
            return std::nullopt;
        }
        if (arg == "--version") {
            std::puts("atomically (wrap_lockfile) " WLF_VERSION_STRING);
            return std::nullopt;
        }
        if (arg.size() < 2 || arg[0] != '-') break;  // COMMAND
        if (arg.rfind("--", 0) != 0) fail("unknown option " + quoted(arg) + " (see atomically --help)");
        std::string name = arg.substr(2);
        std::optional<std::string> value;
        if (size_t eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
        }
        static const char *const with_value[] = {"rule", "lock-only", "exclude", "config", "timeout", "fsync",
                                                 "lock-backend", "log"};
        bool takes = false;
        for (const char *v : with_value) takes = takes || name == v;
        if (!takes && name != "keep-lock-files") fail("unknown option " + quoted(arg) + " (see atomically --help)");
        if (takes && !value) {
            if (i + 1 >= argv.size()) fail("option --" + name + " needs a value");
            value = argv[++i];
        } else if (!takes && value) {
            fail("option --" + name + " takes no value");
        }
        if (name == "rule") o.replace.push_back(*value);
        else if (name == "lock-only") o.lock_only.push_back(*value);
        else if (name == "exclude") o.exclude.push_back(*value);
        else if (name == "config") {
            if (o.config) fail("option --config given more than once");
            o.config = *value;
        } else if (name == "timeout") o.timeout = *value;
        else if (name == "fsync") o.fsync = *value;
        else if (name == "lock-backend") o.lock_backend = *value;
        else if (name == "log") o.log = *value;
        else o.keep_lock_files = true;
    }
    if (i >= argv.size()) fail("no COMMAND given (see atomically --help)");
    o.command_index = static_cast<int>(i);
    return o;
}

// The current directory in the spelling rules match (rules.hpp).
std::string current_dir() {
    wchar_t buf[WLF_PATH_MAX];
    DWORD n = GetCurrentDirectoryW(WLF_PATH_MAX, buf);
    if (n == 0 || n >= WLF_PATH_MAX) fail("cannot determine the current directory: " + win_error(GetLastError()));
    char out[WLF_PATH_MAX];
    if (rules::windows_spelling(utf8(std::wstring(buf, n)).c_str(), out, sizeof out)) fail("current directory too long");
    return out;
}

struct ScratchRules {
    rules::RuleSet set;
    ScratchRules() = default;
    ScratchRules(const ScratchRules &) = delete;
    ~ScratchRules() { rules::clear(&set); }
};

// Validates a glob list and returns it as the DLL must see it: relative
// globs with a slash made absolute, so that a change of directory keeps
// their meaning.
std::string checked_globs(rules::Kind kind, const std::string &list, const std::string &cwd, const std::string &what) {
    ScratchRules s;
    const char *bad = nullptr;
    size_t bad_len = 0;
    if (int rc = rules::add_list(&s.set, kind, list.c_str(), cwd.c_str(), &bad, &bad_len))
        fail(what + ": invalid glob " + quoted(std::string(bad ? bad : "", bad_len)) + ": " +
             (rc == EINVAL ? "a '[' without its ']' in the same path component" : std::strerror(rc)));
    if (s.set.count == 0) fail(what + ": no glob in " + quoted(list));
    std::string out;
    for (size_t i = 0; i < s.set.count; ++i) out += (i ? ";" : "") + std::string(s.set.patterns[i].text);
    return out;
}

std::optional<std::string> merged_globs(rules::Kind kind, const char *var, const std::vector<std::string> &values,
                                        const char *option, const std::string &cwd) {
    std::optional<std::string> out = get_env(var);
    if (out) (void)checked_globs(kind, *out, cwd, var);  // passed on as it is; only its validity is checked
    for (const std::string &v : values) {
        std::string globs = checked_globs(kind, v, cwd, option);
        out = out && !out->empty() ? *out + ";" + globs : globs;
    }
    return out;
}

void check_config(const std::string &path, const std::string &cwd, const std::string &what) {
    ScratchRules s;
    rules::ConfigError err;
    if (rules::add_config_file(&s.set, path.c_str(), cwd.c_str(), &err) == 0) return;
    char text[WLF_PATH_MAX + 512];
    fail(what + " " + rules::format_config_error(path.c_str(), &err, text, sizeof text));
}

// A setting checked as the DLL will read it (config.hpp: the Linux shim's
// names and grammar).
void check_value(int (*parse)(const char *, wlf_write_options *, char *, size_t), const std::string &value,
                 const std::string &what) {
    wlf_write_options scratch;
    wlf_write_options_init(&scratch);
    char why[512];
    if (parse(value.c_str(), &scratch, why, sizeof why) != 0) fail(what + ": " + why);
}

void check_log(const std::string &path, const std::string &what) {
    if (path.empty()) fail(what + ": empty path");
    if (path == config::kLogToStderr) return;
    HANDLE h = CreateFileW(wide(path).c_str(), FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr,
                           OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (h == INVALID_HANDLE_VALUE) fail(what + " " + path + ": " + win_error(GetLastError()));
    CloseHandle(h);
}

// Sets the WRAP_LOCKFILE_* variables COMMAND (and the DLL in it) inherits.
void prepare_environment(const Options &o, const std::string &cwd) {
    set_env(config::kRulesVar, merged_globs(rules::kReplace, config::kRulesVar, o.replace, "--rule", cwd));
    set_env(config::kLockOnlyVar, merged_globs(rules::kLockOnly, config::kLockOnlyVar, o.lock_only, "--lock-only", cwd));
    set_env(config::kExcludeVar, merged_globs(rules::kExclude, config::kExcludeVar, o.exclude, "--exclude", cwd));
    auto option_or_env = [](const std::optional<std::string> &opt, const char *var, const char *option) {
        return opt ? std::pair{opt, std::string(option)} : std::pair{get_env(var), std::string(var)};
    };
    if (auto [v, what] = option_or_env(o.config, config::kConfigVar, "--config"); v) {
        // Absolute, so that COMMAND's change of directory keeps naming it.
        wchar_t full[WLF_PATH_MAX];
        DWORD n = GetFullPathNameW(wide(*v).c_str(), WLF_PATH_MAX, full, nullptr);
        if (n == 0 || n >= WLF_PATH_MAX) fail(what + " " + *v + ": " + win_error(GetLastError()));
        std::string abs = utf8(std::wstring(full, n));
        check_config(abs, cwd, what);
        set_env(config::kConfigVar, abs);
    }
    if (auto [v, what] = option_or_env(o.timeout, config::kTimeoutVar, "--timeout"); v) {
        check_value(config::parse_timeout, *v, what);
        set_env(config::kTimeoutVar, v);
    }
    if (auto [v, what] = option_or_env(o.fsync, config::kFsyncVar, "--fsync"); v) {
        check_value(config::parse_fsync, *v, what);
        set_env(config::kFsyncVar, v);
    }
    if (auto [v, what] = option_or_env(o.lock_backend, config::kLockBackendVar, "--lock-backend"); v) {
        check_value(config::parse_lock_backend, *v, what);
        set_env(config::kLockBackendVar, v);
    }
    if (o.keep_lock_files) set_env(config::kKeepLockFilesVar, std::string("1"));
    else if (auto v = get_env(config::kKeepLockFilesVar)) check_value(config::parse_keep_lock_files, *v, config::kKeepLockFilesVar);
    if (auto [v, what] = option_or_env(o.log, config::kLogVar, "--log"); v) {
        check_log(*v, what);
        set_env(config::kLogVar, v);
    }
}

std::wstring dll_path() {
    wchar_t self[WLF_PATH_MAX];
    DWORD n = GetModuleFileNameW(nullptr, self, WLF_PATH_MAX);
    if (n == 0 || n >= WLF_PATH_MAX) fail("cannot find where atomically.exe is: " + win_error(GetLastError()));
    std::wstring dir(self, n);
    dir.resize(dir.find_last_of(L"\\/") + 1);
    std::wstring path = dir + kDllName;
    if (auto forced = get_env("WRAP_LOCKFILE_HOOK_DLL")) path = wide(*forced);
    if (GetFileAttributesW(path.c_str()) == INVALID_FILE_ATTRIBUTES)
        fail("the hook DLL " + utf8(path) + " is missing: " + win_error(GetLastError()));
    return path;
}

int run(const std::vector<std::wstring> &wargs) {
    std::vector<std::string> argv;
    for (const std::wstring &w : wargs) argv.push_back(utf8(w));
    std::optional<Options> o = parse_options(argv);
    if (!o) return 0;
    std::string cwd = current_dir();
    prepare_environment(*o, cwd);
    std::wstring dll = dll_path();

    std::wstring cmdline;
    for (size_t i = static_cast<size_t>(o->command_index); i < wargs.size(); ++i)
        cmdline += (cmdline.empty() ? L"" : L" ") + quote_arg(wargs[i]);
    // Refused before it exists: under Wine without its 32-bit half the
    // backstop in inject_dll (after creation) is never reached.
    const std::wstring &name = wargs[static_cast<size_t>(o->command_index)];
    if (std::wstring image = wrap_lockfile::win_shim::find_image(name);
        !image.empty() && wrap_lockfile::win_shim::is_32bit_image(image))
        fail(quoted(argv[o->command_index]) + (image == name ? "" : " (" + utf8(image) + ")") +
             " is a 32-bit program; the hook DLL is 64-bit (README \"Windows\"); it was not run");
    STARTUPINFOW si{};
    si.cb = sizeof si;
    PROCESS_INFORMATION pi{};
    if (!CreateProcessW(nullptr, cmdline.data(), nullptr, nullptr, TRUE, CREATE_SUSPENDED, nullptr, nullptr, &si, &pi)) {
        DWORD e = GetLastError();
        bool missing = e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND || e == ERROR_INVALID_NAME;
        fail("cannot run " + quoted(argv[o->command_index]) + ": " + win_error(e), missing ? kExitNotFound : kExitCannotRun);
    }
    const char *why = "";
    if (DWORD e = wrap_lockfile::win_shim::inject_dll(pi.hProcess, dll.c_str(), &why)) {
        TerminateProcess(pi.hProcess, kExitLauncherError);
        CloseHandle(pi.hThread);
        CloseHandle(pi.hProcess);
        fail("cannot protect " + quoted(argv[o->command_index]) + ": " + why + ": " + win_error(e) +
             "; it was not run");
    }
    if (ResumeThread(pi.hThread) == static_cast<DWORD>(-1)) {
        DWORD e = GetLastError();
        TerminateProcess(pi.hProcess, kExitLauncherError);
        fail("cannot start " + quoted(argv[o->command_index]) + ": " + win_error(e));
    }
    CloseHandle(pi.hThread);
    WaitForSingleObject(pi.hProcess, INFINITE);
    DWORD code = kExitLauncherError;
    if (!GetExitCodeProcess(pi.hProcess, &code)) fail("cannot read the exit code: " + win_error(GetLastError()));
    CloseHandle(pi.hProcess);
    return static_cast<int>(code);
}

}  // namespace

int wmain(int argc, wchar_t **argv) {
    std::vector<std::wstring> args(argv, argv + argc);
    try {
        return run(args);
    } catch (const Failure &f) {
        std::fprintf(stderr, "atomically: %s\n", f.message.c_str());
        return f.status;
    }
}
