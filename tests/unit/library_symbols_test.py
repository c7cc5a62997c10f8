#!/usr/bin/env python3
"""libwrap_lockfile.so exports its public API and nothing else.

  (a) every defined dynamic symbol is a wlf_* function of the C API or part of
      the C++ API in namespace wrap_lockfile (its type information and vtables
      too), never wrap_lockfile::detail, the C++ templates the library
      instantiates (std::string...) or anything else;
  (b) every function wrap_lockfile.h declares with WLF_API is exported, and
      every exported wlf_* function is declared there (nothing left over from
      an older ABI);
  (c) the soname is libwrap_lockfile.so.<WLF_ABI_VERSION of version.h>, so a
      changed ABI cannot ship under the old soname.

usage: library_symbols_test.py LIBRARY WRAP_LOCKFILE_H VERSION_H
Exit: 0 pass, 1 fail, 77 skip.
"""
import re
import shutil
import subprocess
import sys

CXX_PREFIXES = ("wrap_lockfile::", "typeinfo for wrap_lockfile::", "typeinfo name for wrap_lockfile::",
                "vtable for wrap_lockfile::")


def main():
    library, header, version_h = sys.argv[1], sys.argv[2], sys.argv[3]
    for tool in ("nm", "objdump"):
        if not shutil.which(tool):
            print("SKIP: %s (binutils) is not installed" % tool)
            return 77
    out = subprocess.run(["nm", "-D", "--defined-only", "--demangle", library], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    exported = set()
    failures = []
    for line in out.splitlines():
        # "<address> <type> <name>"; type A entries are version nodes.
        parts = line.split(None, 2)
        if len(parts) != 3 or parts[1] == "A":
            continue
        name = parts[2]
        exported.add(name)
        if re.fullmatch(r"wlf_\w+", name):
            continue
        if name.startswith(CXX_PREFIXES) and "wrap_lockfile::detail::" not in name:
            continue
        failures.append("exported but not public API: " + name)
    declared = set(re.findall(r"\bWLF_API\b[^;(]*?\b(wlf_\w+)\s*\(", open(header).read()))
    if not declared:
        failures.append("no WLF_API function found in " + header)
    for name in sorted(declared - exported):
        failures.append("declared WLF_API but not exported: " + name)
    for name in sorted(n for n in exported - declared if re.fullmatch(r"wlf_\w+", n)):
        failures.append("exported but not declared in the header: " + name)
    abi = re.search(r"#define\s+WLF_ABI_VERSION\s+(\d+)", open(version_h).read())
    dynamic = subprocess.run(["objdump", "-p", library], check=True, stdout=subprocess.PIPE, text=True).stdout
    soname = re.search(r"^\s*SONAME\s+(\S+)", dynamic, re.M)
    if not abi:
        failures.append("no WLF_ABI_VERSION in " + version_h)
    elif not soname or soname.group(1) != "libwrap_lockfile.so." + abi.group(1):
        failures.append("soname %s, want libwrap_lockfile.so.%s"
                        % (soname.group(1) if soname else "(none)", abi.group(1)))
    for f in failures:
        print("FAIL: " + f)
    if not failures:
        print("OK: %d symbols exported, all public API; %d C functions declared, all exported; soname %s"
              % (len(exported), len(declared), soname.group(1)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
