"""Prepare the casia1 manifest: `python data_scripts/prepare_casia1.py --root R --out M` (see docs/data.md)."""
from nclkit.data.preparers import script_main

if __name__ == "__main__":
    script_main("casia1")
