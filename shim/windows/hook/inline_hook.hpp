// Installing inline hooks in the current process: the first bytes of a
// function become "jmp rel32" to a relay next to it (within +-2 GiB, an
// absolute jump to the hook), the stolen bytes run from a trampoline
// (trampoline.hpp) that the hook calls as the original. Every other thread
// of the process is suspended while the bytes change, and one that was
// stopped inside them is moved to their copy in the trampoline. No
// libstdc++, no exceptions (the hook DLL's rules). README "Windows".
#pragma once

#include <windows.h>

namespace wrap_lockfile::hook {

struct HookSpec {
    void *target;     // the function to hook
    void *detour;     // what calls of it reach
    void **original;  // receives the trampoline: the original function
    const char *name; // for messages
};

// Installs every hook of specs[0..count) (all threads held during the whole
// batch). Returns 0, or the Win32 error of the first one that failed with
// *why (static) saying what failed and *failed its index; hooks installed
// before it stay installed.
DWORD install_hooks(HookSpec *specs, size_t count, const char **why, size_t *failed);

}  // namespace wrap_lockfile::hook
