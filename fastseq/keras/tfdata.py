"""How fastseq's datasets reach TensorFlow: the tf.data pipeline that
``model.fit`` builds around them on the TensorFlow backend, and the options
of :meth:`BatchDataset.to_tf_dataset`.

For a dataset with ``tf_pipeline = "fastseq"`` (fastseq's, by default) and
Keras' default ``workers=1``, Keras' ``PyDatasetAdapter.get_tf_dataset`` is
replaced by :func:`indexed_dataset`: ``Dataset.range(len).map(numpy_function(
batch i))`` instead of Keras' ``from_generator(...)``, serving the same batches
in the same order (Keras' per-pass batch-order shuffle with ``random``, its
``class_weight`` sample weights, its element spec from the first two batches),
with tf.data's autotuning off.  Two TensorFlow 2.21 behaviours make Keras' own
pipeline slow on a cached dataset, measured on 2 cores (a cached epoch of
fit on the benchmark model: 0.65 s with Keras' pipeline, 0.45 s with this one):

- Constructing a ``GeneratorDataset`` kernel (any ``from_generator``) calls
  ``mallopt(M_MMAP_THRESHOLD, 128 KiB)`` for the whole process (TensorFlow's
  ``ApplyPython311MemoryPatch``, against memory growth with Python 3.11; found
  with a breakpoint on mallopt).  That also switches off glibc's dynamic
  threshold, so from then on every op temporary over 128 KiB is a fresh
  ``mmap`` that is unmapped when freed: 139,000 page faults per epoch here
  (570 MB zeroed by the kernel), against 6 in a process that never built a
  ``from_generator`` dataset.  ``range().map(numpy_function)`` builds none.
- Keras makes a new iterator every epoch; dropping the last one joins its
  autotuning thread (``RootDataset::Iterator``'s destructor waits for
  ``Model::OptimizeLoop``), which is often found in the timed wait between two
  optimisation rounds, sat out by the join: the start of one cached epoch in
  two (0-5 in 8, varying run to run) waited 0.6 s with both CPUs idle (stacks
  taken with gdb in the stall).  fastseq decodes one batch ahead on its own
  thread, so the autotuner has nothing to tune; without it tf.data's prefetch
  still runs the producer ahead of the training step (checked), only the
  tuning thread goes.  Keras itself turns autotuning off the same way when it
  runs a ``PyDataset`` through its multi-worker enqueuer.

``tf_pipeline = "keras"`` on a dataset keeps Keras' pipeline as it is; so do
``workers > 1`` or ``use_multiprocessing=True`` (Keras' enqueuer is a
generator).  Every other ``PyDataset`` is left alone.  With a Keras whose
adapter lacks what :func:`indexed_dataset` uses (another version's layout)
nothing is changed, and :func:`fit_hook_installed` says so.
"""

from __future__ import annotations

import functools
import random
from typing import Any

import numpy as np

__all__ = ["TF_PIPELINES", "pipeline_of", "without_autotune", "map_positions",
           "indexed_dataset", "install_fit_hook", "fit_hook_installed"]

TF_PIPELINES = ("fastseq", "keras")

_MARK = "_fastseq_fit_hook"


def pipeline_of(dataset: Any) -> str:
    """`dataset`'s ``tf_pipeline`` (``"keras"`` for an object without one,
    any ``PyDataset`` not fastseq's); ValueError naming a value that is not
    one of TF_PIPELINES."""
    pipeline = getattr(dataset, "tf_pipeline", "keras")
    if pipeline not in TF_PIPELINES:
        raise ValueError(f"tf_pipeline must be one of {TF_PIPELINES}, got {pipeline!r}")
    return pipeline


