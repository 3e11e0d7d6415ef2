"""16- and 32-bit grayscale images with color_mode="grayscale" keep their
values, as Keras' load_img + img_to_array keep them (issue 12 section 4):
Pillow opens them as "I;16" / "I", load_img does not convert them to "L"
and resizes them in their own mode.  Exact equality with Keras' legacy
iterators, after resize, rescale, the featurewise statistics and the
augmentation; a uint8 batch follows the stated rule (Pillow's
convert("L"))."""

import warnings

import numpy as np
import pytest
from PIL import Image

from fastseq import augment
from fastseq.batch import keras_resize

keras = pytest.importorskip("keras")
K = pytest.importorskip("keras.src.legacy.preprocessing.image")

from fastseq import ImageDataGenerator as IDG  # noqa: E402
from conftest import PANDAS_MISSING  # noqa: E402

INTERPOLATIONS = ["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"]
SIZES = [(23, 17), (9, 7), (40, 31)]          # the images' own size, down, up


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """a/: 16-bit PNGs (full range, interlaced, a smooth ramp below 256,
    odd sizes), a 32-bit TIFF (negative and > 2**24 values), an 8-bit PNG
    and a 16-bit RGB PNG (converted to L by Keras too)."""
    root = tmp_path_factory.mktemp("wide")
    (root / "a").mkdir()
    r = np.random.default_rng(16)
    y, x = np.mgrid[0:23, 0:17]
    Image.fromarray(r.integers(0, 65536, (23, 17)).astype(np.uint16)).save(root / "a/full.png")
    Image.fromarray(((y * 2900 + x * 150) % 65536).astype(np.uint16)).save(
        root / "a/adam7.png", interlace=1)
    Image.fromarray((y * 11 + x).astype(np.uint16)).save(root / "a/low.png")
    Image.fromarray(r.integers(0, 65536, (30, 12)).astype(np.uint16)).save(root / "a/tall.png")
    Image.fromarray(r.integers(-2**31, 2**31 - 1, (23, 17)).astype(np.int32)).save(
        root / "a/i32.tif")
    Image.fromarray(r.integers(0, 256, (23, 17)).astype(np.uint8)).save(root / "a/l8.png")
    modes = {p.name: Image.open(p).mode for p in (root / "a").iterdir()}
    assert modes == {"full.png": "I;16", "adam7.png": "I;16", "low.png": "I;16",
                     "tall.png": "I;16", "i32.tif": "I", "l8.png": "L"}
    return root


