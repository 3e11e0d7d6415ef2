"""``fastseq.ImageDataGenerator``: a drop-in for Keras' legacy
``ImageDataGenerator(...).flow_from_directory(...)`` on fastseq's C core.

``from keras.preprocessing.image import ImageDataGenerator`` no longer
imports in Keras 3; ``from fastseq import ImageDataGenerator`` takes the same
arguments and :meth:`ImageDataGenerator.flow_from_directory` returns a
:class:`DirectoryIterator` with the legacy iterator's listing, order, labels
and attributes, whose batches are decoded and resized by the C core.

Supported now: ``rescale`` (fused into the C write), ``validation_split``,
``dtype``, ``data_format`` (``channels_first`` batches are a transposed copy),
``samplewise_center``, ``samplewise_std_normalization`` and
``preprocessing_function`` (called per image in Python, with the GIL held:
the slow path), and every random transform of Keras (rotation, shifts,
shear, zoom, flips, brightness, channel shift, with ``fill_mode``, ``cval``
and ``interpolation_order``), drawn per batch in Python and computed in C
with the decode (see :mod:`fastseq.augment`); ``flow`` on numpy arrays
(:class:`fastseq.NumpyArrayIterator`), and ``fit`` with the featurewise and
ZCA statistics, applied in numpy after the C write.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from fastseq import augment
from fastseq.batch import aligned_empty
from fastseq.options import DecodeOptions
from fastseq.keras import listing
from fastseq.keras.base import ImageFiles, Iterator, Leaf, aligned_copy

if TYPE_CHECKING:       # the iterators flow() and flow_from_dataframe() return
    from fastseq.keras.array_iterator import NumpyArrayIterator
    from fastseq.keras.dataframe_iterator import DataFrameIterator

__all__ = ["ImageDataGenerator", "DirectoryIterator"]

_log = logging.getLogger("fastseq")

_FLOW_KWARGS = ("workers", "use_multiprocessing", "max_queue_size", "dct_scaling",
                "on_error", "prefetch", "cache", "shard", "drop_remainder")


def _print_msg(message: str) -> None:
    # Keras' io_utils.print_msg: stdout when interactive logging is on (the
    # default), the logging system otherwise.
    import keras

    if keras.config.is_interactive_logging_enabled():
        sys.stdout.write(message + "\n")
        sys.stdout.flush()
    else:
        _log.info(message)


def _nonzero(value: Any) -> bool:
    """Whether a range argument would move pixels: any non-zero number."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return bool(value)
    return bool(arr.size) and bool(np.any(arr != 0))


def _keras_defaults(data_format: str | None, dtype: str | None) -> tuple[str, str]:
    """Keras' defaults for `data_format` and `dtype` (its config), read only
    when one is missing so that Keras is imported no sooner than needed."""
    if data_format is None or dtype is None:
        import keras

        if data_format is None:
            data_format = keras.config.image_data_format()
        if dtype is None:
            dtype = keras.config.floatx()
    return data_format, dtype


def _per_channel(stat: Any, channels: int, channels_first: bool) -> np.ndarray | None:
    """The `channels` float32 values of a featurewise statistic that
    broadcasts over an image only along its channel axis (``fit``'s
    (1, 1, C) or (C, 1, 1), or a scalar-like (1, 1, 1)), or None when
    ``image - stat`` is not per-channel float32 arithmetic on an image
    (another dtype, a per-pixel array, an extra leading axis)."""
    if not isinstance(stat, np.ndarray) or stat.dtype != np.float32 or stat.ndim > 3:
        return None
    shape = (1,) * (3 - stat.ndim) + stat.shape
    axis = 0 if channels_first else 2
    if any(n != 1 for i, n in enumerate(shape) if i != axis) or shape[axis] not in (1, channels):
        return None
    return np.broadcast_to(stat.reshape(shape[axis]), (channels,)).astype(np.float32)


