// The trampoline builder (trampoline.hpp).
#include "trampoline.hpp"

#include "x64_decode.hpp"

#include <cstring>

namespace wrap_lockfile::hook {

namespace {

bool fits32(int64_t v) { return v >= INT32_MIN && v <= INT32_MAX; }

void put32(uint8_t *p, int32_t v) { memcpy(p, &v, 4); }

void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

}  // namespace

bool encode_jmp32(uint8_t *p, uint64_t from, uint64_t to) {
    int64_t rel = static_cast<int64_t>(to - (from + 5));
    if (!fits32(rel)) return false;
    p[0] = 0xE9;
    put32(p + 1, static_cast<int32_t>(rel));
    return true;
}

void encode_jmp_abs(uint8_t *p, uint64_t to) {
    p[0] = 0xFF;
    p[1] = 0x25;
    put32(p + 2, 0);
    put64(p + 6, to);
}

const char *build_trampoline(const uint8_t *src, uint64_t src_addr, size_t avail, uint64_t dst_addr,
                             size_t min_stolen, Trampoline *out) {
    *out = Trampoline{};
    if (min_stolen > kPatchSize + 14) return "too many bytes to steal";
    // First pass: how many bytes are stolen, so that branches into them are recognised.
    size_t stolen = 0;
    while (stolen < min_stolen) {
        Insn insn;
        if (!decode(src + stolen, avail - stolen, &insn)) return "an instruction in its first bytes is not understood";
        stolen += insn.length;
        if (insn.flow != Flow::kNext && stolen < min_stolen) return "it ends within its first 5 bytes";
    }
    size_t at = 0, pos = 0;
    uint8_t *code = out->code;
    while (at < stolen) {
        Insn insn;
        decode(src + at, avail - at, &insn);
        uint64_t pc = dst_addr + pos;
        uint64_t end_old = src_addr + at + insn.length;
        uint64_t target = end_old + static_cast<int64_t>(insn.rel_value);
        if (insn.rel != Rel::kNone && insn.rel != Rel::kRipDisp32 && target >= src_addr &&
            target < src_addr + stolen)
            return "a branch in its first bytes jumps into them";
        if (insn.rel == Rel::kRipDisp32 && target >= src_addr && target < src_addr + stolen)
            return "an instruction in its first bytes addresses them";
        out->from[out->count] = static_cast<uint8_t>(at);
        out->to[out->count] = static_cast<uint8_t>(pos);
        ++out->count;
        switch (insn.rel) {
        case Rel::kNone:
            memcpy(code + pos, src + at, insn.length);
            pos += insn.length;
            break;
        case Rel::kRipDisp32: {
            int64_t disp = static_cast<int64_t>(target - (pc + insn.length));
            if (!fits32(disp)) return "a rip-relative operand in its first bytes cannot reach from the trampoline";
            memcpy(code + pos, src + at, insn.length);
            put32(code + pos + insn.rel_offset, static_cast<int32_t>(disp));
            pos += insn.length;
            break;
        }
        case Rel::kJmp8:
        case Rel::kJmp32:
            if (!encode_jmp32(code + pos, pc, target)) {
                encode_jmp_abs(code + pos, target);
                pos += kJmpAbsSize;
            } else {
                pos += 5;
            }
            break;
        case Rel::kJcc8:
        case Rel::kJcc32: {
            int64_t rel = static_cast<int64_t>(target - (pc + 6));
            if (fits32(rel)) {
                code[pos] = 0x0F;
                code[pos + 1] = static_cast<uint8_t>(0x80 | insn.cond);
                put32(code + pos + 2, static_cast<int32_t>(rel));
                pos += 6;
            } else {
                // The opposite condition skips an absolute jump.
                code[pos] = static_cast<uint8_t>(0x70 | (insn.cond ^ 1));
                code[pos + 1] = kJmpAbsSize;
                encode_jmp_abs(code + pos + 2, target);
                pos += 2 + kJmpAbsSize;
            }
            break;
        }
        case Rel::kCall32: {
            int64_t rel = static_cast<int64_t>(target - (pc + 5));
            if (fits32(rel)) {
                code[pos] = 0xE8;
                put32(code + pos + 1, static_cast<int32_t>(rel));
                pos += 5;
            } else {
                // call [rip+2]; jmp +8; dq target: returns to the instruction after the data.
                const uint8_t seq[] = {0xFF, 0x15, 0x02, 0x00, 0x00, 0x00, 0xEB, 0x08};
                memcpy(code + pos, seq, sizeof seq);
                put64(code + pos + sizeof seq, target);
                pos += sizeof seq + 8;
            }
            break;
        }
        case Rel::kLoop8:
            return "a loop or jrcxz in its first bytes cannot be moved";
        }
        at += insn.length;
    }
    // Back to the rest of the original function (not after a jmp or ret that
    // ended the stolen range: nothing follows it).
    Insn last;
    decode(src + out->from[out->count - 1], avail - out->from[out->count - 1], &last);
    if (last.flow == Flow::kNext) {
        uint64_t back = src_addr + stolen;
        if (encode_jmp32(code + pos, dst_addr + pos, back)) {
            pos += 5;
        } else {
            encode_jmp_abs(code + pos, back);
            pos += kJmpAbsSize;
        }
    }
    out->size = pos;
    out->stolen = stolen;
    return nullptr;
}

long moved_offset(const Trampoline &t, size_t offset) {
    for (size_t i = 0; i < t.count; ++i)
        if (t.from[i] == offset) return t.to[i];
    return -1;
}

}  // namespace wrap_lockfile::hook
