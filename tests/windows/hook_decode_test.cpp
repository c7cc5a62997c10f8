// The inline-hook engine's pure parts (shim/windows/hook): the x86-64
// length decoder on test vectors, and trampolines checked by decoding what
// they contain. Under Wine every kernelbase export starts with the same
// filler, so the prologues of real Windows 10/11 functions are here as byte
// vectors (shapes from disassembly listings of kernelbase.dll 10.0.19041 /
// 10.0.22621; displacements and immediates vary between builds, the
// instruction shapes are what the decoder must get right).
#include "trampoline.hpp"
#include "x64_decode.hpp"

#include "skip_aware.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

using namespace wrap_lockfile::hook;

namespace {

using Bytes = std::vector<uint8_t>;

// Lengths of the successive instructions of `code`.
std::vector<int> lengths(const Bytes &code, size_t count) {
    std::vector<int> out;
    size_t at = 0;
    for (size_t i = 0; i < count && at < code.size(); ++i) {
        Insn insn;
        if (!decode(code.data() + at, code.size() - at, &insn)) {
            out.push_back(-1);
            break;
        }
        out.push_back(insn.length);
        at += insn.length;
    }
    return out;
}

struct Vector {
    const char *what;
    Bytes code;
    int length;
    Rel rel;
};

// One instruction each: its length and relocation class.
const Vector kSingle[] = {
    {"push rbx", {0x53}, 1, Rel::kNone},
    {"push rbp with REX (MSVC hot-patch form)", {0x40, 0x55}, 2, Rel::kNone},
    {"push r12", {0x41, 0x54}, 2, Rel::kNone},
    {"sub rsp, 28h", {0x48, 0x83, 0xEC, 0x28}, 4, Rel::kNone},
    {"sub rsp, 1000h", {0x48, 0x81, 0xEC, 0x00, 0x10, 0x00, 0x00}, 7, Rel::kNone},
    {"mov [rsp+8], rcx", {0x48, 0x89, 0x4C, 0x24, 0x08}, 5, Rel::kNone},
    {"mov [rsp+10h], rbx", {0x48, 0x89, 0x5C, 0x24, 0x10}, 5, Rel::kNone},
    {"mov r11, rsp", {0x4C, 0x8B, 0xDC}, 3, Rel::kNone},
    {"mov rax, rsp", {0x48, 0x8B, 0xC4}, 3, Rel::kNone},
    {"mov [rax+8], rbx", {0x48, 0x89, 0x58, 0x08}, 4, Rel::kNone},
    {"mov eax, [rsp+0A0h]", {0x8B, 0x84, 0x24, 0xA0, 0x00, 0x00, 0x00}, 7, Rel::kNone},
    {"lea rbp, [rsp-57h]", {0x48, 0x8D, 0x6C, 0x24, 0xA9}, 5, Rel::kNone},
    {"lea rbp, [rsp-0D0h] (disp32)", {0x48, 0x8D, 0xAC, 0x24, 0x30, 0xFF, 0xFF, 0xFF}, 8, Rel::kNone},
    {"lea rax, [rip+x]", {0x48, 0x8D, 0x05, 0x10, 0x20, 0x00, 0x00}, 7, Rel::kRipDisp32},
    {"mov rax, [rip+__security_cookie]", {0x48, 0x8B, 0x05, 0xF1, 0xE0, 0x1C, 0x00}, 7, Rel::kRipDisp32},
    {"cmp byte [rip+x], 0", {0x80, 0x3D, 0x00, 0x01, 0x00, 0x00, 0x00}, 7, Rel::kRipDisp32},
    {"mov dword [rip+x], 1", {0xC7, 0x05, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00}, 10, Rel::kRipDisp32},
    {"jmp qword [rip+x] (kernel32 thunk, REX.W)", {0x48, 0xFF, 0x25, 0x21, 0x43, 0x05, 0x00}, 7, Rel::kRipDisp32},
    {"jmp qword [rip+x]", {0xFF, 0x25, 0x21, 0x43, 0x05, 0x00}, 6, Rel::kRipDisp32},
    {"call qword [rip+__imp_x]", {0xFF, 0x15, 0x9A, 0x2B, 0x11, 0x00}, 6, Rel::kRipDisp32},
    {"jmp rel32", {0xE9, 0x10, 0x00, 0x00, 0x00}, 5, Rel::kJmp32},
    {"jmp rel8", {0xEB, 0x10}, 2, Rel::kJmp8},
    {"call rel32", {0xE8, 0xFC, 0xFF, 0xFF, 0xFF}, 5, Rel::kCall32},
    {"je rel8", {0x74, 0x05}, 2, Rel::kJcc8},
    {"jne rel32", {0x0F, 0x85, 0x00, 0x01, 0x00, 0x00}, 6, Rel::kJcc32},
    {"jrcxz", {0xE3, 0x02}, 2, Rel::kLoop8},
    {"mov rax, imm64", {0x48, 0xB8, 1, 2, 3, 4, 5, 6, 7, 8}, 10, Rel::kNone},
    {"mov eax, imm32", {0xB8, 1, 2, 3, 4}, 5, Rel::kNone},
    {"mov ax, imm16", {0x66, 0xB8, 1, 2}, 4, Rel::kNone},
    {"mov rax, gs:[30h] (TEB)", {0x65, 0x48, 0x8B, 0x04, 0x25, 0x30, 0x00, 0x00, 0x00}, 9, Rel::kNone},
    {"mov rax, [moffs64]", {0x48, 0xA1, 1, 2, 3, 4, 5, 6, 7, 8}, 10, Rel::kNone},
    {"test cl, 1", {0xF6, 0xC1, 0x01}, 3, Rel::kNone},
    {"test ecx, imm32", {0xF7, 0xC1, 0x00, 0x00, 0x00, 0x40}, 6, Rel::kNone},
    {"test cx, imm16", {0x66, 0xF7, 0xC1, 0x00, 0x40}, 5, Rel::kNone},
    {"neg ecx (F7 /3, no immediate)", {0xF7, 0xD9}, 2, Rel::kNone},
    {"enter 10h, 0", {0xC8, 0x10, 0x00, 0x00}, 4, Rel::kNone},
    {"ret", {0xC3}, 1, Rel::kNone},
    {"ret 8", {0xC2, 0x08, 0x00}, 3, Rel::kNone},
    {"int3", {0xCC}, 1, Rel::kNone},
    {"endbr64", {0xF3, 0x0F, 0x1E, 0xFA}, 4, Rel::kNone},
    {"nop dword [rax+rax]", {0x0F, 0x1F, 0x44, 0x00, 0x00}, 5, Rel::kNone},
    {"nop word cs:[rax+rax+0]", {0x66, 0x2E, 0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00}, 10, Rel::kNone},
    {"Wine's filler: lea rsp, [rsp+0]", {0x48, 0x8D, 0xA4, 0x24, 0x00, 0x00, 0x00, 0x00}, 8, Rel::kNone},
    {"xor eax, eax", {0x33, 0xC0}, 2, Rel::kNone},
    {"movzx eax, byte [rcx]", {0x0F, 0xB6, 0x01}, 3, Rel::kNone},
    {"cmovne rax, rcx", {0x48, 0x0F, 0x45, 0xC1}, 4, Rel::kNone},
    {"lock cmpxchg [rdx], ecx", {0xF0, 0x0F, 0xB1, 0x0A}, 4, Rel::kNone},
    {"movaps [rsp+20h], xmm6", {0x0F, 0x29, 0x74, 0x24, 0x20}, 5, Rel::kNone},
    {"movdqa xmm0, [rip+x]", {0x66, 0x0F, 0x6F, 0x05, 0x00, 0x10, 0x00, 0x00}, 8, Rel::kRipDisp32},
    {"pshufd xmm0, xmm1, 1Bh", {0x66, 0x0F, 0x70, 0xC1, 0x1B}, 5, Rel::kNone},
    {"pshufb xmm0, xmm1 (0F 38)", {0x66, 0x0F, 0x38, 0x00, 0xC1}, 5, Rel::kNone},
    {"palignr xmm0, xmm1, 8 (0F 3A)", {0x66, 0x0F, 0x3A, 0x0F, 0xC1, 0x08}, 6, Rel::kNone},
    {"vzeroupper (VEX2)", {0xC5, 0xF8, 0x77}, 3, Rel::kNone},
    {"vmovdqu xmm0, [rip+x] (VEX2)", {0xC5, 0xFA, 0x6F, 0x05, 0x00, 0x10, 0x00, 0x00}, 8, Rel::kRipDisp32},
    {"vpalignr xmm0, xmm0, xmm1, 8 (VEX3 0F3A)", {0xC4, 0xE3, 0x79, 0x0F, 0xC1, 0x08}, 6, Rel::kNone},
    {"vpbroadcastb ymm0, xmm1 (VEX3 0F38)", {0xC4, 0xE2, 0x7D, 0x78, 0xC1}, 5, Rel::kNone},
    {"vmovups zmm0, [rip+x] (EVEX)", {0x62, 0xF1, 0x7C, 0x48, 0x10, 0x05, 0x00, 0x10, 0x00, 0x00}, 10, Rel::kRipDisp32},
    {"vmovups [rsp+40h], zmm1 (EVEX, disp8*N)", {0x62, 0xF1, 0x7C, 0x48, 0x11, 0x4C, 0x24, 0x01}, 8, Rel::kNone},
    {"syscall", {0x0F, 0x05}, 2, Rel::kNone},
    {"mov r10, rcx (ntdll stub)", {0x4C, 0x8B, 0xD1}, 3, Rel::kNone},
};

TEST(HookDecode, SingleInstructions) {
    for (const Vector &v : kSingle) {
        Bytes padded = v.code;
        padded.resize(padded.size() + 16, 0xCC);  // as in a real function: more bytes follow
        Insn insn;
        ASSERT_TRUE(decode(padded.data(), padded.size(), &insn)) << v.what;
        EXPECT_EQ(insn.length, v.length) << v.what;
        EXPECT_EQ(insn.rel, v.rel) << v.what;
        // Cut one byte short: never read past the end.
        Insn cut;
        EXPECT_FALSE(decode(v.code.data(), v.code.size() - 1, &cut)) << v.what;
    }
}

TEST(HookDecode, RelocationFields) {
    Insn insn;
    const uint8_t lea[] = {0x48, 0x8D, 0x05, 0x10, 0x20, 0x00, 0x00};
    ASSERT_TRUE(decode(lea, sizeof lea, &insn));
    EXPECT_EQ(insn.rel_offset, 3);
    EXPECT_EQ(insn.rel_value, 0x2010);
    const uint8_t imm_after_disp[] = {0xC7, 0x05, 0xF0, 0xFF, 0xFF, 0xFF, 0x01, 0x00, 0x00, 0x00};
    ASSERT_TRUE(decode(imm_after_disp, sizeof imm_after_disp, &insn));
    EXPECT_EQ(insn.rel_offset, 2);
    EXPECT_EQ(insn.rel_value, -16);
    const uint8_t jl[] = {0x7C, 0xF0};
    ASSERT_TRUE(decode(jl, sizeof jl, &insn));
    EXPECT_EQ(insn.cond, 0xC);
    EXPECT_EQ(insn.rel_value, -16);
    const uint8_t ret[] = {0xC3}, jmp_ind[] = {0xFF, 0xE0};
    ASSERT_TRUE(decode(ret, 1, &insn));
    EXPECT_EQ(insn.flow, Flow::kRet);
    ASSERT_TRUE(decode(jmp_ind, 2, &insn));
    EXPECT_EQ(insn.flow, Flow::kJmp);
}

TEST(HookDecode, InvalidIn64BitMode) {
    for (uint8_t op : {0x06, 0x07, 0x27, 0x37, 0x60, 0x9A, 0xD4, 0xEA}) {
        uint8_t code[16] = {op};
        Insn insn;
        EXPECT_FALSE(decode(code, sizeof code, &insn)) << int(op);
    }
    // More than 15 bytes of prefixes.
    uint8_t prefixes[20];
    memset(prefixes, 0x66, sizeof prefixes);
    Insn insn;
    EXPECT_FALSE(decode(prefixes, sizeof prefixes, &insn));
}

// Prologues as whole sequences: the instruction lengths up to and past the 5 stolen bytes.
TEST(HookDecode, WindowsKernelbasePrologues) {
    // CreateFileW (10.0.19041): sub rsp,58h; mov eax,[rsp+0A0h]; ...
    EXPECT_EQ(lengths({0x48, 0x83, 0xEC, 0x58, 0x8B, 0x84, 0x24, 0xA0, 0x00, 0x00, 0x00, 0x83, 0x64, 0x24, 0x48, 0x00}, 3),
              (std::vector<int>{4, 7, 5}));
    // CreateFile2: mov r11,rsp; sub rsp,68h; and qword [r11-38h],0; test r9,r9; je
    EXPECT_EQ(lengths({0x4C, 0x8B, 0xDC, 0x48, 0x83, 0xEC, 0x68, 0x49, 0x83, 0x63, 0xC8, 0x00, 0x4D, 0x85, 0xC9,
                       0x74, 0x30},
                      5),
              (std::vector<int>{3, 4, 5, 3, 2}));
    // CloseHandle: mov [rsp+8],rbx; push rdi; sub rsp,20h; mov rdi,rcx
    EXPECT_EQ(lengths({0x48, 0x89, 0x5C, 0x24, 0x08, 0x57, 0x48, 0x83, 0xEC, 0x20, 0x48, 0x8B, 0xF9}, 4),
              (std::vector<int>{5, 1, 4, 3}));
    // CreateProcessInternalW: push rbp (40 55); push rbx; push rsi; push rdi; push r12..r15;
    // lea rbp,[rsp-...]; sub rsp,imm32; mov rax,[rip+cookie]; xor rax,rsp
    EXPECT_EQ(lengths({0x40, 0x55, 0x53, 0x56, 0x57, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57, 0x48, 0x8D,
                       0xAC, 0x24, 0x50, 0xF9, 0xFF, 0xFF, 0x48, 0x81, 0xEC, 0xB0, 0x07, 0x00, 0x00, 0x48, 0x8B,
                       0x05, 0x11, 0x22, 0x33, 0x00, 0x48, 0x33, 0xC4},
                      12),
              (std::vector<int>{2, 1, 1, 1, 2, 2, 2, 2, 8, 7, 7, 3}));
    // Windows 11 CreateFileW: mov rax,rsp; mov [rax+8],rbx; mov [rax+10h],rsi; push rdi; sub rsp,60h
    EXPECT_EQ(lengths({0x48, 0x8B, 0xC4, 0x48, 0x89, 0x58, 0x08, 0x48, 0x89, 0x70, 0x10, 0x57, 0x48, 0x83, 0xEC,
                       0x60},
                      5),
              (std::vector<int>{3, 4, 4, 1, 4}));
    // kernel32 export forwarding into kernelbase: jmp qword [rip+__imp_CreateFileW]; int3 padding
    EXPECT_EQ(lengths({0x48, 0xFF, 0x25, 0x21, 0x43, 0x05, 0x00, 0xCC, 0xCC}, 2), (std::vector<int>{7, 1}));
}

// The target a relocated instruction at code[at] (living at `addr`) refers to.
uint64_t target_of(const uint8_t *code, size_t avail, uint64_t addr, Insn *insn) {
    EXPECT_TRUE(decode(code, avail, insn));
    return addr + insn->length + static_cast<int64_t>(insn->rel_value);
}

constexpr uint64_t kSrc = 0x7FF812340000;

TEST(HookTrampoline, PlainPrologueCopiedAndJumpsBack) {
    const uint8_t fn[] = {0x48, 0x83, 0xEC, 0x58, 0x8B, 0x84, 0x24, 0xA0, 0x00, 0x00, 0x00, 0x90, 0x90};
    Trampoline t;
    uint64_t dst = kSrc - 0x10000;
    ASSERT_EQ(build_trampoline(fn, kSrc, sizeof fn, dst, kPatchSize, &t), nullptr);
    EXPECT_EQ(t.stolen, 11u);
    ASSERT_EQ(t.size, 11u + 5);
    EXPECT_EQ(memcmp(t.code, fn, 11), 0);
    Insn insn;
    EXPECT_EQ(target_of(t.code + 11, t.size - 11, dst + 11, &insn), kSrc + 11);
    EXPECT_EQ(insn.rel, Rel::kJmp32);
    EXPECT_EQ(moved_offset(t, 4), 4);
    EXPECT_EQ(moved_offset(t, 2), -1);
}

TEST(HookTrampoline, RipRelativeDisplacementFixed) {
    // lea rax,[rip+2010h]; push rbx
    const uint8_t fn[] = {0x48, 0x8D, 0x05, 0x10, 0x20, 0x00, 0x00, 0x53, 0xCC};
    for (uint64_t dst : {kSrc - 0x7000000, kSrc + 0x40000000}) {
        Trampoline t;
        ASSERT_EQ(build_trampoline(fn, kSrc, sizeof fn, dst, kPatchSize, &t), nullptr);
        EXPECT_EQ(t.stolen, 7u);
        Insn insn;
        EXPECT_EQ(target_of(t.code, t.size, dst, &insn), kSrc + 7 + 0x2010);
        EXPECT_EQ(insn.rel, Rel::kRipDisp32);
    }
    // Out of reach of the trampoline: refused, not mis-relocated.
    Trampoline t;
    EXPECT_NE(build_trampoline(fn, kSrc, sizeof fn, kSrc + 0x100000000ull, kPatchSize, &t), nullptr);
}

TEST(HookTrampoline, JccRel8InsideStolenRangeReEncoded) {
    // test rcx,rcx; je +20h; sub rsp,28h
    const uint8_t fn[] = {0x48, 0x85, 0xC9, 0x74, 0x20, 0x48, 0x83, 0xEC, 0x28, 0xCC};
    uint64_t dst = kSrc + 0x1000;
    Trampoline t;
    ASSERT_EQ(build_trampoline(fn, kSrc, sizeof fn, dst, kPatchSize, &t), nullptr);
    EXPECT_EQ(t.stolen, 5u);
    Insn insn;
    EXPECT_EQ(target_of(t.code + 3, t.size - 3, dst + 3, &insn), kSrc + 5 + 0x20);
    EXPECT_EQ(insn.rel, Rel::kJcc32);
    EXPECT_EQ(insn.cond, 4);  // still "equal"
    EXPECT_EQ(target_of(t.code + 9, t.size - 9, dst + 9, &insn), kSrc + 5);
    EXPECT_EQ(moved_offset(t, 3), 3);
}

TEST(HookTrampoline, FarJccBecomesInvertedSkipOverAbsoluteJump) {
    const uint8_t fn[] = {0x48, 0x85, 0xC9, 0x75, 0x20, 0x90, 0xCC};
    uint64_t dst = kSrc + 0x200000000ull;  // far beyond rel32
    Trampoline t;
    ASSERT_EQ(build_trampoline(fn, kSrc, sizeof fn, dst, kPatchSize, &t), nullptr);
    // 74 0E (je: the inverse of jne) over FF 25 00000000 <target>
    EXPECT_EQ(t.code[3], 0x74);
    EXPECT_EQ(t.code[4], kJmpAbsSize);
    EXPECT_EQ(t.code[5], 0xFF);
    EXPECT_EQ(t.code[6], 0x25);
    uint64_t abs;
    memcpy(&abs, t.code + 11, 8);
    EXPECT_EQ(abs, kSrc + 5 + 0x20);
    // and the way back is absolute too
    memcpy(&abs, t.code + 3 + 16 + 6, 8);
    EXPECT_EQ(abs, kSrc + 5);
}

TEST(HookTrampoline, JmpRel32AtStartIsFollowed) {
    // A function that is a jump elsewhere (a thunk): nothing to jump back to.
    const uint8_t fn[] = {0xE9, 0x00, 0x10, 0x00, 0x00, 0xCC, 0xCC};
    uint64_t dst = kSrc - 0x100000;
    Trampoline t;
    ASSERT_EQ(build_trampoline(fn, kSrc, sizeof fn, dst, kPatchSize, &t), nullptr);
    EXPECT_EQ(t.stolen, 5u);
    EXPECT_EQ(t.size, 5u);
    Insn insn;
    EXPECT_EQ(target_of(t.code, t.size, dst, &insn), kSrc + 5 + 0x1000);
}

TEST(HookTrampoline, CallRel32Relocated) {
    // call +100h; mov rcx,rax
    const uint8_t fn[] = {0xE8, 0x00, 0x01, 0x00, 0x00, 0x48, 0x8B, 0xC8};
    uint64_t dst = kSrc + 0x123456;
    Trampoline t;
    ASSERT_EQ(build_trampoline(fn, kSrc, sizeof fn, dst, kPatchSize, &t), nullptr);
    Insn insn;
    EXPECT_EQ(target_of(t.code, t.size, dst, &insn), kSrc + 5 + 0x100);
    EXPECT_EQ(insn.rel, Rel::kCall32);
    // Far: call [rip+2]; jmp +8; dq target
    Trampoline far;
    ASSERT_EQ(build_trampoline(fn, kSrc, sizeof fn, kSrc + 0x300000000ull, kPatchSize, &far), nullptr);
    EXPECT_EQ(far.code[0], 0xFF);
    EXPECT_EQ(far.code[1], 0x15);
    uint64_t abs;
    memcpy(&abs, far.code + 8, 8);
    EXPECT_EQ(abs, kSrc + 5 + 0x100);
}

TEST(HookTrampoline, Refusals) {
    Trampoline t;
    const uint8_t short_fn[] = {0x33, 0xC0, 0xC3, 0xCC, 0xCC, 0xCC};  // xor eax,eax; ret
    const char *why = build_trampoline(short_fn, kSrc, sizeof short_fn, kSrc + 0x1000, kPatchSize, &t);
    ASSERT_NE(why, nullptr);
    EXPECT_NE(strstr(why, "ends within"), nullptr);
    const uint8_t loop[] = {0x90, 0xE3, 0x02, 0x90, 0x90, 0x90};  // nop; jrcxz
    EXPECT_NE(build_trampoline(loop, kSrc, sizeof loop, kSrc + 0x1000, kPatchSize, &t), nullptr);
    const uint8_t into[] = {0x90, 0x90, 0x74, 0xFC, 0x90, 0x90};  // je back to the first nop
    why = build_trampoline(into, kSrc, sizeof into, kSrc + 0x1000, kPatchSize, &t);
    ASSERT_NE(why, nullptr);
    EXPECT_NE(strstr(why, "into them"), nullptr);
    const uint8_t bad[] = {0x06, 0x90, 0x90, 0x90, 0x90, 0x90};
    EXPECT_NE(build_trampoline(bad, kSrc, sizeof bad, kSrc + 0x1000, kPatchSize, &t), nullptr);
}

TEST(HookTrampoline, WineFillerAndKernel32Thunk) {
    const uint8_t wine[] = {0x48, 0x8D, 0xA4, 0x24, 0x00, 0x00, 0x00, 0x00, 0x55, 0x48, 0x89, 0xE5};
    Trampoline t;
    ASSERT_EQ(build_trampoline(wine, kSrc, sizeof wine, kSrc - 0x5000, kPatchSize, &t), nullptr);
    EXPECT_EQ(t.stolen, 8u);
    const uint8_t thunk[] = {0x48, 0xFF, 0x25, 0x21, 0x43, 0x05, 0x00, 0xCC};
    uint64_t dst = kSrc + 0x7000;
    ASSERT_EQ(build_trampoline(thunk, kSrc, sizeof thunk, dst, kPatchSize, &t), nullptr);
    EXPECT_EQ(t.size, 7u);  // the jmp through memory, relocated; no jump back after it
    Insn insn;
    EXPECT_EQ(target_of(t.code, t.size, dst, &insn), kSrc + 7 + 0x54321);
}

}  // namespace

int main(int argc, char **argv) {
    testing::InitGoogleTest(&argc, argv);
    return wlf_test::skip_aware_result(RUN_ALL_TESTS());
}
