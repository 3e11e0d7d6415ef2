"""fastseq: GIL-free batch JPEG decoding and resizing for Keras.

The core (:func:`load_batch`, :func:`decode_batch`) imports no Keras; the
Keras classes (:class:`ImageSequence`, :class:`ImageDataGenerator`,
:class:`DirectoryIterator`) import Keras on first use.
"""

__version__ = "0.1.0"

from fastseq.core import (  # noqa: E402
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

# The Keras classes live in fastseq.keras (imported lazily below).
_KERAS_NAMES = {
    "ImageSequence": "fastseq.keras.sequence",
    "ImageDataGenerator": "fastseq.keras.image_generator",
    "DirectoryIterator": "fastseq.keras.image_generator",
}

__all__ = [
    "load_batch", "decode_batch", "decode_image", "set_num_threads",
    "get_num_threads", "info", "ImageDecodeError", "ImageDecodeWarning",
    "DecodeFailure", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_SCANS",
    "DEFAULT_MAX_FILE_BYTES", "DEFAULT_MAX_MEMORY", "DEFAULT_MAX_SCAN_PIXELS",
    "INTERPOLATIONS", "COLOR_MODES", *_KERAS_NAMES,
]


def __getattr__(name):
    # Keras (and TensorFlow) load only when a Keras class is first used.
    if name in _KERAS_NAMES:
        import importlib

        return getattr(importlib.import_module(_KERAS_NAMES[name]), name)
    raise AttributeError(f"module 'fastseq' has no attribute {name!r}")
