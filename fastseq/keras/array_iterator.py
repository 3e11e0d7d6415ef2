"""``fastseq.NumpyArrayIterator``: Keras' legacy ``NumpyArrayIterator``
(what ``ImageDataGenerator.flow(x, y)`` returns) with the random
augmentation computed in C.

A batch is the images of its samples, augmented, then standardised as
Keras' ``standardize`` does, with the labels, the extra inputs and the
sample weights of the same samples.

- No augmentation: the batch is a gather, ``x[index_array]`` in the
  iterator's dtype (what Keras' loop of ``apply_transform`` with identity
  parameters gives), and no call into C.
- Augmentation: each image is warped by the batch kernel (csrc/warp.c) on
  the native pool with the GIL released, read straight from the array's own
  memory when it is uint8 or float32 and channels_last (a channels_first
  array is gathered into a channels-last batch first), and written into a
  fresh batch with the rescale fused when it can be (no
  ``preprocessing_function``).  The draws of a sample depend only on (seed,
  epoch, sample index) (:class:`fastseq.augment.BatchAugmenter`); the only
  per-image Python is building the draws' rows.

The array keeps its own dtype where that loses nothing: a uint8 ``x`` with
a floating ``dtype`` stays uint8 in memory (a quarter of Keras' float32
copy; its values are exact in any float dtype), and ``iterator.x`` is the
array in ``dtype``, as in Keras, made on first access.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from fastseq import _native
from fastseq.batch import aligned_empty
from fastseq.keras.base import Iterator, Leaf, aligned_copy

__all__ = ["NumpyArrayIterator", "augment_batch"]

_MODES = {1: _native.MODE_L, 3: _native.MODE_RGB, 4: _native.MODE_RGBA}


def augment_batch(images: np.ndarray, indexes: Any, augmenter: Any, epoch: int,
                  out_dtype: Any, scale: float = 1.0,
                  channels_first: bool = False, norm: Any = None) -> np.ndarray:
    """Warp ``images[indexes]`` by the draws of `augmenter` for `epoch` into
    a new 64-byte aligned channels-last batch of `out_dtype` (uint8 or
    float32), each value written as ``v * scale`` (float32 only), then
    standardised per channel by `norm` (None or ``(mean, std + 1e-6)``,
    float32 only; fastseq.options.DecodeOptions' ``featurewise``).  With
    `augmenter` None each image is copied through the same write (the
    identity: Keras' ``apply_transform`` without a transform).

    `images` is an (N, rows, cols, channels) C-contiguous uint8 or float32
    array (channels_first: (N, channels, rows, cols), gathered and
    transposed first), with 1, 3 or 4 channels.  One call into the C core:
    each image is a pool task, with the GIL released.
    """
    indexes = np.asarray(indexes, dtype=np.int64)
    if channels_first:
        images = np.ascontiguousarray(images[indexes].transpose(0, 2, 3, 1))
        positions = np.arange(len(indexes))
    else:
        positions = indexes
    _, rows, cols, channels = images.shape
    out_dtype = np.dtype(out_dtype)
    opts = _native.BatchOptions(cols, rows, _MODES[channels],
                                _native.DTYPE_U8 if out_dtype == np.uint8 else _native.DTYPE_F32,
                                scale=scale, norm=norm)
    out = aligned_empty((len(indexes), rows, cols, channels), out_dtype)
    rows_, wopts = augmenter.warps(epoch, indexes) if augmenter is not None else (None, None)
    # Views into the array's own memory: the workers read them in place.
    sources = [images[j] for j in positions]
    results = _native.run_batch(_native.SRC_PIXELS, sources, out, list(range(len(sources))),
                                opts, warps=rows_, warp_opts=wopts)
    for slot, status, msg, *_ in results:
        if status:
            code = _native.status_code(status)
            if code == "out_of_memory":
                raise MemoryError(f"augmenting sample {int(indexes[slot])}: {msg}")
            raise ValueError(f"cannot augment sample {int(indexes[slot])}: {msg} ({code})")
    return out


class NumpyArrayIterator(Iterator):
    """A ``keras.utils.PyDataset`` over numpy arrays with the semantics of
    Keras' legacy ``NumpyArrayIterator``:

    - `x`: a rank-4 array (Keras' warning when its channel axis has other
      than 1, 3 or 4 channels), or ``(x, misc)`` / ``(x, [misc, ...])``:
      the extra arrays are batched alongside (``[x_batch, misc_batch, ...]``);
    - batches are ``x``, ``(x, y)`` or ``(x, y, sample_weight)``;
    - ``subset``: ``"validation"`` keeps the first
      ``int(len(x) * validation_split)`` samples, ``"training"`` the rest;
      unless ``ignore_class_split``, both must hold the same classes;
    - ``shuffle=True`` redraws the order at every ``on_epoch_end`` (from
      `seed` when given, else numpy's global generator).

    Extra keyword arguments: ``workers``, ``use_multiprocessing``,
    ``max_queue_size`` (``keras.utils.PyDataset``), ``prefetch``
    (default True: the next batch is augmented on a background thread while
    Keras consumes this one; see :mod:`fastseq.keras.base`), ``shard`` and
    ``drop_remainder`` (as for :class:`fastseq.ImageSequence`).
    """

    def __init__(self, x: Any, y: Any, image_data_generator: Any, batch_size: int = 32,
                 shuffle: bool = False, sample_weight: Any = None, seed: int | None = None,
                 data_format: str | None = None, save_to_dir: str | None = None,
                 save_prefix: str = "", save_format: str = "png", subset: str | None = None,
                 ignore_class_split: bool = False, dtype: Any = None, *,
                 prefetch: bool = True, shard: Any = None, drop_remainder: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data_format is None or dtype is None:
            import keras

            if data_format is None:
                data_format = keras.config.image_data_format()
            if dtype is None:
                dtype = keras.config.floatx()
        self.dtype = dtype
        if isinstance(x, (tuple, list)):
            if not isinstance(x[1], list):
                x_misc = [np.asarray(x[1])]
            else:
                x_misc = [np.asarray(xx) for xx in x[1]]
            x = x[0]
            for xx in x_misc:
                if len(x) != len(xx):
                    raise ValueError("All of the arrays in `x` should have the same length. "
                                     f"Found a pair with: len(x[0]) = {len(x)}, "
                                     f"len(x[?]) = {len(xx)}")
        else:
            x_misc = []
        if y is not None and len(x) != len(y):
            raise ValueError("`x` (images tensor) and `y` (labels) should have the same "
                             f"length. Found: x.shape = {np.asarray(x).shape}, "
                             f"y.shape = {np.asarray(y).shape}")
        if sample_weight is not None and len(x) != len(sample_weight):
            raise ValueError("`x` (images tensor) and `sample_weight` should have the same "
                             f"length. Found: x.shape = {np.asarray(x).shape}, "
                             f"sample_weight.shape = {np.asarray(sample_weight).shape}")
        if subset is not None:
            if subset not in {"training", "validation"}:
                raise ValueError(f"Invalid subset name: {subset}"
                                 '; expected "training" or "validation".')
            split_idx = int(len(x) * image_data_generator._validation_split)
            if (y is not None and not ignore_class_split
                    and not np.array_equal(np.unique(y[:split_idx]),
                                           np.unique(y[split_idx:]))):
                raise ValueError("Training and validation subsets have different number of "
                                 "classes after the split. If your numpy arrays are sorted "
                                 "by the label, you might want to shuffle them.")
            if subset == "validation":
                x = x[:split_idx]
                x_misc = [np.asarray(xx[:split_idx]) for xx in x_misc]
                if y is not None:
                    y = y[:split_idx]
            else:
                x = x[split_idx:]
                x_misc = [np.asarray(xx[split_idx:]) for xx in x_misc]
                if y is not None:
                    y = y[split_idx:]

        np_dtype = np.dtype(dtype)
        raw = np.asarray(x)
        if raw.dtype == np.uint8 and np_dtype.kind == "f":
            src = raw                       # exact in any float dtype
            self._x = None
        else:
            src = np.asarray(raw, dtype=np_dtype)     # Keras' self.x
            self._x = src
        if src.ndim != 4:
            raise ValueError("Input data in `NumpyArrayIterator` should have rank 4. You "
                             f"passed an array with shape {src.shape}")
        channels_axis = 3 if data_format == "channels_last" else 1
        if src.shape[channels_axis] not in {1, 3, 4}:
            warnings.warn(
                f"NumpyArrayIterator is set to use the data format convention "
                f'"{data_format}" (channels on axis {channels_axis}), i.e. expected either '
                f"1, 3, or 4 channels on axis {channels_axis}. However, it was passed an "
                f"array with shape {src.shape} ({src.shape[channels_axis]} channels).")
        self._src = src
        self._np_dtype = np_dtype
        self.x_misc = x_misc
        self.y = np.asarray(y) if y is not None else None
        self.sample_weight = np.asarray(sample_weight) if sample_weight is not None else None
        self.image_data_generator = image_data_generator
        self.data_format = data_format
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        self._setup_iterator(src.shape[0], batch_size, shuffle, seed, prefetch, shard,
                             drop_remainder)
        self._setup_augmentation()

    @property
    def x(self) -> np.ndarray:
        """The images in ``dtype`` (Keras' ``np.asarray(x, dtype=dtype)``)."""
        if self._x is None:
            self._x = np.asarray(self._src, dtype=self._np_dtype)
        return self._x

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        if state["_x"] is not state["_src"]:
            state["_x"] = None          # a spawned worker needs only one copy
        return state

    # -- how a batch is computed -----------------------------------------------

    def _setup_augmentation(self) -> None:
        gen = self.image_data_generator
        cf = self.data_format == "channels_first"
        shape = self._src.shape
        rows, cols, channels = (shape[2], shape[3], shape[1]) if cf else shape[1:]
        np_dtype = self._np_dtype
        # Keras augments x.astype(dtype): uint8 arrays are rounded into by
        # scipy, float ones are computed in float (float32 here).
        array_dtype = np.uint8 if np_dtype == np.uint8 else (
            np_dtype if np_dtype.kind == "f" else np.float32)
        aug = gen.batch_augmenter((rows, cols), self.seed, array_dtype=array_dtype) \
            if gen is not None and gen.augments else None
        self._augmenter = aug
        self._fused_rescale = None
        # Unaugmented batches are a numpy gather, or, when the featurewise
        # statistics can be fused (_fused_norm), one C pass straight from
        # the array (uint8 or float32, channels-last, read in place).
        self._direct_src = None
        if (aug is None and not cf and channels in _MODES and self._src.flags.c_contiguous
                and self._src.dtype in (np.uint8, np.float32)):
            self._direct_src = self._src
        if aug is None:
            return
        if channels not in _MODES:
            raise ValueError(f"fastseq augments images with 1, 3 or 4 channels; x has shape "
                             f"{shape} ({self.data_format})")
        self._core_dtype = np.dtype(np.uint8 if np_dtype == np.uint8 else np.float32)
        # The C warp reads uint8 or float32 sources; a C-contiguous one is
        # read in place.
        if self._src.dtype not in (np.uint8, np.float32):
            self._warp_src = np.ascontiguousarray(self._src, dtype=np.float32)
        else:
            self._warp_src = np.ascontiguousarray(self._src)
        # Keras rescales after the transform and before anything else,
        # unless a preprocessing_function comes first.
        if (self._core_dtype == np.float32 and gen.rescale
                and gen.preprocessing_function is None):
            self._fused_rescale = float(gen.rescale)

    def _fused_norm(self) -> tuple | None:
        """The featurewise statistics as the C write's per-channel step
        (ImageDataGenerator._fused_norm), when the batch is float32 Keras
        arithmetic written by C: augmented, or unaugmented from a
        channels-last uint8/float32 array, in the float32 dtype."""
        gen = self.image_data_generator
        if (gen is None or self._np_dtype != np.float32
                or (self._augmenter is None and self._direct_src is None)):
            return None
        cf = self.data_format == "channels_first"
        return gen._fused_norm(self._src.shape[1 if cf else 3], cf)

    def _key(self, indexes: np.ndarray, epoch: int) -> tuple:
        # A batch computed ahead holds the statistics of its write: after a
        # new fit() it is not this batch.
        return (epoch, indexes.dtype.str, indexes.tobytes(), self._fused_norm())

    def _batch_signature(self) -> Any:
        if (type(self)._get_batches_of_transformed_samples
                is not NumpyArrayIterator._get_batches_of_transformed_samples):
            return super()._batch_signature()
        x = Leaf(self._src.shape[1:], self._np_dtype)
        if self.x_misc:
            x = (x,) + tuple(Leaf(xx.shape[1:], xx.dtype) for xx in self.x_misc)
        if self.y is None:
            return x
        out = (x, Leaf(self.y.shape[1:], self.y.dtype))
        if self.sample_weight is not None:
            out += (Leaf(self.sample_weight.shape[1:], self.sample_weight.dtype),)
        return out

    def load_images(self, indexes: Any) -> np.ndarray:
        """The (augmented) images of the samples at `indexes`: a new
        array, channels-last from the C warp, else in the array's layout
        (with the featurewise statistics fused when ``_fused_norm`` says)."""
        indexes = np.asarray(indexes)
        norm = self._fused_norm()
        if self._augmenter is None:
            if norm is None:
                return aligned_copy(self._src[indexes], self._np_dtype)
            # rescale, centring and normalisation in one pass from the array
            gen = self.image_data_generator
            return augment_batch(self._direct_src, indexes, None, 0, np.float32,
                                 scale=float(gen.rescale) if gen.rescale else 1.0, norm=norm)
        return augment_batch(self._warp_src, indexes, self._augmenter, self._draw_epoch(),
                             self._core_dtype, scale=self._fused_rescale or 1.0,
                             channels_first=self.data_format == "channels_first", norm=norm)

    def _get_batches_of_transformed_samples(self, index_array: np.ndarray) -> Any:
        """The batch of the samples at `index_array` (Keras' legacy hook)."""
        x = self._images(index_array)
        if self._augmenter is not None and self.data_format == "channels_first":
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        gen = self.image_data_generator
        if gen is not None:
            fused = self._fused_norm() is not None
            x = gen._standardize_batch(
                x, rescaled=self._fused_rescale is not None or (fused and self._augmenter is None),
                dtype=self._np_dtype, fused=fused)
        if x.dtype != self._np_dtype or not x.flags.c_contiguous:
            x = aligned_copy(x, self._np_dtype)
        if self.save_to_dir:
            self._save_batch(x, index_array)
        misc = [xx[index_array] for xx in self.x_misc]
        output = (x if not misc else [x] + misc,)
        if self.y is None:
            return output[0]
        output += (self.y[index_array],)
        if self.sample_weight is not None:
            output += (self.sample_weight[index_array],)
        return output

    def _save_batch(self, x: np.ndarray, index_array: np.ndarray) -> None:
        from keras.utils import array_to_img

        for img, j in zip(x, index_array):
            pil = array_to_img(img, self.data_format, scale=True)
            fname = (f"{self.save_prefix}_{j}_{np.random.randint(10**4)}."
                     f"{self.save_format}")
            pil.save(os.path.join(self.save_to_dir, fname))

    def __repr__(self) -> str:
        return (f"NumpyArrayIterator({self.n} samples of shape {self._src.shape[1:]}, "
                f"batch_size={self.batch_size}, y={'no' if self.y is None else 'yes'})")
