"""Prepare the nist16 manifest: `python data_scripts/prepare_nist16.py --root R --out M` (see docs/data.md).

The same as `nclkit prepare nist16 ...`, errors included: one line on stderr and exit status 2.
"""
import sys

from nclkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "nist16", *sys.argv[1:]]))
