"""The loader benchmark behind ``python -m fastseq bench``.

Each loader runs in its own process (``multiprocessing`` spawn context), so
that no loader inherits another's threads, caches or imports (TensorFlow's
thread pools in particular).  The parent process only orchestrates: it
warms the page cache, starts the workers, has each one warm up, then runs
the rounds one loader at a time, alternating between loaders round by round
(so slow drifts of the machine, e.g. thermal or a neighbour's load, spread
over all loaders), and reports the median round.

Loaders (``--loaders``; ``NAME@T`` runs a threaded loader on T threads):

=============  ==============================================================
``fastseq``    ``fastseq.load_batch`` into a preallocated batch.
``pillow``     per image, as Keras' ``load_img`` does it: read the file,
               ``Image.open``, ``convert("RGB")``, ``resize`` with the
               filter, ``np.asarray``; one Python loop, one thread.
``keras-idg``  Keras' legacy ``ImageDataGenerator().flow_from_directory``
               (dtype uint8), iterated batch by batch.
``keras-ds``   ``keras.utils.image_dataset_from_directory`` (tf.data, with
               its AUTOTUNE prefetch); yields float32, as Keras does, and
               resizes with ``tf.image.resize`` without antialiasing.
``turbojpeg``  PyTurboJPEG's ``TurboJPEG().decode`` + Pillow resize per
               image in a ``concurrent.futures.ThreadPoolExecutor``.
``bare``       ``fastseq.core.bare_decode``: the full-size libjpeg-turbo
               decode with no resize and no output: the practical limit.
=============  ==============================================================

JSON schema (``--json FILE``; ``schema`` is ``"fastseq-bench/1"``)::

    {
      "schema": "fastseq-bench/1",
      "created": "2026-01-01T12:00:00+0000",   # local time, ISO 8601
      "interrupted": false,                  # true after Ctrl-C
      "machine": {"cpu": str, "cores_used": int, "cores_total": int,
                  "platform": str, "python": str,
                  "other_cpu_load": float|null},  # share of all cores used by
                                                  # other processes during the run
      "versions": {"fastseq": str, "libjpeg_turbo": str, "simd": bool,
                   "pillow": str, "numpy": str, "tensorflow": str|null,
                   "keras": str|null, "pyturbojpeg": str|null},
      "settings": {"size": [height, width], "batch_size": int,
                   "threads": int, "rounds": int, "warmup_batches": int,
                   "interpolation": str, "dtype": "uint8",
                   "color_mode": "rgb", "dct_scaling": bool,
                   "loaders": [str, ...]},
      "sets": [{
          "name": str,                 # "imagenet", "large" or "dir"
          "title": str, "path": str, "n_images": int,
          "description": str,          # what the set contains
          "reference": str|null,       # loader key the speed-ups are of
          "bare": str|null,            # loader key of the bare-decode limit
          "results": [{
              "loader": str,           # key, e.g. "fastseq@1"
              "name": str,             # e.g. "fastseq"
              "label": str,            # human-readable
              "threads": int,
              "status": "ok" | "skipped" | "failed",
              "note": str|null,        # why skipped/failed, or a caveat
              "output": str,           # what the loader yields, e.g. "uint8"
              "n_images": int,         # images per round
              "n_batches": int,        # batches per round
              "rounds_done": int,
              "round_seconds": [float, ...],
              "images_per_s": float|null,     # median round
              "ms_per_batch": float|null,     # median round
              "speedup": float|null,   # reference images/s / these images/s
              "fraction_of_bare": float|null  # these images/s / bare's
          }, ...]
      }, ...],
      "fit": null | {"status": "ok"|"skipped"|"failed", "note": str|null,
                     "result": dict|null},  # run_fit_benchmark's dict
      "notes": [str, ...]
    }

``fraction_of_bare`` compares with the bare decode on the same number of
threads when that was measured, else with the ``bare`` loader on the
benchmark's thread count (``"bare"`` names it).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass

__all__ = ["LOADERS", "LoaderSpec", "parse_loaders", "list_images", "run_benchmark",
           "format_report", "write_json", "plot_results", "collect_environment",
           "bench_main", "BenchError"]

SCHEMA = "fastseq-bench/1"
#: File extensions every compared loader reads (the Keras loaders list
#: files by extension; these four are the ones both accept and decode).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
#: Set by tests to make modules unimportable (comma-separated names, e.g.
#: "turbojpeg,tensorflow"): in the loader workers, and "fastseq.fitbench"
#: for --fit.  It simulates a peer that is not installed.
HIDE_ENV = "FASTSEQ_BENCH_HIDE_MODULES"


class BenchError(Exception):
    """A user error (bad argument or input): printed as one line."""


@dataclass(frozen=True)
class LoaderSpec:
    name: str
    label: str
    threaded: bool       # honours a thread count
    needs_dir: bool      # reads a class-per-folder tree, not a list of paths


LOADERS = {
    "fastseq": LoaderSpec("fastseq", "fastseq", True, False),
    "pillow": LoaderSpec("pillow", "Pillow per image (Keras load_img)", False, False),
    "keras-idg": LoaderSpec("keras-idg", "Keras ImageDataGenerator (legacy)", False, True),
    "keras-ds": LoaderSpec("keras-ds", "keras image_dataset_from_directory", True, True),
    "turbojpeg": LoaderSpec("turbojpeg", "PyTurboJPEG + thread-pool resize", True, False),
    "bare": LoaderSpec("bare", "bare libjpeg-turbo decode (limit)", True, False),
}
# bare@1 gives the 1-thread rows (fastseq@1, pillow, keras-idg) a limit on
# their own number of threads.
DEFAULT_LOADERS = "fastseq,fastseq@1,pillow,keras-idg,keras-ds,turbojpeg,bare,bare@1"
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")
# keras-ds resizes with tf.image.resize, whose method names differ.
_TF_METHODS = {"nearest": "nearest", "bilinear": "bilinear", "bicubic": "bicubic",
               "box": "area", "lanczos": "lanczos3"}


@dataclass(frozen=True)
class Loader:
    """One loader run: a spec and the thread count it runs on."""
    spec: LoaderSpec
    threads: int

    @property
    def key(self):
        return f"{self.spec.name}@{self.threads}" if self.spec.threaded else self.spec.name

    @property
    def label(self):
        if self.spec.threaded:
            t = "thread" if self.threads == 1 else "threads"
            return f"{self.spec.label}, {self.threads} {t}"
        return self.spec.label


def parse_loaders(text, threads):
    """``"fastseq,fastseq@1,pillow"`` -> list of Loader.  Raises BenchError."""
    out, seen = [], set()
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise BenchError("--loaders is empty; choose from " + ", ".join(LOADERS))
    for item in items:
        if item == "all":
            out.extend(l for l in parse_loaders(DEFAULT_LOADERS, threads) if l.key not in seen)
            seen.update(l.key for l in out)
            continue
        name, _, t = item.partition("@")
        spec = LOADERS.get(name)
        if spec is None:
            raise BenchError(f"unknown loader {name!r}; choose from {', '.join(LOADERS)}")
        n = threads
        if t:
            try:
                n = int(t)
            except ValueError:
                n = 0
            if n < 1:
                raise BenchError(f"bad thread count in {item!r}: expected {name}@N with N >= 1")
            if not spec.threaded and n != 1:
                raise BenchError(f"loader {name!r} runs on one thread; drop '@{t}'")
        loader = Loader(spec, n if spec.threaded else 1)
        if loader.key not in seen:
            seen.add(loader.key)
            out.append(loader)
    return out


# --------------------------------------------------------------------------
# Input files.

def list_images(directory):
    """Sorted image files under `directory` (recursively), with the class of
    each: its first folder below `directory` (``""`` for a flat folder).
    Raises BenchError with a one-line reason when there is nothing to use."""
    if not os.path.exists(directory):
        raise BenchError(f"no such directory: {directory}")
    if not os.path.isdir(directory):
        raise BenchError(f"not a directory: {directory}")
    try:
        if not os.listdir(directory):
            raise BenchError(f"directory is empty: {directory}")
    except PermissionError:
        raise BenchError(f"cannot read directory: {directory}") from None
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, directory)
                cls = rel.split(os.sep, 1)[0] if os.sep in rel else ""
                found.append((path, cls))
    if not found:
        raise BenchError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found in {directory}")
    return found


def _subsample(items, limit):
    """At most `limit` items, evenly spread (so every class is represented)."""
    if limit is None or limit >= len(items):
        return list(items)
    n = len(items)
    return [items[i * n // limit] for i in range(limit)]


def _make_view(items, root):
    """A class-per-folder tree of symlinks to `items` under `root`: the Keras
    loaders read a directory, and this one holds exactly the benchmarked
    files (a flat folder becomes one class, ``images``)."""
    os.makedirs(root)
    for i, (path, cls) in enumerate(items):
        d = os.path.join(root, cls or "images")
        os.makedirs(d, exist_ok=True)
        # The index prefix keeps names unique and Keras' sorted order ours.
        link = os.path.join(d, f"{i:07d}_{os.path.basename(path)}")
        try:
            os.symlink(os.path.abspath(path), link)
        except OSError:
            shutil.copyfile(path, link)
    return root


def _warm_page_cache(paths):
    """Read every file once, so that no loader pays for the first read."""
    for p in paths:
        try:
            with open(p, "rb") as f:
                while f.read(1 << 20):
                    pass
        except OSError:
            pass


# --------------------------------------------------------------------------
# Worker process: builds one loader and runs rounds on request.

def _hide_modules():
    for name in filter(None, (s.strip() for s in os.environ.get(HIDE_ENV, "").split(","))):
        sys.modules[name] = None        # "import name" now raises ImportError


class _Unavailable(Exception):
    """The loader's library is not installed or cannot load."""


