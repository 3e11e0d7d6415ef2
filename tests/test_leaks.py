"""No leaks: resident memory stays flat over thousands of batches, error
paths (missing, truncated, corrupt, not-an-image, over-limit) included."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import encode, photo_like


def test_memory_stays_flat(tmp_path):
    good = tmp_path / "good.jpg"
    good.write_bytes(encode(photo_like(90, 120, seed=1), quality=85))
    data = good.read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 3: len(corrupt) // 3 + 40] = b"\xff" * 40
    (tmp_path / "corrupt.jpg").write_bytes(bytes(corrupt))
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "img.png").write_bytes(encode(photo_like(40, 50, seed=2), "PNG"))
    (tmp_path / "big.jpg").write_bytes(encode(photo_like(400, 300, seed=3), quality=80))
    script = textwrap.dedent(f"""
        import os, fastseq, numpy as np
        d = {str(tmp_path)!r}
        names = ['good.jpg', 'trunc.jpg', 'corrupt.jpg', 'text.jpg', 'missing.jpg',
                 'img.png', 'good.jpg', 'big.jpg']
        paths = [os.path.join(d, n) for n in names]
        bufs = [open(p, 'rb').read() if os.path.exists(p) else b'' for p in paths]
        out = np.empty((len(paths), 32, 32, 3), np.float32)
        def rss():
            with open('/proc/self/statm') as f:
                return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
        def step():
            fastseq.load_batch(paths, (32, 32), out=out, dtype='float32', rescale=1/255,
                               on_error='ignore')
            fastseq.decode_batch(bufs, (32, 32), on_error='ignore', max_pixels=100_000)
            try:
                fastseq.load_batch(paths[:2], (16, 16))
            except fastseq.ImageDecodeError:
                pass
            try:
                fastseq.decode_image(bufs[1])
            except fastseq.ImageDecodeError:
                pass
        for _ in range(300):
            step()
        before = rss()
        for _ in range(2500):
            step()
        after = rss()
        print(before, after)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    before, after = map(int, r.stdout.split())
    # 2500 steps x 19 images: even a 100-byte leak per image would add ~5 MB.
    assert after - before < 2 * 1024 * 1024, f"RSS grew by {(after - before) / 1e6:.1f} MB"
