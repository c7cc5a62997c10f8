// The length decoder (x64_decode.hpp). Opcode maps after the Intel SDM
// volume 2 appendix A, 64-bit mode only: opcodes invalid there (06, 27, 60,
// 9A, C4/C5 as LES/LDS, 62 as BOUND, ...) are refused or read as their
// 64-bit meaning (VEX, EVEX).
#include "x64_decode.hpp"

#include <cstring>

namespace wrap_lockfile::hook {

namespace {

enum Imm : uint8_t {
    kNo,      // no immediate
    kB,       // 1 byte
    kW,       // 2 bytes
    kZ,       // 2 bytes with 66, else 4
    kV,       // B8..BF: 8 with REX.W, 2 with 66, else 4
    kWB,      // enter: 2 + 1
    kMoffs,   // A0..A3: 8 bytes, 4 with 67
    kTest,    // F6/F7: ib / iz when ModRM.reg is 0 or 1
    kInvalid,
};

struct Op {
    bool modrm;
    Imm imm;
};

Op one_byte(uint8_t op) {
    if (op < 0x40) {
        if (op == 0x0F) return {false, kInvalid};  // handled by the caller
        uint8_t low = op & 7;
        if (low < 4) return {true, kNo};
        if (low == 4) return {false, kB};
        if (low == 5) return {false, kZ};
        return {false, kInvalid};  // push/pop segment, daa..aas: invalid in 64-bit mode; prefixes never get here
    }
    if (op < 0x60) return {false, kNo};  // REX never gets here; push/pop r64
    switch (op) {
    case 0x63: return {true, kNo};
    case 0x68: return {false, kZ};
    case 0x69: return {true, kZ};
    case 0x6A: return {false, kB};
    case 0x6B: return {true, kB};
    case 0x6C: case 0x6D: case 0x6E: case 0x6F: return {false, kNo};
    case 0x80: case 0x83: return {true, kB};
    case 0x81: return {true, kZ};
    case 0xA8: return {false, kB};
    case 0xA9: return {false, kZ};
    case 0xC0: case 0xC1: return {true, kB};
    case 0xC2: case 0xCA: return {false, kW};
    case 0xC6: return {true, kB};
    case 0xC7: return {true, kZ};
    case 0xC8: return {false, kWB};
    case 0xCD: return {false, kB};
    case 0xE4: case 0xE5: case 0xE6: case 0xE7: return {false, kB};
    case 0xF6: case 0xF7: return {true, kTest};
    case 0xFE: case 0xFF: return {true, kNo};
    default: break;
    }
    if (op >= 0x70 && op <= 0x7F) return {false, kB};
    if (op >= 0x84 && op <= 0x8F) return {true, kNo};
    if (op >= 0x90 && op <= 0x9F) return op == 0x9A ? Op{false, kInvalid} : Op{false, kNo};
    if (op >= 0xA0 && op <= 0xA3) return {false, kMoffs};
    if (op >= 0xA4 && op <= 0xAF) return {false, kNo};
    if (op >= 0xB0 && op <= 0xB7) return {false, kB};
    if (op >= 0xB8 && op <= 0xBF) return {false, kV};
    if (op >= 0xD0 && op <= 0xD3) return {true, kNo};
    if (op >= 0xD8 && op <= 0xDF) return {true, kNo};  // x87
    if (op >= 0xE0 && op <= 0xE3) return {false, kB};  // loop, jrcxz
    if (op == 0xE8 || op == 0xE9) return {false, kNo};  // rel32, handled by the caller
    if (op == 0xEB) return {false, kB};
    switch (op) {
    case 0x60: case 0x61: case 0x82: case 0xCE: case 0xD4: case 0xD5: case 0xD6: case 0xEA:
        return {false, kInvalid};
    default:
        return {false, kNo};  // C3, C9, CB, CC, CF, D7, EC..EF, F1, F4, F5, F8..FD
    }
}

Op two_byte(uint8_t op) {
    switch (op) {
    case 0x04: case 0x0A: case 0x0C: case 0x24: case 0x25: case 0x26: case 0x27: case 0x39: case 0x3B:
    case 0x3C: case 0x3D: case 0x3E: case 0x3F: case 0x7A: case 0x7B: case 0xA6: case 0xA7:
        return {false, kInvalid};
    case 0x05: case 0x06: case 0x07: case 0x08: case 0x09: case 0x0B: case 0x0E: case 0x77:
    case 0xA0: case 0xA1: case 0xA2: case 0xA8: case 0xA9: case 0xAA:
        return {false, kNo};
    case 0x0F: return {true, kB};  // 3DNow!: the opcode is the trailing byte
    case 0x70: case 0x71: case 0x72: case 0x73: case 0xA4: case 0xAC: case 0xBA: case 0xC2:
    case 0xC4: case 0xC5: case 0xC6:
        return {true, kB};
    default: break;
    }
    if (op >= 0x30 && op <= 0x37) return {false, kNo};  // wrmsr, rdtsc, rdmsr, rdpmc, sysenter, sysexit, getsec
    if (op >= 0x80 && op <= 0x8F) return {false, kNo};  // jcc rel32, handled by the caller
    if (op >= 0xC8 && op <= 0xCF) return {false, kNo};  // bswap
    return {true, kNo};
}

// Length of ModRM + SIB + displacement at p (ModRM at p[0]); records a
// rip-relative displacement. 0 when it runs past `avail`.
size_t modrm_length(const uint8_t *p, size_t avail, bool *rip, size_t *disp_at) {
    if (avail < 1) return 0;
    uint8_t modrm = p[0], mod = modrm >> 6, rm = modrm & 7;
    size_t n = 1;
    *rip = false;
    if (mod == 3) return n;
    if (rm == 4) {
        if (avail < 2) return 0;
        uint8_t base = p[1] & 7;
        n = 2;
        if (mod == 0 && base == 5) {
            *disp_at = n;
            n += 4;
        }
    } else if (mod == 0 && rm == 5) {
        *rip = true;
        *disp_at = n;
        n += 4;
    }
    if (mod == 1) {
        *disp_at = n;
        n += 1;
    } else if (mod == 2) {
        *disp_at = n;
        n += 4;
    }
    return n <= avail ? n : 0;
}

int32_t read32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

}  // namespace

bool decode(const uint8_t *code, size_t avail, Insn *out) {
    *out = Insn{};
    if (avail > 15) avail = 15;
    size_t i = 0;
    bool opsize = false, addrsize = false;
    // Legacy prefixes, in any order.
    for (;; ++i) {
        if (i >= avail) return false;
        uint8_t b = code[i];
        if (b == 0x66) opsize = true;
        else if (b == 0x67) addrsize = true;
        else if (b == 0xF0 || b == 0xF2 || b == 0xF3 || b == 0x2E || b == 0x36 || b == 0x3E || b == 0x26 ||
                 b == 0x64 || b == 0x65)
            ;
        else break;
    }
    bool rex_w = false;
    if ((code[i] & 0xF0) == 0x40) {
        rex_w = code[i] & 8;
        if (++i >= avail) return false;
    }
    uint8_t op = code[i];
    Op desc{};
    int map = 0;  // 0: one byte, 1: 0F, 2: 0F38, 3: 0F3A
    // VEX (C4/C5), EVEX (62) and XOP (8F with map >= 8) carry the map in their payload.
    if (op == 0xC5 || op == 0xC4 || op == 0x62 || (op == 0x8F && i + 1 < avail && (code[i + 1] & 0x1F) >= 8)) {
        size_t payload = op == 0xC5 ? 1 : op == 0x62 ? 3 : 2;
        if (i + payload + 1 >= avail) return false;
        if (op == 0xC5) map = 1;
        else if (op == 0x62) map = code[i + 1] & 3;
        else map = code[i + 1] & 0x1F;
        i += payload + 1;
        op = code[i];
        if (map == 1) desc = two_byte(op);
        else if (map == 2) desc = {true, kNo};
        else if (map == 3) desc = {true, kB};
        else if (map == 8) desc = {true, kB};   // XOP map 8: imm8
        else if (map == 9) desc = {true, kNo};
        else if (map == 10) desc = {true, kZ};  // XOP map A: imm32
        else return false;
        if (map == 1 && (op >= 0x80 && op <= 0x8F)) return false;  // no VEX branches
        desc.modrm = !(map == 1 && op == 0x77);  // every VEX/EVEX/XOP instruction has one but vzeroupper/vzeroall
        if (desc.imm == kZ) opsize = false;
    } else if (op == 0x0F) {
        if (++i >= avail) return false;
        op = code[i];
        if (op == 0x38 || op == 0x3A) {
            map = op == 0x38 ? 2 : 3;
            if (++i >= avail) return false;
            op = code[i];
            desc = {true, map == 3 ? kB : kNo};
        } else {
            map = 1;
            desc = two_byte(op);
        }
    } else {
        desc = one_byte(op);
    }
    if (desc.imm == kInvalid) return false;
    ++i;  // past the opcode byte

    bool rip = false;
    size_t disp_at = 0;
    uint8_t reg = 0;
    if (desc.modrm) {
        if (i >= avail) return false;
        reg = (code[i] >> 3) & 7;
        size_t n = modrm_length(code + i, avail - i, &rip, &disp_at);
        if (!n) return false;
        if (rip) {
            out->rel = Rel::kRipDisp32;
            out->rel_offset = static_cast<uint8_t>(i + disp_at);
        }
        i += n;
    }
    size_t imm = 0;
    switch (desc.imm) {
    case kNo: break;
    case kB: imm = 1; break;
    case kW: imm = 2; break;
    case kZ: imm = opsize ? 2 : 4; break;
    case kV: imm = rex_w ? 8 : opsize ? 2 : 4; break;
    case kWB: imm = 3; break;
    case kMoffs: imm = addrsize ? 4 : 8; break;
    case kTest: imm = reg < 2 ? (op == 0xF6 ? 1 : (opsize ? 2 : 4)) : 0; break;
    case kInvalid: return false;
    }
    // Relative branches.
    if (map == 0 && (op == 0xE8 || op == 0xE9)) {
        out->rel = op == 0xE8 ? Rel::kCall32 : Rel::kJmp32;
        out->rel_offset = static_cast<uint8_t>(i);
        imm = 4;
    } else if (map == 1 && op >= 0x80 && op <= 0x8F && desc.modrm == false) {
        out->rel = Rel::kJcc32;
        out->cond = op & 0xF;
        out->rel_offset = static_cast<uint8_t>(i);
        imm = 4;
    } else if (map == 0 && op >= 0x70 && op <= 0x7F) {
        out->rel = Rel::kJcc8;
        out->cond = op & 0xF;
        out->rel_offset = static_cast<uint8_t>(i);
    } else if (map == 0 && op == 0xEB) {
        out->rel = Rel::kJmp8;
        out->rel_offset = static_cast<uint8_t>(i);
    } else if (map == 0 && op >= 0xE0 && op <= 0xE3) {
        out->rel = Rel::kLoop8;
        out->rel_offset = static_cast<uint8_t>(i);
    }
    if (i + imm > avail) return false;
    i += imm;
    out->length = static_cast<uint8_t>(i);

    if (out->rel == Rel::kRipDisp32) out->rel_value = read32(code + out->rel_offset);
    else if (out->rel == Rel::kJmp32 || out->rel == Rel::kJcc32 || out->rel == Rel::kCall32)
        out->rel_value = read32(code + out->rel_offset);
    else if (out->rel != Rel::kNone)
        out->rel_value = static_cast<int8_t>(code[out->rel_offset]);

    if (map == 0) {
        if (op == 0xC3 || op == 0xC2 || op == 0xCB || op == 0xCA || op == 0xCF) out->flow = Flow::kRet;
        else if (op == 0xE9 || op == 0xEB) out->flow = Flow::kJmp;
        else if (op == 0xFF && (reg == 4 || reg == 5)) out->flow = Flow::kJmp;
    }
    return true;
}

}  // namespace wrap_lockfile::hook
