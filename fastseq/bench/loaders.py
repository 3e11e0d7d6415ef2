"""The loaders compared: their specs, ``NAME@T`` parsing, and the classes a
worker process builds to run one (see :mod:`fastseq.bench.worker`).

A loader class is built from the worker's config dict, then gets
``prepare(paths, view)`` once per set and ``run(n_batches, report)`` once per
round (``n_batches=None``: all); ``run`` calls ``report(k)`` after each batch
of ``k`` images and returns how many images it loaded.  Its ``output`` says
what it yields.  A missing library raises :class:`Unavailable`.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass

import fastseq
from fastseq import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SCANS, _native
from fastseq.bench.common import BenchError, keras_import_failure

@dataclass(frozen=True)
class LoaderSpec:
    name: str
    label: str
    threaded: bool       # honours a thread count
    needs_dir: bool      # reads a class-per-folder tree, not a list of paths


LOADERS = {
    "fastseq": LoaderSpec("fastseq", "fastseq", True, False),
    "pillow": LoaderSpec("pillow", "Pillow per image (Keras load_img)", False, False),
    "fastseq-df": LoaderSpec("fastseq-df", "fastseq flow_from_dataframe", True, False),
    "keras-idg": LoaderSpec("keras-idg", "Keras ImageDataGenerator (legacy)", False, True),
    "keras-df": LoaderSpec("keras-df", "Keras flow_from_dataframe (legacy)", False, False),
    "keras-ds": LoaderSpec("keras-ds", "keras image_dataset_from_directory", True, True),
    "turbojpeg": LoaderSpec("turbojpeg", "PyTurboJPEG + thread-pool resize", True, False),
    "bare": LoaderSpec("bare", "bare libjpeg-turbo decode (limit)", True, False),
}
# bare@1 gives the 1-thread rows (fastseq@1, pillow, keras-idg) a limit on
# their own number of threads.
DEFAULT_LOADERS = ("fastseq,fastseq@1,fastseq-df,pillow,keras-idg,keras-ds,turbojpeg,bare,"
                   "bare@1")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")
# keras-ds resizes with tf.image.resize, whose method names differ.
_TF_METHODS = {"nearest": "nearest", "bilinear": "bilinear", "bicubic": "bicubic",
               "box": "area", "lanczos": "lanczos3"}


@dataclass(frozen=True)
class Loader:
    """One loader run: a spec and the thread count it runs on."""
    spec: LoaderSpec
    threads: int

    @property
    def key(self):
        return f"{self.spec.name}@{self.threads}" if self.spec.threaded else self.spec.name

    @property
    def label(self):
        if self.spec.threaded:
            t = "thread" if self.threads == 1 else "threads"
            return f"{self.spec.label}, {self.threads} {t}"
        return self.spec.label


def parse_loaders(text, threads):
    """``"fastseq,fastseq@1,pillow"`` -> list of Loader.  Raises BenchError."""
    out, seen = [], set()
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise BenchError("--loaders is empty; choose from " + ", ".join(LOADERS))
    for item in items:
        if item == "all":
            out.extend(l for l in parse_loaders(DEFAULT_LOADERS, threads) if l.key not in seen)
            seen.update(l.key for l in out)
            continue
        name, _, t = item.partition("@")
        spec = LOADERS.get(name)
        if spec is None:
            raise BenchError(f"unknown loader {name!r}; choose from {', '.join(LOADERS)}")
        n = threads
        if t:
            try:
                n = int(t)
            except ValueError:
                n = 0
            if n < 1:
                raise BenchError(f"bad thread count in {item!r}: expected {name}@N with N >= 1")
            if not spec.threaded and n != 1:
                raise BenchError(f"loader {name!r} runs on one thread; drop '@{t}'")
        loader = Loader(spec, n if spec.threaded else 1)
        if loader.key not in seen:
            seen.add(loader.key)
            out.append(loader)
    return out


class Unavailable(Exception):
    """The loader's library is not installed or cannot load."""


def bare_decode(paths, *, max_pixels=DEFAULT_MAX_PIXELS,
                max_scans=DEFAULT_MAX_SCANS) -> int:
    """Benchmark baseline: read and fully decode JPEG files at full size on
    fastseq's pool, with no resize and no output (the practical speed limit
    of any libjpeg-turbo loader).  Returns how many decoded; non-JPEGs are
    skipped."""
    encoded = [os.fsencode(p) for p in paths]
    opts = _native.BatchOptions(1, 1, _native.MODE_RGB, _native.DTYPE_U8,
                              max_pixels=max_pixels or 0, max_scans=max_scans or 0,
                              max_file_bytes=fastseq.DEFAULT_MAX_FILE_BYTES,
                              max_memory=fastseq.DEFAULT_MAX_MEMORY,
                              max_scan_pixels=fastseq.DEFAULT_MAX_SCAN_PIXELS,
                              decode_only=True)
    res = _native.run_batch(_native.SRC_FILE, encoded, None, list(range(len(encoded))), opts)
    return sum(1 for r in res if r[1] == 0)


