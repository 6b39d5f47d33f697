"""Visualisation: overlays, patch-category maps (paper Fig. 1), matplotlib grids, prediction figures, notebook widgets."""
from .figures import compare_maps, save_prediction_figure
from .files import PredictionSummary, collect_image_paths, predict_files
from .overlays import CATEGORY_COLORS, category_map_rgb, overlay, show_grid, show_samples
from .widgets import figure_png, figure_slider, png_bytes, threshold_explorer, upload_and_predict

__all__ = [
    "CATEGORY_COLORS", "overlay", "category_map_rgb", "show_grid", "show_samples",
    "png_bytes", "threshold_explorer", "upload_and_predict", "figure_slider", "figure_png",
    "save_prediction_figure", "compare_maps", "predict_files", "PredictionSummary", "collect_image_paths",
]
