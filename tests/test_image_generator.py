"""fastseq.ImageDataGenerator / DirectoryIterator: arguments, attributes,
order, errors.  (Parity with Keras itself is in test_keras_parity.py.)"""

from __future__ import annotations

import os
import pathlib
import warnings

import numpy as np
import pytest

pytest.importorskip("keras")

import fastseq  # noqa: E402
from _keras_helpers import build_class_tree, photo, save  # noqa: E402

IDG = fastseq.ImageDataGenerator


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return str(build_class_tree(tmp_path_factory.mktemp("gen"),
                                {"cats": 7, "dogs": 5, "owls": 6}))


def reference(it, index_array):
    """Independent decode of the samples at `index_array`, one image per
    call, with the iterator's options."""
    return np.concatenate([
        fastseq.load_batch([it.filepaths[j]], it.target_size, color_mode=it.color_mode,
                           interpolation=it.interpolation, dtype="float32")
        for j in index_array])


# -- constructor arguments ------------------------------------------------------

# Issue 11 section 1: every random transform is accepted (they used to raise
# NotImplementedError) and makes the generator augment.
TRANSFORMS = [
    ("rotation_range", 20), ("width_shift_range", 0.1), ("width_shift_range", 3),
    ("height_shift_range", [-3, 3]), ("brightness_range", (0.9, 1.1)),
    ("shear_range", 5.0), ("zoom_range", 0.2), ("zoom_range", [0.8, 1.0]),
    ("channel_shift_range", 10.0), ("horizontal_flip", True), ("vertical_flip", True),
]


@pytest.mark.parametrize("name,value", TRANSFORMS, ids=[f"{n}={v}" for n, v in TRANSFORMS])
def test_random_transforms_are_accepted(name, value):
    gen = IDG(**{name: value})
    assert gen.augments


@pytest.mark.parametrize("kwargs", [
    dict(rotation_range=0), dict(width_shift_range=0.0), dict(height_shift_range=0),
    dict(zoom_range=0.0), dict(zoom_range=[1, 1]), dict(zoom_range=(1.0, 1.0)),
    dict(channel_shift_range=0), dict(shear_range=0.0), dict(horizontal_flip=False),
    dict(fill_mode="reflect", cval=3.0, interpolation_order=0, zca_epsilon=1e-3),
], ids=lambda kw: ",".join(kw))
def test_values_that_change_nothing_are_accepted(kwargs):
    gen = IDG(**kwargs)
    for k, v in kwargs.items():
        if k != "zoom_range":
            assert getattr(gen, k) == v
    assert gen.zoom_range == [1, 1] or "zoom_range" not in kwargs


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(data_format="channels_middle"), ValueError, "data_format"),
    (dict(validation_split=1.5), ValueError, "validation_split"),
    (dict(validation_split=-0.1), ValueError, "validation_split"),
    (dict(zoom_range="big"), ValueError, "zoom_range"),
    (dict(brightness_range=0.5), ValueError, "brightness_range"),
    (dict(width_shift_range="wide"), ValueError, "width_shift_range"),
    (dict(height_shift_range=[[1, 2]]), ValueError, "height_shift_range"),
    (dict(fill_mode="mirror"), ValueError, "fill_mode"),
    (dict(interpolation_order=3), ValueError, "interpolation_order"),
    (dict(preprocessing_function=3), TypeError, "preprocessing_function"),
    (dict(dtype="str"), TypeError, "dtype"),
])
def test_invalid_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        IDG(**kwargs)


def test_defaults_follow_keras_config():
    import keras

    gen = IDG()
    assert gen.data_format == keras.config.image_data_format()
    assert gen.dtype == keras.config.floatx()
    assert gen.rescale is None and gen._validation_split == 0.0


def test_samplewise_std_implies_center_with_a_warning():
    with pytest.warns(UserWarning, match="samplewise_center"):
        gen = IDG(samplewise_std_normalization=True)
    assert gen.samplewise_center


