// The hook installer (inline_hook.hpp).
#include "inline_hook.hpp"

#include "trampoline.hpp"

#include <tlhelp32.h>

#include <cstdint>
#include <cstring>

namespace wrap_lockfile::hook {

namespace {

// A slot holds one hook's relay and trampoline; a block of slots is one
// allocation hint the functions it serves.
constexpr size_t kSlotSize = 16 + kTrampolineMax;
constexpr size_t kBlockSize = 4096;
constexpr size_t kMaxBlocks = 32;
constexpr uint64_t kReach = 0x7FF00000;  // a little under 2 GiB: room for the offsets inside a block

struct Block {
    uint8_t *base;
    size_t used;
};
Block g_blocks[kMaxBlocks];
size_t g_block_count = 0;

uint64_t distance(uint64_t a, uint64_t b) { return a > b ? a - b : b - a; }

// Reserves and commits an executable page at a free address within reach of `hint`.
uint8_t *alloc_near(uint64_t hint) {
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    uint64_t gran = si.dwAllocationGranularity;
    uint64_t lo = hint > kReach ? hint - kReach : gran;
    uint64_t hi = hint + kReach;
    if (lo < reinterpret_cast<uint64_t>(si.lpMinimumApplicationAddress))
        lo = reinterpret_cast<uint64_t>(si.lpMinimumApplicationAddress);
    if (hi > reinterpret_cast<uint64_t>(si.lpMaximumApplicationAddress))
        hi = reinterpret_cast<uint64_t>(si.lpMaximumApplicationAddress);
    // Below the function first (where DLL images are not), then above it.
    for (int dir = 0; dir < 2; ++dir) {
        uint64_t at = (hint / gran) * gran;
        while (dir == 0 ? at > lo : at < hi) {
            at = dir == 0 ? at - gran : at + gran;
            MEMORY_BASIC_INFORMATION mbi;
            if (!VirtualQuery(reinterpret_cast<void *>(at), &mbi, sizeof mbi)) break;
            if (mbi.State != MEM_FREE) {
                // Skip the whole region.
                uint64_t base = reinterpret_cast<uint64_t>(mbi.AllocationBase ? mbi.AllocationBase : mbi.BaseAddress);
                uint64_t end = reinterpret_cast<uint64_t>(mbi.BaseAddress) + mbi.RegionSize;
                if (dir == 0) at = (base / gran) * gran;
                else at = ((end + gran - 1) / gran) * gran - gran;
                continue;
            }
            void *p = VirtualAlloc(reinterpret_cast<void *>(at), kBlockSize, MEM_RESERVE | MEM_COMMIT,
                                   PAGE_EXECUTE_READWRITE);
            if (p) return static_cast<uint8_t *>(p);
        }
    }
    return nullptr;
}

uint8_t *alloc_slot(uint64_t hint) {
    for (size_t i = 0; i < g_block_count; ++i) {
        Block &b = g_blocks[i];
        if (b.used + kSlotSize <= kBlockSize && distance(reinterpret_cast<uint64_t>(b.base), hint) < kReach) {
            uint8_t *slot = b.base + b.used;
            b.used += kSlotSize;
            return slot;
        }
    }
    if (g_block_count == kMaxBlocks) return nullptr;
    uint8_t *base = alloc_near(hint);
    if (!base) return nullptr;
    g_blocks[g_block_count++] = Block{base, kSlotSize};
    return base;
}

// The other threads of this process, suspended for as long as it lives.
class Freeze {
public:
    Freeze() {
        HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
        if (snap == INVALID_HANDLE_VALUE) return;
        DWORD me = GetCurrentThreadId(), pid = GetCurrentProcessId();
        THREADENTRY32 te;
        te.dwSize = sizeof te;
        for (BOOL ok = Thread32First(snap, &te); ok; ok = Thread32Next(snap, &te)) {
            if (te.th32OwnerProcessID != pid || te.th32ThreadID == me) continue;
            if (count_ == capacity_ && !grow()) break;
            HANDLE t = OpenThread(THREAD_SUSPEND_RESUME | THREAD_GET_CONTEXT | THREAD_SET_CONTEXT, FALSE,
                                  te.th32ThreadID);
            if (!t) continue;  // gone since the snapshot
            if (SuspendThread(t) == static_cast<DWORD>(-1)) {
                CloseHandle(t);
                continue;
            }
            threads_[count_++] = t;
        }
        CloseHandle(snap);
    }
    ~Freeze() {
        for (size_t i = 0; i < count_; ++i) {
            ResumeThread(threads_[i]);
            CloseHandle(threads_[i]);
        }
        if (threads_) HeapFree(GetProcessHeap(), 0, threads_);
    }
    Freeze(const Freeze &) = delete;
    Freeze &operator=(const Freeze &) = delete;