class _BatchLoader:
    """Runs over the paths in batches of ``batch_size``; with
    ``preallocate``, into one preallocated uint8 output per distinct batch
    length (the last batch may be short), so that steady state allocates
    nothing."""
    output = "uint8"
    preallocate = True

    def prepare(self, paths, view):
        import numpy as np

        h, w = self.cfg["size"]
        bs = self.cfg["batch_size"]
        self.batches = [paths[i:i + bs] for i in range(0, len(paths), bs)]
        if self.preallocate:
            self.outs = {len(b): np.empty((len(b), h, w, 3), np.uint8) for b in self.batches}


class _FastseqLoader(_BatchLoader):
    def __init__(self, cfg):
        import fastseq

        fastseq.set_num_threads(cfg["threads"])
        self.fastseq, self.cfg = fastseq, cfg

    def run(self, n_batches, report):
        load = self.fastseq.load_batch
        size, interp = tuple(self.cfg["size"]), self.cfg["interpolation"]
        dct = self.cfg["dct_scaling"]
        n = 0
        for b in self.batches[:n_batches]:
            load(b, size, out=self.outs[len(b)], interpolation=interp, dct_scaling=dct)
            n += len(b)
            report(len(b))
        return n


class _BareLoader(_BatchLoader):
    output = "none (decode only)"
    preallocate = False

    def __init__(self, cfg):
        import fastseq

        fastseq.set_num_threads(cfg["threads"])
        self.bare, self.cfg = bare_decode, cfg

    def run(self, n_batches, report):
        n = 0
        for b in self.batches[:n_batches]:
            n += self.bare(b)           # non-JPEG files are skipped, not counted
            report(len(b))
        return n


class _PillowLoader(_BatchLoader):
    """Keras' load_img step for step, without importing Keras."""

    def __init__(self, cfg):
        import numpy as np
        from PIL import Image

        self.np, self.Image, self.cfg = np, Image, cfg
        self.filter = getattr(Image.Resampling, cfg["interpolation"].upper())

    def run(self, n_batches, report):
        Image, asarray = self.Image, self.np.asarray
        h, w = self.cfg["size"]
        n = 0
        for b in self.batches[:n_batches]:
            out = self.outs[len(b)]
            for i, p in enumerate(b):
                with open(p, "rb") as f:
                    img = Image.open(io.BytesIO(f.read()))
                if img.mode != "RGB":
                    img = img.convert("RGB")
                if img.size != (w, h):
                    img = img.resize((w, h), self.filter)
                out[i] = asarray(img)
            n += len(b)
            report(len(b))
        return n


class _TurboJPEGLoader(_BatchLoader):
    def __init__(self, cfg):
        from concurrent.futures import ThreadPoolExecutor

        import numpy as np
        from PIL import Image

        try:
            import turbojpeg
        except ImportError as e:
            raise Unavailable(f"PyTurboJPEG is not installed ({e})") from None
        try:
            self.tj = turbojpeg.TurboJPEG()
        except (OSError, RuntimeError) as e:
            raise Unavailable(f"PyTurboJPEG cannot load libturbojpeg ({e})") from None
        self.TJPF_RGB = turbojpeg.TJPF_RGB
        self.np, self.Image, self.cfg = np, Image, cfg
        self.filter = getattr(Image.Resampling, cfg["interpolation"].upper())
        self.pool = ThreadPoolExecutor(max_workers=cfg["threads"])

    def _one(self, out, i, path):
        h, w = self.cfg["size"]
        with open(path, "rb") as f:
            data = f.read()
        img = None
        if data[:2] == b"\xff\xd8":
            try:
                img = self.Image.fromarray(self.tj.decode(data, pixel_format=self.TJPF_RGB))
            except (OSError, ValueError):
                img = None      # e.g. CMYK: what a user would do, fall back to Pillow
        if img is None:
            img = self.Image.open(io.BytesIO(data)).convert("RGB")
        if img.size != (w, h):
            img = img.resize((w, h), self.filter)
        out[i] = self.np.asarray(img)

    def run(self, n_batches, report):
        n = 0
        for b in self.batches[:n_batches]:
            out = self.outs[len(b)]
            for f in [self.pool.submit(self._one, out, i, p) for i, p in enumerate(b)]:
                f.result()
            n += len(b)
            report(len(b))
        return n


