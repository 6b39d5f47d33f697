"""Installing the course: one source for the repository and release, a first cell that fails loudly, a wheel that works."""
import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
import types
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def links():
    return importlib.import_module("course_links")


def test_readme_and_notebooks_agree_with_pyproject(links):
    assert links.sync(ROOT) == [], "run: python scripts/course_links.py --write"
    repo, ref = links.project_links(ROOT / "pyproject.toml")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert ref == f"v{version}" and repo.startswith("https://github.com/")
    readme = (ROOT / "README.md").read_text()
    for name in links.notebooks(ROOT):
        assert f"({links.colab_url(repo, ref, name)})" in readme, f"no Colab badge for {name}"
        nb = json.loads((ROOT / "notebooks" / name).read_text())
        first = "".join(nb["cells"][0]["source"])
        assert f"git+{repo}@{ref}" in first, f"{name}: the install is pinned to the release"
        assert nb["metadata"]["accelerator"] == "GPU" and "colab" in nb["metadata"]


def test_docs_are_linked_at_the_release_not_beside_the_notebook(links):
    repo, ref = "https://github.com/o/r", "v1.2.3"
    text = "see [§1](../docs/a.md#x), `docs/b.md` and [`docs/c.md`](https://elsewhere)"
    assert links.doc_links(text, repo, ref) == (
        "see [§1](https://github.com/o/r/blob/v1.2.3/docs/a.md#x), "
        "[`docs/b.md`](https://github.com/o/r/blob/v1.2.3/docs/b.md) and [`docs/c.md`](https://elsewhere)")
    for name in links.notebooks(ROOT):
        assert "](../" not in (ROOT / "notebooks" / name).read_text(), f"{name}: a relative link pip does not install"


def _run_install_cell(links, namespace=None, drive=False):
    code = links.install_cell(*links.project_links(ROOT / "pyproject.toml"), "06_evaluation_and_robustness.ipynb")
    if drive:
        code = code.replace("USE_DRIVE = False", "USE_DRIVE = True", 1)
    exec(compile(code, "cell 0", "exec"), namespace if namespace is not None else {})


def _fake_colab(monkeypatch, tmp_path, returncode=0):
    """A Colab runtime without nclkit: pip calls recorded (answering `returncode`), cwd an empty folder."""
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setitem(sys.modules, "nclkit", None)  # `import nclkit` raises, as after a failed pip
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    monkeypatch.chdir(tmp_path)
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, returncode, "", "ERROR: no matching distribution for nclkit")
    monkeypatch.setattr(subprocess, "run", run)
    return calls


def test_install_cell_installs_a_wheel_in_the_working_folder_first(links, monkeypatch, tmp_path):
    calls = _fake_colab(monkeypatch, tmp_path)
    _, ref = links.project_links(ROOT / "pyproject.toml")
    wheel = tmp_path / f"nclkit-{ref[1:]}-py3-none-any.whl"
    wheel.write_bytes(b"")
    with pytest.raises(RuntimeError):
        _run_install_cell(links)
    assert calls[0][-1] == f"nclkit[notebooks] @ {wheel.resolve().as_uri()}"


def test_install_cell_shows_pips_error(links, monkeypatch, tmp_path, capsys):
    _fake_colab(monkeypatch, tmp_path, returncode=1)
    with pytest.raises(RuntimeError):
        _run_install_cell(links)
    out = capsys.readouterr().out
    assert "pip failed" in out and "no matching distribution" in out


def test_install_cell_mounts_drive_only_when_asked(links, monkeypatch, tmp_path):
    _fake_colab(monkeypatch, tmp_path)
    mounted = []
    drive = types.ModuleType("google.colab.drive")
    drive.mount = mounted.append
    monkeypatch.setattr(sys.modules["google.colab"], "drive", drive, raising=False)
    monkeypatch.setitem(sys.modules, "google.colab.drive", drive)
    for ask in (False, True):
        with pytest.raises(RuntimeError):
            _run_install_cell(links, drive=ask)
    assert mounted == ["/content/drive"]


def test_each_notebook_says_what_it_trains_and_reuses(links):
    repo, ref = links.project_links(ROOT / "pyproject.toml")
    for name in links.notebooks(ROOT):
        cell = links.install_cell(repo, ref, name)
        said = " ".join(line.lstrip("# ") for line in cell.splitlines() if line.startswith("# "))
        assert "This notebook" in said
        if name[:2] in ("06", "07", "08", "09"):
            assert "notebook 05's model" in said and "trained again" in said, name