def test_every_keras_method_is_there():
    """Keras' legacy ImageDataGenerator has no public method fastseq's lacks
    (flow, flow_from_dataframe and fit used to raise NotImplementedError)."""
    from keras.src.legacy.preprocessing.image import ImageDataGenerator as KerasIDG

    keras_methods = {n for n in dir(KerasIDG) if not n.startswith("_")
                     and callable(getattr(KerasIDG, n))}
    assert keras_methods, "found no public method on Keras' class"
    assert keras_methods - set(dir(IDG)) == set()


def test_standardize_follows_keras_order():
    gen = IDG(rescale=0.5, samplewise_center=True,
              preprocessing_function=lambda a: a + 10)
    x = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    expected = (x + 10) * 0.5
    expected -= expected.mean()
    np.testing.assert_allclose(gen.standardize(x.copy()), expected)


# -- flow_from_directory ----------------------------------------------------------

def test_found_message_and_attributes(tree, capsys):
    it = IDG(rescale=1 / 255).flow_from_directory(tree, target_size=(20, 24), batch_size=4)
    assert capsys.readouterr().out == "Found 18 images belonging to 3 classes.\n"
    assert isinstance(it, fastseq.DirectoryIterator)
    import keras
    assert isinstance(it, keras.utils.PyDataset)
    assert it.class_indices == {"cats": 0, "dogs": 1, "owls": 2}
    assert it.num_classes == 3 and it.samples == it.n == 18 and it.batch_size == 4
    assert it.image_shape == (20, 24, 3) and len(it) == 5
    assert it.classes.dtype == np.int32 and it.labels is it.classes
    assert list(it.classes) == [0] * 7 + [1] * 5 + [2] * 6
    assert it.filenames[0] == "cats/cats_000.jpg"
    assert it.filepaths[0].endswith("/cats/cats_000.jpg") and it.filepaths[0].startswith(tree)
    assert it.sample_weight is None and it.interpolation == "nearest"
    assert sorted(it.index_array) == list(range(18))


def test_pydataset_kwargs_pass_through(tree):
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no "call super().__init__" warning
        it = IDG().flow_from_directory(tree, workers=3, use_multiprocessing=True,
                                       max_queue_size=4)
        assert (it.workers, it.use_multiprocessing, it.max_queue_size) == (3, True, 4)


def test_unknown_flow_kwarg_is_an_error(tree):
    with pytest.raises(TypeError, match="'wokers'"):
        IDG().flow_from_directory(tree, wokers=2)


@pytest.mark.parametrize("kwargs,match", [
    (dict(color_mode="cmyk"), "color mode"), (dict(class_mode="raw"), "class_mode"),
    (dict(subset="test"), "subset"), (dict(interpolation="cubic"), "interpolation"),
    (dict(batch_size=0), "batch_size"), (dict(target_size=(0, 5)), "target_size"),
    (dict(on_error="explode"), "on_error"),
])
def test_invalid_flow_arguments(tree, kwargs, match):
    gen = IDG(validation_split=0.2)
    with pytest.raises(ValueError, match=match):
        gen.flow_from_directory(tree, **kwargs)


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        IDG().flow_from_directory(str(tmp_path / "nope"))


@pytest.mark.parametrize("value", [123, None, ["a", "b"]])
def test_a_directory_that_is_not_a_path_is_named(value):
    with pytest.raises(TypeError) as ei:
        IDG().flow_from_directory(value)
    assert str(ei.value) == ("directory must be a path (str, bytes or os.PathLike), "
                             f"got {type(value).__name__}")


@pytest.mark.parametrize("kind", [str, bytes, pathlib.Path])
def test_the_directory_may_be_any_path_type(tree, kind, capsys):
    root = os.fsencode(tree) if kind is bytes else kind(tree)
    it = IDG().flow_from_directory(root, target_size=(8, 8), batch_size=4, shuffle=False)
    ref = IDG().flow_from_directory(str(tree), target_size=(8, 8), batch_size=4, shuffle=False)
    assert it.filepaths == ref.filepaths and it.directory is root
    np.testing.assert_array_equal(it[0][0], ref[0][0])


