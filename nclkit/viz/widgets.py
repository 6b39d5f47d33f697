"""ipywidgets helpers for notebooks: a threshold explorer, upload-and-predict and a figure slider.

ipywidgets (and matplotlib, for the figure slider) is imported inside each function, so
``import nclkit.viz`` works without it. The helpers build plain widget trees (images as PNG bytes),
so they construct without a running notebook frontend; they only come alive when a notebook
displays them.
"""
from __future__ import annotations

import io
import sys
from typing import Any

import numpy as np
from PIL import Image

from ..engine.metrics import pixel_f1
from ..engine.predict import predict_probability
from .overlays import overlay

__all__ = ["threshold_explorer", "upload_and_predict", "figure_slider", "figure_png", "png_bytes"]


def png_bytes(array: np.ndarray) -> bytes:
    """uint8 (H, W[, 3]) or float (H, W) in [0, 1] -> PNG file contents."""
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        arr = np.rint(np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _status_text(prob: np.ndarray, mask: np.ndarray | None, threshold: float) -> str:
    share = float(np.mean(prob > threshold))
    text = f"threshold {threshold:.2f}: {100 * share:.1f}% of pixels predicted tampered"
    if mask is not None:
        text += f", pixel F1 = {100 * pixel_f1(prob, mask, threshold):.1f}%"
    return text


def threshold_explorer(
    image: np.ndarray,
    prob: np.ndarray,
    mask: np.ndarray | None = None,
    threshold: float = 0.5,
    width: int = 320,
) -> Any:
    """A slider over the decision threshold showing the overlay (and the F1 when a mask is given).

    Args:
        image: uint8 RGB. Shape (H, W, 3).
        prob: tamper probability in [0, 1]. Shape (H, W).
        mask: optional ground truth in {0, 1}. Shape (H, W).
    Returns:
        ipywidgets.VBox (slider, status line, overlay image [, ground-truth overlay]).
    """
    import ipywidgets as widgets  # imported here: optional (the notebooks extra)

    prob = np.asarray(prob, dtype=np.float32)
    if prob.shape != image.shape[:2]:
        raise ValueError(f"prob shape {prob.shape} differs from the image's {image.shape[:2]}")
    if mask is not None and np.asarray(mask).shape != prob.shape:
        raise ValueError(f"mask shape {np.asarray(mask).shape} differs from prob shape {prob.shape}")
    slider = widgets.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.01, description="threshold",
                                 continuous_update=False)
    status = widgets.HTML()
    predicted = widgets.Image(format="png", width=width)

    def update(_change: Any = None) -> None:
        predicted.value = png_bytes(overlay(image, prob > slider.value))
        status.value = _status_text(prob, mask, slider.value)

    slider.observe(update, names="value")
    update()
    pictures = [predicted]
    if mask is not None:
        pictures.append(widgets.Image(value=png_bytes(overlay(image, mask, color=(0, 200, 0))),
                                      format="png", width=width))
    return widgets.VBox([slider, status, widgets.HBox(pictures)])


def _uploaded_files(value: Any) -> list[tuple[str, bytes]]:
    """(name, bytes) of a FileUpload value: a tuple of dicts (ipywidgets 8) or a dict (7)."""
    items = value.values() if isinstance(value, dict) else value
    out = []
    for item in items:
        name = item.get("name") or item.get("metadata", {}).get("name", "upload")
        out.append((name, bytes(item["content"])))
    return out


def _predicted_boxes(widgets: Any, model: Any, files: list[tuple[str, bytes]], threshold: float,
                     width: int) -> tuple[list[Any], list[str]]:
    """One box (probability map, overlay) per decodable file, and one message per file that is not."""
    boxes, errors = [], []
    for name, data in files:
        try:
            image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        except Exception as err:  # noqa: BLE001 - any undecodable upload is reported, others go on
            errors.append(f"{name}: cannot decode image ({type(err).__name__})")
            continue
        prob = predict_probability(model, image)
        boxes.append(widgets.VBox([
            widgets.HTML(f"<b>{name}</b>: max probability {prob.max():.2f}"),
            widgets.HBox([widgets.Image(value=png_bytes(prob), format="png", width=width),
                          widgets.Image(value=png_bytes(overlay(image, prob > threshold)), format="png", width=width)]),
        ]))
    return boxes, errors


def upload_and_predict(model: Any, threshold: float = 0.5, width: int = 320) -> Any:
    """Upload images; each is predicted and shown with its overlay.

    In Jupyter: a FileUpload button. On Colab, whose FileUpload widget does not deliver files of 1 MB
    or more, Colab's own upload dialog instead (`google.colab.files.upload`): the cell waits until
    files are chosen or the dialog is cancelled.

    Returns:
        ipywidgets.VBox (upload button or Colab's note, status line, results box).
    """
    import ipywidgets as widgets  # imported here: optional (the notebooks extra)

    status = widgets.HTML("Choose one or more images to localise manipulations.")
    results = widgets.VBox()

    def show(files: list[tuple[str, bytes]]) -> None:
        results.children, errors = _predicted_boxes(widgets, model, files, threshold, width)
        status.value = f"{len(results.children)} predicted" + (f"; failed: {'; '.join(errors)}" if errors else "")

    if "google.colab" in sys.modules:
        from google.colab import files as colab_files

        show(list(colab_files.upload().items()))
        return widgets.VBox([widgets.HTML("Uploaded with Colab's dialog (run the cell again for more)."),
                             status, results])
    upload = widgets.FileUpload(accept="image/*", multiple=True, description="Upload image(s)")
    upload.observe(lambda _change: show(_uploaded_files(upload.value)), names="value")
    return widgets.VBox([upload, status, results])


def figure_png(fig: Any, dpi: int = 80) -> bytes:
    """A matplotlib figure -> PNG file contents; the figure is closed (no second copy is shown inline)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def figure_slider(draw: Any, values: Any, value: Any, description: str = "value", width: int = 720) -> Any:
    """A slider over `values` that redraws `draw(value)`, a function returning a matplotlib figure.

    A selection slider, not a float one: the values can be spaced as the parameter needs (a log scale
    for a temperature), and a notebook can precompute what `draw` needs for exactly those values.

    Returns:
        ipywidgets.VBox (slider, picture of the current value's figure).
    """
    import ipywidgets as widgets

    values = list(values)
    if value not in values:
        raise ValueError(f"value {value!r} is not one of the slider's values {values}")
    slider = widgets.SelectionSlider(options=values, value=value, description=description,
                                     continuous_update=False)
    picture = widgets.Image(format="png", width=width)

    def update(_change: Any = None) -> None:
        picture.value = figure_png(draw(slider.value))

    slider.observe(update, names="value")
    update()
    return widgets.VBox([slider, picture])
