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

The default ``fastseq bench`` stays JPEG-only: generating these two sets
takes about a minute on 2 cores (once; they are cached beside the default
dataset).
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
from fastseq.bench import datasets, files, report  # noqa: E402

SIZE = (224, 224)


def targets(results, n):
    """[(description, measured ratio or None, minimum)] for section 4."""
    rows = {}
    for res in results:
        for sr in res["sets"]:
            rows[sr["name"]] = {r["loader"]: r["images_per_s"] for r in sr["results"]
                                if r.get("status") == "ok"}

    def ratio(s, a, b):
        x = rows.get(s, {})
        return x[a] / x[b] if x.get(a) and x.get(b) else None

    t = "thread" if n == 1 else "threads"
    out = [(f"PNG: fastseq ({n} {t}) / Pillow per image", ratio("png", f"fastseq@{n}", "pillow"), 2.5),
           (f"PNG: fastseq ({n} {t}) / image_dataset_from_directory ({n} {t})",
            ratio("png", f"fastseq@{n}", f"keras-ds@{n}"), 1.5)]
    if n != 1:
        out.append((f"PNG: fastseq {n} threads / 1 thread",
                    ratio("png", f"fastseq@{n}", "fastseq@1"), 1.8))
    out.append((f"WebP: fastseq ({n} {t}) / Pillow per image",
                ratio("webp", f"fastseq@{n}", "pillow"), 2.0))
    return out


def format_targets(rows):
    return report.format_target_table(
        f"Targets (issue 14, section 4), {SIZE[0]}x{SIZE[1]} uint8, ratios from this run:", rows)


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
    progress = not a.no_progress
    results = []
    for fmt in a.formats.split(","):
        folder = datasets.ensure_format_dataset(fmt, a.cache_dir, n=a.n, progress=progress)
        items = files.list_images(folder, extensions=(f".{fmt}",))
        sets = [dict(name=fmt, title=fmt.upper(), path=folder,
                     description=datasets.describe_format_dataset(folder), items=items)]
        loaders = f"fastseq@{threads},fastseq@1,pillow"
        if fmt == "png":
            loaders += f",keras-ds@{threads}"
        res = bench.run_benchmark(sets, size=SIZE, batch_size=a.batch_size, threads=threads,
                                  loaders=loaders, rounds=a.rounds, warmup=a.warmup,
                                  interpolation="bilinear", progress=progress)
        print(bench.format_report(res))
        print()
        results.append(res)
        if res["interrupted"]:
            return 130
    rows = targets(results, threads)
    print(format_targets(rows))
    if a.json:
        bench.write_json(dict(runs=results, targets=[
            dict(target=d, measured=m, minimum=n,
                 result=None if m is None else ("PASS" if m >= n else "MISS"))
            for d, m, n in rows]), a.json)
    missed = any(m is not None and m < n for _, m, n in rows)
    return 1 if (a.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
