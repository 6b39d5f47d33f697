"""The course's Colab links and install cell, made from the one place that names them: pyproject.toml.

`[project.urls] Repository` is the repository and `[project] version` the release (tag `v<version>`).
From these come the first cell of every notebook (install on Colab, check the import, say what to do
if it failed) and the README's table of "Open in Colab" badges. Run it after changing either:

    python scripts/course_links.py --write   # rewrite the README block and every notebook's first cell
    python scripts/course_links.py --check   # exit 1 if anything differs (the tests check the same)
"""
from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Notebook metadata that makes Colab open each notebook on a GPU runtime.
COLAB_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
README_BEGIN = "<!-- course links: made from pyproject.toml by `python scripts/course_links.py --write` -->"
README_END = "<!-- end of course links -->"


def project_links(pyproject: Path = ROOT / "pyproject.toml") -> tuple[str, str]:
    """(repository URL without a trailing slash, release tag) as pyproject.toml names them."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return project["urls"]["Repository"].rstrip("/"), f"v{project['version']}"


def colab_url(repo: str, ref: str, notebook: str) -> str:
    """Colab opens a notebook straight from a GitHub repository at a given tag."""
    prefix = "https://github.com/"
    if not repo.startswith(prefix):
        raise ValueError(f"{repo}: Colab opens notebooks from GitHub repositories only")
    return f"https://colab.research.google.com/github/{repo[len(prefix):]}/blob/{ref}/notebooks/{notebook}"


def install_cell(repo: str, ref: str) -> str:
    """The first cell of every notebook. Plain Python (no `!pip`), so a failure raises here, not a cell later."""
    wheel = f"nclkit-{ref.lstrip('v')}-py3-none-any.whl"
    return f'''\
# On Colab: install nclkit {ref} unless it is there, and check that it imports. Anywhere else this
# cell does nothing (install nclkit first: see the README).
import sys

if "google.colab" in sys.modules:
    import importlib.util
    import subprocess

    if importlib.util.find_spec("nclkit") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "nclkit[notebooks] @ git+{repo}@{ref}"])
        importlib.invalidate_caches()  # let this running kernel see what pip just added
    try:
        import nclkit
    except ImportError:
        raise RuntimeError(
            "nclkit did not install from {repo} ({ref}). Instead, either\\n"
            "  1. on your computer, in a clone of the repository: pip install build && python -m build\\n"
            "     (makes dist/{wheel}); upload that file here (Files pane) and run\\n"
            "     !pip install './{wheel}[notebooks]'\\n"
            "  2. or here: !git clone --branch {ref} {repo} && pip install -e './nclkit[notebooks]'\\n"
            "then restart the runtime (Runtime > Restart session) and run this notebook again."
        ) from None
    print("nclkit", nclkit.__version__, "from", nclkit.__file__)
    # Optional: keep the course cache (data, checkpoints) across runtime resets on Google Drive.
    # nclkit uses MyDrive/nclkit_cache by itself once Drive is mounted; it never mounts it for you:
    # from google.colab import drive; drive.mount("/content/drive")
'''


def readme_block(repo: str, ref: str, notebooks: list[str]) -> str:
    """The README's badges (one per notebook) and the install cell, between two marker lines."""
    rows = [f"| [{Path(nb).stem}](notebooks/{nb}) | [![Open In Colab]({BADGE})]({colab_url(repo, ref, nb)}) |"
            for nb in notebooks]
    return "\n".join([
        README_BEGIN,
        "| notebook | on Colab |",
        "|---|---|",
        *rows,
        "",
        f"On Colab the first cell of each notebook installs nclkit {ref} from {repo} and stops with",
        "instructions if that fails:",
        "",
        "```python",
        install_cell(repo, ref).rstrip("\n"),
        "```",
        README_END,
    ])


def notebooks(root: Path = ROOT) -> list[str]:
    return sorted(p.name for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def readme_with_block(readme: str, block: str) -> str:
    start, end = readme.index(README_BEGIN), readme.index(README_END) + len(README_END)
    return readme[:start] + block + readme[end:]


def sync(root: Path = ROOT, write: bool = False) -> list[str]:
    """What differs from pyproject.toml (README block, notebooks' first cells and Colab metadata); write=True fixes it."""
    import nbformat

    repo, ref = project_links(root / "pyproject.toml")
    names, stale = notebooks(root), []
    readme_path = root / "README.md"
    readme = readme_path.read_text()
    fixed = readme_with_block(readme, readme_block(repo, ref, names))
    if fixed != readme:
        stale.append("README.md")
        if write:
            readme_path.write_text(fixed)
    cell = install_cell(repo, ref).rstrip("\n")
    for name in names:
        path = root / "notebooks" / name
        nb = nbformat.read(path, as_version=4)
        metadata = {key: nb.metadata.get(key) for key in COLAB_METADATA}
        if nb.cells[0].source != cell or metadata != COLAB_METADATA:
            stale.append(f"notebooks/{name}")
            if write:
                nb.cells[0].source = cell
                nb.metadata.update(COLAB_METADATA)
                nbformat.write(nb, path)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite what differs (default: only report it)")
    parser.add_argument("--check", action="store_true", help="exit 1 if anything differs")
    args = parser.parse_args(argv)
    stale = sync(write=args.write)
    for name in stale:
        print(("rewrote " if args.write else "differs from pyproject.toml: ") + name)
    return 1 if stale and args.check and not args.write else 0


if __name__ == "__main__":
    sys.exit(main())
