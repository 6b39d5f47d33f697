"""Engine: training, checkpoints, metrics, prediction, evaluation and robustness."""
from .checkpoint import load_model, read_checkpoint, save_checkpoint
from .evaluator import choose_image_rule, evaluate, write_report
from .metrics import (
    best_threshold_f1, global_auc, global_best_threshold_f1, global_f1, image_level_metrics, nan_mean,
    permuted_f1, pixel_auc, pixel_f1,
)
from .outputs import read_log
from .predict import predict_probability
from .runs import TrainedRun, ensure_trained, run_progress
from .robustness import TABLE3_ATTACKS, apply_attack, parse_attack, robustness_markdown, robustness_table
from .trainer import build_training, train, train_one_epoch

__all__ = [
    "train", "build_training", "train_one_epoch", "ensure_trained", "run_progress", "TrainedRun", "load_model", "read_checkpoint", "save_checkpoint",
    "pixel_f1", "pixel_auc", "best_threshold_f1", "permuted_f1", "global_f1", "global_auc",
    "global_best_threshold_f1", "image_level_metrics", "nan_mean",
    "predict_probability",
    "evaluate", "write_report", "choose_image_rule", "read_log",
    "TABLE3_ATTACKS", "parse_attack", "apply_attack", "robustness_table", "robustness_markdown",
]
