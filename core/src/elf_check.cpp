#include "elf_check.hpp"

#include "sysio.hpp"

#include <elf.h>
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
    for (size_t i = 0; ok && i < eh.e_phnum; ++i)
        if (ph[i].p_type == PT_INTERP) id->has_interp = true;
    free(ph);
    return ok;
}

}  // namespace

bool read_elf_id(int fd, ElfId *id) {
    unsigned char ident[EI_NIDENT];
    if (!pread_exact(fd, ident, sizeof ident, 0) || memcmp(ident, ELFMAG, SELFMAG) != 0) return false;
    *id = ElfId{ident[EI_CLASS], ident[EI_DATA], 0, false};
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
    return Unprotected::no;
}

Unprotected unprotected_program(const char *path, const ElfId *self, ElfId *found, char *interp, unsigned size,
                                int *interp_error) {
    if (interp_error) *interp_error = 0;
    if (interp && size) interp[0] = '\0';
    sys::UniqueFd fd(sys::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd) return Unprotected::unreadable;
    char head[256];
    ssize_t n = sys::pread(fd.get(), head, sizeof head - 1, 0);
    if (n < 2 || head[0] != '#' || head[1] != '!') return unprotected_reason(fd.get(), self, found);
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
    sys::UniqueFd ifd(sys::open(b, O_RDONLY | O_CLOEXEC));
    if (!ifd) {
        if (interp_error) *interp_error = errno;
        return Unprotected::unreadable;
    }
    return unprotected_reason(ifd.get(), self, found);
}

}  // namespace wrap_lockfile::detail
