"""Prepare the defacto manifest: `python data_scripts/prepare_defacto.py --root R --out M` (see docs/data.md).

The same as `nclkit prepare defacto ...`, errors included: one line on stderr and exit status 2.
"""
import sys

from nclkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "defacto", *sys.argv[1:]]))
