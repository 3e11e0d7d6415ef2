"""The augmentation benchmark of issue 11, section 5 (not a timed test).

The common recipe, at 224x224 on the default ImageNet-like set (see
fastseq.bench.datasets; generated once, cached under ~/.cache/fastseq)::

    rotation_range=20, width_shift_range=0.2, height_shift_range=0.2,
    shear_range=0.2, zoom_range=0.2, horizontal_flip=True, fill_mode="nearest"

Loaders, each ``flow_from_directory(dir, target_size=(224, 224),
batch_size=64, shuffle=False)`` read batch by batch (``it[i]``), Keras'
default "nearest" resize for all:

* ``fastseq_aug``: ``fastseq.ImageDataGenerator(**RECIPE)`` (its default
  threads);
* ``fastseq``: ``fastseq.ImageDataGenerator()``, no augmentation;
* ``keras_aug``: Keras' legacy
  ``keras.src.legacy.preprocessing.image.ImageDataGenerator(**RECIPE)``.

All run in this one process, after a warm-up pass each, rounds alternating
between loaders; a loader's figure is the median of its rounds.  The two
fastseq loaders run back to back in each round, and their target is the
median of the per-round ratios (paired rounds), printed with every round's
ratio.  Keras takes ~10-20 ms an image, so by default every loader reads the
same ``--limit`` images (a folder of links to the first images of each class,
in a temporary directory).

With ``--fit``, ``model.fit`` seconds per epoch with the recipe (and
``rescale=1/255``): fastseq vs Keras legacy, fastseq.bench.fitbench's model,
epoch 1 excluded, on the same images.

It prints the figures, then each target with PASS or MISS::

    python benchmarks/bench_augment.py [--rounds 5] [--limit 320] [--fit] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time

try:
    import fastseq  # noqa: F401
except ImportError:     # run from a checkout built in place
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastseq  # noqa: E402
from fastseq.bench import datasets  # noqa: E402

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


def make_iterator(name, data_dir, batch_size=BATCH, **extra):
    quiet = contextlib.redirect_stdout(io.StringIO())   # "Found N images ..."
    kw = dict(target_size=SIZE, batch_size=batch_size, class_mode="categorical")
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


def run_loading(data_dir, n_images, rounds):
    its = {name: make_iterator(name, data_dir) for name in LOADERS}
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


def run_fit(data_dir, epochs):
    import keras

    from fastseq.bench import fitbench

    n_classes = len([d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d))])
    out = {}
    for name in ("fastseq_aug", "keras_aug"):
        keras.utils.set_random_seed(0)
        data = make_iterator(name, data_dir, batch_size=32, rescale=1 / 255)
        model = fitbench._build_model(SIZE, n_classes)
        timer = fitbench._EpochTimer()
        model.fit(data, epochs=epochs, verbose=0, callbacks=[timer.callback])
        out[name] = timer.seconds[1:]      # epoch 1 excluded
        del model, data
        keras.backend.clear_session()
    return {name: statistics.mean(s) for name, s in out.items()}


def load_line():
    try:
        la = os.getloadavg()
        return f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} on {os.cpu_count()} CPUs"
    except OSError:
        return "load average unavailable"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--limit", type=int, default=320,
                   help="images read by every loader (default 320; 0: the whole set)")
    p.add_argument("--fit", action="store_true", help="also model.fit s/epoch")
    p.add_argument("--epochs", type=int, default=2, help="fit epochs, the first excluded")
    p.add_argument("--json", metavar="FILE")
    a = p.parse_args(argv)
    if a.rounds < 1 or a.limit < 0 or a.epochs < 2:
        p.error("--rounds >= 1, --limit >= 0 and --epochs >= 2")

    ds = datasets.ensure_default_dataset(progress=True)
    src = ds["imagenet"]
    print(f"fastseq {fastseq.__version__}, warp SIMD: {fastseq._native.warp_simd()}")
    print(f"before: {load_line()}")
    with tempfile.TemporaryDirectory(prefix="fastseq-bench-augment-") as tmp:
        if a.limit:
            data_dir = os.path.join(tmp, "images")
            n = subset_tree(src, a.limit, data_dir)
        else:
            data_dir = src
            n = sum(len(fs) for _, _, fs in os.walk(src))
        print(f"{n} images of {src}, {SIZE[0]}x{SIZE[1]}, batch {BATCH}, {a.rounds} rounds")
        res = run_loading(data_dir, n, a.rounds)
        fit = run_fit(data_dir, a.epochs) if a.fit else None
    print(f"after: {load_line()}")

    rate = res["images_per_s"]
    for name in LOADERS:
        rounds = " ".join(f"{n / s:.0f}" for s in res["seconds"][name])
        print(f"  {name:12s} {rate[name]:8.1f} images/s   (rounds: {rounds})")
    paired = res["paired_aug_over_plain"]
    print("  fastseq_aug / fastseq per round: " + " ".join(f"{r:.2f}" for r in paired)
          + f"; ratio of medians {rate['fastseq_aug'] / rate['fastseq']:.2f}")
    targets = [
        ("fastseq augmented / Keras legacy augmented", rate["fastseq_aug"] / rate["keras_aug"], 10.0),
        ("fastseq augmented / fastseq unaugmented (paired)", statistics.median(paired), 0.8),
    ]
    if fit:
        print(f"  model.fit s/epoch: fastseq {fit['fastseq_aug']:.2f}, "
              f"Keras legacy {fit['keras_aug']:.2f}")
        targets.append(("model.fit s/epoch, Keras legacy / fastseq",
                        fit["keras_aug"] / fit["fastseq_aug"], 4.0))
    print("targets (issue 11, section 5):")
    for desc, got, want in targets:
        print(f"  {'PASS' if got >= want else 'MISS'}  {desc}: {got:.2f}x (>= {want:g}x)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(n_images=n, rounds=a.rounds, loading=res, fit=fit,
                           targets=[dict(target=d, ratio=g, minimum=w) for d, g, w in targets]),
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