def batches(gen_kw, tree, **kw):
    kw = dict(dict(color_mode="grayscale", shuffle=False, class_mode=None, batch_size=6), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f, k = IDG(**gen_kw), K.ImageDataGenerator(**gen_kw)
    return f, k, f.flow_from_directory(tree, **kw), k.flow_from_directory(tree, **kw)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("keep_aspect_ratio", [False, True])
def test_values_kept_as_keras(tree, interpolation, size, keep_aspect_ratio):
    _, _, fi, ki = batches({}, tree, target_size=size, interpolation=interpolation,
                           keep_aspect_ratio=keep_aspect_ratio)
    a, b = fi[0], ki[0]
    assert a.dtype == b.dtype == np.float32
    assert b.max() > 255                      # the fixture does test wide values
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("gen_kw", [dict(rescale=1 / 65535.0), dict(samplewise_center=True),
                                    dict(featurewise_center=True,
                                         featurewise_std_normalization=True, rescale=0.001)],
                         ids=["rescale", "samplewise", "featurewise"])
def test_standardized_as_keras(tree, gen_kw):
    f, k, fi, ki = batches(gen_kw, tree, target_size=(9, 7), interpolation="bilinear")
    if gen_kw.get("featurewise_center"):
        sample = batches({}, tree, target_size=(9, 7), interpolation="bilinear")[3][0]
        k.fit(sample)
        f.fit(sample)
        np.testing.assert_array_equal(f.mean, k.mean)
        assert fi._fused_norm() is not None
    np.testing.assert_array_equal(fi[0], ki[0])


def test_channels_first_and_float64(tree):
    for kw in (dict(data_format="channels_first"), dict(dtype="float64")):
        _, _, fi, ki = batches(kw, tree, target_size=(9, 7), interpolation="bicubic")
        a, b = fi[0], ki[0]
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def test_augmented_equals_keras_array_then_apply_transform(tree):
    """The augmentation warps the wide float32 values: equal to
    img_to_array(load_img(...)) then apply_transform, exactly."""
    gen_kw = dict(rotation_range=30, zoom_range=0.2, horizontal_flip=True, rescale=1 / 65535.0)
    f, _, fi, _ = batches(gen_kw, tree, target_size=(9, 7), interpolation="bilinear", seed=5)
    idx = fi.index_array[:6]
    a = fi[0]
    for img, j, p in zip(a, idx, fi._augmenter.transforms(fi._epoch, idx)):
        x = keras.utils.img_to_array(keras.utils.load_img(
            fi.filepaths[j], color_mode="grayscale", target_size=(9, 7),
            interpolation="bilinear"))
        want = augment.apply_transform(x, p, data_format="channels_last",
                                       fill_mode=f.fill_mode, cval=f.cval,
                                       interpolation_order=f.interpolation_order)
        np.testing.assert_array_equal(img, want * np.float32(1 / 65535.0))


def test_dataframe_keeps_values(tree):
    pd = pytest.importorskip("pandas", reason=PANDAS_MISSING)
    df = pd.DataFrame({"filename": sorted(p.name for p in (tree / "a").iterdir())})
    kw = dict(directory=str(tree / "a"), target_size=(9, 7), color_mode="grayscale",
              class_mode=None, shuffle=False, batch_size=6, interpolation="lanczos")
    a = IDG().flow_from_dataframe(df, **kw)[0]
    b = K.ImageDataGenerator().flow_from_dataframe(df, **kw)[0]
    np.testing.assert_array_equal(a, b)


def test_uint8_batch_is_pillow_convert_L(tree):
    """The stated rule for uint8: Pillow's convert("L") (clipped at 255)
    then Keras' resize, never a wrapped or undefined cast."""
    _, _, fi, _ = batches(dict(dtype="uint8"), tree, target_size=(9, 7),
                          interpolation="bilinear")
    a = fi[0]
    assert a.dtype == np.uint8
    for img, path in zip(a, fi.filepaths):
        im = keras_resize(Image.open(path).convert("L"), (9, 7), "bilinear", False)
        np.testing.assert_array_equal(img[..., 0], np.asarray(im))


def test_rgb_of_a_16_bit_image_unchanged(tree):
    """color_mode="rgb" converts as before (Keras converts to RGB too)."""
    _, _, fi, ki = batches({}, tree, target_size=(9, 7), interpolation="bilinear",
                           color_mode="rgb")
    np.testing.assert_array_equal(fi[0], ki[0])


def test_keras_resize_is_load_img(tree):
    for path in sorted((tree / "a").iterdir()):
        for kar in (False, True):
            want = keras.utils.load_img(path, color_mode="grayscale", target_size=(9, 13),
                                        interpolation="hamming", keep_aspect_ratio=kar)
            im = Image.open(path)
            if im.mode not in ("L", "I;16", "I"):
                im = im.convert("L")
            got = keras_resize(im, (9, 13), "hamming", kar)
            assert got.mode == want.mode
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_wide_gray_option_is_checked():
    from fastseq.options import DecodeOptions

    for kw in (dict(color_mode="rgb", dtype="float32"), dict(color_mode="grayscale")):
        with pytest.raises(ValueError, match="wide_gray needs"):
            DecodeOptions((4, 4), wide_gray=True, **kw)
    assert DecodeOptions((4, 4), wide_gray=True, color_mode="grayscale",
                         dtype="float32").c is not None