def _import_keras(cfg, need_tensorflow):
    """(tensorflow or None, keras), Keras on whatever backend it is set to.
    TensorFlow, when loaded, runs on the loader's thread count."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if need_tensorflow:
        try:
            import tensorflow  # noqa: F401
        except ImportError as e:
            raise Unavailable(f"TensorFlow is not installed ({e})") from None
    try:
        import keras
    except ImportError as e:
        if e.name == "keras":
            raise Unavailable(f"Keras is not installed ({e})") from None
        raise Unavailable(keras_import_failure(e)) from None
    tf = sys.modules.get("tensorflow")      # the backend, or imported above
    if tf is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(cfg["threads"])
            tf.config.threading.set_inter_op_parallelism_threads(cfg["threads"])
        except RuntimeError:
            pass
    return tf, keras


class _KerasIDGLoader:
    output = "uint8"

    def __init__(self, cfg):
        _import_keras(cfg, need_tensorflow=False)
        try:
            from keras.src.legacy.preprocessing.image import ImageDataGenerator
        except ImportError:
            try:
                from keras.preprocessing.image import ImageDataGenerator
            except ImportError as e:
                raise Unavailable(f"this Keras has no legacy ImageDataGenerator ({e})") from None
        self.gen = ImageDataGenerator(dtype="uint8")
        self.cfg = cfg

    def prepare(self, paths, view):
        self.it = self.gen.flow_from_directory(
            view, target_size=tuple(self.cfg["size"]), class_mode=None,
            batch_size=self.cfg["batch_size"], shuffle=False,
            interpolation=self.cfg["interpolation"])
        if self.it.samples != len(paths):
            raise RuntimeError(f"ImageDataGenerator found {self.it.samples} of {len(paths)} images")

    def run(self, n_batches, report):
        n = 0
        for i in range(min(len(self.it), n_batches or len(self.it))):
            x = self.it[i]
            n += len(x)
            report(len(x))
        return n


def _require_pandas():
    """pandas, or :class:`Unavailable` -- raised from a dataframe loader's
    constructor, so that a missing pandas is a skipped row, not a failed one."""
    try:
        import pandas
    except ImportError as e:
        raise Unavailable(f"pandas is not installed ({e})") from None
    return pandas


def _dataframe(paths):
    return _require_pandas().DataFrame({"filename": list(paths)})


class _FastseqDataFrameLoader:
    """``fastseq.ImageDataGenerator(dtype="uint8").flow_from_dataframe`` on
    the paths (absolute, ``directory=None``), read batch by batch."""
    output = "uint8"

    def __init__(self, cfg):
        import fastseq

        _require_pandas()
        fastseq.set_num_threads(cfg["threads"])
        self.gen = fastseq.ImageDataGenerator(dtype="uint8")
        self.cfg = cfg

    def prepare(self, paths, view):
        import contextlib

        with contextlib.redirect_stdout(io.StringIO()):   # "Found N validated ..."
            self.it = self.gen.flow_from_dataframe(
                _dataframe(paths), target_size=tuple(self.cfg["size"]), class_mode=None,
                batch_size=self.cfg["batch_size"], shuffle=False,
                interpolation=self.cfg["interpolation"], dct_scaling=self.cfg["dct_scaling"])
        if self.it.samples != len(paths):
            raise RuntimeError(f"flow_from_dataframe kept {self.it.samples} of {len(paths)} images")

    def run(self, n_batches, report):
        return _KerasIDGLoader.run(self, n_batches, report)


class _KerasDataFrameLoader(_KerasIDGLoader):
    """Keras' legacy ``flow_from_dataframe`` on the paths."""

    def __init__(self, cfg):
        _require_pandas()
        super().__init__(cfg)

    def prepare(self, paths, view):
        import contextlib

        with contextlib.redirect_stdout(io.StringIO()):
            self.it = self.gen.flow_from_dataframe(
                _dataframe(paths), target_size=tuple(self.cfg["size"]), class_mode=None,
                batch_size=self.cfg["batch_size"], shuffle=False,
                interpolation=self.cfg["interpolation"])
        if self.it.samples != len(paths):
            raise RuntimeError(f"flow_from_dataframe kept {self.it.samples} of {len(paths)} images")


class _KerasDatasetLoader:
    # tf.image.resize (antialias=False) samples only the nearest source
    # pixels when shrinking: cheaper than Pillow's filters, and aliased.
    output = "float32 (Keras' fixed dtype), resized without antialiasing"

    def __init__(self, cfg):
        method = _TF_METHODS.get(cfg["interpolation"])
        if method is None:
            raise Unavailable(f"tf.image.resize has no {cfg['interpolation']!r} filter")
        self.tf, self.keras = _import_keras(cfg, need_tensorflow=True)
        self.method, self.cfg = method, cfg

    def prepare(self, paths, view):
        self.ds = self.keras.utils.image_dataset_from_directory(
            view, labels=None, batch_size=self.cfg["batch_size"],
            image_size=tuple(self.cfg["size"]), shuffle=False,
            interpolation=self.method, verbose=False)

    def run(self, n_batches, report):
        ds = self.ds if n_batches is None else self.ds.take(n_batches)
        n = 0
        for x in ds:
            k = int(x.shape[0])
            n += k
            report(k)
        return n


LOADER_CLASSES = {"fastseq": _FastseqLoader, "bare": _BareLoader,
                  "pillow": _PillowLoader, "turbojpeg": _TurboJPEGLoader,
                  "keras-idg": _KerasIDGLoader, "keras-ds": _KerasDatasetLoader,
                  "fastseq-df": _FastseqDataFrameLoader, "keras-df": _KerasDataFrameLoader}

