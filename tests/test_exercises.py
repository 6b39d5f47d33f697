"""The exercise checkers: a right answer passes, a wrong one fails, an untouched one says so; none raises."""
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nclkit import exercises as ex
from nclkit.models import get_encoder


def tampered_share(mask):
    return mask.mean()


def patch_categories(mask, patch_px):
    frac = F.avg_pool2d(mask[None, None].float(), patch_px)[0, 0]
    return torch.where(frac == 0, 0, torch.where(frac == 1, 1, 2))


def pivot_pooling(branch_map, is_contour):
    return branch_map[:, is_contour].mean(1)


def ncl_term2(p, n, se_plus, tau):
    s = lambda a, b: F.cosine_similarity(a, b, dim=-1) / tau
    pos, neg = s(p, se_plus), s(n, se_plus)  # (M,), (N,)
    return (torch.logaddexp(pos, torch.logsumexp(neg, 0)) - pos).mean()


def pc_loss(logits, mask, contour, mu):
    bce = F.binary_cross_entropy_with_logits(logits, mask, reduction="none")
    return mu * bce[contour].mean() + (1 - mu) * bce.mean()


def poly_lr(base_lr, step, total_steps, power):
    return base_lr * (1 - step / total_steps) ** power


def f1(pred, mask):
    tp = np.sum(pred & (mask == 1))
    return 2 * tp / (pred.sum() + mask.sum())


def f1_protocols(probs, masks):
    per_image = np.mean([f1(p > 0.5, m) for p, m in zip(probs, masks)])
    total = np.concatenate([p.ravel() for p in probs]), np.concatenate([m.ravel() for m in masks])
    return per_image, f1(total[0] > 0.5, total[1])


def all_tampered_f1(masks):
    return np.mean([f1(np.ones(m.shape, bool), m) for m in masks])


def block_strides(encoder, size):
    return [size / f.shape[-1] for f in encoder(torch.zeros(1, 3, size, size))]


def best_threshold(prob, mask, thresholds):
    return thresholds[int(np.argmax([f1(prob > t, mask) for t in thresholds]))]


def untouched(*args):
    ...  # the learner's placeholder


def not_implemented(*args):
    raise NotImplementedError


@pytest.fixture(scope="module")
def encoders():
    torch.manual_seed(0)
    return [get_encoder("resnet10", 16, width=16).eval(), get_encoder("resnet10", 8, block1="maxpool", width=16).eval()]


RIGHT_AND_WRONG = {
    "check_tampered_share": (tampered_share, lambda m: 1 - m.mean()),
    "check_patch_categories": (patch_categories, lambda m, px: patch_categories(1 - m, px)),  # codes swapped
    "check_pivot_pooling": (pivot_pooling, lambda b, c: b.mean((1, 2))),  # pools every cell
    "check_ncl_term2": (ncl_term2, lambda p, n, s, tau: ncl_term2(p, n, s, 1.0)),  # ignores tau
    "check_pc_loss": (pc_loss, lambda logits, mask, contour, mu: pc_loss(logits, mask, contour, 1 - mu)),  # mu swapped
    "check_poly_lr": (poly_lr, lambda lr, s, t, p: lr * (1 - s / t)),  # linear
    "check_f1_protocols": (f1_protocols, lambda probs, masks: f1_protocols(probs, masks)[::-1]),
    "check_all_tampered_f1": (all_tampered_f1, lambda masks: np.mean([m.mean() for m in masks])),
    "check_best_threshold": (best_threshold, lambda prob, mask, ts: ts[-1]),
}


@pytest.mark.parametrize("name", sorted(RIGHT_AND_WRONG))
def test_checker(name, capsys):
    check = getattr(ex, name)
    right, wrong = RIGHT_AND_WRONG[name]
    assert check(right) and "solved" in capsys.readouterr().out
    assert not check(wrong) and "not yet" in capsys.readouterr().out
    for placeholder in (untouched, not_implemented):
        assert not check(placeholder) and "not solved yet" in capsys.readouterr().out
    assert not check(lambda *a: {}[0]) and "KeyError" in capsys.readouterr().out


def test_block_strides_checker(encoders, capsys):
    assert [list(e.strides) for e in encoders] == [[2, 4, 8, 16, 16], [4, 4, 8, 8, 8]]  # two different answers
    assert ex.check_block_strides(block_strides, encoders) and "solved" in capsys.readouterr().out
    assert not ex.check_block_strides(lambda e, size: [2, 4, 8, 16, 32], encoders)
    assert "not yet" in capsys.readouterr().out
    assert not ex.check_block_strides(untouched, encoders) and "not solved yet" in capsys.readouterr().out


NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_notebook_ends_with_a_checked_exercise(path):
    """2-4 exercises at the end; one is a placeholder calling a checker, then its solution in a collapsed cell."""
    cells = nbformat.read(path, as_version=4).cells
    start = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## Exercises" in c.source)
    numbers = re.findall(r"^(\d+)\. ", "\n".join(c.source for c in cells[start:] if c.cell_type == "markdown"), re.M)
    assert 2 <= len(numbers) <= 4 and numbers == [str(k) for k in range(1, len(numbers) + 1)], numbers
    placeholder, solution = cells[-2], cells[-1]
    check = re.search(r"^(check_\w+)\(", placeholder.source, re.M).group(1)
    assert "# your code here" in placeholder.source and f"import {check}" in placeholder.source
    assert solution.metadata.get("jupyter", {}).get("source_hidden") is True
    # Colab ignores Jupyter's flag: a form cell with a title shows the title and hides the code there
    assert solution.metadata.get("cellView") == "form" and solution.source.startswith("#@title A solution")
    assert f"assert {check}(" in solution.source
