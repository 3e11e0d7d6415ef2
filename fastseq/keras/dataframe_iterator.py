"""``fastseq.DataFrameIterator``: Keras' legacy ``flow_from_dataframe`` on
fastseq's C core.

The rows of a pandas DataFrame name the image files (``x_col``) and their
targets (``y_col``, ``weight_col``); the selection of rows, the classes, the
labels and the printed messages are Keras' (see
``keras.src.legacy.preprocessing.image.DataFrameIterator``).  The images of
a batch are decoded, resized and augmented exactly as
:class:`fastseq.DirectoryIterator` does it: the same methods compute a batch
(see :class:`DataFrameIterator`), so a generator's standardisation applies
to both.

pandas is imported only by :func:`require_pandas`, i.e. when a dataframe
iterator is built; ``pip install fastseq[dataframe]`` installs it.
"""

from __future__ import annotations

import collections
import os
import warnings
from typing import Any, Sequence

import numpy as np

from fastseq.keras import listing
from fastseq.keras.base import ImageFiles, Iterator, Leaf, aligned_copy
from fastseq.keras.image_generator import FileBatches, ImageDataGenerator, _print_msg

__all__ = ["DataFrameIterator", "require_pandas"]

# class modes whose targets are columns of the frame rather than classes
_NO_CLASSES = ("input", "multi_output", "raw", None)


def require_pandas() -> Any:
    """The ``pandas`` module, or an ImportError that says how to install it."""
    try:
        import pandas
    except ImportError as e:
        raise ImportError(
            "flow_from_dataframe / fastseq.DataFrameIterator needs the 'pandas' package, "
            "which is not installed: pip install 'fastseq[dataframe]' (or pip install "
            "pandas)", name="pandas") from e
    return pandas


