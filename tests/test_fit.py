"""model.fit end to end (issue section 4).

Each scenario runs ``model.fit`` in a child Python process under a timeout,
so a deadlock or a hang at the end of an epoch fails the test instead of
hanging the suite.  All scenarios share one child (TensorFlow takes ~10 s to
import); it prints a marker as each scenario starts, so a timeout says
which one hung, and writes its findings as JSON for the assertions here.

Scenarios:

- ``seed``: the seed README's snippet with only its import changed (and a
  small target size and batch size so it is quick);
- ``dir-threads``, ``dir-processes``, ``seq-threads``, ``seq-processes``:
  ``flow_from_directory`` / ``ImageSequence`` with ``workers=2`` threads, or
  ``workers=2, use_multiprocessing=True``.  A model whose ``train_step``
  (run eagerly) records every batch it receives shows that each sample
  comes exactly once per epoch, with the right label and pixels, and that
  the order is reshuffled between epochs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("keras")

import fastseq  # noqa: E402
from _keras_helpers import build_class_tree  # noqa: E402

TIMEOUT_S = 420

CHILD = textwrap.dedent(r'''
    import hashlib, json, os, sys, time
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import keras
    import fastseq

    root, out_path = sys.argv[1], sys.argv[2]
    results = {}

    def mark(name):
        print(f"[scenario] {name}", flush=True)

    # -- the seed README's snippet; only the import line is changed --------
    mark("seed")
    train_paths, val_paths, test_path = (os.path.join(root, s) for s in ("train", "val", "test"))
    t0 = time.time()
    # ---- begin seed snippet ----
    from fastseq import ImageDataGenerator

    aug = ImageDataGenerator(rescale=1/255.0)

    train_ds = aug.flow_from_directory(train_paths, target_size=(32,32),
                                       class_mode='categorical' ,batch_size=8,shuffle = True)
    val_ds =  aug.flow_from_directory(val_paths, target_size=(32,32),
                                      class_mode='categorical', batch_size=8 )
    test = aug.flow_from_directory(test_path,class_mode="categorical", target_size=(32,32), batch_size=4 )

    model = keras.Sequential([keras.Input((32, 32, 3)),
                              keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, activation="softmax")])

    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])

    H = model.fit(train_ds, validation_data = val_ds, epochs= 2)
    # ---- end seed snippet ----
    results["seed"] = dict(history={k: [float(v) for v in vs] for k, vs in H.history.items()},
                           evaluate=[float(v) for v in model.evaluate(test, verbose=0)],
                           seconds=time.time() - t0)

    # -- recording scenarios -------------------------------------------------
    def digest(row):
        return hashlib.sha1(np.ascontiguousarray(row).tobytes()).hexdigest()

    class Recorder(keras.Model):
        def __init__(self, n_classes):
            super().__init__()
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.dense = keras.layers.Dense(n_classes, activation="softmax")
            self.epochs = []

        def call(self, x):
            return self.dense(self.pool(x))

        def record(self, data):
            x, y = np.asarray(data[0]), np.asarray(data[1])
            self.epochs[-1].append(([digest(r) for r in x], y.tolist()))

        # run_eagerly, so the batches are concrete arrays on every backend;
        # the JAX trainer passes its state first.
        if keras.backend.backend() == "jax":
            def train_step(self, state, data):
                self.record(data)
                return super().train_step(state, data)
        else:
            def train_step(self, data):
                self.record(data)
                return super().train_step(data)

    class EpochMarks(keras.callbacks.Callback):
        def __init__(self, recorder):
            super().__init__()
            self.recorder = recorder

        def on_epoch_begin(self, epoch, logs=None):
            self.recorder.epochs.append([])

    train_dir = os.path.join(root, "train")
    size = (24, 28)

    def loader(kind, workers, processes):
        common = dict(workers=workers, use_multiprocessing=processes, max_queue_size=3)
        if kind == "dir":
            it = fastseq.ImageDataGenerator(rescale=1 / 255).flow_from_directory(
                train_dir, target_size=size, batch_size=5, seed=7, **common)
            paths, classes, interp = it.filepaths, it.classes, "nearest"
        else:
            paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(train_dir) for f in fs)
            names = sorted(os.listdir(train_dir))
            classes = [names.index(os.path.basename(os.path.dirname(p))) for p in paths]
            it = fastseq.ImageSequence(paths, classes, batch_size=5, dim=size, seed=7,
                                       label_mode="int", **common)
            interp = "bilinear"
        # one image per call, so the reference does not share the batch path
        ref = np.concatenate([fastseq.load_batch([p], size, dtype="float32",
                                                 rescale=1 / 255, interpolation=interp)
                              for p in paths])
        return it, {digest(r): i for i, r in enumerate(ref)}, list(map(int, classes))

    for kind in ("dir", "seq"):
        for mode, processes in (("threads", False), ("processes", True)):
            name = f"{kind}-{mode}"
            mark(name)
            t0 = time.time()
            ds, ids, classes = loader(kind, 2, processes)
            model = Recorder(3)
            model.compile(optimizer="sgd",
                          loss=("categorical_crossentropy" if kind == "dir"
                                else "sparse_categorical_crossentropy"),
                          run_eagerly=True)
            model.fit(ds, epochs=3, verbose=0, callbacks=[EpochMarks(model)])
            epochs = []
            for batches in model.epochs:
                seen, labels_ok = [], True
                for digests, ys in batches:
                    for d, y in zip(digests, ys):
                        i = ids.get(d, -1)
                        seen.append(i)
                        label = int(np.argmax(y)) if kind == "dir" else int(y)
                        labels_ok &= i >= 0 and label == classes[i]
                epochs.append(dict(order=seen, n_batches=len(batches), labels_ok=bool(labels_ok)))
            results[name] = dict(epochs=epochs, n=len(ids), n_batches=len(ds),
                                 seconds=time.time() - t0)

    with open(out_path, "w") as f:
        json.dump(results, f)
    mark("done")
''')


@pytest.fixture(scope="module")
def fit_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    build_class_tree(root / "train", {"ant": 6, "bee": 6, "cow": 5}, size=(30, 36), seed=1)
    build_class_tree(root / "val", {"ant": 3, "bee": 3, "cow": 2}, size=(30, 36), seed=2)
    build_class_tree(root / "test", {"ant": 2, "bee": 2, "cow": 2}, size=(30, 36), seed=3)
    script = root / "child.py"
    script.write_text(CHILD)
    out = root / "results.json"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(fastseq.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [repo] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    try:
        proc = subprocess.run([sys.executable, str(script), str(root), str(out)],
                              capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        started = [line for line in stdout.splitlines() if line.startswith("[scenario]")]
        pytest.fail(f"model.fit did not finish within {TIMEOUT_S}s (hang?); last scenario "
                    f"started: {started[-1] if started else 'none'}")
    assert proc.returncode == 0, f"child failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    results = json.loads(out.read_text())
    results["_stdout"] = proc.stdout
    return results


def test_seed_snippet_runs_with_only_the_import_changed(fit_results):
    r = fit_results["seed"]
    out = fit_results["_stdout"]
    assert "Found 17 images belonging to 3 classes." in out
    assert "Found 8 images belonging to 3 classes." in out
    assert "Found 6 images belonging to 3 classes." in out
    h = r["history"]
    assert set(h) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 2 for v in h.values())
    assert all(v == v and v < 1e6 for v in h["loss"] + h["val_loss"])    # finite
    assert len(r["evaluate"]) == 2


@pytest.mark.parametrize("scenario", ["dir-threads", "dir-processes",
                                      "seq-threads", "seq-processes"])
def test_each_sample_once_per_epoch_and_reshuffled(fit_results, scenario):
    r = fit_results[scenario]
    n = r["n"]
    assert n == 17 and r["n_batches"] == 4
    assert len(r["epochs"]) == 3
    for e in r["epochs"]:
        assert e["n_batches"] == 4
        assert -1 not in e["order"], "a batch held pixels no file decodes to"
        assert sorted(e["order"]) == list(range(n)), "not every sample exactly once"
        assert e["labels_ok"]
    orders = [tuple(e["order"]) for e in r["epochs"]]
    assert len(set(orders)) == 3, "on_epoch_end did not reshuffle"