def _chunks(seq, n):
    return [seq[i:i + n] for i in range(0, len(seq), n)]


class _FastseqLoader:
    output = "uint8"

    def __init__(self, cfg):
        import fastseq
        import numpy as np

        fastseq.set_num_threads(cfg["threads"])
        self.fastseq, self.np, self.cfg = fastseq, np, cfg

    def prepare(self, paths, view):
        h, w = self.cfg["size"]
        self.batches = _chunks(paths, self.cfg["batch_size"])
        # One preallocated output per distinct batch length (the last batch
        # may be short): steady state allocates nothing.
        self.outs = {len(b): self.np.empty((len(b), h, w, 3), self.np.uint8)
                     for b in self.batches}

    def run(self, n_batches, report):
        load = self.fastseq.load_batch
        size, interp = tuple(self.cfg["size"]), self.cfg["interpolation"]
        dct = self.cfg["dct_scaling"]
        n = 0
        for b in self.batches[:n_batches]:
            load(b, size, out=self.outs[len(b)], interpolation=interp, dct_scaling=dct)
            n += len(b)
            report(len(b))
        return n


class _BareLoader:
    output = "none (decode only)"

    def __init__(self, cfg):
        import fastseq
        from fastseq.core import bare_decode

        fastseq.set_num_threads(cfg["threads"])
        self.bare, self.cfg = bare_decode, cfg

    def prepare(self, paths, view):
        self.batches = _chunks(paths, self.cfg["batch_size"])

    def run(self, n_batches, report):
        n = 0
        for b in self.batches[:n_batches]:
            n += self.bare(b)           # non-JPEG files are skipped, not counted
            report(len(b))
        return n


