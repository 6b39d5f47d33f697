"""The paper's Table 3 (§4.2): a model evaluated clean and under every robustness attack.

The attacks themselves (specs, parsing, applying them) are in nclkit.engine.attacks; metrics stay at
the mask's (original) resolution (docs/evaluation.md, "Robustness").
"""
from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from .attacks import ATTACK_KINDS, MAX_RESIZE, TABLE3_ATTACKS, Attack, apply_attack, parse_attack
from .evaluator import evaluate
from .reports import markdown_table, pct

__all__ = [
    "ATTACK_KINDS", "MAX_RESIZE", "TABLE3_ATTACKS", "Attack", "parse_attack", "apply_attack",  # re-exported
    "robustness_table", "robustness_markdown",
]


def robustness_table(
    model: nn.Module,
    records: Sequence[Any],
    seed: int = 0,
    attacks: Sequence[str] = TABLE3_ATTACKS,
    device: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``model`` clean and under each attack (paper Table 3: pixel AUC; we add F1).

    Returns:
        dict with ``rows`` (one per run, clean first: ``attack``, ``label``, ``pixel_auc``,
        ``pixel_f1``, ``n_tampered``), ``protocol`` (that of `evaluate`, without the attack) and
        ``seed``.
    """
    rows = []
    protocol = None
    for spec in (None, *attacks):
        result = evaluate(model, records, device=device, attack=spec, seed=seed, progress=progress)
        protocol = protocol or {k: v for k, v in result["protocol"].items() if k != "attack"}
        rows.append({
            "attack": "none" if spec is None else str(parse_attack(spec)),
            "label": "None" if spec is None else parse_attack(spec).label,
            "pixel_auc": result["pixel_auc"],
            "pixel_f1": result["pixel_f1"],
            "n_tampered": result["n_tampered"],
        })
    return {"rows": rows, "protocol": protocol, "seed": seed}


def robustness_markdown(table: dict[str, Any]) -> str:
    """Table 3 layout as Markdown: one row per operation, pixel AUC and F1 in percent."""
    lines = [
        f"Robustness (paper Table 3 layout; attack seed {table['seed']}; per-image pixel metrics "
        "averaged over tampered images, F1 at 0.5, tie-aware AUC, original resolution)",
        "",
    ]
    lines += markdown_table(["Operation", "pixel AUC (%)", "pixel F1 (%)"],
                            [(row["label"], pct(row["pixel_auc"]), pct(row["pixel_f1"])) for row in table["rows"]],
                            align="lrr")
    return "\n".join(lines) + "\n"
