"""``fastseq.ImageSequence``: the hand-written ``keras.utils.Sequence`` of the
Keras tutorials (``__init__``, ``on_epoch_end``, ``__len__``,
``__data_generation``, ``__getitem__``), with each batch decoded and resized
by one call into fastseq's C core instead of one PIL call per image, and the
next batch decoded ahead while Keras consumes the current one.

Batches are fresh, 64-byte aligned arrays; see :mod:`fastseq.keras.base` for
why, and for how prefetch works.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np

from fastseq.batch import list_paths
from fastseq.options import COLOR_MODES
from fastseq.keras.base import BatchDataset, ImageFiles, Leaf

__all__ = ["ImageSequence"]

_COLOR_MODE_CHANNELS = {mode: spec[1] for mode, spec in COLOR_MODES.items()}
_CHANNELS_TO_COLOR_MODE = {c: mode for mode, c in _COLOR_MODE_CHANNELS.items()}
_LABEL_MODES = ("categorical", "int", "sparse", "binary", "raw", None)


def _check_label_mode(label_mode: Any) -> str | None:
    if label_mode not in _LABEL_MODES:
        raise ValueError(f"label_mode must be one of {list(_LABEL_MODES)}, got {label_mode!r}")
    return "int" if label_mode == "sparse" else label_mode


# ImageDataGenerator arguments that are not random transforms, with the value
# that leaves the images alone.
_NOT_TRANSFORMS = {"featurewise_center": False, "samplewise_center": False,
                   "featurewise_std_normalization": False,
                   "samplewise_std_normalization": False, "zca_whitening": False,
                   "rescale": None, "preprocessing_function": None,
                   "_validation_split": 0.0}


def _augmenter(augment: Any, dim: tuple, seed: int | None, array_dtype: Any) -> Any:
    """The BatchAugmenter of ImageSequence's ``augment=``, or None."""
    if augment is None:
        return None
    from fastseq.keras.image_generator import ImageDataGenerator

    if isinstance(augment, Mapping):
        augment = ImageDataGenerator(**augment)
    elif not isinstance(augment, ImageDataGenerator):
        raise TypeError("augment must be None, a fastseq.ImageDataGenerator or a dict of its "
                        f"arguments, got {type(augment).__name__}")
    for name, neutral in _NOT_TRANSFORMS.items():
        value = getattr(augment, name)
        if (value is not None) if neutral is None else bool(value):
            raise ValueError(f"augment= takes the random transforms only; "
                             f"{name.lstrip('_')}={getattr(augment, name)!r} is not one "
                             "(ImageSequence has its own rescale)")
    return augment.batch_augmenter(dim, seed, array_dtype)


