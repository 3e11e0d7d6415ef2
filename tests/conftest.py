"""Shared fixtures: the JPEG conformance corpus and photo-like images."""

from __future__ import annotations

import csv
import io
import os
import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent

# Child interpreters started by the tests (`python -c`, `python -m fastseq`)
# must import the same fastseq as this process.  Run from the checkout, they
# would otherwise put the current directory first on sys.path and pick up the
# unbuilt source folder instead of the installed package (Python >= 3.11).
# Children still find it through PYTHONPATH: the folder holding the imported
# package (site-packages, or a checkout built in place).
os.environ["PYTHONSAFEPATH"] = "1"


def _export_fastseq_home():
    try:
        import fastseq
    except ImportError:
        return
    home = os.path.dirname(os.path.dirname(os.path.abspath(fastseq.__file__)))
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != home]
    os.environ["PYTHONPATH"] = os.pathsep.join([home] + rest)


_export_fastseq_home()


def corpus_dir() -> pathlib.Path | None:
    env = os.environ.get("FASTSEQ_CORPUS")
    d = pathlib.Path(env) if env else REPO.parent / "shared" / "corpus" / "jpeg"
    return d if (d / "MANIFEST.tsv").is_file() else None


CORPUS = corpus_dir()
PANDAS_MISSING = ("pandas is not installed (the CI JAX venv has none): flow_from_dataframe "
                  "needs it; pip install 'fastseq[dataframe]'")
CORPUS_MISSING = ("JPEG conformance corpus not found: expected ../shared/corpus/jpeg/"
                  "MANIFEST.tsv beside the repository, or FASTSEQ_CORPUS=/path/to/it")


def manifest_rows() -> list[dict]:
    if CORPUS is None:
        return []
    with open(CORPUS / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


ROWS = manifest_rows()


def corpus_params(predicate):
    """pytest params over the manifest rows matching `predicate`, or one
    visibly skipped param when the corpus is absent."""
    if CORPUS is None:
        return [pytest.param(None, marks=pytest.mark.skip(reason=CORPUS_MISSING),
                             id="corpus-missing")]
    rows = [r for r in ROWS if predicate(r)]
    assert rows, "the manifest has no row for this test: the corpus changed?"
    return [pytest.param(r, id=r["file"]) for r in rows]


def is_jpeg_row(r):
    return not r["notes"].startswith("NOT JPEG")


def pytest_report_header(config):
    import PIL
    lines = [f"numpy {np.__version__}, Pillow {PIL.__version__}"]
    try:
        import fastseq
        i = fastseq.info()
        lines.append(f"fastseq {i['fastseq']} at {os.path.dirname(fastseq.__file__)}, "
                     f"libjpeg-turbo {i['libjpeg_turbo']} (SIMD {'on' if i['simd'] else 'off'}), "
                     f"{i['threads']} threads")
    except Exception as e:  # pragma: no cover - shown in the header only
        lines.append(f"fastseq not importable: {e!r}")
    for mod in ("keras", "tensorflow", "turbojpeg"):
        try:
            m = __import__(mod)
            lines.append(f"{mod} {getattr(m, '__version__', '?')}")
        except Exception:
            lines.append(f"{mod} not installed")
    lines.append(f"corpus: {CORPUS if CORPUS else 'MISSING (corpus tests skip)'}")
    return lines


def photo_like(h: int, w: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """A deterministic photo-like uint8 image: smooth gradients, soft blobs,
    hard edges and mild noise, so resampling and JPEG behave as on photos."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b = rng.uniform(-1, 1, 2)
        img[..., c] = 128 + 90 * np.sin(a * x / max(w, 1) * 6 + b * y / max(h, 1) * 5 + c)
    for _ in range(4):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(0.1, 0.4) * max(h, w)
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))
        img += blob[..., None] * rng.uniform(-80, 80, 3)
    # hard-edged rectangles and stripes
    for _ in range(3):
        y0, x0 = int(rng.uniform(0, h)), int(rng.uniform(0, w))
        img[y0:y0 + max(1, h // 5), x0:x0 + max(1, w // 4)] = rng.uniform(0, 255, 3)
    img[:, ::max(2, w // 40)] += 25
    img += rng.normal(0, 6, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if channels == 1:
        return (img.astype(np.uint16) @ np.array([77, 150, 29], np.uint16) >> 8).astype(np.uint8)
    if channels == 4:
        alpha = np.clip(128 + 127 * np.sin(x / max(w, 1) * 7), 0, 255).astype(np.uint8)
        return np.dstack([img, alpha])
    return img


def encode(arr: np.ndarray, fmt: str = "JPEG", **kw) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory):
    """A folder of photo-like JPEGs of varied sizes, subsamplings and modes,
    plus PNG/BMP/GIF/TIFF/WebP files for the fallback path."""
    from PIL import features
    d = tmp_path_factory.mktemp("photos")
    specs = [
        ("a_420.jpg", (375, 500), dict(quality=85, subsampling=2)),
        ("b_444.jpg", (333, 250), dict(quality=92, subsampling=0)),
        ("c_422.jpg", (480, 640), dict(quality=75, subsampling=1)),
        ("d_prog.jpg", (300, 451), dict(quality=88, progressive=True)),
        ("e_small.jpg", (37, 61), dict(quality=90)),
        ("f_wide.jpg", (120, 900), dict(quality=80)),
        ("g_tall.jpg", (700, 90), dict(quality=80)),
    ]
    paths = []
    for i, (name, (h, w), kw) in enumerate(specs):
        p = d / name
        p.write_bytes(encode(photo_like(h, w, seed=i), "JPEG", **kw))
        paths.append(p)
    p = d / "h_gray.jpg"
    p.write_bytes(encode(photo_like(260, 310, seed=20, channels=1), "JPEG", quality=90))
    paths.append(p)
    for fmt, ext, ch in [("PNG", "png", 3), ("PNG", "rgba.png", 4), ("BMP", "bmp", 3),
                         ("PPM", "ppm", 3), ("TIFF", "tif", 3), ("GIF", "gif", 3)]:
        p = d / f"i_{ext}"
        arr = photo_like(211, 173, seed=30 + len(paths), channels=ch)
        p.write_bytes(encode(arr, fmt))
        paths.append(p)
    if features.check("webp"):
        p = d / "j.webp"
        p.write_bytes(encode(photo_like(150, 190, seed=50), "WEBP", quality=90))
        paths.append(p)
    return paths
