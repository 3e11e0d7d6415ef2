"""Type stubs for the compiled core (fastseq/_native.pyx)."""

from typing import Any

MODE_L: int
MODE_RGB: int
MODE_RGBA: int
MODE_CMYK: int
MODE_SOURCE: int
DTYPE_U8: int
DTYPE_F32: int
SRC_FILE: int
SRC_MEMORY: int
SRC_PIXELS: int
STATUS_NOT_JPEG: int
MAX_THREADS: int

def status_code(status: int) -> str:
    """ImageDecodeError.code of a C status: "memory", "too_large", "internal",
    "io", "empty", "not_image", "decode", "truncated", "too_many_pixels",
    "too_many_scans", "not_regular_file", "memory_limit", "work_limit"."""
class BatchOptions:
    """The C form of a batch's options (fs_batch_opts), checked once."""
    channels: int
    slot_bytes: int
    def __init__(
        self,
        out_width: int,
        out_height: int,
        out_mode: int,
        dtype: int,
        *,
        scale: float = ...,
        offset: float = ...,
        norm: tuple[Any, Any] | None = ...,
        wide_gray: bool = ...,
        filter: int = ...,
        dct_scaling: bool = ...,
        keep_aspect_ratio: bool = ...,
        max_pixels: int = ...,
        max_scans: int = ...,
        allow_truncated: bool = ...,
        max_file_bytes: int = ...,
        max_memory: int = ...,
        max_scan_pixels: int = ...,
        decode_only: bool = ...,
        full_size: bool = ...,
        header_only: bool = ...,
    ) -> None: ...

class WarpOptions:
    """The per-iterator constants of Keras' augmentation (csrc/warp.h)."""
    order: int
    fill_mode: int
    fill_mode_name: str
    cval: float
    quantize_u8: bool
    def __init__(self, order: int, fill_mode: str, cval: float, quantize_u8: bool) -> None: ...

def run_batch(
    kind: int,
    sources: list[Any],
    out: Any,
    slots: list[int],
    opts: BatchOptions,
    premultiply: list[bool] | None = ...,
    warps: Any = ...,
    warp_opts: WarpOptions | None = ...,
    cache: list[tuple[bytes | None, bytes | None, Any, Any, bool] | None] | None = ...,
) -> list[tuple[Any, ...]]: ...

CACHE_RESULTS: dict[int, str]
CACHE_FORMAT: int
CACHE_HEADER: int
CACHE_MAX_KEY: int

def cache_write_failure(entry_path: bytes, key: bytes, status: int, message: str) -> str: ...
def cache_read(
    entry_path: bytes, key: bytes, width: int, height: int, channels: int
) -> tuple[str, Any, int, str, str]: ...
def cache_checksum(data: Any) -> int: ...
def read_file(path: bytes, max_file_bytes: int = ..., source: str = ...) -> bytes: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def pool_stats() -> dict[str, int]: ...

class BatchBuffer:
    def __init__(self, nbytes: int) -> None: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

def bufpool_set_limit(nbytes: int) -> None: ...
def bufpool_stats() -> dict[str, int]: ...
def _debug_crash_in_worker(sig: int) -> None: ...
def libjpeg_version() -> str: ...
def libpng_version() -> str: ...
def zlib_version() -> str: ...
def libwebp_version() -> str: ...
def libjpeg_simd() -> bool: ...
def resize_simd() -> str: ...
def set_resize_simd(enable: bool) -> str: ...
def warp_simd() -> str: ...
def set_warp_simd(enable: bool) -> str: ...
def _resize_plan(
    src_w: int,
    src_h: int,
    channels: int,
    box: tuple[float, float, float, float],
    filter: int,
    out_w: int,
    out_h: int,
    *,
    premultiply: bool = ...,
    src_pad: int = ...,
) -> dict[str, Any]: ...

FILL_MODES: dict[str, int]

def warp_affine(
    src: Any,
    out: Any,
    matrix: Any,
    *,
    warp: bool = ...,
    flip_h: bool = ...,
    flip_v: bool = ...,
    order: int = ...,
    fill_mode: str = ...,
    cval: float = ...,
    quantize_u8: bool = ...,
    shift: float | None = ...,
    shift_f32: bool = ...,
    brightness: float | None = ...,
    photo_f32: bool = ...,
    scale: float = ...,
    offset: float = ...,
    norm: tuple[Any, Any] | None = ...,
) -> bool: ...
def _brightness_u8(v: int, factor: float) -> int: ...
def set_resize_pass_order(order: int) -> int: ...
def resize_pass_order() -> int: ...
