"""Prepare the imd2020 manifest: `python data_scripts/prepare_imd2020.py --root R --out M` (see docs/data.md).

The same as `nclkit prepare imd2020 ...`, errors included: one line on stderr and exit status 2.
"""
import sys

from nclkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "imd2020", *sys.argv[1:]]))
