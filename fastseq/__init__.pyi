# Public API of fastseq, for type checkers (the Keras classes are loaded
# lazily by __getattr__ at run time).
from fastseq.batch import (
    COLOR_MODES as COLOR_MODES,
    DEFAULT_MAX_FILE_BYTES as DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_MEMORY as DEFAULT_MAX_MEMORY,
    DEFAULT_MAX_PIXELS as DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SCAN_PIXELS as DEFAULT_MAX_SCAN_PIXELS,
    DEFAULT_MAX_SCANS as DEFAULT_MAX_SCANS,
    INTERPOLATIONS as INTERPOLATIONS,
    decode_batch as decode_batch,
    decode_image as decode_image,
    info as info,
    load_batch as load_batch,
)
from fastseq.threads import get_num_threads as get_num_threads, set_num_threads as set_num_threads
from fastseq.errors import (
    DecodeFailure as DecodeFailure,
    ImageDecodeError as ImageDecodeError,
    ImageDecodeWarning as ImageDecodeWarning,
)
from fastseq.cache import (
    CacheFullError as CacheFullError,
    CacheWarning as CacheWarning,
    ImageCache as ImageCache,
)
from fastseq.keras.image_generator import (
    DirectoryIterator as DirectoryIterator,
    ImageDataGenerator as ImageDataGenerator,
)
from fastseq.keras.array_iterator import NumpyArrayIterator as NumpyArrayIterator
from fastseq.keras.base import Iterator as Iterator
from fastseq.keras.dataframe_iterator import DataFrameIterator as DataFrameIterator
from fastseq.keras.sequence import ImageSequence as ImageSequence

__version__: str
__all__: list[str]
