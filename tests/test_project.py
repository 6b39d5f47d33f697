"""The project itself: the course's notebooks follow its rules, env and pyproject agree."""
import json
import re
from pathlib import Path

import pytest
import yaml


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_numbered_and_contiguous():
    assert len(NOTEBOOKS) >= 10, "the course has notebooks 00 to 09"
    numbers = []
    for nb in NOTEBOOKS:
        m = re.fullmatch(r"(\d\d)_[a-z0-9_]+\.ipynb", nb.name)
        assert m, f"{nb.name} is not named NN_slug.ipynb"
        numbers.append(int(m.group(1)))
    assert numbers == list(range(len(numbers)))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_policy(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    first = nb["cells"][0]
    src = "".join(first["source"])
    assert first["cell_type"] == "code" and "google.colab" in src and "pip install" in src, \
        f"{path.name}: the first cell installs nclkit on Colab (and only there)"
    # Committed-outputs policy: outputs are stripped; nbval runs the notebooks against the current code.
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, \
                f"{path.name}: commit notebooks with outputs stripped"
    text = "".join("".join(c["source"]) for c in nb["cells"])
    assert "import nclkit" in text or "from nclkit" in text
    assert "sys.path" not in text, f"{path.name}: no sys.path hacks; import the installed nclkit"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_rendered_copy_for_reading_has_this_notebooks_cells_and_ran_cleanly(path):
    """docs/course/ holds each notebook executed at the quick scale (scripts/render_course.py)."""
    copy = ROOT / "docs" / "course" / path.name
    assert copy.is_file(), f"no rendered copy of {path.name}: python scripts/render_course.py --only {path.name[:2]}"
    source, rendered = json.loads(path.read_text())["cells"], json.loads(copy.read_text())["cells"]
    assert [(c["cell_type"], "".join(c["source"])) for c in rendered] == \
        [(c["cell_type"], "".join(c["source"])) for c in source], \
        f"docs/course/{path.name} is stale: python scripts/render_course.py --only {path.name[:2]}"
    # The outputs too: they were made by this very library (a change to nclkit may change what any cell prints).
    from nclkit.course import source_hash

    made_with = json.loads(copy.read_text())["metadata"].get("nclkit", {}).get("source_hash")
    assert made_with == source_hash(), \
        f"docs/course/{path.name} was rendered with other nclkit code ({made_with}, now {source_hash()}): its outputs " \
        f"may be stale: python scripts/render_course.py --only {path.name[:2]}"
    code = [c for c in rendered if c["cell_type"] == "code"]
    assert all(c["execution_count"] is not None for c in code), f"{copy.name}: not every cell ran"
    text = json.dumps([c["outputs"] for c in code])
    for leak in ("/tmp/", "ISA ", "oneDNN", str(ROOT)):
        assert leak not in text, f"{copy.name}: an output names the machine that rendered it ({leak!r})"
    assert not re.search(r"\.py:\d+: \w*Warning", text), f"{copy.name}: a warning printed with its file, not in one line"


def _requirement_names(reqs):
    return {re.split(r"[<>=!\[ ;]", r, maxsplit=1)[0].lower() for r in reqs}


def test_environment_yml_agrees_with_pyproject():
    import tomllib

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    # environment.yml installs this package through pip, so pyproject stays the single source of truth ...
    assert any(line.startswith("-e") and "." in line for line in pip_section)
    extras = re.search(r"\[(.*)\]", next(l for l in pip_section if l.startswith("-e"))).group(1).split(",")
    optional = pyproject["project"]["optional-dependencies"]
    assert set(extras) <= set(optional)
    # `conda activate nclkit && jupyter lab` works: the extras bring JupyterLab and a kernel for the notebooks
    brought = _requirement_names(r for extra in extras for r in optional[extra])
    assert {"jupyterlab", "ipykernel", "ipywidgets"} <= brought, brought
    assert "jupyter lab" in (ROOT / "environment.yml").read_text()
    # ... and conda pins nothing that pyproject declares differently.
    conda_names = {re.split(r"[<>=]", d, maxsplit=1)[0] for d in env["dependencies"] if isinstance(d, str)}
    assert conda_names <= {"python", "pip"}
    py_min = pyproject["project"]["requires-python"].lstrip(">=")
    conda_py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert tuple(map(int, conda_py.split("=")[1].split("."))) >= tuple(map(int, py_min.split(".")))
    # torch is declared as a range, never a pin (the GPU machine and Colab have other versions)
    deps = pyproject["project"]["dependencies"]
    assert not any("==" in d for d in deps)
    assert {"torch", "torchvision"} <= _requirement_names(deps)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in readme and "bash scripts/test.sh" in ci



@pytest.mark.parametrize("path", sorted([*ROOT.glob("scripts/*.py"), *ROOT.glob("benchmarks/*.py")]),
                         ids=lambda p: p.name)
def test_scripts_and_benchmarks_import_each_other_plainly(path):
    text = path.read_text()
    assert "sys.path" not in text and "spec_from_file_location" not in text, \
        f"{path.name}: import a sibling script by name (its folder is on the path when it runs)"
