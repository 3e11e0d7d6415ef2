"""What fastseq's Keras datasets share: the epoch order and batch slicing,
built-in prefetch, decoding from image files, and Keras' legacy iterator
contract.

- :class:`BatchDataset`: a ``keras.utils.PyDataset`` with a per-epoch sample
  order (``indexes``), ``__len__``, batch slicing, reshuffling at
  ``on_epoch_end`` and prefetch of the next batch's images.
- :class:`ImageFiles`: the mixin that decodes the images of a batch from
  ``self._paths`` in one call into the C core (:meth:`~ImageFiles.load_images`).
- :class:`Iterator`: Keras' legacy ``Iterator`` attributes and behaviour
  (``n``, ``batch_index``, ``total_batches_seen``, ``index_array``,
  ``lock``, ``reset``, infinite ``next()``) over a :class:`BatchDataset`;
  the base of :class:`fastseq.DirectoryIterator` and of the coming array and
  dataframe iterators.

Sharding
--------
``shard=(index, count)`` (None: by process under a multi-process Keras
distribution on JAX, else ``(0, 1)``) makes a dataset serve only its slice
of each epoch's order, before anything is decoded.  Sharded, the epoch's
permutation of all samples is a function of ``(seed, epoch)``, the same on
every process; it is cut into global batches of ``count * batch_size`` and
shard ``index`` takes the ``index``-th slice of each (``_local_order``).
``len()`` is the same on every shard: short shards are padded by repeating
the permutation from its start (``drop_remainder=False``: at most
``count - 1`` samples twice per epoch), or only whole global batches are
kept (``drop_remainder=True``).  ``indexes`` is this shard's order, and all
the batch bookkeeping below (prefetch, swaps) works within it.

Buffer safety
-------------
Every batch is a freshly allocated array (the core fills it in place with
the GIL released).  Keras queues up to ``max_queue_size`` batches, tf.data
prefetches more, and TensorFlow may keep tensors that share numpy memory; a
fresh array per batch means nothing handed out is ever written again, whatever
those queues hold.  An allocation is a few milliseconds for a
32x224x224x3 float32 batch against tens of milliseconds of decoding.

The arrays are 64-byte aligned on purpose: TensorFlow then wraps the numpy
memory of a batch returned through ``tf.data.Dataset.from_generator`` (the
PyDataset adapter's path) instead of copying it, which saves a full copy of
every batch (about 15 ms per 19 MB batch on 2 cores).  numpy's own large
allocations are 16 bytes past a page boundary, so they are always copied.
That sharing is safe only because no batch is ever reused.

Prefetch
--------
While Keras consumes one batch, the images of another batch of the same
epoch are decoded on one background thread (the decode itself runs on the
native pool with the GIL released).  Only the decode (``load_images``) runs
ahead; labels and the per-batch hooks run when the batch is requested, so
their side effects happen for served batches only.  A batch is served from
the prefetch only when its sample indexes match what was decoded, and never
across an epoch boundary (see :mod:`fastseq.keras.prefetch`).  It is on
when Keras calls the dataset from one worker (``workers=1``, the default,
also inside a ``use_multiprocessing`` worker process); with ``workers > 1``
Keras' own workers fetch ahead, so it stays off.

Which batch is decoded ahead:

- ``shuffle=False``: batch ``i + 1`` after batch ``i``, for a caller that
  walks the batches in order (starts at 0 or has just asked for ``i - 1``),
  as ``evaluate``, ``predict`` and ``fit(shuffle=False)`` do.  Any other
  request pattern gets no guess.
- ``shuffle=True``: the batches' composition is random anyway, so the batch
  decoded ahead is served for whichever batch number Keras asks for next
  (``fit(shuffle=True)``, Keras' default, asks in a random order).  When
  request ``i`` arrives and the decode ahead holds batch ``k``'s samples,
  the sample slices of ``i`` and ``k`` are swapped in a new copy of
  ``indexes``, provided neither was served yet this epoch and both have
  the same length (the short last batch never trades with a full one).
  Then the lowest-numbered unserved full batch is decoded ahead (the short
  last batch once no full one is left).  Served batches' slices never
  change and every swap trades two unserved slices, so each sample still
  comes exactly once per epoch in whatever order the batches are asked for,
  and a batch asked for twice in an epoch gives the same samples.  The
  served set is cleared at ``on_epoch_begin``, ``on_epoch_end`` and when a
  subclass assigns a new ``indexes``.  A caller that walks the batches in
  order asks for exactly the batch decoded ahead, so nothing is swapped and
  it gets the same batches as with ``prefetch=False``.
"""

