"""Keras' legacy random augmentation, computed by fastseq's C kernel.

The functions here reproduce ``ImageDataGenerator.get_random_transform`` and
``ImageDataGenerator.apply_transform`` of Keras' legacy preprocessing module
(``keras/src/legacy/preprocessing/image.py``) on numpy arrays, without scipy:
the pixel work is ``fastseq._native.warp_affine`` (csrc/warp.c), which repeats
scipy.ndimage.affine_transform's double-precision arithmetic, so results equal
Keras' (tests/test_warp.py measures it).

Known differences from Keras (every other value and message is Keras'):

- ``get_random_transform`` follows Keras' documentation for the shifts:
  ``width_shift_range`` moves the image horizontally (``tx``, scaled by the
  width) and ``height_shift_range`` vertically (``ty``, scaled by the height).
  Keras draws ``tx`` from ``height_shift_range`` and ``ty`` from
  ``width_shift_range``; for the same seed the two dicts are equal with that
  one swap undone.  It never reseeds numpy's global generator: an int seed
  draws from ``np.random.RandomState(seed)`` (the stream Keras' reseeding
  produces), ``rng`` takes any numpy Generator or RandomState, and neither
  means a generator seeded from the OS.
- ``interpolation_order`` is 0 or 1 (scipy would take up to 5); ``fill_mode``
  is one of ``FILL_MODES`` (scipy's other modes are not Keras' documented
  ones).  Other values raise ValueError instead of failing inside scipy.
- Images have 1, 3 or 4 channels and are uint8 or floating point.  The
  kernel reads uint8 or float32 and writes uint8 or float32: a float64 image
  is computed from its float32 copy, and where Keras' result is float64 (a
  float64 image, or a uint8 image given a channel shift and no brightness)
  it is fastseq's float32 result widened (relative difference ~1e-7; 7.6e-6
  at most on the 0-255 scale in tests/test_warp.py).
  Non-finite parameters or cval, and transforms sending pixels beyond 2**52,
  raise ValueError.
- With ``data_format="channels_first"`` the brightness step works on the
  image; Keras hands the (channels, rows, cols) array to ``array_to_img``
  without its data format, which fails or scrambles the channels.
- The result is always a new array (Keras returns ``x`` itself when no
  parameter changes it).
"""
import sys
from collections import namedtuple

import numpy as np

from fastseq import _native

__all__ = ["FILL_MODES", "INTERPOLATION_ORDERS", "affine_matrix", "affine_matrices", "transform_plan",
           "apply_transform", "get_random_transform", "random_transform"]

FILL_MODES = ("constant", "nearest", "reflect", "wrap")
INTERPOLATION_ORDERS = (0, 1)

# Beyond this the C kernel's reflect / wrap folding (like scipy's) cannot
# represent coordinates exactly; see FS_WARP_COORD_MAX in csrc/warp.c.
_COORD_MAX = 2.0 ** 52


def check_data_format(data_format):
    """Keras' default and check of `data_format`; returns it."""
    if data_format is None:
        keras = sys.modules.get("keras")
        data_format = keras.config.image_data_format() if keras else "channels_last"
    if data_format not in {"channels_last", "channels_first"}:
        raise ValueError(
            '`data_format` should be `"channels_last"` '
            "(channel after row and column) or "
            '`"channels_first"` (channel before row and column). '
            f"Received: {data_format}")
    return data_format


def check_fill_mode(fill_mode):
    if fill_mode not in FILL_MODES:
        raise ValueError(
            f"`fill_mode` should be one of {', '.join(repr(m) for m in FILL_MODES)}. "
            f"Received: {fill_mode!r}")
    return fill_mode


def check_interpolation_order(order):
    # bool is an int; True/False are not orders.
    if isinstance(order, bool) or order not in INTERPOLATION_ORDERS:
        raise ValueError(
            "`interpolation_order` should be 0 (nearest) or 1 (bilinear); "
            f"fastseq does not compute other spline orders. Received: {order!r}")
    return int(order)


