"""Parity of fastseq.ImageDataGenerator.flow_from_directory with Keras' own
legacy ImageDataGenerator (keras.src.legacy.preprocessing.image) of the
pinned Keras, on a generated tree with nested subfolders, mixed-case
extensions, files that are not images, an empty class folder and symlinked
folders.

Listing, order, labels, splits and pixels must be identical.  Pixels are
compared with dct_scaling=False (Pillow's full decode, as Keras): fastseq's
resampler reproduces Pillow's arithmetic, its fused rescale is numpy's
float32 ``x * rescale``, and standardisation runs on the same float32 layout
as Keras', so every value is bit-identical, after rescale, samplewise
statistics and dtype conversion alike.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

pytest.importorskip("keras")

import fastseq  # noqa: E402
from _keras_helpers import build_parity_tree, keras_legacy  # noqa: E402


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return str(build_parity_tree(tmp_path_factory.mktemp("parity")))


def flows(tree, capsys=None, gen_kwargs=None, **kwargs):
    """(fastseq iterator, Keras iterator) built with the same arguments;
    when `capsys` is given, also checks that both print the same line."""
    gen_kwargs = gen_kwargs or {}
    fs_extra = {k: kwargs.pop(k) for k in ("dct_scaling",) if k in kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = fastseq.ImageDataGenerator(**gen_kwargs).flow_from_directory(
            tree, **kwargs, **fs_extra)
        if capsys is not None:
            ours_out = capsys.readouterr().out
        ref = keras_legacy()(**gen_kwargs).flow_from_directory(tree, **kwargs)
        if capsys is not None:
            ref_out = capsys.readouterr().out
            assert ours_out == ref_out
            assert ours_out.startswith("Found ")
    return ours, ref


def assert_same_listing(ours, ref):
    assert ours.filenames == ref.filenames
    assert ours.filepaths == ref.filepaths
    assert ours.classes.dtype == ref.classes.dtype == np.int32
    np.testing.assert_array_equal(ours.classes, ref.classes)
    np.testing.assert_array_equal(ours.labels, ref.labels)
    assert ours.class_indices == ref.class_indices
    assert list(ours.class_indices) == list(ref.class_indices)
    assert ours.num_classes == ref.num_classes
    assert ours.samples == ref.samples == ours.n == ref.n
    assert ours.image_shape == ref.image_shape
    assert ours.split == ref.split
    assert len(ours) == len(ref)


@pytest.mark.parametrize("follow_links", [False, True])
@pytest.mark.parametrize("classes", [None, ["zeta", "alpha", "gamma", "empty"],
                                     ["beta", "missing"]],
                         ids=["auto", "given-order", "given-missing"])
def test_listing_matches_keras(tree, capsys, follow_links, classes):
    ours, ref = flows(tree, capsys, classes=classes, follow_links=follow_links,
                      shuffle=False)
    assert_same_listing(ours, ref)


def test_listing_covers_the_tree_cases(tree):
    """The fixture really exercises what it claims (guards the other tests)."""
    ours, _ = flows(tree, shuffle=False)
    names = ours.filenames
    assert list(ours.class_indices) == ["alpha", "beta", "empty", "gamma", "zeta"]
    assert not any(n.startswith("empty/") for n in names)
    assert "gamma/g0.jpg" in names and "gamma/sub/g2.png" in names    # symlinked class
    assert not any("linked" in n for n in names)                     # not followed
    # Keras sorts walked folders by path string: "sub" < "sub-b" < "sub/deeper"
    # ('-' sorts before '/'), so sub-b's files come between sub's and deeper's.
    order = [names.index(f"alpha/{n}") for n in ("sub/d1.jpg", "sub-b/e1.jpg",
                                                  "sub/deeper/d2.png")]
    assert order == sorted(order)
    assert "alpha/a02.JPG" in names and "beta/UPPER.JPEG" in names
    assert not any(n.endswith((".txt", ".csv", "README", ".DS_Store")) for n in names)
    followed, _ = flows(tree, follow_links=True, shuffle=False)
    assert "zeta/linked/l0.jpg" in followed.filenames


@pytest.mark.parametrize("split", [0.25, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("subset", ["training", "validation"])
def test_validation_split_matches_keras(tree, capsys, split, subset):
    ours, ref = flows(tree, capsys, gen_kwargs=dict(validation_split=split),
                      subset=subset, shuffle=False)
    assert_same_listing(ours, ref)


def test_split_subsets_partition_the_data(tree):
    train, _ = flows(tree, gen_kwargs=dict(validation_split=0.3), subset="training")
    val, _ = flows(tree, gen_kwargs=dict(validation_split=0.3), subset="validation")
    full, _ = flows(tree)
    assert sorted(train.filenames + val.filenames) == sorted(full.filenames)
    assert not set(train.filenames) & set(val.filenames)


@pytest.mark.parametrize("class_mode", ["categorical", "binary", "sparse", "input", None])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_batches_match_keras(tree, class_mode, interpolation):
    """Same batches in the same order with shuffle=False: labels and pixels
    identical (values, shape, dtype), after rescale."""
    ours, ref = flows(tree, gen_kwargs=dict(rescale=1 / 255), target_size=(24, 32),
                      class_mode=class_mode, batch_size=5, shuffle=False,
                      interpolation=interpolation, dct_scaling=False)
    assert len(ours) == len(ref) == -(-ref.samples // 5)
    for i in range(len(ref)):
        got, want = ours[i], ref[i]
        if class_mode is None:
            got, want = (got,), (want,)
        assert type(got) is type(want) and len(got) == len(want)
        x, rx = got[0], want[0]
        assert x.shape == rx.shape and x.dtype == rx.dtype == np.float32
        names = ref.filenames[i * 5:(i + 1) * 5]
        np.testing.assert_array_equal(x, rx, err_msg=f"batch {i} ({names})")
        if class_mode is not None:
            y, ry = got[1], want[1]
            assert y.shape == ry.shape and y.dtype == ry.dtype
            if class_mode == "input":
                np.testing.assert_array_equal(y, ry)
                np.testing.assert_array_equal(y, x)
            else:
                np.testing.assert_array_equal(y, ry)


@pytest.mark.parametrize("color_mode", ["rgb", "grayscale", "rgba"])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic", "lanczos",
                                           "box", "hamming"])
@pytest.mark.parametrize("keep_aspect_ratio", [False, True])
def test_pixels_match_keras(tree, color_mode, interpolation, keep_aspect_ratio):
    """Every image of the tree (JPEG RGB and grayscale, PNG RGB/L/RGBA/P,
    BMP, PPM, TIFF; down- and upscaled) in every colour mode."""
    ours, ref = flows(tree, gen_kwargs=dict(rescale=1 / 255), target_size=(40, 36),
                      color_mode=color_mode, class_mode=None, batch_size=64,
                      shuffle=False, interpolation=interpolation,
                      keep_aspect_ratio=keep_aspect_ratio, dct_scaling=False)
    x, rx = ours[0], ref[0]
    assert x.shape == rx.shape == (ref.samples, 40, 36, {"rgb": 3, "grayscale": 1, "rgba": 4}[color_mode])
    per_image = np.abs(x - rx).reshape(len(x), -1).max(axis=1) * 255
    bad = {ref.filenames[i]: float(d) for i, d in enumerate(per_image) if d != 0}
    assert not bad, f"pixels differ from Keras' (max |diff| x 255 per file): {bad}"


def test_target_size_equal_to_image_size_is_not_resized(tree):
    ours, ref = flows(tree, target_size=(45, 45), class_mode=None, batch_size=64,
                      shuffle=False, dct_scaling=False, classes=["alpha"])
    np.testing.assert_array_equal(ours[0], ref[0])


@pytest.mark.parametrize("gen_kwargs", [
    dict(samplewise_center=True),
    dict(samplewise_center=True, samplewise_std_normalization=True, rescale=1 / 255),
    dict(preprocessing_function=lambda im: im[..., ::-1] * 0.5 + 3.0, rescale=0.01),
    dict(preprocessing_function=lambda im: im - im.mean(), samplewise_std_normalization=True),
    dict(data_format="channels_first", rescale=1 / 255),
    dict(data_format="channels_first", samplewise_center=True,
         preprocessing_function=lambda im: im * 2.0),
    dict(dtype="float64", rescale=1 / 255),
    dict(dtype="uint8"),
    dict(dtype="float16", rescale=1 / 127.5),
    dict(data_format="channels_first", samplewise_std_normalization=True, rescale=1 / 255),
    dict(dtype="float64", samplewise_std_normalization=True),
    dict(dtype="int32", rescale=3.0),
], ids=["center", "center+std", "preproc+rescale", "preproc+std", "channels_first",
        "channels_first+preproc", "float64", "uint8", "float16", "channels_first+std",
        "float64+std", "int32"])
@pytest.mark.parametrize("color_mode", ["rgb", "grayscale", "rgba"])
def test_standardization_matches_keras(tree, gen_kwargs, color_mode):
    """Bit-identical after standardisation too: Keras computes in float32
    (img_to_array's floatx) and then casts to `dtype`, and with
    channels_first its samplewise statistics reduce the transposed view of
    the (H, W, C) image, whose summation order fastseq keeps."""
    ours, ref = flows(tree, gen_kwargs=gen_kwargs, target_size=(20, 24), batch_size=8,
                      class_mode="sparse", shuffle=False, dct_scaling=False,
                      classes=["alpha", "beta"], color_mode=color_mode)
    assert len(ours) == len(ref)
    for i in range(len(ref)):
        (x, y), (rx, ry) = ours[i], ref[i]
        assert x.shape == rx.shape and x.dtype == rx.dtype
        assert y.dtype == ry.dtype
        np.testing.assert_array_equal(y, ry)
        np.testing.assert_array_equal(x, rx, err_msg=f"batch {i}")


def test_save_to_dir_matches_keras(tree, tmp_path):
    out_ours, out_ref = tmp_path / "ours", tmp_path / "ref"
    out_ours.mkdir()
    out_ref.mkdir()
    common = dict(gen_kwargs=dict(rescale=1 / 255), target_size=(16, 20), batch_size=4,
                  shuffle=False, classes=["beta"], save_prefix="aug", save_format="png",
                  dct_scaling=False)
    ours, _ = flows(tree, save_to_dir=str(out_ours), **common)
    _, ref = flows(tree, save_to_dir=str(out_ref), **common)
    ours[1]
    ref[1]

    def by_index(folder):
        files = {}
        for name in os.listdir(folder):
            prefix, index, rest = name.split("_")
            assert prefix == "aug" and rest.endswith(".png") and rest[:-4].isdigit()
            files[int(index)] = np.asarray(fastseq.decode_image(str(folder / name)))
        return files

    got, want = by_index(out_ours), by_index(out_ref)
    assert sorted(got) == sorted(want) == [4, 5, 6, 7]
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


def test_listing_of_a_large_flat_folder_matches_keras(tmp_path):
    """Many files, names that sort differently by case and punctuation."""
    rng = np.random.default_rng(7)
    exts = ["jpg", "JPG", "png", "jpeg", "txt", "tiff", "gif", "bmp", "xjpg", "Png"]
    for cls in ("a", "b"):
        d = tmp_path / cls
        (d / "s").mkdir(parents=True)
        (d / "s-t").mkdir()
        for i in range(1500):
            name = f"{rng.choice(['img', 'IMG', 'Img_', 'a-b', 'a.b'])}{i}.{rng.choice(exts)}"
            sub = rng.choice(["", "s/", "s-t/"])
            (d / f"{sub}{name}").touch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = fastseq.DirectoryIterator(str(tmp_path), None, shuffle=False)
        ref = keras_legacy()().flow_from_directory(str(tmp_path), shuffle=False)
    assert ours.samples > 2000
    assert ours.filenames == ref.filenames
    np.testing.assert_array_equal(ours.classes, ref.classes)
