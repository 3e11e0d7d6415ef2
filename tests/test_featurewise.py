"""ImageDataGenerator.fit and the featurewise statistics (issue 12 sections
3 and 5): Keras' formulas, warnings and flag interplay, and batches
standardised as Keras' legacy generator standardises them."""

import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")
K = pytest.importorskip("keras.src.legacy.preprocessing.image")

from fastseq import ImageDataGenerator as IDG  # noqa: E402

RNG = np.random.default_rng(3)
X = RNG.integers(0, 256, (30, 6, 5, 3)).astype(np.uint8)
XG = RNG.integers(0, 256, (30, 6, 5, 1)).astype(np.uint8)
Y = np.arange(30) % 2

CONFIGS = [
    dict(featurewise_center=True),
    dict(featurewise_center=True, featurewise_std_normalization=True),
    dict(featurewise_std_normalization=True),                 # forces centring
    dict(featurewise_center=True, featurewise_std_normalization=True, rescale=1 / 255.0),
    dict(zca_whitening=True),                                 # forces centring
    dict(zca_whitening=True, featurewise_std_normalization=True, zca_epsilon=1e-3),
    dict(featurewise_center=True, featurewise_std_normalization=True,
         samplewise_center=True, rescale=0.5),
    dict(featurewise_center=True, featurewise_std_normalization=True,
         preprocessing_function=lambda a: a + 1.0),
    dict(featurewise_center=True, featurewise_std_normalization=True,
         data_format="channels_first"),
]


def both(kw):
    with warnings.catch_warnings(record=True) as fw:
        warnings.simplefilter("always")
        f = IDG(**kw)
    with warnings.catch_warnings(record=True) as kw_:
        warnings.simplefilter("always")
        k = K.ImageDataGenerator(**kw)
    assert [str(w.message) for w in fw] == [str(w.message) for w in kw_]
    return f, k


def close(a, b, rtol=1e-5):
    assert (a is None) == (b is None)
    if a is not None:
        assert np.shape(a) == np.shape(b)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)))


@pytest.mark.parametrize("kw", CONFIGS, ids=range(len(CONFIGS)))
@pytest.mark.parametrize("x", [X, XG], ids=["rgb", "gray"])
def test_fit_statistics_and_batches_equal_keras(kw, x):
    f, k = both(kw)
    assert (f.featurewise_center, f.featurewise_std_normalization, f.zca_whitening) == \
        (k.featurewise_center, k.featurewise_std_normalization, k.zca_whitening)
    if kw.get("data_format") == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    f.fit(x)
    k.fit(x)
    close(f.mean, k.mean)
    close(f.std, k.std)
    close(f.zca_whitening_matrix, k.zca_whitening_matrix, rtol=1e-4)
    fi = f.flow(x, Y, batch_size=7, shuffle=False)
    ki = k.flow(x, Y, batch_size=7, shuffle=False)
    for i in range(len(ki)):
        (a, ya), (b, yb) = fi[i], ki[i]
        np.testing.assert_array_equal(ya, yb)
        assert a.dtype == b.dtype
        close(a, b, rtol=1e-4 if kw.get("zca_whitening") else 1e-6)
    one = x[0].astype(np.float32)
    close(f.standardize(one.copy()), k.standardize(one.copy()), rtol=1e-4)


def test_featurewise_in_flow_from_directory(tmp_path):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(X[i + (c == "b") * 3]).save(tmp_path / c / f"{i}.png")
    kw = dict(featurewise_center=True, featurewise_std_normalization=True, rescale=1 / 255.0)
    f, k = both(kw)
    f.fit(X)
    k.fit(X)
    a = f.flow_from_directory(tmp_path, target_size=(6, 5), shuffle=False)[0]
    b = k.flow_from_directory(tmp_path, target_size=(6, 5), shuffle=False)[0]
    np.testing.assert_array_equal(a[1], b[1])
    close(a[0], b[0], rtol=1e-6)


@pytest.mark.parametrize("name", ["featurewise_center", "featurewise_std_normalization",
                                  "zca_whitening"])
def test_unfit_warns_as_keras(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f, k = IDG(**{name: True}), K.ImageDataGenerator(**{name: True})
    x = X[0].astype(np.float32)
    with pytest.warns(UserWarning) as fw:
        a = f.standardize(x.copy())
    with pytest.warns(UserWarning) as kw_:
        b = k.standardize(x.copy())
    assert sorted(str(w.message) for w in fw) == sorted(str(w.message) for w in kw_)
    assert any("hasn't been fit" in str(w.message) for w in fw)
    np.testing.assert_array_equal(a, b)


def test_fit_errors_as_keras():
    for x in (X[0], np.zeros((2, 4, 4, 5))):
        f, k = IDG(featurewise_center=True), K.ImageDataGenerator(featurewise_center=True)
        if x.ndim != 4:
            with pytest.raises(ValueError) as fe:
                f.fit(x)
            with pytest.raises(ValueError) as ke:
                k.fit(x)
            assert str(fe.value) == str(ke.value)
        else:
            with pytest.warns(UserWarning, match=r"\(5 channels\)"):
                f.fit(x)


@pytest.mark.parametrize("rounds", [1, 3])
def test_fit_augment_uses_the_c_warp(rounds):
    kw = dict(featurewise_center=True, featurewise_std_normalization=True, rescale=1 / 255.0,
              rotation_range=30, horizontal_flip=True, zoom_range=0.2)
    f = IDG(**kw)
    f.fit(X, augment=True, rounds=rounds, seed=4)
    # The sample Keras' fit builds: each rescaled image, random_transform'ed.
    from fastseq.augment import BatchAugmenter

    aug = f.batch_augmenter((6, 5), 4)
    assert isinstance(aug, BatchAugmenter)
    xs = X.astype(np.float32) * np.float32(1 / 255.0)
    sample = np.concatenate([
        np.stack([f.apply_transform(xs[i], p)
                  for i, p in enumerate(aug.transforms(r, np.arange(len(X))))])
        for r in range(rounds)])
    mean = sample.mean(axis=(0, 1, 2)).reshape(1, 1, 3)
    std = (sample - mean).std(axis=(0, 1, 2)).reshape(1, 1, 3)
    close(f.mean, mean)
    close(f.std, std)
    g = IDG(**kw)
    g.fit(X, augment=True, rounds=rounds, seed=5)
    assert not np.array_equal(g.mean, f.mean)      # the draws depend on the seed
