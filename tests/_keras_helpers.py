"""Generated image folder trees for the Keras integration tests.

Images are photo-like (smooth gradients, soft blobs, hard edges, fine
texture) so that resampling and JPEG coding behave as on photographs, and
every image is a pure function of its seed.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib

import numpy as np
import pytest
from PIL import Image

#: For the tests of the tf.data path that model.fit takes on the TensorFlow
#: backend; the JAX and torch backends (and the CI venv without TensorFlow)
#: never take it.
needs_tensorflow = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None,
    reason="needs TensorFlow: checks the tf.data path (PyDatasetAdapter.get_tf_dataset) "
           "that model.fit uses on the TensorFlow backend only")


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A deterministic photo-like RGB uint8 image of shape (h, w, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        fx, fy, ph = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 6.3)
        img[..., c] = 128 + 80 * np.sin(fx * x / w + fy * y / h + ph)
    for _ in range(3):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(0.1, 0.4) * max(h, w)
        img += (np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))[..., None]
                * rng.uniform(-70, 70, 3))
    for _ in range(2):
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        img[y0:y0 + max(1, h // 4), x0:x0 + max(1, w // 5)] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 7, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def save(path: pathlib.Path, arr: np.ndarray, mode: str = "RGB", **kw) -> pathlib.Path:
    """Write `arr` (RGB) to `path`, converted to `mode`, in the format its
    extension names (case-insensitive); JPEGs at quality 90 by default."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr)
    if mode == "RGBA":
        alpha = (np.arange(arr.shape[1]) * 255 // max(1, arr.shape[1] - 1)).astype(np.uint8)
        img.putalpha(Image.fromarray(np.broadcast_to(alpha, arr.shape[:2]).copy()))
    elif mode != "RGB":
        img = img.convert(mode)
    ext = path.suffix.lower()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".ppm": "PPM",
           ".tif": "TIFF", ".tiff": "TIFF"}[ext]
    if fmt == "JPEG":
        kw.setdefault("quality", 90)
    img.save(path, format=fmt, **kw)
    return path


def build_parity_tree(root: pathlib.Path) -> pathlib.Path:
    """The tree of the parity tests, in ``root/data``; returns that folder.

    ``data/`` holds class folders ``alpha``, ``beta`` (nested subfolders,
    mixed-case extensions, several formats and colour modes, files that are
    not images), ``empty`` (no files), ``gamma`` (a symlink to a folder
    outside the tree: always a class) and ``zeta`` (whose ``linked``
    subfolder is a symlink: entered only with follow_links), and a stray
    image at the top that belongs to no class.
    """
    data = root / "data"
    seed = iter(range(1000, 2000))
    sizes = [(60, 80), (45, 45), (97, 131), (30, 22), (64, 48), (120, 90), (33, 57)]

    def img(rel: str, mode: str = "RGB", **kw):
        h, w = sizes[len(made) % len(sizes)]
        made.append(save(data / rel, photo(h, w, next(seed)), mode, **kw))

    made: list[pathlib.Path] = []
    img("alpha/a01.jpg")
    img("alpha/a02.JPG")
    img("alpha/a03.Jpeg", quality=75)
    img("alpha/b_rgb.png")
    img("alpha/b_gray.png", "L")
    img("alpha/b_rgba.png", "RGBA")
    img("alpha/b_pal.PNG", "P")
    img("alpha/c.bmp")
    img("alpha/c.ppm")
    img("alpha/c.tif")
    img("alpha/gray.jpg", "L")
    img("alpha/sub/d1.jpg")
    img("alpha/sub/deeper/d2.png")
    img("alpha/sub-b/e1.jpg")          # "sub-b" sorts before "sub/..."
    img("alpha/Sub2/f1.jpeg")
    for i in range(7):
        img(f"beta/img_{i:02d}.jpg", quality=80 + i)
    img("beta/nested/one/two/deep.jpg")
    img("beta/UPPER.JPEG")
    img("zeta/z0.jpg")
    img("zeta/z1.png")
    img("outside_linked/l0.jpg")       # moved under root below
    img("outside_gamma/g0.jpg")
    img("outside_gamma/g1.jpg")
    img("outside_gamma/sub/g2.png")
    img("stray.jpg")
    for rel, text in [("alpha/notes.txt", "not an image"), ("alpha/labels.csv", "a,b\n"),
                      ("beta/.DS_Store", "x"), ("beta/img_00.jpg.txt", "x"),
                      ("zeta/README", "x")]:
        (data / rel).write_text(text)
    (data / "empty").mkdir()
    # Folders reached only through symlinks live outside data/.
    outside = root / "outside"
    outside.mkdir()
    os.rename(data / "outside_linked", outside / "linked")
    os.rename(data / "outside_gamma", outside / "gamma")
    os.symlink(outside / "linked", data / "zeta" / "linked")
    os.symlink(outside / "gamma", data / "gamma")
    return data


def build_class_tree(root: pathlib.Path, per_class: dict[str, int], *,
                     size: tuple[int, int] = (40, 52), seed: int = 0,
                     ext: str = "jpg") -> pathlib.Path:
    """``root/<class>/<class>_<i>.<ext>`` with distinct photo-like images of
    (about) `size`; returns `root`."""
    k = 0
    for name, count in per_class.items():
        for i in range(count):
            h, w = size[0] + (k % 5), size[1] + (k % 7)
            save(root / name / f"{name}_{i:03d}.{ext}", photo(h, w, seed * 100_000 + k))
            k += 1
    return root


def keras_legacy():
    """Keras' own legacy ImageDataGenerator class (the parity reference)."""
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    return ImageDataGenerator
