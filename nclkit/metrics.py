"""The public metrics module: ``nclkit.metrics.pixel_f1(prob, mask)``, ``nclkit.metrics.pixel_auc(prob, mask)``.

The implementation, its protocol and its degenerate cases live in nclkit/engine/metrics.py (the
evaluator uses it there); this module is the stable import path that users and notebooks rely on.
"""
from .engine.metrics import *  # noqa: F401,F403  (re-export; the list is engine.metrics.__all__)
from .engine.metrics import __all__  # noqa: F401
