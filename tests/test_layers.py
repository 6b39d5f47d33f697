"""nclkit's layers import in one direction: presets (and encoder_options) -> data -> models -> ncl -> engine -> viz / course / cli.

An ast walk of every module: each import of another nclkit module (at the top or inside a function)
must point to the same layer or a lower one, and no imports form a circle (not even inside one layer).
"""
import ast
from pathlib import Path

import nclkit

ROOT = Path(nclkit.__file__).resolve().parent

# Lower numbers are lower layers; a module may import its own layer and the ones below.
LAYERS = {
    "version": 0, "encoder_options": 0, "presets": 0,
    "atomic": 0,  # files written whole or not at all, for every layer that writes
    "data": 1,
    "models": 2,
    "ncl": 3,
    "engine": 4,
    "metrics": 5, "viz": 5,  # nclkit.metrics re-exports engine.metrics
    "course": 6, "exercises": 6, "cli": 6,
    "__init__": 7,  # the package's flat API re-exports from every layer
    "__main__": 7,  # the command line's entry point
}


def _layer_of(module: str) -> str:
    """"nclkit.engine.trainer" -> "engine"; "nclkit" -> "__init__"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imported_modules(path: Path, root: Path = ROOT):
    """(line, absolute module name) of every nclkit import in the file; `from pkg import submodule` names the submodule."""
    package = _module_name(path, root) if path.name == "__init__.py" else _module_name(path, root).rpartition(".")[0]
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "nclkit")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "nclkit":
                continue
            folder = root.parent.joinpath(*target.split("."))
            for a in node.names:
                is_module = (folder / f"{a.name}.py").is_file() or (folder / a.name / "__init__.py").is_file()
                yield node.lineno, f"{target}.{a.name}" if is_module else target


def upward_imports(root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        here = _module_name(path, root)
        own = LAYERS[_layer_of(here)]
        for line, target in _imported_modules(path, root):
            if LAYERS[_layer_of(target)] > own:
                found.append(f"{path.relative_to(root.parent)}:{line}: {here} imports {target}")
    return found


def import_circles(root: Path = ROOT) -> list[list[str]]:
    """Circles of imports, function-level ones included (they only hide a circle until the call)."""
    graph = {_module_name(p, root): {t for _, t in _imported_modules(p, root)}
             for p in root.rglob("*.py")}
    circles, state = [], {}  # state: 1 = on the current path, 2 = done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return circles


def test_every_module_has_a_layer():
    assert {_layer_of(_module_name(p)) for p in ROOT.rglob("*.py")} <= set(LAYERS)


def test_no_upward_import():
    assert upward_imports() == []


def test_no_import_circle():
    assert import_circles() == []


def test_the_walk_sees_an_upward_import_and_a_circle(tmp_path):
    # The checks themselves work, on a two-module package where models imports the engine and back.
    pkg = tmp_path / "nclkit"
    for folder in (pkg, pkg / "models", pkg / "engine"):
        folder.mkdir()
        (folder / "__init__.py").write_text("")
    (pkg / "models" / "deeplab.py").write_text("from ..engine import trainer\n")
    (pkg / "engine" / "trainer.py").write_text("from ..models.deeplab import IMLModel\n")
    assert upward_imports(pkg) == ["nclkit/models/deeplab.py:1: nclkit.models.deeplab imports nclkit.engine.trainer"]
    assert import_circles(pkg) == [["nclkit.engine.trainer", "nclkit.models.deeplab", "nclkit.engine.trainer"]]


def test_the_method_reads_no_config():
    # nclkit.ncl takes plain values (tau, patch_size, ...); only NCLCriterion.from_config reads a Config,
    # by its fields' names, without importing the presets.
    found = [f"{p.relative_to(ROOT.parent)}:{line}" for p in sorted((ROOT / "ncl").rglob("*.py"))
             for line, target in _imported_modules(p) if _layer_of(target) == "presets"]
    assert found == []
