#!/usr/bin/env python3
"""Self instruction counts (Ir) per ELF object from a callgrind output file.

    callgrind_objects.py CALLGRIND.OUT   prints "OBJECT<TAB>IR" lines, then "total<TAB>IR"

Written by tools/bench.sh's instruction-count section: callgrind counts
user-space instructions, which do not move with the machine's load (system
calls count as the instructions around them, not the kernel's work). Reads
both compressed and uncompressed names; a call's cost line (after calls=)
is inclusive and is skipped, so each instruction is counted once, in the
object it executed in.
"""
import collections
import re
import sys


def main(path):
    names = {}  # (kind, id) -> name, for name compression "(id) name"
    per_obj = collections.Counter()
    ob = "?"
    skip_next = False
    events = None
    ref = re.compile(r"^\((\d+)\)(?: (.*))?$")

    def name(kind, value):
        m = ref.match(value)
        if not m:
            return value
        key = (kind, m.group(1))
        if m.group(2) is not None:
            names[key] = m.group(2)
        return names.get(key, value)

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) >= 2:
                    per_obj[ob] += int(parts[1])
                continue
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("ob="):
                ob = name("ob", line[3:])
            elif line.startswith("cob="):
                name("ob", line[4:])  # records the name only
            elif line.startswith("calls="):
                skip_next = True
            elif line.startswith(("fn=", "cfn=", "fl=", "fi=", "fe=", "cfi=", "cfl=")):
                key = line.split("=", 1)
                kind = "fn" if key[0] in ("fn", "cfn") else "fl"
                name(kind, key[1])
    if events and events[0] != "Ir":
        sys.exit(f"callgrind_objects.py: first event is {events[0]}, not Ir")
    for obj, ir in per_obj.most_common():
        print(f"{obj}\t{ir}")
    print(f"total\t{sum(per_obj.values())}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: callgrind_objects.py CALLGRIND.OUT")
    main(sys.argv[1])
