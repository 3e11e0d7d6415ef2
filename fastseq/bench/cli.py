"""``fastseq bench``: its arguments, their checks, the sets they name, the
optional ``model.fit`` run, and the main function."""

from __future__ import annotations

import argparse
import os
import sys

from fastseq.bench import cachebench
from fastseq.bench.common import BenchError, hide_modules, keras_import_failure, one_line
from fastseq.bench.files import list_images, subsample
from fastseq.bench.loaders import DEFAULT_LOADERS, INTERPOLATIONS, LOADERS, parse_loaders
from fastseq.bench.report import format_report, plot_results, write_json
from fastseq.bench.runner import run_benchmark


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
                   help="also compare model.fit seconds per epoch (fastseq.bench.fitbench)")
    p.add_argument("--epochs", type=int, default=2,
                   help="epochs per loader for --fit, at least 2: the first is "
                        "excluded (default 2)")
    p.add_argument("--augment", action="store_true",
                   help="instead, issue 11's augmentation benchmark (fastseq.bench.augbench): "
                        "Keras' common augmentation recipe, fastseq vs Keras' legacy "
                        "ImageDataGenerator and vs fastseq unaugmented, on the ImageNet-like "
                        "set or DIR's class folders (--limit default 320; --fit adds "
                        "model.fit); needs Keras")
    p.add_argument("--flow", action="store_true",
                   help="instead, issue 12's flow() benchmark (fastseq.bench.augbench): "
                        "ImageDataGenerator(**recipe).flow on a 10000x32x32x3 uint8 array, "
                        "fastseq vs Keras' legacy flow (--limit: samples; --batch-size "
                        "applies); needs Keras")
    p.add_argument("--cache", action="store_true",
                   help="instead, issue 13's cache benchmark (fastseq.bench.cachebench): "
                        "epochs read from a cache of resized pixels vs decoded, plain and "
                        "augmented, and a second process on the same disk cache (--limit "
                        "default 1000; max(4, --epochs) loader epochs, "
                        f"max({cachebench.FIT_EPOCHS}, --epochs) with "
                        "--fit, which adds model.fit against ready-made batches, the seed's "
                        "PIL Sequence and image_dataset_from_directory().cache(), each loader "
                        "in --rounds interleaved processes, and the same floors and cache "
                        "epoch by epoch in one process, as a paired view); needs Keras")
    p.add_argument("--formats", nargs="?", const="png,webp", default=None, metavar="LIST",
                   help="instead, issue 14's PNG and WebP benchmark (fastseq.bench.formatbench) "
                        "on generated ImageNet-sized sets of each (png, webp, or both: the "
                        "default; about a minute to generate once): fastseq at --threads and "
                        "at 1 thread vs Pillow per image and, for PNG, "
                        "image_dataset_from_directory (--limit: images per set, default 300)")
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
        items = subsample(items, a.limit)
        return [dict(name="dir", title=os.path.basename(os.path.abspath(a.dir)) or a.dir,
                     path=a.dir, description=desc, items=items)], a.dir
    from fastseq.bench import datasets

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
            items = subsample(list_images(ds[name]), a.limit)
            desc = next((s for s in summary if s.lower().startswith(title.split()[0].lower())), "")
            sets.append(dict(name=name, title=title, path=ds[name], description=desc,
                             items=items))
    return sets, ds["imagenet"] or ds["large"]


def _run_fit(data_dir, size, a, progress):
    # The fit runs in this process: the test hook hides its modules here.
    hide_modules()
    try:
        from fastseq.bench.fitbench import run_fit_benchmark
    except ImportError as e:
        return dict(status="skipped", note=f"fastseq.bench.fitbench is not available ({e})",
                    result=None)
    try:
        import keras  # noqa: F401 -- on whatever backend it is set to
    except ImportError as e:
        return dict(status="skipped", note=keras_import_failure(e), result=None)
    try:
        res = run_fit_benchmark(data_dir, size=size, batch_size=a.batch_size,
                                epochs=a.epochs, progress=progress)
    except KeyboardInterrupt:
        raise
    except Exception as e:          # noqa: BLE001 -- a failed extra is a line, not a crash
        return dict(status="failed", note=one_line(e), result=None)
    return dict(status="ok", note=None, result=res)


