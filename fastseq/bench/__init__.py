"""The loader benchmark behind ``python -m fastseq bench``.

Each loader runs in its own process (``multiprocessing`` spawn context), so
that no loader inherits another's threads, caches or imports (TensorFlow's
thread pools in particular).  The parent process only orchestrates: it
warms the page cache, starts the workers, has each one warm up, then runs
the rounds one loader at a time, alternating between loaders round by round
(so slow drifts of the machine, e.g. thermal or a neighbour's load, spread
over all loaders), and reports the median round.

Modules, one job each:

================  =========================================================
``cli``           ``fastseq bench``'s arguments, checks and main function.
``files``         listing a folder's images, the symlink view Keras reads.
``loaders``       the loaders compared (specs, ``NAME@T`` parsing, the
                  per-process loader classes) and ``bare_decode``.
``worker``        the loader process and its message protocol.
``runner``        orchestration: workers, warm-up, alternating rounds.
``stats``         per-loader medians, speed-ups and fractions of bare.
``report``        the text report, JSON and the bar chart.
``environment``   machine and version facts, other processes' CPU load.
``fitbench``      the ``model.fit`` benchmark (``--fit``).
``augbench``      issue 11's augmentation benchmark (``--augment``; in one
                  process, fastseq and Keras' legacy ImageDataGenerator
                  with Keras' common recipe).
``datasets``      the generated default dataset.
``common``        ``BenchError``, the one-line error form, ``HIDE_ENV``.
================  =========================================================

Loaders (``--loaders``; ``NAME@T`` runs a threaded loader on T threads):

=============  ==============================================================
``fastseq``    ``fastseq.load_batch`` into a preallocated batch.
``pillow``     per image, as Keras' ``load_img`` does it: read the file,
               ``Image.open``, ``convert("RGB")``, ``resize`` with the
               filter, ``np.asarray``; one Python loop, one thread.
``fastseq-df`` ``fastseq.ImageDataGenerator(dtype="uint8").flow_from_dataframe``
               on a DataFrame of the paths, batch by batch (needs pandas).
``keras-idg``  Keras' legacy ``ImageDataGenerator().flow_from_directory``
               (dtype uint8), iterated batch by batch; on any Keras backend.
``keras-df``   Keras' legacy ``flow_from_dataframe``, the same way (not in
               the default list: it costs what ``keras-idg`` costs).
``keras-ds``   ``keras.utils.image_dataset_from_directory`` (tf.data, with
               its AUTOTUNE prefetch; needs TensorFlow); yields float32, as Keras does, and
               resizes with ``tf.image.resize`` without antialiasing.
``turbojpeg``  PyTurboJPEG's ``TurboJPEG().decode`` + Pillow resize per
               image in a ``concurrent.futures.ThreadPoolExecutor``.
``bare``       :func:`fastseq.bench.loaders.bare_decode`: the full-size libjpeg-turbo
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

from fastseq.bench.cli import bench_main, build_parser, parse_size
from fastseq.bench.common import HIDE_ENV, BenchError
from fastseq.bench.environment import collect_environment
from fastseq.bench.files import IMAGE_EXTENSIONS, list_images
from fastseq.bench.loaders import DEFAULT_LOADERS, LOADERS, Loader, LoaderSpec, parse_loaders
from fastseq.bench.report import format_report, plot_results, write_json
from fastseq.bench.runner import SCHEMA, run_benchmark

__all__ = ["LOADERS", "DEFAULT_LOADERS", "LoaderSpec", "Loader", "parse_loaders",
           "list_images", "IMAGE_EXTENSIONS", "run_benchmark", "SCHEMA", "format_report",
           "write_json", "plot_results", "collect_environment", "bench_main",
           "build_parser", "parse_size", "BenchError", "HIDE_ENV"]