from __future__ import annotations

import copy
import operator
import threading
import warnings
from typing import Any, Sequence

import keras
import numpy as np

from fastseq.batch import aligned_empty, encode_paths, load_files, report_failures
from fastseq.options import DecodeOptions
from fastseq.errors import ImageDecodeWarning, defer_warning, defer_warnings_here
from fastseq.keras.prefetch import MISS, Prefetcher
from fastseq.keras.tfdata import install_fit_hook, map_positions, pipeline_of

__all__ = ["aligned_copy", "BatchIndexError", "BatchDataset", "ImageFiles", "Iterator",
           "check_shard", "auto_shard"]


def aligned_copy(x: np.ndarray, dtype: Any = None) -> np.ndarray:
    """A 64-byte-aligned C-contiguous copy of `x` (converted to `dtype`
    with numpy's unsafe casting, as an assignment into an array does)."""
    out = aligned_empty(x.shape, x.dtype if dtype is None else dtype)
    np.copyto(out, x, casting="unsafe")
    return out


class BatchIndexError(IndexError, ValueError):
    """A batch index past the end.  An ``IndexError`` (Python's sequence
    protocol) that is also the ``ValueError`` Keras' legacy iterators raise."""


def check_shard(shard: Any) -> tuple[int, int]:
    """`shard` as a validated ``(index, count)`` pair of ints."""
    if (not isinstance(shard, (tuple, list)) or len(shard) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in shard)):
        raise TypeError("shard must be None or a pair (index, count) of ints, "
                        f"got {shard!r}")
    index, count = int(shard[0]), int(shard[1])
    if count < 1:
        raise ValueError(f"shard=(index, count) needs count >= 1, got shard={shard!r}")
    if not 0 <= index < count:
        raise ValueError(f"shard=(index, count) needs 0 <= index < count, got shard={shard!r}")
    return index, count


def auto_shard() -> tuple[int, int]:
    """``(process index, process count)`` of the active Keras distribution
    (``keras.distribution.distribution()``), or ``(0, 1)`` when none is set.

    Only the JAX backend has a multi-process Keras distribution; jax is
    imported only when it is the backend.  On the other backends a
    distribution, if any, is taken to run in one process.
    """
    if keras.distribution.distribution() is None:
        return 0, 1
    if keras.backend.backend() == "jax":
        import jax

        return int(jax.process_index()), int(jax.process_count())
    return 0, 1


def _require_tensorflow() -> Any:
    try:
        import tensorflow as tf
    except ImportError as e:
        raise ImportError("to_tf_dataset() needs TensorFlow, which is not installed "
                          "(pip install tensorflow)", name="tensorflow") from e
    return tf