def without_autotune(dataset: Any) -> Any:
    """`dataset` (a ``tf.data.Dataset``) with tf.data's autotuning off."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def map_positions(n: int, signature: Any, batch_at: Any) -> Any:
    """``Dataset.range(n).map(...)`` whose element ``p`` is ``batch_at(p)``
    (a structure of arrays like `signature`, a structure of
    ``tf.TensorSpec``), through one ``numpy_function`` per element: a map
    without ``num_parallel_calls`` calls ``batch_at`` for 0, 1, ... in
    order, one call at a time.  Arrays are converted to the spec's dtypes as
    ``from_generator`` converts them (no copy when they match), and their
    shapes are checked against it."""
    import tensorflow as tf

    specs = tf.nest.flatten(signature)
    dtypes = [spec.dtype for spec in specs]

    def fetch(position: Any) -> list:
        p = int(position)
        leaves = tf.nest.flatten(batch_at(p))
        if len(leaves) != len(specs):
            raise ValueError(f"batch {p} has {len(leaves)} arrays where the element spec "
                             f"has {len(specs)}")
        return [np.asarray(v, dtype=d.as_numpy_dtype) for v, d in zip(leaves, dtypes)]

    def element(position: Any) -> Any:
        flat = tf.numpy_function(fetch, [position], dtypes, stateful=True)
        flat = [tf.ensure_shape(t, spec.shape) for t, spec in zip(flat, specs)]
        return tf.nest.pack_sequence_as(signature, flat)

    return tf.data.Dataset.range(n).map(element)


def indexed_dataset(adapter: Any) -> Any:
    """What Keras' ``PyDatasetAdapter.get_tf_dataset`` returns for a finite
    ``PyDataset`` without an enqueuer, built without ``from_generator``
    (:func:`map_positions`).  Batch order, sample weights and the element
    spec are Keras': a new ``random.shuffle`` of the batch order at the start
    of every pass when the adapter shuffles (``fit(shuffle=True)``),
    ``adapter._standardize_batch`` on every batch, and the spec of the first
    ``NUM_BATCHES_FOR_TENSOR_SPEC`` batches."""
    import tensorflow as tf
    from keras.src.trainers.data_adapters import data_adapter_utils

    py_dataset = adapter.py_dataset
    n = int(py_dataset.num_batches)
    if adapter._output_signature is None:
        k = min(data_adapter_utils.NUM_BATCHES_FOR_TENSOR_SPEC, n)
        batches = [adapter._standardize_batch(py_dataset[i]) for i in range(k)]
        if not batches:
            raise ValueError("The PyDataset has length 0")
        adapter._output_signature = data_adapter_utils.get_tensor_spec(batches)
    order = list(range(n))

    def batch_at(p: int) -> Any:
        if p == 0 and adapter.shuffle:
            order[:] = range(n)
            random.shuffle(order)
        return adapter._standardize_batch(py_dataset[order[p]])

    dataset = map_positions(n, adapter._output_signature, batch_at)
    return without_autotune(dataset.prefetch(tf.data.AUTOTUNE))


#: What indexed_dataset uses of Keras' adapter (Keras 3.15's layout).
_ADAPTER_PARTS = ("get_tf_dataset", "_standardize_batch")
_ADAPTER_STATE = ("py_dataset", "enqueuer", "shuffle", "_output_signature")


def _adapter_class() -> Any:
    try:
        from keras.src.trainers.data_adapters import data_adapter_utils
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter
    except ImportError:
        return None
    if not all(callable(getattr(PyDatasetAdapter, a, None)) for a in _ADAPTER_PARTS) or \
            not hasattr(data_adapter_utils, "get_tensor_spec") or \
            not hasattr(data_adapter_utils, "NUM_BATCHES_FOR_TENSOR_SPEC"):
        return None
    return PyDatasetAdapter


def install_fit_hook() -> bool:
    """Make Keras' ``PyDatasetAdapter.get_tf_dataset`` serve datasets with
    ``tf_pipeline = "fastseq"`` through :func:`indexed_dataset` (see the
    module's docstring).  Idempotent; imports no TensorFlow.  Returns whether
    the hook is in place."""
    cls = _adapter_class()
    if cls is None:
        return False
    original = cls.get_tf_dataset
    if getattr(original, _MARK, False):
        return True

    @functools.wraps(original)
    def get_tf_dataset(self: Any) -> Any:
        if pipeline_of(getattr(self, "py_dataset", None)) == "fastseq" and all(hasattr(self, a) for a in _ADAPTER_STATE) \
                and self.enqueuer is None and self.py_dataset.num_batches is not None:
            return indexed_dataset(self)
        return original(self)

    setattr(get_tf_dataset, _MARK, True)
    cls.get_tf_dataset = get_tf_dataset
    return True


def fit_hook_installed() -> bool:
    """Whether ``model.fit`` on the TensorFlow backend serves fastseq's
    datasets through :func:`indexed_dataset`."""
    cls = _adapter_class()
    return cls is not None and getattr(cls.get_tf_dataset, _MARK, False)
