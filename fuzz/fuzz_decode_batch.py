"""atheris harness: fastseq.decode_batch on one fuzzer-made buffer.

Input layout: 4 option bytes, then the encoded image (any format: JPEGs go
through the C core, everything else through the Pillow fallback).
  [0] height - 1 (mod 64)   [1] width - 1 (mod 64)
  [2] bits 0-1 color_mode (rgb, grayscale, rgba, rgb)  bit 2 float32
      bit 3 keep_aspect_ratio  bit 4 dct_scaling  bit 5 allow_truncated
  [3] interpolation (mod 6)

Contract checked (an uncaught exception is a finding that atheris saves):
  - on_error="raise" raises ImageDecodeError naming "<buffer 0>", nothing else;
  - on_error="ignore" never raises, and a failed image's slot is all zero
    and listed in `failed` with a code;
  - the same buffer twice in one batch gives two identical slots.
Memory errors in the C core are reported by ASan when this runs against the
sanitizer build (tools/fuzz.sh does that, with the ASan runtime preloaded).

    python fuzz/fuzz_decode_batch.py CORPUS_DIR [SEED_DIR] -max_total_time=60
"""

import sys
import warnings

import atheris

with atheris.instrument_imports(include=["fastseq", "PIL"]):
    import numpy as np
    import PIL.BmpImagePlugin  # noqa: F401  (the fallback's decoders, instrumented too)
    import PIL.GifImagePlugin  # noqa: F401
    import PIL.Image
    import PIL.JpegImagePlugin  # noqa: F401
    import PIL.PngImagePlugin  # noqa: F401
    import PIL.TiffImagePlugin  # noqa: F401

    import fastseq
    from fastseq import ImageDecodeError

COLOR_MODES = ["rgb", "grayscale", "rgba", "rgb"]
INTERPOLATIONS = ["nearest", "bilinear", "bicubic", "hamming", "box", "lanczos"]


def test_one_input(data: bytes) -> None:
    if len(data) < 4:
        return
    h, w, flags, interp = data[0] % 64 + 1, data[1] % 64 + 1, data[2], data[3]
    kw = dict(color_mode=COLOR_MODES[flags & 3],
              dtype="float32" if flags & 4 else "uint8",
              rescale=1 / 255 if flags & 4 else None,
              keep_aspect_ratio=bool(flags & 8), dct_scaling=bool(flags & 16),
              allow_truncated=bool(flags & 32),
              interpolation=INTERPOLATIONS[interp % 6],
              # fastseq's defaults, except two limits, so that a header that
              # claims a huge image is refused by a limit rather than reported
              # as an OOM or a timeout.  A GIF of 37 bytes can claim a
              # 179-Mpx screen that Pillow fills: under ASan three decodes
              # of 111 Mpx took 10.6 s (-timeout is 10 s), and at the default
              # max_memory two at once can pass -rss_limit_mb (2 GiB, ASan's
              # quarantine included).  The limits' own tests are in tests/.
              max_pixels=1 << 24, max_memory=512 << 20)
    buf = data[4:]

    try:
        single = fastseq.decode_batch([buf], (h, w), **kw)
    except ImageDecodeError as e:
        if "<buffer 0>" not in str(e):
            raise AssertionError(f"error does not name the buffer: {e}") from e
        single = None

    out, failed = fastseq.decode_batch([buf, buf], (h, w), on_error="ignore",
                                       return_failed=True, **kw)
    if not np.array_equal(out[0], out[1]):
        raise AssertionError("the same buffer decoded twice in one batch differs")
    if single is None:
        if [f.index for f in failed] != [0, 1] or not all(f.code for f in failed):
            raise AssertionError(f"raise mode failed but ignore mode reports {failed}")
        if out.any():
            raise AssertionError("a failed image's slot is not zero-filled")
    elif failed or not np.array_equal(single[0], out[0]):
        raise AssertionError(f"batch of one and batch of two disagree ({failed})")


def main():
    # Pillow's warnings (malformed MPO, decompression bomb) are not findings.
    warnings.simplefilter("ignore")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