def normalize_zoom_range(zoom_range):
    """Keras' zoom_range handling: a number z means [1 - z, 1 + z]."""
    if isinstance(zoom_range, (float, int)):
        return [1 - zoom_range, 1 + zoom_range]
    if (isinstance(zoom_range, (tuple, list, np.ndarray)) and len(zoom_range) == 2
            and all(isinstance(v, (float, int, np.floating, np.integer)) for v in zoom_range)):
        return [zoom_range[0], zoom_range[1]]
    raise ValueError(
        "`zoom_range` should be a float or "
        "a tuple or list of two floats. "
        f"Received: {zoom_range}")


def check_brightness_range(brightness_range):
    if brightness_range is not None and (
            not isinstance(brightness_range, (tuple, list)) or len(brightness_range) != 2):
        raise ValueError(
            "`brightness_range should be tuple or list of two floats. "
            f"Received: {brightness_range}")
    return brightness_range


def affine_matrix(theta=0, tx=0, ty=0, shear=0, zx=1, zy=1, *, rows, cols):
    """The (2, 3) matrix scipy.ndimage.affine_transform receives from Keras'
    ``apply_affine_transform`` for these parameters on a rows x cols image:
    output (row, col) -> source (row, col) = M[:, :2] @ (row, col) + M[:, 2];
    None when every parameter is at its identity value (Keras then calls no
    scipy).  The same numpy operations in the same order as Keras, so the
    doubles are the same.  theta and shear are in degrees; tx moves the image
    horizontally, ty vertically (by -tx, -ty pixels: these map output to
    source)."""
    m = None
    if theta != 0:
        theta = np.deg2rad(theta)
        m = np.array([[np.cos(theta), -np.sin(theta), 0],
                      [np.sin(theta), np.cos(theta), 0],
                      [0, 0, 1]])
    if tx != 0 or ty != 0:
        shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
        m = shift if m is None else np.dot(m, shift)
    if shear != 0:
        shear = np.deg2rad(shear)
        sh = np.array([[1, -np.sin(shear), 0], [0, np.cos(shear), 0], [0, 0, 1]])
        m = sh if m is None else np.dot(m, sh)
    if zx != 1 or zy != 1:
        zoom = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
        m = zoom if m is None else np.dot(m, zoom)
    if m is None:
        return None
    # transform_matrix_offset_center(m, rows, cols): Keras builds the matrix
    # in (x, y) order with x centred on the rows, then swaps both axes to
    # numpy's (row, col) order (its M' = P M P).
    o_x = float(rows) / 2 - 0.5
    o_y = float(cols) / 2 - 0.5
    offset = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    reset = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    m = np.dot(np.dot(offset, m), reset)
    m[:, [0, 1]] = m[:, [1, 0]]
    m[[0, 1]] = m[[1, 0]]
    return np.ascontiguousarray(m[:2], dtype=np.float64)


