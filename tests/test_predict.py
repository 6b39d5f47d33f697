"""nclkit.engine.predict with a tiny stand-in model (1 conv), no trained weights needed."""

import numpy as np
import pytest
import torch

from helpers import TinyModel, random_image
from nclkit.engine.predict import PAD_MULTIPLE, predict_probability


@pytest.mark.parametrize("hw", [(37, 50), (32, 32), (1, 5)])
def test_original_resolution_and_padding(hw):
    model = TinyModel()
    prob = predict_probability(model, random_image(*hw), max_side=1000)
    assert prob.shape == hw and prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    (shape, training, grad), = model.seen
    assert shape[2] % PAD_MULTIPLE == 0 and shape[3] % PAD_MULTIPLE == 0
    assert shape[2] - hw[0] < PAD_MULTIPLE and shape[3] - hw[1] < PAD_MULTIPLE
    assert not training and not grad


def test_values_match_direct_forward_without_resize():
    from nclkit.data.transforms import to_tensor_image

    model = TinyModel()
    image = random_image(20, 30)
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
    predict_probability(model, random_image(8, 8))
    assert model.training
    with pytest.raises(ValueError, match="uint8"):
        predict_probability(model, np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predict_probability(model, np.zeros((8, 8), np.uint8))


# --- viz helpers used with predictions (nclkit.viz) ---
