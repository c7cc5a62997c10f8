"""open() modes and what each does (the later upstream's helper)."""
from __future__ import annotations


class ModeBehavior:
    """What an open() mode does: read, write, append, truncate, create, must_exist, binary, exclusive."""

    def __init__(self, read: bool = False, write: bool = False, append: bool = False, truncate: bool = False,
                 create: bool = False, must_exist: bool = False, binary: bool = False,
                 exclusive: bool = False) -> None:
        self.read = read
        self.write = write
        self.append = append
        self.truncate = truncate
        self.create = create
        self.must_exist = must_exist
        self.binary = binary
        self.exclusive = exclusive

    @property
    def text(self) -> bool:
        return not self.binary

    def __repr__(self) -> str:
        return "ModeBehavior(%s)" % ", ".join("%s=%s" % kv for kv in self.__dict__.items() if kv[1])


def open_modes_behaviour(mode: str) -> ModeBehavior:
    """The behaviour of an open() mode; ValueError for an invalid one."""
    binary = "b" in mode
    base = mode.replace("b", "").replace("t", "")
    if binary and "t" in mode:
        raise ValueError("Invalid file mode: '%s'. Cannot specify both 'b' and 't'" % mode)
    allowed = ("r", "r+", "w", "w+", "a", "a+", "x", "x+")
    if base not in allowed:
        raise ValueError("Invalid file mode: '%s'. Valid modes are: %s (with optional 'b' or 't')"
                         % (mode, ", ".join(allowed)))
    return ModeBehavior(read="+" in base or base == "r", write=base != "r", append="a" in base,
                        truncate="w" in base, create=base not in ("r", "r+"), must_exist="r" in base,
                        binary=binary, exclusive="x" in base)
