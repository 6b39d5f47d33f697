"""Prepare the casia2 manifest: `python data_scripts/prepare_casia2.py --root R --out M` (see docs/data.md).

The same as `nclkit prepare casia2 ...`, errors included: one line on stderr and exit status 2.
"""
import sys

from nclkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "casia2", *sys.argv[1:]]))
