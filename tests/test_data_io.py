"""load_image / load_mask on every mode and format, and clear errors on bad files."""
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from nclkit.data import DataError, binarize_mask, image_hw, load_image, load_mask

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RGB = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_rgb_lossless_roundtrip(tmp_path, suffix):
    p = tmp_path / f"a{suffix}"
    Image.fromarray(RGB).save(p)
    out = load_image(p)
    assert out.dtype == np.uint8 and out.shape == (12, 10, 3)
    np.testing.assert_array_equal(out, RGB)


def test_jpeg(tmp_path):
    p = tmp_path / "a.jpg"
    Image.fromarray(RGB).save(p, quality=95)
    out = load_image(p)
    assert out.shape == (12, 10, 3) and out.dtype == np.uint8


def test_grayscale_becomes_three_equal_channels(tmp_path):
    p = tmp_path / "g.png"
    Image.fromarray(RGB[:, :, 0]).save(p)
    out = load_image(p)
    assert out.shape == (12, 10, 3)
    np.testing.assert_array_equal(out[:, :, 1], RGB[:, :, 0])


def test_rgba_drops_alpha(tmp_path):
    p = tmp_path / "a.png"
    rgba = np.concatenate([RGB, np.full((12, 10, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(p)
    np.testing.assert_array_equal(load_image(p), RGB)


def test_palette(tmp_path):
    p = tmp_path / "p.png"
    img = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    img.save(p)
    out = load_image(p)
    np.testing.assert_array_equal(out, np.asarray(img.convert("RGB")))


def test_16bit_png_and_tiff_scaled(tmp_path):
    a16 = (np.arange(120, dtype=np.uint16).reshape(12, 10) * 500)
    p = tmp_path / "a16.png"
    Image.fromarray(a16).save(p)
    out = load_image(p)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 0], np.rint(a16 / 65535 * 255).astype(np.uint8))
    t = tmp_path / "a16.tif"
    tifffile.imwrite(t, np.stack([a16] * 3, axis=2), compression="deflate")
    np.testing.assert_array_equal(load_image(t)[:, :, 2], out[:, :, 0])


def test_deflate_tiff(tmp_path):
    p = tmp_path / "d.tif"
    tifffile.imwrite(p, RGB, compression="deflate")
    np.testing.assert_array_equal(load_image(p), RGB)


def test_missing_empty_truncated_corrupt_name_the_file(tmp_path):
    with pytest.raises(DataError, match="nope.png"):
        load_image(tmp_path / "nope.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty.png"):
        load_image(empty)
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(good.read_bytes()[:300])
    with pytest.raises(DataError, match="trunc.png"):
        load_image(trunc)
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"II*\x00garbage" * 10)
    with pytest.raises(DataError, match="junk.tif"):
        load_image(junk)
    jt = tmp_path / "trunc.jpg"
    Image.fromarray(RGB).save(tmp_path / "full.jpg")
    jt.write_bytes((tmp_path / "full.jpg").read_bytes()[:200])
    with pytest.raises(DataError, match="trunc.jpg"):
        load_image(jt)


def test_mask_binarised_at_127_5_on_brightest_channel():
    arr = np.zeros((2, 3, 3), np.uint8)
    arr[0, 0] = 255              # white -> 1
    arr[0, 1] = (128, 0, 0)      # dark red: brightest channel 128 -> 1
    arr[1, 0] = (127, 127, 127)  # gray just below half -> 0
    arr[1, 1] = (0, 0, 200)      # blue -> 1
    arr[1, 2] = (120, 127, 90)   # every channel below half -> 0
    np.testing.assert_array_equal(binarize_mask(arr), [[1, 1, 0], [0, 1, 0]])


def test_mask_01_valued_taken_as_binary(tmp_path):
    m = np.zeros((8, 8), np.uint8)
    m[2:5, 2:5] = 1
    p = tmp_path / "m.png"
    Image.fromarray(m).save(p)
    np.testing.assert_array_equal(load_mask(p), m)


def test_nonbinary_jpeg_mask_binarised(tmp_path):
    yy, xx = np.mgrid[:64, :64]
    m = (((yy - 30) ** 2 + (xx - 27) ** 2) < 17**2).astype(np.uint8) * 255  # a disc: edges off the 8x8 grid
    p = tmp_path / "m.jpg"
    Image.fromarray(m).save(p, quality=60)
    raw = np.asarray(Image.open(p))
    assert len(np.unique(raw)) > 2  # JPEG ringing: really non-binary
    out = load_mask(p)
    assert set(np.unique(out)) == {0, 1}
    assert (out != (m > 0)).mean() < 0.01


def test_mask_size_mismatch_names_both_sizes(tmp_path):
    p = tmp_path / "m.png"
    Image.fromarray(np.zeros((8, 9), np.uint8)).save(p)
    assert load_mask(p, expected_hw=(8, 9)).shape == (8, 9)
    with pytest.raises(DataError, match=r"m\.png.*8x9.*10x9"):
        load_mask(p, expected_hw=(10, 9))


def test_image_hw_from_header(tmp_path):
    p = tmp_path / "a.tif"
    tifffile.imwrite(p, RGB, compression="deflate")
    assert image_hw(p) == (12, 10)


@pytest.mark.data
def test_real_coverage_tiff():
    p = SHARED / "COVERAGE" / "image" / "1t.tif"
    if not p.is_file():
        pytest.skip(f"real data not found at {SHARED}")
    img = load_image(p)
    mask = load_mask(SHARED / "COVERAGE" / "mask" / "1forged.tif", expected_hw=img.shape[:2])
    assert img.dtype == np.uint8 and img.shape[2] == 3
    assert set(np.unique(mask)) == {0, 1}


REGION = (slice(2, 5), slice(3, 7))  # 12 pixels of a 6 x 8 mask


N_REGION = 12


def _region(dtype=np.uint8, value=1):
    m = np.zeros((6, 8), dtype)
    m[REGION] = value
    return m


def _palette(path, colour):
    im = Image.frombytes("P", (8, 6), _region().tobytes())
    im.putpalette([0, 0, 0, *colour])
    im.save(path)


def _rgb(path, colour, fmt=None):
    arr = np.zeros((6, 8, 3), np.uint8)
    arr[REGION] = colour
    Image.fromarray(arr).save(path, format=fmt)


MASK_WRITERS = {
    "png 8-bit 0/1": ("png", lambda p: Image.fromarray(_region()).save(p)),
    "png 8-bit 0/255": ("png", lambda p: Image.fromarray(_region(value=255)).save(p)),
    "png 16-bit 0/1": ("png", lambda p: Image.fromarray(_region(np.uint16)).save(p)),
    "png 16-bit 0/65535": ("png", lambda p: Image.fromarray(_region(np.uint16, 65535)).save(p)),
    "tiff 16-bit 0/1": ("tif", lambda p: tifffile.imwrite(p, _region(np.uint16))),
    "tiff float 0/1": ("tif", lambda p: tifffile.imwrite(p, _region(np.float32))),
    "palette index 1 red": ("png", lambda p: _palette(p, (255, 0, 0))),
    "palette index 1 = (1, 1, 1)": ("png", lambda p: _palette(p, (1, 1, 1))),
    "red on black": ("png", lambda p: _rgb(p, (255, 0, 0))),
    "green on black": ("png", lambda p: _rgb(p, (0, 255, 0))),
    "blue on black bmp": ("bmp", lambda p: _rgb(p, (0, 0, 255))),
    "rgba white, opaque": ("png", lambda p: Image.fromarray(
        np.dstack([_region(value=255)] * 3 + [np.full((6, 8), 255, np.uint8)])).save(p)),
    "1-bit": ("png", lambda p: Image.fromarray(_region().astype(bool)).save(p)),
}


@pytest.mark.parametrize("name", sorted(MASK_WRITERS))
def test_masks_binarised_as_meant(name, tmp_path):
    suffix, write = MASK_WRITERS[name]
    path = tmp_path / f"mask.{suffix}"
    write(path)
    mask = load_mask(path, expected_hw=(6, 8))
    assert mask.dtype == np.uint8 and int(mask.sum()) == N_REGION, name
    assert mask[REGION].all()


@pytest.mark.parametrize("code", range(1, 9))
@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_applied_to_images_and_masks_alike(code, suffix, tmp_path):
    stored = np.zeros((6, 10, 3), np.uint8)
    stored[1:3, 2:5] = 255  # a bright block, also the mask's region: the pair must stay aligned
    exif = Image.Exif()
    exif[0x0112] = code
    Image.fromarray(stored).save(tmp_path / f"img{suffix}", exif=exif, quality=100)
    Image.fromarray(stored[:, :, 0]).save(tmp_path / "mask.png", exif=exif)
    image = load_image(tmp_path / f"img{suffix}")
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / f"img{suffix}")).convert("RGB"))
    np.testing.assert_array_equal(image, upright)
    mask = load_mask(tmp_path / "mask.png", expected_hw=image.shape[:2])
    np.testing.assert_array_equal(mask, image[:, :, 0] > 127)
    assert image_hw(tmp_path / f"img{suffix}") == image.shape[:2] == ((10, 6) if code >= 5 else (6, 10))