class _PillowLoader:
    """Keras' load_img step for step, without importing Keras."""
    output = "uint8"

    def __init__(self, cfg):
        import numpy as np
        from PIL import Image

        self.np, self.Image, self.cfg = np, Image, cfg
        self.filter = getattr(Image.Resampling, cfg["interpolation"].upper())

    def prepare(self, paths, view):
        h, w = self.cfg["size"]
        self.batches = _chunks(paths, self.cfg["batch_size"])
        self.outs = {len(b): self.np.empty((len(b), h, w, 3), self.np.uint8)
                     for b in self.batches}

    def run(self, n_batches, report):
        Image, asarray = self.Image, self.np.asarray
        h, w = self.cfg["size"]
        n = 0
        for b in self.batches[:n_batches]:
            out = self.outs[len(b)]
            for i, p in enumerate(b):
                with open(p, "rb") as f:
                    img = Image.open(io.BytesIO(f.read()))
                if img.mode != "RGB":
                    img = img.convert("RGB")
                if img.size != (w, h):
                    img = img.resize((w, h), self.filter)
                out[i] = asarray(img)
            n += len(b)
            report(len(b))
        return n


class _TurboJPEGLoader:
    output = "uint8"

    def __init__(self, cfg):
        from concurrent.futures import ThreadPoolExecutor

        import numpy as np
        from PIL import Image

        try:
            import turbojpeg
        except ImportError as e:
            raise _Unavailable(f"PyTurboJPEG is not installed ({e})") from None
        try:
            self.tj = turbojpeg.TurboJPEG()
        except (OSError, RuntimeError) as e:
            raise _Unavailable(f"PyTurboJPEG cannot load libturbojpeg ({e})") from None
        self.TJPF_RGB = turbojpeg.TJPF_RGB
        self.np, self.Image, self.cfg = np, Image, cfg
        self.filter = getattr(Image.Resampling, cfg["interpolation"].upper())
        self.pool = ThreadPoolExecutor(max_workers=cfg["threads"])

    def prepare(self, paths, view):
        h, w = self.cfg["size"]
        self.batches = _chunks(paths, self.cfg["batch_size"])
        self.outs = {len(b): self.np.empty((len(b), h, w, 3), self.np.uint8)
                     for b in self.batches}

    def _one(self, out, i, path):
        h, w = self.cfg["size"]
        with open(path, "rb") as f:
            data = f.read()
        img = None
        if data[:2] == b"\xff\xd8":
            try:
                img = self.Image.fromarray(self.tj.decode(data, pixel_format=self.TJPF_RGB))
            except (OSError, ValueError):
                img = None      # e.g. CMYK: what a user would do, fall back to Pillow
        if img is None:
            img = self.Image.open(io.BytesIO(data)).convert("RGB")
        if img.size != (w, h):
            img = img.resize((w, h), self.filter)
        out[i] = self.np.asarray(img)

    def run(self, n_batches, report):
        n = 0
        for b in self.batches[:n_batches]:
            out = self.outs[len(b)]
            for f in [self.pool.submit(self._one, out, i, p) for i, p in enumerate(b)]:
                f.result()
            n += len(b)
            report(len(b))
        return n


