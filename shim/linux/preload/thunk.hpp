// The real call, type-erased for the out-of-line code: resolve() finds the
// next definition of a libc symbol once; a Thunk is `pass` (the real call
// with the program's arguments), an OpenThunk the real open with the flags
// given. forget_nonnull keeps a program's NULL what it is.
#pragma once

#include <dlfcn.h>

#include <atomic>

namespace wrap_lockfile::shim {

template <class Fn>
inline Fn resolve(std::atomic<Fn> &slot, const char *name) {
    Fn fn = slot.load(std::memory_order_acquire);
    if (!fn) {
        fn = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
        slot.store(fn, std::memory_order_release);
    }
    return fn;
}

// A type-erased `pass` for the out-of-line code.
struct Thunk {
    long (*fn)(void *);
    void *ctx;
    long operator()() const { return fn(ctx); }
};
template <class F>
Thunk thunk(F &f) {
    return Thunk{[](void *p) -> long { return static_cast<long>((*static_cast<F *>(p))()); }, &f};
}

// A pointer the program passed, made a value the compiler knows nothing
// about (each wrapper does this to its pointer parameters): libc's headers
// declare many of them nonnull, which lets it fold the handlers' NULL
// checks away, and a NULL the kernel answers with EFAULT (or that statx,
// with AT_EMPTY_PATH, takes for the descriptor) then crashed the shim.
template <class T>
inline void forget_nonnull(T *&p) {
    __asm__("" : "+r"(p));
}

// The real open with the flags given, for the out-of-line code.
struct OpenThunk {
    int (*fn)(void *, int);
    void *ctx;
    int operator()(int flags) const { return fn(ctx, flags); }
};
template <class F>
OpenThunk open_thunk(F &f) {
    return OpenThunk{[](void *p, int flags) { return (*static_cast<F *>(p))(flags); }, &f};
}

}  // namespace wrap_lockfile::shim