def test_batches_are_the_listed_files_with_rescale_fused(tree):
    it = IDG(rescale=1 / 255).flow_from_directory(
        tree, target_size=(20, 24), batch_size=5, shuffle=False, interpolation="bilinear")
    seen = 0
    for i in range(len(it)):
        x, y = it[i]
        idx = np.arange(seen, seen + len(x))
        np.testing.assert_array_equal(x, reference(it, idx) * np.float32(1 / 255))
        np.testing.assert_array_equal(y.argmax(1), it.classes[idx])
        assert y.dtype == np.float32 and y.shape == (len(x), 3)
        seen += len(x)
    assert seen == 18 and len(x) == 3    # the last batch is short


def test_index_past_the_end_is_index_and_value_error(tree):
    it = IDG().flow_from_directory(tree, target_size=(8, 8), batch_size=8)
    assert len(it) == 3
    for exc in (IndexError, ValueError):
        with pytest.raises(exc, match="length 3"):
            it[3]
    assert it[-1][0].shape == (2, 8, 8, 3)


def test_shuffle_with_seed_is_reproducible_and_reshuffles(tree):
    def orders(seed):
        it = IDG().flow_from_directory(tree, target_size=(8, 8), seed=seed, batch_size=4)
        out = []
        for _ in range(3):
            out.append(it.index_array.copy())
            it.on_epoch_end()
        return out

    a, b, c = orders(3), orders(3), orders(4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))
    assert not np.array_equal(a[0], a[1])               # on_epoch_end reshuffles
    for order in a:
        assert sorted(order) == list(range(18))


def test_batches_follow_the_shuffled_order(tree):
    it = IDG().flow_from_directory(tree, target_size=(12, 12), seed=0, batch_size=7,
                                   interpolation="bilinear")
    order = it.index_array
    x, y = it[1]
    np.testing.assert_array_equal(x, reference(it, order[7:14]))
    np.testing.assert_array_equal(y.argmax(1), it.classes[order[7:14]])


def test_next_cycles_like_keras(tree):
    it = IDG().flow_from_directory(tree, target_size=(8, 8), batch_size=8, shuffle=False,
                                   class_mode="sparse")
    sizes = [len(next(it)[0]) for _ in range(6)]
    assert sizes == [8, 8, 2, 8, 8, 2]
    assert iter(it) is it
    x, y = it.next()
    np.testing.assert_array_equal(y, it.classes[:8].astype(np.float32))


