"""Bad input: every failure is an ImageDecodeError naming the file and the
reason, never a crash, a hang or a silently wrong batch."""

from __future__ import annotations

import io
import os
import pathlib
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
    assert e.code == "not_regular_file" and e.reason == "is a directory, not a regular file"


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


JFIF_APP0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


@pytest.mark.parametrize("data,code,reason", [
    # the stream ends inside a marker segment
    (b"\xff\xd8" + JFIF_APP0 + b"\xff\xdb\x00\x43" + bytes(range(20)), "truncated",
     "image file is truncated (Premature end of JPEG file)"),
    # a complete stream with no frame at all
    (b"\xff\xd8" + JFIF_APP0 + b"\xff\xd9", "decode", "JPEG datastream contains no image"),
])
def test_jpeg_header_then_garbage(data, code, reason):
    with pytest.raises(fastseq.ImageDecodeError) as ei:
        fastseq.decode_batch([data], (8, 8))
    e = ei.value
    assert (e.source, e.code, e.reason) == ("<buffer 0>", code, reason)


@pytest.mark.parametrize("cut", [2, 3, 20, 200, 600, 0.5, 0.9, -2])
def test_truncated_jpeg(good_jpeg, tmp_path, cut):
    data = good_jpeg.read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else (cut if cut > 0 else len(data) + cut)
    p = tmp_path / f"cut{n}.jpg"
    p.write_bytes(data[:n])
    e = _raises([p])
    assert e.source == str(p)
    assert (e.code, e.reason) == ("truncated", "image file is truncated (Premature end of JPEG file)")


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
    (dict(max_pixels=-1), ValueError, "max_pixels must be None (no limit) or an int between 0"),
    (dict(max_scans="many"), ValueError, "max_scans must be None (no limit) or an int between 0"),
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


@pytest.mark.parametrize("call", ["load_batch", "decode_batch"])
@pytest.mark.parametrize("value", [123, 1.5, None])
def test_a_non_sequence_is_a_type_error_naming_the_argument(call, value):
    what, of = (("paths", "paths") if call == "load_batch"
                else ("buffers", "bytes-like objects"))
    with pytest.raises(TypeError) as ei:
        getattr(fastseq, call)(value, (8, 8))
    assert str(ei.value) == f"{what} must be a sequence of {of}, got {type(value).__name__}"


