"""The model.fit benchmark of issue 3, section 6 (not a timed test).

Seconds per epoch of an input-bound model (one strided convolution, global
pooling, a dense layer) fed by fastseq's flow_from_directory (workers=1 and
workers=2) and ImageSequence, the tutorials' PIL Sequence with workers=1 and
2, Keras' legacy ImageDataGenerator and image_dataset_from_directory, plus
two floors (the model on cached tensors; a PyDataset of ready-made batches),
epoch 1 excluded; on whatever Keras backend is set (without TensorFlow, the
runs that need tf.data are skipped).  Then the targets as ratios measured in this run, and the time to
list a 100,000-file tree (fastseq vs Keras' legacy listing).

Without --dir it trains on the generated ImageNet-like default dataset
(fastseq.bench.datasets; created once in the cache folder)::

    python benchmarks/bench_fit.py [--dir DATA] [--n-images 1000] [--size 224]
        [--batch-size 32] [--epochs 3] [--rounds 3] [--loaders fastseq,tf_dataset,...]
        [--listing-files 100000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

try:
    import fastseq  # noqa: F401
except ImportError:     # run from a checkout built in place
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastseq.bench import fitbench  # noqa: E402

TARGETS = [("vs_seed_pil_w1", "fastseq vs the seed's PIL Sequence (workers=1)", 3.0),
           ("vs_tf_dataset", "fastseq vs image_dataset_from_directory", 1.3),
           # issue 9: built-in prefetch makes Keras workers unnecessary
           ("vs_fastseq_w2", "fastseq workers=1 (prefetch) vs fastseq workers=2", 1.0)]


def default_data_dir(n_images: int, cache_dir: str | None) -> str:
    """The generated ImageNet-like class folders (fastseq.bench.datasets)."""
    from fastseq.bench import datasets

    ds = datasets.ensure_default_dataset(cache_dir, n_imagenet=n_images, n_large=0)
    print(datasets.describe_dataset(ds), file=sys.stderr)
    return ds["imagenet"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", help="class folders to train on (default: generated dataset)")
    p.add_argument("--n-images", type=int, default=1000,
                   help="size of the generated dataset (default 1000)")
    p.add_argument("--cache-dir", help="where the generated dataset lives")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved runs of every loader; median reported (default 3)")
    p.add_argument("--loaders", help=f"comma-separated subset of {','.join(fitbench.LOADERS)}")
    p.add_argument("--listing-files", type=int, default=100_000,
                   help="files in the listing benchmark (0 skips it)")
    p.add_argument("--json", help="also write the results to this file")
    a = p.parse_args(argv)

    data_dir = a.dir or default_data_dir(a.n_images, a.cache_dir)
    loaders = a.loaders.split(",") if a.loaders else None
    result = fitbench.run_fit_benchmark(data_dir, size=a.size, batch_size=a.batch_size,
                                        epochs=a.epochs, loaders=loaders, rounds=a.rounds)
    out = {"fit": result}
    print()
    print(f"Keras {result['versions']['keras']} on {result['versions']['keras_backend']}: "
          f"{result['n_images']} images in {result['n_classes']} classes, "
          f"{a.size}x{a.size}, batch {a.batch_size}, {result['steps_per_epoch']} steps/epoch, "
          f"mean of epochs 2-{a.epochs}, median of {a.rounds} round(s), {result['cpus']} CPUs, "
          f"load average at the end {result['load_average']}; model: {result['model']}")
    print(fitbench.format_fit_table(result))
    print()
    for group, note in (("speedup", "defaults"), ("speedup_bilinear", "fastseq bilinear")):
        for key, label, minimum in TARGETS:
            r = result[group].get(key)
            if r is None:
                print(f"  {label} ({note}): not measured")
            else:
                print(f"  {label} ({note}): {r:.2f}x (target >= {minimum}x) "
                      f"{'PASS' if r >= minimum else 'MISS'}")
    for name, why in result["skipped"].items():
        print(f"  skipped {name}: {why}")
    ours = result["loaders"].get("fastseq")
    if ours:
        for name, floor in result["floors"].items():
            print(f"  fastseq epoch / {name} floor: "
                  f"{ours['seconds_per_epoch'] / floor['seconds_per_epoch']:.2f}x")
    w2 = result["speedup"].get("vs_fastseq_w2")
    if w2 is not None:
        print(f"  fastseq workers=2 / workers=1 seconds per epoch: {w2:.2f}x "
              f"(built-in prefetch default: {result['prefetch']})")
    for name, secs in result["input_only"].items():
        print(f"  {name}: one pass over the data without the model: {secs:.3f} s")
    if a.listing_files:
        out["listing"] = fitbench.run_listing_benchmark(a.listing_files)
        li = out["listing"]
        print(f"  listing {li['n_files']} files: fastseq {li['fastseq_s']:.3f} s, "
              f"Keras legacy {li['keras_legacy_s']:.3f} s ({li['speedup']:.1f}x)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
