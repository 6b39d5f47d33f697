"""Prepare the columbia manifest: `python data_scripts/prepare_columbia.py --root R --out M` (see docs/data.md).

The same as `nclkit prepare columbia ...`, errors included: one line on stderr and exit status 2.
"""
import sys

from nclkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "columbia", *sys.argv[1:]]))
