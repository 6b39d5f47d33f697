"""Prepare the imd2020 manifest: `python data_scripts/prepare_imd2020.py --root R --out M` (see docs/data.md)."""
from nclkit.data.preparers import script_main

if __name__ == "__main__":
    script_main("imd2020")
