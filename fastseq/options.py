"""The options of a batch, validated once: :class:`DecodeOptions`.

load_batch and decode_batch build one per call from their keyword
arguments, the Keras iterators one in their constructor, and every batch
then runs on it: its C form (``_native.BatchOptions``, an fs_batch_opts) is
built here, once, and nothing is re-validated per batch.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np

from fastseq import _native

__all__ = [
    "DecodeOptions", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_SCANS",
    "DEFAULT_MAX_FILE_BYTES", "DEFAULT_MAX_MEMORY", "DEFAULT_MAX_SCAN_PIXELS",
    "INTERPOLATIONS", "COLOR_MODES",
]

#: Pillow's decompression-bomb *error* threshold (2 * Image.MAX_IMAGE_PIXELS).
DEFAULT_MAX_PIXELS = 178_956_970
#: libjpeg-turbo's own default limit on progressive scans (TurboJPEG API).
DEFAULT_MAX_SCANS = 500
#: 2 GiB.  No image within DEFAULT_MAX_PIXELS needs more: the largest
#: layouts are uncompressed 16-bit RGBA (8 bytes a pixel: 1.43 GB at the
#: pixel limit) and JPEGs of pure noise at quality 100 (measured: 4.1 bytes a
#: pixel for 4:4:4 RGB, 6.3 for CMYK: 1.13 GB); photos are 0.2-2 bytes a pixel.
DEFAULT_MAX_FILE_BYTES = 2 << 30
#: 2.5 GiB per image being decoded.  The most a JPEG within DEFAULT_MAX_PIXELS
#: needs is a progressive 4-component 4:4:4 one: libjpeg's coefficient buffer
#: (64 coefficients of 2 bytes per 8x8 block of each component: 8 bytes a
#: pixel) plus fastseq's 4-byte pixels, 12 * 178,956,970 = 2.15 GB.
DEFAULT_MAX_MEMORY = 5 << 29
#: 16 full passes over an image at DEFAULT_MAX_PIXELS, counted in component
#: samples summed over scans (a 3-component 4:4:4 scan of a W x H image
#: counts 3*W*H).  libjpeg's standard progressive script codes each Y sample
#: in 6 scans and each chroma sample in 4: 14 * W*H for 4:4:4, 8 * W*H for
#: 4:2:0, below this at the pixel limit.  Its script for other colour spaces
#: (6 scans per component) reaches it for a 4-component progressive file
#: above 2/3 of the pixel limit.  README "Limits" gives the measured worst
#: case it allows.
DEFAULT_MAX_SCAN_PIXELS = 16 * DEFAULT_MAX_PIXELS

INTERPOLATIONS = {"nearest": 0, "box": 1, "bilinear": 2, "hamming": 3,
                  "bicubic": 4, "lanczos": 5}
COLOR_MODES = {"grayscale": (_native.MODE_L, 1, "L"),
               "rgb": (_native.MODE_RGB, 3, "RGB"),
               "rgba": (_native.MODE_RGBA, 4, "RGBA")}
_ON_ERROR = ("raise", "warn", "ignore")
_MAX_SIDE = 1 << 16

#: load_batch's defaults of the options other than target_size.
DEFAULTS = MappingProxyType(dict(
    color_mode="rgb", interpolation="bilinear", dtype="uint8", rescale=None,
    offset=0.0, featurewise=None, wide_gray=False, dct_scaling=True, keep_aspect_ratio=False, on_error="raise",
    max_pixels=DEFAULT_MAX_PIXELS, max_scans=DEFAULT_MAX_SCANS,
    allow_truncated=False, max_file_bytes=DEFAULT_MAX_FILE_BYTES,
    max_memory=DEFAULT_MAX_MEMORY, max_scan_pixels=DEFAULT_MAX_SCAN_PIXELS))


class DecodeOptions:
    """The validated, immutable options of load_batch / decode_batch.

    Built from load_batch's keyword arguments (target_size is required; the
    others default as in load_batch), with load_batch's error messages.
    Attributes: ``height``, ``width``, ``mode``/``channels``/``pil_mode`` of
    the colour mode, ``dtype`` (a numpy dtype), ``scale``, ``offset``,
    ``featurewise``, ``filter``, ``dct_scaling``, ``keep_aspect_ratio``, ``on_error``,
    ``limits`` (a read-only mapping of the limits, None given as 0) and
    ``c``, the ``_native.BatchOptions`` every batch hands to the C core.
    Pickles as its arguments (rebuilt, and re-validated, on unpickling).

    ``featurewise`` (not a load_batch argument: the Keras iterators set it)
    is None or ``(mean, divisor)``, one float32 value per channel each:
    every float32 output value t (after ``v * scale + offset``) becomes
    ``(t - mean[c]) / divisor[c]`` in float32, Keras' featurewise
    ``x -= mean; x /= std + 1e-6`` bit for bit when ``divisor`` is numpy's
    float32 ``std + 1e-6`` (csrc/resample.h, fs_chan_norm).

    ``wide_gray`` (not a load_batch argument either) is Keras' grayscale
    rule, for ``color_mode="grayscale"`` and float32 only: an image Pillow
    opens as "I;16" or "I" (16-bit grayscale PNG, 32-bit TIFF...) keeps its
    values, as ``keras.utils.load_img`` + ``img_to_array`` keep them,
    instead of Pillow's ``convert("L")`` (which clips at 255).  Such images
    are decoded and resized by Pillow in their own mode (exactly Keras'
    ``img.resize``), then go through the C write (augmentation, rescale,
    statistics) as float32 pixels.
    """

    __slots__ = ("_args", "height", "width", "mode", "channels", "pil_mode",
                 "dtype", "scale", "offset", "featurewise", "wide_gray", "filter",
                 "interpolation", "dct_scaling",
                 "keep_aspect_ratio", "on_error", "limits", "c")

    def __init__(self, target_size, **kwargs: Any) -> None:
        unknown = set(kwargs) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        args = {"target_size": target_size, **DEFAULTS, **kwargs}
        set_ = super().__setattr__
        set_("_args", MappingProxyType(args))
        height, width = _check_target_size(target_size)
        color_mode = args["color_mode"]
        if color_mode not in COLOR_MODES:
            raise ValueError(f"color_mode must be one of {sorted(COLOR_MODES)}, "
                             f"got {color_mode!r}")
        mode, channels, pil_mode = COLOR_MODES[color_mode]
        interpolation = args["interpolation"]
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {list(INTERPOLATIONS)}, "
                             f"got {interpolation!r}")
        dtype, rescale, offset = args["dtype"], args["rescale"], args["offset"]
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be 'uint8' or 'float32', got {dtype!r}") from None
        if dt == np.uint8:
            if rescale is not None or offset:
                raise ValueError("rescale/offset need dtype='float32' "
                                 "(a uint8 batch holds raw pixel values)")
            dtype_id, scale, off = _native.DTYPE_U8, 1.0, 0.0
        elif dt == np.float32:
            dtype_id = _native.DTYPE_F32
            scale, off = _check_rescale(rescale, offset)
        else:
            raise TypeError(f"dtype must be 'uint8' or 'float32', got {dt}")
        featurewise = _check_featurewise(args["featurewise"], channels, dt)
        args["featurewise"] = featurewise     # hashable, comparable (the proxy's dict)
        wide_gray = bool(args["wide_gray"])
        if wide_gray and (color_mode != "grayscale" or dt != np.float32):
            raise ValueError("wide_gray needs color_mode='grayscale' and dtype='float32'")
        on_error = args["on_error"]
        if on_error not in _ON_ERROR:
            raise ValueError(f"on_error must be one of {_ON_ERROR}, got {on_error!r}")
        limits = check_limits(args["max_pixels"], args["max_scans"], args["allow_truncated"],
                              args["max_file_bytes"], args["max_memory"],
                              args["max_scan_pixels"])
        for name, value in (("height", height), ("width", width), ("mode", mode),
                            ("channels", channels), ("pil_mode", pil_mode), ("dtype", dt),
                            ("scale", scale), ("offset", off), ("featurewise", featurewise),
                            ("wide_gray", wide_gray), ("interpolation", interpolation),
                            ("filter", INTERPOLATIONS[interpolation]),
                            ("dct_scaling", bool(args["dct_scaling"])),
                            ("keep_aspect_ratio", bool(args["keep_aspect_ratio"])),
                            ("on_error", on_error), ("limits", MappingProxyType(limits))):
            set_(name, value)
        set_("c", _native.BatchOptions(width, height, mode, dtype_id, scale=scale, offset=off,
                                     norm=featurewise, wide_gray=wide_gray,
                                     filter=self.filter, dct_scaling=self.dct_scaling,
                                     keep_aspect_ratio=self.keep_aspect_ratio, **limits))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"DecodeOptions is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"DecodeOptions is immutable (cannot delete {name!r})")

    def shape(self, n: int) -> tuple[int, int, int, int]:
        """The shape of a batch of `n` images."""
        return (n, self.height, self.width, self.channels)

    def __reduce__(self):
        args = dict(self._args)
        return (_rebuild, (args,))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DecodeOptions):
            return NotImplemented
        return dict(self._args) == dict(other._args)

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self._args.items())))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._args.items()
                          if k == "target_size" or DEFAULTS[k] is not v and DEFAULTS[k] != v)
        return f"DecodeOptions({shown})"


def _rebuild(args):
    return DecodeOptions(**args)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_featurewise(featurewise, channels, dt):
    """DecodeOptions' ``featurewise``: None, or ``(mean, divisor)`` as two
    tuples of `channels` float32 values (Python floats), or raise."""
    if featurewise is None:
        return None
    if dt != np.float32:
        raise ValueError("featurewise needs dtype='float32'")
    try:
        mean, div = featurewise
        mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        div = np.asarray(div, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError("featurewise must be (mean, divisor), each one number per channel, "
                        f"got {featurewise!r}") from None
    if mean.shape != (channels,) or div.shape != (channels,):
        raise ValueError(f"featurewise needs {channels} mean and {channels} divisor values, "
                         f"got {mean.size} and {div.size}")
    return tuple(float(v) for v in mean), tuple(float(v) for v in div)


def _check_rescale(rescale, offset):
    """(scale, offset) as floats such that every output value
    ``v * scale + offset`` (0 <= v <= 255) is a finite float32, or raise."""
    try:
        scale = 1.0 if rescale is None else float(rescale)
        off = float(offset)
    except (TypeError, ValueError):
        raise TypeError(f"rescale and offset must be real numbers, got {rescale!r} "
                        f"and {offset!r}") from None
    if not (np.isfinite(scale) and np.isfinite(off)
            and abs(scale) * 255 + abs(off) <= _FLOAT32_MAX):
        raise ValueError("rescale and offset must be finite numbers with "
                         f"255 * |rescale| + |offset| <= {_FLOAT32_MAX:.7g} (the float32 "
                         f"range), got rescale={rescale!r}, offset={offset!r}")
    return scale, off


# (name, largest accepted value): the C types the limits travel as.
_LIMIT_RANGES = (("max_pixels", 2**64 - 1), ("max_scans", 2**31 - 1),
                 ("max_file_bytes", 2**63 - 1), ("max_memory", 2**64 - 1),
                 ("max_scan_pixels", 2**64 - 1))


def check_limits(max_pixels, max_scans, allow_truncated, max_file_bytes,
                 max_memory, max_scan_pixels):
    """The one validator of the resource limits (load_batch, decode_batch,
    decode_image): a dict of _native.BatchOptions keyword arguments, with
    None (no limit) as 0."""
    given = locals()
    out = {"allow_truncated": bool(allow_truncated)}
    for name, hi in _LIMIT_RANGES:
        v = given[name]
        if v is None:
            v = 0
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= hi:
            raise ValueError(f"{name} must be None (no limit) or an int between 0 "
                             f"and {hi}, got {given[name]!r}")
        out[name] = int(v)
    return out


def _check_target_size(target_size):
    try:
        h, w = target_size
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                 for v in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok or not (0 < h <= _MAX_SIDE and 0 < w <= _MAX_SIDE):
        raise ValueError("target_size must be a (height, width) pair of ints "
                         f"between 1 and {_MAX_SIDE}, got {target_size!r}")
    return int(h), int(w)
