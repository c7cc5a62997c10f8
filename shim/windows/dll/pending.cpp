// The pending-replacement table (pending.hpp).
#include "pending.hpp"

#include "hook_config.hpp"

#include <cstring>

namespace wrap_lockfile::dll {

namespace {

CRITICAL_SECTION g_section;

}  // namespace

PendingTable g_replacements;

void PendingSection::lock() { EnterCriticalSection(&g_section); }
void PendingSection::unlock() { LeaveCriticalSection(&g_section); }
bool PendingSection::try_lock() { return TryEnterCriticalSection(&g_section); }

void pending_init() { InitializeCriticalSection(&g_section); }

void pending_commit_all_at_exit() {
    if (g_replacements.count() == 0) return;
    g_replacements.try_for_each([](Pending *p) {
        // The program's handles die with the process; the commit is ours.
        char target[WLF_PATH_MAX];
        strncpy(target, wlf_file_target(p->file), sizeof target - 1);
        target[sizeof target - 1] = '\0';
        wlf_error err{};
        if (wlf_commit(g_replacements.remove(p), nullptr, &err) != 0) {
            char text[WLF_PATH_MAX + 256];
            message("%s (at exit; the old content of '%s' is kept)", wlf_error_format(&err, text, sizeof text), target);
        }
    });
}

}  // namespace wrap_lockfile::dll
