"""The augmentation benchmark of issue 11, section 5 (not a timed test):
fastseq.bench.augbench on the default ImageNet-like set (generated once,
cached under ~/.cache/fastseq; see fastseq.bench.datasets), at 224x224.
The same as ``python -m fastseq bench --augment``.  See augbench's
docstring for what is measured and how.  It prints the figures, then each
target with PASS or MISS::

    python benchmarks/bench_augment.py [--rounds 5] [--limit 320] [--fit] [--json FILE]

``--flow`` runs issue 12's flow() benchmark instead (augbench.run_flow_benchmark:
the recipe on a 10,000 x 32 x 32 x 3 uint8 array, fastseq vs Keras' legacy
``flow``; ``--limit`` is then the number of samples, default 10,000)::

    python benchmarks/bench_augment.py --flow [--rounds 3] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import sys

try:
    import fastseq  # noqa: F401
except ImportError:     # run from a checkout built in place
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastseq.bench import augbench, datasets, report  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--limit", type=int, default=None,
                   help="images read by every loader (default 320; 0: the whole set); "
                        "with --flow, samples (default 10,000)")
    p.add_argument("--fit", action="store_true", help="also model.fit s/epoch")
    p.add_argument("--epochs", type=int, default=2, help="fit epochs, the first excluded")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--flow", action="store_true", help="issue 12's flow() benchmark instead")
    p.add_argument("--batch-size", type=int, default=32, help="--flow: batch size (default 32)")
    a = p.parse_args(argv)
    if a.flow:
        if a.rounds < 1 or a.batch_size < 1 or (a.limit is not None and a.limit < 1):
            p.error("--rounds >= 1, --batch-size >= 1 and --limit >= 1")
        r = augbench.run_flow_benchmark(a.limit or augbench.FLOW_SHAPE[0],
                                        rounds=a.rounds, batch_size=a.batch_size)
        print(augbench.format_flow_report(r))
        if a.json:
            report.write_json(r, a.json)
        return 0
    a.limit = 320 if a.limit is None else a.limit
    if a.rounds < 1 or a.limit < 0 or a.epochs < 2:
        p.error("--rounds >= 1, --limit >= 0 and --epochs >= 2")
    ds = datasets.ensure_default_dataset(progress=True)
    r = augbench.run_augment_benchmark(ds["imagenet"], limit=a.limit, rounds=a.rounds,
                                       fit=a.fit, epochs=a.epochs)
    print(augbench.format_augment_report(r))
    if a.json:
        report.write_json(r, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
