"""A cache of resized pixels: epochs after the first skip the decode.

What is cached is each image's decoded, colour-converted, resized uint8
pixels at the target size: the pixels an uncached batch is written from
before rescale, augmentation and standardisation.  A hit is one more kind of
source in the C batch driver (csrc/batch.c, csrc/cache.c): the entry is read
on the native pool with the GIL released, straight into a uint8 slot, or
through the same fused float32 write or augmentation warp an uncached image
takes, so cached and uncached batches are the same bits.  A miss is decoded
as usual and its resized pixels are stored by the same task.

``cache=`` takes:

- ``None``: no cache;
- ``"memory"``: this process's RAM (one copy per worker process);
- a directory path (str or os.PathLike, ``~`` expanded): a persistent cache
  on disk, shared by later runs and other processes;
- an :class:`ImageCache`, e.g. ``ImageCache(path, on_full="warn")``.

Keys.  An entry belongs to a source file's absolute path and is valid for
its ``st_size``, ``st_mtime_ns``, ``st_ino`` and ``st_ctime_ns`` (_stamp;
taken before the file is read, so a file rewritten during the read is
decoded again next time) under one
parameter set: target size, colour mode, interpolation,
``keep_aspect_ratio``, ``dct_scaling``, the limits (they decide which
images fail), fastseq's version, the cache format, libjpeg-turbo's and
libpng's versions and SIMD use, Pillow's version (the fallback decoder) and
resize pass order.  Each parameter set has its own subdirectory
(``v<format>-<digest>``); the whole key is also stored in every entry and
compared byte for byte, so a digest or file-name collision is a miss, never
another image's pixels.

On disk, an entry is one file (``<digest>/<2 hex>/<62 hex>``, the hex of
SHA-256 of the path), written under a temporary name and renamed into place
(csrc/cache.h gives the layout).  One file per entry rather than one shared
file plus an index: no lock, no index to recover after a crash, entries
visible exactly when complete to any reader (threads, forked or spawned
workers, another run), and a changed image replaces its own file.  The cost
is an open/pread/close per image and an inode per image.

Damage.  Every entry carries a magic, the format version, its key, its
size and a 64-bit checksum of header, key and pixels, checked on every
read.  A short, foreign, wrong-version or damaged file is reported once
with a :class:`CacheWarning` naming it, decoded again and replaced; its
contents are never returned.

Failures (a corrupt, truncated or unidentifiable image: the statuses that
depend on the file's bytes and the limits) are stored too and served as the
same failure, without decoding, until the file changes.  I/O errors are
retried.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import warnings
from typing import Any

import numpy as np

from fastseq import _native
from fastseq.errors import outside_stacklevel, warn_or_defer

__all__ = ["ImageCache", "CacheWarning", "CacheFullError", "as_cache", "free_space",
           "disk_units"]


class CacheWarning(UserWarning):
    """A cache entry was damaged (and rebuilt) or could not be written."""


class CacheFullError(OSError):
    """The cache would not fit in the free space (disk) or available memory."""


def free_space(path: str | None) -> int:
    """Bytes available to the cache: ``statvfs(path)``'s blocks available to
    unprivileged users times the fragment size, or, for ``path=None`` (the
    memory cache), the kernel's MemAvailable.  The one place these are
    measured: tests replace it (``monkeypatch.setattr(fastseq.cache,
    "free_space", ...)``)."""
    if path is not None:
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def disk_units(path: str) -> tuple[int, int | None]:
    """The allocation block size of the file system holding `path` and its
    free inodes (None where it does not count them, as btrfs reports 0
    files).  Tests replace it, like free_space."""
    st = os.statvfs(path)
    return max(int(st.f_frsize or st.f_bsize), 1), (int(st.f_favail) if st.f_files else None)


#: Paths a store remembers the absolute path and entry name of (per working
#: directory), about 300 bytes each: past it the memo starts again, so a
#: process-wide cache that load_batch calls stream millions of paths through
#: does not grow without bound.
_NAMES_MAX = 1 << 20
#: Working directories remembered (a process that works in a new job
#: directory per task): past it the memo starts again.
_CWDS_MAX = 64

#: The most bytes _stamp's four numbers and their separators take in a key.
_STAMP_CHARS = 4 * 20 + 4

_ON_FULL = ("raise", "warn")
#: The statuses (fs_status) a failure may be remembered with, by the code of
#: its ImageDecodeError; the C driver remembers its own (csrc/batch.c).
_REMEMBERED_CODES = {"empty": 5, "decode": 7, "truncated": 8, "too_many_pixels": 9,
                     "too_many_scans": 10, "too_large": 12, "memory_limit": 14,
                     "work_limit": 15, "not_image": 17}


def _stamp(st: os.stat_result) -> tuple:
    """What an entry is valid for besides the path: the file's size,
    mtime, inode and ctime.  Size and mtime alone missed a file replaced by
    another of the same size with its mtime kept (``os.replace`` of a
    ``cp -p``/``tar x``/``rsync -t`` copy: a new inode) or rewritten and
    given its old mtime back (``os.utime`` sets the ctime)."""
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _in_the_way(path: str) -> str:
    """The deepest existing path from `path` up that is not a directory
    (what stopped makedirs), else `path`."""
    p = path
    while True:
        if os.path.lexists(p) and not os.path.isdir(p):
            return p
        parent = os.path.dirname(p)
        if parent == p:
            return path
        p = parent


class ImageCache:
    """Where resized pixels are kept: ``"memory"`` or a directory.

    ``on_full``: what happens when the entries still to be written would not
    fit (checked before a dataset's first epoch, and before each
    ``load_batch(cache=...)`` call): ``"raise"`` (the default) raises
    :class:`CacheFullError` stating the bytes needed and the bytes free;
    ``"warn"`` warns and runs without the cache.

    One ImageCache serves any number of parameter sets (each its own
    store).  It pickles as its location: a spawned worker gets a fresh,
    empty memory cache, or the same directory.
    """

    def __init__(self, location: str | os.PathLike = "memory", *, on_full: str = "raise") -> None:
        if on_full not in _ON_FULL:
            raise ValueError(f"on_full must be one of {_ON_FULL}, got {on_full!r}")
        if isinstance(location, str) and location == "memory":
            self.location: str | None = None
        elif isinstance(location, (str, bytes, os.PathLike)):
            path = os.fsdecode(os.fspath(location))
            if not path or "\0" in path:
                raise ValueError(f"cache directory must be a non-empty path, got {location!r}")
            # "~/..." as a shell would read it: left as is, it was a
            # directory literally named "~" under the working directory
            self.location = os.path.abspath(os.path.expanduser(path))
        else:
            raise TypeError(f"cache must be None, 'memory', a directory path or an "
                            f"ImageCache, got {type(location).__name__}")
        self.on_full = on_full
        self._stores: dict[str, _Store] = {}
        self._lock = threading.Lock()

    @property
    def in_memory(self) -> bool:
        return self.location is None

    def __repr__(self) -> str:
        where = "'memory'" if self.location is None else repr(self.location)
        return f"ImageCache({where}, on_full={self.on_full!r})"

    def __reduce__(self):
        return (ImageCache, ("memory" if self.location is None else self.location,),
                {"on_full": self.on_full})

    def __setstate__(self, state):
        self.on_full = state["on_full"]

    def store(self, options) -> "_Store":
        """The store of one parameter set (a fastseq.options.DecodeOptions)."""
        params = _params(options)
        with self._lock:
            s = self._stores.get(params)
            if s is None:
                s = self._stores[params] = _Store(self, options, params)
            return s


def as_cache(cache: Any, shared: bool = False) -> ImageCache | None:
    """``cache=`` as an ImageCache (None stays None).  `shared` (load_batch):
    a location given as a string or path is this process's one ImageCache
    of that location (shared_cache), so that successive calls share its
    memory entries and its remembered paths; a dataset (shared=False) owns
    its ImageCache, and its memory entries go with it."""
    if cache is None or isinstance(cache, ImageCache):
        return cache
    fresh = ImageCache(cache)
    return shared_cache(fresh) if shared else fresh


_shared: dict = {}
_shared_lock = threading.Lock()


def shared_cache(fresh: ImageCache) -> ImageCache:
    """The process's ImageCache of `fresh`'s location (``"memory"`` or a
    directory), `fresh` itself the first time.  Without it each
    ``load_batch(cache="memory")`` call had an empty memory cache of its
    own (never a hit from one call to the next), and each call with a
    directory made its store again (257 makedirs) and hashed every path
    again: 7.3 ms for 32 hits at 32x32 against 0.9 ms with an ImageCache."""
    with _shared_lock:
        return _shared.setdefault(fresh.location, fresh)


def _forget_shared_in_child() -> None:
    # A forked child gets a lock no thread of its own may release; its
    # shared caches start again (a memory cache copied by fork is dropped).
    global _shared_lock
    _shared_lock = threading.Lock()
    _shared.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_shared_in_child)


# Temporary entry files (csrc/cache.c: "<entry>.<pid>.<n>.tmp") that a
# killed writer left behind are removed when a process first opens a
# directory store: those older than STALE_TMP_S whose writer is gone, and
# any older than an hour (a writer on another host of a shared file system).
# An entry is written in milliseconds, so neither rule can catch a live one.
STALE_TMP_S = 60.0
_swept: set = set()
_swept_lock = threading.Lock()


def _writer_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def sweep_stale_tmp(root: str, now: float | None = None) -> int:
    """Remove the stale temporary files under a store's `root` (see
    STALE_TMP_S); returns how many.  Once per root and process."""
    import time

    with _swept_lock:
        if root in _swept:
            return 0
        _swept.add(root)
    now = time.time() if now is None else now
    removed = 0
    for i in range(256):
        try:
            with os.scandir(os.path.join(root, f"{i:02x}")) as it:
                for e in it:
                    if not e.name.endswith(".tmp"):
                        continue
                    try:
                        age = now - e.stat(follow_symlinks=False).st_mtime
                        parts = e.name.rsplit(".", 3)
                        pid = int(parts[1]) if len(parts) == 4 else -1
                    except (OSError, ValueError):
                        continue
                    if age > 3600 or (age > STALE_TMP_S and not (pid > 0 and _writer_alive(pid))):
                        try:
                            os.unlink(e.path)
                            removed += 1
                        except OSError:
                            pass
        except OSError:
            continue
    return removed


def _params(options) -> str:
    """Every parameter that changes an image's cached pixels or its failure."""
    import PIL

    from fastseq import __version__

    limits = ",".join(f"{k}={v}" for k, v in sorted(options.limits.items()))
    simd = _native.libjpeg_simd() and not os.environ.get("JSIMD_FORCENONE")
    return (f"fastseq-cache format={_native.CACHE_FORMAT} fastseq={__version__} "
            f"libjpeg-turbo={_native.libjpeg_version()} jpeg_simd={int(bool(simd))} "
            f"libpng={_native.libpng_version()} zlib={_native.zlib_version()} "
            f"libwebp={_native.libwebp_version()} pillow={PIL.__version__} "
            f"pass_order={_native.resize_pass_order()} "
            f"size={options.height}x{options.width} mode={options.pil_mode} "
            f"filter={options.filter} keep_aspect_ratio={int(options.keep_aspect_ratio)} "
            f"dct_scaling={int(options.dct_scaling)} wide_gray={int(options.wide_gray)} "
            f"limits={limits}")


