// An x86-64 instruction length decoder, enough for the first instructions
// of a function (the bytes an inline hook steals, trampoline.hpp): legacy
// prefixes, REX, VEX, EVEX and XOP, the one-, two- and three-byte opcode
// maps, ModRM/SIB/displacement, immediates, and what a relocation must know
// (rip-relative displacement, relative branches). Plain C++, no Windows
// headers: its test vectors run anywhere. README "Windows".
#pragma once

#include <cstddef>
#include <cstdint>

namespace wrap_lockfile::hook {

enum class Flow : uint8_t {
    kNext,      // falls through to the next instruction
    kRet,       // ret / iret: the function ends here
    kJmp,       // unconditional jump (relative or indirect): no fall-through
};

enum class Rel : uint8_t {
    kNone,
    kRipDisp32,  // a memory operand [rip + disp32]
    kJmp8,       // EB rel8
    kJmp32,      // E9 rel32
    kJcc8,       // 70..7F rel8
    kJcc32,      // 0F 80..8F rel32
    kCall32,     // E8 rel32
    kLoop8,      // E0..E3 (loop, loopcc, jrcxz): no rel32 form exists
};

struct Insn {
    uint8_t length = 0;
    Rel rel = Rel::kNone;
    Flow flow = Flow::kNext;
    uint8_t rel_offset = 0;  // where the disp32 / rel8 / rel32 starts within the instruction
    uint8_t cond = 0;        // condition code (0..15) of a jcc
    int32_t rel_value = 0;   // the displacement or branch offset, sign-extended
};

// Decodes the instruction at code[0..avail). False for bytes that are not a
// valid 64-bit instruction, or that run past `avail` or 15 bytes.
bool decode(const uint8_t *code, size_t avail, Insn *out);

}  // namespace wrap_lockfile::hook
