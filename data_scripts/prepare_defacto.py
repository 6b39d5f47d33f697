"""Prepare the defacto manifest: `python data_scripts/prepare_defacto.py --root R --out M` (see docs/data.md)."""
from nclkit.data.preparers import script_main

if __name__ == "__main__":
    script_main("defacto")