class _Store:
    """The entries of one parameter set: a directory, or a dict in memory."""

    def __init__(self, cache: ImageCache, options, params: str) -> None:
        self.cache = cache
        self.params = params
        self._prefix = params.encode() + b"\0"
        self.shape = (options.height, options.width, options.channels)
        self.entry_bytes = options.height * options.width * options.channels
        self.enabled = True
        self._recheck = False
        self._warned: set = set()
        self._warn_lock = threading.Lock()
        #: What the probes and stores did, by fs_cache_result name (counts;
        #: "hit_failed" includes failures remembered in memory).
        self.stats: dict[str, int] = {}
        self._mem: dict[bytes, tuple] = {}
        # path as given -> (absolute path, entry path): a batch of cache hits
        # is a few microseconds a path, and SHA-256 would be half of them
        # (per working directory: a relative path names another file after
        # os.chdir, and the uncached path reads that one)
        self._names: dict[bytes, dict[bytes, tuple]] = {}
        self.root: str | None = None
        if cache.location is not None:
            digest = hashlib.sha256(params.encode()).hexdigest()[:24]
            self.root = os.path.join(cache.location, f"v{_native.CACHE_FORMAT}-{digest}")
            self._make_root()
            self._root_b = os.fsencode(self.root)
            sweep_stale_tmp(self.root)

    def _make_root(self) -> None:
        """The store's directories and its params.txt, where missing (an
        existing store is used as it is, on a read-only file system too);
        an OSError is said in fastseq's words."""
        try:
            os.makedirs(self.root, exist_ok=True)
            for i in range(256):
                os.makedirs(os.path.join(self.root, f"{i:02x}"), exist_ok=True)
            info = os.path.join(self.root, "params.txt")
            if not os.path.exists(info):
                tmp = f"{info}.{os.getpid()}.{threading.get_ident()}.tmp"
                with open(tmp, "w") as f:
                    f.write(self.params + "\n")
                os.replace(tmp, info)
        except (FileExistsError, NotADirectoryError) as e:
            # Something other than a directory where one belongs (the
            # location, the store or an ancestor): name it, rather than
            # makedirs' "File exists" about a path under it
            raise NotADirectoryError(
                errno.ENOTDIR, f"fastseq cache: {_in_the_way(e.filename or self.root)!r} is not a "
                f"directory, so {self.cache.location!r} cannot hold a cache") from e
        except OSError as e:
            # e.g. a read-only file system or no permission: the same
            # OSError subclass, saying what was being made
            raise OSError(e.errno, f"fastseq cache: cannot create the store {self.root!r} "
                          f"for these parameters: {e.strerror}") from e

    def _restore_root(self) -> bool:
        """Make the store again if it was deleted since (the README's way to
        reclaim space or clear the cache, while a dataset or ImageCache is
        still in use), or all of it after a write failed (a deleted shard
        directory); its entries are then written afresh.  If it cannot be
        made now (deleted again meanwhile, a read-only file system), each
        entry's write fails and warns once, as a full disk does.  Returns
        whether the store's directory is there."""
        if self.root is None:
            return True
        if not self._recheck and os.path.isdir(self.root):
            return True
        self._recheck = False
        try:
            self._make_root()
        except OSError:
            return False
        return True

    # -- keys -------------------------------------------------------------------

    def entry_path(self, abspath: bytes) -> bytes:
        h = hashlib.sha256(abspath).hexdigest().encode()
        return b"%s/%s/%s" % (self._root_b, h[:2], h[2:])

    def _names_here(self) -> dict:
        """The memo of path as given -> (absolute path, entry path or None)
        for the working directory now."""
        try:
            cwd = os.getcwdb()
        except OSError:         # removed: only absolute paths can be read
            cwd = b""
        names = self._names.get(cwd)
        if names is None or len(names) > _NAMES_MAX:
            if len(self._names) >= _CWDS_MAX:   # bounded: a memo, not a record
                self._names.clear()
            names = self._names[cwd] = {}
        return names

    def _name(self, names: dict, p: bytes) -> tuple:
        """(absolute path, entry path or None) of `p`, remembered in `names`;
        (None, None), not remembered, for a relative path when the working
        directory is gone (no file to key on: read uncached, it fails)."""
        # Made absolute, not normalised: os.path.abspath folds "link/.." away
        # by its spelling, where the kernel follows the symlink first, so
        # "link/../x" would be read (and keyed) as another file than the
        # uncached read opens.
        try:
            a = p if os.path.isabs(p) else os.path.join(os.getcwdb(), p)
        except OSError:
            return None, None
        known = names[p] = (a, self.entry_path(a) if self.root is not None else None)
        return known

    def key(self, abspath: bytes, st: os.stat_result) -> bytes:
        return b"%s%s\0%d:%d:%d:%d" % ((self._prefix, abspath) + _stamp(st))

    # -- space ------------------------------------------------------------------

    def reserve(self, encoded: list[bytes]) -> None:
        """Check that the entries of `encoded` not stored yet fit (see
        ImageCache.on_full); disables the store on "warn"."""
        if not self._restore_root():
            return          # nothing to measure; the writes warn
        names = self._names_here()
        lengths = []        # of the absolute paths of the entries not stored
        for p in set(encoded):
            known = names.get(p)
            if known is None:       # plan()'s memo, filled on the way
                known = self._name(names, p)
            a, entry = known
            if a is None:
                continue
            if (a not in self._mem) if self.root is None else not os.path.exists(entry):
                lengths.append(len(a))
        missing = len(lengths)
        if not missing:     # the usual call once a cache is warm: no statvfs
            self.enabled = True
            return
        inodes = None
        if self.root is None:
            need = missing * self.entry_bytes
        else:
            # An entry file takes whole allocation blocks and an inode: at
            # 1x1 its ~600 bytes are a 4 KiB block, 7x the bytes written.
            block, inodes = disk_units(self.root)
            fixed = self.entry_bytes + _native.CACHE_HEADER + len(self._prefix) + _STAMP_CHARS
            need = sum(-(-(fixed + n) // block) * block for n in lengths)
        free = free_space(self.root)
        if need <= free and (inodes is None or missing <= inodes):
            # it fits (again: a store that "warn" turned off is used again
            # once space is freed)
            self.enabled = True
            return
        what = f"fastseq cache: {missing} images of {self.shape[0]}x{self.shape[1]}x{self.shape[2]}"
        if need > free:
            where = "available memory" if self.root is None else f"free space in {self.root}"
            msg = f"{what} need {need} bytes but the {where} is {free} bytes"
        else:
            msg = (f"{what} need {missing} files but the file system of {self.root} has "
                   f"{inodes} free inodes")
        if self.cache.on_full == "raise":
            raise CacheFullError(msg + " (pass cache=fastseq.ImageCache(..., on_full='warn') "
                                 "to run without the cache instead)")
        if self.enabled:        # once per change, not at every call while full
            warnings.warn(msg + "; running without the cache", CacheWarning,
                          stacklevel=outside_stacklevel())
        self.enabled = False

    # -- a batch ------------------------------------------------------------------

    def plan(self, encoded: list[bytes]):
        """For each path: its run_batch cache tuple (or None: no caching,
        e.g. a file that cannot be stat'ed), a remembered failure (memory
        only) and the (abspath, key, stat) to record the result under."""
        tuples, failed, keys = [], {}, []
        self._restore_root()
        names = self._names_here()
        for i, p in enumerate(encoded):
            known = names.get(p)
            if known is None:
                known = self._name(names, p)
            a, entry = known
            try:
                # the absolute path, which the C pass then opens too (_run):
                # an os.chdir in between must not put another file's pixels
                # under this key
                st = os.stat(a)
            except (OSError, TypeError):     # TypeError: a is None (_name)
                tuples.append(None)
                keys.append(None)
                continue
            if self.root is not None:
                key = self.key(a, st)
                tuples.append((entry, key, None, None, True))
                keys.append((a, key, st))
                continue
            rec = self._mem.get(a)
            if rec is not None and rec[0] == _stamp(st):
                if rec[1] is not None:
                    tuples.append((None, None, rec[1], None, False))
                else:
                    tuples.append(None)
                    failed[i] = rec[2]
                    self._count("hit_failed")
            else:
                tuples.append((None, None, None, np.empty(self.shape, np.uint8), False))
            keys.append((a, None, st))
        return tuples, failed, keys

    def record(self, keys, tuples, slot: int, result: str, why: str, probe: str,
               status: int, msg: str) -> None:
        """After the C pass: keep a memory miss's pixels or failure, and
        warn about damaged entries and failed writes."""
        if probe not in ("none", result):
            self._count(probe)
        self._count(result)
        if probe == "corrupt":
            self._warn_once(("corrupt", tuples[slot][0]),
                            f"fastseq cache: entry {os.fsdecode(tuples[slot][0])!r} "
                            f"is damaged ({why}); it was rebuilt")
        elif result == "store_failed":
            self._recheck = True        # the next batch remakes any missing directory
            self._warn_once(("store", None), f"fastseq cache: cannot write an entry "
                            f"under {self.root!r}: {why}")
        if self.root is None and keys[slot] is not None:
            a, _, st = keys[slot]
            if result == "stored":
                self._mem[a] = (_stamp(st), tuples[slot][3], None)

    def remember_failure(self, keys, tuples, slot: int, code: str, reason: str) -> None:
        status = _REMEMBERED_CODES.get(code)
        if status is None or keys[slot] is None:
            return
        a, key, st = keys[slot]
        if self.root is None:
            self._mem[a] = (_stamp(st), None, (code, reason))
        else:
            why = _native.cache_write_failure(tuples[slot][0], key, status, reason)
            if why:
                self._warn_once(("store", None), f"fastseq cache: cannot write an entry "
                                f"under {self.root!r}: {why}")

    def _count(self, what: str) -> None:
        with self._warn_lock:
            self.stats[what] = self.stats.get(what, 0) + 1

    def _warn_once(self, what, message: str) -> None:
        with self._warn_lock:
            if what in self._warned:
                return
            self._warned.add(what)
        # On a prefetch thread, the warning waits for its batch, like the
        # batch's decode warnings.
        warn_or_defer(message, CacheWarning)

    def __reduce__(self):
        raise TypeError("a cache store is not pickled; pickle its ImageCache")
