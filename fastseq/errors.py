"""Exceptions and warnings raised by fastseq."""

from __future__ import annotations

__all__ = ["ImageDecodeError", "ImageDecodeWarning", "DecodeFailure"]

import os
import sys
import threading
import warnings
from typing import Any, Callable, NamedTuple

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_deferral = threading.local()


def outside_stacklevel() -> int:
    """``warnings.warn``'s stacklevel, for a call in the function that calls
    this, that names the first caller outside the fastseq package: the
    user's line, whichever of fastseq's entry points led there."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def collect_warnings(fn: Callable[..., Any], args: tuple) -> tuple[Any, list]:
    """``fn(*args)`` and the warnings it deferred (:func:`defer_warning`) on
    this thread, as ``(message, category)`` pairs: how a prefetch job
    (fastseq.keras.prefetch) keeps its warnings for the thread that is
    served its batch, so they never come for a batch that is not."""
    _deferral.pending = []
    try:
        return fn(*args), _deferral.pending
    finally:
        _deferral.pending = None


def defer_warnings_here() -> bool:
    """Whether the calling thread runs in :func:`collect_warnings`."""
    return getattr(_deferral, "pending", None) is not None


def defer_warning(message: str, category: type[Warning]) -> None:
    """Keep a warning for :func:`collect_warnings`' caller (call only where
    :func:`defer_warnings_here`)."""
    _deferral.pending.append((message, category))


def warn_or_defer(message: str, category: type[Warning]) -> None:
    """A warning deferred when :func:`defer_warnings_here`, else issued now,
    attributed to the first caller outside fastseq."""
    if defer_warnings_here():
        defer_warning(message, category)
    else:
        warnings.warn(message, category, stacklevel=outside_stacklevel())


class ImageDecodeError(ValueError):
    """An image could not be read or decoded.

    Attributes
    ----------
    source : str
        The file path, or ``"<buffer N>"`` for in-memory input.
    reason : str
        What the decoder said, e.g. ``"image file is truncated (Premature end
        of JPEG file)"``.
    code : str
        A stable category:

        - ``"io"``: the file cannot be opened or read (the OS's reason);
        - ``"not_regular_file"``: a directory, FIFO, socket, device, or a
          pseudo-file such as ``/proc/self/status``;
        - ``"empty"``: zero bytes;
        - ``"too_large"``: over ``max_file_bytes``, or sizes that overflow;
        - ``"not_image"``: neither JPEG nor a format Pillow identifies;
        - ``"decode"``: the decoder rejected the data (the reason says why);
        - ``"truncated"``: the data ends before the image does;
        - ``"too_many_pixels"``: over ``max_pixels``;
        - ``"too_many_scans"``: over ``max_scans``;
        - ``"work_limit"``: progressive scans over ``max_scan_pixels``;
        - ``"memory_limit"``: the decode would need over ``max_memory``;
        - ``"memory"``: an allocation failed;
        - ``"internal"``: a bug in fastseq (please report it).
    index : int or None
        Position of the image in its batch, when decoded in a batch.
    failures : list of DecodeFailure
        Every failed image of the batch (the first one is this error).
    """

    def __init__(self, source: str, reason: str, code: str = "decode",
                 index: int | None = None, failures=None):
        self.source = source
        self.reason = reason
        self.code = code
        self.index = index
        self.failures = list(failures) if failures else []
        msg = f"cannot decode image {source!r}: {reason}"
        if len(self.failures) > 1:
            msg += f" (and {len(self.failures) - 1} more failed image(s) in this batch)"
        super().__init__(msg)

    def __reduce__(self):   # picklable across Keras' worker processes
        return (type(self), (self.source, self.reason, self.code, self.index,
                             self.failures))


class ImageDecodeWarning(UserWarning):
    """Issued for each image that failed with ``on_error="warn"``."""


class DecodeFailure(NamedTuple):
    """One image that could not be decoded (its batch slot is zero-filled)."""

    index: int
    source: str
    code: str
    reason: str
