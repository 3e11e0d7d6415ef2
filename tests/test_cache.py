"""The cache of resized pixels (fastseq.cache, csrc/cache.c): cached batches
are the same bits as uncached ones, a changed file is decoded again, damaged
entries are detected and rebuilt, concurrent writers are safe, the free-space
check, and reading a disk cache does not grow the process."""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import pathlib
import pickle
import shutil
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest

import fastseq
import fastseq.cache
from fastseq import CacheFullError, CacheWarning, ImageCache, load_batch
from fastseq.cache import _params

from conftest import PANDAS_MISSING, ROWS, CORPUS, encode, is_jpeg_row, photo_like


def corpus_paths(limit=40):
    if CORPUS is None:
        return []
    rows = [r for r in ROWS if is_jpeg_row(r)][:limit]
    return [str(CORPUS / r["file"]) for r in rows]


@pytest.fixture
def images(photo_dir, tmp_path):
    """Copies of the photo fixtures (JPEG, PNG, and the Pillow-fallback
    formats) and of corpus JPEGs, in a folder a test may modify."""
    d = tmp_path / "img"
    d.mkdir()
    out = []
    for i, p in enumerate(list(photo_dir) + corpus_paths()):
        q = d / f"{i:03d}_{os.path.basename(p)}"
        shutil.copyfile(p, q)
        out.append(str(q))
    return out


def store_of(cache, **opts):
    from fastseq.options import DecodeOptions
    return cache.store(DecodeOptions(**opts))


def entry_of(cache, path, **opts):
    return os.fsdecode(store_of(cache, **opts).entry_path(os.fsencode(os.path.abspath(path))))


def class_tree(images, root):
    """The images copied into two class folders under `root`."""
    for i, p in enumerate(images):
        d = root / f"c{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, d / os.path.basename(p))
    return root


def three_epochs(gen, root, cache, check=None):
    """Three epochs of batches (copies) of a seeded flow_from_directory,
    and the iterator; `check(it)` runs on the fresh iterator."""
    it = gen.flow_from_directory(root, target_size=(35, 45), batch_size=7, seed=5,
                                 on_error="ignore", cache=cache)
    if check is not None:
        check(it)
    out = []
    for _ in range(3):
        out.append([it[i][0].copy() for i in range(len(it))])
        it.on_epoch_end()
    return out, it


def assert_same_epochs(ref, got):
    for a, b in zip(ref, got):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


OPTIONS = [
    dict(),
    dict(dtype="float32", rescale=1 / 255, offset=-0.5),
    dict(color_mode="grayscale", interpolation="nearest"),
    dict(color_mode="rgba", keep_aspect_ratio=True, interpolation="bicubic"),
    dict(dct_scaling=False, interpolation="lanczos", dtype="float32"),
    dict(interpolation="box", keep_aspect_ratio=True, color_mode="grayscale", dtype="float32"),
]


@pytest.mark.parametrize("where", ["memory", "disk"])
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_cached_batches_are_the_uncached_bits(images, tmp_path, where, opts):
    cache = ImageCache("memory" if where == "memory" else tmp_path / "cache")
    ref, f0 = load_batch(images, (41, 57), on_error="ignore", return_failed=True, **opts)
    first, f1 = load_batch(images, (41, 57), on_error="ignore", return_failed=True,
                           cache=cache, **opts)
    second, f2 = load_batch(images, (41, 57), on_error="ignore", return_failed=True,
                            cache=cache, **opts)
    assert ref.dtype == second.dtype
    np.testing.assert_array_equal(first, ref)
    np.testing.assert_array_equal(second, ref)
    assert [(f.index, f.code, f.reason) for f in f2] == [(f.index, f.code, f.reason) for f in f0]
    stats = store_of(cache, target_size=(41, 57), on_error="ignore", **opts).stats
    ok = len(images) - len(f0)
    # the second call decoded nothing: every image came from the cache
    assert stats.get("hit", 0) == ok
    assert stats.get("stored", 0) == len(images) if where == "disk" else ok
    assert stats.get("hit_failed", 0) == len(f0)


@pytest.mark.parametrize("where", ["memory", "disk"])
@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_augmented_epochs_are_the_uncached_bits(images, tmp_path, where, dtype):
    pytest.importorskip("keras")
    from fastseq import ImageDataGenerator

    root = class_tree(images, tmp_path / "classes")
    gen = ImageDataGenerator(rescale=1 / 255 if dtype == "float32" else None,
                             rotation_range=25, zoom_range=0.2, horizontal_flip=True,
                             brightness_range=(0.7, 1.2), dtype=dtype)

    ref, _ = three_epochs(gen, root, None)
    got, it = three_epochs(gen, root, "memory" if where == "memory" else str(tmp_path / "cache"))
    assert_same_epochs(ref, got)
    # epochs differ (augmentation is redrawn), and epochs 2-3 were cache hits
    assert not all(np.array_equal(x, y) for x, y in zip(got[0], got[1]))
    assert it._store().stats.get("hit", 0) >= 2 * (len(images) - 6)


def _set_mtime_later(path, ns=5_000_000):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + ns))


@pytest.mark.parametrize("where", ["memory", "disk"])
@pytest.mark.parametrize("change", ["rewrite", "touch", "same_size", "renamed_over",
                                    "mtime_restored"])
def test_a_changed_file_is_decoded_again(tmp_path, where, change):
    """Rewritten, touched, rewritten at the same size; replaced by a rename
    of another image of the same size and the same mtime (what a `cp -p`,
    `tar x` or `rsync -t` copy moved into place is); rewritten at the same
    size and given its old mtime back."""
    bmp = change in ("same_size", "renamed_over", "mtime_restored")
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.{'bmp' if bmp else 'jpg'}"
        arr = photo_like(60, 80, seed=i)
        p.write_bytes(encode(arr, "BMP" if bmp else "JPEG"))
        paths.append(str(p))
    cache = ImageCache("memory" if where == "memory" else tmp_path / "cache")
    first = load_batch(paths, (30, 40), cache=cache)
    target = paths[1]
    size = os.path.getsize(target)
    if change == "touch":
        _set_mtime_later(target)
    elif change in ("renamed_over", "mtime_restored"):
        st = os.stat(target)
        data = encode(photo_like(60, 80, seed=99), "BMP")
        dest = target + ".new" if change == "renamed_over" else target
        with open(dest, "wb") as f:
            f.write(data)
        os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
        if change == "renamed_over":
            os.replace(dest, target)
        after = os.stat(target)
        assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    else:
        new = photo_like(60, 80, seed=99)
        data = encode(new, "BMP" if change == "same_size" else "JPEG", quality=60)
        mtime = os.stat(target).st_mtime_ns
        with open(target, "wb") as f:
            f.write(data)
        # the file system's clock may not have ticked: the file's mtime moves
        os.utime(target, ns=(mtime, mtime + 5_000_000))
        if bmp:
            assert os.path.getsize(target) == size
    ref = load_batch(paths, (30, 40))
    got = load_batch(paths, (30, 40), cache=cache)
    np.testing.assert_array_equal(got, ref)
    if change != "touch":
        assert not np.array_equal(got[1], first[1])
    stats = store_of(cache, target_size=(30, 40)).stats
    assert stats.get("hit", 0) == 2
    if where == "disk":
        assert stats.get("stale", 0) == 1
    # ... and its entry was replaced: the next call is all hits
    again = load_batch(paths, (30, 40), cache=cache)
    np.testing.assert_array_equal(again, ref)
    assert store_of(cache, target_size=(30, 40)).stats.get("hit", 0) == 5


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_a_relative_path_follows_the_working_directory(tmp_path, where, monkeypatch):
    """The same relative name in two directories with the same size and
    mtime: after os.chdir one ImageCache serves the other file, as the
    uncached path reads it (its entry is the new absolute path's)."""
    data = {}
    for d, seed in (("A", 1), ("B", 2)):
        (tmp_path / d).mkdir()
        f = tmp_path / d / "x.bmp"
        f.write_bytes(encode(photo_like(20, 30, seed=seed), "BMP"))
        os.utime(f, ns=(10**18, 10**18))
        data[d] = f
    assert os.path.getsize(data["A"]) == os.path.getsize(data["B"])
    cache = ImageCache("memory" if where == "memory" else tmp_path / "cache")
    got = {}
    for d in ("A", "B", "A"):
        monkeypatch.chdir(tmp_path / d)
        got[d] = load_batch(["x.bmp"], (10, 15), cache=cache)
        np.testing.assert_array_equal(got[d], load_batch([str(data[d])], (10, 15)))
    assert not np.array_equal(got["A"], got["B"])
    stats = store_of(cache, target_size=(10, 15)).stats
    assert (stats.get("hit", 0), stats.get("stored", 0)) == (1, 2)


