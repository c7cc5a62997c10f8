// wrap_lockfile_hook.dll's entry: reads the configuration, installs every
// hook of the table (hooks.def) on kernelbase's exports, which every way of
// opening a file or starting a process reaches (kernel32's exports jump
// there; the CRTs call them), and at a normal process exit commits what the
// program left open. A DLL that cannot install its hooks refuses to load,
// so that the launcher stops with 125 instead of running the program
// unprotected. README "Windows".
#include "hook_config.hpp"
#include "hooks.hpp"
#include "inline_hook.hpp"
#include "pending.hpp"

namespace wrap_lockfile::dll {

extern DWORD g_tls;
extern bool g_active;

namespace {

bool install_all() {
    HMODULE kernelbase = GetModuleHandleW(L"kernelbase.dll");
    if (!kernelbase) {
        message("kernelbase.dll is not loaded; nothing is protected");
        return false;
    }
    hook::HookSpec specs[] = {
#define WLF_HOOK(ret, name, params, args)                                                        \
    {reinterpret_cast<void *>(GetProcAddress(kernelbase, #name)), reinterpret_cast<void *>(hook_##name), \
     reinterpret_cast<void **>(&real_##name), #name},
#include "hooks.def"
#undef WLF_HOOK
    };
    constexpr size_t count = sizeof specs / sizeof specs[0];
    for (size_t i = 0; i < count; ++i) {
        if (!specs[i].target) {
            message("kernelbase.dll has no %s; nothing is protected", specs[i].name);
            return false;
        }
    }
    const char *why = "";
    size_t failed = 0;
    if (DWORD rc = hook::install_hooks(specs, count, &why, &failed)) {
        // Hooks already in place stay (their originals stay callable) but do nothing.
        message("cannot hook kernelbase!%s: %s (error %lu); nothing is protected", specs[failed].name, why, rc);
        return false;
    }
    return true;
}

}  // namespace

}  // namespace wrap_lockfile::dll

extern "C" BOOL WINAPI DllMain(HINSTANCE self, DWORD reason, LPVOID reserved) {
    using namespace wrap_lockfile::dll;
    if (reason == DLL_PROCESS_ATTACH) {
        DisableThreadLibraryCalls(self);
        g_tls = TlsAlloc();
        if (g_tls == TLS_OUT_OF_INDEXES) return FALSE;
        pending_init();
        load_config(self);
        if (!install_all()) return FALSE;
        g_active = true;
    } else if (reason == DLL_PROCESS_DETACH && reserved) {
        // The process is ending normally (ExitProcess): the CRT has flushed
        // its streams; what is still open is committed, as at a last close.
        TlsSetValue(g_tls, reinterpret_cast<void *>(1));
        pending_commit_all_at_exit();
    }
    return TRUE;
}
