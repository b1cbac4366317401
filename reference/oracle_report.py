"""What the baseline oracles (kivi_oracle.py, sage_oracle.py) share: reading a state tool's
binary dump, and the verdict."""


class Dump:
    """A state tool's little-endian binary dump (reference/state_tool_io.h), read in order."""

    def __init__(self, path, offset=0):
        self.raw = open(path, "rb").read()
        self.off = offset

    def take(self, dtype, count):
        import numpy as np  # only the oracles that read dumps need NumPy
        a = np.frombuffer(self.raw, dtype=dtype, count=count, offset=self.off)
        self.off += a.nbytes
        return a

    def done(self):
        """Every byte read: a dump longer than its header says is an error too."""
        assert self.off == len(self.raw), f"{len(self.raw) - self.off} bytes left over"


def verdict(name, failures, summary, compared):
    """Prints the first mismatches and the summary line; the exit status: 1 on any mismatch, or
    when nothing was compared (a vacuous pass is a failure), else 0."""
    for p in failures[:20]:
        print("MISMATCH", p)
    print(f"{name} oracle: {summary}, {len(failures)} mismatches")
    if compared == 0:
        print(f"{name} oracle: nothing was compared")
        return 1
    return 1 if failures else 0
