"""The PNG and WebP benchmark of issue 14, section 4 (not a timed test).

Throughput in images/s on the generated PNG and WebP sets (ImageNet-like
sizes, the default dataset's photo-like content, a mix of colour types; see
``fastseq.bench.datasets.ensure_format_dataset``), for 224x224 uint8 RGB
bilinear output, of fastseq at all threads and at 1 thread, Pillow per
image (Keras' ``load_img``) and, for PNG, ``image_dataset_from_directory``
(no Keras loader lists ``.webp`` files).  Every loader runs in its own
process, after a warm-up, rounds alternating between loaders, median of the
rounds (see fastseq.bench).  It prints the tables, then each target as a
ratio measured in this one run, with PASS or MISS::

    python benchmarks/bench_formats.py [--rounds 5] [--n 300] [--json FILE]

The same as ``fastseq bench --formats``; the work is in
fastseq.bench.formatbench.
"""

from __future__ import annotations

import argparse
import os
import sys

try:
    import fastseq  # noqa: F401
except ImportError:     # run from a checkout built in place
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastseq  # noqa: E402
from fastseq import bench  # noqa: E402
from fastseq.bench import datasets, formatbench  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2, help="warm-up batches per loader")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="default: all usable cores")
    p.add_argument("--n", type=int, default=datasets.DEFAULT_N_FORMAT, help="images per set")
    p.add_argument("--formats", default="png,webp")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    a = p.parse_args(argv)
    threads = a.threads or fastseq.get_num_threads()
    try:
        formats = formatbench.parse_formats(a.formats)
    except ValueError as e:
        p.error(str(e))
    results = formatbench.run_format_benchmark(
        formats, n=a.n, cache_dir=a.cache_dir, threads=threads, rounds=a.rounds,
        warmup=a.warmup, batch_size=a.batch_size, progress=not a.no_progress)
    for res in results:
        print(bench.format_report(res))
        print()
    if results and results[-1]["interrupted"]:
        return 130
    rows = formatbench.targets(results, threads)
    print(formatbench.format_targets(rows))
    if a.json:
        bench.write_json(formatbench.as_json(results, rows), a.json)
    missed = any(m is not None and m < n for _, m, n in rows)
    return 1 if (a.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