@pytest.mark.parametrize("code", [3, 6, 8])
def test_tiff_orientation_read_by_tifffile_matches(code, tmp_path):
    stored = np.arange(6 * 10 * 3, dtype=np.uint8).reshape(6, 10, 3)
    tifffile.imwrite(tmp_path / "a.tif", stored, photometric="rgb", extratags=[(0x0112, "H", 1, code, True)])
    exif = Image.Exif()
    exif[0x0112] = code
    Image.fromarray(stored).save(tmp_path / "a.png", exif=exif)
    np.testing.assert_array_equal(load_image(tmp_path / "a.tif"), load_image(tmp_path / "a.png"))
    assert image_hw(tmp_path / "a.tif") == load_image(tmp_path / "a.tif").shape[:2]


def test_a_multi_page_tiff_is_its_first_page_not_colour_channels(tmp_path):
    pages = [Image.fromarray(np.full((6, 8), v, np.uint8)) for v in (10, 20, 30)]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    with pytest.warns(UserWarning, match="3 pages; only the first"):
        image = load_image(tmp_path / "pages.tif")
    assert image.shape == (6, 8, 3) and (image == 10).all()


def test_a_planar_rgb_tiff_is_still_colour(tmp_path):
    tifffile.imwrite(tmp_path / "planar.tif", np.stack([np.full((6, 8), v, np.uint8) for v in (10, 20, 30)]),
                     photometric="rgb", planarconfig="separate")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(tmp_path / "planar.tif")[0, 0].tolist() == [10, 20, 30]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_large_photo_has_a_clear_limit_and_an_override(suffix, tmp_path, monkeypatch):
    path = tmp_path / f"big{suffix}"
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(path)
    monkeypatch.setenv("NCLKIT_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(DataError, match="limit of 1,000 pixels.*NCLKIT_MAX_IMAGE_PIXELS=1200") as err:
        load_image(path)
    assert "corrupt" not in str(err.value)
    monkeypatch.setenv("NCLKIT_MAX_IMAGE_PIXELS", "0")
    assert load_image(path).shape == (30, 40, 3)
    monkeypatch.delenv("NCLKIT_MAX_IMAGE_PIXELS")
    assert load_image(path).shape == (30, 40, 3)  # the default admits 100 MP photos (about 89 MP in Pillow)
