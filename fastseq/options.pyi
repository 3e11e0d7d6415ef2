from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from fastseq._native import BatchOptions

DEFAULT_MAX_PIXELS: int
DEFAULT_MAX_SCANS: int
DEFAULT_MAX_FILE_BYTES: int
DEFAULT_MAX_MEMORY: int
DEFAULT_MAX_SCAN_PIXELS: int
INTERPOLATIONS: dict[str, int]
COLOR_MODES: dict[str, tuple[int, int, str]]
DEFAULTS: MappingProxyType[str, Any]

class DecodeOptions:
    height: int
    width: int
    mode: int
    channels: int
    pil_mode: str
    dtype: np.dtype[Any]
    scale: float
    offset: float
    featurewise: tuple[tuple[float, ...], tuple[float, ...]] | None
    wide_gray: bool
    interpolation: str
    filter: int
    dct_scaling: bool
    keep_aspect_ratio: bool
    on_error: str
    limits: Mapping[str, int]
    c: BatchOptions
    def __init__(
        self,
        target_size: tuple[int, int],
        *,
        color_mode: str = ...,
        interpolation: str = ...,
        dtype: Any = ...,
        rescale: float | None = ...,
        offset: float = ...,
        featurewise: tuple[Any, Any] | None = ...,
        wide_gray: bool = ...,
        dct_scaling: bool = ...,
        keep_aspect_ratio: bool = ...,
        on_error: str = ...,
        max_pixels: int | None = ...,
        max_scans: int | None = ...,
        allow_truncated: bool = ...,
        max_file_bytes: int | None = ...,
        max_memory: int | None = ...,
        max_scan_pixels: int | None = ...,
    ) -> None: ...
    def shape(self, n: int) -> tuple[int, int, int, int]: ...

def check_limits(
    max_pixels: int | None,
    max_scans: int | None,
    allow_truncated: bool,
    max_file_bytes: int | None,
    max_memory: int | None,
    max_scan_pixels: int | None,
) -> dict[str, int]: ...
