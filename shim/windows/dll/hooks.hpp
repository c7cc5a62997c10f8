// The hook table (hooks.def) as C++: for each entry a pointer type, the
// original (trampoline) and the detour. README "Windows".
#pragma once

#include <windows.h>

namespace wrap_lockfile::dll {

#define WLF_HOOK(ret, name, params, args)   \
    using name##_fn = ret(WINAPI *) params; \
    extern name##_fn real_##name;           \
    ret WINAPI hook_##name params;
#include "hooks.def"
#undef WLF_HOOK

}  // namespace wrap_lockfile::dll