class DataFrameIterator(FileBatches, ImageFiles, Iterator):
    """A ``keras.utils.PyDataset`` over the image files named in a pandas
    DataFrame, with the semantics of Keras' legacy ``DataFrameIterator``:

    - paths: ``os.path.join(directory, row[x_col])``; ``directory=None``
      takes the column's paths as given (absolute, or relative to the
      current directory);
    - ``validate_filenames=True`` drops the rows whose lower-cased path
      does not end with png, jpg, jpeg, bmp, ppm, tif or tiff or that are
      not an existing file, with Keras' ``UserWarning``;
    - classes: sorted unique labels of ``y_col`` (each element of list or
      tuple labels), or `classes` in the given order (rows with none of
      them are dropped);
    - ``subset`` takes the first ``int(validation_split * n)`` remaining
      rows for ``"validation"``, the rest for ``"training"``;
    - targets per ``class_mode``: ``"categorical"`` one-hot (multi-hot for
      list labels) ``(batch, num_classes)``; ``"binary"``/``"sparse"``
      ``(batch,)``; ``"raw"`` the values of ``y_col`` (one column or
      several); ``"multi_output"`` a list with one array per column of
      ``y_col``; ``"input"`` a copy of ``x``; None ``x`` alone;
    - ``weight_col``: batches ``(x, y, w)``.

    Attributes: ``filenames`` (``x_col`` of the kept rows), ``filepaths``,
    ``classes`` (a list of class indexes, lists for multi-label rows),
    ``labels``, ``class_indices`` (class modes with classes),
    ``sample_weight``, ``samples``, ``n``, ``image_shape``,
    ``index_array``.

    The images, their augmentation and standardisation, ``save_to_dir``,
    ``dct_scaling``, ``on_error``, ``prefetch``, ``shard``,
    ``drop_remainder`` and ``to_tf_dataset`` behave as in
    :class:`fastseq.DirectoryIterator`.
    """

    allowed_class_modes = {"binary", "categorical", "input", "multi_output", "raw",
                           "sparse", None}
    white_list_formats = listing.WHITE_LIST_FORMATS


    def __init__(self, dataframe: Any, directory: str | os.PathLike | None = None,
                 image_data_generator: ImageDataGenerator | None = None,
                 x_col: str = "filename", y_col: Any = "class",
                 weight_col: str | None = None,
                 target_size: tuple[int, int] = (256, 256), color_mode: str = "rgb",
                 classes: Sequence[str] | None = None,
                 class_mode: str | None = "categorical", batch_size: int = 32,
                 shuffle: bool = True, seed: int | None = None,
                 data_format: str | None = None, save_to_dir: str | None = None,
                 save_prefix: str = "", save_format: str = "png",
                 subset: str | None = None, interpolation: str = "nearest",
                 keep_aspect_ratio: bool = False, dtype: str | None = None,
                 validate_filenames: bool = True, *, dct_scaling: bool = True,
                 on_error: str = "raise", prefetch: bool = True, cache: Any = None,
                 shard: Any = None, drop_remainder: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        pd = require_pandas()
        if not isinstance(dataframe, pd.DataFrame):
            raise TypeError("dataframe must be a pandas.DataFrame, got "
                            f"{type(dataframe).__name__}")
        dtype = self._setup_file_batches(image_data_generator, target_size, color_mode,
                                         data_format, save_to_dir, save_prefix, save_format,
                                         subset, interpolation, keep_aspect_ratio, dtype)
        split = self.split

        df = dataframe.copy()
        self.directory = "" if directory is None else directory
        root = listing.directory_path(self.directory)
        self.class_mode = class_mode
        self.dtype = dtype
        self._check_params(df, x_col, y_col, weight_col, classes)
        if validate_filenames:
            df = self._filter_valid_filepaths(df, x_col, root)
        if class_mode not in _NO_CLASSES:
            df, classes = self._filter_classes(df, y_col, classes)
            num_classes = len(classes)
            self.class_indices = dict(zip(classes, range(len(classes))))
        if split:
            n = len(df)
            df = df.iloc[int(split[0] * n):int(split[1] * n), :]
        if class_mode not in _NO_CLASSES:
            self.classes = self.get_classes(df, y_col)
        self.filenames = df[x_col].tolist()
        self._sample_weight = df[weight_col].values if weight_col else None
        if class_mode == "multi_output":
            self._targets = [np.array(df[col].tolist()) for col in y_col]
        if class_mode == "raw":
            self._targets = df[y_col].values
        self.samples = len(self.filenames)
        validated = "validated" if validate_filenames else "non-validated"
        if class_mode in _NO_CLASSES:
            _print_msg(f"Found {self.samples} {validated} image filenames.")
        else:
            _print_msg(f"Found {self.samples} {validated} image filenames "
                       f"belonging to {num_classes} classes.")
        self._filepaths = [os.path.join(root, f) for f in self.filenames]
        self._paths = self._filepaths
        if class_mode not in _NO_CLASSES:
            self._class_matrix = self._encode_classes()

        self._setup_iterator(self.samples, batch_size, shuffle, seed, prefetch, shard,
                             drop_remainder)
        self._setup_decoding_for(dtype, dct_scaling, on_error, cache)

    # -- Keras' row selection ------------------------------------------------

    def _check_params(self, df: Any, x_col: str, y_col: Any, weight_col: str | None,
                      classes: Sequence[str] | None) -> None:
        """Keras' checks of the columns against `class_mode`, with its
        messages."""
        mode = self.class_mode
        if mode not in self.allowed_class_modes:
            raise ValueError(f"Invalid class_mode: {mode}; expected one of: "
                             f"{self.allowed_class_modes}")
        if mode == "multi_output" and not isinstance(y_col, list):
            raise TypeError(f'If class_mode="{mode}", y_col must be a list. '
                            f"Received {type(y_col).__name__}.")
        if not all(isinstance(x, str) for x in df[x_col]):
            raise TypeError(f"All values in column x_col={x_col} must be strings.")
        if mode in ("binary", "sparse"):
            if not all(isinstance(y, str) for y in df[y_col]):
                raise TypeError(f'If class_mode="{mode}", y_col="{y_col}" column '
                                "values must be strings.")
        if mode == "binary":
            if classes:
                if len(set(classes)) != 2:
                    raise ValueError('If class_mode="binary" there must be 2 classes. '
                                     f"{len(set(classes))} class/es were given.")
            elif df[y_col].nunique() != 2:
                raise ValueError('If class_mode="binary" there must be 2 classes. '
                                 f"Found {df[y_col].nunique()} classes.")
        if mode == "categorical":
            if not all(isinstance(y, (str, list, tuple)) for y in df[y_col]):
                raise TypeError(f'If class_mode="{mode}", y_col="{y_col}" column '
                                "values must be type string, list or tuple.")
        if classes and mode in _NO_CLASSES:
            warnings.warn(f'`classes` will be ignored given the class_mode="{mode}"',
                          stacklevel=4)
        if weight_col and not issubclass(df[weight_col].dtype.type, np.number):
            raise TypeError(f"Column weight_col={weight_col} must be numeric.")

    def _filter_valid_filepaths(self, df: Any, x_col: str, root: str) -> Any:
        """The rows whose path (under `root`, the resolved ``directory``)
        has an image extension and is an existing file, with Keras' warning
        for the others."""
        suffixes = tuple(self.white_list_formats)
        mask = np.array([os.path.join(root, f).lower().endswith(suffixes)
                         and os.path.isfile(os.path.join(root, f)) for f in df[x_col]],
                        dtype=bool)
        n_invalid = int((~mask).sum())
        if n_invalid:
            warnings.warn(f'Found {n_invalid} invalid image filename(s) in x_col="{x_col}". '
                          "These filename(s) will be ignored.", stacklevel=4)
        return df[mask]

    @staticmethod
    def _filter_classes(df: Any, y_col: str, classes: Sequence[str] | None
                        ) -> tuple[Any, list]:
        """The rows that have at least one of `classes` (list labels keep
        only those), and the classes: `classes` without repeats, else the
        sorted labels found."""
        df = df.copy()

        def keep(labels: Any, wanted: Any) -> Any:
            if isinstance(labels, (list, tuple)):
                return [c for c in labels if c in wanted] or None
            if isinstance(labels, str):
                return labels if labels in wanted else None
            raise TypeError(f"Expect string, list or tuple but found {type(labels)} in "
                            f"{y_col} column ")

        if classes:
            classes = list(collections.OrderedDict.fromkeys(classes).keys())
            wanted = set(classes)
            df[y_col] = df[y_col].apply(lambda y: keep(y, wanted))
        else:
            found: set = set()
            for y in df[y_col]:
                if isinstance(y, (list, tuple)):
                    found.update(y)
                else:
                    found.add(y)
            classes = sorted(found)
        return df.dropna(subset=[y_col]), classes

    def get_classes(self, df: Any, y_col: str) -> list:
        """Class index of every row (a list of them for list labels)."""
        ci = self.class_indices
        return [[ci[c] for c in y] if isinstance(y, (list, tuple)) else ci[y]
                for y in df[y_col]]

    def _encode_classes(self) -> np.ndarray | None:
        """The class indexes as an int array for single labels, or a
        ``(samples, num_classes)`` multi-hot matrix of the target dtype when
        any row has a list of labels."""
        if not any(isinstance(c, list) for c in self.classes):
            return np.asarray(self.classes, dtype=np.int64).reshape(-1)
        hot = np.zeros((self.samples, len(self.class_indices)), dtype=self.dtype)
        for i, c in enumerate(self.classes):
            hot[i, c] = 1
        return hot

    # -- targets --------------------------------------------------------------

    def _batch_signature(self) -> Any:
        if not self._own_batches(DataFrameIterator):
            return super()._batch_signature()
        x = Leaf(self.image_shape, self._np_dtype)
        mode = self.class_mode
        if mode is None:
            return x
        y = self._class_leaf(x)
        if mode == "multi_output":
            y = tuple(Leaf(t.shape[1:], t.dtype) for t in self._targets)
        elif y is None:                 # raw
            y = Leaf(self._targets.shape[1:], self._targets.dtype)
        if self._sample_weight is None:
            return (x, y)
        return (x, y, Leaf((), self._sample_weight.dtype))

    def _with_labels(self, x: np.ndarray, index_array: np.ndarray) -> Any:
        mode = self.class_mode
        if mode is None:
            return x
        if mode == "input":
            y = aligned_copy(x)
        elif mode in ("binary", "sparse"):
            y = self._class_matrix[index_array].astype(self.dtype)
        elif mode == "categorical":
            codes = self._class_matrix
            if codes.ndim == 2:         # multi-label rows: multi-hot
                y = codes[index_array]
            else:
                y = np.zeros((len(x), len(self.class_indices)), dtype=self.dtype)
                y[np.arange(len(x)), codes[index_array]] = 1
        elif mode == "multi_output":
            y = [t[index_array] for t in self._targets]
        else:                           # raw
            y = self._targets[index_array]
        if self._sample_weight is None:
            return x, y
        return x, y, self._sample_weight[index_array]

    # -- attributes of Keras' DataFrameIterator ------------------------------

    @property
    def labels(self) -> Any:
        """The targets of ``"raw"``/``"multi_output"``, else ``classes``."""
        if self.class_mode in ("multi_output", "raw"):
            return self._targets
        return self.classes

    @property
    def sample_weight(self) -> np.ndarray | None:
        """The ``weight_col`` values of the kept rows, or None."""
        return self._sample_weight

    def __repr__(self) -> str:
        return (f"DataFrameIterator({self.samples} images, batch_size={self.batch_size}, "
                f"class_mode={self.class_mode!r})")