class ImageDataGenerator:
    """Keras' legacy ``ImageDataGenerator`` API on fastseq's C core.

    The arguments and defaults are Keras' (see
    ``keras.src.legacy.preprocessing.image.ImageDataGenerator``).  In this
    release:

    - ``rescale``: fused into the C write (no extra pass) unless a
      ``preprocessing_function`` is set, which Keras applies *before*
      rescaling.
    - ``samplewise_center``, ``samplewise_std_normalization``: per image,
      as Keras computes them.
    - ``preprocessing_function``: called on each image (a float array of
      ``image_shape``, values 0..255) in Python, as in Keras: the slow path.
    - ``validation_split`` with ``flow_from_directory(subset=...)``.
    - ``data_format``: ``"channels_last"``, or ``"channels_first"`` (a
      transposed copy of each batch); None uses Keras' setting.
    - ``dtype``: any numpy numeric dtype; decoding is float32 (or uint8 with
      no scaling at all) and other dtypes are converted as Keras converts.
    - ``rotation_range``, ``width_shift_range``, ``height_shift_range``,
      ``brightness_range``, ``shear_range``, ``zoom_range``,
      ``channel_shift_range``, ``horizontal_flip``, ``vertical_flip``,
      ``fill_mode``, ``cval``, ``interpolation_order`` (0 or 1): Keras'
      random augmentation, each image resized then warped in C on the
      native pool; the draws depend only on (seed, epoch, sample index).
      ``width_shift_range`` moves images horizontally, as Keras documents
      (Keras' own draw swaps the two shift ranges).
    - ``featurewise_center``, ``featurewise_std_normalization``,
      ``zca_whitening``, ``zca_epsilon``: Keras' statistics from
      :meth:`fit`, with its flag interplay and warnings.
    """

    def __init__(self, featurewise_center: bool = False, samplewise_center: bool = False,
                 featurewise_std_normalization: bool = False,
                 samplewise_std_normalization: bool = False, zca_whitening: bool = False,
                 zca_epsilon: float = 1e-6, rotation_range: float = 0,
                 width_shift_range: Any = 0.0, height_shift_range: Any = 0.0,
                 brightness_range: Any = None, shear_range: float = 0.0,
                 zoom_range: Any = 0.0, channel_shift_range: float = 0.0,
                 fill_mode: str = "nearest", cval: float = 0.0,
                 horizontal_flip: bool = False, vertical_flip: bool = False,
                 rescale: float | None = None,
                 preprocessing_function: Callable[[np.ndarray], np.ndarray] | None = None,
                 data_format: str | None = None, validation_split: float = 0.0,
                 interpolation_order: int = 1, dtype: str | None = None) -> None:
        data_format, dtype = _keras_defaults(data_format, dtype)
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError('`data_format` should be "channels_last" or "channels_first", '
                             f"got {data_format!r}")
        try:
            np_dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be a numpy numeric dtype, got {dtype!r}") from None
        if np_dtype.kind not in "biuf":
            raise TypeError(f"dtype must be a numpy numeric dtype, got {dtype!r}")
        if validation_split and not 0 < validation_split < 1:
            raise ValueError("`validation_split` must be strictly between 0 and 1, "
                             f"got {validation_split!r}")
        zoom = augment.normalize_zoom_range(zoom_range)
        augment.check_brightness_range(brightness_range)
        width_shift_range = augment.check_shift_range("width_shift_range", width_shift_range)
        height_shift_range = augment.check_shift_range("height_shift_range", height_shift_range)
        augment.check_fill_mode(fill_mode)
        interpolation_order = augment.check_interpolation_order(interpolation_order)
        if preprocessing_function is not None and not callable(preprocessing_function):
            raise TypeError("preprocessing_function must be callable or None")

        # Keras' interplay of the flags, with its warnings: each check reads
        # the arguments as given (so zca_whitening with
        # featurewise_std_normalization also warns about centring) and
        # changes the setting.
        fw_center, fw_std = featurewise_center, featurewise_std_normalization
        if zca_whitening:
            if not featurewise_center:
                fw_center = True
                warnings.warn("This ImageDataGenerator specifies `zca_whitening`, which "
                              "overrides setting of `featurewise_center`.", stacklevel=2)
            if featurewise_std_normalization:
                fw_std = False
                warnings.warn("This ImageDataGenerator specifies `zca_whitening` which "
                              "overrides setting of`featurewise_std_normalization`.",
                              stacklevel=2)
        if featurewise_std_normalization and not featurewise_center:
            fw_center = True
            warnings.warn("This ImageDataGenerator specifies `featurewise_std_normalization`, "
                          "which overrides setting of `featurewise_center`.", stacklevel=2)
        featurewise_center, featurewise_std_normalization = fw_center, fw_std
        if samplewise_std_normalization and not samplewise_center:
            samplewise_center = True
            warnings.warn("This ImageDataGenerator specifies `samplewise_std_normalization`, "
                          "which overrides setting of `samplewise_center`.", stacklevel=2)

        self.featurewise_center = featurewise_center
        self.samplewise_center = samplewise_center
        self.featurewise_std_normalization = featurewise_std_normalization
        self.samplewise_std_normalization = samplewise_std_normalization
        self.zca_whitening = zca_whitening
        self.zca_epsilon = zca_epsilon
        # Checked here, as the shift, zoom and brightness ranges are, rather
        # than failing inside the first draw.
        for name, value in (("rotation_range", rotation_range), ("shear_range", shear_range),
                            ("channel_shift_range", channel_shift_range)):
            augment.check_finite(name, value)
        self.rotation_range = rotation_range
        self.width_shift_range = width_shift_range
        self.height_shift_range = height_shift_range
        self.brightness_range = brightness_range
        self.shear_range = shear_range
        self.zoom_range = zoom
        self.channel_shift_range = channel_shift_range
        self.fill_mode = fill_mode
        self.cval = cval
        self.horizontal_flip = horizontal_flip
        self.vertical_flip = vertical_flip
        self.rescale = rescale
        self.preprocessing_function = preprocessing_function
        self.data_format = data_format
        self.channel_axis, self.row_axis, self.col_axis = (
            (3, 1, 2) if data_format == "channels_last" else (1, 2, 3))
        self._validation_split = validation_split
        self.interpolation_order = interpolation_order
        self.dtype = dtype
        self.mean = None
        self.std = None
        self.zca_whitening_matrix = None

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """Keras' ``standardize`` for one image (or a batch, as in Keras the
        statistics are then over the whole array), in place where Keras
        works in place: ``preprocessing_function``, ``rescale``, the
        samplewise centring and normalisation, the featurewise ones, then
        ZCA whitening (the last three need :meth:`fit`)."""
        if self.preprocessing_function:
            x = self.preprocessing_function(x)
        if self.rescale:
            x *= self.rescale
        if self.samplewise_center:
            x -= np.mean(x, keepdims=True)
        if self.samplewise_std_normalization:
            x /= np.std(x, keepdims=True) + 1e-6
        return self._featurewise(x)

    def _warn_unfit(self, name: str) -> None:
        warnings.warn(f"This ImageDataGenerator specifies `{name}`, but it hasn't been fit "
                      "on any training data. Fit it first by calling `.fit(numpy_data)`.",
                      stacklevel=3)

    def _featurewise(self, x: np.ndarray, fused: bool = False) -> np.ndarray:
        """Keras' featurewise centring, normalisation and ZCA on an image or
        a batch (the statistics broadcast over leading axes), in place where
        Keras works in place.  `fused`: the centring and normalisation by
        the statistics that are set were already applied by the C write
        (:meth:`_fused_norm`); only the warnings and ZCA remain."""
        if self.featurewise_center:
            if self.mean is not None:
                if not fused:
                    x -= self.mean
            else:
                self._warn_unfit("featurewise_center")
        if self.featurewise_std_normalization:
            if self.std is not None:
                if not fused:
                    x /= self.std + 1e-6
            else:
                self._warn_unfit("featurewise_std_normalization")
        if self.zca_whitening:
            if self.zca_whitening_matrix is not None:
                flat_x = x.reshape(-1, math.prod(x.shape[-3:]))
                x = np.reshape(flat_x @ self.zca_whitening_matrix, x.shape)
            else:
                self._warn_unfit("zca_whitening")
        return x

    def _fused_norm(self, channels: int, channels_first: bool) -> tuple | None:
        """The featurewise centring and normalisation as the C write's
        per-channel ``(mean, std + 1e-6)`` (fastseq.options.DecodeOptions'
        ``featurewise``), or None when they are not exactly that.

        The C write computes ``((v * rescale) - mean_c) / (std_c + 1e-6)``
        as three float32 operations, which is what Keras' ``standardize``
        does to a float32 image only when nothing runs between rescale and
        the featurewise steps (no ``preprocessing_function``, no samplewise
        step) and the statistics are float32 arrays that vary along the
        channel axis only (``fit`` gives that shape and dtype; a float64 or
        per-pixel ``mean`` set by hand keeps numpy's path).  The caller also
        checks that its batch is float32 arithmetic."""
        if (self.preprocessing_function is not None or self.samplewise_center
                or self.samplewise_std_normalization):
            return None
        center = bool(self.featurewise_center) and self.mean is not None
        normalize = bool(self.featurewise_std_normalization) and self.std is not None
        if not (center or normalize):
            return None
        sub = _per_channel(self.mean, channels, channels_first) if center \
            else np.zeros(channels, np.float32)
        div = _per_channel(self.std + 1e-6, channels, channels_first) if normalize \
            else np.ones(channels, np.float32)
        if sub is None or div is None:
            return None
        return tuple(float(v) for v in sub), tuple(float(v) for v in div)

    @property
    def _standardizes(self) -> bool:
        return bool(self.preprocessing_function or self.rescale or self.samplewise_center
                    or self.samplewise_std_normalization or self.featurewise_center
                    or self.featurewise_std_normalization or self.zca_whitening)

    def _standardize_batch(self, x: np.ndarray, *, rescaled: bool, dtype: Any,
                           fused: bool = False) -> np.ndarray:
        """Keras' per-image ``standardize`` over a fresh batch `x` (its own
        memory, changed in place; `rescaled`: rescale was already applied,
        fused into the C write).  With a ``preprocessing_function`` each
        image goes through Keras' steps in Python and lands in a new batch of
        `dtype`; otherwise the elementwise steps run on the whole batch (the
        same values) and the samplewise ones per image.  `fused`: the
        featurewise centring and normalisation were fused into the C write
        too (:meth:`_fused_norm`).  The caller casts to `dtype`."""
        if self.preprocessing_function is not None:
            out = aligned_empty(x.shape, dtype)
            for i in range(len(x)):
                xi = np.asarray(self.preprocessing_function(x[i]))
                if xi.shape != x.shape[1:]:
                    raise ValueError(f"preprocessing_function returned shape {xi.shape}, "
                                     f"expected {x.shape[1:]}")
                if self.rescale:
                    xi = xi * self.rescale
                out[i] = self._featurewise(self._samplewise_one(xi))
            return out
        if self.rescale and not rescaled:
            x *= self.rescale
        if self.samplewise_center or self.samplewise_std_normalization:
            for i in range(len(x)):
                x[i] = self._samplewise_one(x[i])
        return self._featurewise(x, fused=fused)

    def _samplewise_one(self, xi: np.ndarray) -> np.ndarray:
        if self.samplewise_center:
            xi = xi - np.mean(xi, keepdims=True)
        if self.samplewise_std_normalization:
            xi = xi / (np.std(xi, keepdims=True) + 1e-6)
        return xi

    # -- Keras' random augmentation (fastseq.augment, the batch kernel) -----

    def _ranges(self) -> dict:
        return dict(rotation_range=self.rotation_range,
                    width_shift_range=self.width_shift_range,
                    height_shift_range=self.height_shift_range,
                    shear_range=self.shear_range, zoom_range=self.zoom_range,
                    channel_shift_range=self.channel_shift_range,
                    horizontal_flip=self.horizontal_flip, vertical_flip=self.vertical_flip,
                    brightness_range=self.brightness_range)

    @property
    def augments(self) -> bool:
        """Whether any random transform can change an image."""
        z = self.zoom_range
        return bool(_nonzero(self.rotation_range) or _nonzero(self.width_shift_range)
                    or _nonzero(self.height_shift_range) or _nonzero(self.shear_range)
                    or not (z[0] == 1 and z[1] == 1) or _nonzero(self.channel_shift_range)
                    or self.horizontal_flip or self.vertical_flip
                    or self.brightness_range is not None)

    def batch_augmenter(self, target_size: tuple[int, int], seed: int | None,
                        array_dtype: Any = np.float32) -> "augment.BatchAugmenter | None":
        """The :class:`fastseq.augment.BatchAugmenter` of this generator's
        transforms for `target_size` images, or None when nothing changes
        them."""
        if not self.augments:
            return None
        return augment.BatchAugmenter(
            rows=target_size[0], cols=target_size[1], fill_mode=self.fill_mode,
            cval=self.cval, interpolation_order=self.interpolation_order,
            array_dtype=array_dtype, seed=seed, **self._ranges())

    def get_random_transform(self, img_shape: tuple, seed: int | None = None) -> dict:
        """Keras' ``get_random_transform``: a dict of random parameters for
        one image of `img_shape` (``theta``, ``tx``, ``ty``, ``shear``,
        ``zx``, ``zy``, ``flip_horizontal``, ``flip_vertical``,
        ``channel_shift_intensity``, ``brightness``).  An int `seed` draws
        Keras' values for that seed, with ``tx`` from ``width_shift_range``
        (Keras swaps the two shift axes; see the README)."""
        return augment.get_random_transform(img_shape, seed, data_format=self.data_format,
                                            **self._ranges())

    def apply_transform(self, x: np.ndarray, transform_parameters: dict) -> np.ndarray:
        """Keras' ``apply_transform`` on one image array, by fastseq's C
        warp (no scipy)."""
        return augment.apply_transform(x, transform_parameters, data_format=self.data_format,
                                       fill_mode=self.fill_mode, cval=self.cval,
                                       interpolation_order=self.interpolation_order)

    def random_transform(self, x: np.ndarray, seed: int | None = None) -> np.ndarray:
        """Keras' ``random_transform``: get_random_transform for x's shape,
        then apply_transform."""
        params = self.get_random_transform(np.shape(x), seed)
        return self.apply_transform(x, params)

    def flow_from_directory(self, directory: str | os.PathLike,
                            target_size: tuple[int, int] = (256, 256),
                            color_mode: str = "rgb", classes: Sequence[str] | None = None,
                            class_mode: str | None = "categorical", batch_size: int = 32,
                            shuffle: bool = True, seed: int | None = None,
                            save_to_dir: str | None = None, save_prefix: str = "",
                            save_format: str = "png", follow_links: bool = False,
                            subset: str | None = None, interpolation: str = "nearest",
                            keep_aspect_ratio: bool = False,
                            **kwargs: Any) -> "DirectoryIterator":
        """Keras' ``flow_from_directory``: a :class:`DirectoryIterator` over
        the class subfolders of `directory`.

        Extra keyword arguments: ``workers``, ``use_multiprocessing``,
        ``max_queue_size`` (for ``keras.utils.PyDataset``: pass them here,
        not to ``fit``; fastseq needs no more than the default
        ``workers=1``), ``dct_scaling`` (default True; False makes JPEG
        pixels identical to Keras/Pillow), ``on_error`` ("raise",
        "warn", "ignore"), ``prefetch`` (default True: decode the next
        batch while Keras consumes this one), ``cache`` (None,
        ``"memory"``, a directory or a :class:`fastseq.ImageCache`: keep the
        resized pixels so later epochs skip the decode; augmentation still
        runs every epoch; see :mod:`fastseq.cache`), ``shard=(index, count)``
        and ``drop_remainder`` (read only this process's shard of each
        epoch; see "Scaling out" in the README).
        """
        bad = sorted(set(kwargs) - set(_FLOW_KWARGS))
        if bad:
            raise TypeError(f"flow_from_directory() got unexpected keyword argument(s) "
                            f"{', '.join(map(repr, bad))}; accepted extras: {', '.join(_FLOW_KWARGS)}")
        return DirectoryIterator(
            directory, self, target_size=target_size, color_mode=color_mode,
            classes=classes, class_mode=class_mode, batch_size=batch_size,
            shuffle=shuffle, seed=seed, data_format=self.data_format,
            save_to_dir=save_to_dir, save_prefix=save_prefix, save_format=save_format,
            follow_links=follow_links, subset=subset, interpolation=interpolation,
            keep_aspect_ratio=keep_aspect_ratio, dtype=self.dtype, **kwargs)

    def fit(self, x: Any, augment: bool = False, rounds: int = 1,
            seed: int | None = None) -> None:
        """Keras' ``fit``: the featurewise statistics of the sample `x` (a
        rank-4 array), after ``rescale``: the per-channel ``mean`` (with
        ``featurewise_center``), ``std`` (with
        ``featurewise_std_normalization``, after centring) and the
        ``zca_whitening_matrix`` from the SVD of the flattened, centred
        sample (with ``zca_whitening``; a D x D matrix for D values per
        image: meant for small images, as in Keras).

        ``augment=True`` fits on `rounds` randomly augmented copies of `x`,
        warped in C on the native pool; round r draws as epoch r of `seed`
        (fastseq's draws, not numpy's global generator, which is left
        alone)."""
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 4:
            raise ValueError("Input to `.fit()` should have rank 4. Got array with shape: "
                             + str(x.shape))
        if x.shape[self.channel_axis] not in {1, 3, 4}:
            warnings.warn(
                "Expected input to be images (as Numpy array) following the data format "
                f'convention "{self.data_format}" (channels on axis {self.channel_axis}), '
                "i.e. expected either 1, 3 or 4 channels on axis "
                f"{self.channel_axis}. However, it was passed an array with shape "
                f"{x.shape} ({x.shape[self.channel_axis]} channels).", stacklevel=2)
        x = np.copy(x)
        if self.rescale:
            x *= self.rescale
        if augment:
            x = self._augmented_rounds(x, rounds, seed)
        if self.featurewise_center:
            self.mean = np.mean(x, axis=(0, self.row_axis, self.col_axis))
            broadcast_shape = [1, 1, 1]
            broadcast_shape[self.channel_axis - 1] = x.shape[self.channel_axis]
            self.mean = np.reshape(self.mean, broadcast_shape)
            x -= self.mean
        if self.featurewise_std_normalization:
            self.std = np.std(x, axis=(0, self.row_axis, self.col_axis))
            broadcast_shape = [1, 1, 1]
            broadcast_shape[self.channel_axis - 1] = x.shape[self.channel_axis]
            self.std = np.reshape(self.std, broadcast_shape)
            x /= self.std + 1e-6
        if self.zca_whitening:
            n = len(x)
            flat_x = np.reshape(x, (n, -1))
            u, s, _ = np.linalg.svd(flat_x.T, full_matrices=False)
            s_inv = np.sqrt(n) / (s + self.zca_epsilon)
            self.zca_whitening_matrix = (u * s_inv).dot(u.T)

    def _augmented_rounds(self, x: np.ndarray, rounds: int, seed: int | None) -> np.ndarray:
        from fastseq.keras.array_iterator import augment_batch

        n = x.shape[0]
        ax = np.zeros((rounds * n,) + x.shape[1:], dtype=self.dtype)
        if not self.augments or n == 0:
            for r in range(rounds):
                ax[r * n:(r + 1) * n] = x
            return ax
        cf = self.data_format == "channels_first"
        rows, cols = (x.shape[2], x.shape[3]) if cf else (x.shape[1], x.shape[2])
        channels = x.shape[self.channel_axis]
        if channels not in (1, 3, 4):
            raise ValueError(f"fastseq augments images with 1, 3 or 4 channels; x has shape "
                             f"{x.shape} ({self.data_format})")
        np_dtype = np.dtype(self.dtype)
        # Keras' random_transform works on the (rescaled) array in dtype.
        core = np.uint8 if np_dtype == np.uint8 else np.float32
        aug = self.batch_augmenter((rows, cols), seed,
                                   array_dtype=np_dtype if np_dtype.kind == "f" else core)
        src = np.ascontiguousarray(x, dtype=core)
        for r in range(rounds):
            b = augment_batch(src, np.arange(n), aug, r, core, channels_first=cf)
            ax[r * n:(r + 1) * n] = b.transpose(0, 3, 1, 2) if cf else b
        return ax

    def flow(self, x: Any, y: Any = None, batch_size: int = 32, shuffle: bool = True,
             sample_weight: Any = None, seed: int | None = None,
             save_to_dir: str | None = None, save_prefix: str = "",
             save_format: str = "png", ignore_class_split: bool = False,
             subset: str | None = None, **kwargs: Any) -> "NumpyArrayIterator":
        """Keras' ``flow``: a :class:`fastseq.NumpyArrayIterator` over the
        arrays `x` (rank 4, or ``(x, misc)`` / ``(x, [misc, ...])``), `y`
        and `sample_weight`.

        Extra keyword arguments: ``workers``, ``use_multiprocessing``,
        ``max_queue_size`` (``keras.utils.PyDataset``), ``prefetch``
        (default True: augment the next batch while Keras consumes this
        one), ``shard=(index, count)`` and ``drop_remainder`` (read only
        this process's shard of each epoch)."""
        from fastseq.keras.array_iterator import NumpyArrayIterator

        allowed = ("workers", "use_multiprocessing", "max_queue_size", "prefetch", "shard",
                   "drop_remainder")
        bad = sorted(set(kwargs) - set(allowed))
        if bad:
            raise TypeError(f"flow() got unexpected keyword argument(s) "
                            f"{', '.join(map(repr, bad))}; accepted extras: {', '.join(allowed)}")
        return NumpyArrayIterator(
            x, y, self, batch_size=batch_size, shuffle=shuffle, sample_weight=sample_weight,
            seed=seed, data_format=self.data_format, save_to_dir=save_to_dir,
            save_prefix=save_prefix, save_format=save_format,
            ignore_class_split=ignore_class_split, subset=subset, dtype=self.dtype, **kwargs)

    def flow_from_dataframe(self, dataframe: Any, directory: str | os.PathLike | None = None,
                            x_col: str = "filename", y_col: Any = "class",
                            weight_col: str | None = None,
                            target_size: tuple[int, int] = (256, 256),
                            color_mode: str = "rgb", classes: Sequence[str] | None = None,
                            class_mode: str | None = "categorical", batch_size: int = 32,
                            shuffle: bool = True, seed: int | None = None,
                            save_to_dir: str | None = None, save_prefix: str = "",
                            save_format: str = "png", subset: str | None = None,
                            interpolation: str = "nearest", validate_filenames: bool = True,
                            keep_aspect_ratio: bool = False,
                            **kwargs: Any) -> "DataFrameIterator":
        """Keras' ``flow_from_dataframe``: a :class:`fastseq.DataFrameIterator`
        over the image files named in column `x_col` of a pandas DataFrame
        (joined to `directory` unless it is None), labelled from `y_col`.
        Needs pandas (``pip install 'fastseq[dataframe]'``).

        Extra keyword arguments: as for :meth:`flow_from_directory`
        (``workers``, ``use_multiprocessing``, ``max_queue_size``,
        ``dct_scaling``, ``on_error``, ``prefetch``); Keras' deprecated
        ``has_ext``, ``sort`` and ``drop_duplicates`` are accepted with
        Keras' ``DeprecationWarning`` and do nothing, and
        ``class_mode="other"`` means ``"raw"``, with Keras' warning.
        """
        from fastseq.keras.dataframe_iterator import DataFrameIterator, require_pandas

        require_pandas()
        deprecated = {
            "has_ext": "has_ext is deprecated, filenames in the dataframe have to match "
                       "the exact filenames in disk.",
            "sort": "sort is deprecated, batches will be created in thesame order than "
                    "the filenames provided if `shuffle`is set to `False`.",
            "drop_duplicates": "drop_duplicates is deprecated, you can drop duplicates by "
                               "using the pandas.DataFrame.drop_duplicates method.",
        }
        bad = sorted(set(kwargs) - set(_FLOW_KWARGS) - set(deprecated))
        if bad:
            raise TypeError(f"flow_from_dataframe() got unexpected keyword argument(s) "
                            f"{', '.join(map(repr, bad))}; accepted extras: {', '.join(_FLOW_KWARGS)}")
        for name in ("has_ext", "sort"):
            if name in kwargs:
                warnings.warn(deprecated[name], DeprecationWarning, stacklevel=2)
        if class_mode == "other":
            warnings.warn('`class_mode="other"` is deprecated, please use `class_mode="raw"`.',
                          DeprecationWarning, stacklevel=2)
            class_mode = "raw"
        if "drop_duplicates" in kwargs:
            warnings.warn(deprecated["drop_duplicates"], DeprecationWarning, stacklevel=2)
        for name in deprecated:
            kwargs.pop(name, None)
        return DataFrameIterator(
            dataframe, directory, self, x_col=x_col, y_col=y_col, weight_col=weight_col,
            target_size=target_size, color_mode=color_mode, classes=classes,
            class_mode=class_mode, data_format=self.data_format, batch_size=batch_size,
            shuffle=shuffle, seed=seed, save_to_dir=save_to_dir, save_prefix=save_prefix,
            save_format=save_format, subset=subset, interpolation=interpolation,
            validate_filenames=validate_filenames, keep_aspect_ratio=keep_aspect_ratio,
            dtype=self.dtype, **kwargs)


