// The pending-replacement table (pending.hpp).
#include "pending.hpp"

#include "hook_config.hpp"

#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::dll {

volatile LONG g_pending_count = 0;

namespace {

CRITICAL_SECTION g_lock;
Pending g_table[kMaxPending];

}  // namespace

void pending_init() { InitializeCriticalSection(&g_lock); }

PendingLock::PendingLock() { EnterCriticalSection(&g_lock); }
PendingLock::~PendingLock() { LeaveCriticalSection(&g_lock); }

Pending *pending_by_handle(HANDLE h) {
    for (Pending &p : g_table) {
        if (!p.file) continue;
        for (size_t i = 0; i < p.handle_count; ++i)
            if (p.handles[i] == h) return &p;
    }
    return nullptr;
}

Pending *pending_by_key(const char *key) {
    for (Pending &p : g_table)
        if (p.file && strcmp(p.key, key) == 0) return &p;
    return nullptr;
}

bool pending_add(wlf_file *file, HANDLE h, const char *key) {
    for (Pending &p : g_table) {
        if (p.file) continue;
        size_t n = strlen(key) + 1;
        p.key = static_cast<char *>(malloc(n));
        if (!p.key) return false;
        memcpy(p.key, key, n);
        p.file = file;
        p.handles[0] = h;
        p.handle_count = 1;
        InterlockedIncrement(&g_pending_count);
        return true;
    }
    return false;
}

bool pending_add_handle(Pending *p, HANDLE h) {
    if (p->handle_count == kMaxHandles) return false;
    p->handles[p->handle_count++] = h;
    return true;
}

bool pending_drop_handle(Pending *p, HANDLE h) {
    for (size_t i = 0; i < p->handle_count; ++i) {
        if (p->handles[i] != h) continue;
        p->handles[i] = p->handles[--p->handle_count];
        break;
    }
    return p->handle_count == 0;
}

wlf_file *pending_remove(Pending *p) {
    wlf_file *f = p->file;
    free(p->key);
    *p = Pending{};
    InterlockedDecrement(&g_pending_count);
    return f;
}

void pending_commit_all_at_exit() {
    if (g_pending_count == 0 || !TryEnterCriticalSection(&g_lock)) return;
    for (Pending &p : g_table) {
        if (!p.file) continue;
        // The program's handles die with the process; the commit is ours.
        char target[WLF_PATH_MAX];
        strncpy(target, wlf_file_target(p.file), sizeof target - 1);
        target[sizeof target - 1] = '\0';
        wlf_error err{};
        if (wlf_commit(pending_remove(&p), nullptr, &err) != 0) {
            char text[WLF_PATH_MAX + 256];
            message("%s (at exit; the old content of '%s' is kept)", wlf_error_format(&err, text, sizeof text), target);
        }
    }
    LeaveCriticalSection(&g_lock);
}

}  // namespace wrap_lockfile::dll