def test_one_buffer_is_refused_not_read_byte_by_byte(good_jpeg, tmp_path):
    """A single encoded image (bytes, bytearray, memoryview, mmap, a 1-D
    uint8 array) is refused; the rows of a 2-D array are buffers."""
    import mmap

    data = pathlib.Path(good_jpeg).read_bytes()
    with open(good_jpeg, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        singles = [data, bytearray(data), memoryview(data), mm, np.frombuffer(data, np.uint8)]
        for one in singles:
            with pytest.raises(TypeError, match="^buffers must be a sequence of bytes-like "
                                                "objects, not a single buffer$"):
                fastseq.decode_batch(one, (8, 8))
        del singles, one
    rows = np.stack([np.frombuffer(data, np.uint8)] * 2)
    assert np.array_equal(fastseq.decode_batch(rows, (8, 8)),
                          fastseq.decode_batch([data, data], (8, 8)))


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


# --- issue 9: hostile files cost bounded time and memory ---------------------

def _child(code, timeout=60):
    """Run `code` in a child interpreter under a deadline: a hang fails the
    test (TimeoutExpired) instead of hanging the suite.  Returns stdout."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


def _special_file(kind, tmp_path):
    if kind == "fifo":
        p = tmp_path / "f.jpg"
        os.mkfifo(p)
        return str(p), "is a FIFO (named pipe), not a regular file"
    if kind == "socket":
        import socket
        p = tmp_path / "s.jpg"
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(p))
        return str(p), "is a socket, not a regular file"
    if kind == "chardev":
        return "/dev/null", "is a character device, not a regular file"
    if kind == "directory":
        return str(tmp_path), "is a directory, not a regular file"
    if kind == "procfs":
        return "/proc/self/status", ("reports a size of 0 but is not empty: a pseudo-file "
                                     "(such as /proc or /sys ones), not a regular on-disk file")
    raise AssertionError(kind)


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/proc/self/status"),
                    reason="needs POSIX FIFOs, sockets and /proc")
@pytest.mark.parametrize("kind", ["fifo", "socket", "chardev", "directory", "procfs"])
def test_only_regular_files_are_read(tmp_path, kind):
    """A FIFO used to block load_batch forever (open waits for a writer);
    devices, sockets and /proc files are not images either.  Run in a child
    under a deadline, so a regression fails instead of hanging."""
    path, reason = _special_file(kind, tmp_path)
    out = _child(f"""
        import fastseq
        for call in (lambda: fastseq.load_batch([{path!r}], (8, 8)),
                     lambda: fastseq.decode_image({path!r})):
            try:
                call()
            except fastseq.ImageDecodeError as e:
                print(e.code, "|", e.reason)
    """, timeout=60)
    assert out.splitlines() == [f"not_regular_file | {reason}"] * 2


def test_empty_regular_file_is_still_empty(tmp_path):
    p = tmp_path / "e.jpg"
    p.write_bytes(b"")
    with pytest.raises(fastseq.ImageDecodeError) as ei:
        fastseq.decode_image(p)
    assert (ei.value.code, ei.value.reason) == ("empty", "file is empty")


def test_max_file_bytes_refuses_sparse_file_before_reading(tmp_path):
    """Sparse files cost no disk.  Over max_file_bytes (default 2 GiB):
    refused from fstat; under it but not a JPEG: only the signature is read
    in C, then Pillow reads a header.  Peak RSS of the child stays small
    (reading either file whole would add 3 GiB / 600 MB)."""
    big, mid = tmp_path / "big.jpg", tmp_path / "mid.jpg"
    with open(big, "wb") as f:
        f.write(b"\xff\xd8\xff")
        f.truncate(3 << 30)
    with open(mid, "wb") as f:
        f.truncate(600 << 20)
    out = _child(f"""
        import resource, fastseq
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        _, failed = fastseq.load_batch([{str(big)!r}, {str(mid)!r}, {str(big)!r}], (8, 8),
                                       on_error="ignore", return_failed=True)
        for f in failed:
            print(f.index, f.code, "|", f.reason)
        try:
            fastseq.decode_image({str(big)!r})
        except fastseq.ImageDecodeError as e:
            print("image", e.code, "|", e.reason)
        grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print("grew_mb", grew // 1024)
    """, timeout=120)
    lines = out.splitlines()
    too = f"too_large | file is {3 << 30} bytes, over max_file_bytes={2 << 30}"
    assert lines[0] == f"0 {too}"
    assert lines[1] == "1 not_image | not a JPEG, and Pillow cannot identify the format"
    assert lines[2] == f"2 {too}"
    assert lines[3] == f"image {too}"
    assert int(lines[4].split()[1]) < 64, out


def test_max_file_bytes_applies_to_buffers_and_the_pillow_fallback(tmp_path, good_jpeg):
    jpg = good_jpeg.read_bytes()
    png = encode(photo_like(20, 20, seed=4), "PNG")
    (tmp_path / "a.png").write_bytes(png)
    for data in (jpg, png):
        n = len(data)
        _, failed = fastseq.decode_batch([data], (8, 8), max_file_bytes=n - 1,
                                         on_error="ignore", return_failed=True)
        assert [(f.code, f.reason) for f in failed] == [
            ("too_large", f"input is {n} bytes, over max_file_bytes={n - 1}")]
        with pytest.raises(fastseq.ImageDecodeError) as ei:
            fastseq.decode_image(data, max_file_bytes=n - 1)
        assert ei.value.code == "too_large"
        fastseq.decode_image(data, max_file_bytes=n)          # exactly at the limit
    e = _raises([tmp_path / "a.png"], max_file_bytes=len(png) - 1)
    assert e.code == "too_large"
    assert fastseq.DEFAULT_MAX_FILE_BYTES == 2 << 30


def _patched_sof(w, h, progressive=True):
    """A small real 64x48 4:4:4 JPEG whose SOF claims w x h."""
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.fromarray(photo_like(48, 64, seed=5)).save(buf, "JPEG", progressive=progressive,
                                                    subsampling=0, quality=90)
    data = bytearray(buf.getvalue())
    i = data.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    data[i + 5:i + 9] = h.to_bytes(2, "big") + w.to_bytes(2, "big")
    return bytes(data)


@pytest.mark.parametrize("progressive", [True, False])
def test_header_claiming_more_blocks_than_the_data_holds_is_truncated(progressive):
    """13377x13377 4:4:4 over a 64x48 image's data used to 'succeed' as grey
    after allocating 1.7 GB.  Huffman coding spends >= 1 bit per block, so the
    header alone shows the stream is cut short: refused before allocating."""
    data = _patched_sof(13377, 13377, progressive)
    blocks = 3 * 1673 * 1673
    with pytest.raises(fastseq.ImageDecodeError) as ei:
        fastseq.decode_batch([data], (8, 8))
    e = ei.value
    assert e.code == "truncated"
    assert e.reason.startswith(f"image file is truncated (13377x13377 needs at least "
                               f"{(blocks + 7) // 8} bytes of coded data for its {blocks} "
                               "blocks, the file has ")
    with pytest.raises(fastseq.ImageDecodeError, match="needs at least"):
        fastseq.decode_image(data)
    # allow_truncated skips that bound: then max_memory refuses it, still
    # before anything is allocated (coefficients 3*1673^2*128 bytes when
    # progressive, plus the 13377^2*3 full-size pixels of decode_image).
    with pytest.raises(fastseq.ImageDecodeError) as ei:
        fastseq.decode_image(data, allow_truncated=True, max_memory=100 << 20)
    coef = blocks * 128 if progressive else 0
    assert ei.value.code == "memory_limit"
    assert ei.value.reason == (f"decoding 13377x13377 needs {coef + 13377 * 13377 * 3} bytes "
                               f"({coef} of coefficients, {13377 * 13377 * 3} of pixels), "
                               f"over max_memory={100 << 20}")


def test_max_memory(good_jpeg):
    """The same check in load_batch: progressive 4:4:4 160x120 needs
    3 * 20*15 blocks * 128 bytes of coefficients plus the decoded pixels."""
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.open(good_jpeg).save(buf, "JPEG", progressive=True, subsampling=0)
    data = buf.getvalue()
    need = 3 * 20 * 15 * 128 + 160 * 120 * 3 + 64       # + the resampler's pad
    _, failed = fastseq.decode_batch([data], (120, 160), dct_scaling=False,
                                     max_memory=need - 1, on_error="ignore",
                                     return_failed=True)
    assert [f.code for f in failed] == ["memory_limit"]
    assert failed[0].reason == (f"decoding 160x120 needs {need} bytes ({need - 57664} of "
                                f"coefficients, 57664 of pixels), over max_memory={need - 1}")
    # At exactly `need`, libjpeg's own small buffers (already allocated when
    # it sizes the coefficient buffer) no longer fit: its memory manager,
    # capped by fastseq, refuses the whole-image buffer.
    _, failed = fastseq.decode_batch([data], (120, 160), dct_scaling=False,
                                     max_memory=need, on_error="ignore", return_failed=True)
    assert [(f.code, f.reason) for f in failed] == [
        ("memory_limit", "libjpeg's image buffers would exceed max_memory")]
    fastseq.decode_batch([data], (120, 160), dct_scaling=False, max_memory=need + (1 << 20))
    assert fastseq.DEFAULT_MAX_MEMORY == 5 << 29
    # The default fits the largest JPEG within the default pixel limit: a
    # progressive 4:4:4 CMYK one (8 bytes of coefficients + 4 of pixels each).
    assert fastseq.DEFAULT_MAX_MEMORY > 12 * fastseq.DEFAULT_MAX_PIXELS + (64 << 20)


def test_premature_end_of_data_segment_is_truncation(good_jpeg):
    """Entropy data cut short and closed with EOI: libjpeg only warns
    ('premature end of data segment') and fills the rest with grey."""
    data = good_jpeg.read_bytes()
    sos = data.index(b"\xff\xda")
    cut = data[:sos + (len(data) - sos) // 2] + b"\xff\xd9"
    with pytest.raises(fastseq.ImageDecodeError) as ei:
        fastseq.decode_batch([cut], (8, 8))
    assert ei.value.code == "truncated"
    assert ei.value.reason == ("image file is truncated (Corrupt JPEG data: premature end "
                               "of data segment)")
    with pytest.raises(fastseq.ImageDecodeError, match="premature end of data segment"):
        fastseq.decode_image(cut)
    img = fastseq.decode_image(cut, allow_truncated=True)
    assert img.shape == (120, 160, 3)


def _scan_bomb(size, repeats):
    """A flat progressive 4:4:4 JPEG whose last scan (a Y AC refinement, all
    EOB runs: 16 bytes) repeats: each repeat walks every Y block again."""
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (120, 130, 140)).save(buf, "JPEG", progressive=True,
                                                         subsampling=0)
    data = buf.getvalue()
    eoi = data.rindex(b"\xff\xd9")
    last = data.rindex(b"\xff\xda", 0, eoi)
    return data[:eoi] + data[last:eoi] * repeats + b"\xff\xd9"


def test_many_scan_progressive_bomb_is_refused_quickly():
    """A progressive stream with thousands of scans: refused at the default
    scan limit."""
    bomb = _scan_bomb(16, 600)
    with pytest.raises(fastseq.ImageDecodeError) as ei:
        fastseq.decode_batch([bomb], (8, 8))
    assert ei.value.code == "too_many_scans"
    assert ei.value.reason == "progressive JPEG has more than 500 scans (max_scans)"


def test_scan_work_is_bounded():
    """Scans x pixels, not just scans: 512x512 4:4:4 with 3000 repeated
    whole-image scans.  Its first 10 scans (Pillow's script) code 14 component
    passes over 512*512 samples; each repeat adds one."""
    bomb = _scan_bomb(512, 3000)
    px = 512 * 512
    limit = 20 * px
    with pytest.raises(fastseq.ImageDecodeError) as ei:
        fastseq.decode_batch([bomb], (8, 8), max_scans=None, max_scan_pixels=limit)
    e = ei.value
    assert e.code == "work_limit"
    assert e.reason == (f"JPEG scans decode more than max_scan_pixels={limit} samples "
                        f"({21 * px} after 17 scans)")
    with pytest.raises(fastseq.ImageDecodeError, match="max_scan_pixels"):
        fastseq.decode_image(bomb, max_scans=None, max_scan_pixels=limit)
    # The same file without its repeats is well within the limit.
    fastseq.decode_batch([_scan_bomb(512, 0)], (8, 8), max_scan_pixels=14 * px)
    assert fastseq.DEFAULT_MAX_SCAN_PIXELS == 16 * fastseq.DEFAULT_MAX_PIXELS


def _dds():
    import struct
    hdr = struct.pack("<6I", 0x1007, 8, 8, 0, 0, 0) + b"\0" * 44
    pf = struct.pack("<2I", 32, 0) + b"\0" * 24          # pixel format flags 0
    hdr += pf + b"\0" * (120 - len(hdr) - len(pf))
    return b"DDS " + struct.pack("<I", 124) + hdr + b"\0" * 64


def _blp():
    import struct
    return (b"BLP1" + struct.pack("<iIII", 1, 0, 8, 8) + struct.pack("<i", 7)
            + b"\0" * 1332)                              # encoding 7: unsupported


@pytest.mark.parametrize("make,reason", [
    (_dds, "Pillow: NotImplementedError: Unknown pixel format flags 0"),
    (_blp, "Pillow: BLPFormatError: Unsupported BLP encoding 7"),
])
def test_any_pillow_exception_is_that_files_error(tmp_path, good_jpeg, make, reason):
    """Pillow plugins raise NotImplementedError and others; they used to
    abort the whole batch, even with on_error="ignore"."""
    p = tmp_path / "odd.img"
    p.write_bytes(make())
    res, failed = fastseq.load_batch([good_jpeg, p], (8, 8), on_error="ignore",
                                     return_failed=True)
    assert [(f.index, f.source, f.code, f.reason) for f in failed] == [
        (1, str(p), "decode", reason)]
    assert res[0].any() and not res[1].any()
    _, failed = fastseq.decode_batch([make()], (8, 8), on_error="ignore", return_failed=True)
    assert [(f.source, f.reason) for f in failed] == [("<buffer 0>", reason)]
    with pytest.raises(fastseq.ImageDecodeError) as ei:
        fastseq.decode_image(p)
    assert (ei.value.source, ei.value.reason) == (str(p), reason)


LIMITS = ["max_pixels", "max_scans", "max_file_bytes", "max_memory", "max_scan_pixels"]
LIMIT_MAX = {"max_pixels": 2**64 - 1, "max_scans": 2**31 - 1, "max_file_bytes": 2**63 - 1,
             "max_memory": 2**64 - 1, "max_scan_pixels": 2**64 - 1}


@pytest.mark.parametrize("name", LIMITS)
@pytest.mark.parametrize("value", ["too_big", -1, 1.5, "many", True])
@pytest.mark.parametrize("api", ["load_batch", "decode_batch", "decode_image"])
def test_limits_out_of_range_are_value_errors(good_jpeg, name, value, api):
    hi = LIMIT_MAX[name]
    v = hi + 1 if value == "too_big" else value
    call = {"load_batch": lambda **k: fastseq.load_batch([good_jpeg], (8, 8), **k),
            "decode_batch": lambda **k: fastseq.decode_batch([good_jpeg.read_bytes()], (8, 8),
                                                             **k),
            "decode_image": lambda **k: fastseq.decode_image(good_jpeg, **k)}[api]
    with pytest.raises(ValueError) as ei:
        call(**{name: v})
    assert str(ei.value) == f"{name} must be None (no limit) or an int between 0 and {hi}, got {v!r}"
    call(**{name: hi})             # the largest accepted value works
    call(**{name: None})


def test_non_contiguous_buffer_is_a_value_error(good_jpeg):
    data = good_jpeg.read_bytes()
    strided = memoryview(data + data)[::2]
    with pytest.raises(ValueError, match=r"buffers\[1\] is a non-contiguous buffer; pass bytes"):
        fastseq.decode_batch([data, strided], (8, 8))
    with pytest.raises(ValueError, match=r"source is a non-contiguous buffer"):
        fastseq.decode_image(strided)


@pytest.mark.parametrize("kw", [dict(rescale=1e300), dict(rescale=-1e37), dict(offset=1e39),
                                dict(rescale=1e36, offset=1e38), dict(offset=float("inf"))])
def test_rescale_overflowing_float32_is_a_value_error(good_jpeg, kw):
    with pytest.raises(ValueError, match=r"255 \* \|rescale\| \+ \|offset\| <= 3.402823e\+38"):
        fastseq.load_batch([good_jpeg], (8, 8), dtype="float32", **kw)


def test_largest_rescale_is_finite(good_jpeg):
    out = fastseq.load_batch([good_jpeg], (8, 8), dtype="float32", rescale=1e36)
    assert np.isfinite(out).all() and out.max() > 1e37


def test_status_codes_are_distinct():
    from fastseq import _native
    codes = {s: _native.status_code(s) for s in range(1, 16) if s != 11}
    assert codes == {1: "memory", 2: "too_large", 3: "internal", 4: "io", 5: "empty",
                     6: "not_image", 7: "decode", 8: "truncated", 9: "too_many_pixels",
                     10: "too_many_scans", 12: "too_large", 13: "not_regular_file",
                     14: "memory_limit", 15: "work_limit"}


def _without_segment(data: bytes, marker: int) -> bytes:
    """`data` (a JPEG) with every segment of `marker` (0xC4 DHT, 0xDB DQT)
    before the first scan removed."""
    out, i = bytearray(data[:2]), 2
    while i < len(data):
        assert data[i] == 0xFF
        if data[i + 1] == 0xDA:
            out += data[i:]
            break
        n = 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if data[i + 1] != marker:
            out += data[i:i + n]
        i += n
    return bytes(out)


@pytest.mark.parametrize("marker", [0xC4, 0xDB], ids=["no_DHT", "no_DQT"])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_stream_without_its_tables_does_not_borrow_the_previous_images(marker, threads):
    """libjpeg keeps DQT/DHT tables across images on one decompressor:
    a stream that omits them must give what Pillow gives (a fresh
    decompressor per image) whatever a worker decoded before, not the
    previous image's tables. Without DHT libjpeg-turbo uses the standard
    Huffman tables (as Pillow does: decodes); without DQT it fails."""
    from PIL import Image

    good = encode(photo_like(40, 48, seed=3), "JPEG", quality=90)
    other = encode(photo_like(40, 48, seed=4), "JPEG", quality=20)   # other tables
    bad = _without_segment(good, marker)
    try:
        with Image.open(io.BytesIO(bad)) as im:
            want = np.asarray(im.convert("RGB"))
    except OSError:
        want = None
    before = fastseq.get_num_threads()
    fastseq.set_num_threads(threads)
    try:
        batch = [other, bad, good, bad, other, bad]
        out, failed = fastseq.decode_batch(batch, (40, 48), on_error="ignore",
                                           return_failed=True, dct_scaling=False)
    finally:
        fastseq.set_num_threads(before)
    if want is None:
        assert [(f.index, f.code) for f in failed] == [(1, "decode"), (3, "decode"),
                                                        (5, "decode")]
        assert "Quantization table 0x00 was not defined" in failed[0].reason
        assert not out[[1, 3, 5]].any()
    else:
        assert failed == []
        for i in (1, 3, 5):
            np.testing.assert_array_equal(out[i], want)
