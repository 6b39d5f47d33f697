"""The course to read without running it: every notebook executed at the quick scale, outputs kept.

    python scripts/render_course.py              # all ten notebooks into docs/course/ (~10-15 min on 2 cores)
    python scripts/render_course.py --only 06    # one of them

Why committed copies with outputs, beside notebooks/ without them: GitHub and nbviewer show a notebook
with its figures and printed numbers as it is, with nothing to build or host, and Colab opens it too;
the notebooks that learners run stay free of outputs, so that their diffs show code and text only.
A test checks that each copy has exactly its notebook's cells, so a copy cannot silently describe older
code: after changing a notebook, run this again.

The copies are executed with NCLKIT_QUICK=1 (the scale of CI and of a laptop), in notebooks/ (the
folder the notebooks run in), with the course cache of this machine (NCLKIT_CACHE, else the default):
each copy's first printed lines name the device and the data it ran on. Needs nbclient (the `lab`
extra brings it through JupyterLab).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "course"


def render(notebook: Path, out_dir: Path, timeout: int = 1800) -> Path:
    """Execute `notebook` top to bottom in a fresh kernel and write it, with outputs, into out_dir."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    nb.metadata.pop("widgets", None)  # live widget state means nothing in a static copy
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / notebook.name
    nbformat.write(nb, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="a notebook's number, e.g. 06 (repeatable)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the rendered copies (default docs/course)")
    args = parser.parse_args(argv)
    # The kernels inherit this environment: quick scale, figures kept inline, the same hashes every run.
    os.environ.update(NCLKIT_QUICK="1", MPLBACKEND="module://matplotlib_inline.backend_inline", PYTHONHASHSEED="0")
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [nb for nb in notebooks if nb.name[:2] in args.only]
        if not notebooks:
            parser.error(f"no notebook numbered {', '.join(args.only)}")
    for notebook in notebooks:
        start = time.perf_counter()
        target = render(notebook, args.out)
        print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: "
              f"{time.perf_counter() - start:.0f} s, {target.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
