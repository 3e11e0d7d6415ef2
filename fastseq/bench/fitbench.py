"""The ``model.fit`` benchmark: seconds per epoch of an input-bound model fed
by fastseq and by the usual Keras loaders, plus two floors.

Every loader trains the same small model (one strided convolution, global
average pooling and a dense softmax layer) on the same class folders, with
the same batch size and image size.  Epoch 1 (tracing, warm-up, caches) is
excluded: a run's figure is the mean of its later epochs.  With
``rounds > 1`` every round runs every loader once, in the same order, and a
loader's figure is the median of its rounds, so a burst of load from
elsewhere on the machine hits one round of a loader, not its result.

Loaders (names for ``loaders=``), each with its own default resampling
filter, as a user gets it:

``fastseq``
    ``fastseq.ImageDataGenerator(rescale=1/255).flow_from_directory(...,
    workers=1)`` (interpolation ``"nearest"``, the Keras default it
    reproduces): Keras' default of one worker, where fastseq's own prefetch
    (when this fastseq has it) decodes the next batch in the background.
``fastseq_w2``
    The same with ``workers=2``: Keras' thread pool of two, each thread
    loading a whole batch on fastseq's pool.
``fastseq_bilinear``
    The same with ``interpolation="bilinear"`` (Pillow's antialiased
    bilinear filter: the like-for-like row for the bilinear loaders below).
``fastseq_sequence``
    ``fastseq.ImageSequence(paths, labels, ...)`` (bilinear).
``seed_pil_w1``, ``seed_pil_w2``
    The hand-written ``keras.utils.Sequence`` of the tutorials (one
    ``PIL.Image.open(...).convert("RGB").resize(..., BILINEAR)`` per image)
    with ``workers=1`` and with ``workers=2`` threads.
``keras_legacy``
    Keras' own ``keras.src.legacy.preprocessing.image.ImageDataGenerator``
    (``"nearest"``).
``tf_dataset``
    ``keras.utils.image_dataset_from_directory`` (``tf.image.resize``
    bilinear, not antialiased) with AUTOTUNE prefetch.  Needs TensorFlow.

Floors (always measured): ``model_only``, the model on batches already held
as tensors (a ``tf.data`` dataset of whole cached batches: no loading, no
copy; needs TensorFlow); ``ready_batches``, a ``PyDataset`` whose ``__getitem__`` returns
ready-made numpy batches (adds the Keras adapter's per-batch cost, no
decoding), served as fastseq's datasets are (fastseq.keras.tfdata).

On a 2-core machine the loader and the training step share the cores, so
these bound what any loader can reach.

Every ``model.fit`` runs in a Python process of its own (:func:`fit_in_child`):
under TensorFlow the first ``from_generator`` dataset of a process changes
glibc's allocator settings for the rest of it, so in one shared process a
loader's figure would depend on which loaders ran before it.

Keras runs on whatever backend it is set to (``KERAS_BACKEND``).  Without
TensorFlow, the runs that need ``tf.data`` (``tf_dataset``, ``model_only``)
are skipped, each with one line saying why, and the others run.

Imports Keras only when called.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import os
import platform
import sys
import time
from typing import Any

import numpy as np

from fastseq.threads import usable_cpus

__all__ = ["run_fit_benchmark", "run_listing_benchmark", "LOADERS", "format_fit_table",
           "seconds_per_epoch"]

#: Loader names and one-line descriptions, in the order they run.
LOADERS = {
    "fastseq": "fastseq.ImageDataGenerator().flow_from_directory, workers=1 (nearest)",
    "fastseq_w2": "fastseq ... flow_from_directory, workers=2 threads (nearest)",
    "fastseq_bilinear": "fastseq ... flow_from_directory(interpolation='bilinear')",
    "fastseq_sequence": "fastseq.ImageSequence (bilinear)",
    "seed_pil_w1": "seed's PIL Sequence, workers=1 (bilinear)",
    "seed_pil_w2": "seed's PIL Sequence, workers=2 threads (bilinear)",
    "keras_legacy": "Keras legacy ImageDataGenerator().flow_from_directory (nearest)",
    "tf_dataset": "keras.utils.image_dataset_from_directory + AUTOTUNE (bilinear)",
}
FLOORS = {
    "model_only": "floor: model alone on cached tensors",
    "ready_batches": "floor: PyDataset returning ready-made batches",
}
#: The runs that need TensorFlow's tf.data, and why.
NEEDS_TENSORFLOW = {
    "tf_dataset": "image_dataset_from_directory needs tf.data",
    "model_only": "the floor feeds cached tensors through tf.data",
    # the cache benchmark's (fastseq.bench.cachebench)
    "tf_dataset_cache": "tf.data's own cache",
    "tf_dataset_cache_shuffled": "tf.data's own cache",
}
#: Keras ``workers`` of the flow_from_directory rows (passed to the
#: iterator, as Keras 3's PyDataset takes it in its constructor).
_WORKERS = {"fastseq": 1, "fastseq_w2": 2}
_N_CACHED_BATCHES = 8
#: The runs that train on a few ready-made batches.
_NEEDS_READY = ("model_only", "ready_batches", "ready_batches_keras")
#: Loaders also timed alone (one pass over the data, no model): with the
#: model-only floor, they show where an epoch's time goes.
_INPUT_ONLY = ("fastseq", "fastseq_bilinear", "tf_dataset")


def seconds_per_epoch(seconds: list[float]) -> float:
    """One process's s/epoch: the mean of its epochs after the first, what
    a training run pays for them.  A median would drop the epochs that
    stall, and tf.data's stalls are a cost of its pipeline, not noise: with
    its default autotuning, an ``image_dataset_from_directory(...).cache()``
    epoch waits about 0.6 s for the last epoch's tuning thread in about a
    quarter of its epochs (README, "Cache"); fastseq's pipeline has none."""
    later = seconds[1:]
    if not later:
        raise ValueError("seconds per epoch need at least two epochs (the first is excluded)")
    return sum(later) / len(later)


