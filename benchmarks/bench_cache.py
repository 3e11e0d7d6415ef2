"""The cache benchmark of issue 13, section 3 (not a timed test):
fastseq.bench.cachebench on the default ImageNet-like set (generated once,
cached under ~/.cache/fastseq; see fastseq.bench.datasets), at 224x224.
The same as ``python -m fastseq bench --cache``.  See cachebench's
docstring for what is measured and how.  It prints the figures, then each
target with PASS or MISS::

    python benchmarks/bench_cache.py [--limit 1000] [--epochs 4] [--fit] [--fit-epochs 7]
                                     [--fit-rounds 3] [--paired-cycles 12] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import sys

try:
    import fastseq  # noqa: F401
except ImportError:     # run from a checkout built in place
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastseq.bench import cachebench, datasets, report  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=1000,
                   help="images read by every loader (default 1000, the default set; 0: the "
                        "whole set)")
    p.add_argument("--epochs", type=int, default=4, help="loader epochs (>= 2; default 4)")
    p.add_argument("--fit", action="store_true", help="also model.fit s/epoch")
    p.add_argument("--fit-epochs", type=int, default=cachebench.FIT_EPOCHS,
                   help="fit epochs per process, the first excluded (default "
                        f"{cachebench.FIT_EPOCHS}: the mean of the later "
                        f"{cachebench.FIT_EPOCHS - 1})")
    p.add_argument("--fit-rounds", type=int, default=cachebench.FIT_ROUNDS,
                   help="interleaved rounds of fit processes, one process per loader each "
                        f"(default {cachebench.FIT_ROUNDS}; a fit ratio is the median of the "
                        "rounds')")
    p.add_argument("--paired-cycles", type=int, default=cachebench.PAIRED_CYCLES,
                   help="with --fit, cycles of the paired view: every fit loader that can "
                        "share a process trains one model in one process, an epoch each in "
                        f"turn (default {cachebench.PAIRED_CYCLES}, the first excluded; 0: "
                        "not run; reported, not a target)")
    p.add_argument("--json", metavar="FILE")
    a = p.parse_args(argv)
    if a.limit < 0 or a.epochs < 2 or a.fit_epochs < 2 or a.fit_rounds < 1 or \
            a.paired_cycles == 1 or a.paired_cycles < 0:
        p.error("--limit >= 0, --epochs >= 2, --fit-epochs >= 2, --fit-rounds >= 1 and "
                "--paired-cycles 0 or >= 2")
    ds = datasets.ensure_default_dataset(progress=True)
    r = cachebench.run_cache_benchmark(ds["imagenet"], limit=a.limit, epochs=a.epochs,
                                       fit=a.fit, fit_epochs=a.fit_epochs,
                                       fit_rounds=a.fit_rounds,
                                       paired_cycles=a.paired_cycles)
    print(cachebench.format_cache_report(r))
    if a.json:
        report.write_json(r, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
