"""Type stubs for the compiled core (fastseq/_core.pyx)."""

from typing import Any

from typing_extensions import Buffer

MODE_L: int
MODE_RGB: int
MODE_RGBA: int
MODE_CMYK: int
DTYPE_U8: int
DTYPE_F32: int
SRC_FILE: int
SRC_MEMORY: int
SRC_PIXELS: int
STATUS_NOT_JPEG: int
MAX_THREADS: int

def status_code(status: int) -> str: ...
def run_batch(
    kind: int,
    sources: list[Any],
    out: Any,
    slots: list[int],
    *,
    out_width: int,
    out_height: int,
    out_mode: int,
    dtype: int,
    scale: float = ...,
    offset: float = ...,
    filter: int = ...,
    dct_scaling: bool = ...,
    keep_aspect_ratio: bool = ...,
    max_pixels: int = ...,
    max_scans: int = ...,
    allow_truncated: bool = ...,
    decode_only: bool = ...,
    premultiply: list[bool] | None = ...,
) -> list[tuple[int, int, str, int, int, int]]: ...
def decode_jpeg(
    data: Buffer,
    color_mode_id: int | None = ...,
    *,
    max_pixels: int = ...,
    max_scans: int = ...,
    allow_truncated: bool = ...,
    source: str = ...,
) -> Any: ...
def is_jpeg(data: Buffer) -> bool: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def pool_stats() -> dict[str, int]: ...
def libjpeg_version() -> str: ...
def libjpeg_simd() -> bool: ...
def resize_simd() -> str: ...
def set_resize_simd(enable: bool) -> str: ...
def set_resize_pass_order(order: int) -> int: ...
def resize_pass_order() -> int: ...
