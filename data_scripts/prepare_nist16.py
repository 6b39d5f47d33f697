"""Prepare the nist16 manifest: `python data_scripts/prepare_nist16.py --root R --out M` (see docs/data.md)."""
from __future__ import annotations

import argparse

from nclkit.data.preparers import PREPARERS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True, help="the dataset folder in its published layout")
    parser.add_argument("--out", required=True, help="manifest .jsonl path, or a folder for manifest.jsonl")
    args = parser.parse_args(argv)
    path = PREPARERS["nist16"](args.root, args.out)
    print(path)


if __name__ == "__main__":
    main()
