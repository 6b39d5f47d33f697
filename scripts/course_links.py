"""The course's Colab links and install cell, made from the one place that names them: pyproject.toml.

`[project.urls] Repository` is the repository and `[project] version` the release (tag `v<version>`).
From these come the first cell of every notebook (install on Colab, check the import, say what to do
if it failed) and the README's table of "Open in Colab" badges. Run it after changing either:

    python scripts/course_links.py --write   # rewrite the README block and every notebook's first cell
    python scripts/course_links.py --check   # exit 1 if anything differs (the tests check the same)
"""
from __future__ import annotations

import argparse
import re
import sys
import textwrap
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


def needs(notebook: str) -> str:
    """One line: what a notebook trains on a GPU and what it takes from notebook 05, with T4 estimates."""
    from nclkit.course import USES_MAIN_MODEL, course_gpu_minutes, course_gpu_run_minutes

    number, minutes = notebook[:2], course_gpu_minutes("T4")
    one_run = course_gpu_run_minutes("T4")
    main = f"notebook 05's model (reused from the cache on Drive, else trained again: ~{one_run:.0f} min on a T4)"
    if number == "05":
        return (f"trains the course's main model and a Base model beside it (~{minutes['05']:.0f} min on a T4; "
                "an estimate).")
    if number in minutes:
        return f"trains its own runs (~{minutes[number]:.0f} min on a T4; an estimate) and uses {main}."
    if number in USES_MAIN_MODEL:
        return f"uses {main}."
    if number == "03":
        return "trains only block 1 and the pivot network, for 120 steps (seconds, on a GPU when there is one)."
    return "trains nothing on a GPU."


def install_cell(repo: str, ref: str, notebook: str = "") -> str:
    """The first cell of every notebook: Drive (optional), then nclkit from the first of three sources.

    nclkit already importable: nothing to install. Else a wheel of this release in the working folder
    or on Drive; else the repository at the release tag. pip's own error tail is shown when it fails.
    Plain Python (no `!pip`), so a failure raises here, not a cell later.
    """
    version = ref.lstrip("v")
    wheel = f"nclkit-{version}-py3-none-any.whl"
    return f'''\
# On Colab: keep the course cache on Google Drive if you tick USE_DRIVE (a Colab notebook is a runtime
# of its own; with Drive, what one notebook trained is reused by the next), then install nclkit {ref}
# unless it is there. Anywhere else this cell does nothing (install nclkit first: see the README).
{textwrap.fill('This notebook ' + needs(notebook), 100, initial_indent='# ', subsequent_indent='# ')}
USE_DRIVE = False  #@param {{type:"boolean"}}
import sys

if "google.colab" in sys.modules:
    import glob
    import importlib.util
    import pathlib
    import subprocess

    if USE_DRIVE:
        from google.colab import drive
        drive.mount("/content/drive")  # nclkit then caches in MyDrive/nclkit_cache by itself
    if importlib.util.find_spec("nclkit") is None:
        # a wheel of this release here or on Drive (for a copy of your own), else the repository at its tag
        wheels = sorted(glob.glob("{wheel}") + glob.glob("/content/drive/MyDrive/{wheel}"))
        source = pathlib.Path(wheels[0]).resolve().as_uri() if wheels else "git+{repo}@{ref}"
        print("installing nclkit from", source, "...")
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"nclkit[notebooks] @ {{source}}"],
                             capture_output=True, text=True)
        if pip.returncode != 0:
            print("pip failed:\\n" + (pip.stdout + pip.stderr)[-3000:])
        importlib.invalidate_caches()  # let this running kernel see what pip just added
    try:
        import nclkit
    except ImportError:
        raise RuntimeError(
            "nclkit did not install from {repo} ({ref}). Instead, either\\n"
            "  1. on your computer, in a clone of the repository: pip install build && python -m build\\n"
            "     (makes dist/{wheel}); upload that file here (Files pane) or to MyDrive, and run this cell again\\n"
            "  2. or here: !git clone --branch {ref} {repo} && pip install -e './nclkit[notebooks]'\\n"
            "then restart the runtime (Runtime > Restart session) and run this notebook again."
        ) from None
    print("nclkit", nclkit.__version__, "from", nclkit.__file__)
'''


def drive_lines() -> list[str]:
    """README lines: the course's estimated GPU minutes on a T4 with the cache on Google Drive and without."""
    from nclkit.course import USES_MAIN_MODEL, course_gpu_minutes

    with_drive, without = course_gpu_minutes("T4"), course_gpu_minutes("T4", drive=False)
    return [f"On Colab each notebook is a runtime of its own. With the course cache on Google Drive the course's GPU",
            f"trainings take ~{with_drive['total']:.0f} min on a T4 (an estimate); without Drive, notebooks "
            f"{USES_MAIN_MODEL[0]}-{USES_MAIN_MODEL[-1]} train notebook 05's model again,",
            f"~{without['total']:.0f} min in all."]


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
        *drive_lines(),
        "",
        f"On Colab the first cell of each notebook mounts Google Drive if you tick `USE_DRIVE`, installs nclkit",
        f"{ref} (a wheel of it in the working folder or on Drive, else {repo} at that tag) and stops with",
        "pip's error and instructions if that fails (here notebook 05's):",
        "",
        "```python",
        install_cell(repo, ref, "05").rstrip("\n"),
        "```",
        README_END,
    ])


def notebooks(root: Path = ROOT) -> list[str]:
    return sorted(p.name for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def doc_links(markdown: str, repo: str, ref: str) -> str:
    """The docs as links into the repository at the release: pip installs no docs beside a notebook.

    `](../docs/x.md#a)` becomes an absolute link, and a bare `` `docs/x.md` `` (or `` `docs/x/` ``) a link.
    """
    base = f"{repo}/blob/{ref}/docs/"
    markdown = markdown.replace("](../docs/", f"]({base}")
    return re.sub(r"(?<!\[)`docs/([\w./-]*)`", lambda m: f"[`docs/{m.group(1)}`]({base}{m.group(1)})", markdown)


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
    for name in names:
        cell = install_cell(repo, ref, name).rstrip("\n")
        path = root / "notebooks" / name
        nb = nbformat.read(path, as_version=4)
        metadata = {key: nb.metadata.get(key) for key in COLAB_METADATA}
        markdown = [c for c in nb.cells if c.cell_type == "markdown"]
        linked = [doc_links(c.source, repo, ref) for c in markdown]
        if nb.cells[0].source != cell or metadata != COLAB_METADATA or linked != [c.source for c in markdown]:
            stale.append(f"notebooks/{name}")
            if write:
                nb.cells[0].source = cell
                nb.metadata.update(COLAB_METADATA)
                for c, text in zip(markdown, linked):
                    c.source = text
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