def affine_matrices(theta, tx, ty, shear, zx, zy, *, rows, cols):
    """affine_matrix for arrays of n parameters at once: ``(m, warp)``,
    m of shape (n, 2, 3) and warp the images whose matrix is not None (their
    rows of m; the others hold the identity).  Bit-identical to
    affine_matrix image by image: the images are grouped by which factors
    Keras multiplies (it skips identity ones), each factor is built by the
    same elementwise numpy functions, and each product is numpy's matmul
    of the stacked 3 x 3 matrices, which runs the same BLAS product per
    matrix as np.dot (tests/test_augment_batch.py compares them over many
    draws).  About 30 times cheaper than the per-image calls, which cost
    more than the C warp of a 32 x 32 image."""
    theta, tx, ty, shear, zx, zy = (np.asarray(v, dtype=np.float64).reshape(-1)
                                    for v in (theta, tx, ty, shear, zx, zy))
    n = len(theta)
    out = np.zeros((n, 2, 3))
    out[:, 0, 0] = out[:, 1, 1] = 1.0
    flags = np.stack([theta != 0, (tx != 0) | (ty != 0), shear != 0, (zx != 1) | (zy != 1)],
                     axis=1)
    warp = flags.any(axis=1)
    o_x = float(rows) / 2 - 0.5
    o_y = float(cols) / 2 - 0.5
    offset = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    reset = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    code = flags @ np.array([1, 2, 4, 8])
    for c in np.unique(code[warp]):
        idx = np.flatnonzero(code == c)
        k = len(idx)

        def stack(entries):
            # a (k, 3, 3) array of [[a, b, c], [d, e, f], [0, 0, 1]] rows
            mats = np.zeros((k, 3, 3))
            for (i, j), v in entries.items():
                mats[:, i, j] = v
            mats[:, 2, 2] = 1.0
            return mats

        m = None
        if c & 1:
            t = np.deg2rad(theta[idx])
            m = stack({(0, 0): np.cos(t), (0, 1): -np.sin(t),
                       (1, 0): np.sin(t), (1, 1): np.cos(t)})
        if c & 2:
            sh = stack({(0, 0): 1.0, (1, 1): 1.0, (0, 2): tx[idx], (1, 2): ty[idx]})
            m = sh if m is None else np.matmul(m, sh)
        if c & 4:
            s_ = np.deg2rad(shear[idx])
            sm = stack({(0, 0): 1.0, (0, 1): -np.sin(s_), (1, 1): np.cos(s_)})
            m = sm if m is None else np.matmul(m, sm)
        if c & 8:
            zm = stack({(0, 0): zx[idx], (1, 1): zy[idx]})
            m = zm if m is None else np.matmul(m, zm)
        m = np.matmul(np.matmul(offset, m), reset)
        m[:, :, [0, 1]] = m[:, :, [1, 0]]
        m[:, [0, 1]] = m[:, [1, 0]]
        out[idx] = m[:, :2]
    return out, warp


# What the C kernel needs for one image's geometry: the scipy matrix (None:
# no resampling) and Keras' flips, which the kernel applies as index maps
# (bit-identical to np.flip after the warp; folding them into the matrix
# would round the coordinates differently).
TransformPlan = namedtuple("TransformPlan", ["matrix", "flip_h", "flip_v"])


def check_finite(name, v):
    """`v` if it is a finite number, else ValueError naming `name`."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"transform parameter {name!r} must be a number, got {v!r}") from None
    if not np.isfinite(f):
        raise ValueError(f"transform parameter {name!r} must be finite, got {v!r}")
    return v


def transform_plan(transform_parameters, rows, cols):
    """A TransformPlan from Keras' parameter dict for a rows x cols image."""
    p = transform_parameters
    vals = {k: check_finite(k, p.get(k, d)) for k, d in
            (("theta", 0), ("tx", 0), ("ty", 0), ("shear", 0), ("zx", 1), ("zy", 1))}
    m = affine_matrix(**vals, rows=rows, cols=cols)
    if m is not None:
        reach = np.abs(m[:, 0]) * (rows - 1) + np.abs(m[:, 1]) * (cols - 1) + np.abs(m[:, 2])
        if not np.all(reach < _COORD_MAX):
            raise ValueError(
                f"transform parameters {vals} send pixels beyond 2**52, "
                "further than the warp can represent exactly")
    return TransformPlan(m, bool(p.get("flip_horizontal", False)),
                         bool(p.get("flip_vertical", False)))


def _fits_float32(v) -> bool:
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.float32(v)))


