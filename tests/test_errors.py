"""Bad input: every failure is an ImageDecodeError naming the file and the
reason, never a crash, a hang or a silently wrong batch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fastseq
from conftest import CORPUS, CORPUS_MISSING, encode, photo_like

needs_corpus = pytest.mark.skipif(CORPUS is None, reason=CORPUS_MISSING)


@pytest.fixture(scope="module")
def good_jpeg(tmp_path_factory):
    p = tmp_path_factory.mktemp("good") / "good.jpg"
    p.write_bytes(encode(photo_like(120, 160, seed=3), quality=90))
    return p


def _raises(paths, **kw):
    with pytest.raises(fastseq.ImageDecodeError) as ei:
        fastseq.load_batch(paths, (24, 24), **kw)
    return ei.value


def test_missing_file(tmp_path):
    p = tmp_path / "nope.jpg"
    e = _raises([p])
    assert e.code == "io" and e.source == str(p)
    assert f"cannot decode image '{p}': cannot open file: No such file or directory" == str(e)


def test_directory_instead_of_file(tmp_path):
    e = _raises([tmp_path])
    assert e.code == "io" and "is a directory" in e.reason


def test_path_through_a_file(tmp_path, good_jpeg):
    e = _raises([good_jpeg / "x.jpg"])
    assert e.code == "io" and "Not a directory" in e.reason


@pytest.mark.skipif(not hasattr(os, "geteuid"),
                    reason="POSIX file permissions are needed to make a file unreadable")
def test_unreadable_file(good_jpeg):
    """A file without read permission.  Root reads any file, so as root the
    check runs in a child process that drops to an unprivileged user (which
    also proves the file really is unreadable there)."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="fastseq-perm-")
    try:
        os.chmod(d, 0o755)              # traversable by the unprivileged child
        p = os.path.join(d, "locked.jpg")
        with open(p, "wb") as f:
            f.write(good_jpeg.read_bytes())
        os.chmod(p, 0)
        if os.geteuid() != 0:
            e = _raises([p])
            assert e.code == "io" and "Permission denied" in e.reason
            return
        # The interpreter may live under root's home, unreachable to other
        # users: start as root, import, then drop to "nobody".
        code = textwrap.dedent(f"""
            import os
            import fastseq
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                fastseq.load_batch([{p!r}], (24, 24))
            except fastseq.ImageDecodeError as e:
                print(e.code, "|", e.reason)
        """)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120, cwd=d)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "io | cannot open file: Permission denied", proc.stdout
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    e = _raises([p])
    assert e.code == "empty" and e.reason == "file is empty"
    with pytest.raises(fastseq.ImageDecodeError, match="empty input"):
        fastseq.decode_batch([b""], (8, 8))


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.jpg"          # the extension lies; the bytes decide
    p.write_text("just some text, not an image\n")
    e = _raises([p])
    assert e.code == "not_image"
    assert "Pillow cannot identify" in e.reason


def test_jpeg_header_then_garbage():
    data = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + os.urandom(64)
    with pytest.raises(fastseq.ImageDecodeError) as ei:
        fastseq.decode_batch([data], (8, 8))
    assert ei.value.source == "<buffer 0>" and ei.value.code in ("decode", "truncated")


@pytest.mark.parametrize("cut", [2, 3, 20, 200, 600, 0.5, 0.9, -2])
def test_truncated_jpeg(good_jpeg, tmp_path, cut):
    data = good_jpeg.read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else (cut if cut > 0 else len(data) + cut)
    p = tmp_path / f"cut{n}.jpg"
    p.write_bytes(data[:n])
    e = _raises([p])
    assert e.source == str(p)
    assert e.code in ("truncated", "decode")
    if n >= 600:
        assert e.code == "truncated" and "truncated" in str(e)


def test_max_pixels_checked_from_header(good_jpeg):
    e = _raises([good_jpeg], max_pixels=120 * 160 - 1)
    assert e.code == "too_many_pixels"
    assert "160x120 (19200 pixels) exceeds max_pixels=19199" in e.reason
    fastseq.load_batch([good_jpeg], (8, 8), max_pixels=120 * 160)   # exactly at the limit


def test_max_pixels_applies_to_fallback_formats(tmp_path):
    p = tmp_path / "big.png"
    p.write_bytes(encode(photo_like(100, 100, seed=1), "PNG"))
    e = _raises([p], max_pixels=9999)
    assert e.code == "too_many_pixels" and "exceeds max_pixels=9999" in e.reason