def _augment_main(a, size, data_dir, prog, flow=False):
    """``--augment`` (or ``--flow``): the figures and targets of
    fastseq.bench.augbench."""
    opt = "--flow" if flow else "--augment"
    hide_modules()
    try:
        from keras.src.legacy.preprocessing.image import ImageDataGenerator  # noqa: F401
    except ImportError as e:
        print(f"{prog}: error: {opt} compares with Keras' legacy ImageDataGenerator: "
              f"{keras_import_failure(e)}", file=sys.stderr)
        return 2
    from fastseq.bench import augbench

    try:
        if flow:
            n = augbench.FLOW_SHAPE[0] if a.limit is None else a.limit
            if n < 1:
                raise ValueError("--flow needs --limit >= 1 samples")
            r = augbench.run_flow_benchmark(n, rounds=a.rounds, batch_size=a.batch_size)
        else:
            limit = 320 if a.limit is None else a.limit
            r = augbench.run_augment_benchmark(data_dir, limit=limit, rounds=a.rounds,
                                               fit=a.fit, epochs=a.epochs, size=size,
                                               batch_size=a.batch_size)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except ValueError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    return _report(a, prog, r, augbench.format_flow_report if flow
                   else augbench.format_augment_report)


def _report(a, prog, r, fmt):
    """Print a benchmark's report, write --json; the exit status."""
    print(fmt(r), flush=True)
    if a.json:
        try:
            write_json(r, a.json)
            print(f"wrote {a.json}")
        except OSError as e:
            print(f"{prog}: error: cannot write --json file {a.json}: {e.strerror or e}",
                  file=sys.stderr)
            return 1
    return 0


def _cache_main(a, size, data_dir, prog):
    """``--cache``: the figures and targets of fastseq.bench.cachebench."""
    hide_modules()
    try:
        import keras  # noqa: F401
    except ImportError as e:
        print(f"{prog}: error: --cache runs fastseq's Keras iterators: "
              f"{keras_import_failure(e)}", file=sys.stderr)
        return 2

    # the whole default set (1,000): a cached epoch of 256 lasts ~12 ms here,
    # too short to time a fresh process's single first epoch
    limit = 1000 if a.limit is None else a.limit
    # at least 4 loader epochs and cachebench.FIT_EPOCHS fit epochs: the
    # first is excluded
    epochs = max(4, a.epochs)
    try:
        r = cachebench.run_cache_benchmark(data_dir, limit=limit, epochs=epochs, fit=a.fit,
                                           fit_epochs=max(cachebench.FIT_EPOCHS, a.epochs),
                                           fit_rounds=a.rounds, size=size,
                                           batch_size=a.batch_size)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except ValueError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    return _report(a, prog, r, cachebench.format_cache_report)


def _formats_main(a, formats, threads, prog):
    """``--formats``: the figures and targets of fastseq.bench.formatbench."""
    from fastseq.bench import formatbench

    if a.size != "224":
        print(f"{prog}: note: --formats measures at 224x224 (the issue's targets); "
              f"--size {a.size} is ignored", file=sys.stderr)
    try:
        results = formatbench.run_format_benchmark(
            formats, n=a.limit, cache_dir=a.cache_dir, threads=threads, rounds=a.rounds,
            warmup=a.warmup, batch_size=a.batch_size, progress=not a.no_progress)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"{prog}: error: cannot write the PNG/WebP benchmark sets: {e}", file=sys.stderr)
        return 2
    rows = formatbench.targets(results, threads)

    def fmt(r):
        return "\n\n".join([format_report(res) for res in r["runs"]]
                           + [formatbench.format_targets(rows)])

    status = _report(a, prog, formatbench.as_json(results, rows), fmt)
    return 130 if results and results[-1]["interrupted"] else status


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
        if a.flow and (a.augment or a.dir is not None or a.fit):
            raise BenchError("--flow runs on its own generated array: no DIR, --augment "
                             "or --fit")
        if a.formats is not None:
            if a.augment or a.flow or a.cache or a.fit or a.dir is not None:
                raise BenchError("--formats runs on its own generated PNG and WebP sets: "
                                 "no DIR, --augment, --flow, --cache or --fit")
            from fastseq.bench import formatbench
            try:
                formats = formatbench.parse_formats(a.formats)
            except ValueError as e:
                raise BenchError(str(e)) from None
        own_data = a.flow or a.formats is not None
        sets, fit_dir = _sets_from_args(a, progress) if not own_data else ([], None)
    except BenchError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted before anything was measured", file=sys.stderr)
        return 130

    if a.cache and (a.augment or a.flow):
        flag = "--augment" if a.augment else "--flow"
        print(f"{prog}: error: {flag} and --cache are separate benchmarks: pass one",
              file=sys.stderr)
        return 2
    if a.formats is not None:
        return _formats_main(a, formats, threads, prog)
    if a.augment or a.flow:
        return _augment_main(a, size, fit_dir, prog, flow=a.flow)
    if a.cache:
        return _cache_main(a, size, fit_dir, prog)

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

