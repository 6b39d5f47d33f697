"""Every worked answer of the course runs: the python blocks inside each notebook's `<details>` answers.

A learner pastes an answer's code under the notebook they have just run, so each block is run the same
way: in a Jupyter kernel that has first run all of that notebook's code cells at the quick scale
(NCLKIT_QUICK=1), then the answers' blocks in order (a later block, or a later answer, may use what an
earlier one defined). One kernel per notebook, shared by its answers; the course cache is the usual one
(NCLKIT_CACHE, else the default), so the trainings of a notebook run under nbval are reused here and
the other way round.

    python -m pytest tests/test_answers.py -k 03     # the answers of one notebook
"""
from __future__ import annotations

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


def answers(path: Path) -> dict[int, list[str]]:
    """{exercise number: [its python blocks, in order]} from the notebook's `<details>` answers."""
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells
                     if c.cell_type == "markdown" and "<details>" in c.source)
    return {int(n): PYTHON_BLOCK.findall(body) for n, body in ANSWER.findall(text)}


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
    blocks = answers(path)
    for earlier in sorted(n for n in blocks if n < number and n not in kernel.done):  # what this answer may build on
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
