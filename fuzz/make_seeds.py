"""Write the seed corpora of the fuzz harnesses (see tools/fuzz.sh).

    python fuzz/make_seeds.py OUT_DIR [--corpus DIR]

OUT_DIR/batch, OUT_DIR/resize and OUT_DIR/decode_batch get one file per
seed, in each harness's input layout (option bytes, then the payload; see
the harness sources).  The payloads are the shared JPEG corpus's files (the
ones MANIFEST.tsv lists, up to MAX_SEED_BYTES each) plus tiny images made
here with Pillow: JPEGs of every colour layout, progressive and baseline, and
PNGs of every Pillow-written colour type, WebP (lossy, lossless with alpha,
animated), BMP and PPM/PGM (batch and decode_batch), and GIF/TIFF files for
decode_batch's Pillow fallback.  Nothing here is
committed: the seeds are rebuilt from the corpus at every run.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import pathlib
import struct

# Bigger files only slow every execution down; the corpus has plenty of
# small ones of every kind.
MAX_SEED_BYTES = 200_000


def corpus_files(corpus: pathlib.Path | None) -> list[tuple[str, bytes]]:
    if corpus is None or not (corpus / "MANIFEST.tsv").is_file():
        return []
    with open(corpus / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    out = []
    for row in rows:
        p = corpus / row["file"]
        if p.is_file() and p.stat().st_size <= MAX_SEED_BYTES:
            out.append((row["file"], p.read_bytes()))
    return out


def generated_images() -> list[tuple[str, bytes]]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []

    def save(name, img, fmt, **kw):
        b = io.BytesIO()
        img.save(b, fmt, **kw)
        out.append((name, b.getvalue()))

    for w, h in [(1, 1), (3, 5), (17, 9), (40, 24)]:
        yy, xx = np.mgrid[0:h, 0:w]
        rgb = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1),
                        rng.integers(0, 256, (h, w))], -1).astype(np.uint8)
        img = Image.fromarray(rgb, "RGB")
        for sub in (0, 1, 2):   # 4:4:4, 4:2:2, 4:2:0
            save(f"gen-{w}x{h}-s{sub}.jpg", img, "JPEG", quality=90, subsampling=sub)
        save(f"gen-{w}x{h}-prog.jpg", img, "JPEG", quality=75, progressive=True)
        save(f"gen-{w}x{h}-L.jpg", img.convert("L"), "JPEG", quality=80)
        save(f"gen-{w}x{h}-cmyk.jpg", img.convert("CMYK"), "JPEG", quality=80)
        rgba = img.copy()
        rgba.putalpha(Image.fromarray(rgb[..., 2]))
        save(f"gen-{w}x{h}.png", rgba, "PNG")
        save(f"gen-{w}x{h}-L.png", img.convert("L"), "PNG")
        # PNG colour types and depths the native decoder converts
        pal = img.convert("P")
        save(f"gen-{w}x{h}-P-trns.png", pal, "PNG", transparency=bytes(range(0, 256, 3)))
        save(f"gen-{w}x{h}-LA.png", rgba.convert("LA"), "PNG")
        save(f"gen-{w}x{h}-1.png", img.convert("1"), "PNG")
        save(f"gen-{w}x{h}-I16.png",
             Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).convert("I;16"), "PNG")
        save(f"gen-{w}x{h}.bmp", img, "BMP")
        save(f"gen-{w}x{h}-P.bmp", img.convert("P"), "BMP")
        save(f"gen-{w}x{h}-lossy.webp", img, "WEBP", quality=70)
        save(f"gen-{w}x{h}-lossless-alpha.webp", rgba, "WEBP", lossless=True)
        save(f"gen-{w}x{h}-anim.webp", img, "WEBP", save_all=True,
             append_images=[rgba], duration=50)
        save(f"gen-{w}x{h}.ppm", img, "PPM")
        save(f"gen-{w}x{h}.pgm", img.convert("L"), "PPM")
        save(f"gen-{w}x{h}.gif", img.convert("P"), "GIF")
        save(f"gen-{w}x{h}.tiff", img, "TIFF")
    return out


def option_bytes(name: str, n: int) -> bytes:
    """Option bytes derived from the name, so that the seeds spread over the
    modes, filters and flags, and are the same at every run."""
    return hashlib.sha256(name.encode()).digest()[:n]


def batch_seeds(images):
    # [0] width-1, [1] height-1, [2] flags, [3] filter (see fuzz_batch.c).
    for name, data in images:
        # the formats the C path decodes (csrc/batch.c, run_encoded)
        if not (data[:2] in (b"\xff\xd8", b"BM", b"P5", b"P6") or data[:4] == b"\x89PNG"
                or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")):
            continue
        o = bytearray(option_bytes(name, 4))
        o[2] &= 0x3F          # leave decode_only to the fuzzer
        yield name, bytes(o) + data
        # and the same image at Keras' defaults: 32x32 RGB bilinear u8
        yield name + "-default", bytes([31, 31, 0x11, 2]) + data


def resize_seeds():
    # 16 header bytes (see fuzz_resize.c) and a few pixel bytes.
    def hdr(sw, sh, dw, dh, flags, filt, pads, box=(0, 0, 255, 255)):
        return (struct.pack("<4H", sw - 1, sh - 1, dw - 1, dh - 1)
                + bytes([flags, filt, pads, *box, 0]))
    pixels = bytes(range(256)) * 3
    shapes = [(1, 1, 1, 1), (7, 5, 3, 2), (5, 7, 13, 11), (64, 48, 17, 9),
              (200, 3, 9, 3), (3, 200, 3, 9), (33, 31, 64, 62), (299, 17, 2, 1)]
    i = 0
    for sw, sh, dw, dh in shapes:
        for ch_bits in (0, 1, 2, 4 | 0):
            for filt in range(6):
                flags = ch_bits | (0x40 if i % 2 else 0) | (0x08 if i % 3 == 0 else 0) \
                    | (0x10 if i % 4 == 1 else 0)
                box = (0, 0, 255, 255) if i % 5 else (20, 30, 200, 180)
                yield f"r{i}", hdr(sw, sh, dw, dh, flags, filt, (i * 37) & 0xFF, box) + pixels
                i += 1
    # raw boxes: fractional, zero-sized, negative, NaN
    for j, box in enumerate([(0.5, 0.25, 6.75, 4.5), (2, 2, 2, 2), (-1, 0, 3, 3),
                             (float("nan"), 0, 1, 1), (0, 0, 1e30, 1)]):
        yield f"raw{j}", hdr(7, 5, 3, 4, 0x21, 5, 0) + struct.pack("<4d", *box) + pixels


def cache_seeds():
    # 4 header bytes (see fuzz_cache.c): [0] mode/failure, [1] width-1,
    # [2] height-1, [3] channels; then the body.
    keep = struct.pack("<H", 0xFFFF)
    for i, (w, h, c) in enumerate([(1, 1, 0), (4, 4, 1), (16, 9, 2), (7, 16, 3)]):
        head = bytes([1, w - 1, h - 1, c])
        yield f"valid{i}", head + keep                                  # unchanged
        yield f"fail{i}", bytes([3, w - 1, h - 1, c]) + keep            # a failure
        yield f"flip{i}", head + keep + struct.pack("<HB", 48 + i, 1)   # a key byte
        yield f"pix{i}", head + keep + struct.pack("<HB", 0xFFF0, 0x80)
        yield f"hdr{i}", head + keep + struct.pack("<HB", 12, 7)        # status
        yield f"cut{i}", head + struct.pack("<H", 40 + 9 * i)
    # mode 0: files of their own
    magic = b"FSQC" + struct.pack("=I", 0x01020304)
    for i, body in enumerate([b"", b"\0" * 47, magic + struct.pack("=IIIIIIQQ", 1, 0, 4, 4, 3,
                                                                     8, 48, 0) + b"k" * 56,
                              magic + struct.pack("=IIIIIIQQ", 1, 7, 0, 0, 0, 0, 5, 0) + b"oops!"]):
        yield f"raw{i}", bytes([0, 3, 3, 1]) + body


def decode_batch_seeds(images):
    # [0] height-1, [1] width-1, [2] flags, [3] interpolation (see
    # fuzz_decode_batch.py); every image, JPEG or not.
    for name, data in images:
        yield name, option_bytes(name, 4) + data


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--corpus", type=pathlib.Path, default=None,
                    help="the shared JPEG corpus (default: $FASTSEQ_CORPUS, "
                         "else ../shared/corpus/jpeg beside the checkout)")
    a = ap.parse_args()
    corpus = a.corpus
    if corpus is None:
        env = os.environ.get("FASTSEQ_CORPUS")
        repo = pathlib.Path(__file__).resolve().parent.parent
        corpus = pathlib.Path(env) if env else repo.parent / "shared" / "corpus" / "jpeg"
    shared = corpus_files(corpus)
    images = shared + generated_images()
    counts = {}
    for harness, seeds in [("batch", batch_seeds(images)), ("resize", resize_seeds()),
                           ("cache", cache_seeds()),
                           ("decode_batch", decode_batch_seeds(images))]:
        d = a.out / harness
        d.mkdir(parents=True, exist_ok=True)
        for old in d.iterdir():
            old.unlink()
        n = 0
        for name, data in seeds:
            (d / (name.replace("/", "_") + ".seed")).write_bytes(data)
            n += 1
        counts[harness] = n
    print(f"seeds: {len(shared)} files from {corpus if shared else 'no corpus (not found)'}, "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
