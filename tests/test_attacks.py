"""Table 3 attacks (nclkit.engine.attacks): each changes the image as specified, seeded, with clear errors."""
import cv2
import numpy as np
import pytest

from nclkit.engine.robustness import TABLE3_ATTACKS, Attack, apply_attack, parse_attack


def _image(h=64, w=80, seed=0):
    rng = np.random.default_rng(seed)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (7, 7), 0)
    return smooth  # natural-ish content so JPEG and blur behave like on photos


def test_table3_order_and_labels():
    labels = [parse_attack(a).label for a in TABLE3_ATTACKS]
    assert labels[0] == "Resize(0.78x)" and labels[2] == "GaussianBlur(size=3)"
    assert labels[4] == "GaussianNoise(sigma=3)" and labels[7] == "JPEGCompress(100)"
    assert [str(parse_attack(a)) for a in TABLE3_ATTACKS] == list(TABLE3_ATTACKS)


@pytest.mark.parametrize("factor,expected", [(0.78, (50, 62)), (0.25, (16, 20))])
def test_resize_shapes(factor, expected):
    out = apply_attack(_image(), f"resize:{factor}")
    assert out.shape == (*expected, 3) and out.dtype == np.uint8  # round(64 * f), round(80 * f)


@pytest.mark.parametrize("k", [3, 5])
def test_blur_equals_opencv_sigma_zero(k):
    image = _image()
    out = apply_attack(image, f"blur:{k}")
    np.testing.assert_array_equal(out, cv2.GaussianBlur(image, (k, k), 0))
    assert not np.array_equal(out, image)
    # sigma from OpenCV's rule for k is close to what sigma 0 gives
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
    explicit = cv2.GaussianBlur(image, (k, k), sigma)
    assert np.abs(out.astype(int) - explicit.astype(int)).max() <= 3


@pytest.mark.parametrize("sigma", [3, 5])
def test_noise_std_and_seed(sigma):
    image = np.full((128, 128, 3), 128, np.uint8)  # mid-grey: clipping never triggers
    out = apply_attack(image, f"noise:{sigma}", seed=1)
    diff = out.astype(float) - image
    assert abs(diff.mean()) < 0.1
    assert diff.std() == pytest.approx(np.sqrt(sigma**2 + 1 / 12), rel=0.03)  # + rounding noise
    np.testing.assert_array_equal(out, apply_attack(image, f"noise:{sigma}", seed=1))
    assert not np.array_equal(out, apply_attack(image, f"noise:{sigma}", seed=2))


def test_noise_clips():
    white = np.full((16, 16, 3), 255, np.uint8)
    out = apply_attack(white, "noise:5", seed=0)
    assert out.dtype == np.uint8 and out.max() == 255 and out.min() < 255


@pytest.mark.parametrize("quality", [50, 100])
def test_jpeg_roundtrip(quality):
    image = _image()
    out = apply_attack(image, f"jpeg:{quality}")
    ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    np.testing.assert_array_equal(out, cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
    assert not np.array_equal(out, image)  # lossy even at quality 100 (4:2:0 chroma)


def test_jpeg_quality_orders_error():
    image = _image()
    err = {q: np.abs(apply_attack(image, f"jpeg:{q}").astype(int) - image).mean() for q in (50, 100)}
    assert err[50] > err[100]


def test_deterministic_attacks_ignore_seed():
    image = _image()
    for spec in ("resize:0.5", "blur:3", "jpeg:50"):
        np.testing.assert_array_equal(apply_attack(image, spec, seed=0), apply_attack(image, spec, seed=9))


@pytest.mark.parametrize("spec", ["rotate:3", "blur", "blur:4", "blur:x", "jpeg:101", "jpeg:7.5",
                                  "resize:0", "noise:-1", "a:b:c", 3])
def test_bad_specs_raise(spec):
    with pytest.raises(ValueError) as info:
        parse_attack(spec)
    msg = str(info.value)
    assert "resize" in msg or "blur" in msg or "jpeg" in msg or "noise" in msg


def test_unknown_kind_lists_kinds():
    with pytest.raises(ValueError, match="resize.*blur.*noise.*jpeg"):
        parse_attack("rotate:3")


def test_parse_types():
    assert parse_attack("blur:3") == Attack("blur", 3)
    assert isinstance(parse_attack("jpeg:50").value, int)
    assert parse_attack(" NOISE : 3 ") == Attack("noise", 3.0)


def test_bad_image_raises():
    with pytest.raises(ValueError, match="uint8"):
        apply_attack(np.zeros((4, 4, 3), np.float32), "blur:3")


def test_a_huge_blur_is_refused_with_the_value_as_typed():
    with pytest.raises(ValueError, match="blur kernel size 1000001 in 'blur:1000001' must be an odd integer from 1 to 255"):
        parse_attack("blur:1000001")
    assert str(parse_attack("blur:255")) == "blur:255" and parse_attack("blur:255").label == "GaussianBlur(size=255)"
