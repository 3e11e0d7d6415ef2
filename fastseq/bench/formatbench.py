"""Issue 14's PNG and WebP benchmark (``fastseq bench --formats``,
``benchmarks/bench_formats.py``): throughput on the generated PNG and WebP
sets (ImageNet-like sizes, the default dataset's photo-like content, a mix
of colour types; fastseq.bench.datasets.ensure_format_dataset) at 224x224
uint8 RGB bilinear, of fastseq at all threads and at 1 thread, Pillow per
image (Keras' ``load_img``) and, for PNG, ``image_dataset_from_directory``
(no Keras loader lists ``.webp`` files).  Each loader runs as in the decode
benchmark (its own process, warm-up, alternating rounds, median); the
targets are ratios from this one run.

The default ``fastseq bench`` stays JPEG-only: generating the two sets
takes about a minute on 2 cores (once; they are cached beside the default
dataset).
"""

from __future__ import annotations

from fastseq.bench import datasets, files, report

SIZE = (224, 224)
FORMATS = ("png", "webp")


def parse_formats(text):
    """"png,webp" -> ("png", "webp"); ValueError naming an unknown one."""
    fmts = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise ValueError(f"--formats takes png and/or webp, got {text!r}")
    return fmts


def run_format_benchmark(formats=FORMATS, *, n=None, cache_dir=None, threads, rounds=5,
                         warmup=2, batch_size=64, progress=True):
    """One decode-benchmark result per format (fastseq.bench.run_benchmark),
    each set generated once if missing."""
    from fastseq.bench.runner import run_benchmark

    n = datasets.DEFAULT_N_FORMAT if n is None else n
    results = []
    for fmt in formats:
        folder = datasets.ensure_format_dataset(fmt, cache_dir, n=n, progress=progress)
        items = files.list_images(folder, extensions=(f".{fmt}",))
        sets = [dict(name=fmt, title=fmt.upper(), path=folder,
                     description=datasets.describe_format_dataset(folder), items=items)]
        loaders = f"fastseq@{threads},fastseq@1,pillow"
        if fmt == "png":
            loaders += f",keras-ds@{threads}"
        res = run_benchmark(sets, size=SIZE, batch_size=batch_size, threads=threads,
                            loaders=loaders, rounds=rounds, warmup=warmup,
                            interpolation="bilinear", progress=progress)
        results.append(res)
        if res["interrupted"]:
            break
    return results


def targets(results, n):
    """[(description, measured ratio or None, minimum)] for section 4, from
    the results of run_format_benchmark at `n` threads."""
    rows = {}
    for res in results:
        for sr in res["sets"]:
            rows[sr["name"]] = {r["loader"]: r["images_per_s"] for r in sr["results"]
                                if r.get("status") == "ok"}

    def ratio(s, a, b):
        x = rows.get(s, {})
        return x[a] / x[b] if x.get(a) and x.get(b) else None

    t = "thread" if n == 1 else "threads"
    out = []
    if "png" in rows:
        out += [(f"PNG: fastseq ({n} {t}) / Pillow per image",
                 ratio("png", f"fastseq@{n}", "pillow"), 2.5),
                (f"PNG: fastseq ({n} {t}) / image_dataset_from_directory ({n} {t})",
                 ratio("png", f"fastseq@{n}", f"keras-ds@{n}"), 1.5)]
        if n != 1:
            out.append((f"PNG: fastseq {n} threads / 1 thread",
                        ratio("png", f"fastseq@{n}", "fastseq@1"), 1.8))
    if "webp" in rows:
        out.append((f"WebP: fastseq ({n} {t}) / Pillow per image",
                    ratio("webp", f"fastseq@{n}", "pillow"), 2.0))
    return out


def format_targets(rows):
    return report.format_target_table(
        f"Targets (issue 14, section 4), {SIZE[0]}x{SIZE[1]} uint8, ratios from this run:", rows)


def as_json(results, rows):
    return dict(runs=results, targets=[
        dict(target=d, measured=m, minimum=n,
             result=None if m is None else ("PASS" if m >= n else "MISS"))
        for d, m, n in rows])