def apply_transform(x, transform_parameters, *, data_format=None, fill_mode="nearest",
                    cval=0.0, interpolation_order=1):
    """Keras' ``ImageDataGenerator(data_format=..., fill_mode=..., cval=...,
    interpolation_order=...).apply_transform(x, transform_parameters)``.

    x: one image, (rows, cols, channels) or, channels_first, (channels, rows,
    cols), with 1, 3 or 4 channels, uint8 or floating point.  Keys of
    transform_parameters (all optional, Keras' names): theta, tx, ty, shear,
    zx, zy, flip_horizontal, flip_vertical, channel_shift_intensity,
    brightness.  Returns a new array with Keras' dtype for the same input.
    """
    data_format = check_data_format(data_format)
    check_fill_mode(fill_mode)
    order = check_interpolation_order(interpolation_order)
    cval = float(check_finite("cval", cval))
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError("Input arrays must be multi-channel 2D images.")
    xl = np.moveaxis(x, 0, -1) if data_format == "channels_first" else x
    rows, cols, channels = xl.shape
    if channels not in (1, 3, 4):
        raise ValueError(f"fastseq augments images with 1, 3 or 4 channels; got shape {x.shape} "
                         f"({data_format})")
    if rows < 1 or cols < 1:
        raise ValueError(f"cannot transform an empty image of shape {x.shape}")
    if x.dtype == np.uint8:
        src_dtype = np.uint8
    elif np.issubdtype(x.dtype, np.floating):
        src_dtype = np.float32
    else:
        raise TypeError(f"fastseq augments uint8 or floating-point images, got {x.dtype}")

    p = transform_parameters
    plan = transform_plan(p, rows, cols)
    shift = p.get("channel_shift_intensity")
    bright = p.get("brightness")
    if shift is not None:
        check_finite("channel_shift_intensity", shift)
    if bright is not None and not _fits_float32(check_finite("brightness", bright)):
        # Image.blend takes a C float.
        raise ValueError(f"transform parameter 'brightness' must be finite as a float32, "
                         f"got {bright!r}")

    # The dtype Keras' array has after each step (numpy's promotion rules:
    # a Python float does not widen float32, an np.float64 does).
    dtype = x.dtype
    shift_f32 = True
    if shift is not None:
        dtype = np.result_type(dtype, shift)
        shift_f32 = dtype == np.float32
    photo_f32 = dtype == np.float32
    pre_bright = dtype
    if bright is not None:
        dtype = np.dtype(np.float32)        # img_to_array's floatx
    out_dtype = np.uint8 if dtype == np.uint8 else np.float32

    src = np.ascontiguousarray(xl, dtype=src_dtype)
    out = np.empty((rows, cols, channels), out_dtype)
    m = plan.matrix
    rescaled = _native.warp_affine(src, out, m.ravel() if m is not None else (1, 0, 0, 0, 1, 0),
                      warp=m is not None, flip_h=plan.flip_h, flip_v=plan.flip_v,
                      order=order, fill_mode=fill_mode, cval=cval,
                      quantize_u8=src_dtype == np.uint8,
                      shift=None if shift is None else float(shift), shift_f32=shift_f32,
                      brightness=None if bright is None else float(bright),
                      photo_f32=photo_f32)
    if rescaled:
        # x / 255 * (x_max - x_min) + x_min: the scalars keep the array's dtype.
        dtype = np.result_type(np.float32, pre_bright)
    res = out if out.dtype == dtype else out.astype(dtype)
    if data_format == "channels_first":
        res = np.moveaxis(res, -1, 0)
    return res


def _draw_shift(rng, r, size):
    """One shift as Keras draws it: an int N picks from -(N-1)..N-1, a 1-D
    sequence picks one of its values with a random sign, a float is uniform
    in [-r, r); fractions (every value < 1) are of `size`."""
    if isinstance(r, (int, np.integer)) or (
            isinstance(r, (list, tuple, np.ndarray)) and np.ndim(r) == 1):
        v = rng.choice(r)
        v *= rng.choice([-1, 1])
    elif isinstance(r, (float, np.floating)):
        v = rng.uniform(-r, r)
    else:
        raise ValueError(
            "shift ranges should be a float, an int or a 1-D sequence of numbers. "
            f"Received: {r!r}")
    if np.max(r) < 1:
        v *= size
    return v