def _import_keras(cfg):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as e:
        raise _Unavailable(f"TensorFlow is not installed ({e})") from None
    try:
        import keras
    except ImportError as e:
        raise _Unavailable(f"Keras is not installed ({e})") from None
    try:
        tf.config.threading.set_intra_op_parallelism_threads(cfg["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(cfg["threads"])
    except RuntimeError:
        pass
    return tf, keras


class _KerasIDGLoader:
    output = "uint8"

    def __init__(self, cfg):
        _import_keras(cfg)
        try:
            from keras.src.legacy.preprocessing.image import ImageDataGenerator
        except ImportError:
            try:
                from keras.preprocessing.image import ImageDataGenerator
            except ImportError as e:
                raise _Unavailable(f"this Keras has no legacy ImageDataGenerator ({e})") from None
        self.gen = ImageDataGenerator(dtype="uint8")
        self.cfg = cfg

    def prepare(self, paths, view):
        self.it = self.gen.flow_from_directory(
            view, target_size=tuple(self.cfg["size"]), class_mode=None,
            batch_size=self.cfg["batch_size"], shuffle=False,
            interpolation=self.cfg["interpolation"])
        if self.it.samples != len(paths):
            raise RuntimeError(f"ImageDataGenerator found {self.it.samples} of {len(paths)} images")

    def run(self, n_batches, report):
        n = 0
        for i in range(min(len(self.it), n_batches or len(self.it))):
            x = self.it[i]
            n += len(x)
            report(len(x))
        return n


class _KerasDatasetLoader:
    # tf.image.resize (antialias=False) samples only the nearest source
    # pixels when shrinking: cheaper than Pillow's filters, and aliased.
    output = "float32 (Keras' fixed dtype), resized without antialiasing"

    def __init__(self, cfg):
        method = _TF_METHODS.get(cfg["interpolation"])
        if method is None:
            raise _Unavailable(f"tf.image.resize has no {cfg['interpolation']!r} filter")
        self.tf, self.keras = _import_keras(cfg)
        self.method, self.cfg = method, cfg

    def prepare(self, paths, view):
        self.ds = self.keras.utils.image_dataset_from_directory(
            view, labels=None, batch_size=self.cfg["batch_size"],
            image_size=tuple(self.cfg["size"]), shuffle=False,
            interpolation=self.method, verbose=False)

    def run(self, n_batches, report):
        ds = self.ds if n_batches is None else self.ds.take(n_batches)
        n = 0
        for x in ds:
            k = int(x.shape[0])
            n += k
            report(k)
        return n


_LOADER_CLASSES = {"fastseq": _FastseqLoader, "bare": _BareLoader,
                   "pillow": _PillowLoader, "turbojpeg": _TurboJPEGLoader,
                   "keras-idg": _KerasIDGLoader, "keras-ds": _KerasDatasetLoader}


def _one_line(exc):
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else ''}".rstrip(": ")


def _worker_main(conn, cfg):
    """Entry point of a loader process.  Protocol (tuples over `conn`):
    parent sends ("prepare", paths, view) | ("run", n_batches|None) | ("stop",);
    worker answers ("ready", output) | ("unavailable", why) | ("failed", why)
    once after start, then ("ok",) / ("failed", why) to prepare, and
    ("progress", k)* then ("done", seconds, n_images) / ("failed", why) to run.
    """
    # Ctrl-C is the parent's to handle: it stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Library chatter (TensorFlow's logs, Keras' "Found N images") goes to the
    # worker's log file, never into the report.
    log = os.open(cfg["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    _hide_modules()
    try:
        loader = _LOADER_CLASSES[cfg["name"]](cfg)
    except _Unavailable as e:
        conn.send(("unavailable", str(e)))
        return
    except ImportError as e:
        conn.send(("unavailable", f"cannot import {getattr(e, 'name', None) or 'a module'} ({e})"))
        return
    except Exception as e:          # noqa: BLE001 -- reported, never raised
        traceback.print_exc()
        conn.send(("failed", _one_line(e)))
        return
    conn.send(("ready", loader.output))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        try:
            if msg[0] == "prepare":
                loader.prepare(msg[1], msg[2])
                conn.send(("ok",))
            elif msg[0] == "run":
                send = conn.send
                t0 = time.perf_counter()
                n = loader.run(msg[1], lambda k: send(("progress", k)))
                conn.send(("done", time.perf_counter() - t0, n))
        except Exception as e:      # noqa: BLE001
            traceback.print_exc()
            conn.send(("failed", _one_line(e)))


class _WorkerDied(Exception):
    pass


class _Worker:
    def __init__(self, ctx, loader, cfg):
        self.loader = loader
        self.log = cfg["log"]
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, cfg), daemon=True,
                                name=f"fastseq-bench-{loader.key}")
        self.proc.start()
        child.close()

    def recv(self):
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(1)
            raise _WorkerDied(f"worker process died (exit code {self.proc.exitcode})"
                              f"{self._log_tail()}") from None

    def _log_tail(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                lines = [l.strip() for l in f if l.strip()]
        except OSError:
            return ""
        return f"; last log line: {lines[-1][:200]}" if lines else ""

    def send(self, *msg):
        try:
            self.conn.send(msg)
        except (BrokenPipeError, OSError):
            raise _WorkerDied("worker process is gone") from None

    def stop(self, timeout=2.0):
        if self.proc.is_alive():
            try:
                self.conn.send(("stop",))
            except OSError:
                pass
            self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


# --------------------------------------------------------------------------
# Orchestration.

def _read_cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _dist_version(*names):
    from importlib import metadata

    for n in names:
        try:
            return metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return None


def collect_environment():
    """(machine, versions) dicts, without importing TensorFlow."""
    import numpy as np
    import PIL

    import fastseq
    from fastseq.core import usable_cpus

    inf = fastseq.info()
    cores = usable_cpus()
    machine = dict(cpu=_read_cpu_model(), cores_used=cores, cores_total=os.cpu_count() or cores,
                   platform=platform.platform(terse=True), python=platform.python_version())
    versions = dict(fastseq=inf["fastseq"], libjpeg_turbo=inf["libjpeg_turbo"],
                    simd=bool(inf["simd"]), pillow=PIL.__version__, numpy=np.__version__,
                    tensorflow=_dist_version("tensorflow", "tensorflow-cpu", "tf-nightly"),
                    keras=_dist_version("keras"), pyturbojpeg=_dist_version("PyTurboJPEG"))
    return machine, versions


class _Progress:
    """One tqdm bar per set, counting images over all loaders and rounds."""

    def __init__(self, enabled, total, desc):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="img", desc=desc, leave=False,
                            dynamic_ncols=True, mininterval=0.2)

    def update(self, k):
        if self.bar is not None:
            self.bar.update(k)

    def describe(self, text):
        if self.bar is not None:
            self.bar.set_description_str(text, refresh=False)

    def write(self, text):
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _busy_cpu_seconds():
    """CPU seconds all processes of the machine have used (Linux), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _own_cpu_seconds():
    # children_* count the worker processes once they are joined.
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _new_result(loader):
    return dict(loader=loader.key, name=loader.spec.name, label=loader.label,
                threads=loader.threads, status="ok", note=None, output="",
                n_images=0, n_batches=0, rounds_done=0, round_seconds=[],
                images_per_s=None, ms_per_batch=None, speedup=None,
                fraction_of_bare=None)


def _finish_set(set_result, threads):
    """Medians, speed-ups of the reference fastseq and fractions of bare."""
    rows = set_result["results"]
    for r in rows:
        if r["round_seconds"] and r["status"] == "ok":
            med = statistics.median(r["round_seconds"])
            r["images_per_s"] = r["n_images"] / med if med > 0 else None
            r["ms_per_batch"] = 1000 * med / max(1, r["n_batches"])
    ok = [r for r in rows if r["images_per_s"]]

    def pick(name):
        same = [r for r in ok if r["name"] == name and r["threads"] == threads]
        return (same or [r for r in ok if r["name"] == name] or [None])[0]

    ref, bare = pick("fastseq"), pick("bare")
    set_result["reference"] = ref["loader"] if ref else None
    set_result["bare"] = bare["loader"] if bare else None
    bare_by_threads = {r["threads"]: r for r in ok if r["name"] == "bare"}
    for r in ok:
        if ref:
            r["speedup"] = ref["images_per_s"] / r["images_per_s"]
        b = bare_by_threads.get(r["threads"], bare)
        if b and r["name"] != "bare":
            r["fraction_of_bare"] = r["images_per_s"] / b["images_per_s"]
        elif b is r:
            r["fraction_of_bare"] = 1.0


def run_benchmark(sets, *, size=(224, 224), batch_size=64, threads=None,
                  loaders=DEFAULT_LOADERS, rounds=3, warmup=2,
                  interpolation="bilinear", dct_scaling=True, progress=True,
                  verbose=False, notes=None, workdir=None):
    """Run the loaders on each set and return the result dict (see the
    module docstring for its schema).

    `sets` is a list of dicts ``{"name", "title", "path", "description",
    "items"}`` where items are ``(path, class)`` pairs (see list_images).
    On Ctrl-C the workers are stopped and the partial result is returned
    with ``"interrupted": True``.
    """
    import multiprocessing as mp

    machine, versions = collect_environment()
    if threads is None:
        threads = machine["cores_used"]
    if isinstance(loaders, str):
        loaders = parse_loaders(loaders, threads)
    result = dict(schema=SCHEMA, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  interrupted=False, machine=machine, versions=versions,
                  settings=dict(size=list(size), batch_size=batch_size, threads=threads,
                                rounds=rounds, warmup_batches=warmup,
                                interpolation=interpolation, dtype="uint8", color_mode="rgb",
                                dct_scaling=bool(dct_scaling),
                                loaders=[l.key for l in loaders]),
                  sets=[], fit=None, notes=list(notes or []))
    for s in sets:
        result["sets"].append(dict(
            name=s["name"], title=s["title"], path=s["path"], n_images=len(s["items"]),
            description=s.get("description", ""), reference=None, bare=None,
            results=[_new_result(l) for l in loaders]))

    busy0, own0, wall0 = _busy_cpu_seconds(), _own_cpu_seconds(), time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="fastseq-bench-", dir=workdir)
    ctx = mp.get_context("spawn")
    workers = {}
    say = _Progress(False, 0, "").write
    try:
        # All workers start (and import their libraries) at once: nothing is
        # being timed yet, and TensorFlow's import alone takes seconds.
        if progress:
            say(f"fastseq bench: starting {len(loaders)} loader processes...")
        for l in loaders:
            cfg = dict(name=l.spec.name, threads=l.threads, size=list(size),
                       batch_size=batch_size, interpolation=interpolation,
                       dct_scaling=bool(dct_scaling),
                       log=os.path.join(tmp, f"{l.key.replace('@', '_')}.log"))
            workers[l.key] = _Worker(ctx, l, cfg)
        live = []
        for l in loaders:
            w = workers[l.key]
            try:
                reply = w.recv()
            except _WorkerDied as e:
                reply = ("failed", str(e))
            for sr in result["sets"]:
                row = next(r for r in sr["results"] if r["loader"] == l.key)
                if reply[0] == "ready":
                    row["output"] = reply[1]
                else:
                    row["status"] = "skipped" if reply[0] == "unavailable" else "failed"
                    row["note"] = reply[1]
            if reply[0] == "ready":
                live.append(l)
            else:
                verb = "skipped" if reply[0] == "unavailable" else "failed"
                say(f"fastseq bench: {l.key} {verb}: {reply[1]}")
                w.stop()
        for s, sr in zip(sets, result["sets"]):
            _run_set(s, sr, live, workers, rounds, warmup, progress, verbose, tmp,
                     batch_size)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # one Ctrl-C is enough
        result["interrupted"] = True
        result["notes"].append("interrupted by Ctrl-C: partial results (completed rounds only)")
    finally:
        for w in workers.values():
            try:
                w.stop(timeout=0.5 if result["interrupted"] else 2.0)
            except Exception:               # noqa: BLE001 -- best effort cleanup
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    busy1, own1, wall1 = _busy_cpu_seconds(), _own_cpu_seconds(), time.perf_counter()
    machine["other_cpu_load"] = None
    if busy0 is not None and busy1 is not None and wall1 > wall0:
        # CPU time the machine spent on processes other than this benchmark,
        # as a fraction of all its cores over the run: others' work on a
        # shared machine makes the figures noisy, so the report says so.
        other = max(0.0, (busy1 - busy0) - (own1 - own0))
        machine["other_cpu_load"] = round(other / ((wall1 - wall0) * machine["cores_total"]), 3)
        if machine["other_cpu_load"] > 0.05:
            result["notes"].append(
                f"other processes used {100 * machine['other_cpu_load']:.0f}% of this "
                "machine's CPU time during the run: the figures are noisy; rerun on an "
                "idle machine")
    for sr in result["sets"]:
        _finish_set(sr, threads)
    return result


def _run_set(s, sr, live, workers, rounds, warmup, progress, verbose, tmp, batch_size):
    rows = {r["loader"]: r for r in sr["results"]}
    items = s["items"]
    paths = [p for p, _ in items]
    view = None
    if any(l.spec.needs_dir for l in live):
        view = _make_view(items, os.path.join(tmp, f"view-{s['name']}"))
    _warm_page_cache(paths)
    n_batches = math.ceil(len(paths) / batch_size)
    active = []
    for l in live:
        row = rows[l.key]
        w = workers[l.key]
        try:
            w.send("prepare", paths, view)
            reply = w.recv()
            if reply[0] == "ok" and warmup > 0:
                w.send("run", warmup)
                reply = w.recv()
                while reply[0] == "progress":
                    reply = w.recv()
        except _WorkerDied as e:
            reply = ("failed", str(e))
        if reply[0] in ("ok", "done"):
            row["n_images"], row["n_batches"] = len(paths), n_batches
            active.append(l)
        else:
            row["status"], row["note"] = "failed", reply[1]
    bar = _Progress(progress, rounds * len(active) * len(paths), s["title"])
    try:
        for r in range(rounds):
            for l in list(active):
                row = rows[l.key]
                w = workers[l.key]
                bar.describe(f"{s['name']}: {l.key} (round {r + 1}/{rounds})")
                try:
                    w.send("run", None)
                    reply = w.recv()
                    while reply[0] == "progress":
                        bar.update(reply[1])
                        reply = w.recv()
                except _WorkerDied as e:
                    reply = ("failed", str(e))
                if reply[0] == "done":
                    seconds, n = reply[1], reply[2]
                    row["round_seconds"].append(seconds)
                    row["rounds_done"] += 1
                    if l.spec.name == "bare" and n != len(paths) and row["note"] is None:
                        row["note"] = (f"decoded {n} of {len(paths)} files (non-JPEG files "
                                       "are skipped)")
                        row["n_images"] = n
                    if verbose:
                        bar.write(f"{s['name']} round {r + 1}/{rounds}: {l.key}: "
                                  f"{n / seconds:.1f} images/s")
                else:
                    row["status"], row["note"] = "failed", reply[1]
                    bar.write(f"fastseq bench: {l.key} failed on {s['name']}: {reply[1]}")
                    active.remove(l)
    finally:
        bar.close()


# --------------------------------------------------------------------------
# Reporting.

def _fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def format_header(result):
    m, v, st = result["machine"], result["versions"], result["settings"]
    h, w = st["size"]
    opt = lambda x: x or "not installed"    # noqa: E731
    lines = [
        f"fastseq bench | CPU: {m['cpu']} | cores used: {m['cores_used']} of "
        f"{m['cores_total']} | threads: {st['threads']}",
        f"versions: fastseq {v['fastseq']}, libjpeg-turbo {v['libjpeg_turbo']} "
        f"(SIMD {'on' if v['simd'] else 'off'}), Pillow {v['pillow']}, numpy {v['numpy']}, "
        f"TensorFlow {opt(v['tensorflow'])}, Keras {opt(v['keras'])}, "
        f"PyTurboJPEG {opt(v['pyturbojpeg'])}, Python {m['python']}",
        f"output: {h}x{w} uint8 RGB, {st['interpolation']}"
        f"{'' if st['dct_scaling'] else ', no DCT scaling'}; batch {st['batch_size']}; "
        + (f"median of {st['rounds']} rounds" if not result["interrupted"] else
           f"median of the rounds completed before Ctrl-C (of {st['rounds']} planned)")
        + f" after {st['warmup_batches']} warm-up batches; "
        "each loader in its own process, rounds alternating",
    ]
    return "\n".join(lines)


def format_set(sr):
    ref = sr["reference"]
    out = [f"{sr['title']}: {sr['n_images']} images from {sr['path']}"]
    if sr.get("description"):
        out += ["  " + line for line in sr["description"].splitlines()]
    head = ("loader", "images/s", "ms/batch", "fastseq is", "of bare limit")
    rows = []
    for r in sr["results"]:
        if r["status"] != "ok" or not r["images_per_s"]:
            why = r["note"] or ("no round completed" if r["status"] == "ok" else r["status"])
            rows.append((r["label"], f"{r['status'] if r['status'] != 'ok' else 'n/a'}: {why}"))
            continue
        sp = r["speedup"]
        sp_txt = "(reference)" if r["loader"] == ref else (_fmt(sp, ".2f") + "x faster"
                                                           if sp is None or sp >= 1
                                                           else f"{1 / sp:.2f}x slower")
        frac = r["fraction_of_bare"]
        rows.append((r["label"], f"{r['images_per_s']:.1f}", f"{r['ms_per_batch']:.1f}",
                     sp_txt if ref else "-", _fmt(frac and 100 * frac, ".0f") + ("%" if frac else "")))
    width = max([len(head[0])] + [len(r[0]) for r in rows])
    fmt = f"  {{:<{width}}}  {{:>10}}  {{:>9}}  {{:>14}}  {{:>13}}"
    out.append(fmt.format(*head))
    for r in rows:
        if len(r) == 2:
            out.append(f"  {r[0]:<{width}}  {r[1]}")
        else:
            out.append(fmt.format(*r))
    notes = [f"  note: {r['label']}: {r['note']}" for r in sr["results"]
             if r["status"] == "ok" and r["note"]]
    notes += [f"  note: {r['label']} yields {r['output']}" for r in sr["results"]
              if r["status"] == "ok" and r["output"] not in ("", "uint8", _BareLoader.output)]
    return "\n".join(out + notes)


def format_fit(fit):
    if fit is None:
        return ""
    if fit["status"] != "ok":
        return f"model.fit benchmark {fit['status']}: {fit['note']}"
    res = fit["result"]
    lines = ["model.fit benchmark (seconds per epoch):"]
    try:
        from fastseq.fitbench import format_fit_table

        head = (f"  {res['n_images']} images, {res['size'][0]}x{res['size'][1]}, batch "
                f"{res['batch_size']}, {res['epochs']} epochs (epoch 1 excluded); model: "
                f"{res['model']}")
        return "\n".join(lines + [head, format_fit_table(res)])
    except (ImportError, KeyError, TypeError, ValueError, ZeroDivisionError):
        pass            # another result layout: print it as it is
    lines += _format_mapping(res, "  ")
    return "\n".join(lines)


def _format_mapping(d, indent):
    lines = []
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"{indent}{k}:")
            lines += _format_mapping(v, indent + "  ")
        elif isinstance(v, float):
            lines.append(f"{indent}{k}: {v:.4g}")
        else:
            lines.append(f"{indent}{k}: {v}")
    return lines


def format_report(result):
    parts = [format_header(result)]
    parts += [format_set(sr) for sr in result["sets"]]
    if result.get("fit") is not None:
        parts.append(format_fit(result["fit"]))
    if result["notes"]:
        parts.append("\n".join(f"note: {n}" for n in result["notes"]))
    return "\n\n".join(parts)


def write_json(result, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, default=str)
        f.write("\n")


def plot_results(result, path):
    """A horizontal bar chart of images/s per loader, one panel per set."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    sets = [sr for sr in result["sets"] if any(r["images_per_s"] for r in sr["results"])]
    if not sets:
        sets = result["sets"][:1]
    heights = [max(1, len(sr["results"])) for sr in sets]
    fig, axes = plt.subplots(len(sets), 1, squeeze=False,
                             figsize=(9, 1.2 + 0.45 * sum(heights) + 0.8 * len(sets)),
                             gridspec_kw=dict(height_ratios=heights))
    for ax, sr in zip(axes[:, 0], sets):
        rows = [r for r in sr["results"]][::-1]          # first loader on top
        vals = [r["images_per_s"] or 0 for r in rows]
        colors = ["#d62728" if r["name"] == "fastseq" else
                  "#7f7f7f" if r["name"] == "bare" else "#1f77b4" for r in rows]
        bars = ax.barh(range(len(rows)), vals, color=colors)
        for b, r in zip(bars, rows):
            if r["name"] == "bare":
                b.set_hatch("//")
                b.set_alpha(0.6)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r["label"] for r in rows], fontsize=8)
        top = max(vals) if any(vals) else 1
        for i, r in enumerate(rows):
            if r["images_per_s"]:
                txt = f"{r['images_per_s']:.0f}/s"
                sp = r["speedup"]
                if not sp or r["loader"] == sr["reference"]:
                    pass
                elif r["name"] == "fastseq":
                    ref = next(x for x in sr["results"] if x["loader"] == sr["reference"])
                    txt += f"  ({ref['threads']} threads: {sp:.2f}x this)"
                elif r["name"] != "bare":
                    txt += (f"  (fastseq {sp:.1f}x faster)" if sp >= 1
                            else f"  (fastseq {1 / sp:.1f}x slower)")
                elif r["name"] == "bare" and sr["reference"]:
                    ref = next(x for x in sr["results"] if x["loader"] == sr["reference"])
                    if r["threads"] == ref["threads"]:
                        txt += f"  (fastseq: {100 * ref['fraction_of_bare']:.0f}% of it)"
            else:
                txt = r["status"] if r["status"] != "ok" else "n/a"
            ax.text(vals[i] + top * 0.01, i, txt, va="center", fontsize=8)
        ax.set_xlim(0, top * 1.5)       # room for the labels right of the bars
        ax.set_xlabel("images/s (higher is better)")
        ax.set_title(f"{sr['title']} ({sr['n_images']} images)", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    st, m = result["settings"], result["machine"]
    fig.suptitle(f"fastseq bench: {st['size'][0]}x{st['size'][1]} uint8 RGB, "
                 f"{st['interpolation']}, batch {st['batch_size']} | {m['cpu']}, "
                 f"{st['threads']} threads", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


# --------------------------------------------------------------------------
# Command line.

def parse_size(text):
    """"224" -> (224, 224); "160x224" (HxW) -> (160, 224).  BenchError if bad."""
    t = str(text).lower().replace(",", "x").replace("*", "x").strip()
    parts = t.split("x") if "x" in t else [t, t]
    try:
        h, w = (int(p) for p in parts)
        ok = len(parts) == 2 and 1 <= h <= 65536 and 1 <= w <= 65536
    except ValueError:
        ok = False
    if not ok:
        raise BenchError(f"bad --size {text!r}: expected N or HxW with integers "
                         "between 1 and 65536, e.g. 224 or 160x224")
    return h, w


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that reports errors in one line, without the usage block."""

    def error(self, message):
        raise BenchError(f"{message} (see {self.prog} --help)")


def build_parser(prog="fastseq bench"):
    p = _ArgumentParser(
        prog=prog,
        description="Compare image loaders on your images (or on a generated "
                    "default dataset): images/s, ms per batch, fastseq's speed-up, "
                    "and the fraction of the bare-decode limit reached.",
        epilog="loaders: " + ", ".join(LOADERS) + "; NAME@T runs a threaded loader "
               f"on T threads. Default: {DEFAULT_LOADERS}.",
    )
    p.add_argument("dir", nargs="?", metavar="DIR",
                   help="a class-per-folder tree or a flat folder of images "
                        "(default: the generated default dataset)")
    p.add_argument("--size", default="224", help="output size, N or HxW (default 224)")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for threaded loaders (default: all usable cores)")
    p.add_argument("--loaders", default=DEFAULT_LOADERS,
                   help="comma-separated loaders (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per loader (default 3)")
    p.add_argument("--warmup", type=int, default=2,
                   help="warm-up batches per loader before timing (default 2)")
    p.add_argument("--limit", type=int, default=None,
                   help="use at most N images per set (evenly spread)")
    p.add_argument("--interpolation", default="bilinear", choices=INTERPOLATIONS)
    p.add_argument("--no-dct-scaling", action="store_true",
                   help="fastseq decodes at full size (exact Pillow parity)")
    p.add_argument("--fit", action="store_true",
                   help="also compare model.fit seconds per epoch (fastseq.fitbench)")
    p.add_argument("--epochs", type=int, default=2,
                   help="epochs per loader for --fit, at least 2: the first is "
                        "excluded (default 2)")
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    p.add_argument("--plot", metavar="FILE", help="write a bar chart (PNG)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="where the default dataset is generated (default: "
                        "$FASTSEQ_CACHE_DIR or the user cache directory)")
    p.add_argument("--n-imagenet", type=int, default=None,
                   help="images in the default ImageNet-like set (default 1000)")
    p.add_argument("--n-large", type=int, default=None,
                   help="images in the default 6-12 MP set (default 16; 0 skips it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print each round's figure as it is measured")
    return p


def _check_args(a):
    size = parse_size(a.size)
    for name, val, lo in (("--batch-size", a.batch_size, 1), ("--rounds", a.rounds, 1),
                          ("--warmup", a.warmup, 0), ("--epochs", a.epochs, 2)):
        if val < lo:
            raise BenchError(f"{name} must be >= {lo}, got {val}")
    if a.threads is not None and not 1 <= a.threads <= 256:
        raise BenchError(f"--threads must be between 1 and 256, got {a.threads}")
    if a.limit is not None and a.limit < 1:
        raise BenchError(f"--limit must be >= 1, got {a.limit}")
    for name, val in (("--n-imagenet", a.n_imagenet), ("--n-large", a.n_large)):
        if val is not None and val < 0:
            raise BenchError(f"{name} must be >= 0, got {val}")
    if a.dir is not None and (a.n_imagenet is not None or a.n_large is not None):
        raise BenchError("--n-imagenet/--n-large apply to the default dataset, not to DIR")
    for opt, path in (("--json", a.json), ("--plot", a.plot)):
        if path:
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise BenchError(f"{opt}: folder does not exist: {parent}")
    return size


def _sets_from_args(a, progress):
    """The benchmark sets, and the directory --fit trains on."""
    if a.dir is not None:
        items = list_images(a.dir)
        n_classes = len({c for _, c in items})
        kind = f"{n_classes} class folders" if any(c for _, c in items) else "a flat folder"
        desc = f"your images: {len(items)} files in {kind}"
        items = _subsample(items, a.limit)
        return [dict(name="dir", title=os.path.basename(os.path.abspath(a.dir)) or a.dir,
                     path=a.dir, description=desc, items=items)], a.dir
    from fastseq import datasets

    kw = {}
    if a.n_imagenet is not None:
        kw["n_imagenet"] = a.n_imagenet
    if a.n_large is not None:
        kw["n_large"] = a.n_large
    try:
        ds = datasets.ensure_default_dataset(a.cache_dir, progress=progress, **kw)
    except ValueError as e:
        raise BenchError(str(e)) from None
    except OSError as e:
        raise BenchError(f"cannot write the default dataset: {e}") from None
    summary = datasets.describe_dataset(ds).splitlines()
    sets = []
    for name, title, line in (("imagenet", "ImageNet-like", 0), ("large", "Large 6-12 MP", 1)):
        if ds[name]:
            items = _subsample(list_images(ds[name]), a.limit)
            desc = next((s for s in summary if s.lower().startswith(title.split()[0].lower())), "")
            sets.append(dict(name=name, title=title, path=ds[name], description=desc,
                             items=items))
    return sets, ds["imagenet"] or ds["large"]


def _run_fit(data_dir, size, a, progress):
    try:
        if "fastseq.fitbench" in os.environ.get(HIDE_ENV, "").split(","):
            raise ImportError("hidden by " + HIDE_ENV)
        from fastseq.fitbench import run_fit_benchmark
    except ImportError as e:
        return dict(status="skipped", note=f"fastseq.fitbench is not available ({e})",
                    result=None)
    try:
        res = run_fit_benchmark(data_dir, size=size, batch_size=a.batch_size,
                                epochs=a.epochs, progress=progress)
    except KeyboardInterrupt:
        raise
    except Exception as e:          # noqa: BLE001 -- a failed extra is a line, not a crash
        return dict(status="failed", note=_one_line(e), result=None)
    return dict(status="ok", note=None, result=res)


def bench_main(argv=None, prog="fastseq bench"):
    """``fastseq bench`` command line.  Returns the exit status: 0 done,
    2 bad arguments or input, 130 interrupted."""
    parser = build_parser(prog)
    try:
        a = parser.parse_args(argv)
        size = _check_args(a)
        progress = not a.no_progress
        import fastseq

        threads = a.threads or fastseq.get_num_threads()
        loaders = parse_loaders(a.loaders, threads)
        sets, fit_dir = _sets_from_args(a, progress)
    except BenchError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted before anything was measured", file=sys.stderr)
        return 130

    result = run_benchmark(sets, size=size, batch_size=a.batch_size, threads=threads,
                           loaders=loaders, rounds=a.rounds, warmup=a.warmup,
                           interpolation=a.interpolation, dct_scaling=not a.no_dct_scaling,
                           progress=progress, verbose=a.verbose)
    if a.fit and not result["interrupted"]:
        try:
            result["fit"] = _run_fit(fit_dir, size, a, progress)
        except KeyboardInterrupt:
            result["interrupted"] = True
            result["notes"].append("interrupted by Ctrl-C during the model.fit benchmark")
    print(format_report(result), flush=True)
    status = 130 if result["interrupted"] else 0
    for opt, fn, path in (("--json", write_json, a.json), ("--plot", plot_results, a.plot)):
        if path:
            try:
                fn(result, path)
                print(f"wrote {path}")
            except OSError as e:
                print(f"{prog}: error: cannot write {opt} file {path}: {e.strerror or e}",
                      file=sys.stderr)
                status = status or 1
    return status
