"""Prepare the coverage manifest: `python data_scripts/prepare_coverage.py --root R --out M` (see docs/data.md).

The same as `nclkit prepare coverage ...`, errors included: one line on stderr and exit status 2.
"""
import sys

from nclkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "coverage", *sys.argv[1:]]))
