"""The verdict shared by the baseline oracles (kivi_oracle.py, sage_oracle.py)."""


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