def _list_class_folders(data_dir: str) -> tuple[list[str], list[int], list[str]]:
    from fastseq.keras import listing as _listing

    classes = _listing.list_classes(data_dir)
    names, ids = _listing.list_directory(data_dir, classes)
    return [os.path.join(data_dir, n) for n in names], ids, classes


def _build_model(size: tuple[int, int], n_classes: int):
    import keras

    model = keras.Sequential([
        keras.Input((size[0], size[1], 3)),
        keras.layers.Conv2D(8, 3, strides=4, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(n_classes, activation="softmax"),
    ])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    return model


def _seed_sequence_class():
    """The tutorials' custom generator, as users write it today."""
    import keras
    from PIL import Image

    class SeedPILSequence(keras.utils.Sequence):
        def __init__(self, list_IDs, labels, batch_size=32, dim=(224, 224), n_channels=3,
                     n_classes=10, shuffle=True, **kwargs):
            super().__init__(**kwargs)
            self.dim = dim
            self.batch_size = batch_size
            self.labels = labels
            self.list_IDs = list_IDs
            self.n_channels = n_channels
            self.n_classes = n_classes
            self.shuffle = shuffle
            self.on_epoch_end()

        def __len__(self):
            return int(np.ceil(len(self.list_IDs) / self.batch_size))

        def __getitem__(self, index):
            indexes = self.indexes[index * self.batch_size:(index + 1) * self.batch_size]
            list_IDs_temp = [self.list_IDs[k] for k in indexes]
            return self.__data_generation(list_IDs_temp)

        def on_epoch_end(self):
            self.indexes = np.arange(len(self.list_IDs))
            if self.shuffle:
                np.random.shuffle(self.indexes)

        def __data_generation(self, list_IDs_temp):
            X = np.empty((len(list_IDs_temp), *self.dim, self.n_channels), dtype=np.float32)
            y = np.empty((len(list_IDs_temp)), dtype=int)
            for i, ID in enumerate(list_IDs_temp):
                with Image.open(ID) as img:
                    img = img.convert("RGB").resize((self.dim[1], self.dim[0]),
                                                    Image.BILINEAR)
                    X[i, ] = np.asarray(img, dtype=np.float32) / 255.0
                y[i] = self.labels[ID]
            return X, keras.utils.to_categorical(y, num_classes=self.n_classes)

    return SeedPILSequence


def _minor_faults() -> int | None:
    """This process's minor page faults so far (Linux), else None."""
    try:
        with open("/proc/self/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[7])
    except (OSError, ValueError, IndexError):
        return None


class _EpochTimer:
    """Seconds and minor page faults of every epoch."""

    def __init__(self):
        import keras

        timer = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                timer._f0 = _minor_faults()
                timer._t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                timer.seconds.append(time.perf_counter() - timer._t0)
                f1 = _minor_faults()
                timer.faults.append(None if f1 is None or timer._f0 is None
                                    else f1 - timer._f0)

        self.seconds: list[float] = []
        self.faults: list[int | None] = []
        self.callback = Callback()


_CHILD = ("import json, sys; sys.path[:0] = {path!r}; from fastseq.bench import fitbench; "
          "print('FIT-RESULT ' + json.dumps(fitbench.{body}(json.loads(sys.argv[1]))))")


#: Seconds a fit child may take: its start (importing TensorFlow, ~10 s
#: here), then per epoch.  A loader that hangs stops the benchmark with an
#: error naming it instead of hanging it.
CHILD_START_S = 300
CHILD_EPOCH_S = 300


def _run_fit_child(body: str, cfg: dict, timeout: float, what: str) -> dict:
    """``fitbench.<body>(cfg)`` in a new Python process: its JSON result,
    or the child's failure (fastseq.bench.common.child_failure) raised."""
    import json

    from fastseq.bench.common import child_failure, fastseq_path, run_python_child

    proc = run_python_child(_CHILD.format(path=fastseq_path(), body=body), [json.dumps(cfg)],
                            timeout, what)
    for line in proc.stdout.splitlines():
        if line.startswith("FIT-RESULT "):
            return json.loads(line[len("FIT-RESULT "):])
    raise child_failure(what, proc)


def fit_in_child(name: str, data_dir: str, size: tuple[int, int], batch_size: int,
                 epochs: int, *, cache_dir: str | None = None,
                 maker: tuple[str, str, dict] | None = None,
                 timeout: float | None = None) -> dict:
    """``model.fit`` fed by loader `name`, in a new Python process:
    ``{"seconds": [...], "faults": [...]}``, one per epoch (faults: minor
    page faults, None off Linux).  The loader is :func:`_make_loader`'s
    `name`, or ``getattr(import_module(module), function)(name, data_dir,
    **kwargs)`` for ``maker=(module, function, kwargs)`` (JSON-able kwargs).

    Each loader gets a process of its own because what one leaves behind
    changes the next one's figures: TensorFlow 2.21 fixes glibc's mmap
    threshold at 128 KiB for the whole process the first time any
    ``from_generator`` dataset is built (Keras' pipeline for every
    ``PyDataset``), after which each of the model's op temporaries is a
    fresh mmap, page-faulted in every step; see fastseq.keras.tfdata.

    `timeout`: seconds before the child is killed and RuntimeError raised
    (default CHILD_START_S + CHILD_EPOCH_S per epoch)."""
    cfg = dict(name=name, data_dir=data_dir, size=list(size), batch_size=batch_size,
               epochs=epochs, cache_dir=cache_dir, maker=maker)
    if timeout is None:
        timeout = CHILD_START_S + CHILD_EPOCH_S * epochs
    return _run_fit_child("_fit_child", cfg, timeout,
                          f"model.fit with loader {name!r} in its process")


def _child_setup(cfg: dict, names) -> tuple:
    """What a fit child builds before its loaders: (paths, ids, n_classes,
    the floors' ready-made batches or None), the random seed set."""
    from fastseq.bench.common import hide_modules

    hide_modules()          # the parent's test hook (an environment variable)
    import keras

    size, batch_size = tuple(cfg["size"]), int(cfg["batch_size"])
    paths, ids, classes = _list_class_folders(cfg["data_dir"])
    cached = (_cached_batches(paths, ids, len(classes), size, batch_size)
              if any(n in _NEEDS_READY for n in names) else None)
    keras.utils.set_random_seed(0)
    return paths, ids, len(classes), cached


def _fit_epochs(model, data, epochs: int, timer: "_EpochTimer") -> None:
    import keras

    # fit's shuffle only reorders PyDataset batches; tf.data input warns.
    model.fit(data, epochs=epochs, verbose=0, callbacks=[timer.callback],
              shuffle=isinstance(data, keras.utils.PyDataset))


def _fit_child(cfg: dict) -> dict:
    """The body of :func:`fit_in_child`'s process."""
    name, data_dir = cfg["name"], cfg["data_dir"]
    size, batch_size = tuple(cfg["size"]), int(cfg["batch_size"])
    paths, ids, n_classes, cached = _child_setup(cfg, [name])
    if cfg.get("maker"):
        import importlib

        module, function, kwargs = cfg["maker"]
        data = getattr(importlib.import_module(module), function)(name, data_dir, **kwargs)
    else:
        data = _make_loader(name, data_dir, size, batch_size, paths, ids, n_classes, cached,
                            cache_dir=cfg.get("cache_dir"))
    model = _build_model(size, n_classes)
    timer = _EpochTimer()
    _fit_epochs(model, data, int(cfg["epochs"]), timer)
    return dict(seconds=timer.seconds, faults=timer.faults)


#: Loaders that may share a fit process (fit_paired_in_child): none builds a
#: ``from_generator`` dataset, which would change the others' figures (see
#: fit_in_child), and each keeps its state between fit calls (a cache
#: filled once).
PAIRABLE = ("fastseq_cache", "fastseq_cache_memory", "ready_batches", "tf_dataset_cache",
            "model_only")


def fit_paired_in_child(names: list[str], data_dir: str, size: tuple[int, int],
                        batch_size: int, cycles: int, *, cache_dir: str | None = None,
                        timeout: float | None = None) -> dict:
    """One model trained in one new process by each loader of `names` (from
    PAIRABLE) in turn, one ``model.fit(epochs=1)`` per loader per cycle,
    `cycles` cycles, every other one in reverse order (a, b, c, c, b, a,
    ...), so that each loader's epoch of a cycle runs beside the others' of
    the same cycle: ``{name: {"seconds": [...], "faults": [...]}}``, one
    per cycle, with ``"cache_stats"`` (ImageCache counts) for fastseq's.
    A process's speed on this VM varies by up to 25% from one process to
    the next, more than the loaders differ; epochs side by side in one
    process share it.  Cycle 1 fills the caches and traces the
    model's step for each input; it is to be excluded.  What this leaves
    out: whatever a loader pays between its epochs (a ``fit`` of many
    epochs pays it; here it falls between fit calls), such as tf.data's
    wait for the last epoch's tuning thread (fastseq.keras.tfdata).
    `cache_dir`: fastseq_cache's cache directory."""
    if not isinstance(names, (list, tuple)) or not names \
            or any(n not in PAIRABLE for n in names) or len(set(names)) != len(names) \
            or not isinstance(cycles, int) or isinstance(cycles, bool) or cycles < 2:
        raise ValueError(f"fit_paired_in_child takes distinct loaders of {PAIRABLE} and "
                         f">= 2 cycles, got {names!r} and {cycles!r}")
    cfg = dict(names=list(names), data_dir=data_dir, size=list(size), batch_size=batch_size,
               cycles=cycles, cache_dir=cache_dir)
    if timeout is None:
        timeout = CHILD_START_S + CHILD_EPOCH_S * cycles * len(names)
    return _run_fit_child("_paired_child", cfg, timeout,
                          f"model.fit with loaders {', '.join(names)} in turn in one process")


def _paired_child(cfg: dict) -> dict:
    """The body of :func:`fit_paired_in_child`'s process."""
    names, size = cfg["names"], tuple(cfg["size"])
    paths, ids, n_classes, cached = _child_setup(cfg, names)
    data = {n: _make_loader(n, cfg["data_dir"], size, int(cfg["batch_size"]), paths, ids,
                            n_classes, cached, cache_dir=cfg.get("cache_dir")) for n in names}
    model = _build_model(size, n_classes)
    timers = {n: _EpochTimer() for n in names}
    for c in range(int(cfg["cycles"])):
        for n in (names if c % 2 == 0 else names[::-1]):
            _fit_epochs(model, data[n], 1, timers[n])
    out = {n: dict(seconds=t.seconds, faults=t.faults) for n, t in timers.items()}
    for n, d in data.items():
        store = d._store() if hasattr(d, "_store") else None
        if store is not None:       # what fastseq's cache did, all cycles
            out[n]["cache_stats"] = dict(store.stats)
    return out


def _make_loader(name: str, data_dir: str, size: tuple[int, int], batch_size: int,
                 paths: list[str], ids: list[int], n_classes: int, cached,
                 cache_dir: str | None = None):
    import keras

    import fastseq

    quiet = contextlib.redirect_stdout(io.StringIO())   # the "Found N images" lines
    if name in ("fastseq", "fastseq_w2", "fastseq_bilinear", "fastseq_cache",
                "fastseq_cache_memory"):
        # fastseq_cache: fastseq's pixel cache (issue 13) in `cache_dir`
        # (_memory: cache="memory"), bilinear as the tf.data rows it is
        # compared with
        cached_px = name.startswith("fastseq_cache")
        kw = {"interpolation": "bilinear"} if name == "fastseq_bilinear" or cached_px else {}
        if cached_px:
            kw["cache"] = "memory" if name == "fastseq_cache_memory" else cache_dir
        if name in _WORKERS:
            kw["workers"] = _WORKERS[name]
        with quiet:
            return fastseq.ImageDataGenerator(rescale=1 / 255).flow_from_directory(
                data_dir, target_size=size, batch_size=batch_size, class_mode="categorical",
                shuffle=True, **kw)
    if name == "fastseq_sequence":
        return fastseq.ImageSequence(paths, ids, batch_size=batch_size, dim=size,
                                     n_classes=n_classes, shuffle=True)
    if name in ("seed_pil_w1", "seed_pil_w2"):
        labels = dict(zip(paths, ids))
        return _seed_sequence_class()(paths, labels, batch_size=batch_size, dim=size,
                                      n_channels=3, n_classes=n_classes, shuffle=True,
                                      workers=1 if name == "seed_pil_w1" else 2)
    if name == "keras_legacy":
        from keras.src.legacy.preprocessing.image import ImageDataGenerator

        with quiet:
            return ImageDataGenerator(rescale=1 / 255).flow_from_directory(
                data_dir, target_size=size, batch_size=batch_size, class_mode="categorical",
                shuffle=True)
    if name in ("tf_dataset", "tf_dataset_cache", "tf_dataset_cache_shuffled"):
        import tensorflow as tf

        per_image = name == "tf_dataset_cache_shuffled"
        with quiet:
            ds = keras.utils.image_dataset_from_directory(
                data_dir, image_size=size, batch_size=None if per_image else batch_size,
                label_mode="categorical", shuffle=True, interpolation="bilinear",
                verbose=False)
        ds = ds.map(lambda x, y: (x / 255.0, y))
        if name == "tf_dataset_cache":
            ds = ds.cache()     # tf.data's own cache, in memory, of batches
        elif per_image:
            # tf.data's cache doing what Keras' iterators (and fastseq) do
            # every epoch: a new order of the samples, so new batches.  A
            # cache of batches replays the first epoch's batches instead.
            ds = ds.cache().shuffle(len(paths), reshuffle_each_iteration=True)
            ds = ds.batch(batch_size)
        return ds.prefetch(tf.data.AUTOTUNE)
    if name == "model_only":
        import tensorflow as tf

        xs, ys = cached
        steps = math.ceil(len(paths) / batch_size)
        # whole batches as elements: nothing is sliced or copied per step
        ds = tf.data.Dataset.from_tensors((xs[0], ys[0]))
        for x, y in zip(xs[1:], ys[1:]):
            ds = ds.concatenate(tf.data.Dataset.from_tensors((x, y)))
        return ds.repeat().take(steps).prefetch(tf.data.AUTOTUNE)
    if name in ("ready_batches", "ready_batches_keras"):
        xs, ys = cached
        steps = math.ceil(len(paths) / batch_size)

        class ReadyBatches(keras.utils.PyDataset):
            # The floor of fastseq's loaders runs through the same pipeline
            # as they do (fastseq.keras.tfdata); "_keras" through Keras' own.
            tf_pipeline = "keras" if name == "ready_batches_keras" else "fastseq"

            def __len__(self):
                return steps

            def __getitem__(self, index):
                if not 0 <= index < steps:
                    raise IndexError(index)
                k = index % len(xs)
                return xs[k], ys[k]

        if name == "ready_batches":
            import fastseq.keras.base  # noqa: F401  (installs the pipeline hook)
        return ReadyBatches()
    raise ValueError(f"unknown loader {name!r}")


def _cached_batches(paths: list[str], ids: list[int], n_classes: int,
                    size: tuple[int, int], batch_size: int):
    """A few real batches decoded once, reused by the floors."""
    import fastseq

    from fastseq.batch import aligned_empty

    n = min(_N_CACHED_BATCHES, math.ceil(len(paths) / batch_size))
    # aligned, so that TensorFlow can take the ready batches without a copy:
    # the floor must not pay a cost the loaders can avoid
    xs = [aligned_empty((batch_size, size[0], size[1], 3), np.float32) for _ in range(n)]
    ys = [np.zeros((batch_size, n_classes), np.float32) for _ in range(n)]
    for k in range(n):
        sel = [(k * batch_size + i) % len(paths) for i in range(batch_size)]
        fastseq.load_batch([paths[i] for i in sel], size, out=xs[k], dtype="float32",
                           rescale=1 / 255)
        ys[k][np.arange(batch_size), [ids[i] for i in sel]] = 1.0
    return xs, ys


def _versions() -> dict:
    import keras
    import PIL

    import fastseq

    out = {"fastseq": fastseq.__version__, "keras": keras.__version__,
           "keras_backend": keras.backend.backend(),
           "numpy": np.__version__, "pillow": PIL.__version__,
           "python": platform.python_version()}
    tf = sys.modules.get("tensorflow")      # only when something imported it
    if tf is not None:
        out["tensorflow"] = tf.__version__
    out["libjpeg_turbo"] = fastseq.info().get("libjpeg_turbo")
    return out


def _tensorflow_missing() -> str | None:
    """Why TensorFlow cannot be used here, or None when it can."""
    try:
        import tensorflow  # noqa: F401
    except ImportError as e:
        return f"TensorFlow is not installed ({e})"
    return None


def _prefetch_default() -> bool | None:
    """The default of fastseq's built-in ``prefetch`` option, or None when
    this fastseq's iterators have no such option."""
    import fastseq

    param = inspect.signature(fastseq.DirectoryIterator).parameters.get("prefetch")
    return None if param is None or param.default is param.empty else bool(param.default)


def run_fit_benchmark(data_dir: str, *, size: int | tuple[int, int] = 224,
                      batch_size: int = 32, epochs: int = 3,
                      loaders: list[str] | None = None,
                      progress: bool = True, rounds: int = 1) -> dict:
    """Seconds per epoch of ``model.fit`` fed by each loader, and two floors.

    Parameters
    ----------
    data_dir : a folder of class subfolders of images (flow_from_directory
        layout).
    size : output image side (or a (height, width) pair).
    batch_size : samples per batch, for every loader.
    epochs : epochs per loader, at least 2; epoch 1 is excluded from the
        figures.
    loaders : names from :data:`LOADERS` (default: all, in that order).
    progress : print one line per loader run to stderr as it finishes, and
        one per run skipped.
    rounds : runs of every loader, interleaved; each figure is the median
        over the rounds.

    Returns
    -------
    A JSON-serialisable dict::

        {
          "data_dir": str, "n_images": int, "n_classes": int,
          "size": [height, width], "batch_size": int, "epochs": int,
          "steps_per_epoch": int, "cpus": int, "rounds": int,
          "load_average": [float, float, float] | None,  # 1/5/15 min, at the end
          "model": str,              # the model trained
          "versions": {package: version},  # with "keras_backend"; "tensorflow"
                                           # only when it was imported
          "prefetch": bool | None,   # the default of fastseq's built-in
                                     # prefetch option; None: no such option
          "loaders": {name: {        # in run order; those that ran
              "description": str,
              "seconds_per_epoch": float,   # median over rounds of the mean
                                            # of epochs 2..epochs
              "images_per_s": float,
              "round_seconds_per_epoch": [float, ...],   # one per round
              "epoch_seconds": [[float, ...], ...]  # per round, every epoch,
                                                    # epoch 1 included
          }},
          "floors": {"model_only": {...same keys...},      # those that ran
                     "ready_batches": {...same keys...}},
          "skipped": {name: str},    # loaders and floors that could not run
                                     # here (no TensorFlow), and why
          "speedup": {               # fastseq's advantage, as ratios of
              "vs_fastseq_w2": float | None,    # seconds per epoch measured
              "vs_seed_pil_w1": float | None,   # in this run: other / fastseq
              "vs_seed_pil_w2": float | None,   # (None: either did not run)
              "vs_keras_legacy": float | None,
              "vs_tf_dataset": float | None
          },
          "speedup_bilinear": {...same keys but vs_fastseq_w2...},  # the same,
                                                # for fastseq_bilinear
          "input_only": {name: float}  # seconds for one pass over the data by
                                       # the loader alone, no model (median of
                                       # rounds; fastseq, fastseq_bilinear and
                                       # tf_dataset when they run)
        }
    """
    if isinstance(size, (int, np.integer)):
        size_hw = (int(size), int(size))
    else:
        size_hw = tuple(int(v) for v in size)
        if len(size_hw) != 2:
            raise ValueError(f"size must be an int or a (height, width) pair, got {size!r}")
    if epochs < 2:
        raise ValueError("epochs must be at least 2 (epoch 1 is excluded)")
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    names = list(LOADERS) if loaders is None else list(loaders)
    unknown = [n for n in names if n not in LOADERS]
    if unknown:
        raise ValueError(f"unknown loader(s) {unknown}; choose from {list(LOADERS)}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    skipped: dict[str, str] = {}
    if any(n in NEEDS_TENSORFLOW for n in list(FLOORS) + names):
        why = _tensorflow_missing()
        if why:
            skipped = {n: f"{why}: {NEEDS_TENSORFLOW[n]}"
                       for n in list(FLOORS) + names if n in NEEDS_TENSORFLOW}
    paths, ids, classes = _list_class_folders(data_dir)
    if not paths:
        raise ValueError(f"no images in class folders under {data_dir!r}")
    n_classes = len(classes)
    steps = math.ceil(len(paths) / batch_size)

    def run_once(name: str) -> list[float]:
        return fit_in_child(name, data_dir, size_hw, batch_size, epochs)["seconds"]

    def input_pass(name: str) -> float:
        """Seconds for one pass over the data without the model (the second
        of two passes): what the loader alone costs per epoch."""
        data = _make_loader(name, data_dir, size_hw, batch_size, paths, ids, n_classes, None)
        seconds = 0.0
        for _ in range(2):
            t0 = time.perf_counter()
            if isinstance(data, keras.utils.PyDataset):
                for i in range(len(data)):
                    data[i]
                data.on_epoch_end()
            else:
                for _batch in data:
                    pass
            seconds = time.perf_counter() - t0
        del data
        keras.backend.clear_session()
        return seconds

    input_names = [n for n in names if n in _INPUT_ONLY and n not in skipped]
    input_runs: dict[str, list[float]] = {n: [] for n in input_names}
    all_names = [n for n in list(FLOORS) + names if n not in skipped]
    runs: dict[str, list[list[float]]] = {n: [] for n in all_names}
    if progress:
        print(f"model.fit benchmark: {len(paths)} images, {n_classes} classes, "
              f"{size_hw[0]}x{size_hw[1]}, batch {batch_size}, {epochs} epochs "
              f"(epoch 1 excluded), {rounds} round(s), {usable_cpus()} CPUs, "
              f"Keras backend {keras.backend.backend()}", file=sys.stderr, flush=True)
        for name, why in skipped.items():
            print(f"  skipped {name}: {why}", file=sys.stderr, flush=True)
    for r in range(rounds):
        for name in all_names:
            secs = run_once(name)
            runs[name].append(secs)
            if progress:
                spe = seconds_per_epoch(secs)
                desc = LOADERS.get(name) or FLOORS[name]
                print(f"  [{r + 1}/{rounds}] {name:<17} {spe:7.3f} s/epoch "
                      f"({len(paths) / spe:7.1f} images/s)  {desc}", file=sys.stderr, flush=True)
        for name in input_names:
            input_runs[name].append(input_pass(name))
            if progress:
                print(f"  [{r + 1}/{rounds}] {name:<17} {input_runs[name][-1]:7.3f} s/pass "
                      "without the model", file=sys.stderr, flush=True)

    def summary(name: str) -> dict:
        per_round = [seconds_per_epoch(s) for s in runs[name]]
        spe = float(np.median(per_round))
        return dict(description=LOADERS.get(name) or FLOORS[name], seconds_per_epoch=spe,
                    images_per_s=len(paths) / spe, round_seconds_per_epoch=per_round,
                    epoch_seconds=runs[name])

    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    result: dict[str, Any] = dict(
        data_dir=os.path.abspath(data_dir), n_images=len(paths), n_classes=n_classes,
        size=list(size_hw), batch_size=batch_size, epochs=epochs, steps_per_epoch=steps,
        cpus=usable_cpus(), rounds=rounds, load_average=load,
        model=f"Conv2D(8, 3, strides=4, relu) -> GlobalAveragePooling2D -> "
              f"Dense({n_classes}, softmax) on {size_hw[0]}x{size_hw[1]}x3, SGD",
        versions=_versions(), prefetch=_prefetch_default(),
        loaders={n: summary(n) for n in names if n in runs},
        floors={n: summary(n) for n in FLOORS if n in runs},
        skipped=skipped,
        input_only={n: float(np.median(v)) for n, v in input_runs.items()},
        speedup={}, speedup_bilinear={})
    others = ("seed_pil_w1", "seed_pil_w2", "keras_legacy", "tf_dataset")
    for key, ours_name, vs in (("speedup", "fastseq", ("fastseq_w2",) + others),
                               ("speedup_bilinear", "fastseq_bilinear", others)):
        ours = result["loaders"].get(ours_name, {}).get("seconds_per_epoch")
        for other in vs:
            theirs = result["loaders"].get(other, {}).get("seconds_per_epoch")
            result[key][f"vs_{other}"] = (theirs / ours) if ours and theirs else None
    return result


def format_fit_table(result: dict) -> str:
    """A Markdown table of a :func:`run_fit_benchmark` result: the loaders,
    then the floors, then the runs skipped (why is in ``result["skipped"]``)."""
    rows = [("loader", "s/epoch", "images/s", "vs fastseq")]
    ours = result["loaders"].get("fastseq", {}).get("seconds_per_epoch")
    for group in ("loaders", "floors"):
        for name, r in result[group].items():
            desc = LOADERS.get(name) or FLOORS.get(name, name)
            rel = f"{r['seconds_per_epoch'] / ours:.2f}x" if ours else "-"
            rows.append((desc, f"{r['seconds_per_epoch']:.3f}", f"{r['images_per_s']:.0f}", rel))
    for name in result["skipped"]:
        rows.append((LOADERS.get(name) or FLOORS.get(name, name), "skipped", "-", "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(rows[0], widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows[1:]]
    return "\n".join(lines)


def run_listing_benchmark(n_files: int = 100_000, n_classes: int = 10,
                          root: str | None = None, progress: bool = True) -> dict:
    """Seconds to list a folder tree of `n_files` (empty) ``.jpg`` files in
    `n_classes` class folders: fastseq's ``DirectoryIterator`` against Keras'
    legacy one (best of 3 each, "Found ..." output suppressed).

    Returns ``{"n_files", "n_classes", "fastseq_s", "keras_legacy_s",
    "speedup"}``.  The tree is created in a temporary folder under `root`
    (default: the system's) and removed afterwards.
    """
    import shutil
    import tempfile

    from keras.src.legacy.preprocessing.image import DirectoryIterator as KerasIterator

    import fastseq

    tmp = tempfile.mkdtemp(prefix="fastseq-listing-", dir=root)
    try:
        for k in range(n_classes):
            os.mkdir(os.path.join(tmp, f"class_{k:02d}"))
        for i in range(n_files):
            open(os.path.join(tmp, f"class_{i % n_classes:02d}", f"img_{i:07d}.jpg"), "wb").close()

        def best(fn):
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):
                    fn()
                times.append(time.perf_counter() - t0)
            return min(times)

        ours = best(lambda: fastseq.DirectoryIterator(tmp, None, shuffle=False))
        theirs = best(lambda: KerasIterator(tmp, None, shuffle=False))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = dict(n_files=n_files, n_classes=n_classes, fastseq_s=ours, keras_legacy_s=theirs,
               speedup=theirs / ours)
    if progress:
        print(f"listing {n_files} files in {n_classes} class folders: fastseq {ours:.3f} s, "
              f"Keras legacy {theirs:.3f} s ({out['speedup']:.1f}x)", file=sys.stderr,
              flush=True)
    return out
