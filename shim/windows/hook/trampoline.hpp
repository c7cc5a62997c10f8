// The trampoline of an inline hook: the instructions the 5-byte patch
// overwrites ("stolen"), relocated to another address, followed by a jump
// back to the first instruction after them. Calling the trampoline is
// calling the original function. Relocation: [rip+disp32] operands get a new
// displacement, rel8/rel32 jmp, jcc and call are re-encoded (as rel32, or
// through an absolute address when the target is out of rel32 reach); what
// cannot be moved (loop/jrcxz, a branch into the stolen bytes, a function
// that ends inside them, an undecodable instruction) is refused with a
// reason. Plain C++ on byte buffers: tested anywhere. README "Windows".
#pragma once

#include <cstddef>
#include <cstdint>

namespace wrap_lockfile::hook {

// The bytes a near jump takes (E9 rel32).
constexpr size_t kPatchSize = 5;
// Room that always suffices for a trampoline: up to 5 + 14 stolen bytes,
// each instruction grown to at most 16, plus the 14-byte jump back.
constexpr size_t kTrampolineMax = 128;
// The longest stolen range: 4 bytes of the last instruction plus 15.
constexpr size_t kMaxStolen = kPatchSize - 1 + 15;

struct Trampoline {
    uint8_t code[kTrampolineMax];
    size_t size = 0;    // bytes of code used
    size_t stolen = 0;  // bytes taken from the original function
    // Where each stolen instruction starts, in the original and in `code`
    // (to move a suspended thread whose instruction pointer is in them).
    uint8_t from[kMaxStolen];
    uint8_t to[kMaxStolen];
    size_t count = 0;
};

// Builds the trampoline for the function at `src` (whose address is
// `src_addr`, with `avail` readable bytes) to live at `dst_addr`, stealing
// at least `min_stolen` bytes. Returns null on success, else a static
// sentence saying why the function cannot be hooked.
const char *build_trampoline(const uint8_t *src, uint64_t src_addr, size_t avail, uint64_t dst_addr,
                             size_t min_stolen, Trampoline *out);

// Where an instruction pointer at `src_addr + offset` inside the stolen
// bytes goes in the trampoline: the same instruction's copy (an offset into
// out->code), or -1 when `offset` is not an instruction start.
long moved_offset(const Trampoline &t, size_t offset);

// Writes "E9 rel32" from `from` to `to` into p[0..5); false when `to` is
// out of rel32 reach.
bool encode_jmp32(uint8_t *p, uint64_t from, uint64_t to);

// Writes "FF 25 00000000; dq to" (an absolute jump, 14 bytes) into p.
void encode_jmp_abs(uint8_t *p, uint64_t to);
constexpr size_t kJmpAbsSize = 14;

}  // namespace wrap_lockfile::hook
