"""The tf.data pipeline ``model.fit`` builds around fastseq's datasets on the
TensorFlow backend (fastseq.keras.tfdata): ``range().map(numpy_function)``
in place of Keras' ``from_generator``, autotuning off.

- It serves exactly what Keras' own pipeline serves: the same batches in
  the same order over several passes (Keras' per-pass batch-order shuffle
  from ``random``), the same ``class_weight`` sample weights, the same
  element spec.
- It builds no ``GeneratorDataset`` (whose kernel fixes glibc's mmap
  threshold for the whole process) and runs without autotuning; Keras'
  pipeline is kept for ``tf_pipeline = "keras"``, for ``workers > 1`` and
  for any other ``PyDataset``.
- End to end, in fresh processes: a cached epoch of ``model.fit`` takes a
  few hundred page faults with fastseq's pipeline where Keras' takes tens of
  thousands (every op temporary a fresh mmap); errors in ``__getitem__``
  still stop ``fit`` with the file's name.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import fastseq  # noqa: E402
from fastseq.keras import base, tfdata  # noqa: E402,F401  (base installs the hook)
from _keras_helpers import build_class_tree, needs_tensorflow  # noqa: E402

pytestmark = needs_tensorflow


def _adapter_class():
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter
    return PyDatasetAdapter


def _ops(dataset) -> set[str]:
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(dataset._as_serialized_graph().numpy())
    ops = {node.op for node in graph.node}
    for fn in graph.library.function:
        ops.update(node.op for node in fn.node_def)
    return ops


def _flow(tf_pipeline: str, n: int = 23, batch_size: int = 4, workers: int = 1):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (n, 6, 5, 3)).astype(np.float32)
    y = np.arange(n) % 3
    it = fastseq.ImageDataGenerator(rescale=1 / 255).flow(
        x, keras.utils.to_categorical(y, 3), batch_size=batch_size, shuffle=True, seed=11,
        workers=workers)
    it.tf_pipeline = tf_pipeline
    return it


def _passes(tf_pipeline: str, shuffle: bool, class_weight, passes: int = 3):
    adapter = _adapter_class()(_flow(tf_pipeline), class_weight=class_weight, shuffle=shuffle)
    random.seed(1234)
    ds = adapter.get_tf_dataset()
    out = []
    for _ in range(passes):
        adapter.on_epoch_begin()
        out.append([tuple(np.asarray(t) for t in element) for element in ds])
        adapter.on_epoch_end()
    return ds, out


def test_the_hook_is_in_place_with_this_keras():
    assert tfdata.fit_hook_installed()
    assert tfdata.install_fit_hook()        # idempotent
    assert getattr(_adapter_class().get_tf_dataset, "_fastseq_fit_hook")


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("class_weight", [None, {0: 1.0, 1: 2.5, 2: 0.5}])
def test_same_batches_as_keras_pipeline(shuffle, class_weight):
    ds_k, keras_passes = _passes("keras", shuffle, class_weight)
    ds_f, ours = _passes("fastseq", shuffle, class_weight)
    assert ds_f.element_spec == ds_k.element_spec
    assert len(ours) == len(keras_passes) == 3
    for pk, pf in zip(keras_passes, ours):
        assert len(pf) == len(pk) == 6      # 23 samples in batches of 4
        for ek, ef in zip(pk, pf):
            assert len(ef) == len(ek) == (2 if class_weight is None else 3)
            for a, b in zip(ek, ef):
                assert a.dtype == b.dtype and a.shape == b.shape
                np.testing.assert_array_equal(a, b)
    if shuffle:
        # the batch order is reshuffled per pass (first-sample identities differ)
        firsts = [tuple(float(e[0][0, 0, 0, 0]) for e in p) for p in ours]
        assert len(set(firsts)) == 3


def test_no_generator_dataset_and_no_autotune():
    ds_f, _ = _passes("fastseq", True, None, passes=1)
    ds_k, _ = _passes("keras", True, None, passes=1)
    assert "GeneratorDataset" not in _ops(ds_f)
    assert "GeneratorDataset" in _ops(ds_k)
    assert ds_f.options().autotune.enabled is False
    assert ds_k.options().autotune.enabled is not False


def test_workers_and_plain_pydatasets_keep_keras_pipeline():
    adapter = _adapter_class()(_flow("fastseq", workers=2), shuffle=False)
    assert "GeneratorDataset" in _ops(adapter.get_tf_dataset())

    class Plain(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return np.zeros((2, 3), np.float32), np.zeros((2,), np.float32)

    assert "GeneratorDataset" in _ops(_adapter_class()(Plain(), shuffle=False).get_tf_dataset())


@pytest.mark.parametrize("value", ["fastest", None, 1, ["fastseq"]])
def test_a_bad_tf_pipeline_value_is_named(value):
    it = _flow(value)
    message = (r"tf_pipeline must be one of \('fastseq', 'keras'\), got "
               + re.escape(repr(value)))
    with pytest.raises(ValueError, match=message):
        _adapter_class()(it, shuffle=False).get_tf_dataset()
    with pytest.raises(ValueError, match=message):
        it.to_tf_dataset()


def test_to_tf_dataset_builds_no_generator_and_runs_without_autotune():
    it = _flow("fastseq")
    ds = it.to_tf_dataset()
    assert ds.options().autotune.enabled is False
    assert "GeneratorDataset" not in _ops(ds)
    # its batches: this iterator's, in batch order
    ref = _flow("fastseq")
    for i, (x, y) in enumerate(ds):
        np.testing.assert_array_equal(np.asarray(x), ref[i][0])
        np.testing.assert_array_equal(np.asarray(y), ref[i][1])
    assert i == len(ref) - 1
    it.tf_pipeline = "keras"
    assert it.to_tf_dataset().options().autotune.enabled is not False


CHILD = textwrap.dedent(r'''
    import json, os, sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import keras
    import fastseq

    root, pipeline, what = sys.argv[1], sys.argv[2], sys.argv[3]
    it = fastseq.ImageDataGenerator(rescale=1 / 255).flow_from_directory(
        root, target_size=(64, 64), batch_size=16, shuffle=True, seed=3, cache="memory")
    it.tf_pipeline = pipeline
    model = keras.Sequential([keras.Input((64, 64, 3)),
                              keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
                              keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(it.num_classes, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")

    def faults():
        with open("/proc/self/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[7])

    per_epoch = []

    class Faults(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.f0 = faults()

        def on_epoch_end(self, epoch, logs=None):
            per_epoch.append(faults() - self.f0)

    if what == "faults":
        model.fit(it, epochs=6, verbose=0, callbacks=[Faults()])
        print("RESULT " + json.dumps(per_epoch))
    else:
        try:
            model.fit(it, epochs=1, verbose=0)
        except Exception as e:
            print("RESULT " + json.dumps([type(e).__name__, str(e)]))
        else:
            print("RESULT " + json.dumps(None))
''')


def _child(root, pipeline: str, what: str):
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(root), pipeline, what],
                          capture_output=True, text=True, timeout=300, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise AssertionError(f"child failed (exit {proc.returncode}): {proc.stderr[-2000:]}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts page faults in "
                    "/proc/self/stat (Linux)")
def test_fit_epochs_do_not_page_fault_every_op_temporary(tmp_path):
    root = build_class_tree(tmp_path / "data", {"a": 24, "b": 24}, size=(80, 70))
    keras_faults = _child(root, "keras", "faults")
    if min(keras_faults[3:]) < 5000:
        pytest.skip("this TensorFlow's from_generator leaves glibc's mmap threshold alone "
                    f"(Keras' pipeline: {keras_faults} page faults per epoch): nothing to avoid")
    ours = _child(root, "fastseq", "faults")
    # Epoch 1 traces the model and fills the cache, and glibc's dynamic
    # threshold settles over the next; from epoch 4 on, cached epochs take a
    # few hundred faults against Keras' tens of thousands (48 samples, 3
    # steps per epoch).
    assert max(ours[3:]) * 10 < min(keras_faults[3:]), (ours, keras_faults)


def test_a_decode_error_stops_fit_with_the_file_name(tmp_path):
    root = build_class_tree(tmp_path / "data", {"a": 5, "b": 5}, size=(40, 30))
    bad = sorted((root / "b").iterdir())[2]
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    kind, message = _child(root, "fastseq", "error")
    assert bad.name in message, message
