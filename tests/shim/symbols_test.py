#!/usr/bin/env python3
"""The preload object's symbol surface, checked against interpose.tbl and libc.

  (a) it exports exactly the table's symbols, as global functions: nothing
      from the core, the C++ runtime or the linker leaks out;
  (b) the table is complete: for every entry, each public libc twin of it
      (*64, __*, __*_2, __*64_2, *64v2 ...) is listed too, or programs built
      with _FILE_OFFSET_BITS=64 or _FORTIFY_SOURCE would bypass the shim;
  (c) neither the object's dependencies nor a C program running with it has
      libstdc++ (or any C++ runtime) in it.
A self-check proves (b) bites: dropping any twin from the table is reported.

usage: symbols_test.py ATOMICALLY PRELOAD_OBJECT HELPER_DIR [--table interpose.tbl]
HELPER_DIR holds print_maps (tests/shim/helpers/, built by meson).
Exit: 0 pass, 1 fail, 77 a check could not run (its SKIP line says why).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.realpath(__file__))
PRELOAD_SRC = os.path.join(HERE, "..", "..", "shim", "linux", "preload")

failures = []
skipped = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def skip_check(what, why):
    """A check that could not run here: the test then ends with 77, not 0."""
    skipped.append(what)
    print(f"SKIP ({what}): {why}")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, **kw).stdout


def table_symbols(table):
    out = run([sys.executable, os.path.join(PRELOAD_SRC, "gen_interposers.py"), "--list", table])
    return set(out.split())


def libc_path():
    # The libc a dynamically linked program actually gets on this machine.
    for line in run(["ldd", "/bin/true"]).splitlines():
        m = re.match(r"\s*libc\.so\.6 => (\S+)", line)
        if m:
            return m.group(1)
    raise SystemExit("cannot find libc.so.6 in `ldd /bin/true`")


def dynamic_exports(path):
    """{name: (type, version)} of the defined dynamic symbols of path.

    Type "A" entries are version definitions (GLIBC_2.2.5 ...), not code.
    """
    syms = {}
    for line in run(["nm", "-D", "--defined-only", path]).splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[1] == "A":
            continue
        name, _, version = parts[2].partition("@")
        syms.setdefault(name, (parts[1], version.lstrip("@")))
    return syms


def public_libc_functions(libc):
    # GLIBC_PRIVATE entries (__open_nocancel ...) are libc's own internals:
    # no program links against them, so the shim need not cover them.
    return {n for n, (t, v) in dynamic_exports(libc).items() if t in "TWi" and v != "GLIBC_PRIVATE"}


def base_name(sym):
    """The plain name a symbol is a twin of: __open64_2 -> open, pwritev64v2 -> pwritev2."""
    b = sym
    if b.startswith("__"):
        b = b[2:]
    if b.endswith("_2"):
        b = b[:-2]
    b = re.sub(r"64v(\d+)$", r"\1", b)
    if b.endswith("64"):
        b = b[:-2]
    return b


def twins(base):
    """Every spelling libc uses for the large-file and fortified variants of base."""
    names = {base, base + "64", "__" + base, "__" + base + "64", "__" + base + "_2", "__" + base + "64_2"}
    m = re.match(r"(.*\D)(\d+)$", base)
    if m:  # a revision suffix: pwritev2 -> pwritev64v2 (and __pwritev64v2)
        twin = f"{m.group(1)}64v{m.group(2)}"
        names |= {twin, "__" + twin}
    return names


def completeness_problems(table, libc_funcs):
    """Libc twins of table entries that the table lacks, as readable lines."""
    problems = []
    for sym in sorted(table):
        base = base_name(sym)
        for twin in sorted(twins(base)):
            if twin in libc_funcs and twin not in table:
                problems.append(f"'{twin}' (libc twin of '{sym}') is not in interpose.tbl")
    return sorted(set(problems))


def check_exports(table, preload):
    exports = dynamic_exports(preload)
    names = set(exports)
    for missing in sorted(table - names):
        fail(f"table symbol '{missing}' is not exported by the preload object")
    for extra in sorted(names - table):
        fail(f"preload object exports '{extra}' ({exports[extra][0]}), which is not in the table")
    for name in sorted(names & table):
        t, version = exports[name]
        if t != "T":
            fail(f"'{name}' is exported as nm type '{t}', want 'T' (a global function)")
        if version:
            fail(f"'{name}' is exported with version '{version}'; the wrappers must be unversioned")
    print(f"exports: {len(names)} symbols, table: {len(table)}")
    check_hidden(preload)


def check_hidden(preload):
    """Why the equality above holds, asserted on the full symbol table.

    The linker's _init/_fini (from crti.o) are reached through DT_INIT and
    DT_FINI, not by name, and are local. The core's C API (wlf_*) is linked
    in with default visibility (WLF_API); only the version script's
    "local: *" keeps it out of .dynsym, so it must be there, but local.
    """
    symtab = {}
    for line in run(["readelf", "-sW", preload]).splitlines():
        parts = line.split()
        if len(parts) == 8 and parts[0].endswith(":") and parts[6] != "UND":
            symtab.setdefault(parts[7], set()).add(parts[4])
    if not symtab.get("wlf_open"):
        skip_check("local symbols", "the preload object is stripped")
        return
    dynamic = run(["readelf", "-d", preload])
    for name, tag in (("_init", "(INIT)"), ("_fini", "(FINI)")):
        if tag not in dynamic:
            fail(f"no {tag} entry in the preload object's dynamic section")
        if symtab.get(name, {"LOCAL"}) != {"LOCAL"}:
            fail(f"'{name}' is not local: {symtab[name]}")
    core = sorted(n for n in symtab if n.startswith("wlf_"))
    for name in core:
        if symtab[name] != {"LOCAL"}:
            fail(f"core symbol '{name}' is {symtab[name]}, want LOCAL (the version script hides the core)")
    print(f"local: _init, _fini and {len(core)} core wlf_* functions")


# the shim's families (docs/design.md); (b) completes each, this keeps a whole family
# from being dropped unnoticed.
REQUIRED = ("open", "openat", "creat", "fopen", "freopen", "fdopen", "truncate", "close", "fclose",
            "fcloseall", "close_range", "dup", "dup2", "dup3", "fcntl", "write", "pwrite", "writev",
            "pwritev", "pwritev2", "rename", "renameat", "renameat2", "link", "linkat", "execve",
            # One coherent file: every way to ask for a path's or a descriptor's identity.
            "stat", "lstat", "fstat", "fstatat", "statx", "__xstat", "__lxstat", "__fxstat", "__fxstatat",
            "access", "faccessat", "euidaccess", "eaccess",
            # Every data move into a descriptor, and syscall() for the same calls.
            "copy_file_range", "sendfile", "splice", "fallocate", "posix_fallocate", "ftruncate", "fsync",
            "syscall")


def check_completeness(table, libc, libc_funcs):
    for name in REQUIRED:
        if name not in table:
            fail(f"'{name}' (docs/design.md, 'The shim') is not in interpose.tbl")
    problems = completeness_problems(table, libc_funcs)
    for p in problems:
        fail(p + f" (exported by {libc})")
    # Some twins must exist on any glibc this runs on; if none were found the
    # libc parsing is broken and the check above proved nothing.
    for expected in ("open64", "__open_2", "__openat64_2", "fcntl64", "pwritev64v2"):
        if expected not in libc_funcs:
            fail(f"libc export parsing looks wrong: '{expected}' not found in {libc}")


def self_check(table, libc_funcs):
    """Dropping any twin from a (copy of the) table must be reported by (b)."""
    dropped = 0
    for sym in sorted(table):
        # A name whose plain form is no entry is no twin (__libc_start_main).
        if sym == base_name(sym) or base_name(sym) not in table or sym not in libc_funcs:
            continue
        copy = set(table)
        copy.discard(sym)
        if not any(f"'{sym}'" in p for p in completeness_problems(copy, libc_funcs)):
            fail(f"self-check: dropping '{sym}' from the table goes unnoticed")
        dropped += 1
    if dropped < 10:
        fail(f"self-check: only {dropped} twins in the table; expected the open/fcntl/pwrite families")
    print(f"self-check: dropping each of {dropped} twins is detected")


CXX_RUNTIME = re.compile(r"libstdc\+\+|libc\+\+|libsupc\+\+|libgcc_s")

def cxx_libs_mapped(maps):
    return sorted({line.split()[-1] for line in maps.splitlines() if CXX_RUNTIME.search(line)})


def check_no_cxx_runtime(preload, atomically, helpers):
    for line in run(["ldd", preload]).splitlines():
        if CXX_RUNTIME.search(line):
            fail(f"ldd of the preload object lists a C++ runtime: {line.strip()}")
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*?)\]", run(["readelf", "-d", preload]))
    for lib in needed:
        if not re.match(r"(libc|libm|libdl|libpthread|librt|ld-linux[-\w]*)\.so", lib):
            fail(f"preload object needs '{lib}', not part of the C runtime")
    # --no-undefined makes these link errors; this also catches a C++
    # runtime reference that libc happens to satisfy (none should).
    for line in run(["nm", "-D", "--undefined-only", preload]).splitlines():
        name = line.split()[-1].split("@")[0]
        if name.startswith(("_Z", "__gxx_", "_Unwind_")) or (
            name.startswith("__cxa_") and name not in ("__cxa_finalize", "__cxa_atexit")
        ):
            fail(f"preload object refers to the C++ runtime symbol '{name}'")

    env = dict(os.environ, LD_PRELOAD=preload)
    for key in ("WRAP_LOCKFILE_LOCK_ONLY", "WRAP_LOCKFILE_EXCLUDE", "WRAP_LOCKFILE_CONFIG", "WRAP_LOCKFILE_LOG"):
        env.pop(key, None)
    maps = run(["cat", "/proc/self/maps"], env=env)
    if preload not in maps:
        fail("LD_PRELOAD=... cat: the preload object is not mapped, so the check proves nothing")
    for lib in cxx_libs_mapped(maps):
        fail(f"cat under the preload object maps a C++ runtime: {lib}")

    exe = os.path.join(helpers, "print_maps")
    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "out.txt")
        with open(target, "w") as f:
            f.write("old\n")
        ino = os.stat(target).st_ino
        p = subprocess.run([atomically, "--rule", target, "--fsync", "none", "--", exe, target],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, WRAP_LOCKFILE_PRELOAD=preload))
        if p.returncode != 0:
            fail(f"C program under atomically: exit {p.returncode}: {p.stderr.strip()}")
            return
        if preload not in p.stdout:
            fail("C program under atomically: the preload object is not mapped")
        for lib in cxx_libs_mapped(p.stdout):
            fail(f"C program under the shim maps a C++ runtime: {lib}")
        # The shim really ran (replaced the file), so its code was exercised.
        with open(target) as f:
            content = f.read()
        if content != "new\n" or os.stat(target).st_ino == ino:
            fail(f"C program under atomically: the write was not an atomic replacement ({content!r})")


def main():
    args = sys.argv[1:]
    table = os.path.join(PRELOAD_SRC, "interpose.tbl")
    if "--table" in args:
        i = args.index("--table")
        table = args[i + 1]
        del args[i:i + 2]
    if len(args) != 3:
        print(__doc__)
        return 1
    atomically, preload, helpers = (os.path.realpath(a) for a in args)
    for tool in ("nm", "ldd", "readelf"):
        if not shutil.which(tool):
            print(f"SKIP: '{tool}' not found (binutils / libc-bin)")
            return 77

    syms = table_symbols(table)
    libc = libc_path()
    libc_funcs = public_libc_functions(libc)
    check_exports(syms, preload)
    check_completeness(syms, libc, libc_funcs)
    self_check(syms, libc_funcs)
    check_no_cxx_runtime(preload, atomically, helpers)

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    if skipped:
        print(f"{len(skipped)} check(s) skipped: {'; '.join(skipped)}; the others passed")
        return 77
    print("all symbol checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