def test_max_pixels_default_is_pillows_bomb_threshold():
    assert fastseq.DEFAULT_MAX_PIXELS == 178_956_970
    # A header claiming 65000x65000 is refused before any allocation.
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = (65000).to_bytes(2, "big") * 2
    with pytest.raises(fastseq.ImageDecodeError, match="exceeds max_pixels=178956970"):
        fastseq.decode_batch([bytes(data)], (8, 8))


@needs_corpus
def test_progressive_scan_limit():
    p = CORPUS / "libjpeg-turbo/testimgp.jpg"      # 10 scans
    e = _raises([p], max_scans=5)
    assert e.code == "too_many_scans"
    assert "more than 5 scans" in e.reason
    fastseq.load_batch([p], (8, 8), max_scans=10)
    assert fastseq.DEFAULT_MAX_SCANS == 500


def test_many_scan_progressive_bomb_is_refused_quickly():
    """A progressive stream with thousands of scans: refused at the default limit."""
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.fromarray(photo_like(16, 16, seed=2)).save(buf, "JPEG", progressive=True)
    data = buf.getvalue()
    sos = data.index(b"\xff\xda")
    eoi = data.rindex(b"\xff\xd9")
    # Repeat the last (refinement) scan: each repeat is one more scan.
    last_sos = data.rindex(b"\xff\xda", 0, eoi)
    scan = data[last_sos:eoi]
    bomb = data[:eoi] + scan * 600 + b"\xff\xd9"
    assert sos < last_sos
    with pytest.raises(fastseq.ImageDecodeError) as ei:
        fastseq.decode_batch([bomb], (8, 8))
    assert ei.value.code in ("too_many_scans", "decode")


def test_on_error_warn_zero_fills_and_names_the_file(tmp_path, good_jpeg):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"\x00" * 10)
    out = np.full((3, 16, 16, 3), 7, np.uint8)
    with pytest.warns(fastseq.ImageDecodeWarning, match=str(bad)) as rec:
        res, failed = fastseq.load_batch([good_jpeg, bad, good_jpeg], (16, 16), out=out,
                                         on_error="warn", return_failed=True)
    assert res is out
    assert len(rec) == 1 and "batch index 1" in str(rec[0].message)
    assert [(f.index, f.source) for f in failed] == [(1, str(bad))]
    assert not out[1].any()
    assert out[0].any() and np.array_equal(out[0], out[2])


def test_on_error_ignore_is_silent(tmp_path, good_jpeg):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res, failed = fastseq.load_batch([bad, good_jpeg], (16, 16), on_error="ignore",
                                         return_failed=True)
    assert [f.index for f in failed] == [0] and failed[0].code == "not_image"
    assert not res[0].any() and res[1].any()


def test_raise_lists_every_failure(tmp_path, good_jpeg):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"")
    b.write_bytes(b"GIF89a")
    with pytest.raises(fastseq.ImageDecodeError) as ei:
        fastseq.load_batch([good_jpeg, a, good_jpeg, b], (8, 8))
    e = ei.value
    assert e.index == 1 and e.source == str(a)
    assert [f.index for f in e.failures] == [1, 3]
    assert "(and 1 more failed image(s) in this batch)" in str(e)


def test_error_is_picklable_for_worker_processes(tmp_path):
    import pickle
    e = _raises([tmp_path / "missing.jpg"])
    e2 = pickle.loads(pickle.dumps(e))
    assert str(e2) == str(e) and e2.code == e.code and isinstance(e2, ValueError)


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(target_size=(0, 10)), ValueError, "target_size must be a (height, width) pair"),
    (dict(target_size=(10,)), ValueError, "target_size must be a (height, width) pair"),
    (dict(target_size=(10.5, 10)), ValueError, "target_size must be a (height, width) pair"),
    (dict(target_size=(10, 1 << 17)), ValueError, "between 1 and 65536"),
    (dict(interpolation="cubic"), ValueError, "interpolation must be one of ['nearest', 'box'"),
    (dict(color_mode="RGB"), ValueError, "color_mode must be one of ['grayscale', 'rgb', 'rgba']"),
    (dict(dtype="float64"), TypeError, "dtype must be 'uint8' or 'float32'"),
    (dict(rescale=1 / 255), ValueError, "rescale/offset need dtype='float32'"),
    (dict(dtype="float32", rescale=float("nan")), ValueError, "finite"),
    (dict(on_error="skip"), ValueError, "on_error must be one of ('raise', 'warn', 'ignore')"),
    (dict(max_pixels=-1), ValueError, "max_pixels must be a non-negative int"),
    (dict(max_scans="many"), ValueError, "max_scans must be a non-negative int"),
])
def test_bad_arguments(good_jpeg, kwargs, exc, msg):
    kwargs.setdefault("target_size", (8, 8))
    with pytest.raises(exc) as ei:
        fastseq.load_batch([good_jpeg], **kwargs)
    assert msg in str(ei.value)