def test_empty_directory_gives_no_batches(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    it = IDG().flow_from_directory(str(tmp_path))
    assert capsys.readouterr().out == "Found 0 images belonging to 1 classes.\n"
    assert len(it) == 0 and it.samples == 0


def test_channels_first_and_dtypes(tree):
    it = IDG(data_format="channels_first", dtype="float64").flow_from_directory(
        tree, target_size=(10, 12), batch_size=3, shuffle=False, color_mode="grayscale")
    x, y = it[0]
    assert it.image_shape == (1, 10, 12)
    assert x.shape == (3, 1, 10, 12) and x.dtype == np.float64 and y.dtype == np.float64
    assert x.flags.c_contiguous
    ref = fastseq.load_batch(it.filepaths[:3], (10, 12), color_mode="grayscale",
                             dtype="float32", interpolation="nearest")
    np.testing.assert_array_equal(x, ref.transpose(0, 3, 1, 2))
    it8 = IDG(dtype="uint8").flow_from_directory(tree, target_size=(10, 12), shuffle=False)
    x8, _ = it8[0]
    assert x8.dtype == np.uint8
    np.testing.assert_array_equal(x8[:3], fastseq.load_batch(it8.filepaths[:3], (10, 12),
                                                             interpolation="nearest"))


def test_bad_image_names_the_file(tmp_path):
    d = tmp_path / "cls"
    save(d / "good.jpg", photo(30, 30, 1))
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (d / "empty.png").write_bytes(b"")
    it = IDG().flow_from_directory(str(tmp_path), target_size=(8, 8), shuffle=False)
    with pytest.raises(fastseq.ImageDecodeError) as e:
        it[0]
    assert "broken.jpg" in str(e.value) and e.value.source.endswith("broken.jpg")
    assert "empty.png" in str(e.value) or any(f.source.endswith("empty.png")
                                              for f in e.value.failures)
    warn_it = IDG().flow_from_directory(str(tmp_path), target_size=(8, 8), shuffle=False,
                                        on_error="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, _ = warn_it[0]
    messages = [str(w.message) for w in caught if w.category is fastseq.ImageDecodeWarning]
    assert len(messages) == 2
    assert "broken.jpg" in messages[0] and "empty.png" in messages[1]
    assert warn_it.filenames == ["cls/broken.jpg", "cls/empty.png", "cls/good.jpg"]
    assert not x[0].any() and not x[1].any() and x[2].any()


def test_dct_scaling_is_on_by_default_and_can_be_turned_off(tmp_path):
    save(tmp_path / "c" / "big.jpg", photo(400, 600, 5))
    fast = IDG().flow_from_directory(str(tmp_path), target_size=(50, 75), shuffle=False,
                                     interpolation="bilinear")
    exact = IDG().flow_from_directory(str(tmp_path), target_size=(50, 75), shuffle=False,
                                      interpolation="bilinear", dct_scaling=False)
    np.testing.assert_array_equal(
        exact[0][0], fastseq.load_batch(exact.filepaths, (50, 75), dtype="float32",
                                        dct_scaling=False))
    np.testing.assert_array_equal(
        fast[0][0], fastseq.load_batch(fast.filepaths, (50, 75), dtype="float32"))


def test_iterator_pickles_for_spawned_workers(tree):
    import pickle

    it = IDG(rescale=1 / 255).flow_from_directory(tree, target_size=(8, 8), seed=2,
                                                  batch_size=4, workers=2)
    copy = pickle.loads(pickle.dumps(it))
    np.testing.assert_array_equal(copy.index_array, it.index_array)
    for a, b in zip(copy[1], it[1]):
        np.testing.assert_array_equal(a, b)
    assert copy.lock is not it.lock and copy.workers == 2
    next(copy)


def test_importing_fastseq_does_not_import_keras():
    import subprocess
    import sys

    code = ("import sys, fastseq; assert 'keras' not in sys.modules, 'keras imported'; "
            "assert 'tensorflow' not in sys.modules; "
            "from fastseq import ImageDataGenerator, DirectoryIterator, ImageSequence; "
            "assert 'keras' in sys.modules")
    import os

    # the fastseq this process imported: a checkout built in place, or the
    # installed package (then this is site-packages, already on the path)
    home = os.path.dirname(os.path.dirname(os.path.abspath(fastseq.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [home] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_keras_package_imports_keras_only_for_its_classes():
    """fastseq.keras and its listing and prefetch modules need no Keras (the
    fit benchmark lists folders with it); its classes are the same objects
    as fastseq's top-level names."""
    import os
    import subprocess
    import sys

    code = ("import sys, fastseq.keras, fastseq.keras.listing, fastseq.keras.prefetch; "
            "assert 'keras' not in sys.modules, 'keras imported'; "
            "from fastseq.keras import ImageSequence, ImageDataGenerator, DirectoryIterator; "
            "assert 'keras' in sys.modules; "
            "assert ImageSequence is fastseq.ImageSequence; "
            "assert DirectoryIterator is fastseq.DirectoryIterator; "
            "assert ImageDataGenerator is fastseq.ImageDataGenerator; "
            "import keras; assert sys.modules['keras'] is keras and hasattr(keras, 'utils')")
    home = os.path.dirname(os.path.dirname(os.path.abspath(fastseq.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [home] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("name", ["rotation_range", "shear_range", "channel_shift_range"])
@pytest.mark.parametrize("value", ["a", None, float("nan"), float("inf")])
def test_scalar_ranges_are_checked_in_the_constructor(name, value):
    """A non-number used to pass the constructor and fail inside the first
    draw with "bad operand type for unary -"."""
    with pytest.raises(ValueError, match=name):
        IDG(**{name: value})