class Leaf:
    """One array of a batch, without its batch dimension (what
    ``_batch_signature`` returns, in nested tuples)."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: Any, dtype: Any) -> None:
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        if self.dtype.kind not in "biuf":
            raise ValueError(f"an array of dtype {self.dtype} cannot go into a tf.data "
                             "batch; pass to_tf_dataset(output_signature=...)")

    def __repr__(self) -> str:
        return f"Leaf({self.shape}, {self.dtype})"


#: How many batches a pass may yield and still be a peek (see to_tf_dataset):
#: Keras' build pulls one batch through a strategy's distributed iterator,
#: whose buffers fill with about 5 more on two replicas before it is dropped.
#: Also the most batches held between a peek and the next pass.
_PEEK_BATCHES = 8


def _tuples(batch: Any) -> Any:
    # tf.data reads a list as one tensor to stack, a tuple as a structure:
    # Keras' multi-input x and multi-output y are lists of arrays.
    if isinstance(batch, (list, tuple)):
        return tuple(_tuples(b) for b in batch)
    return batch


# The epoch a prefetch job draws its augmentation from (set on that thread).
_job_epoch = threading.local()


class BatchDataset(keras.utils.PyDataset):
    """Epoch order, batch slicing and prefetch, for datasets whose batch is
    ``f(load_images(indexes), indexes)``.

    Subclasses call :meth:`_setup_order` and :meth:`_setup_prefetch` in
    their constructor, implement :meth:`load_images`, and build batch ``i``
    from ``self._images(self._request(i))`` in ``__getitem__``.

    ``tf_pipeline = "fastseq"``: on the TensorFlow backend ``model.fit``
    serves it through :func:`fastseq.keras.tfdata.indexed_dataset`, the same
    batches as Keras' ``from_generator`` pipeline without its two costs (see
    :mod:`fastseq.keras.tfdata`), and :meth:`to_tf_dataset` turns tf.data's
    autotuning off; set it to ``"keras"`` on a dataset for Keras' own.
    """

    tf_pipeline = "fastseq"

    # -- order -----------------------------------------------------------------

    def _setup_order(self, n: int, batch_size: int, shuffle: bool,
                     seed: int | None, shard: Any = None,
                     drop_remainder: bool = False) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if seed is not None and (isinstance(seed, bool)
                                 or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        if not isinstance(drop_remainder, (bool, np.bool_)):
            raise TypeError(f"drop_remainder must be True or False, got {drop_remainder!r}")
        shard = auto_shard() if shard is None else check_shard(shard)
        self._n = int(n)
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.drop_remainder = bool(drop_remainder)
        # With a seed the sequence of epoch orders is fixed by the seed alone;
        # without one it comes from numpy's global generator, so
        # keras.utils.set_random_seed() makes it reproducible as in Keras.
        self._rng = np.random.default_rng(seed) if seed is not None else None
        # Counts on_epoch_end calls: random augmentation is drawn from
        # (seed, epoch, sample index), and a sharded order from (seed, epoch).
        self._epoch = 0
        self._shard_seed: int | None = None
        self.shard = (0, 1)
        self._perm = self._permutation()
        self._configure_shard(shard, batch_size)

    def _configure_shard(self, shard: tuple[int, int], batch_size: int) -> None:
        """Set the shard and batch size, and this process's order of the
        current epoch's permutation (``indexes``)."""
        index, count = shard
        b = int(batch_size)
        if count > 1 and self.shard[1] == 1:
            # Sharded, every process must draw the same permutation without
            # any communication: it is a function of (seed, epoch) alone.
            # Without a seed, the base is drawn once from numpy's global
            # generator, which keras.utils.set_random_seed() seeds alike on
            # every process.
            if self._shard_seed is None:
                self._shard_seed = (self.seed if self.seed is not None
                                    else int(np.random.randint(0, 2**31 - 1)))
            self.shard = (index, count)
            self._perm = self._permutation()
        if self.drop_remainder:
            # Whole global batches (count * b samples) only: every process's
            # every batch is full.
            local = (self._n // (count * b)) * b
            if self._n and not local:
                raise ValueError(
                    f"drop_remainder=True leaves no batch: {self._n} samples are fewer "
                    f"than one global batch of {count} shard(s) x batch_size {b}")
        else:
            # Every shard serves ceil(n / count) samples, the short ones padded
            # (see _local_order), so len() is the same on every process.
            local = -(-self._n // count)
        self.shard = (index, count)
        self.batch_size = b
        self._m = local
        self.indexes = self._local_order(self._perm)

    def _permutation(self) -> np.ndarray:
        """The current epoch's order of all ``n`` samples."""
        if not self.shuffle:
            return np.arange(self._n)
        if self.shard[1] > 1:
            return np.random.default_rng([self._shard_seed, self._epoch]).permutation(self._n)
        if self._rng is not None:
            return self._rng.permutation(self._n)
        return np.random.permutation(self._n)

    def _local_order(self, perm: np.ndarray) -> np.ndarray:
        """This shard's samples of the permutation `perm`, in batch order.

        The permutation is cut into global batches of ``count * batch_size``
        samples and shard ``index`` takes the ``index``-th ``batch_size``
        slice of each: the processes' batches ``i`` together are the global
        batch ``i``.  A short last global batch is split into ``count`` equal
        slices.  Without drop_remainder the permutation is first padded to
        ``count * ceil(n / count)`` samples by repeating it from its start
        (at most ``count - 1`` samples are served twice per epoch); with it,
        only its first ``count * len(self) * batch_size`` samples are used.
        """
        index, count = self.shard
        m, b = self._m, self.batch_size
        if count == 1 and m == len(perm):
            return perm
        total = count * m
        padded = np.resize(perm, total) if total > len(perm) else perm[:total]
        full = m // b
        head = padded[:full * count * b].reshape(full, count, b)[:, index, :].reshape(-1)
        tail = padded[full * count * b:].reshape(count, -1)[index]
        return np.concatenate([head, tail])

    def _new_order(self) -> np.ndarray:
        self._perm = self._permutation()
        return self._local_order(self._perm)

    def _order_lock(self) -> threading.RLock:
        # Orders _reshuffle against _request's swap: Keras may call
        # on_epoch_end on the main thread while tf.data's thread asks for a
        # batch (fit with steps_per_epoch keeps its generator across epochs).
        lock = self.__dict__.get("_order_mutex")
        if lock is None:
            lock = self.__dict__.setdefault("_order_mutex", threading.RLock())
        return lock

    def _reshuffle(self) -> None:
        # A new array is swapped in, never shuffled in place: a worker thread
        # that has already read `self.indexes` keeps a consistent order.
        with self._order_lock():
            self._discard_prefetched()
            self._forget_served()
            self._epoch += 1
            if self.shuffle:
                self.indexes = self._new_order()

    def __len__(self) -> int:
        # This process's batches: the same number on every shard.
        return (self._m + self.batch_size - 1) // self.batch_size

    def _batch_number(self, index: int) -> int:
        n_batches = len(self)
        try:
            i = operator.index(index)
        except TypeError:
            raise TypeError(f"batch index must be an int, got {type(index).__name__}") from None
        if i < 0:
            i += n_batches
        if not 0 <= i < n_batches:
            raise BatchIndexError(f"Asked to retrieve element {index}, but the "
                                  f"Sequence has length {n_batches}")
        return i

    def batch_indexes(self, index: int) -> np.ndarray:
        """Sample indexes of batch `index` in the current epoch's order
        (negative indexes count from the end, as for a list)."""
        i = self._batch_number(index)
        return self.indexes[i * self.batch_size:(i + 1) * self.batch_size]

    def on_epoch_begin(self) -> None:
        """Drop any batch decoded ahead before the epoch started (Keras'
        spec probe asks for batches before it), and start the epoch's
        record of served batches afresh."""
        self._discard_prefetched()
        self._forget_served()

    def on_epoch_end(self) -> None:
        """Reshuffle the sample order when ``shuffle=True``."""
        self._reshuffle()

    # -- tf.data -------------------------------------------------------------------

    def _batch_signature(self) -> Any:
        """The structure of a batch without its batch dimension, from the
        configuration alone: a :class:`Leaf`, or nested tuples of them.  Raises ValueError when a subclass hook may change it."""
        raise ValueError(f"{type(self).__name__} cannot tell its batch structure "
                         "without decoding; pass to_tf_dataset(output_signature=...)")

    def _for_input_context(self, input_context: Any) -> "BatchDataset":
        """A copy that reads shard ``input_pipeline_id`` of
        ``num_input_pipelines`` in per-replica batches of
        ``get_per_replica_batch_size(batch_size)``: ``batch_size`` is the
        global batch across all replicas."""
        pipelines = int(input_context.num_input_pipelines)
        if pipelines > 1 and self.shard[1] > 1:
            raise ValueError(
                f"this {type(self).__name__} is already sharded (shard={self.shard}) and the "
                f"InputContext shards it again into {pipelines} input pipelines; build it "
                "with shard=(0, 1) to let the strategy shard it")
        per_replica = input_context.get_per_replica_batch_size(self.batch_size)
        clone = copy.copy(self)          # __getstate__: no prefetch state, own locks
        if clone._rng is not None:
            clone._rng = copy.deepcopy(clone._rng)
        shard = (int(input_context.input_pipeline_id), pipelines) if pipelines > 1 \
            else self.shard
        clone._configure_shard(shard, per_replica)
        clone._forget_served()
        return clone

    def to_tf_dataset(self, input_context: Any = None, *,
                      output_signature: Any = None) -> Any:
        """This dataset's batches as a ``tf.data.Dataset`` of ``x``,
        ``(x, y)`` or ``(x, y, sample_weight)`` (lists become tuples).

        - The element spec is computed from the configuration, with no
          batch decoded for it: shapes are fully known, the batch dimension
          too when ``drop_remainder=True`` (else None).  A subclass whose
          hooks change the batch passes ``output_signature`` (as for
          ``tf.data.Dataset.from_generator``).
        - One pass over the batches per iteration of the dataset, in batch
          order (so fastseq's prefetch decodes the next one ahead), then
          ``prefetch(1)``; each new iteration after a pass that went past its
          first few batches starts the next epoch (``on_epoch_end``: a new
          shuffle).  An iteration abandoned within its first 8 batches (a
          peek: Keras pulls one batch from a throwaway iterator to build a
          model under a tf.distribute strategy, and the strategy's buffers
          pull a few more) does not end the epoch: the next iteration serves
          the same batches again, undecoded (at most 8 batches are held for
          that).
        - tf.data's auto-sharding is off on it: the sharding is fastseq's;
          so is its autotuning (unless ``tf_pipeline`` is ``"keras"``).  It
          is built as ``Dataset.range(len).map`` over one ``numpy_function``
          per batch (:func:`fastseq.keras.tfdata.map_positions`), not with
          ``from_generator``: see :mod:`fastseq.keras.tfdata` for why.
        - Without `input_context` the batches are this object's (its
          ``shard`` and ``batch_size``).  With a ``tf.distribute.InputContext``
          (``strategy.distribute_datasets_from_function``) it reads shard
          ``input_pipeline_id`` of ``num_input_pipelines`` with
          ``input_context.get_per_replica_batch_size(batch_size)`` samples
          per batch: ``batch_size`` is then the global batch across all
          replicas.  The iteration runs on a copy; this object is left as it
          is.

        TensorFlow is imported here; ImportError when it is not installed.
        """
        tf = _require_tensorflow()
        ds = self if input_context is None else self._for_input_context(input_context)
        if output_signature is None:
            batch = ds.batch_size if ds.drop_remainder else None

            def spec(leaf: Any) -> Any:
                if isinstance(leaf, Leaf):
                    return tf.TensorSpec((batch,) + leaf.shape, tf.as_dtype(leaf.dtype))
                return tuple(spec(v) for v in leaf)

            output_signature = spec(ds._batch_signature())
        # A pass that is abandoned after a few batches is a peek, not an
        # epoch: Keras' TF trainer pulls one batch from a throwaway iterator
        # to build the model under a strategy (_maybe_symbolic_build), and
        # tf.data's prefetch pulls one more.  The next pass resumes the same
        # epoch and serves those batches again (batches are never written
        # after they are handed out), so a peek costs no extra decode.
        state = {"done": True, "fresh": True, "peeked": []}
        n = len(ds)

        def batch_at(i: int) -> Any:
            # Called for 0, 1, ... of each pass, in order (map_positions).
            if i == 0:
                if state["done"] and not state["fresh"]:
                    ds.on_epoch_end()
                if state["done"]:
                    ds.on_epoch_begin()
                    state["peeked"] = []
                state["fresh"] = state["done"] = False
            peeked = state["peeked"]
            if i < len(peeked):
                batch = peeked[i]
            else:
                batch = _tuples(ds[i])
                if len(peeked) < _PEEK_BATCHES and i == len(peeked):
                    peeked.append(batch)
            if i >= _PEEK_BATCHES and peeked:
                # Past a peek: an abandoned pass now counts as an epoch.
                state["peeked"] = []
                state["done"] = True
            if i == n - 1:
                state["done"] = True
                state["peeked"] = []
            return batch

        # Dataset.range().map(), not from_generator: see fastseq.keras.tfdata.
        dataset = map_positions(n, output_signature, batch_at)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.OFF
        if pipeline_of(self) == "fastseq":
            options.autotune.enabled = False
        return dataset.prefetch(1).with_options(options)

    # -- prefetch ---------------------------------------------------------------

    def _setup_prefetch(self, prefetch: bool) -> None:
        if not isinstance(prefetch, (bool, np.bool_)):
            raise TypeError(f"prefetch must be True or False, got {prefetch!r}")
        self.prefetch = bool(prefetch)
        self._prefetcher: Prefetcher | None = None
        # (order, batch number) that the batch being served predicts next.
        self._predicted: tuple[np.ndarray, int] | None = None
        # (order, batch number) whose samples the pending decode holds.
        self._ahead: tuple[np.ndarray, int] | None = None
        self._last_request: int | None = None
        self._forget_served()

    def _forget_served(self) -> None:
        # Batch numbers served since the epoch began, for the order
        # `_served_order`; a different `indexes` object than that one is an
        # order a subclass assigned itself, which starts a new record.
        self._served: set[int] = set()
        self._served_order: np.ndarray | None = None
        # Every full batch below this one has been served: the lowest
        # unserved batch is found in amortised O(1) per request.
        self._unserved_from = 0

    def _discard_prefetched(self) -> None:
        # At every epoch boundary: a batch decoded before it is never served
        # after it, even for the same indexes (a subclass may change how
        # images load between epochs).
        self._ahead = None
        if self._prefetcher is not None:
            self._prefetcher.discard()

    def _batch_length(self, i: int) -> int:
        return min(self.batch_size, self._m - i * self.batch_size)

    def _lowest_unserved(self) -> int | None:
        """The lowest-numbered full batch not served this epoch, else the
        short last batch if it is not served, else None."""
        full = self._m // self.batch_size
        j = self._unserved_from
        while j < full and j in self._served:
            j += 1
        self._unserved_from = j
        if j < full:
            return j
        if full < len(self) and full not in self._served:
            return full
        return None

    def _request(self, index: int) -> np.ndarray:
        """Sample indexes of batch `index`, for ``__getitem__``: with
        ``shuffle=True`` they may be the samples decoded ahead (see the
        module's docstring); also predicts what to decode ahead next."""
        with self._order_lock():
            return self._request_locked(self._batch_number(index))

    def _request_locked(self, i: int) -> np.ndarray:
        order = self.indexes
        if order is not self._served_order:
            self._forget_served()
            self._served_order = order
        b = self.batch_size
        ahead = self._ahead
        if self.shuffle and ahead is not None and ahead[0] is order:
            k = ahead[1]
            if (k != i and i not in self._served and k not in self._served
                    and self._batch_length(i) == self._batch_length(k)):
                # A new array, never an in-place swap: another thread may be
                # slicing the old one (see _reshuffle).
                swapped = order.copy()
                swapped[i * b:(i + 1) * b] = order[k * b:(k + 1) * b]
                swapped[k * b:(k + 1) * b] = order[i * b:(i + 1) * b]
                self.indexes = self._served_order = order = swapped
                self._ahead = (swapped, i)
        self._served.add(i)
        # A walking caller (it starts at 0 or has just asked for i - 1:
        # evaluate, predict, fit(shuffle=False)) asks for i + 1 next.  With
        # shuffle=True any unserved batch can take the decoded samples, so
        # the lowest unserved one is decoded ahead; for a walking caller in
        # a fresh epoch that is i + 1 too.  With shuffle=False a guess for a
        # random order would be a wasted decode competing with the one
        # needed, so there is none.
        walking = i == 0 or self._last_request == i - 1
        self._last_request = i
        following = self._lowest_unserved() if self.shuffle else None
        if following is None and walking:
            following = i + 1
        self._predicted = (order, following) if following is not None else None
        return order[i * b:(i + 1) * b]

    def _active_prefetcher(self) -> Prefetcher | None:
        if not self.prefetch or (self.workers or 1) > 1:
            return None
        if self._prefetcher is None:
            self._prefetcher = Prefetcher()
        return self._prefetcher

    @staticmethod
    def _key(indexes: np.ndarray, epoch: int) -> tuple:
        # The samples themselves, not the batch number (a subclass may swap
        # in a new order without calling on_epoch_end), and the epoch whose
        # augmentation draws the batch holds.
        return (epoch, indexes.dtype.str, indexes.tobytes())

    def _draw_epoch(self) -> int:
        """The epoch whose random augmentation ``load_images`` draws: the
        one a batch decoded ahead was submitted in, else the current one."""
        epoch = getattr(_job_epoch, "value", None)
        return self._epoch if epoch is None else epoch

    def _load_ahead(self, indexes: np.ndarray, epoch: int) -> np.ndarray:
        # Runs on the prefetch thread: draws as of the submitting epoch even
        # if on_epoch_end has run since (its result is then never claimed).
        _job_epoch.value = epoch
        try:
            return self.load_images(indexes)
        finally:
            _job_epoch.value = None

    def _images(self, indexes: np.ndarray) -> np.ndarray:
        """``load_images(indexes)``, taken from the prefetch when it decoded
        exactly these samples in this epoch; then starts decoding the
        predicted next batch."""
        predicted, self._predicted = self._predicted, None
        prefetcher = self._active_prefetcher()
        if prefetcher is None:
            return self.load_images(indexes)
        indexes = np.asarray(indexes)
        job = prefetcher.claim(self._key(indexes, self._epoch))
        self._ahead = None
        if predicted is not None:
            order, j = predicted
            if order is self.indexes and j < len(self):
                following = order[j * self.batch_size:(j + 1) * self.batch_size]
                epoch = self._epoch
                prefetcher.submit(self._key(following, epoch), self._load_ahead,
                                  following, epoch)
                self._ahead = (order, j)
        if job is MISS:
            return self.load_images(indexes)
        x, deferred = job.result()          # re-raises the job's error
        for message, category in deferred:
            warnings.warn(message, category, stacklevel=3)
        return x

    def load_images(self, indexes: Sequence[int] | np.ndarray) -> np.ndarray:
        """The images of the samples at `indexes`, as a new array."""
        raise NotImplementedError

    def __getstate__(self) -> dict:
        # Spawned workers get a pickled copy: the prefetch thread stays here.
        state = self.__dict__.copy()
        state["_prefetcher"] = None
        state["_predicted"] = None
        state["_ahead"] = None
        state.pop("_order_mutex", None)
        # A store is rebuilt from its ImageCache in the worker (a memory
        # cache starts empty there; a directory is shared).
        state.pop("_cache_store", None)
        return state


# Once per process, at the first import of fastseq's Keras classes.
install_fit_hook()


def _warn_memory_cache_in_workers() -> None:
    """Keras' enqueuer (keras.src.trainers.data_adapters.py_dataset_adapter,
    3.15) stops at every epoch's end and starts a new process pool at the
    next epoch's start, so the worker that filled a memory cache is gone
    before any epoch could read it (measured: every cached epoch as slow as
    epoch 1, slower than no cache)."""
    from fastseq.cache import CacheWarning
    from fastseq.errors import outside_stacklevel

    warnings.warn(
        "cache='memory' with use_multiprocessing=True is never read: Keras starts new "
        "worker processes for every epoch, each with an empty memory cache. Pass a cache "
        "directory instead (cache='/path/to/dir'), which every worker process shares, or "
        "keep use_multiprocessing=False (fastseq decodes on its own threads).",
        CacheWarning, stacklevel=outside_stacklevel())


class ImageFiles:
    """Decoding the images of ``self._paths``: mixed into a
    :class:`BatchDataset`, whose subclass sets ``self._paths`` and calls
    :meth:`_setup_decoding` in its constructor."""

    _paths: list[str]

    def _setup_decoding(self, target_size: tuple[int, int], color_mode: str,
                        interpolation: str, dtype: str, rescale: float | None,
                        dct_scaling: bool, keep_aspect_ratio: bool,
                        on_error: str, augmenter: Any = None,
                        wide_gray: bool = False, cache: Any = None) -> None:
        # Validated once (the core's own messages, here rather than in a
        # worker) and reused by every batch, as are the encoded paths.
        self._options = DecodeOptions(
            tuple(target_size), color_mode=color_mode, interpolation=interpolation,
            dtype=dtype, rescale=rescale, dct_scaling=bool(dct_scaling),
            keep_aspect_ratio=bool(keep_aspect_ratio), on_error=on_error,
            wide_gray=wide_gray)
        self._encoded = encode_paths(self._paths)
        # A fastseq.augment.BatchAugmenter, or None: its draws depend only
        # on (seed, epoch, indexes), so a batch decoded ahead is the batch.
        self._augmenter = augmenter
        self._setup_cache(cache)

    def _setup_cache(self, cache: Any) -> None:
        # The resized pixels the augmentation and rescale start from are
        # what is cached, so they still run every epoch.  The free-space
        # check covers every image, before the first epoch writes any.
        from fastseq.cache import as_cache

        self.cache = as_cache(cache)
        self._cache_store = None
        if self.cache is not None:
            if (self.cache.in_memory and getattr(self, "use_multiprocessing", False)
                    and getattr(self, "workers", 1) > 0):
                _warn_memory_cache_in_workers()
            self._cache_store = self.cache.store(self._options)
            self._cache_store.reserve(self._encoded)

    def _store(self) -> Any:
        # After unpickling in a spawned worker the store is rebuilt from the
        # ImageCache (empty in memory; the same directory on disk).
        store = self.__dict__.get("_cache_store")
        if store is None and getattr(self, "cache", None) is not None:
            store = self._cache_store = self.cache.store(self._options)
        return store

    def _batch_options(self) -> DecodeOptions:
        """The options of the next batch (a subclass may fuse more into
        the write per batch)."""
        return self._options

    def load_images(self, indexes: Sequence[int] | np.ndarray) -> np.ndarray:
        """Decode and resize the images at `indexes` into a new
        ``(len(indexes), height, width, channels)`` array: one call into the
        C core, GIL released, random augmentation (when set) and rescale
        fused into the write.  Raises
        :class:`fastseq.ImageDecodeError` naming the file and the reason."""
        encoded = self._encoded
        # A fresh, 64-byte aligned batch (out=None).
        aug = self._augmenter
        warps = aug.warps(self._draw_epoch(), indexes) if aug is not None else None
        x, failures = load_files([encoded[i] for i in indexes], self._batch_options(),
                                 warps=warps, cache=self._store())
        on_error = self._options.on_error
        if failures and on_error == "warn" and defer_warnings_here():
            # Decoded ahead: the warnings come when the batch is served.
            for f in failures:
                # the text of load_batch's own on_error="warn" warning
                defer_warning(f"fastseq: cannot decode image {f.source!r} (batch index "
                              f"{f.index}): {f.reason}; its slot is zero-filled",
                              ImageDecodeWarning)
        else:
            report_failures(failures, on_error, stacklevel=3)
        return x


class Iterator(BatchDataset):
    """Keras' legacy ``keras.preprocessing.image.Iterator`` contract on a
    :class:`BatchDataset`: ``n``, ``batch_size``, ``shuffle``, ``seed``,
    ``batch_index``, ``total_batches_seen``, ``index_array``, ``lock``,
    ``reset()``, the infinite ``next()``, and the overridable
    ``_get_batches_of_transformed_samples(index_array)``.

    Subclasses call :meth:`_setup_iterator` in their constructor and
    implement ``_get_batches_of_transformed_samples``, taking the images of
    `index_array` from ``self._images(index_array)``.
    """

    def _setup_iterator(self, n: int, batch_size: int, shuffle: bool,
                        seed: int | None, prefetch: bool, shard: Any = None,
                        drop_remainder: bool = False) -> None:
        self.n = n
        self._setup_order(n, batch_size, shuffle, seed, shard, drop_remainder)
        self._setup_prefetch(prefetch)
        self.batch_index = 0
        self.total_batches_seen = 0
        self.lock = threading.Lock()

    def _get_batches_of_transformed_samples(self, index_array: np.ndarray) -> Any:
        """The batch of the samples at `index_array` (Keras' legacy hook)."""
        raise NotImplementedError

    def __getitem__(self, idx: int) -> Any:
        """Batch `idx` of the current epoch's order.  Past the end it raises
        an error that is both the ``ValueError`` Keras raises and an
        ``IndexError``."""
        index_array = self._request(idx)
        self.total_batches_seen += 1
        return self._get_batches_of_transformed_samples(index_array)

    def on_epoch_end(self) -> None:
        """Redraw the sample order (when ``shuffle=True``)."""
        self._set_index_array()

    def _set_index_array(self) -> None:
        self._reshuffle()

    @property
    def index_array(self) -> np.ndarray:
        """Sample order of the current epoch (Keras' name).  Assignable, as
        in Keras (a subclass's ``_set_index_array`` may set it)."""
        return self.indexes

    @index_array.setter
    def index_array(self, value: Any) -> None:
        with self._order_lock():
            self._discard_prefetched()
            self.indexes = np.asarray(value)

    def reset(self) -> None:
        """Restart ``next()`` iteration at the first batch."""
        self.batch_index = 0

    def __iter__(self) -> "Iterator":
        # Keras' legacy iterators are infinite: next() cycles through the
        # data, reshuffling at the start of every pass.
        return self

    def __next__(self) -> Any:
        with self.lock:
            if self.batch_index == 0:
                self._set_index_array()
            # This shard's samples (all of them when unsharded).
            m = self._m
            start = self.batch_index * self.batch_size % m if m else 0
            if m > start + self.batch_size:
                self.batch_index += 1
            else:
                self.batch_index = 0
            self.total_batches_seen += 1
            index_array = self.indexes[start:start + self.batch_size]
        return self._get_batches_of_transformed_samples(index_array)

    def next(self) -> Any:
        """The next batch (Python 2 era spelling, kept by Keras' users)."""
        return self.__next__()

    def __getstate__(self) -> dict:
        # A lock cannot be pickled (spawn/forkserver workers pickle the
        # dataset); each copy gets its own.
        state = super().__getstate__()
        del state["lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()