@pytest.mark.parametrize("out,msg", [
    ([[0]], "got list"),
    (np.zeros((2, 8, 8, 3), np.float32), "got dtype float32"),
    (np.zeros((1, 8, 8, 3), np.uint8), "got shape (1, 8, 8, 3)"),
    (np.zeros((2, 8, 8, 1), np.uint8), "got shape (2, 8, 8, 1)"),
    (np.zeros((2, 8, 16, 3), np.uint8)[:, :, ::2], "non-contiguous"),
    (np.zeros((2, 8, 8, 3), np.uint8, order="F"), "non-contiguous"),
])
def test_bad_out_arrays(good_jpeg, out, msg):
    with pytest.raises((TypeError, ValueError)) as ei:
        fastseq.load_batch([good_jpeg, good_jpeg], (8, 8), out=out)
    assert "out must be a writeable C-contiguous numpy array of shape (2, 8, 8, 3) " \
           "and dtype uint8" in str(ei.value)
    assert msg in str(ei.value)


def test_read_only_out(good_jpeg):
    out = np.zeros((1, 8, 8, 3), np.uint8)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="got a read-only array"):
        fastseq.load_batch([good_jpeg], (8, 8), out=out)


def test_bad_path_types(good_jpeg):
    with pytest.raises(TypeError, match="not a single path"):
        fastseq.load_batch(str(good_jpeg), (8, 8))
    with pytest.raises(TypeError, match="paths must be str, bytes or os.PathLike, got int"):
        fastseq.load_batch([good_jpeg, 3], (8, 8))
    with pytest.raises(ValueError, match="NUL byte"):
        fastseq.load_batch(["a\0b.jpg"], (8, 8))
    with pytest.raises(TypeError, match=r"buffers\[1\] is not bytes-like: str"):
        fastseq.decode_batch([b"x", "y"], (8, 8))


def test_threads_argument_errors():
    with pytest.raises(ValueError, match="between 1 and 1024, got 0"):
        fastseq.set_num_threads(0)
    with pytest.raises(TypeError, match="must be an int"):
        fastseq.set_num_threads(2.0)


@needs_corpus
def test_fuzzed_corpus_never_crashes_or_hangs(tmp_path):
    """Truncations and random byte flips of every corpus JPEG, decoded in a
    child process (a crash would kill it) under a timeout (a hang)."""
    script = textwrap.dedent(f"""
        import csv, random, sys, fastseq
        root = {str(CORPUS)!r}
        rows = [r for r in csv.DictReader(open(root + '/MANIFEST.tsv'), delimiter='\\t')
                if not r['notes'].startswith('NOT JPEG')]
        rng = random.Random(1234)
        bufs = []
        for r in rows:
            data = open(root + '/' + r['file'], 'rb').read()
            if len(data) > 300_000:
                continue
            for _ in range(6):
                b = bytearray(data)
                for _ in range(rng.randint(1, 12)):
                    b[rng.randrange(len(b))] = rng.randrange(256)
                bufs.append(bytes(b))
            for frac in (0.1, 0.5, 0.97):
                bufs.append(data[:int(len(data) * frac)])
        ok = bad = 0
        for i in range(0, len(bufs), 16):
            _, failed = fastseq.decode_batch(bufs[i:i + 16], (32, 32), on_error='ignore',
                                             return_failed=True)
            bad += len(failed)
            ok += len(bufs[i:i + 16]) - len(failed)
            for f in failed:
                assert f.reason and f.code, f
        print(ok, bad)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    ok, bad = map(int, r.stdout.split())
    assert ok > 0 and bad > 0
