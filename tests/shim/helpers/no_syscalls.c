/* no_syscalls NR[,NR...] COMMAND [ARG]... (staged_meta_test.sh): runs
 * COMMAND with the listed system calls failing with ENOSYS, as on a kernel
 * that does not have them (fchmodat2 before Linux 6.6, the xattr *at calls
 * before 6.13), through a seccomp filter it and its children keep.
 * Exit: COMMAND's, or 2 (usage) or 1 (the filter could not be installed). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#endif

int main(int argc, char **argv) {
#ifndef ARCH
    fprintf(stderr, "no_syscalls: this machine's system call convention is not known here\n");
    return 1;
#else
    if (argc < 3) {
        fprintf(stderr, "usage: no_syscalls NR[,NR...] COMMAND [ARG]...\n");
        return 2;
    }
    struct sock_filter prog[64];
    unsigned n = 0;
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (char *s = argv[1], *end; *s; s = *end ? end + 1 : end) {
        long nr = strtol(s, &end, 10);
        if (end == s || (*end && *end != ',') || n + 3 > sizeof prog / sizeof prog[0]) {
            fprintf(stderr, "no_syscalls: bad list '%s'\n", argv[1]);
            return 2;
        }
        prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1);
        prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
    }
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog fprog = {.len = (unsigned short)n, .filter = prog};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) != 0) {
        fprintf(stderr, "no_syscalls: cannot install the filter: %s\n", strerror(errno));
        return 1;
    }
    execvp(argv[2], argv + 2);
    fprintf(stderr, "no_syscalls: %s: %s\n", argv[2], strerror(errno));
    return 127;
#endif
}
