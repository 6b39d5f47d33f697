"""The forgery operations both generators share: each one's contract on small arrays."""
import numpy as np

from nclkit.data import tampering as T


def _img(seed=0, size=32):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_jpeg_keeps_shape_and_changes_pixels():
    img = _img()
    out = T.jpeg(img, 30)
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)


def test_noisy_rounds_or_truncates():
    img = np.full((2, 2, 3), 10, np.uint8)
    noise = np.full(img.shape, 0.6)
    assert (T.noisy(img, noise) == 10).all() and (T.noisy(img, noise, offset=0.5) == 11).all()
    assert (T.noisy(img, np.full(img.shape, -50.0)) == 0).all()


def test_pasted_is_exact_outside_the_region():
    target, content = _img(1), _img(2)
    region = np.zeros((32, 32), np.uint8)
    region[8:20, 8:20] = 1
    alpha = T.blurred(region.astype(np.float32), 2.0)  # spills outside the region
    out = T.pasted(target, content, alpha, region)
    assert np.array_equal(out[region == 0], target[region == 0])
    assert np.array_equal(T.pasted(target, content, region.astype(np.float32))[region == 1], content[region == 1])


def test_warped_identity_and_removed_fills_only_the_region():
    img = _img(3)
    eye = np.float32([[1, 0, 0], [0, 1, 0]])
    assert np.array_equal(T.warped(img, eye), img) and np.array_equal(T.warped(img, eye, inverse=True), img)
    region = np.zeros((32, 32), np.uint8)
    region[10:16, 10:16] = 1
    out = T.removed(np.random.default_rng(0), img, region)
    assert np.array_equal(out[region == 0], img[region == 0])


def test_resampled_keeps_size():
    assert T.resampled(_img(4, 64), 0.5).shape == (64, 64, 3)


def test_kinds():
    assert T.KINDS == ("splice", "copy_move", "removal")
