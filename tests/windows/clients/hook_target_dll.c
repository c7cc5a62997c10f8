/* A DLL whose exports the live hook test (hook_live_test.cpp) hooks: one
 * built without optimisation (a frame prologue), one so short that it must
 * be refused (xor/ret inside the first 5 bytes). */
__declspec(dllexport) __attribute__((optimize("O0"), noinline)) int hook_target_add(int a, int b) {
    volatile int sum = a + b;
    return sum;
}

__declspec(dllexport) __attribute__((naked)) int hook_target_tiny(void) {
    __asm__("xorl %eax, %eax\n\tret\n\tint3\n\tint3\n\tint3\n\tint3");
}
