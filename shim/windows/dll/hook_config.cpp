// The hook DLL's configuration (hook_config.hpp).
#include "hook_config.hpp"

#include "config.hpp"
#include "normalize.hpp"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::dll {

Config g_config;

namespace {

// A variable's value as UTF-8 (config::EnvReader), or null when it is unset,
// empty or too long; valid until the next call.
const char *env_value(const char *var) {
    static char value[16384];  // DllMain runs once: no need for the stack
    wchar_t wname[64], wval[4096];
    if (!MultiByteToWideChar(CP_UTF8, 0, var, -1, wname, 64)) return nullptr;
    DWORD n = GetEnvironmentVariableW(wname, wval, 4096);
    if (n == 0 || n >= 4096) return nullptr;
    return WideCharToMultiByte(CP_UTF8, 0, wval, -1, value, static_cast<int>(sizeof value), nullptr, nullptr) > 1 ? value
                                                                                                         : nullptr;
}

void bad_variable(const char *var, const char *detail) { message("%s: %s; ignoring it", var, detail); }

}  // namespace

void message(const char *fmt, ...) {
    char line[1024];
    int n = snprintf(line, sizeof line, "wrap_lockfile: ");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - n - 2, fmt, ap);
    va_end(ap);
    size_t len = static_cast<size_t>(n) + (m < 0 ? 0 : m > static_cast<int>(sizeof line - n - 3) ? sizeof line - n - 3 : m);
    line[len++] = '\n';
    HANDLE out = g_config.log != INVALID_HANDLE_VALUE ? g_config.log : GetStdHandle(STD_ERROR_HANDLE);
    DWORD put;
    if (out && out != INVALID_HANDLE_VALUE) (void)WriteFile(out, line, static_cast<DWORD>(len), &put, nullptr);
}

int match_form(const wchar_t *path, char *out, size_t size) {
    wchar_t full[WLF_PATH_MAX];
    DWORD n = GetFullPathNameW(path, WLF_PATH_MAX, full, nullptr);
    if (n == 0) return EINVAL;
    if (n >= WLF_PATH_MAX) return ENAMETOOLONG;
    // "\\?\UNC\server\x" is "\\server\x", "\\?\C:\x" is "C:\x".
    const wchar_t *p = full;
    bool unc = wcsncmp(p, L"\\\\?\\UNC\\", 8) == 0;
    if (unc) p += 6;
    else if (wcsncmp(p, L"\\\\?\\", 4) == 0) p += 4;
    char utf8[WLF_PATH_MAX];
    int len = WideCharToMultiByte(CP_UTF8, 0, p, -1, utf8, sizeof utf8, nullptr, nullptr);
    if (len <= 0) return ENAMETOOLONG;
    if (unc) utf8[0] = '\\';  // "C\server" -> "\\server"
    char spelled[WLF_PATH_MAX];
    if (int rc = rules::windows_spelling(utf8, spelled, sizeof spelled)) return rc;
    return detail::normalize_path("/", spelled, out, size);
}

void load_config(HMODULE self) {
    g_config.log = GetStdHandle(STD_ERROR_HANDLE);
    GetModuleFileNameW(self, g_config.dll_path, MAX_PATH);
    wchar_t wcwd[WLF_PATH_MAX];
    char cwd[WLF_PATH_MAX];
    DWORD n = GetCurrentDirectoryW(WLF_PATH_MAX, wcwd);
    if (n == 0 || n >= WLF_PATH_MAX || match_form(wcwd, cwd, sizeof cwd)) strcpy(cwd, "/");

    config::load_rules(&g_config.rules, cwd, env_value, bad_variable);
    wlf_write_options_init(&g_config.options);
    // The same settings, names and grammar as the Linux shim (config.hpp).
    static constexpr struct {
        const char *var;
        int (*parse)(const char *, wlf_write_options *, char *, size_t);
    } kSettings[] = {{config::kTimeoutVar, config::parse_timeout},
                     {config::kFsyncVar, config::parse_fsync},
                     {config::kLockBackendVar, config::parse_lock_backend},
                     {config::kKeepLockFilesVar, config::parse_keep_lock_files}};
    for (const auto &setting : kSettings) {
        char why[160];
        const char *value = env_value(setting.var);
        if (value && setting.parse(value, &g_config.options, why, sizeof why) != 0)
            bad_variable(setting.var, why);
    }
    if (const char *value = env_value(config::kLogVar); value && strcmp(value, config::kLogToStderr) != 0) {
        wchar_t wlog[WLF_PATH_MAX];
        if (MultiByteToWideChar(CP_UTF8, 0, value, -1, wlog, WLF_PATH_MAX)) {
            HANDLE h = CreateFileW(wlog, FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr, OPEN_ALWAYS,
                                   FILE_ATTRIBUTE_NORMAL, nullptr);
            if (h != INVALID_HANDLE_VALUE) g_config.log = h;
            else bad_variable(config::kLogVar, "cannot be opened");
        }
    }
}

}  // namespace wrap_lockfile::dll
