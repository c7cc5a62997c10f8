// Would the dynamic loader apply LD_PRELOAD to a program? Shared by the
// `atomically` launcher (which refuses such programs) and the shim (which
// commits pending replacements before exec'ing one). C-ABI layer rules: no
// libstdc++.
#pragma once

#include <cstdint>

namespace wrap_lockfile::detail {

struct ElfId {
    unsigned char elf_class;  // ELFCLASS32 / ELFCLASS64
    unsigned char data;       // ELFDATA2LSB / ELFDATA2MSB
    uint16_t machine;
    bool has_interp;  // PT_INTERP present: dynamically linked
    char interp[256];  // its path ("" if none, or longer than this holds)
};

// The class, byte order and machine of the code running this call (the
// object it is linked into), and the program interpreter (dynamic loader) of
// the running program, "" when it has none. Reads memory only.
void native_id(ElfId *out);

// Reads the ELF identity of the file open as fd. False when it is no ELF
// executable the kernel would load (execve then decides what happens).
bool read_elf_id(int fd, ElfId *out);

enum class Unprotected { no, setuid, setgid, capabilities, foreign, foreign_interp, static_binary, unreadable };

// Why the loader would ignore LD_PRELOAD for the program open as fd (no for
// "it would apply it", or for a non-ELF file). With `self`, an ELF of another
// class, byte order or machine is `foreign`, one whose program interpreter
// is not the file self->interp names (another libc's loader: musl's, a
// private glibc's) is `foreign_interp`; `found` (nullable) gets the id.
Unprotected unprotected_reason(int fd, const ElfId *self, ElfId *found);

// The same for a program path, judging a '#!' script by its interpreter
// (nested scripts as deep as the kernel follows them). `interp_error`
// (nullable) gets the errno of opening the interpreter, 0 if none; the last
// interpreter's path goes to interp[size].
Unprotected unprotected_program(const char *path, const ElfId *self, ElfId *found, char *interp, unsigned size,
                                int *interp_error);

}  // namespace wrap_lockfile::detail