class ImageSequence(ImageFiles, BatchDataset):
    """A ``keras.utils.PyDataset`` of image files and labels, decoded by
    fastseq's C core (libjpeg-turbo, Pillow-exact resampling, GIL released).

    It has the constructor of the usual hand-written Keras data generator::

        train = fastseq.ImageSequence(paths, labels, batch_size=32,
                                      dim=(224, 224), n_channels=3,
                                      n_classes=10, shuffle=True)
        model.fit(train, epochs=5)

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Image files (JPEG fast path; PNG, BMP, TIFF... through Pillow).
    labels : None, a sequence or array with one label per path, or a mapping
        ``path -> label`` (the tutorials' ``labels[ID]`` dict).  Class labels
        are ints, or names (mapped to ints in sorted order, see
        ``class_names``).  None gives batches of ``x`` only.
    batch_size : samples per batch; the last batch may be short.
    dim : (height, width) of the output images.
    n_channels : 1, 3 or 4 (grayscale, RGB, RGBA).
    n_classes : number of classes for ``label_mode="categorical"``;
        inferred (largest label + 1) when None.
    shuffle : reshuffle the sample order at every ``on_epoch_end``.
    label_mode : how labels become targets:
        ``"categorical"`` one-hot float32 ``(batch, n_classes)``;
        ``"int"`` (or ``"sparse"``) int32 ``(batch,)``;
        ``"binary"`` float32 ``(batch, 1)`` from labels 0/1;
        ``"raw"`` the rows of ``np.asarray(labels)`` as given (regression
        targets, multi-label matrices, any shape and dtype);
        ``None`` batches of ``x`` only.
    interpolation : "bilinear" (default), "nearest", "bicubic", "hamming",
        "box" or "lanczos" (Pillow's filters).
    dtype : "float32" or "uint8" (raw pixels; needs ``rescale=None``).
    rescale : multiplies every pixel value (fused into the C write);
        None leaves 0..255.
    seed : makes the shuffled orders reproducible: the order of every epoch
        depends on the seed only.  Without a seed, numpy's global generator
        is used.
    on_error : "raise" (default), "warn" or "ignore": what an unreadable
        image does ("warn"/"ignore" zero-fill its slot).
    dct_scaling : let libjpeg decode at 1/2, 1/4, 1/8 scale when that still
        covers the target size (much faster; False gives exactly Pillow's
        full decode + resize).
    keep_aspect_ratio : centre-crop to the target aspect ratio before
        resizing (as Keras' ``load_img``).
    augment : None, a :class:`fastseq.ImageDataGenerator` or a dict of its
        arguments: Keras' random transforms (``rotation_range``,
        ``width_shift_range``, ``height_shift_range``, ``shear_range``,
        ``zoom_range``, ``horizontal_flip``, ``vertical_flip``,
        ``brightness_range``, ``channel_shift_range`` with ``fill_mode``,
        ``cval``, ``interpolation_order``) applied to each image after the
        resize, in C, before ``rescale``.  Draws depend on (``seed``, epoch,
        sample index) only.  Only the transforms are taken from it: its
        ``rescale``, ``preprocessing_function`` and statistics raise
        ValueError here (use this class's ``rescale``).  A float32 batch is
        augmented as Keras augments its float32 arrays; a uint8 one as
        Keras' ``apply_transform`` treats a uint8 array (scipy rounds into
        it), photometric results rounded half up.
    prefetch : decode the next batch's images on a background thread while
        Keras consumes the current one (default True; one extra batch in
        memory at most).  It works with ``workers=1``, which is all fastseq
        needs; with ``workers > 1`` Keras' workers fetch ahead instead.
        With ``shuffle=True`` the batch decoded ahead is served for
        whichever batch number Keras asks for next, by swapping the two
        batches' sample slices in a new ``indexes`` (each sample still once
        per epoch), so ``fit``'s random batch order is prefetched too.
    cache : None (default), ``"memory"``, a directory path or a
        :class:`fastseq.ImageCache`: keep each image's resized uint8 pixels
        so that later epochs (and, on disk, later runs) read them instead of
        decoding; augmentation and rescale still run every epoch, and the
        batches are the same bits (see :mod:`fastseq.cache`).

    shard : ``(index, count)``: read only shard `index` of `count` of each
        epoch's order (see :mod:`fastseq.keras.base`); None (default) shards
        by process under a multi-process Keras distribution (JAX), else not.
        ``batch_size`` is then this process's local batch.
    drop_remainder : keep whole global batches (``count * batch_size``)
        only, so every batch is full (default False: a short last batch).
    **kwargs : ``workers``, ``use_multiprocessing``, ``max_queue_size``,
        passed to ``keras.utils.PyDataset``.

    ``to_tf_dataset(input_context=None)`` gives the batches as a
    ``tf.data.Dataset`` (see :meth:`BatchDataset.to_tf_dataset`).

    Subclassing
    -----------
    ``__getitem__(index)`` takes the batch's sample indexes and calls the
    private ``__data_generation(indexes)``, which runs three public hooks::

        x = self.load_images(indexes)        # the fast path, one C call (*)
        y = self.make_labels(indexes)        # None when there are no labels
        return self.process_batch(x, y, indexes)

    Override ``make_labels`` to build targets differently and
    ``process_batch`` to add a per-batch step (mixing, sample weights,
    extra inputs); ``load_images`` stays the single core call.  Both receive
    arrays that belong to this batch alone and may be modified in place.
    Override ``on_epoch_end`` (calling ``super().on_epoch_end()``) to add
    epoch-level work.

    (*) With ``prefetch``, ``load_images`` for the predicted next batch runs
    ahead on a background thread; ``make_labels`` and ``process_batch`` run
    when the batch is requested.  An override of ``load_images`` must
    therefore not depend on state changed by ``__getitem__``, and may run
    for a batch that is then not used (a wrong guess).

    Attributes
    ----------
    paths, labels, batch_size, dim, n_channels, n_classes, shuffle, seed,
    label_mode, indexes (sample order of the current epoch), class_names
    (sorted label names when labels were names, else None).
    """

    def __init__(self, paths: Sequence[Any], labels: Any = None, batch_size: int = 32,
                 dim: tuple[int, int] = (224, 224), n_channels: int = 3,
                 n_classes: int | None = None, shuffle: bool = True, *,
                 label_mode: str | None = "categorical", interpolation: str = "bilinear",
                 dtype: str = "float32", rescale: float | None = 1 / 255,
                 seed: int | None = None, on_error: str = "raise",
                 dct_scaling: bool = True, keep_aspect_ratio: bool = False,
                 augment: Any = None, prefetch: bool = True, cache: Any = None,
                 shard: Any = None, drop_remainder: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        given = list_paths(paths, "image paths")
        self.paths = [os.fspath(p) for p in given]
        self._paths = self.paths
        if n_channels not in _CHANNELS_TO_COLOR_MODE:
            raise ValueError(f"n_channels must be 1, 3 or 4, got {n_channels!r}")
        self.n_channels = int(n_channels)
        self.dim = tuple(dim)
        self.label_mode = _check_label_mode(label_mode)
        self.class_names: list | None = None
        self.n_classes = n_classes
        self.labels = None
        self._class_ids: np.ndarray | None = None
        if labels is not None:
            self._set_labels(labels, n_classes, given)
        if np.dtype(dtype) == np.uint8 and rescale is not None:
            raise ValueError("dtype='uint8' gives raw pixel values: pass rescale=None "
                             f"(got rescale={rescale!r})")
        self._setup_order(len(self.paths), batch_size, shuffle, seed, shard, drop_remainder)
        augmenter = _augmenter(augment, self.dim, seed,
                               np.uint8 if np.dtype(dtype) == np.uint8 else np.float32)
        self._setup_decoding(self.dim, _CHANNELS_TO_COLOR_MODE[self.n_channels],
                             interpolation, dtype, rescale, dct_scaling,
                             keep_aspect_ratio, on_error, augmenter=augmenter, cache=cache)
        self._setup_prefetch(prefetch)

    def _set_labels(self, labels: Any, n_classes: int | None, given: list) -> None:
        if self.label_mode is None:
            raise ValueError("labels were given with label_mode=None; pass labels=None "
                             "for batches of images only")
        if isinstance(labels, Mapping):
            # keyed by the paths exactly as given (str or os.PathLike)
            missing = [p for p in given if p not in labels]
            if missing:
                raise ValueError(f"labels has no entry for {missing[0]!r}"
                                 + (f" (and {len(missing) - 1} more paths)" if len(missing) > 1 else ""))
            labels = [labels[p] for p in given]
        arr = np.asarray(labels)
        if arr.ndim == 0 or len(arr) != len(self.paths):
            raise ValueError(f"got {len(self.paths)} paths but labels of shape {arr.shape}: "
                             "one label per path is needed")
        self.labels = arr
        if self.label_mode == "raw":
            return
        if arr.ndim != 1:
            raise ValueError(f"label_mode={self.label_mode!r} needs one class label per "
                             f"path, got labels of shape {arr.shape}; pass label_mode='raw' "
                             "to use one-hot, multi-label or regression targets as given")
        if arr.dtype.kind == "O" and all(isinstance(v, numbers.Integral)
                                         and not isinstance(v, bool) for v in arr.tolist()):
            arr = arr.astype(np.int64)
        if arr.dtype.kind in "USO":
            names = sorted(set(arr.tolist()))
            self.class_names = names
            lookup = {name: k for k, name in enumerate(names)}
            ids = np.fromiter((lookup[v] for v in arr.tolist()), dtype=np.int64, count=len(arr))
        elif arr.dtype.kind in "biu":
            ids = arr.astype(np.int64)
        elif arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            ids = arr.astype(np.int64)
        else:
            raise ValueError(f"label_mode={self.label_mode!r} needs integer class labels or "
                             f"class names, got dtype {arr.dtype}; use label_mode='raw' for "
                             "real-valued targets")
        if len(ids) and ids.min() < 0:
            raise ValueError(f"class labels must be >= 0, got {ids.min()}")
        inferred = int(ids.max()) + 1 if len(ids) else 0
        if self.class_names is not None:
            inferred = len(self.class_names)
        if n_classes is None:
            n_classes = max(inferred, 2) if self.label_mode == "binary" else inferred
        elif isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) \
                or n_classes < 1:
            raise ValueError(f"n_classes must be a positive int or None, got {n_classes!r}")
        if inferred > n_classes:
            raise ValueError(f"labels go up to class {inferred - 1} but n_classes={n_classes}")
        if self.label_mode == "binary" and n_classes > 2:
            raise ValueError(f"label_mode='binary' needs labels 0 and 1, got {inferred} classes")
        self.n_classes = int(n_classes)
        self._class_ids = ids

    # -- the Sequence protocol --------------------------------------------

    def __getitem__(self, index: int) -> Any:
        """Batch `index`: ``(x, y)``, or ``x`` alone without labels.
        Raises IndexError past the end."""
        return self.__data_generation(self._request(index))

    def on_epoch_end(self) -> None:
        """Reshuffle the sample order when ``shuffle=True``."""
        self._reshuffle()

    def __data_generation(self, indexes: np.ndarray) -> Any:
        # Private as in the tutorials' generator; subclasses customise the
        # three public hooks instead (a name-mangled method cannot be
        # overridden).  _images is load_images, or its prefetched result.
        x = self._images(indexes)
        y = self.make_labels(indexes)
        return self.process_batch(x, y, indexes)

    # -- hooks --------------------------------------------------------------

    def make_labels(self, indexes: np.ndarray) -> np.ndarray | None:
        """Targets of the samples at `indexes`, as ``label_mode`` says
        (None without labels).  Always a new array."""
        if self.labels is None or self.label_mode is None:
            return None
        if self.label_mode == "raw":
            return self.labels[indexes]
        ids = self._class_ids[indexes]
        if self.label_mode == "categorical":
            y = np.zeros((len(ids), self.n_classes), dtype=np.float32)
            y[np.arange(len(ids)), ids] = 1.0
            return y
        if self.label_mode == "binary":
            return ids.astype(np.float32).reshape(-1, 1)
        return ids.astype(np.int32)

    def process_batch(self, x: np.ndarray, y: np.ndarray | None,
                      indexes: np.ndarray) -> Any:
        """The last step of every batch; returns what ``__getitem__``
        returns: ``(x, y)``, or ``x`` when `y` is None.  Override it to add
        a per-batch step (it may also return ``(x, y, sample_weight)``)."""
        del indexes
        return x if y is None else (x, y)

    def _batch_signature(self) -> Any:
        if (type(self).make_labels is not ImageSequence.make_labels
                or type(self).process_batch is not ImageSequence.process_batch):
            return super()._batch_signature()     # the hooks may change it
        x = Leaf(self.dim + (self.n_channels,), self._options.dtype)
        if self.labels is None or self.label_mode is None:
            return x
        y = {"categorical": lambda: Leaf((self.n_classes,), np.float32),
             "binary": lambda: Leaf((1,), np.float32),
             "int": lambda: Leaf((), np.int32),
             "raw": lambda: Leaf(self.labels.shape[1:], self.labels.dtype)}[self.label_mode]()
        return (x, y)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self.paths)} images, batch_size={self.batch_size}, "
                f"dim={self.dim}, n_channels={self.n_channels}, label_mode={self.label_mode!r})")