class FileBatches:
    """What every iterator over image files shares with Keras'
    ``BatchFromFilesMixin``: the processing attributes, and how a batch is
    decoded, augmented, standardised, cast and saved.  Subclasses set
    ``self._filepaths`` and give the targets in ``_with_labels``."""

    def _setup_file_batches(self, image_data_generator: ImageDataGenerator | None,
                            target_size: tuple[int, int], color_mode: str,
                            data_format: str | None, save_to_dir: str | None,
                            save_prefix: str, save_format: str, subset: str | None,
                            interpolation: str, keep_aspect_ratio: bool,
                            dtype: str | None) -> str:
        """Validate and set the processing attributes, with Keras' messages;
        returns `dtype` with Keras' default filled in."""
        if image_data_generator is not None and not isinstance(image_data_generator,
                                                               ImageDataGenerator):
            raise TypeError("image_data_generator must be a fastseq.ImageDataGenerator or "
                            f"None, got {type(image_data_generator).__name__}")
        data_format, dtype = _keras_defaults(data_format, dtype)
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError('data_format should be "channels_last" or "channels_first", '
                             f"got {data_format!r}")
        if color_mode not in ("rgb", "rgba", "grayscale"):
            raise ValueError(f'Invalid color mode: {color_mode}; expected "rgb", "rgba", '
                             'or "grayscale".')
        self.image_data_generator = image_data_generator
        self.target_size = tuple(target_size)
        self.keep_aspect_ratio = keep_aspect_ratio
        self.color_mode = color_mode
        self.data_format = data_format
        channels = {"rgb": 3, "rgba": 4, "grayscale": 1}[color_mode]
        self.image_shape = (self.target_size + (channels,) if data_format == "channels_last"
                            else (channels,) + self.target_size)
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        self.interpolation = interpolation
        if subset is not None:
            if image_data_generator is None:
                raise ValueError("subset needs an image_data_generator with a validation_split")
            vs = image_data_generator._validation_split
            if subset == "validation":
                split = (0, vs)
            elif subset == "training":
                split = (vs, 1)
            else:
                raise ValueError(f'Invalid subset name: {subset}; expected "training" or '
                                 '"validation"')
        else:
            split = None
        self.split = split
        self.subset = subset
        return dtype

    # -- how a batch is computed ---------------------------------------------

    def _setup_decoding_for(self, dtype: Any, dct_scaling: bool, on_error: str,
                            cache: Any = None) -> None:
        gen = self.image_data_generator
        np_dtype = np.dtype(dtype)
        preprocess = gen.preprocessing_function if gen is not None else None
        rescale = (gen.rescale or None) if gen is not None else None
        standardizes = gen is not None and gen._standardizes
        # Keras calls preprocessing_function before rescaling, so rescale is
        # fused into the C write only when there is no such function.
        fused_rescale = rescale if preprocess is None else None
        self._per_image = preprocess is not None
        # Keras augments img_to_array's float32 array, whatever the
        # iterator's dtype, and then casts it into the batch.
        augmenter = gen.batch_augmenter(self.target_size, self.seed) if gen is not None else None
        if np_dtype == np.uint8 and not standardizes and augmenter is None:
            core_dtype = "uint8"     # raw pixels: identical to Keras' cast
        else:
            core_dtype = "float32"
        self._np_dtype = np_dtype
        # (uint8 is only chosen when rescale is None, so fused_rescale is too)
        # Keras' load_img keeps 16- and 32-bit grayscale images ("I;16",
        # "I") at their values, as float32 in img_to_array.  A uint8 batch
        # holds Pillow's convert("L") of them instead (clipped at 255):
        # Keras casts values above 255 to uint8, which numpy leaves undefined.
        wide_gray = (self.color_mode == "grayscale" and core_dtype == "float32"
                     and np_dtype.kind == "f")
        self._setup_decoding(self.target_size, self.color_mode, self.interpolation,
                             core_dtype, fused_rescale,
                             dct_scaling, self.keep_aspect_ratio, on_error,
                             augmenter=augmenter, wide_gray=wide_gray, cache=cache)
        # The featurewise statistics may be fit after the iterator is made
        # (Keras reads them per batch): the fused form is looked up per batch.
        self._plain_options = self._options
        self._norm_options: dict = {}

    def _fused_norm(self) -> tuple | None:
        """The generator's featurewise statistics as the C write's
        per-channel step, when it equals Keras' float32 arithmetic on this
        batch: a float32 core batch with rescale fused (so nothing runs
        between it and the featurewise steps), in the iterator's float32
        dtype, else None."""
        gen = self.image_data_generator
        if (gen is None or self._per_image or self._options.dtype != np.float32
                or self._np_dtype != np.float32):
            return None
        channels = self.image_shape[0 if self.data_format == "channels_first" else 2]
        return gen._fused_norm(channels, self.data_format == "channels_first")

    def _batch_options(self) -> Any:
        norm = self._fused_norm()
        if norm is None:
            return self._plain_options
        opts = self._norm_options.get(norm)
        if opts is None:
            args = dict(self._plain_options._args)
            args["featurewise"] = norm
            opts = DecodeOptions(**args)
            # The statistics rarely change: keep the latest few.
            if len(self._norm_options) > 4:
                self._norm_options.clear()
            self._norm_options[norm] = opts
        return opts

    def _key(self, indexes: np.ndarray, epoch: int) -> tuple:
        # A batch decoded ahead holds the statistics of its decode: after a
        # new fit() it is not this batch.
        return (epoch, indexes.dtype.str, indexes.tobytes(), self._fused_norm())

    def _get_batches_of_transformed_samples(self, index_array: np.ndarray) -> Any:
        """The batch of the samples at `index_array`: ``(x, y)`` or ``x``
        (Keras' legacy hook, overridable as in Keras)."""
        x = self._images(index_array)       # decoded ahead when prefetched
        if self.data_format == "channels_first":
            # A view, as Keras' img_to_array: standardize then reduces each
            # (C, H, W) view in the (H, W, C) memory order, and np.std sums in
            # memory order, so a contiguous copy here would differ by an ulp.
            x = x.transpose(0, 3, 1, 2)
        gen = self.image_data_generator
        if gen is not None:
            x = gen._standardize_batch(x, rescaled=not self._per_image, dtype=self._np_dtype,
                                       fused=self._fused_norm() is not None)
        if x.dtype != self._np_dtype or not x.flags.c_contiguous:
            x = aligned_copy(x, self._np_dtype)
        if self.save_to_dir:
            self._save_batch(x, index_array)
        return self._with_labels(x, index_array)

    def _save_batch(self, x: np.ndarray, index_array: np.ndarray) -> None:
        """Write each image as Keras' ``array_to_img(..., scale=True)`` would,
        as ``{prefix}_{index}_{random}.{format}``."""
        from PIL import Image

        for img, j in zip(x, index_array):
            a = np.asarray(img, dtype=np.float32)
            if self.data_format == "channels_first":
                a = a.transpose(1, 2, 0)
            a = a - np.min(a)
            top = np.max(a)
            if top != 0:
                a /= top
            a *= 255
            if a.shape[2] == 4:
                pil = Image.fromarray(a.astype("uint8"), "RGBA")
            elif a.shape[2] == 3:
                pil = Image.fromarray(a.astype("uint8"), "RGB")
            else:
                pil = Image.fromarray(a[:, :, 0].astype("uint8"), "L")
            fname = f"{self.save_prefix}_{j}_{np.random.randint(10**7)}.{self.save_format}"
            pil.save(os.path.join(self.save_to_dir, fname))

    @property
    def filepaths(self) -> list[str]:
        """Full paths of the images (``os.path.join(directory, filename)``)."""
        return self._filepaths

    def _class_leaf(self, x: Any) -> Any:
        """The label part of the batch signature for the class modes both
        file iterators share ("input", "binary", "sparse", "categorical"),
        else None."""
        mode = self.class_mode
        if mode == "input":
            return x
        if mode in ("binary", "sparse"):
            return Leaf((), self.dtype)
        if mode == "categorical":
            return Leaf((len(self.class_indices),), self.dtype)
        return None

    def _own_batches(self, cls: type) -> bool:
        """Whether batches are computed by `cls`'s own methods (a subclass
        overriding them may change the batch structure)."""
        t = type(self)
        return (t._with_labels is cls._with_labels
                and t._get_batches_of_transformed_samples
                is FileBatches._get_batches_of_transformed_samples)


