"""Prepare the casia1 manifest: `python data_scripts/prepare_casia1.py --root R --out M [--protocol grouped]`
(see docs/data.md).

The same as `nclkit prepare casia1 ...`, errors included: one line on stderr and exit status 2.
"""
import sys

from nclkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "casia1", *sys.argv[1:]]))
