#!/usr/bin/env python3
"""Executes every notebook in notebooks/ headless (nbclient, pinned in requirements.txt) against
the committed default-sweep results, failing on the first cell that raises. Outputs go to a
scratch folder; the notebooks in the tree are not modified.

usage: run_notebooks.py <scratch dir>
"""
import glob
import os
import sys

import nbformat
from nbclient import NotebookClient


def main(scratch):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.makedirs(scratch, exist_ok=True)
    books = sorted(glob.glob(os.path.join(root, "notebooks", "*.ipynb")))
    if not books:
        sys.exit("run_notebooks: no notebooks")
    for path in books:
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": root}}).execute()
        out = os.path.join(scratch, os.path.basename(path))
        nbformat.write(nb, out)
        print(f"ok   {os.path.relpath(path, root)} -> {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/turboattn_notebooks")
