"""notebooks/conftest.py: under nbval, a cell that draws must leave an image in its outputs."""
import importlib.util
import shutil
from pathlib import Path

import nbformat
import pytest

pytest_plugins = ["pytester"]
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
_spec = importlib.util.spec_from_file_location("notebooks_conftest", NOTEBOOKS / "conftest.py")
notebooks_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(notebooks_conftest)
draws = notebooks_conftest.draws


def test_which_cells_draw():
    assert draws("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()")
    assert draws("for ax in axes:\n    ax.imshow(x)")
    assert draws("display(figure_slider(draw, [1, 2], 1))")
    assert not draws("def show(x):\n    plt.imshow(x)\n    plt.show()")  # draws when called, not here
    assert not draws("if cov is None:\n    print('skipped')\nelse:\n    plt.show()")  # may rightly be skipped
    assert not draws("!nclkit --help\nprint(1)") and not draws("x = (")


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    for k, cell in enumerate(nb.cells):
        cell.id = f"c{k}"
    nbformat.write(nb, path)


@pytest.mark.slow
def test_a_figure_cell_without_an_image_fails(pytester, monkeypatch):
    pytest.importorskip("nbval")
    shutil.copy(NOTEBOOKS / "conftest.py", pytester.path / "conftest.py")
    setup = "import matplotlib.pyplot as plt"
    _notebook(pytester.path / "draws.ipynb", setup, "plt.plot([0, 1])\nplt.show()")
    # Closed before it is shown: the cell looks like a figure cell and leaves no picture.
    _notebook(pytester.path / "blank.ipynb", setup, "fig, ax = plt.subplots()\nax.plot([0, 1])\nplt.close(fig)\nplt.show()")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    result = pytester.runpytest_subprocess("--nbval-lax", "-p", "no:cacheprovider", "draws.ipynb", "blank.ipynb")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*blank.ipynb, cell 1: the cell draws a figure but produced no image*"])
