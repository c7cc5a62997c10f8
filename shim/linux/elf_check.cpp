#include "elf_check.hpp"

#include "sysio.hpp"

#include <elf.h>
#include <link.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::detail {

namespace {

bool pread_exact(int fd, void *buf, size_t n, off_t off) {
    auto *p = static_cast<char *>(buf);
    while (n > 0) {
        ssize_t r = sys::pread(fd, p, n, off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= static_cast<size_t>(r);
        off += r;
    }
    return true;
}

template <class Ehdr, class Phdr>
bool read_program_headers(int fd, ElfId *id) {
    Ehdr eh;
    if (!pread_exact(fd, &eh, sizeof eh, 0)) return false;
    if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) return false;
    id->machine = eh.e_machine;
    size_t bytes = size_t{eh.e_phnum} * sizeof(Phdr);
    // The same limits as the kernel's load_elf_phdrs().
    if (eh.e_phentsize != sizeof(Phdr) || bytes == 0 || bytes > 65536) return false;
    auto *ph = static_cast<Phdr *>(malloc(bytes));
    if (!ph) return false;
    bool ok = pread_exact(fd, ph, bytes, static_cast<off_t>(eh.e_phoff));
    for (size_t i = 0; ok && i < eh.e_phnum; ++i) {
        if (ph[i].p_type != PT_INTERP) continue;
        id->has_interp = true;
        // The kernel wants a NUL-terminated path; one too long for us stays "".
        size_t n = static_cast<size_t>(ph[i].p_filesz);
        if (n >= 2 && n <= sizeof id->interp && pread_exact(fd, id->interp, n, static_cast<off_t>(ph[i].p_offset)) &&
            id->interp[n - 1] == '\0')
            break;
        id->interp[0] = '\0';
        break;
    }
    free(ph);
    return ok;
}

int find_main_interp(struct dl_phdr_info *info, size_t, void *out) {
    // The first object listed is the main program.
    auto *interp = static_cast<char *>(out);
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        if (info->dlpi_phdr[i].p_type != PT_INTERP) continue;
        const char *s = reinterpret_cast<const char *>(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
        size_t n = strnlen(s, sizeof ElfId::interp);
        if (n < sizeof ElfId::interp) memcpy(interp, s, n + 1);
    }
    return 1;
}

// Both name the same file (the loader is often reached through a symlink:
// /lib64/ld-linux-x86-64.so.2).
bool same_interp(const char *a, const char *b) {
    if (strcmp(a, b) == 0) return true;
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

}  // namespace

extern "C" const ElfW(Ehdr) __ehdr_start __attribute__((visibility("hidden")));

void native_id(ElfId *out) {
    *out = ElfId{__ehdr_start.e_ident[EI_CLASS], __ehdr_start.e_ident[EI_DATA], __ehdr_start.e_machine, false, {}};
    dl_iterate_phdr(find_main_interp, out->interp);
    out->has_interp = out->interp[0] != '\0';
}

bool read_elf_id(int fd, ElfId *id) {
    unsigned char ident[EI_NIDENT];
    if (!pread_exact(fd, ident, sizeof ident, 0) || memcmp(ident, ELFMAG, SELFMAG) != 0) return false;
    *id = ElfId{ident[EI_CLASS], ident[EI_DATA], 0, false, {}};
    // Only native byte order is parsed: a foreign one cannot match anyway.
    const unsigned char native = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB;
    if (id->data != native) return true;
    if (id->elf_class == ELFCLASS64) return read_program_headers<Elf64_Ehdr, Elf64_Phdr>(fd, id);
    if (id->elf_class == ELFCLASS32) return read_program_headers<Elf32_Ehdr, Elf32_Phdr>(fd, id);
    return false;
}

Unprotected unprotected_reason(int fd, const ElfId *self, ElfId *found) {
    struct stat st;
    if (fstat(fd, &st) != 0) return Unprotected::unreadable;
    // Set-id and file capabilities make the loader run in secure mode, where
    // it ignores LD_PRELOAD entries with a '/'.
    if (st.st_mode & S_ISUID) return Unprotected::setuid;
    if ((st.st_mode & S_ISGID) && (st.st_mode & S_IXGRP)) return Unprotected::setgid;
    if (fgetxattr(fd, "security.capability", nullptr, 0) >= 0) return Unprotected::capabilities;
    ElfId id;
    if (!read_elf_id(fd, &id)) return Unprotected::no;
    if (found) *found = id;
    if (self && (id.elf_class != self->elf_class || id.data != self->data || id.machine != self->machine))
        return Unprotected::foreign;
    if (!id.has_interp) return Unprotected::static_binary;
    // Another libc's loader would not run our glibc-built object (musl's
    // loader cannot even find its libc): nobody would commit.
    if (self && self->interp[0] && !same_interp(id.interp, self->interp)) return Unprotected::foreign_interp;
    return Unprotected::no;
}

Unprotected unprotected_program(const char *path, const ElfId *self, ElfId *found, char *interp, unsigned size,
                                int *interp_error) {
    if (interp_error) *interp_error = 0;
    if (interp && size) interp[0] = '\0';
    sys::UniqueFd fd(sys::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd) return Unprotected::unreadable;
    // The kernel follows '#!' through at most 4 more scripts (fs/exec.c).
    for (int depth = 0;; ++depth) {
        char head[256];
        ssize_t n = sys::pread(fd.get(), head, sizeof head - 1, 0);
        if (n < 2 || head[0] != '#' || head[1] != '!') return unprotected_reason(fd.get(), self, found);
        // Deeper than that, execve fails with ELOOP and says so itself.
        if (depth == 4) return Unprotected::no;
        head[n] = '\0';
        char *b = head + 2;
        while (*b == ' ' || *b == '\t') ++b;
        char *e = b;
        while (*e && *e != ' ' && *e != '\t' && *e != '\n') ++e;
        *e = '\0';
        // An empty '#!' makes execve fail with ENOEXEC, reported then.
        if (!*b) return Unprotected::no;
        if (interp && size) {
            size_t len = strnlen(b, size - 1);
            memcpy(interp, b, len);
            interp[len] = '\0';
        }
        fd.reset(sys::open(b, O_RDONLY | O_CLOEXEC));
        if (!fd) {
            if (interp_error) *interp_error = errno;
            return Unprotected::unreadable;
        }
    }
}

}  // namespace wrap_lockfile::detail
