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
SCRIPT = ROOT / "scripts" / "course_links.py"


@pytest.fixture(scope="module")
def links():
    spec = importlib.util.spec_from_file_location("course_links", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def _run_install_cell(links, namespace=None):
    code = links.install_cell(*links.project_links(ROOT / "pyproject.toml"))
    exec(compile(code, "cell 0", "exec"), namespace if namespace is not None else {})


def test_install_cell_does_nothing_outside_colab(links, monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    _run_install_cell(links)
    assert calls == []


def test_install_cell_on_colab_stops_with_what_to_do(links, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setitem(sys.modules, "nclkit", None)  # as if pip had failed: `import nclkit` raises
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: calls.append(cmd))
    with pytest.raises(RuntimeError) as err:
        _run_install_cell(links)
    repo, ref = links.project_links(ROOT / "pyproject.toml")
    assert calls and calls[0][-1] == f"nclkit[notebooks] @ git+{repo}@{ref}"
    message = str(err.value)
    assert "python -m build" in message and ".whl[notebooks]" in message and f"git clone --branch {ref}" in message


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
