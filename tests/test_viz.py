"""nclkit.viz: prediction files, overlays, category colours, sample and prediction figures, widgets without a frontend."""
import datetime
import io
import math
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import RedDetector, TinyModel, random_image
from nclkit.engine.checkpoint import load_model
from nclkit.viz import collect_image_paths, predict_files, save_prediction_figure


def test_predict_writes_maps_of_the_upright_view(checkpoint, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(tmp_path / "photo.jpg", exif=exif)
    model, _ = load_model(checkpoint)
    summary = predict_files(model, [tmp_path / "photo.jpg"], tmp_path / "out")
    assert Image.open(summary.written[0][2]).size == (32, 64)  # (W, H) of the upright photo


def test_threshold_checked_by_the_library_too(checkpoint, tmp_path):
    model, _ = load_model(checkpoint)
    with pytest.raises(ValueError, match="threshold 5"):
        predict_files(model, [], tmp_path, threshold=5)


class _NaNModel(torch.nn.Module):
    """Finite but exploded weights end here: every output is NaN."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x[:, :1] * self.w * math.nan


def test_a_nan_prediction_is_an_error_not_an_empty_map(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(FloatingPointError, match="output is NaN"):
        predict_files(_NaNModel(), [tmp_path / "a.png"], tmp_path / "out")


def test_predict_files_writes_outputs_and_reports_failures(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(random_image(20, 24, 1)).save(src / "a.png")
    Image.fromarray(random_image(16, 16, 2)).save(src / "b.jpg")
    (src / "broken.png").write_bytes(b"not an image at all")
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(random_image(10, 12, 3)).save(other / "a.tif")  # same stem as in/a.png
    out = tmp_path / "out"
    summary = predict_files(TinyModel(), [src, other / "a.tif", tmp_path / "missing.png"], out)
    assert not summary.ok
    failed = {p.name for p, _ in summary.failures}
    assert failed == {"broken.png", "missing.png"}
    assert all("broken.png" in msg or "missing.png" in msg for _, msg in summary.failures)
    assert len(summary.written) == 3
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a_2_overlay.png", "a_2_prob.png", "a_overlay.png", "a_prob.png",
                     "b_overlay.png", "b_prob.png"]
    prob_png = np.asarray(Image.open(out / "a_prob.png"))
    assert prob_png.shape == (20, 24) and prob_png.dtype == np.uint8
    assert np.asarray(Image.open(out / "a_overlay.png").convert("RGB")).shape == (20, 24, 3)
    assert "FAILED" in summary.report() and "broken.png" in str(summary)


def test_collect_image_paths_filters_folder(tmp_path):
    (tmp_path / "x.PNG").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hi")
    assert [p.name for p in collect_image_paths([tmp_path])] == ["x.PNG"]


def test_overlay_blends_where_masked():
    from nclkit.viz import overlay

    image = np.full((4, 5, 3), 100, np.uint8)
    mask = np.zeros((4, 5), np.uint8)
    mask[1, 2] = 1
    out = overlay(image, mask, color=(255, 0, 0), alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == (4, 5, 3)
    assert tuple(out[1, 2]) == (178, 50, 50)  # 100 * 0.5 + (255, 0, 0) * 0.5, rounded
    assert tuple(out[0, 0]) == (100, 100, 100)
    half = overlay(image, np.full((4, 5), 0.5, np.float32), alpha=1.0)
    assert tuple(half[0, 0]) == (178, 50, 50)
    with pytest.raises(ValueError, match="differs"):
        overlay(image, np.zeros((3, 3)))


def test_category_map_colours():
    from nclkit.viz import CATEGORY_COLORS, category_map_rgb

    rgb = category_map_rgb(torch.tensor([[0, 1], [2, -1]]))
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == CATEGORY_COLORS[0] and tuple(rgb[0, 1]) == CATEGORY_COLORS[1]
    assert tuple(rgb[1, 0]) == CATEGORY_COLORS[2]
    b, r, p = CATEGORY_COLORS[0], CATEGORY_COLORS[1], CATEGORY_COLORS[2]
    assert b[2] > b[0] and r[0] > r[2] and p[0] > p[1] and p[2] > p[1]  # blue, red, purple
    with pytest.raises(ValueError, match="unknown category codes"):
        category_map_rgb(np.array([[3]]))


def test_show_samples_figure():
    from nclkit.viz import show_samples

    images = [random_image(10, 12), random_image(8, 8, 1)]
    fig = show_samples(images, [np.ones((10, 12), np.uint8), None], [np.zeros((10, 12)), np.ones((8, 8))])
    assert len(fig.axes) == 8
    assert len(show_samples(images).axes) == 4


def test_widgets_construct_without_frontend():
    pytest.importorskip("ipywidgets")
    from nclkit.viz import threshold_explorer, upload_and_predict

    image = random_image(16, 16)
    prob = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    mask = (prob > 0.7).astype(np.uint8)
    box = threshold_explorer(image, prob, mask)
    slider, status = box.children[0], box.children[1]
    assert "F1" in status.value
    slider.value = 0.7  # observers run without a frontend
    assert "F1 = 100.0%" in status.value
    ui = upload_and_predict(TinyModel())
    upload, status, results = ui.children
    assert upload.__class__.__name__ == "FileUpload"
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    now = datetime.datetime.now()
    upload.value = (  # what the browser would send (ipywidgets 8 layout)
        {"name": "x.png", "type": "image/png", "size": 1, "content": memoryview(png.getvalue()), "last_modified": now},
        {"name": "bad.png", "type": "image/png", "size": 3, "content": memoryview(b"abc"), "last_modified": now},
    )
    assert len(results.children) == 1 and "bad.png" in status.value
    with pytest.raises(ValueError):
        threshold_explorer(image, prob[:8])


def test_upload_uses_colabs_dialog_on_colab(monkeypatch):
    pytest.importorskip("ipywidgets")
    from nclkit.viz import upload_and_predict

    png = io.BytesIO()
    Image.fromarray(random_image(16, 16)).save(png, format="PNG")
    colab, files = types.ModuleType("google.colab"), types.ModuleType("google.colab.files")
    files.upload = lambda: {"big.png": png.getvalue(), "bad.jpg": b"abc"}
    colab.files = files
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.files", files)
    note, status, results = upload_and_predict(TinyModel()).children
    assert note.__class__.__name__ != "FileUpload"  # Colab's FileUpload drops files of 1 MB or more
    assert len(results.children) == 1 and "big.png" in results.children[0].children[0].value
    assert "1 predicted" in status.value and "bad.jpg" in status.value


def test_figure_slider_redraws_without_frontend():
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nclkit.viz import figure_slider

    drawn = []

    def draw(value):
        drawn.append(value)
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [0, value])
        return fig

    before = set(plt.get_fignums())
    box = figure_slider(draw, [0.1, 0.5, 1.0], 0.5, "tau")
    slider, picture = box.children
    first = picture.value
    assert drawn == [0.5] and first[:4] == b"\x89PNG"
    slider.value = 1.0  # observers run without a frontend
    assert drawn == [0.5, 1.0] and picture.value[:4] == b"\x89PNG" and picture.value != first
    assert set(plt.get_fignums()) == before, "the slider's figures are closed, not left to be shown twice"
    with pytest.raises(ValueError):
        figure_slider(draw, [0.1, 0.5], 0.3)


def test_prediction_figure(records, tmp_path):
    path = save_prediction_figure(RedDetector(), records, tmp_path / "fig.png", n=4)
    assert path.exists() and path.stat().st_size > 1000


def test_predicting_into_the_input_folder_twice_never_reads_its_own_outputs(tmp_path):
    for i in range(2):
        Image.fromarray(random_image(12, 16, i)).save(tmp_path / f"photo{i}.png")
    first = predict_files(TinyModel(), [tmp_path], tmp_path)
    second = predict_files(TinyModel(), [tmp_path], tmp_path)
    assert [p.name for p, _, _ in second.written] == ["photo0.png", "photo1.png"] == [p.name for p, _, _ in first.written]
    assert sorted(p.name for p in second.skipped) == sorted(p.name for _, *outs in first.written for p in outs)
    assert "4 earlier output(s) of nclkit predict skipped" in second.report()
    moved = tmp_path / "elsewhere"  # outputs carried to another folder are still known by their mark
    moved.mkdir()
    (tmp_path / "photo0_prob.png").rename(moved / "photo0_prob.png")
    assert predict_files(TinyModel(), [moved], tmp_path / "out").skipped == [moved / "photo0_prob.png"]


@pytest.mark.parametrize("own_range", [True, False])
def test_compare_maps_puts_every_model_beside_the_same_photos(checkpoint, tmp_path, own_range):
    import matplotlib

    matplotlib.use("Agg")
    from helpers import make_pair
    from nclkit.viz import compare_maps

    model, _ = load_model(checkpoint)
    records = [make_pair(tmp_path, f"im{i}") for i in range(2)]
    fig = compare_maps({"A": model, "B": model}, records, own_range=own_range)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 2 * (2 + 2 * (2 if own_range else 1))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[:4] == ["image", "ground truth", "A", "B"] and ("A\n(own range)" in titles) == own_range
    shared = [im for ax in images for im in ax.images if ax.get_title() in ("A", "B")]
    assert all(im.get_clim() == (0.0, 1.0) for im in shared)  # one scale for every model's map
    with pytest.raises(ValueError, match="at least one model"):
        compare_maps({}, records)
