"""Every worked answer of the course runs: the python blocks inside each notebook's `<details>` answers.

A learner pastes an answer's code under the notebook they have just run, so each block is run the same
way: in a Jupyter kernel that has first run all of that notebook's code cells at the quick scale
(NCLKIT_QUICK=1), then the answer's blocks in order. An answer may build on another one only where its
text says so ("with `ncl_run` from the answer to exercise 1"): that answer is run first, and a fast
static check makes sure that every name an answer uses is defined by the notebook, by the answer itself or
by such a named answer. One kernel per notebook, shared by its answers; the course cache is the usual one
(NCLKIT_CACHE, else the default), so the trainings of a notebook run under nbval are reused here and
the other way round.

    python -m pytest tests/test_answers.py -k 03     # the answers of one notebook
"""
from __future__ import annotations

import ast
import builtins
import os
import re
from pathlib import Path

import nbformat
import pytest

import nclkit
from nclkit import course

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
ANSWER = re.compile(r"<summary><b>Answer to exercise (\d+)</b>(.*?)</details>", re.S)
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
CELL_TIMEOUT_S = 3600  # one training cell of a notebook on a loaded 2-core machine


def _answer_texts(path: Path) -> dict[int, str]:
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells
                     if c.cell_type == "markdown" and "<details>" in c.source)
    return {int(n): body for n, body in ANSWER.findall(text)}


def answers(path: Path) -> dict[int, list[str]]:
    """{exercise number: [its python blocks, in order]} from the notebook's `<details>` answers."""
    return {n: PYTHON_BLOCK.findall(body) for n, body in _answer_texts(path).items()}


def builds_on(path: Path) -> dict[int, set[int]]:
    """{exercise number: the other answers its text says it uses ("... from the answer to exercise 1")}."""
    return {n: {int(k) for k in re.findall(r"answer to exercise (\d+)", body)} - {n}
            for n, body in _answer_texts(path).items()}


CASES = [(path, number) for path in NOTEBOOKS for number in sorted(answers(path))]


class NotebookKernel:
    """A kernel that has run one notebook's code cells; answers' blocks then run in it, in order."""

    def __init__(self, path: Path):
        from jupyter_client.manager import start_new_kernel

        self.path, self.done = path, set()
        env = {**os.environ, "NCLKIT_QUICK": "1", "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(path.parent), env=env)
        self.error = None
        for k, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code" and self.error is None:
                failure = self.run(cell.source)
                if failure:
                    self.error = f"{path.name}, code cell {k} failed before its answers ran:\n{failure}"

    def run(self, code: str) -> str | None:
        """Run `code`; None when it succeeds, else its printed output and traceback."""
        printed: list[str] = []

        def hook(msg):
            content = msg["content"]
            if msg["msg_type"] == "stream":
                printed.append(content["text"])
            elif msg["msg_type"] == "error":
                printed.append("\n".join(content["traceback"]))

        reply = self.kc.execute_interactive(code, timeout=CELL_TIMEOUT_S, output_hook=hook, allow_stdin=False)
        if reply["content"]["status"] == "ok":
            return None
        return re.sub(r"\x1b\[[0-9;]*m", "", "".join(printed)[-6000:])  # without the terminal's colours

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def kernels():
    live: dict[Path, NotebookKernel] = {}
    yield live
    for kernel in live.values():
        kernel.close()


def notebook_kernel(kernels: dict, path: Path) -> NotebookKernel:
    """The kernel of `path`, started (and the notebook run) on first use; one notebook's kernel at a time."""
    if path not in kernels:
        for other in list(kernels):
            kernels.pop(other).close()
        kernels[path] = NotebookKernel(path)
    return kernels[path]


@pytest.mark.slow
@pytest.mark.parametrize("path, number", CASES, ids=[f"{p.name[:2]}-ex{n}" for p, n in CASES])
def test_answer_runs(kernels, path, number):
    kernel = notebook_kernel(kernels, path)
    if kernel.error:
        pytest.fail(kernel.error)
    blocks, needs = answers(path), builds_on(path)
    for earlier in sorted(needs[number] - kernel.done):  # the answers this one says it builds on
        for block in blocks[earlier]:
            kernel.run(block)
        kernel.done.add(earlier)
    assert blocks[number], f"{path.name}: the answer to exercise {number} has no python block"
    kernel.done.add(number)
    for k, block in enumerate(blocks[number], 1):
        failure = kernel.run(block)
        if failure is not None:
            pytest.fail(f"{path.name}, answer to exercise {number}, block {k} of {len(blocks[number])}:\n{failure}",
                        pytrace=False)


def test_every_notebook_has_three_answers_with_code():
    counts = {path.name[:2]: sorted(answers(path)) for path in NOTEBOOKS}
    assert all(numbers == [1, 2, 3] for numbers in counts.values()), counts


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_answers_call_only_what_nclkit_has(path):
    """Also the branches the quick scale skips (`if not profile.quick:`): every `course.x` and `nclkit.x` exists."""
    code = "\n".join(block for blocks in answers(path).values() for block in blocks)
    missing = sorted({f"{module}.{name}" for module, name in re.findall(r"\b(course|nclkit)\.(\w+)", code)
                      if not hasattr({"course": course, "nclkit": nclkit}[module], name)})
    assert not missing, f"{path.name}: its answers call {missing}, which nclkit does not have"


def _python(code: str) -> ast.Module:
    # IPython lines (!shell, %magic) are not Python
    return ast.parse("\n".join("" if line.lstrip().startswith(("!", "%")) else line for line in code.splitlines()))


def _defined(code: str) -> set[str]:
    """Names `code` binds anywhere: assignments, imports, functions, classes, their arguments, loop targets."""
    names = set()
    for node in ast.walk(_python(code)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def _used(code: str) -> set[str]:
    return {node.id for node in ast.walk(_python(code)) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_each_answer_needs_only_its_notebook_and_the_answers_it_names(path):
    """A learner may do exercise 3 without exercise 1: an answer uses no name that only another answer defines,
    unless its text says which answer it builds on."""
    notebook = set().union(*(_defined(c.source) for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"))
    known = notebook | set(dir(builtins)) | {"display", "get_ipython", "In", "Out"}
    blocks, needs = answers(path), builds_on(path)
    for number, code in ((n, "\n".join(b)) for n, b in blocks.items()):
        named = set().union(*(_defined("\n".join(blocks[k])) for k in needs[number])) if needs[number] else set()
        unknown = _used(code) - _defined(code) - known - named
        assert not unknown, f"{path.name}, answer to exercise {number} uses {sorted(unknown)}, defined by no cell " \
                            "of the notebook (nor by an answer its text names)"