def _has_range(r):
    if isinstance(r, (list, tuple, np.ndarray)):
        return len(r) > 0
    return bool(r)


def get_random_transform(img_shape, seed=None, *, rng=None, rotation_range=0,
                         width_shift_range=0.0, height_shift_range=0.0, shear_range=0.0,
                         zoom_range=0.0, channel_shift_range=0.0, horizontal_flip=False,
                         vertical_flip=False, brightness_range=None, data_format=None):
    """Keras' ``ImageDataGenerator(**ranges).get_random_transform(img_shape,
    seed)`` as a pure function: the same draws, in the same order, from
    ``np.random.RandomState(seed)`` for an int seed, from `rng` (a numpy
    Generator or RandomState) when given, or else from a generator seeded
    from the OS.  The shift ranges keep their documented meaning (see the
    module docstring): tx comes from width_shift_range, ty from
    height_shift_range.  Returns Keras' dict."""
    data_format = check_data_format(data_format)
    zoom_range = normalize_zoom_range(zoom_range)
    check_brightness_range(brightness_range)
    if len(img_shape) != 3:
        raise ValueError(f"img_shape must have 3 dimensions, got {img_shape!r}")
    if seed is not None and rng is not None:
        raise ValueError("pass either seed or rng, not both")
    if rng is None:
        rng = np.random.RandomState(seed) if seed is not None else np.random.default_rng()
    if data_format == "channels_first":
        rows, cols = img_shape[1], img_shape[2]
    else:
        rows, cols = img_shape[0], img_shape[1]

    theta = rng.uniform(-rotation_range, rotation_range) if rotation_range else 0
    # Keras draws the vertical shift first (into its 'tx').
    ty = _draw_shift(rng, height_shift_range, rows) if _has_range(height_shift_range) else 0
    tx = _draw_shift(rng, width_shift_range, cols) if _has_range(width_shift_range) else 0
    shear = rng.uniform(-shear_range, shear_range) if shear_range else 0
    if zoom_range[0] == 1 and zoom_range[1] == 1:
        zx, zy = 1, 1
    else:
        zx, zy = rng.uniform(zoom_range[0], zoom_range[1], 2)
    # Both flip draws happen whether or not the flip is enabled, as in Keras.
    flip_h = bool(rng.random() < 0.5) and bool(horizontal_flip)
    flip_v = bool(rng.random() < 0.5) and bool(vertical_flip)
    channel_shift = None
    if channel_shift_range != 0:
        channel_shift = rng.uniform(-channel_shift_range, channel_shift_range)
    brightness = None
    if brightness_range is not None:
        brightness = rng.uniform(brightness_range[0], brightness_range[1])
    return {"theta": theta, "tx": tx, "ty": ty, "shear": shear, "zx": zx, "zy": zy,
            "flip_horizontal": flip_h, "flip_vertical": flip_v,
            "channel_shift_intensity": channel_shift, "brightness": brightness}


def random_transform(x, seed=None, *, rng=None, data_format=None, fill_mode="nearest",
                     cval=0.0, interpolation_order=1, **ranges):
    """Keras' ``ImageDataGenerator(**ranges, ...).random_transform(x, seed)``:
    get_random_transform for x's shape, then apply_transform (with the
    documented shift axes, see the module docstring).  `ranges` are the
    keyword arguments of get_random_transform."""
    data_format = check_data_format(data_format)
    x = np.asarray(x)
    params = get_random_transform(x.shape, seed, rng=rng, data_format=data_format, **ranges)
    return apply_transform(x, params, data_format=data_format, fill_mode=fill_mode, cval=cval,
                           interpolation_order=interpolation_order)


# ---------------------------------------------------------------------------
# The batch path: draws for whole batches, as rows for _native.run_batch.