    // Moves every thread stopped inside [from, from + t.stolen) to the same
    // instruction in the trampoline at `to`.
    void move_off(uint64_t from, const Trampoline &t, uint64_t to) {
        for (size_t i = 0; i < count_; ++i) {
            CONTEXT ctx;
            memset(&ctx, 0, sizeof ctx);
            ctx.ContextFlags = CONTEXT_CONTROL;
            if (!GetThreadContext(threads_[i], &ctx)) continue;
            if (ctx.Rip < from || ctx.Rip >= from + t.stolen) continue;
            long off = moved_offset(t, static_cast<size_t>(ctx.Rip - from));
            if (off < 0) continue;  // cannot be: threads stop on instruction boundaries
            ctx.Rip = to + static_cast<uint64_t>(off);
            SetThreadContext(threads_[i], &ctx);
        }
    }

private:
    bool grow() {
        size_t cap = capacity_ ? capacity_ * 2 : 64;
        void *p = threads_ ? HeapReAlloc(GetProcessHeap(), 0, threads_, cap * sizeof(HANDLE))
                           : HeapAlloc(GetProcessHeap(), 0, cap * sizeof(HANDLE));
        if (!p) return false;
        threads_ = static_cast<HANDLE *>(p);
        capacity_ = cap;
        return true;
    }

    HANDLE *threads_ = nullptr;
    size_t count_ = 0, capacity_ = 0;
};

// Readable bytes from p on, up to `want`.
size_t readable(const uint8_t *p, size_t want) {
    MEMORY_BASIC_INFORMATION mbi;
    if (!VirtualQuery(p, &mbi, sizeof mbi) || mbi.State != MEM_COMMIT) return 0;
    size_t left = static_cast<size_t>(static_cast<const uint8_t *>(mbi.BaseAddress) + mbi.RegionSize - p);
    return left < want ? left : want;
}

DWORD install_one(Freeze &frozen, HookSpec &spec, const char **why) {
    auto *target = static_cast<uint8_t *>(spec.target);
    uint64_t at = reinterpret_cast<uint64_t>(target);
    uint8_t *slot = alloc_slot(at);
    if (!slot) {
        *why = "no memory within 2 GiB of the function for its trampoline";
        return ERROR_NOT_ENOUGH_MEMORY;
    }
    uint8_t *relay = slot, *tramp_at = slot + 16;
    Trampoline t;
    size_t avail = readable(target, 32);
    if (avail < kPatchSize) {
        *why = "the function's bytes are not readable";
        return ERROR_INVALID_ADDRESS;
    }
    if (const char *refused = build_trampoline(target, at, avail, reinterpret_cast<uint64_t>(tramp_at), kPatchSize, &t)) {
        *why = refused;
        return ERROR_NOT_SUPPORTED;
    }
    memcpy(tramp_at, t.code, t.size);
    encode_jmp_abs(relay, reinterpret_cast<uint64_t>(spec.detour));
    FlushInstructionCache(GetCurrentProcess(), slot, kSlotSize);
    uint8_t patch[kMaxStolen];
    if (!encode_jmp32(patch, at, reinterpret_cast<uint64_t>(relay))) {
        *why = "the relay is out of reach";  // alloc_slot chose it within reach
        return ERROR_INVALID_ADDRESS;
    }
    memset(patch + kPatchSize, 0xCC, t.stolen - kPatchSize);  // a stray jump into the rest traps
    DWORD old = 0;
    if (!VirtualProtect(target, t.stolen, PAGE_EXECUTE_READWRITE, &old)) {
        *why = "the function's page cannot be made writable";
        return GetLastError();
    }
    *spec.original = tramp_at;
    frozen.move_off(at, t, reinterpret_cast<uint64_t>(tramp_at));
    memcpy(target, patch, t.stolen);
    DWORD ignored;
    (void)VirtualProtect(target, t.stolen, old, &ignored);
    FlushInstructionCache(GetCurrentProcess(), target, t.stolen);
    return 0;
}

}  // namespace

DWORD install_hooks(HookSpec *specs, size_t count, const char **why, size_t *failed) {
    Freeze frozen;
    for (size_t i = 0; i < count; ++i) {
        if (DWORD rc = install_one(frozen, specs[i], why)) {
            *failed = i;
            return rc;
        }
    }
    return 0;
}

}  // namespace wrap_lockfile::hook
