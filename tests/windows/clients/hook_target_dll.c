/* A DLL whose exports the live hook test (hook_live_test.cpp) hooks: one
 * built without optimisation (a frame prologue), one so short that it must
 * be refused (xor/ret inside the first 5 bytes); and a writer that the shim
 * test's client loads late (after the hooks are in place). */
#include <windows.h>
#include <string.h>
__declspec(dllexport) __attribute__((optimize("O0"), noinline)) int hook_target_add(int a, int b) {
    volatile int sum = a + b;
    return sum;
}

__declspec(dllexport) __attribute__((naked)) int hook_target_tiny(void) {
    __asm__("xorl %eax, %eax\n\tret\n\tint3\n\tint3\n\tint3\n\tint3");
}

__declspec(dllexport) int hook_target_write(const wchar_t *path, const char *content) {
    HANDLE h = CreateFileW(path, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) return 3;
    DWORD put;
    BOOL ok = WriteFile(h, content, (DWORD)strlen(content), &put, NULL);
    return CloseHandle(h) && ok ? 0 : 4;
}
