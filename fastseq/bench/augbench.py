"""Issue 11's augmentation benchmark (``benchmarks/bench_augment.py``,
``fastseq bench --augment``): Keras' common augmentation recipe through
fastseq and through Keras' legacy ImageDataGenerator, and fastseq without
augmentation, as ratios measured in one run.

The recipe::

    rotation_range=20, width_shift_range=0.2, height_shift_range=0.2,
    shear_range=0.2, zoom_range=0.2, horizontal_flip=True, fill_mode="nearest"

Loaders, each ``flow_from_directory(dir, target_size=size, batch_size=64,
shuffle=False)`` read batch by batch (``it[i]``), Keras' default "nearest"
resize for all:

* ``fastseq_aug``: ``fastseq.ImageDataGenerator(**RECIPE)`` (its default
  threads);
* ``fastseq``: ``fastseq.ImageDataGenerator()``, no augmentation;
* ``keras_aug``: Keras' legacy
  ``keras.src.legacy.preprocessing.image.ImageDataGenerator(**RECIPE)``.

All run in one process, after a warm-up pass each, rounds alternating
between loaders (the order reversed every other round); a loader's figure
is the median of its rounds.  The two fastseq loaders run back to back in
each round, and their target is the median of the per-round ratios (paired
rounds).  Keras takes ~10 ms an image, so every loader may read the same
subset (``limit``: links to the first images of each class, round-robin, in
a temporary folder).  With ``fit``, ``model.fit`` seconds per epoch with the
recipe (and ``rescale=1/255``), fastseq vs Keras legacy, on
fastseq.bench.fitbench's model, epoch 1 excluded.

The flow benchmark (issue 12, section 6; ``fastseq bench --flow``,
``benchmarks/bench_augment.py --flow``): ``flow(x, y)`` with the recipe on a
CIFAR-shaped 10,000 x 32 x 32 x 3 uint8 array, fastseq against Keras' legacy
``flow``, passes alternating in one process (:func:`run_flow_benchmark`).
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import tempfile
import time

import fastseq

SIZE = (224, 224)
BATCH = 64
RECIPE = dict(rotation_range=20, width_shift_range=0.2, height_shift_range=0.2,
              shear_range=0.2, zoom_range=0.2, horizontal_flip=True, fill_mode="nearest")
LOADERS = ("fastseq_aug", "fastseq", "keras_aug")


def subset_tree(src, limit, dest):
    """`dest`/<class>/<file> links to `limit` images of `src`'s class
    folders, taken round-robin over the classes (sorted names)."""
    classes = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)))
    files = {c: sorted(os.listdir(os.path.join(src, c))) for c in classes}
    picked, i = 0, 0
    while picked < limit and any(i < len(f) for f in files.values()):
        for c in classes:
            if i < len(files[c]) and picked < limit:
                os.makedirs(os.path.join(dest, c), exist_ok=True)
                os.symlink(os.path.join(src, c, files[c][i]), os.path.join(dest, c, files[c][i]))
                picked += 1
        i += 1
    return picked


def bench_images(src, limit, tmp):
    """(folder, number of images) a benchmark reads: `limit` images of
    `src`'s class folders linked under `tmp`, or `src` itself when `limit`
    is 0; ValueError when there are none."""
    if limit:
        data_dir = os.path.join(tmp, "images")
        n = subset_tree(src, limit, data_dir)
    else:
        data_dir = src
        n = sum(len(fs) for _, _, fs in os.walk(src))
    if n == 0:
        raise ValueError(f"no images in class folders under {src}")
    return data_dir, n


@contextlib.contextmanager
def images_for(src, limit, prefix):
    """A temporary folder (removed afterwards) and bench_images in it:
    yields (folder, image folder, number of images).  A decode error on one
    of the folder's links names the user's file it points to (the link is
    gone by the time the error is printed)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        data_dir, n = bench_images(src, limit, tmp)
        try:
            yield tmp, data_dir, n
        except fastseq.ImageDecodeError as e:
            if not os.path.islink(e.source):
                raise

            def real(path):
                return os.path.realpath(path) if os.path.islink(path) else path

            raise fastseq.ImageDecodeError(
                real(e.source), e.reason, e.code, e.index,
                [f._replace(source=real(f.source)) for f in e.failures]) from None