class DirectoryIterator(FileBatches, ImageFiles, Iterator):
    """A ``keras.utils.PyDataset`` over ``directory/<class>/...`` image
    folders with the semantics of Keras' legacy ``DirectoryIterator``:

    - classes: the sorted subfolders of `directory` (symlinks to folders
      included), or `classes` in the given order;
    - files: found by a recursive walk of each class folder (into symlinked
      subfolders only with ``follow_links``), directories in path order and
      files sorted by name, kept when the lower-cased name ends with png,
      jpg, jpeg, bmp, ppm, tif or tiff;
    - ``subset="validation"`` keeps the first ``int(validation_split * n)``
      files of each class, ``"training"`` the rest;
    - labels per ``class_mode``: ``"categorical"`` one-hot
      ``(batch, num_classes)``, ``"binary"``/``"sparse"`` ``(batch,)``, all
      of ``dtype``; ``"input"`` a copy of ``x``; None gives ``x`` alone;
    - ``shuffle=False`` batches follow ``filenames``; with ``shuffle=True``
      the order is redrawn at every ``on_epoch_end`` (from `seed` when
      given, else numpy's global generator).

    Attributes: ``filenames`` (relative to `directory`), ``filepaths``,
    ``classes``/``labels`` (int32), ``class_indices``, ``num_classes``,
    ``samples``, ``n``, ``batch_size``, ``image_shape``, ``index_array``.

    ``dct_scaling=False`` makes JPEG pixels identical to Keras' (Pillow's
    full decode); the default True decodes large JPEGs at a reduced DCT
    scale first, which is much faster and visually equivalent.  With
    ``color_mode="grayscale"`` 16- and 32-bit grayscale images (PIL modes
    "I;16", "I") keep their values, as in Keras (decoded and resized by
    Pillow in their own mode); a uint8 batch holds Pillow's
    ``convert("L")`` of them (clipped at 255) instead of Keras' undefined
    cast of float values above 255.

    ``prefetch=True`` (the default) decodes the next batch's images on a
    background thread while Keras consumes the current one (see
    :mod:`fastseq.keras.base`); the rest of a batch (standardisation,
    labels, ``save_to_dir``) is computed when it is requested.  With
    ``shuffle=True`` the batch decoded ahead is served for whichever batch
    number Keras asks for next (``fit(shuffle=True)`` asks in a random
    order): the two batches' sample slices are swapped in a new
    ``index_array``, each sample still once per epoch with its label.

    ``shard=(index, count)`` and ``drop_remainder`` shard the files before
    decoding, as for :class:`fastseq.ImageSequence` (automatic under a
    multi-process Keras distribution); ``to_tf_dataset(input_context)``
    gives a ``tf.data.Dataset``.
    """

    allowed_class_modes = {"categorical", "binary", "sparse", "input", None}
    white_list_formats = listing.WHITE_LIST_FORMATS

    def __init__(self, directory: str | os.PathLike,
                 image_data_generator: ImageDataGenerator | None = None,
                 target_size: tuple[int, int] = (256, 256), color_mode: str = "rgb",
                 classes: Sequence[str] | None = None,
                 class_mode: str | None = "categorical", batch_size: int = 32,
                 shuffle: bool = True, seed: int | None = None,
                 data_format: str | None = None, save_to_dir: str | None = None,
                 save_prefix: str = "", save_format: str = "png",
                 follow_links: bool = False, subset: str | None = None,
                 interpolation: str = "nearest", keep_aspect_ratio: bool = False,
                 dtype: str | None = None, *, dct_scaling: bool = True,
                 on_error: str = "raise", prefetch: bool = True, cache: Any = None,
                 shard: Any = None, drop_remainder: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        dtype = self._setup_file_batches(image_data_generator, target_size, color_mode,
                                         data_format, save_to_dir, save_prefix, save_format,
                                         subset, interpolation, keep_aspect_ratio, dtype)
        if class_mode not in self.allowed_class_modes:
            raise ValueError(f"Invalid class_mode: {class_mode}; expected one of: "
                             f"{self.allowed_class_modes}")
        root = listing.directory_path(directory)
        self.directory = directory
        self.class_mode = class_mode
        self.dtype = dtype
        self.follow_links = follow_links

        if not classes:
            classes = listing.list_classes(root)
        classes = list(classes)
        self.num_classes = len(classes)
        self.class_indices = dict(zip(classes, range(len(classes))))
        filenames, class_ids = listing.list_directory(root, classes, follow_links,
                                                       self.split)
        self.filenames = filenames
        self.samples = len(filenames)
        self.classes = np.asarray(class_ids, dtype=np.int32)
        _print_msg(f"Found {self.samples} images belonging to {self.num_classes} classes.")
        self._filepaths = [os.path.join(root, f) for f in filenames]
        self._paths = self._filepaths

        self._setup_iterator(self.samples, batch_size, shuffle, seed, prefetch, shard,
                             drop_remainder)
        self._setup_decoding_for(dtype, dct_scaling, on_error, cache)

    def _batch_signature(self) -> Any:
        if not self._own_batches(DirectoryIterator):
            return super()._batch_signature()
        x = Leaf(self.image_shape, self._np_dtype)
        if self.class_mode is None:
            return x
        return (x, self._class_leaf(x))

    def _with_labels(self, x: np.ndarray, index_array: np.ndarray) -> Any:
        mode = self.class_mode
        if mode is None:
            return x
        if mode == "input":
            y = aligned_copy(x)
        elif mode in ("binary", "sparse"):
            y = self.classes[index_array].astype(self.dtype)
        else:
            y = np.zeros((len(x), len(self.class_indices)), dtype=self.dtype)
            y[np.arange(len(x)), self.classes[index_array]] = 1.0
        return x, y

    # -- attributes of Keras' DirectoryIterator ------------------------------

    @property
    def labels(self) -> np.ndarray:
        """Class index of every image (int32), the same array as ``classes``."""
        return self.classes

    @property
    def sample_weight(self) -> None:
        """No sample weights, as in Keras."""
        return None

    def __repr__(self) -> str:
        return (f"DirectoryIterator({self.directory!r}: {self.samples} images, "
                f"{self.num_classes} classes, batch_size={self.batch_size}, "
                f"class_mode={self.class_mode!r})")
