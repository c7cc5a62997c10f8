// The real call, type-erased for the out-of-line code: resolve() finds the
// next definition of a libc symbol once; a Thunk is `pass` (the real call
// with the program's arguments), an OpenThunk the real open with the flags
// given.
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