def test_install_cell_does_nothing_outside_colab(links, monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    _run_install_cell(links)
    assert calls == []


def test_install_cell_on_colab_stops_with_what_to_do(links, monkeypatch, tmp_path):
    calls = _fake_colab(monkeypatch, tmp_path)
    with pytest.raises(RuntimeError) as err:
        _run_install_cell(links)
    repo, ref = links.project_links(ROOT / "pyproject.toml")
    assert calls and calls[0][-1] == f"nclkit[notebooks] @ git+{repo}@{ref}"
    message = str(err.value)
    assert "python -m build" in message and ".whl); upload" in message and f"git clone --branch {ref}" in message


def test_install_cell_on_colab_with_nclkit_present_installs_nothing(links, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    _run_install_cell(links)
    assert calls == [] and "nclkit" in capsys.readouterr().out


def test_extras_fit_colab_and_a_local_lab():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "ipywidgets>=7.7" in extras["notebooks"], "Colab renders ipywidgets 7.7: do not require 8"
    assert not any(r.startswith("ipykernel") for r in extras["notebooks"]), \
        "Colab installs this extra and pins its own kernel: upgrading it breaks the runtime"
    assert any(r.startswith("ipykernel") for r in extras["test"]), "nbval runs the notebooks through a kernel"
    assert any(r.startswith("jupyterlab") for r in extras["lab"])
    assert not any(r.startswith("jupyterlab") for r in extras["notebooks"] + extras["test"]), \
        "CI installs test+notebooks; JupyterLab is only for opening the course"
    assert '".[notebooks,lab]"' in (ROOT / "README.md").read_text()


def _build(source: Path, dist: Path) -> tuple[Path, Path]:
    """Wheel and sdist through setuptools' own build backend: no download, no build isolation."""
    for hook in ("build_wheel", "build_sdist"):
        code = f"import sys; from setuptools import build_meta; build_meta.{hook}(sys.argv[1])"
        subprocess.run([sys.executable, "-c", code, str(dist)], cwd=source, check=True, capture_output=True)
    (wheel,), (sdist,) = dist.glob("*.whl"), dist.glob("*.tar.gz")
    return wheel, sdist


def _venv_seeing_this_interpreters_packages(env: Path) -> Path:
    """A new venv whose own site-packages come first, then the packages of the Python running these tests.

    `system_site_packages=True` would give it the *base* interpreter's packages, which inside a virtual
    environment (how most people install) lack everything installed into that environment. A .pth file
    adds this interpreter's site directories instead, through `site.addsitedir`, so their own .pth files
    count too. Returns the venv's python.
    """
    venv.create(env, system_site_packages=False, with_pip=True)
    python = env / ("Scripts" if os.name == "nt" else "bin") / "python"
    inner = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           check=True, capture_output=True, text=True).stdout.strip()
    outer = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if Path(p).is_dir()]
    (Path(inner) / "outer_interpreter.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in outer))
    return python


@pytest.mark.slow
def test_wheel_and_sdist_install_and_run_notebook_00(tmp_path):
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the repository
    shutil.copytree(ROOT / "nclkit", source / "nclkit", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheel, sdist = _build(source, tmp_path / "dist")
    assert wheel.name.endswith("-py3-none-any.whl") and sdist.name.endswith(".tar.gz")

    import tarfile
    import zipfile

    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert "nclkit/course.py" in in_wheel and "nclkit/data/checksums/casia1.sha256" in in_wheel
    with tarfile.open(sdist) as tar:
        assert any(n.endswith("/pyproject.toml") for n in tar.getnames())
    meta = zipfile.ZipFile(wheel).read(next(n for n in in_wheel if n.endswith(".dist-info/METADATA"))).decode()
    assert "Project-URL: Repository, https://github.com/nclkit/nclkit" in meta

    env = tmp_path / "venv"  # the dependencies (torch ...) come from this interpreter's site-packages
    python = _venv_seeing_this_interpreters_packages(env)
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)

    # Notebook 00's code, run by the venv's Python in a folder outside the repository.
    nb = json.loads((ROOT / "notebooks" / "00_setup_and_tour.ipynb").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    script = "\n\n".join(cells) + "\n\nprint('NCLKIT_FROM', nclkit.__file__)\n"
    work = tmp_path / "learner"
    work.mkdir()
    (work / "tour.py").write_text(script)
    run_env = {**os.environ, "NCLKIT_QUICK": "1", "MPLBACKEND": "Agg", "NCLKIT_CACHE": str(tmp_path / "cache"),
               "PYTHONPATH": ""}
    run_env.pop("NCLKIT_COVERAGE", None)
    done = subprocess.run([python, "tour.py"], cwd=work, env=run_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    where = done.stdout.split("NCLKIT_FROM", 1)[1].strip()
    assert Path(where).is_relative_to(env), f"nclkit was imported from {where}, not from the installed wheel"
