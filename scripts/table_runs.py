"""What scripts/reproduce.py and scripts/real_data.py share: the arguments that end both command lines,
and the record of how a table was made (their tables are laid out by nclkit.engine.reports)."""
from __future__ import annotations

import argparse
import shlex
import sys

import torch

from nclkit.engine.devices import device_name


def add_run_arguments(p: argparse.ArgumentParser, runs: str) -> None:
    """--runs, --out, --reuse, --device and --render, the tail of both scripts' command lines."""
    p.add_argument("--runs", default=runs, help="where the trained runs go")
    p.add_argument("--out", default="docs/reproduction", help="where the table JSON files go")
    p.add_argument("--reuse", action="store_true",
                   help="reuse finished runs in --runs (and resume interrupted ones) instead of retraining")
    p.add_argument("--device")
    p.add_argument("--render", action="store_true", help="only print the Markdown of the JSON files in --out")


def provenance(script: str, argv: list[str] | None, device: torch.device) -> dict:
    """How a table was made: the command line, the device and torch's version."""
    command = f"python scripts/{script} " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    return {"command": command, "device": device_name(device), "torch": torch.__version__}