def check_shift_range(name, r):
    """A shift range as Keras' get_random_transform reads it: a float, an
    int or a 1-D sequence of numbers; returned as given (an ndarray for a
    sequence)."""
    if isinstance(r, bool):
        raise ValueError(f"`{name}` should be a float, an int or a 1-D array of numbers. "
                         f"Received: {r!r}")
    if isinstance(r, (int, np.integer, float, np.floating)):
        check_finite(name, r)
        return r
    if isinstance(r, (list, tuple, np.ndarray)):
        arr = np.asarray(r)
        if arr.ndim == 1 and arr.dtype.kind in "iuf" and np.all(np.isfinite(arr)):
            return arr
    raise ValueError(f"`{name}` should be a float, an int or a 1-D array of numbers. "
                     f"Received: {r!r}")


def warp_row(params, rows, cols, array_dtype=np.float32):
    """The run_batch row (_native.WARP_COLUMNS) of Keras' `params` dict for
    a rows x cols image that Keras holds as an `array_dtype` array: what
    apply_transform passes to the kernel for that array."""
    plan = transform_plan(params, rows, cols)
    shift = params.get("channel_shift_intensity")
    bright = params.get("brightness")
    dtype = np.dtype(array_dtype)
    shift_f32 = True
    if shift is not None:
        shift = float(check_finite("channel_shift_intensity", shift))
        dtype = np.result_type(dtype, shift)
        shift_f32 = dtype == np.float32
    if bright is not None and not _fits_float32(check_finite("brightness", bright)):
        raise ValueError(f"transform parameter 'brightness' must be finite as a float32, "
                         f"got {bright!r}")
    m = plan.matrix if plan.matrix is not None else (1, 0, 0, 0, 1, 0)
    return np.array([*np.ravel(m), plan.matrix is not None, plan.flip_h, plan.flip_v,
                     np.nan if shift is None else shift, shift_f32,
                     np.nan if bright is None else float(bright), dtype == np.float32],
                    dtype=np.float64)


_MASK64 = (1 << 64) - 1


