"""nclkit.engine.predict with a tiny stand-in model (1 conv), no trained weights needed."""
import datetime
import io
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from nclkit.engine.predict import PAD_MULTIPLE, predict_probability
from nclkit.viz import collect_image_paths, predict_files


@dataclass
class _Out:
    logits: torch.Tensor


class _Cfg:
    eval_max_side = 64


class TinyModel(nn.Module):
    """Records its input shapes; logit = red channel minus green, at the input size."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([5.0, -5.0, 0.0]).view(1, 3, 1, 1))
            self.conv.bias.zero_()
        self.cfg = _Cfg()
        self.seen = []

    def forward(self, x):
        self.seen.append((tuple(x.shape), self.training, torch.is_grad_enabled()))
        return _Out(self.conv(x))


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("hw", [(37, 50), (32, 32), (1, 5)])
def test_original_resolution_and_padding(hw):
    model = TinyModel()
    prob = predict_probability(model, _image(*hw), max_side=1000)
    assert prob.shape == hw and prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    (shape, training, grad), = model.seen
    assert shape[2] % PAD_MULTIPLE == 0 and shape[3] % PAD_MULTIPLE == 0
    assert shape[2] - hw[0] < PAD_MULTIPLE and shape[3] - hw[1] < PAD_MULTIPLE
    assert not training and not grad


def test_values_match_direct_forward_without_resize():
    from nclkit.data.transforms import to_tensor_image

    model = TinyModel()
    image = _image(20, 30)
    prob = predict_probability(model, image, max_side=1000)
    expected = torch.sigmoid(model.conv(to_tensor_image(image)[None]))[0, 0].detach().numpy()
    np.testing.assert_allclose(prob, expected, atol=1e-6)  # 1x1 conv: padding does not leak in


def test_max_side_from_cfg_and_resize_back():
    model = TinyModel()  # cfg.eval_max_side = 64
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :100, 0] = 255  # left half red -> high probability
    prob = predict_probability(model, image)
    assert prob.shape == (100, 200)
    (shape, _, _), = model.seen
    assert shape[2:] == (32, 64)  # longer side 200 -> 64, shorter 100 -> 32, already multiples of 32
    assert prob[:, :90].min() > 0.9 and prob[:, 110:].max() < 0.6


def test_training_state_restored_and_bad_input():
    model = TinyModel().train()
    predict_probability(model, _image(8, 8))
    assert model.training
    with pytest.raises(ValueError, match="uint8"):
        predict_probability(model, np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predict_probability(model, np.zeros((8, 8), np.uint8))


def test_predict_files_writes_outputs_and_reports_failures(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_image(20, 24, 1)).save(src / "a.png")
    Image.fromarray(_image(16, 16, 2)).save(src / "b.jpg")
    (src / "broken.png").write_bytes(b"not an image at all")
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(_image(10, 12, 3)).save(other / "a.tif")  # same stem as in/a.png
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


# --- viz helpers used with predictions (nclkit.viz) ---

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

    images = [_image(10, 12), _image(8, 8, 1)]
    fig = show_samples(images, [np.ones((10, 12), np.uint8), None], [np.zeros((10, 12)), np.ones((8, 8))])
    assert len(fig.axes) == 8
    assert len(show_samples(images).axes) == 4


def test_widgets_construct_without_frontend():
    pytest.importorskip("ipywidgets")
    from nclkit.viz import threshold_explorer, upload_and_predict

    image = _image(16, 16)
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