def make_iterator(name, data_dir, batch_size=BATCH, size=SIZE, **extra):
    quiet = contextlib.redirect_stdout(io.StringIO())   # "Found N images ..."
    kw = dict(target_size=tuple(size), batch_size=batch_size, class_mode="categorical")
    if name == "keras_aug":
        from keras.src.legacy.preprocessing.image import ImageDataGenerator as KerasIDG
        with quiet:
            return KerasIDG(**RECIPE, **extra).flow_from_directory(data_dir, shuffle=False, **kw)
    gen_kw = dict(RECIPE) if name == "fastseq_aug" else {}
    with quiet:
        return fastseq.ImageDataGenerator(**gen_kw, **extra).flow_from_directory(
            data_dir, shuffle=False, **kw)


def one_pass(it):
    """Seconds to read every batch of `it` once."""
    t0 = time.perf_counter()
    for i in range(len(it)):
        it[i]
    return time.perf_counter() - t0


def run_loading(data_dir, n_images, rounds, size=SIZE, batch_size=BATCH):
    its = {name: make_iterator(name, data_dir, batch_size, size) for name in LOADERS}
    for it in its.values():      # warm-up: page cache, pools, imports
        one_pass(it)
    times = {name: [] for name in LOADERS}
    for r in range(rounds):
        order = LOADERS if r % 2 == 0 else LOADERS[::-1]
        for name in order:
            times[name].append(one_pass(its[name]))
    rate = {name: n_images / statistics.median(t) for name, t in times.items()}
    paired = [p / a for a, p in zip(times["fastseq_aug"], times["fastseq"])]
    return dict(seconds=times, images_per_s=rate, paired_aug_over_plain=paired)


def run_fit(data_dir, epochs, size=SIZE):
    """Mean s/epoch of ``model.fit`` (epoch 1 excluded) for fastseq and Keras
    legacy with the recipe, each in a process of its own
    (fitbench.fit_in_child: a process's first from_generator dataset, Keras'
    pipeline for the legacy iterator, changes the allocator for the rest of
    it)."""
    from fastseq.bench import fitbench

    out = {}
    for name in ("fastseq_aug", "keras_aug"):
        r = fitbench.fit_in_child(
            name, data_dir, size, 32, epochs,
            maker=("fastseq.bench.augbench", "make_iterator",
                   dict(batch_size=32, size=list(size), rescale=1 / 255)))
        out[name] = r["seconds"][1:]      # epoch 1 excluded
    return {name: statistics.mean(s) for name, s in out.items()}


def load_line():
    try:
        la = os.getloadavg()
        return f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} on {os.cpu_count()} CPUs"
    except OSError:
        return "load average unavailable"


def run_augment_benchmark(src, *, limit=320, rounds=5, fit=False, epochs=2, size=SIZE,
                          batch_size=BATCH) -> dict:
    """The figures and targets for the class folders under `src` (every
    image when `limit` is 0).  Returns a JSON-serialisable dict."""
    out = dict(source=str(src), size=list(size), batch_size=batch_size, rounds=rounds,
               warp_simd=fastseq._native.warp_simd(), load_before=load_line())
    with images_for(src, limit, "fastseq-bench-augment-") as (_, data_dir, n):
        out["n_images"] = n
        res = run_loading(data_dir, n, rounds, size, batch_size)
        fit_res = run_fit(data_dir, epochs, size) if fit else None
    out["load_after"] = load_line()
    rate = res["images_per_s"]
    paired = res["paired_aug_over_plain"]
    targets = [
        ("fastseq augmented / Keras legacy augmented", rate["fastseq_aug"] / rate["keras_aug"], 10.0),
        ("fastseq augmented / fastseq unaugmented (paired)", statistics.median(paired), 0.8),
    ]
    if fit_res:
        targets.append(("model.fit s/epoch, Keras legacy / fastseq",
                        fit_res["keras_aug"] / fit_res["fastseq_aug"], 4.0))
    out.update(loading=res, fit=fit_res,
               targets=[dict(target=d, ratio=g, minimum=w) for d, g, w in targets])
    return out


# -- issue 12, section 6: flow() on a CIFAR-shaped array ---------------------

FLOW_SHAPE = (10_000, 32, 32, 3)


