"""Worst case one hostile file under 1 MB costs at fastseq's default limits.

    python benchmarks/worst_case_limits.py [huffman|arithmetic|gif ...]

Each case builds a flat (constant) progressive JPEG as large as the default
limits allow while the file stays under 1 MB, then repeats its last scan (a
whole-image refinement coded in a few bytes of EOB runs) as often as
max_scan_pixels lets it, so that the decode does the most work the limits
permit and still completes.  It is decoded in a child process by
``fastseq.decode_image`` (full size: the largest pixel buffer) and the child's
wall time and peak RSS are printed.

- huffman: grayscale, Huffman-coded.  The truncation bound (every block costs
  at least one bit) caps such a file at 8 blocks per byte.
- arithmetic: 4-component (CMYK) 4:4:4, arithmetic-coded (jpegtran
  -arithmetic -scans: 5 scans), at max_pixels.  No bits-per-block bound
  exists, so only max_pixels, max_memory and max_scan_pixels hold it.

- gif: a GIF of a few dozen bytes whose logical screen is 13377x13377 (at
  max_pixels) around a 1x1 frame, decoded by the Pillow fallback as RGBA
  (the largest output): only max_pixels and max_memory's estimate of what
  Pillow holds bound it.

Needs Pillow and libjpeg-turbo's jpegtran; the arithmetic case needs ~3 GB
of memory to build the file.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile

import fastseq

CHILD = r"""
import json, resource, sys, time, fastseq
data = open(sys.argv[1], 'rb').read()
color_mode = sys.argv[2] if len(sys.argv) > 2 else None
t = time.perf_counter()
try:
    img = fastseq.decode_image(data, color_mode)
    result = f"decoded {img.shape}"
except fastseq.ImageDecodeError as e:
    result = f"{e.code}: {e.reason}"
dt = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": dt, "cpu_seconds": ru.ru_utime + ru.ru_stime,
                  "peak_rss_mb": ru.ru_maxrss / 1024, "result": result}))
"""


def _flat(mode, side, colour):
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (side, side), colour).save(buf, "JPEG", progressive=True, subsampling=0,
                                               quality=90)
    return buf.getvalue()


def _split(data):
    eoi = data.rindex(b"\xff\xd9")
    last = data.rindex(b"\xff\xda", 0, eoi)
    return data[:eoi], data[last:eoi]


def _fill(data):
    """`data` with its last scan repeated as often as max_scan_pixels allows."""
    head, scan = _split(data)
    base_scans = data.count(b"\xff\xda")
    probe = head + scan * 1000 + b"\xff\xd9"
    try:
        fastseq.decode_image(probe, max_scans=None, max_memory=None)
        raise AssertionError("1000 repeats stayed within max_scan_pixels")
    except fastseq.ImageDecodeError as e:
        assert e.code == "work_limit", e
        scans = int(e.reason.rsplit(" after ", 1)[1].split()[0])
    assert scans - 1 >= base_scans, "the file alone exceeds max_scan_pixels"
    return head + scan * (scans - 1 - base_scans) + b"\xff\xd9", base_scans, scans - 1


def _huge_screen_gif(side):
    """A 1x1 GIF whose logical screen claims side x side: Pillow opens it at
    the screen's size."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("P", (1, 1)).save(buf, "GIF")
    data = bytearray(buf.getvalue())
    data[6:10] = side.to_bytes(2, "little") * 2
    return bytes(data)


def build(case):
    if case == "huffman":
        # Grayscale flat progressive: about 2 bits per block in all (the DC
        # scan dominates), so max_pixels (13377^2, 2.8M blocks) stays under 1 MB.
        data = _flat("L", 13377, 128)
    elif case == "arithmetic":
        # CMYK flat at max_pixels, re-coded losslessly by jpegtran as
        # arithmetic progressive with the fewest scans (one DC scan, one
        # full AC scan per component): adaptive coding spends a small
        # fraction of a bit per block, and libjpeg must still keep every
        # coefficient block (8 bytes a pixel) for a multi-scan file.
        side = 13377                       # 13377^2 <= DEFAULT_MAX_PIXELS
        huff = _flat("CMYK", side, (10, 20, 30, 40))
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as script:
            script.write("0,1,2,3: 0 0 0 0;\n" + "".join(f"{c}: 1 63 0 0;\n" for c in range(4)))
            script.flush()
            data = subprocess.run(["jpegtran", "-arithmetic", "-scans", script.name],
                                  input=huff, capture_output=True, check=True).stdout
    else:
        raise SystemExit(f"unknown case {case!r}")
    return _fill(data)


def main(cases):
    info = fastseq.info()
    for case in cases or ["huffman", "arithmetic", "gif"]:
        if case == "gif":
            data, what, args = _huge_screen_gif(13377), "13377x13377 screen, as RGBA", ["rgba"]
        else:
            data, base, scans = build(case)
            what, args = f"{scans} scans ({base} + repeats)", []
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            out = subprocess.run([sys.executable, "-c", CHILD, f.name, *args],
                                 capture_output=True, text=True, check=True).stdout
        r = json.loads(out)
        print(f"{case}: {len(data)} bytes, {what}; "
              f"{r['seconds']:.2f} s wall, {r['cpu_seconds']:.2f} s CPU (the child's, import included), peak RSS {r['peak_rss_mb']:.0f} MiB; {r['result']} "
              f"(fastseq {info['fastseq']}, libjpeg-turbo {info['libjpeg_turbo']}, Pillow {info.get('pillow', '?')})")


if __name__ == "__main__":
    main(sys.argv[1:])
