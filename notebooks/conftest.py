"""Under nbval: every notebook cell that draws must leave a picture in its outputs.

nbval compares text, so a figure that silently draws nothing (an empty axes closed too early, a
headless backend that renders nowhere) would pass. After nbval has run a cell, this hook looks at
the cell's source and its outputs. Why here and not in each cell: the notebooks stay free of test
code, and the check cannot be forgotten when a cell is added.

Which cells draw is read from the source: a call to plt.show, imshow, show_*, figure_slider or
threshold_explorer in a statement at the top level of the cell, or in a loop or `with` block there.
Calls inside a function definition draw later, and calls under `if`/`try` may rightly be skipped
(a dataset that is not on this machine), so those are not counted. Such a cell must have produced
an image/png output or a widget view. Run the notebooks with an image backend: MPLBACKEND must not
be Agg (the kernel's inline backend is what puts image/png into the outputs).
"""
from __future__ import annotations

import ast
import re

import pytest

DRAWING_CALL = re.compile(r"^(plt\.show|.*\.imshow|(\w+\.)*show_\w+|(\w+\.)*figure_slider|(\w+\.)*threshold_explorer)$")
PICTURES = ("image/png", "application/vnd.jupyter.widget-view+json")
_SKIPPED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.Try)


def _calls(node: ast.AST):
    """Names of the calls under `node`, not descending into deferred or conditional code."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _SKIPPED):
            continue
        if isinstance(child, ast.Call):
            yield ast.unparse(child.func)
        yield from _calls(child)


def draws(source: str) -> bool:
    """True when the cell's source draws unconditionally (see the module's docstring)."""
    # IPython lines (!shell, %magic) are not Python: blank them out before parsing.
    python = "\n".join("" if line.lstrip().startswith(("!", "%")) else line for line in source.splitlines())
    try:
        tree = ast.parse(python)
    except SyntaxError:
        return False
    return any(DRAWING_CALL.match(name) for name in _calls(tree))


def has_picture(outputs) -> bool:
    return any(key in out.get("data", {}) for out in outputs or [] for key in PICTURES)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield  # nbval runs the cell; its own failures propagate unchanged
    cell = getattr(item, "cell", None)
    if cell is not None and hasattr(item, "test_outputs") and draws(cell.source):
        if not has_picture(item.test_outputs):
            raise AssertionError(f"{item.fspath.basename}, cell {item.cell_num}: the cell draws a figure but "
                                 "produced no image (is MPLBACKEND=Agg set? a figure closed before it was shown?)")
    return result
