"""The course to read without running it: every notebook executed at the quick scale, outputs kept.

    python scripts/render_course.py              # all ten notebooks into docs/course/ (~10-15 min on 2 cores)
    python scripts/render_course.py --only 06    # one of them

Why committed copies with outputs, beside notebooks/ without them: GitHub and nbviewer show a notebook
with its figures and printed numbers as it is, with nothing to build or host, and Colab opens it too;
the notebooks that learners run stay free of outputs, so that their diffs show code and text only.
A test checks that each copy has exactly its notebook's cells, so a copy cannot silently describe older
code: after changing a notebook, run this again.

The copies are executed with NCLKIT_QUICK=1 (the scale of CI and of a laptop), in notebooks/ (the
folder the notebooks run in), with the course cache of this machine (NCLKIT_CACHE, else the default).
What they print is made neutral: the cache's folder reads as the default `~/.cache/nclkit/course`, paths
into the repository are relative, a CPU is named by its thread count only, and a warning is one line
(its category and message, not the library file that raised it). Widget state is saved, and a widget
that shows a picture also gets that picture as a plain image, so a static copy shows its first state.
Each copy records the hash of nclkit's source it ran with (metadata `nclkit.source_hash`): a test then
flags a copy whose outputs would change with the current code. Needs nbclient (the `lab` extra brings
it through JupyterLab).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "course"
NEUTRAL_CACHE = "~/.cache/nclkit/course"  # the default course cache of a learner's machine
# A warning as one line, without the file and source line of the library that raised it.
ONE_LINE_WARNINGS = (
    "import warnings\n"
    "warnings.formatwarning = lambda message, category, *_, **__: f'{category.__name__}: {message}\\n'\n"
)
CPU_NAME = re.compile(r"CPU [^|\n]*?, (\d+) threads, ISA [^,|\n]*, torch kernels \w+(, oneDNN capped at \w+)?")


def neutral(text: str, replacements: dict[str, str]) -> str:
    """`text` with this machine's paths and CPU model replaced by what any learner's machine would show."""
    for old, new in replacements.items():
        text = text.replace(old, new)
    return CPU_NAME.sub(lambda m: f"CPU, {m.group(1)} threads", text)


def _widget_picture(state: dict, model_id: str) -> str | None:
    """The PNG (base64) of the first Image widget inside the widget `model_id`, from the saved widget state."""
    model = state.get(model_id)
    if model is None:
        return None
    if model.get("model_name") == "ImageModel" and model["state"].get("format") == "png":
        for buffer in model.get("buffers", []):
            if buffer.get("path") == ["value"] and buffer.get("encoding") == "base64":
                return buffer["data"]
    for child in model["state"].get("children", []):
        found = _widget_picture(state, str(child).removeprefix("IPY_MODEL_"))
        if found:
            return found
    return None


def make_static(nb, replacements: dict[str, str]) -> None:
    """Neutral outputs (see `neutral`); every widget view that shows a picture gets it as image/png too."""
    widget_state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = neutral(out["text"], replacements)
            data = out.get("data", {})
            for key in ("text/plain", "text/html", "text/markdown"):
                if isinstance(data.get(key), str):
                    data[key] = neutral(data[key], replacements)
            if "traceback" in out:
                out["traceback"] = [neutral(line, replacements) for line in out["traceback"]]
            view = data.get("application/vnd.jupyter.widget-view+json")
            if view and "image/png" not in data:
                png = _widget_picture(widget_state, view["model_id"])
                if png:
                    data["image/png"] = png


def render(notebook: Path, out_dir: Path, replacements: dict[str, str], timeout: int = 1800) -> Path:
    """Execute `notebook` top to bottom in a fresh kernel and write it, with neutral outputs, into out_dir."""
    import nbformat
    from nbclient import NotebookClient

    from nclkit.course import source_hash

    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    make_static(nb, replacements)
    nb.metadata["nclkit"] = {"source_hash": source_hash(), "scale": "quick"}
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / notebook.name
    nbformat.write(nb, target)
    return target


def kernel_environment() -> dict[str, str]:
    """Set the environment the kernels inherit; return the replacements that make their outputs neutral.

    Quick scale, figures kept inline, the same hashes every run, and an IPython folder whose one startup
    file prints each warning on one line.
    """
    ipython_dir = Path(tempfile.mkdtemp(prefix="render_course_ipython_"))
    (ipython_dir / "profile_default" / "startup").mkdir(parents=True)
    (ipython_dir / "profile_default" / "startup" / "00_one_line_warnings.py").write_text(ONE_LINE_WARNINGS)
    os.environ.update(NCLKIT_QUICK="1", MPLBACKEND="module://matplotlib_inline.backend_inline", PYTHONHASHSEED="0",
                      IPYTHONDIR=str(ipython_dir))
    import nclkit
    from nclkit.course import cache_dir

    library_root = Path(nclkit.__file__).resolve().parents[1]  # where nclkit is imported from (an editable clone)
    return {str(cache_dir().resolve()): NEUTRAL_CACHE, str(cache_dir()): NEUTRAL_CACHE,
            f"{library_root}/": "", f"{ROOT}/": ""}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="a notebook's number, e.g. 06 (repeatable)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the rendered copies (default docs/course)")
    args = parser.parse_args(argv)
    replacements = kernel_environment()
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [nb for nb in notebooks if nb.name[:2] in args.only]
        if not notebooks:
            parser.error(f"no notebook numbered {', '.join(args.only)}")
    for notebook in notebooks:
        start = time.perf_counter()
        target = render(notebook, args.out, replacements)
        print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: "
              f"{time.perf_counter() - start:.0f} s, {target.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
