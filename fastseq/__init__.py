"""fastseq: GIL-free batch JPEG decoding and resizing for Keras.

The core (:func:`load_batch`, :func:`decode_batch`) imports no Keras; the
Keras classes (:class:`ImageSequence`, :class:`ImageDataGenerator`,
:class:`DirectoryIterator`, :class:`DataFrameIterator`) import Keras on first use.
"""

__version__ = "0.1.0"


def _built_extensions(pkg_dir):
    import importlib.machinery
    import os

    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    try:
        return [n for n in os.listdir(pkg_dir) if n.startswith("_native.") and n.endswith(suffixes)]
    except OSError:
        return []


def _extension_missing() -> ImportError:
    """The error for a fastseq/ folder without its compiled extension: a
    source checkout, imported because the current directory comes first on
    sys.path (``python -m``, ``python -c``, a bare ``python``)."""
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    parent = os.path.dirname(here)
    shadowed = ""
    for entry in sys.path:
        d = os.path.abspath(entry or os.curdir)
        if d != parent and _built_extensions(os.path.join(d, "fastseq")):
            shadowed = (f" It shadows the built fastseq in {d}, because {parent} "
                        "comes first on sys.path.")
            break
    return ImportError(
        f"fastseq's compiled extension is not built in {here}: you are importing "
        f"the source checkout.{shadowed} Install with `pip install .` and run from "
        "outside the checkout (or run the installed `fastseq` command, e.g. "
        "`.venv/bin/fastseq bench`), or build in place with "
        "`python setup.py build_ext --inplace`.",
        name="fastseq._native", path=here)


try:
    from fastseq import _native  # noqa: E402,F401
except ImportError:
    # A missing extension would otherwise surface as "cannot import name
    # '_native' from partially initialized module 'fastseq' (most likely due
    # to a circular import)".  An extension that exists but fails to load
    # (a missing libjpeg, a wrong Python) keeps its own, precise error.
    import os as _os

    if _built_extensions(_os.path.dirname(_os.path.abspath(__file__))):
        raise
    raise _extension_missing() from None

from fastseq.batch import (  # noqa: E402
    COLOR_MODES,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_MEMORY,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SCAN_PIXELS,
    DEFAULT_MAX_SCANS,
    INTERPOLATIONS,
    decode_batch,
    decode_image,
    info,
    load_batch,
)
from fastseq.threads import get_num_threads, set_num_threads  # noqa: E402
from fastseq.errors import DecodeFailure, ImageDecodeError, ImageDecodeWarning  # noqa: E402
from fastseq.cache import CacheFullError, CacheWarning, ImageCache  # noqa: E402

# The Keras classes live in fastseq.keras (imported lazily below).
_KERAS_NAMES = {
    "ImageSequence": "fastseq.keras.sequence",
    "ImageDataGenerator": "fastseq.keras.image_generator",
    "DirectoryIterator": "fastseq.keras.image_generator",
    "Iterator": "fastseq.keras.base",
    "NumpyArrayIterator": "fastseq.keras.array_iterator",
    "DataFrameIterator": "fastseq.keras.dataframe_iterator",
}

__all__ = [
    "load_batch", "decode_batch", "decode_image", "set_num_threads",
    "get_num_threads", "info", "ImageDecodeError", "ImageDecodeWarning",
    "DecodeFailure", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_SCANS",
    "DEFAULT_MAX_FILE_BYTES", "DEFAULT_MAX_MEMORY", "DEFAULT_MAX_SCAN_PIXELS",
    "INTERPOLATIONS", "COLOR_MODES", "ImageCache", "CacheWarning", "CacheFullError",
    *_KERAS_NAMES,
]


def __getattr__(name):
    # Keras (and TensorFlow) load only when a Keras class is first used.
    if name in _KERAS_NAMES:
        import importlib

        return getattr(importlib.import_module(_KERAS_NAMES[name]), name)
    raise AttributeError(f"module 'fastseq' has no attribute {name!r}")