@pytest.mark.parametrize("deleted", ["location", "store"])
def test_a_cache_deleted_while_in_use_is_made_again(tmp_path, images, deleted):
    """The README's way to clear a cache, deleting its directory (or a
    v1-* store), while an ImageCache or a dataset still uses it: the next
    load_batch call, and the next batch of an iterator, make the store
    again and write its entries afresh; no error, no warning, the same
    bits."""
    pytest.importorskip("keras")
    from fastseq import ImageDataGenerator

    loc = tmp_path / "cache"
    cache = ImageCache(loc)
    ref = load_batch(images, (12, 10), on_error="ignore")
    load_batch(images, (12, 10), cache=cache, on_error="ignore")
    root = store_of(cache, target_size=(12, 10)).root
    root_it = class_tree(images, tmp_path / "tree")
    gen = ImageDataGenerator()
    it = gen.flow_from_directory(root_it, target_size=(12, 10), batch_size=4, shuffle=False,
                                 cache=str(loc), prefetch=False, on_error="ignore")
    plain = gen.flow_from_directory(root_it, target_size=(12, 10), batch_size=4,
                                    shuffle=False, prefetch=False, on_error="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for epoch in range(3):
            shutil.rmtree(loc if deleted == "location" else root)
            np.testing.assert_array_equal(
                load_batch(images, (12, 10), cache=cache, on_error="ignore"), ref)
            assert os.path.isfile(os.path.join(root, "params.txt"))
            shutil.rmtree(loc if deleted == "location" else it._store().root)
            for i in range(len(it)):
                np.testing.assert_array_equal(it[i][0], plain[i][0])
            assert os.path.isfile(os.path.join(it._store().root, "params.txt"))
            it.on_epoch_end()
            plain.on_epoch_end()
    stats = store_of(cache, target_size=(12, 10)).stats
    assert "store_failed" not in stats and stats.get("hit", 0) == 0
    assert "store_failed" not in it._store().stats
    # the last epoch's entries are all there: a new reader only hits
    load_batch(images, (12, 10), cache=ImageCache(loc), on_error="ignore")
    assert set(store_of(ImageCache(loc), target_size=(12, 10)).stats) <= {"hit", "hit_failed"}


@pytest.mark.parametrize("where", ["memory", "disk"])
@pytest.mark.parametrize("fmt", ["BMP", "GIF"])         # the C decoders, Pillow's fallback
def test_a_chdir_during_a_batch_stores_no_other_files_pixels(tmp_path, where, fmt, monkeypatch):
    """The working directory changes between the store's plan (stat and
    key of X/x) and the decode (a prefetch thread's batch while the main
    thread calls os.chdir): the file read is still X/x, whose key it is;
    Y/x's pixels are never stored under X/x's key."""
    ext = fmt.lower()
    for d, seed in (("X", 1), ("Y", 2)):
        (tmp_path / d).mkdir()
        (tmp_path / d / f"x.{ext}").write_bytes(encode(photo_like(20, 30, seed=seed), fmt))
    x_ref = load_batch([str(tmp_path / "X" / f"x.{ext}")], (10, 15))
    assert not np.array_equal(x_ref, load_batch([str(tmp_path / "Y" / f"x.{ext}")], (10, 15)))
    cache = ImageCache("memory" if where == "memory" else tmp_path / "cache")
    plan = fastseq.cache._Store.plan

    def plan_then_chdir(self, encoded):
        got = plan(self, encoded)
        os.chdir(tmp_path / "Y")
        return got

    monkeypatch.chdir(tmp_path / "X")
    monkeypatch.setattr(fastseq.cache._Store, "plan", plan_then_chdir)
    np.testing.assert_array_equal(load_batch([f"x.{ext}"], (10, 15), cache=cache), x_ref)
    monkeypatch.setattr(fastseq.cache._Store, "plan", plan)
    monkeypatch.chdir(tmp_path / "X")
    np.testing.assert_array_equal(load_batch([f"x.{ext}"], (10, 15), cache=cache), x_ref)
    assert store_of(cache, target_size=(10, 15)).stats.get("hit", 0) == 1


def test_a_relative_path_without_a_working_directory_fails_as_uncached(tmp_path, images,
                                                                      monkeypatch):
    """A relative path whose working directory was deleted: that image
    fails as it does uncached (on_error), the others load; no exception
    from the cache."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    paths = ["nope.jpg", images[0]]
    ref, ref_failed = load_batch(paths, (12, 10), on_error="ignore", return_failed=True)
    for loc in ("memory", str(tmp_path / "cache")):
        got, failed = load_batch(paths, (12, 10), on_error="ignore", return_failed=True,
                                 cache=ImageCache(loc))
        np.testing.assert_array_equal(got, ref)
        assert failed == ref_failed and [(f.index, f.code) for f in failed] == [(0, "io")]


def test_a_deleted_shard_directory_is_made_again_after_the_failed_write(tmp_path, images):
    """One of a store's 256 shard directories deleted: the write of an
    entry there fails (one warning), and the next call makes the directory
    again and stores it."""
    jpeg = next(p for p in images if p.endswith(".jpg"))
    cache = ImageCache(tmp_path / "cache")
    load_batch([images[0]], (12, 10), cache=cache, on_error="ignore")   # the store exists
    shard = os.path.dirname(entry_of(cache, jpeg, target_size=(12, 10)))
    shutil.rmtree(shard)
    ref = load_batch([jpeg], (12, 10))
    with pytest.warns(CacheWarning, match="cannot write an entry under"):
        np.testing.assert_array_equal(load_batch([jpeg], (12, 10), cache=cache), ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(load_batch([jpeg], (12, 10), cache=cache), ref)
    assert os.path.isfile(entry_of(cache, jpeg, target_size=(12, 10)))
    assert store_of(cache, target_size=(12, 10)).stats["stored"] == 2


def test_a_store_that_cannot_be_made_again_is_skipped_with_one_warning(tmp_path, images,
                                                                      monkeypatch):
    """A store deleted while in use that cannot be made again at the next
    call (deleted again meanwhile, a read-only file system): that call is
    the uncached batch, and the failed writes warn once; no exception."""
    jpeg = next(p for p in images if p.endswith(".jpg"))
    cache = ImageCache(tmp_path / "cache")
    load_batch([jpeg], (12, 10), cache=cache)
    shutil.rmtree(tmp_path / "cache")

    def makedirs(path, mode=0o777, exist_ok=False):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)

    monkeypatch.setattr(os, "makedirs", makedirs)
    with pytest.warns(CacheWarning, match="cannot write an entry under") as w:
        got = load_batch([jpeg], (12, 10), cache=cache)
    np.testing.assert_array_equal(got, load_batch([jpeg], (12, 10)))
    assert len([m for m in w if m.category is CacheWarning]) == 1


def test_a_store_turned_off_by_a_full_disk_comes_back(tmp_path, images, monkeypatch):
    """on_full="warn": a call that would not fit runs without the cache
    (one warning); a later call with room uses it again; full again, one
    more warning."""
    jpeg = next(p for p in images if p.endswith(".jpg"))
    cache = ImageCache(tmp_path / "cache", on_full="warn")
    room = {"bytes": 0}
    monkeypatch.setattr(fastseq.cache, "free_space", lambda p: room["bytes"])
    stats = lambda: store_of(cache, target_size=(12, 10)).stats   # noqa: E731
    with pytest.warns(CacheWarning, match="running without the cache") as w:
        load_batch([jpeg], (12, 10), cache=cache)
        load_batch([jpeg], (12, 10), cache=cache)            # still full: no new warning
    assert len([m for m in w if m.category is CacheWarning]) == 1 and stats() == {}
    assert w[0].filename == __file__                        # the caller's line
    room["bytes"] = 10 ** 12
    load_batch([jpeg], (12, 10), cache=cache)
    load_batch([jpeg], (12, 10), cache=cache)
    assert (stats()["stored"], stats()["hit"]) == (1, 1)
    other = next(p for p in images if p.endswith(".png"))
    room["bytes"] = 0
    with pytest.warns(CacheWarning, match="running without the cache"):
        load_batch([other], (12, 10), cache=cache)
    assert stats()["stored"] == 1


def test_the_path_memo_keeps_a_bounded_number_of_directories(tmp_path, images, monkeypatch):
    monkeypatch.setattr(fastseq.cache, "_CWDS_MAX", 3)
    cache = ImageCache(tmp_path / "cache")
    for k in range(10):
        (tmp_path / f"job{k}").mkdir()
        monkeypatch.chdir(tmp_path / f"job{k}")
        load_batch([images[0]], (12, 10), cache=cache, on_error="ignore")
    assert 1 <= len(store_of(cache, target_size=(12, 10))._names) <= 3


def test_a_cache_warning_of_a_batch_decoded_ahead_waits_for_that_batch(tmp_path, images):
    """A damaged entry met by the prefetch thread while it decodes batch 1
    ahead: its CacheWarning comes when batch 1 is served, attributed to the
    caller, not while batch 0 is (as the decode warnings of a batch decoded
    ahead)."""
    pytest.importorskip("keras")
    from fastseq import ImageSequence

    paths = [p for p in images if p.endswith(".jpg")][:8]
    loc = tmp_path / "cache"
    load_batch(paths, (12, 10), cache=ImageCache(loc))          # every entry stored
    entry = entry_of(ImageCache(loc), paths[5], target_size=(12, 10))
    with open(entry, "r+b") as f:                              # a pixel byte flipped
        f.seek(-1, os.SEEK_END)
        b = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([b[0] ^ 0xFF]))
    seq = ImageSequence(paths, dim=(12, 10), batch_size=4, shuffle=False, cache=str(loc),
                        interpolation="bilinear", dtype="uint8", rescale=None)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        seq[0]
        pending = seq._prefetcher._pending
        assert pending is not None
        pending[1].result(timeout=60)                          # batch 1 decoded ahead
        assert [m for m in w if m.category is CacheWarning] == []
        x1 = seq[1]
    got = [m for m in w if m.category is CacheWarning]
    assert len(got) == 1 and f"entry {entry!r} is damaged (" in str(got[0].message)
    np.testing.assert_array_equal(x1, load_batch(paths[4:], (12, 10)))


@pytest.mark.parametrize("where", ["memory", "disk"])
@pytest.mark.parametrize("absolute", [False, True])
def test_dotdot_after_a_symlink_is_the_file_the_kernel_opens(tmp_path, where, absolute,
                                                             monkeypatch):
    """"link/../x.bmp" with link -> real/sub is real/x.bmp to the kernel
    (it follows the link, then goes up), not ./x.bmp as os.path.abspath
    spells it: cached, as uncached, it is real/x.bmp, beside ./x.bmp in the
    same batch, first from the decode and then from the cache."""
    (tmp_path / "real" / "sub").mkdir(parents=True)
    os.symlink(tmp_path / "real" / "sub", tmp_path / "link")
    (tmp_path / "real" / "x.bmp").write_bytes(encode(photo_like(20, 30, seed=1), "BMP"))
    (tmp_path / "x.bmp").write_bytes(encode(photo_like(20, 30, seed=2), "BMP"))
    monkeypatch.chdir(tmp_path)
    base = f"{tmp_path}/" if absolute else ""
    paths = [f"{base}link/../x.bmp", f"{base}x.bmp"]
    ref = load_batch(paths, (10, 15))
    np.testing.assert_array_equal(ref[0], load_batch([str(tmp_path / "real" / "x.bmp")],
                                                     (10, 15))[0])
    assert not np.array_equal(ref[0], ref[1])
    cache = ImageCache("memory" if where == "memory" else tmp_path / "cache")
    for _ in range(2):
        np.testing.assert_array_equal(load_batch(paths, (10, 15), cache=cache), ref)
    assert store_of(cache, target_size=(10, 15)).stats["hit"] == 2


def test_parameters_are_part_of_the_key(tmp_path, images):
    cache = ImageCache(tmp_path / "cache")
    load_batch(images[:4], (30, 40), cache=cache)
    variants = [dict(target_size=(40, 30)), dict(interpolation="bicubic"),
                dict(color_mode="grayscale"), dict(keep_aspect_ratio=True),
                dict(dct_scaling=False), dict(max_pixels=10_000_000)]
    for v in variants:
        kw = {"target_size": (30, 40), **v}
        ts = kw.pop("target_size")
        ref = load_batch(images[:4], ts, **kw)
        got = load_batch(images[:4], ts, cache=cache, **kw)
        np.testing.assert_array_equal(got, ref)
        assert store_of(cache, target_size=ts, **kw).stats.get("hit", 0) == 0, v
    roots = {s.root for s in cache._stores.values()}
    assert len(roots) == len(variants) + 1
    # dtype and rescale change no cached pixel: one entry set serves both
    load_batch(images[:4], (30, 40), cache=cache, dtype="float32", rescale=0.5)
    assert store_of(cache, target_size=(30, 40), dtype="float32", rescale=0.5).stats["hit"] == 4


def test_versions_are_in_the_key(monkeypatch):
    from fastseq.options import DecodeOptions
    o = DecodeOptions((10, 10))
    base = _params(o)
    assert f"fastseq={fastseq.__version__}" in base
    assert f"libjpeg-turbo={fastseq._native.libjpeg_version()}" in base
    import PIL
    assert f"pillow={PIL.__version__}" in base
    monkeypatch.setattr(fastseq, "__version__", "99.0")
    assert _params(o) != base


def test_an_interrupted_epoch_keeps_what_it_wrote(tmp_path, images):
    pytest.importorskip("keras")
    from fastseq import ImageSequence

    cache = str(tmp_path / "cache")
    seq = ImageSequence(images, batch_size=5, dim=(33, 27), shuffle=False,
                        label_mode=None, on_error="ignore", cache=cache, prefetch=False)
    seq[0]          # a spec probe, then the run dies
    seq[1]
    del seq
    leftover = tmp_path / "cache" / "stale.7.0.tmp"   # a writer killed mid-write
    leftover.write_bytes(b"FSQC partial")
    seq2 = ImageSequence(images, batch_size=5, dim=(33, 27), shuffle=False,
                         label_mode=None, on_error="ignore", cache=cache, prefetch=False)
    ref = ImageSequence(images, batch_size=5, dim=(33, 27), shuffle=False,
                        label_mode=None, on_error="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        for i in range(len(ref)):
            np.testing.assert_array_equal(seq2[i], ref[i])
    stats = seq2._store().stats
    assert stats.get("hit", 0) + stats.get("hit_failed", 0) == 10
    assert stats.get("absent", 0) == len(images) - 10


def _write_all(args):
    paths, cache_dir, order_seed = args
    if not isinstance(cache_dir, ImageCache):
        cache_dir = ImageCache(cache_dir)
    order = np.random.default_rng(order_seed).permutation(len(paths))
    for k in range(0, len(paths), 4):
        load_batch([paths[i] for i in order[k:k + 4]], (29, 31), on_error="ignore",
                   cache=cache_dir)
    cache = cache_dir if isinstance(cache_dir, ImageCache) else None
    stats = store_of(cache, target_size=(29, 31), on_error="ignore").stats if cache else {}
    return os.getpid(), stats


def _check_entries(cache_dir, paths):
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(cache_dir) for f in fs]
    assert not [f for f in files if f.endswith(".tmp")]
    ref, failed = load_batch(paths, (29, 31), on_error="ignore", return_failed=True)
    cache = ImageCache(cache_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        got = load_batch(paths, (29, 31), on_error="ignore", cache=cache)
    np.testing.assert_array_equal(got, ref)
    stats = store_of(cache, target_size=(29, 31), on_error="ignore").stats
    assert stats == {"hit": len(paths) - len(failed), "hit_failed": len(failed)} \
        if failed else {"hit": len(paths)}


def test_two_processes_write_one_cache(tmp_path, images):
    cache_dir = str(tmp_path / "cache")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        done = pool.map(_write_all, [(images, cache_dir, 1), (images, cache_dir, 2)])
    assert len({pid for pid, _ in done}) == 2
    # an entry is visible only when complete: no reader saw a partial one
    assert all(stats.get("corrupt", 0) == 0 for _, stats in done), done
    _check_entries(cache_dir, images)


def test_threads_write_one_cache(tmp_path, images):
    cache_dir = str(tmp_path / "cache")
    cache = ImageCache(cache_dir)
    errors = []

    def run(seed):
        try:
            _write_all((images, cache, seed))
        except BaseException as e:   # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store_of(cache, target_size=(29, 31), on_error="ignore").stats.get("corrupt", 0) == 0
    _check_entries(cache_dir, images)


def _damage(path, how):
    data = bytearray(open(path, "rb").read())
    if how == "flip_pixel":
        data[-7] ^= 0x40          # in the payload's last, partial 32-byte block
    elif how == "flip_block_pixel":
        data[-100] ^= 0x40        # in a whole block (the float32 write sums those)
    elif how == "flip_header":
        data[17] ^= 0x01          # the width
    elif how == "truncate":
        data = data[:len(data) // 2]
    elif how == "version":
        data[8:12] = (99).to_bytes(4, "little")
    elif how == "garbage":
        data = bytearray(os.urandom(len(data)))
    elif how == "empty":
        data = bytearray()
    with open(path, "wb") as f:
        f.write(data)


# what the warning says was wrong with the entry
DAMAGE_REASONS = {"flip_pixel": "checksum mismatch", "flip_block_pixel": "checksum mismatch",
                  "flip_header": "holds ",
                  "truncate": "truncated or overlong", "version": "format version 99",
                  "garbage": "bad magic", "empty": "shorter than the 48-byte header"}


@pytest.mark.parametrize("how", list(DAMAGE_REASONS))
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_a_damaged_entry_is_rebuilt_with_one_warning(tmp_path, images, how, dtype):
    paths = images[:6]
    load_batch(paths, (26, 34), dtype=dtype, cache=tmp_path / "cache")
    cache = ImageCache(tmp_path / "cache")
    victim = entry_of(cache, paths[2], target_size=(26, 34), dtype=dtype)
    _damage(victim, how)
    ref = load_batch(paths, (26, 34), dtype=dtype)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got = load_batch(paths, (26, 34), dtype=dtype, cache=cache)
        again = load_batch(paths, (26, 34), dtype=dtype, cache=cache)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(again, ref)
    cw = [x for x in w if issubclass(x.category, CacheWarning)]
    assert len(cw) == 1, [str(x.message) for x in cw]
    assert victim in str(cw[0].message) and "rebuilt" in str(cw[0].message)
    assert f"is damaged (" in str(cw[0].message) and DAMAGE_REASONS[how] in str(cw[0].message)
    assert store_of(cache, target_size=(26, 34), dtype=dtype).stats == \
        {"hit": 5 + 6, "corrupt": 1, "stored": 1}


# fs_cache_checksum of bytes((i * 131 + 7) % 256 for i in range(n)) as
# format 1 wrote it (fastseq 727185e): entries written by earlier builds stay
# readable, whichever way the sum is computed (whole, or block by block while
# writing a float32 slot).
CHECKSUMS_V1 = {0: 16635145016632497547, 1: 9486862598165472827, 7: 2682611367032319616,
                8: 7062224613606250319, 31: 17114551293992729973, 32: 2381418647118621126,
                33: 17612279532729177869, 63: 3211720289990468214,
                64: 3909825378249529158, 100: 15044351852403973769,
                1000: 11889424746116074130}


@pytest.mark.parametrize("n", sorted(CHECKSUMS_V1))
def test_the_entry_checksum_is_format_1s(n):
    data = bytes((i * 131 + 7) % 256 for i in range(n))
    assert fastseq._native.cache_checksum(data) == CHECKSUMS_V1[n]


@pytest.mark.parametrize("where", ["memory", "disk"])
@pytest.mark.parametrize("misalign", [0, 4, 8, 12])
def test_large_float32_slots_are_the_uncached_bits(images, tmp_path, where, misalign):
    """Float32 slots of 256 KiB and more are written with streaming stores
    from their first 16-byte boundary on (csrc/batch.c, FS_STREAM_MIN_BYTES),
    a disk hit's checksum summed in the same pass: the same bits as an
    uncached batch wherever ``out=`` starts, and a damaged entry is still
    caught.  150x190x3 floats are 342,000 bytes a slot (85,500 values: a
    partial 32-byte block at the end)."""
    paths = images[:5]
    kw = dict(dtype="float32", rescale=1 / 255, offset=-0.5)
    ref = load_batch(paths, (150, 190), **kw)
    cache = ImageCache("memory") if where == "memory" else ImageCache(tmp_path / "cache")
    raw = np.empty(ref.nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64 + misalign
    out = raw[start:start + ref.nbytes].view(np.float32).reshape(ref.shape)
    for _ in range(2):      # the misses' write, then the hits'
        out[...] = np.nan
        got = load_batch(paths, (150, 190), out=out, cache=cache, **kw)
        assert np.shares_memory(got, out)
        np.testing.assert_array_equal(got, ref)
    if where == "disk":
        entry = entry_of(cache, paths[1], target_size=(150, 190), **kw)
        _damage(entry, "flip_block_pixel")
        out[...] = np.nan
        with pytest.warns(CacheWarning, match="checksum mismatch"):
            got = load_batch(paths, (150, 190), out=out, cache=cache, **kw)
        np.testing.assert_array_equal(got, ref)


def test_entries_are_read_as_written(tmp_path, images):
    cache = ImageCache(tmp_path / "cache")
    ref = load_batch(images[:3], (20, 22), cache=cache)
    store = store_of(cache, target_size=(20, 22))
    a = os.fsencode(os.path.abspath(images[0]))
    key = store.key(a, os.stat(images[0]))
    result, pix, status, msg, why = fastseq._native.cache_read(store.entry_path(a), key, 22, 20, 3)
    assert result == "hit" and status == 0
    np.testing.assert_array_equal(pix, ref[0])
    assert fastseq._native.cache_read(store.entry_path(a), key + b"x", 22, 20, 3)[0] == "stale"
    assert fastseq._native.cache_read(store.entry_path(a) + b"no", key, 22, 20, 3)[0] == "absent"
    size = os.path.getsize(store.entry_path(a))
    assert size == fastseq._native.CACHE_HEADER + len(key) + 20 * 22 * 3


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_failed_images_are_remembered_until_they_change(tmp_path, where):
    good = photo_like(40, 50, seed=1)
    paths = [tmp_path / "ok.jpg", tmp_path / "cut.jpg", tmp_path / "junk.png"]
    paths[0].write_bytes(encode(good))
    paths[1].write_bytes(encode(good)[:300])          # truncated JPEG: "decode"/"truncated"
    paths[2].write_bytes(b"\x00not an image" * 20)     # Pillow cannot identify it
    paths = [str(p) for p in paths]
    cache = ImageCache("memory" if where == "memory" else tmp_path / "cache")
    _, f1 = load_batch(paths, (20, 25), on_error="ignore", return_failed=True, cache=cache)
    _, f2 = load_batch(paths, (20, 25), on_error="ignore", return_failed=True, cache=cache)
    assert [(f.index, f.code, f.reason) for f in f2] == [(f.index, f.code, f.reason) for f in f1]
    assert [f.code for f in f1] == ["truncated", "not_image"] or [f.index for f in f1] == [1, 2]
    stats = store_of(cache, target_size=(20, 25), on_error="ignore").stats
    assert stats.get("hit_failed", 0) == 2 and stats.get("hit", 0) == 1
    with pytest.raises(fastseq.ImageDecodeError) as e:     # raise mode: the same failure
        load_batch(paths, (20, 25), cache=cache)
    assert e.value.index == 1
    # fixed files are decoded again
    for p in paths[1:]:
        mtime = os.stat(p).st_mtime_ns
        with open(p, "wb") as f:
            f.write(encode(good))
        os.utime(p, ns=(mtime, mtime + 5_000_000))
    got = load_batch(paths, (20, 25), cache=cache)
    np.testing.assert_array_equal(got, load_batch(paths, (20, 25)))


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_free_space_check(tmp_path, images, monkeypatch, where):
    loc = "memory" if where == "memory" else tmp_path / "cache"
    seen = []

    def tiny(path):
        seen.append(path)
        return 1000
    monkeypatch.setattr(fastseq.cache, "free_space", tiny)
    with pytest.raises(CacheFullError) as e:
        load_batch(images, (50, 60), cache=ImageCache(loc))
    n = len(set(images))
    need = int(str(e.value).split(" need ")[1].split()[0])
    assert f"{n} images of 50x60x3" in str(e.value) and "is 1000 bytes" in str(e.value)
    assert need >= n * 50 * 60 * 3
    assert seen[-1] is None if where == "memory" else seen[-1].startswith(str(tmp_path))
    # on_full="warn": a warning, and the batch without the cache
    cache = ImageCache(loc, on_full="warn")
    with pytest.warns(CacheWarning, match="need .* bytes but the .* is 1000 bytes"):
        got = load_batch(images, (50, 60), cache=cache)
    np.testing.assert_array_equal(got, load_batch(images, (50, 60)))
    if where == "disk":
        assert not [f for _, _, fs in os.walk(tmp_path / "cache") for f in fs
                    if f != "params.txt"]
    # enough room: no error, and an already-stored entry needs none
    monkeypatch.setattr(fastseq.cache, "free_space", lambda p: 10 ** 12)
    load_batch(images, (50, 60), cache=ImageCache(loc))
    monkeypatch.setattr(fastseq.cache, "free_space", tiny)
    if where == "disk":
        load_batch(images, (50, 60), cache=ImageCache(loc))      # all present


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_a_warm_cache_measures_no_free_space(tmp_path, images, monkeypatch, where):
    """Once every entry is stored, a load_batch call makes no statvfs (nor
    reads /proc/meminfo): nothing is to be written, so nothing is checked."""
    cache = ImageCache("memory" if where == "memory" else tmp_path / "cache")
    load_batch(images, (20, 25), cache=cache)

    def measured(*args):
        raise AssertionError("free space measured for a warm cache")
    monkeypatch.setattr(fastseq.cache, "free_space", measured)
    monkeypatch.setattr(fastseq.cache, "disk_units", measured)
    np.testing.assert_array_equal(load_batch(images, (20, 25), cache=cache),
                                  load_batch(images, (20, 25)))


def test_free_space_check_on_a_full_tmpfs(tmp_path, images, monkeypatch):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        with pytest.raises(CacheFullError, match="but the free space in"):
            load_batch(images, (64, 64), cache=mnt / "cache")
        # when the check is passed (a figure that lies), a full disk makes
        # the writes fail: one warning, the right batch, no temp file left
        monkeypatch.setattr(fastseq.cache, "free_space", lambda p: 10 ** 12)
        with pytest.warns(CacheWarning, match="cannot write an entry"):
            got = load_batch(images, (64, 64), cache=mnt / "cache")
        np.testing.assert_array_equal(got, load_batch(images, (64, 64)))
        assert not [f for _, _, fs in os.walk(mnt) for f in fs if f.endswith(".tmp")]
    finally:
        subprocess.run(["umount", str(mnt)])


def tiny_images(tmp_path, n):
    """`n` different 1x1 PNGs: entries of ~600 bytes, each a whole block."""
    d = tmp_path / "tiny"
    d.mkdir()
    out = []
    for i in range(n):
        p = d / f"{i:03d}.png"
        p.write_bytes(encode(np.full((1, 1, 3), i % 256, np.uint8), "PNG"))
        out.append(str(p))
    return out


def test_free_space_counts_whole_blocks_and_inodes(tmp_path, monkeypatch):
    """Each missing entry needs whole allocation blocks and one inode: 40
    tiny entries on 4 KiB blocks need 40 * 4096 bytes, and 10 free inodes
    are too few for them, however many bytes are free."""
    paths = tiny_images(tmp_path, 40)
    loc = tmp_path / "cache"
    monkeypatch.setattr(fastseq.cache, "free_space", lambda p: 40 * 4096 - 1)
    monkeypatch.setattr(fastseq.cache, "disk_units", lambda p: (4096, 10 ** 6))
    with pytest.raises(CacheFullError) as e:
        load_batch(paths, (1, 1), cache=ImageCache(loc))
    store = store_of(ImageCache(loc), target_size=(1, 1)).root
    assert str(e.value) == (
        f"fastseq cache: 40 images of 1x1x3 need {40 * 4096} bytes but the free space in "
        f"{store} is {40 * 4096 - 1} bytes (pass cache=fastseq.ImageCache(..., "
        f"on_full='warn') to run without the cache instead)")
    monkeypatch.setattr(fastseq.cache, "free_space", lambda p: 10 ** 12)
    monkeypatch.setattr(fastseq.cache, "disk_units", lambda p: (4096, 39))
    with pytest.warns(CacheWarning) as w:
        got = load_batch(paths, (1, 1), cache=ImageCache(loc, on_full="warn"))
    assert [str(m.message) for m in w] == [
        f"fastseq cache: 40 images of 1x1x3 need 40 files but the file system of {store} has "
        f"39 free inodes; running without the cache"]
    np.testing.assert_array_equal(got, load_batch(paths, (1, 1)))
    # a file system that does not count inodes (None) is not held to them
    monkeypatch.setattr(fastseq.cache, "disk_units", lambda p: (4096, None))
    load_batch(paths, (1, 1), cache=ImageCache(loc))
    assert len([f for _, _, fs in os.walk(loc) for f in fs if f != "params.txt"]) == 40


@pytest.mark.parametrize("limit", ["size=1m", "size=64m,nr_inodes=300"])
def test_tiny_entries_on_a_small_tmpfs_fail_up_front(tmp_path, monkeypatch, limit):
    """300 1x1 images on a real tmpfs of 1 MiB (their entries' bytes fit,
    their blocks do not) or with 300 inodes (the store's 257 directories
    and params.txt leave too few): CacheFullError before anything is
    written, not a warning on the first call and an error on the next."""
    paths = tiny_images(tmp_path, 300)
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", limit, "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        with pytest.raises(CacheFullError, match="fastseq cache: 300 images of 1x1x3 need "
                           + ("[0-9]+ bytes" if limit == "size=1m" else "300 files")):
            load_batch(paths, (1, 1), cache=mnt / "cache")
        assert [f for _, _, fs in os.walk(mnt) for f in fs] == ["params.txt"]
    finally:
        subprocess.run(["umount", str(mnt)])


def test_reading_a_disk_cache_keeps_rss_flat(tmp_path):
    psutil = pytest.importorskip("psutil")
    src = tmp_path / "src"
    src.mkdir()
    paths = []
    for i in range(48):
        p = src / f"{i}.jpg"
        p.write_bytes(encode(photo_like(24, 24, seed=i)))
        paths.append(str(p))
    size = (512, 512)              # 768 KiB an entry: a 36 MiB cache
    cache = ImageCache(tmp_path / "cache")
    for k in range(0, len(paths), 8):
        load_batch(paths[k:k + 8], size, cache=cache)
    proc = psutil.Process()
    load_batch(paths[:8], size, cache=cache)
    before = proc.memory_info().rss
    for _ in range(3):
        for k in range(0, len(paths), 8):
            load_batch(paths[k:k + 8], size, cache=cache)
    growth = proc.memory_info().rss - before
    assert store_of(cache, target_size=size).stats["hit"] == 8 + 3 * 48
    # the cache is 36 MiB; a reader holds one batch (6 MiB) at a time
    assert growth < 12 * 2 ** 20, growth


def test_cache_argument_validation_and_pickling(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="on_full"):
        ImageCache("memory", on_full="ignore")
    with pytest.raises(TypeError, match="cache must be"):
        load_batch([], (10, 10), cache=3)
    c = ImageCache(tmp_path / "c", on_full="warn")
    c2 = pickle.loads(pickle.dumps(c))
    assert c2.location == str(tmp_path / "c") and c2.on_full == "warn"
    # "~" is the home directory, as in the README's example
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ImageCache("~/c").location == str(tmp_path / "home" / "c")
    assert ImageCache(pathlib.Path("~") / "d").location == str(tmp_path / "home" / "d")
    m = pickle.loads(pickle.dumps(ImageCache("memory")))
    assert m.in_memory
    with pytest.raises(TypeError):
        pickle.dumps(store_of(c, target_size=(5, 5)))


@pytest.mark.parametrize("where", ["location", "store", "shard"])
def test_a_file_where_a_cache_directory_belongs_is_a_clear_error(tmp_path, images, where):
    """A regular file as the cache directory, or where a parameter set's
    store directory belongs: NotADirectoryError naming it, nothing
    written."""
    jpeg = next(p for p in images if p.endswith(".jpg"))
    loc = tmp_path / "cache"
    if where == "location":
        loc.write_text("not a directory")
        blocked = loc
    else:
        cache = ImageCache(loc)
        blocked = pathlib.Path(store_of(cache, target_size=(12, 10)).root)
        if where == "shard":
            blocked = blocked / "7f"
        shutil.rmtree(blocked)
        blocked.write_text("not a directory")
    with pytest.raises(NotADirectoryError) as e:
        load_batch([jpeg], (12, 10), cache=ImageCache(loc))
    assert str(e.value) == (f"[Errno 20] fastseq cache: {str(blocked)!r} is not a directory, "
                            f"so {str(loc)!r} cannot hold a cache")
    assert blocked.read_text() == "not a directory"


def test_a_store_that_cannot_be_created_is_a_clear_error(tmp_path, images, monkeypatch):
    """A new parameter set's store that cannot be made (a read-only file
    system, no permission: simulated, since root may write anywhere) raises
    the same OSError subclass, naming the store and the reason; a store that
    exists is used without creating anything."""
    jpeg = next(p for p in images if p.endswith(".jpg"))
    loc = tmp_path / "cache"
    load_batch([jpeg], (12, 10), cache=ImageCache(loc))        # this store exists
    root = store_of(ImageCache(loc), target_size=(12, 10)).root
    real = os.makedirs

    def makedirs(path, mode=0o777, exist_ok=False):
        if not os.path.isdir(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real(path, mode, exist_ok)

    monkeypatch.setattr(os, "makedirs", makedirs)
    np.testing.assert_array_equal(load_batch([jpeg], (12, 10), cache=ImageCache(loc)),
                                  load_batch([jpeg], (12, 10)))
    with pytest.raises(PermissionError) as e:
        load_batch([jpeg], (13, 10), cache=ImageCache(loc))
    from fastseq.options import DecodeOptions

    digest = hashlib.sha256(_params(DecodeOptions((13, 10))).encode()).hexdigest()[:24]
    new_root = os.path.join(str(loc), f"v{fastseq._native.CACHE_FORMAT}-{digest}")
    assert str(e.value) == (f"[Errno {errno.EACCES}] fastseq cache: cannot create the store "
                            f"{new_root!r} for these parameters: {os.strerror(errno.EACCES)}")
    assert os.listdir(loc) == [os.path.basename(root)]


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_load_batch_calls_share_the_cache_a_string_names(tmp_path, images, where, monkeypatch):
    """cache="memory" or a directory string in load_batch is the process's
    one ImageCache of that location: a second call hits what the first
    stored (with "memory" it used to start empty every call).  A forked
    child starts its own."""
    loc = "memory" if where == "memory" else str(tmp_path / "cache")
    monkeypatch.setattr(fastseq.cache, "_shared", {})
    first = load_batch(images, (12, 10), cache=loc, on_error="ignore")
    shared = fastseq.cache._shared[None if where == "memory" else loc]
    assert fastseq.cache.as_cache(loc, shared=True) is shared
    assert fastseq.cache.as_cache(pathlib.Path(loc) if where == "disk" else loc,
                                  shared=True) is shared
    assert fastseq.cache.as_cache(loc) is not shared            # a dataset owns its own
    store = store_of(shared, target_size=(12, 10))
    before = dict(store.stats)
    np.testing.assert_array_equal(load_batch(images, (12, 10), cache=loc, on_error="ignore"),
                                  first)
    after = {k: store.stats.get(k, 0) - before.get(k, 0) for k in store.stats}
    assert after.get("hit", 0) + after.get("hit_failed", 0) == len(set(images))
    assert after.get("stored", 0) == 0 and after.get("absent", 0) == 0
    if hasattr(os, "fork"):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            ok = not fastseq.cache._shared and fastseq.cache.as_cache(loc, shared=True) \
                is not shared
            os.write(w, b"1" if ok else b"0")
            os._exit(0)
        os.close(w)
        assert os.read(r, 1) == b"1"
        os.waitpid(pid, 0)


def test_a_stores_path_memo_is_bounded(tmp_path, images, monkeypatch):
    monkeypatch.setattr(fastseq.cache, "_NAMES_MAX", 3)
    cache = ImageCache(tmp_path / "cache")
    for p in images[:10]:
        load_batch([p], (12, 10), cache=cache, on_error="ignore")
    memo = store_of(cache, target_size=(12, 10))._names_here()
    assert 1 <= len(memo) <= 4


def test_keras_iterators_take_cache(tmp_path, images):
    pytest.importorskip("keras")
    pd = pytest.importorskip("pandas", reason=PANDAS_MISSING)
    from fastseq import ImageDataGenerator

    df = pd.DataFrame({"filename": images, "class": ["a", "b"] * (len(images) // 2)
                       + ["a"] * (len(images) % 2)})
    gen = ImageDataGenerator(rescale=1 / 255)
    it = gen.flow_from_dataframe(df, None, target_size=(21, 23), batch_size=8, shuffle=False,
                                 on_error="ignore", cache=str(tmp_path / "c"))
    ref = gen.flow_from_dataframe(df, None, target_size=(21, 23), batch_size=8, shuffle=False,
                                  on_error="ignore")
    for _ in range(2):
        for i in range(len(it)):
            np.testing.assert_array_equal(it[i][0], ref[i][0])
    assert it._store().stats.get("hit", 0) > 0
    # a spawned worker gets the same directory
    it2 = pickle.loads(pickle.dumps(it))
    np.testing.assert_array_equal(it2[0][0], ref[0][0])
    assert it2._store().stats.get("hit", 0) >= 8
    assert set(it2._store().stats) == {"hit"}


MEMORY_IN_WORKERS = (
    "cache='memory' with use_multiprocessing=True is never read: Keras starts new worker "
    "processes for every epoch, each with an empty memory cache. Pass a cache directory instead "
    "(cache='/path/to/dir'), which every worker process shares, or keep "
    "use_multiprocessing=False (fastseq decodes on its own threads).")


@pytest.mark.parametrize("kind", ["directory", "dataframe", "sequence"])
@pytest.mark.parametrize("cache, kwargs, warned", [
    ("memory", dict(workers=2, use_multiprocessing=True), True),
    ("memory", dict(workers=1, use_multiprocessing=True), True),     # a pool of one process
    ("memory", dict(workers=0, use_multiprocessing=True), False),    # no enqueuer
    ("memory", dict(workers=2), False),                              # threads share it
    ("disk", dict(workers=2, use_multiprocessing=True), False),      # workers share it
], ids=["memory-mp2", "memory-mp1", "memory-mp0", "memory-threads", "disk-mp2"])
def test_a_memory_cache_in_keras_worker_processes_is_warned_about(tmp_path, images, kind, cache,
                                                                 kwargs, warned):
    """A memory cache in Keras' worker processes is never read (see
    test_keras_starts_new_worker_processes_every_epoch): one CacheWarning
    saying so and what to do, when the dataset is made."""
    pytest.importorskip("keras")
    from fastseq import ImageDataGenerator, ImageSequence

    loc = "memory" if cache == "memory" else str(tmp_path / "c")
    root = class_tree(images, tmp_path / "tree")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        if kind == "directory":
            ImageDataGenerator().flow_from_directory(root, target_size=(9, 8), cache=loc,
                                                     **kwargs)
        elif kind == "dataframe":
            pd = pytest.importorskip("pandas", reason=PANDAS_MISSING)
            df = pd.DataFrame({"filename": images, "class": "a"})
            ImageDataGenerator().flow_from_dataframe(df, None, target_size=(9, 8), cache=loc,
                                                     **kwargs)
        else:
            ImageSequence(images, dim=(9, 8), cache=loc, **kwargs)
    got = [str(m.message) for m in w if m.category is CacheWarning]
    assert got == ([MEMORY_IN_WORKERS] if warned else [])
    if warned:
        assert [m.filename for m in w if m.category is CacheWarning] == [__file__]


def test_keras_starts_new_worker_processes_every_epoch():
    """What the warning above rests on: Keras' enqueuer with
    use_multiprocessing=True serves each epoch from a new process pool, so
    no worker process lives into the next epoch.  If a Keras release keeps
    its pool, this fails and the warning must go."""
    keras = pytest.importorskip("keras")
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    class Pids(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return np.full((1, 1), os.getpid()), np.zeros((1, 1))

    adapter = PyDatasetAdapter(Pids(workers=2, use_multiprocessing=True), shuffle=False)
    epochs = []
    for _ in range(2):
        adapter.on_epoch_begin()
        epochs.append({int(x[0, 0]) for x, _ in adapter.get_numpy_iterator()})
        adapter.on_epoch_end()
    assert os.getpid() not in epochs[0] | epochs[1]
    assert epochs[0] and epochs[1] and not epochs[0] & epochs[1], epochs


@pytest.mark.parametrize("where", ["memory", "disk"])
@pytest.mark.parametrize("augment", [False, True])
def test_featurewise_fused_epochs_are_the_uncached_bits(images, tmp_path, where, augment):
    """The per-channel featurewise step fused into the float32 write is
    applied to cache hits too (hits and misses write the slot through the
    same norm), so cached epochs equal uncached ones bit for bit."""
    pytest.importorskip("keras")
    from fastseq import ImageDataGenerator

    root = class_tree(images, tmp_path / "classes")
    aug = dict(rotation_range=25, zoom_range=0.2, horizontal_flip=True) if augment else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # "fit() was not called" is not the point
        gen = ImageDataGenerator(rescale=1 / 255, featurewise_center=True,
                                 featurewise_std_normalization=True, **aug)
    gen.mean = np.array([[[0.41, 0.52, 0.33]]], np.float32)
    gen.std = np.array([[[0.21, 0.18, 0.27]]], np.float32)

    def fused(it):
        assert it._batch_options().featurewise is not None     # the fused path

    ref, _ = three_epochs(gen, root, None, fused)
    got, it = three_epochs(gen, root, "memory" if where == "memory" else str(tmp_path / "cache"),
                           fused)
    assert_same_epochs(ref, got)
    assert it._store().stats.get("hit", 0) >= 2 * (len(images) - 6)
    # and the statistics are really applied: not the plain rescaled batch
    assert abs(float(np.mean(got[0][0]))) < 2.0 and not np.all(got[0][0] >= 0)


def test_wide_gray_is_not_served_from_an_8_bit_entry(tmp_path):
    """A uint8 grayscale iterator caches Pillow's convert("L") of a 16-bit
    PNG; a float32 one on the same directory keeps Keras' 16-bit values
    (wide_gray is in the key), and equals its uncached self."""
    pytest.importorskip("keras")
    from PIL import Image

    from fastseq import ImageDataGenerator

    d = tmp_path / "img" / "a"
    d.mkdir(parents=True)
    y, x = np.mgrid[0:23, 0:17]
    Image.fromarray(((y * 2900 + x * 150) % 65536).astype(np.uint16)).save(d / "ramp16.png")
    Image.fromarray((y * 9 + x).astype(np.uint8)).save(d / "l8.png")
    cache = str(tmp_path / "cache")
    kw = dict(target_size=(11, 13), color_mode="grayscale", batch_size=2, shuffle=False)
    u8 = ImageDataGenerator(dtype="uint8").flow_from_directory(tmp_path / "img", cache=cache, **kw)
    f32_ref = ImageDataGenerator().flow_from_directory(tmp_path / "img", **kw)
    for _ in range(2):
        b8 = u8[0][0]
    assert b8.dtype == np.uint8 and b8.max() <= 255
    f32 = ImageDataGenerator().flow_from_directory(tmp_path / "img", cache=cache, **kw)
    for _ in range(2):
        got = f32[0][0]
        np.testing.assert_array_equal(got, f32_ref[0][0])
    names = [os.path.basename(f) for f in f32.filenames]
    assert got[names.index("ramp16.png")].max() > 255       # the 16-bit values
    # the 8-bit image was cached by the float iterator; the 16-bit one is not
    assert f32._store().stats.get("hit", 0) == 1
    assert f32._store().params != u8._store().params


def test_keras_worker_processes_fill_a_disk_cache(tmp_path, images):
    """Keras' PyDataset adapter with use_multiprocessing=True: the forked
    workers write the disk cache (each entry complete, renamed into place);
    the parent then serves the whole epoch from it, bit-identical to an
    uncached epoch."""
    pytest.importorskip("keras")
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from fastseq import ImageDataGenerator

    root = class_tree(images, tmp_path / "classes")
    gen = ImageDataGenerator(rescale=1 / 255)
    kw = dict(target_size=(29, 31), batch_size=5, shuffle=False, on_error="ignore")
    cache = str(tmp_path / "cache")
    ref = gen.flow_from_directory(root, **kw)
    want = np.concatenate([ref[i][0] for i in range(len(ref))])
    it = gen.flow_from_directory(root, cache=cache, workers=2, use_multiprocessing=True,
                                 max_queue_size=3, **kw)
    adapter = PyDatasetAdapter(it, shuffle=False)
    got = np.concatenate([np.asarray(b[0]) for b in adapter.get_numpy_iterator()])
    adapter.on_epoch_end()
    np.testing.assert_array_equal(got, want)
    entries = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()
               and p.name != "params.txt"]
    assert len(entries) == ref.samples
    assert not any(p.name.endswith(".tmp") for p in entries)
    # the parent read nothing itself in that epoch; now every image is a hit
    again = gen.flow_from_directory(root, cache=cache, **kw)
    got2 = np.concatenate([again[i][0] for i in range(len(again))])
    np.testing.assert_array_equal(got2, want)
    stats = again._store().stats
    assert set(stats) <= {"hit", "hit_failed"} and stats.get("hit", 0) > 0


def test_stale_temporary_files_are_swept(tmp_path, images, monkeypatch):
    """A writer killed mid-entry leaves "<entry>.<pid>.<n>.tmp": the next
    process to open the store removes it once its writer is gone and it is
    over a minute old (or over an hour, whoever wrote it); a live writer's
    fresh file stays."""
    import time

    monkeypatch.setattr(fastseq.cache, "_swept", set())
    cache = ImageCache(tmp_path / "cache")
    entry = entry_of(cache, images[0], target_size=(8, 8))
    dead = _dead_pid()
    old = time.time() - 120
    files = {
        "dead_old": f"{entry}.{dead}.0.tmp",           # removed
        "dead_fresh": f"{entry}.{dead}.1.tmp",         # kept: under a minute
        "alive_old": f"{entry}.{os.getpid()}.2.tmp",   # kept: its writer runs
        "ancient": f"{entry}.{os.getpid()}.3.tmp",     # removed: over an hour
        "entry_like": f"{entry}x",                     # not a temporary file
    }
    for name, path in files.items():
        with open(path, "wb") as f:
            f.write(b"partial")
    for name in ("dead_old", "alive_old"):
        os.utime(files[name], (old, old))
    os.utime(files["ancient"], (old - 3600, old - 3600))
    monkeypatch.setattr(fastseq.cache, "_swept", set())
    store_of(ImageCache(tmp_path / "cache"), target_size=(8, 8))
    assert {n for n, p in files.items() if os.path.exists(p)} == {
        "dead_fresh", "alive_old", "entry_like"}
    # and it still works as a cache
    a = load_batch(images[:3], (8, 8), cache=cache, on_error="ignore")
    np.testing.assert_array_equal(a, load_batch(images[:3], (8, 8), on_error="ignore"))


def _dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("status", [11, 16, 999])     # THREAD, INTERRUPTED, unknown
def test_an_entry_remembering_a_status_never_stored_is_rebuilt(tmp_path, images, status):
    """A well-formed entry (valid checksum) whose failure status is one
    fastseq never stores (a thread or interruption error, or no status at
    all) is foreign: decoded again and replaced, with one warning, never
    reported as the image's failure."""
    from fastseq import _native
    from fastseq.options import DecodeOptions

    jpeg = next(p for p in images if p.endswith(".jpg"))
    cache = ImageCache(tmp_path / "cache")
    store = cache.store(DecodeOptions((12, 10)))
    a = os.fsencode(os.path.abspath(jpeg))
    key = store.key(a, os.stat(jpeg))
    assert _native.cache_write_failure(store.entry_path(a), key, status, "forged") == ""
    with pytest.warns(CacheWarning, match="remembers status %d, which is never stored" % status):
        got = load_batch([jpeg], (12, 10), cache=cache)
    np.testing.assert_array_equal(got, load_batch([jpeg], (12, 10)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(load_batch([jpeg], (12, 10), cache=cache), got)
    assert store.stats.get("hit", 0) == 1


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink"])
def test_a_non_file_at_an_entry_path_is_replaced_not_waited_on(tmp_path, images, kind):
    """Something other than a regular file where an entry belongs (a FIFO
    would block a plain open() for ever, a directory, a symlink) is a
    damaged entry: one warning, the image decoded, and (FIFO, symlink) a
    real entry written in its place; never a hang."""
    jpeg = next(p for p in images if p.endswith(".jpg"))
    cache = ImageCache(tmp_path / "cache")
    entry = entry_of(cache, jpeg, target_size=(12, 10))
    if kind == "fifo":
        os.mkfifo(entry)
    elif kind == "directory":
        os.mkdir(entry)
    else:
        os.symlink(jpeg, entry)
    ref = load_batch([jpeg], (12, 10))
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
            import warnings, numpy as np, fastseq
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                x = fastseq.load_batch([{jpeg!r}], (12, 10), cache={str(tmp_path / "cache")!r})
            np.save({str(tmp_path / "x.npy")!r}, x)
            print([str(m.message) for m in w if m.category is fastseq.CacheWarning])
        """)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), ref)
    assert "is damaged (" in out.stdout and ("not a regular file" in out.stdout
                                             or "cannot open" in out.stdout), out.stdout
    if kind != "directory":
        assert os.path.isfile(entry) and not os.path.islink(entry)