def flow_array(n=FLOW_SHAPE[0], seed=0):
    """A deterministic (n, 32, 32, 3) uint8 array and its labels (0..9):
    random pixels (the warp's cost does not depend on them)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n,) + FLOW_SHAPE[1:], dtype=np.uint8),
            np.arange(n) % 10)


def make_flow(name, x, y, batch_size):
    """``flow(x, y, batch_size, shuffle=False, seed=0)`` of fastseq's or
    Keras' legacy generator with RECIPE (float32 batches, Keras' default)."""
    if name == "keras_flow":
        from keras.src.legacy.preprocessing.image import ImageDataGenerator as KerasIDG
        gen = KerasIDG(**RECIPE)
    else:
        gen = fastseq.ImageDataGenerator(**RECIPE)
    return gen.flow(x, y, batch_size=batch_size, shuffle=False, seed=0)


FLOW_LOADERS = ("fastseq_flow", "keras_flow")


def run_flow_benchmark(n=FLOW_SHAPE[0], rounds=3, batch_size=32) -> dict:
    """``flow`` with RECIPE on an (n, 32, 32, 3) uint8 array, fastseq
    against Keras' legacy ``flow``: one warm-up pass each, then `rounds`
    timed passes alternating (order reversed every other round); a
    loader's figure is its median pass.  Returns a JSON-serialisable dict
    with the ratio and its target (>= 10x, issue 12 section 6)."""
    x, y = flow_array(n)
    out = dict(shape=list(x.shape), batch_size=batch_size, rounds=rounds,
               threads=fastseq.get_num_threads(), warp_simd=fastseq._native.warp_simd(),
               load_before=load_line())
    its = {name: make_flow(name, x, y, batch_size) for name in FLOW_LOADERS}
    for it in its.values():
        one_pass(it)
    times = {name: [] for name in FLOW_LOADERS}
    for r in range(rounds):
        for name in (FLOW_LOADERS if r % 2 == 0 else FLOW_LOADERS[::-1]):
            times[name].append(one_pass(its[name]))
    rate = {name: n / statistics.median(t) for name, t in times.items()}
    out.update(seconds=times, images_per_s=rate, load_after=load_line(),
               targets=[dict(target="fastseq flow / Keras legacy flow, augmented",
                             ratio=rate["fastseq_flow"] / rate["keras_flow"], minimum=10.0)])
    return out


def format_flow_report(r: dict) -> str:
    lines = [f"fastseq {fastseq.__version__}, warp SIMD: {r['warp_simd']}, "
             f"{r['threads']} threads",
             f"flow() on a {'x'.join(map(str, r['shape']))} uint8 array, Keras' common "
             f"recipe, batch {r['batch_size']}, {r['rounds']} rounds",
             f"before: {r['load_before']}", f"after: {r['load_after']}"]
    n = r["shape"][0]
    for name in FLOW_LOADERS:
        rounds = " ".join(f"{n / s:.0f}" for s in r["seconds"][name])
        lines.append(f"  {name:12s} {r['images_per_s'][name]:9.1f} images/s   "
                     f"(rounds: {rounds})")
    lines.append("targets (issue 12, section 6):")
    for t in r["targets"]:
        ok = "PASS" if t["ratio"] >= t["minimum"] else "MISS"
        lines.append(f"  {ok}  {t['target']}: {t['ratio']:.2f}x (>= {t['minimum']:g}x)")
    return "\n".join(lines)


def format_augment_report(r: dict) -> str:
    size = r["size"]
    lines = [f"fastseq {fastseq.__version__}, warp SIMD: {r['warp_simd']}",
             f"{r['n_images']} images of {r['source']}, {size[0]}x{size[1]}, "
             f"batch {r['batch_size']}, {r['rounds']} rounds",
             f"before: {r['load_before']}", f"after: {r['load_after']}"]
    res = r["loading"]
    rate = res["images_per_s"]
    for name in LOADERS:
        rounds = " ".join(f"{r['n_images'] / s:.0f}" for s in res["seconds"][name])
        lines.append(f"  {name:12s} {rate[name]:8.1f} images/s   (rounds: {rounds})")
    lines.append("  fastseq_aug / fastseq per round: "
                 + " ".join(f"{x:.2f}" for x in res["paired_aug_over_plain"])
                 + f"; ratio of medians {rate['fastseq_aug'] / rate['fastseq']:.2f}")
    if r["fit"]:
        lines.append(f"  model.fit s/epoch: fastseq {r['fit']['fastseq_aug']:.2f}, "
                     f"Keras legacy {r['fit']['keras_aug']:.2f}")
    lines.append("targets (issue 11, section 5):")
    for t in r["targets"]:
        ok = "PASS" if t["ratio"] >= t["minimum"] else "MISS"
        lines.append(f"  {ok}  {t['target']}: {t['ratio']:.2f}x (>= {t['minimum']:g}x)")
    return "\n".join(lines)
