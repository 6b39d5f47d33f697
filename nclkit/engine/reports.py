"""What reports are made of: JSON-ready values and Markdown tables (the evaluation report, the
robustness table and the table scripts all use these).

Fractions are shown as percent (`pct`), undefined values (None, NaN) as "n/a" in Markdown and null
in JSON; `markdown_table` lays out a header, its alignment row and the cells.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["pct", "markdown_table", "json_safe"]


def pct(value: Any, digits: int = 1) -> str:
    """A fraction as a table shows it: percent with `digits` decimals; "n/a" when undefined; any
    other value (a count, a name) as it is."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, float):
        return f"{100 * value:.{digits}f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> list[str]:
    """The lines of a Markdown table; `align` holds one letter per column, "l" (default) or "r"."""
    align = align.ljust(len(header), "l")
    lines = [_row(header), "|" + "".join("---:|" if a == "r" else "---|" for a in align)]
    return lines + [_row(row) for row in rows]


def _row(cells: Sequence[Any]) -> str:
    return "|" + "|".join(f" {cell} " if str(cell) else " " for cell in cells) + "|"


def json_safe(obj: Any) -> Any:
    """A JSON-ready copy: NaN -> null, numpy scalars -> Python numbers."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(obj) else float(obj)  # JSON has no NaN: undefined -> null
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
