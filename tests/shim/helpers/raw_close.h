/* close(2) by the system call instruction itself: no interposer (libc's
 * close, syscall()) sees it. For the helpers that test closes the shim
 * cannot see. */
#pragma once

#include <sys/syscall.h>

static long raw_close(int fd) {
#if defined(__x86_64__)
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"((long)SYS_close), "D"((long)fd) : "rcx", "r11", "memory");
    return ret;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = SYS_close;
    register long x0 __asm__("x0") = fd;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8) : "memory");
    return x0;
#else
#error "raw_close: no raw system call sequence for this architecture"
#endif
}