def _mix(z):
    """SplitMix64's finaliser on a uint64 array (wrapping arithmetic)."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


# The uniforms each sample draws, one stream position per parameter.
_DRAWS = ("theta", "ty", "ty_sign", "tx", "tx_sign", "shear", "zx", "zy",
          "flip_h", "flip_v", "shift", "brightness")


class BatchAugmenter:
    """Keras' ``get_random_transform`` + ``apply_transform`` for the
    images of a batch, computed by the batch kernel.

    The draws of a sample are uniforms that depend only on (seed, epoch,
    sample index): a counter-based hash (SplitMix64), vectorised over the
    batch.  So batch composition, call order, prefetch, worker threads or
    processes and thread counts never change an epoch's images.  Each
    parameter has Keras' distribution (get_random_transform's; the shift
    ranges with their documented meaning).  `seed` None draws one 64-bit
    seed from the OS (numpy's global generator is never touched).

    `array_dtype` is the dtype of the array Keras would augment: float32
    (Keras' img_to_array), or uint8 (scipy rounds into it).
    """

    def __init__(self, *, rows, cols, rotation_range=0, width_shift_range=0.0,
                 height_shift_range=0.0, shear_range=0.0, zoom_range=0.0,
                 channel_shift_range=0.0, horizontal_flip=False, vertical_flip=False,
                 brightness_range=None, fill_mode="nearest", cval=0.0,
                 interpolation_order=1, array_dtype=np.float32, seed=None):
        self.rows, self.cols = int(rows), int(cols)
        self.rotation_range = float(check_finite("rotation_range", rotation_range))
        self.shear_range = float(check_finite("shear_range", shear_range))
        self.channel_shift_range = float(check_finite("channel_shift_range", channel_shift_range))
        self.width_shift_range = check_shift_range("width_shift_range", width_shift_range)
        self.height_shift_range = check_shift_range("height_shift_range", height_shift_range)
        self.zoom_range = [float(check_finite("zoom_range", z)) for z in normalize_zoom_range(zoom_range)]
        check_brightness_range(brightness_range)
        self.brightness_range = (None if brightness_range is None else
                                 [float(check_finite("brightness_range", b)) for b in brightness_range])
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
        self.array_dtype = np.dtype(array_dtype)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)
        self.seed = int(seed) & _MASK64
        self.options = _native.WarpOptions(check_interpolation_order(interpolation_order),
                                           check_fill_mode(fill_mode),
                                           float(check_finite("cval", cval)),
                                           self.array_dtype == np.uint8)

    def _uniforms(self, epoch, indexes):
        """(n, len(_DRAWS)) uniforms in [0, 1), 53 bits each."""
        idx = np.asarray(indexes, dtype=np.int64).astype(np.uint64).reshape(-1, 1)
        h = _mix(np.full(1, self.seed, np.uint64))
        h = _mix(h ^ np.uint64(int(epoch) & _MASK64))
        h = _mix(h ^ idx)
        h = _mix(h ^ np.arange(len(_DRAWS), dtype=np.uint64))
        return (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53

    @staticmethod
    def _uniform(lo, hi, u):
        return lo + (hi - lo) * u

    def _shift(self, r, u_val, u_sign, size):
        if isinstance(r, np.ndarray) or isinstance(r, (int, np.integer)):
            values = np.asarray(r) if isinstance(r, np.ndarray) else np.arange(int(r))
            if len(values) == 0:
                return np.zeros_like(u_val)
            pick = np.minimum((u_val * len(values)).astype(np.int64), len(values) - 1)
            v = values[pick].astype(np.float64) * np.where(u_sign < 0.5, -1.0, 1.0)
        else:
            v = self._uniform(-r, r, u_val)
        if np.max(r) < 1:
            v = v * size
        return v

    def transforms(self, epoch, indexes):
        """Keras' parameter dicts of the samples at `indexes` in `epoch`."""
        d = self._draws(epoch, indexes)
        theta, tx, ty, shear, zx, zy = (d[k] for k in ("theta", "tx", "ty", "shear", "zx", "zy"))
        flip_h, flip_v, shift, bright = (d[k] for k in ("flip_h", "flip_v", "shift", "bright"))
        return [{"theta": float(theta[i]), "tx": float(tx[i]), "ty": float(ty[i]),
                 "shear": float(shear[i]), "zx": float(zx[i]), "zy": float(zy[i]),
                 "flip_horizontal": bool(flip_h[i]), "flip_vertical": bool(flip_v[i]),
                 "channel_shift_intensity": None if shift is None else float(shift[i]),
                 "brightness": None if bright is None else float(bright[i])}
                for i in range(len(theta))]

    def _draws(self, epoch, indexes):
        """The parameters of the samples at `indexes` in `epoch` as arrays
        (what transforms() puts in its dicts; shift and bright None when
        their range is off)."""
        u = self._uniforms(epoch, indexes)
        n = len(u)
        col = {name: u[:, k] for k, name in enumerate(_DRAWS)}
        zero = np.zeros(n)
        theta = (self._uniform(-self.rotation_range, self.rotation_range, col["theta"])
                 if self.rotation_range else zero)
        ty = (self._shift(self.height_shift_range, col["ty"], col["ty_sign"], self.rows)
              if _has_range(self.height_shift_range) else zero)
        tx = (self._shift(self.width_shift_range, col["tx"], col["tx_sign"], self.cols)
              if _has_range(self.width_shift_range) else zero)
        shear = (self._uniform(-self.shear_range, self.shear_range, col["shear"])
                 if self.shear_range else zero)
        z0, z1 = self.zoom_range
        if z0 == 1 and z1 == 1:
            zx = zy = np.ones(n)
        else:
            zx = self._uniform(z0, z1, col["zx"])
            zy = self._uniform(z0, z1, col["zy"])
        flip_h = (col["flip_h"] < 0.5) & self.horizontal_flip
        flip_v = (col["flip_v"] < 0.5) & self.vertical_flip
        shift = (self._uniform(-self.channel_shift_range, self.channel_shift_range, col["shift"])
                 if self.channel_shift_range != 0 else None)
        bright = (self._uniform(*self.brightness_range, col["brightness"])
                  if self.brightness_range is not None else None)
        # float(v[i]) of a float64 array is the same double: transforms()'
        # dicts and these arrays hold the same values.
        as64 = lambda v: np.asarray(v, dtype=np.float64)   # noqa: E731
        return dict(theta=as64(theta), tx=as64(tx), ty=as64(ty), shear=as64(shear),
                    zx=as64(zx), zy=as64(zy), flip_h=np.asarray(flip_h, dtype=bool),
                    flip_v=np.asarray(flip_v, dtype=bool), shift=shift, bright=bright)

    def rows_for(self, transforms):
        """The run_batch rows of these parameter dicts: warp_row's, row for
        row.  Without photometric parameters (the common case) the rows are
        built straight from affine_matrix, and the 2**52 reach is checked
        for the batch at once: warp_row's per-dict checks and conversions
        cost more than the matrix itself, ~0.1 ms an image, run serially
        before each batch."""
        if not transforms:
            return np.zeros((0, _native.WARP_NCOLS))
        if any(p["channel_shift_intensity"] is not None or p["brightness"] is not None
               for p in transforms):
            return np.stack([warp_row(p, self.rows, self.cols, self.array_dtype)
                             for p in transforms])
        params = np.array([[p["theta"], p["tx"], p["ty"], p["shear"], p["zx"], p["zy"]]
                           for p in transforms], dtype=np.float64)
        return self._geometric_rows(*params.T, [p["flip_horizontal"] for p in transforms],
                                    [p["flip_vertical"] for p in transforms],
                                    lambda i: transforms[i])

    def _geometric_rows(self, theta, tx, ty, shear, zx, zy, flip_h, flip_v, transform_of):
        """rows_for's rows of geometric-only parameters given as arrays
        (transform_of(i): image i's dict, for the error message)."""
        n = len(theta)
        out = np.empty((n, _native.WARP_NCOLS))
        mats, warp = affine_matrices(theta, tx, ty, shear, zx, zy, rows=self.rows, cols=self.cols)
        out[:, :6] = mats.reshape(n, 6)
        out[:, 6] = warp
        out[:, 7] = flip_h
        out[:, 8] = flip_v
        out[:, 9] = np.nan          # no channel shift
        out[:, 10] = 1.0            # (shift_f32: unused without a shift)
        out[:, 11] = np.nan         # no brightness
        out[:, 12] = self.array_dtype == np.float32
        m = out[:, :6].reshape(n, 2, 3)
        reach = (np.abs(m[:, :, 0]) * (self.rows - 1) + np.abs(m[:, :, 1]) * (self.cols - 1)
                 + np.abs(m[:, :, 2]))
        bad = np.flatnonzero(~np.all(reach < _COORD_MAX, axis=1))
        if len(bad):
            p = transform_of(bad[0])
            vals = {k: p[k] for k in ("theta", "tx", "ty", "shear", "zx", "zy")}
            raise ValueError(
                f"transform parameters {vals} send pixels beyond 2**52, "
                "further than the warp can represent exactly")
        return out

    def warps(self, epoch, indexes):
        """What load_files takes for the samples at `indexes` in `epoch`:
        (rows, WarpOptions).  Geometric-only draws go from the arrays
        straight to the rows (no per-image dicts)."""
        if self.channel_shift_range != 0 or self.brightness_range is not None:
            return self.rows_for(self.transforms(epoch, indexes)), self.options
        d = self._draws(epoch, indexes)
        if len(d["theta"]) == 0:
            return np.zeros((0, _native.WARP_NCOLS)), self.options
        return self._geometric_rows(
            d["theta"], d["tx"], d["ty"], d["shear"], d["zx"], d["zy"], d["flip_h"],
            d["flip_v"], lambda i: self.transforms(epoch, indexes)[i]), self.options
