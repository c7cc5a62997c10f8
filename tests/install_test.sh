#!/usr/bin/env bash
# `meson install` puts the library, its headers, wrap_lockfile.pc, the
# preload object, atomically and its man page in place, and a program built
# against the installed copy with pkg-config works.
# usage: install_test.sh BUILD_DIR
set -u
build=$1
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { "$@" || { echo "FAIL: $*"; fail=1; }; }

if ! meson install -C "$build" --destdir "$tmp/root" --no-rebuild >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log"
    echo "FAIL: meson install"
    exit 1
fi
# An ASan build (tools/dev test's build-asan) installs a library that a
# program built without the sanitizer cannot load (the ASan runtime must come
# first): the unsanitized build checks the install.
if meson introspect "$build" --buildoptions | python3 -c '
import json, sys
sys.exit(0 if any(o["name"] == "b_sanitize" and o["value"] not in ("none", "") for o in json.load(sys.stdin)) else 1)'; then
    echo "SKIP: a sanitizer build; the install is checked in the plain build"
    exit 77
fi
prefix=$(meson introspect "$build" --buildoptions | python3 -c '
import json, sys
opts = {o["name"]: o["value"] for o in json.load(sys.stdin)}
print(opts["prefix"]); print(opts["libdir"]); print(opts["mandir"]); print(opts["bindir"]); print(opts["includedir"])')
{ read -r pfx; read -r libdir; read -r mandir; read -r bindir; read -r incdir; } <<<"$prefix"
abs() { case $1 in /*) echo "$tmp/root$1" ;; *) echo "$tmp/root$pfx/$1" ;; esac; }
lib=$(abs "$libdir")
check test -f "$(abs "$incdir")/wrap_lockfile/wrap_lockfile.h"
check test -f "$(abs "$incdir")/wrap_lockfile/wrap_lockfile.hpp"
check test -f "$lib/pkgconfig/wrap_lockfile.pc"
check test -f "$lib/wrap_lockfile/libwrap_lockfile_preload.so"
check test -x "$(abs "$bindir")/atomically"
check test -f "$(abs "$mandir")/man1/atomically.1"
ls "$lib"/libwrap_lockfile.so* >/dev/null 2>&1 || { echo "FAIL: no libwrap_lockfile.so in $lib"; fail=1; }

# Build a program against the installed copy, found through pkg-config.
cat >"$tmp/use.cpp" <<'CPP'
#include <wrap_lockfile/wrap_lockfile.hpp>
#include <fstream>
int main(int, char **argv) {
    wrap_lockfile::atomic_write_content_with_lock(argv[1], "installed\n");
    std::ifstream in(argv[1]);
    std::string line;
    std::getline(in, line);
    return line == "installed" ? 0 : 1;
}
CPP
pc=$(sed "s|^prefix=.*|prefix=$tmp/root$pfx|" "$lib/pkgconfig/wrap_lockfile.pc")
mkdir -p "$tmp/pc" && printf '%s\n' "$pc" >"$tmp/pc/wrap_lockfile.pc"
flags=$(PKG_CONFIG_PATH=$tmp/pc pkg-config --cflags --libs wrap_lockfile) || { echo "FAIL: pkg-config"; exit 1; }
if c++ -std=c++20 "$tmp/use.cpp" -o "$tmp/use" $flags -Wl,-rpath,"$lib" 2>"$tmp/cc.log"; then
    check "$tmp/use" "$tmp/target.txt"
else
    cat "$tmp/cc.log"
    echo "FAIL: cannot build against the installed library"
    fail=1
fi
[ $fail -eq 0 ] && echo "install: all checks passed"
exit $fail
