"""Two processes each reading its shard against one process reading
everything (issue 15, section 4; not a timed test).

One process decodes all ``--limit`` images of the default ImageNet-like set
(fastseq.bench.datasets, cached under ~/.cache/fastseq) through an
``ImageSequence`` at 224x224 with 2 native threads; then two processes,
``shard=(0, 2)`` and ``shard=(1, 2)``, 1 thread each (the same 2 threads in
all), decode theirs at the same time.  Each process is started and has
imported Keras before the clock starts (a "go" line on its stdin); a run is
timed from the go to the last process's end.  Prints images/s (best of
``--rounds``) and the files each process decoded::

    python benchmarks/bench_distributed.py [--limit 320] [--batch-size 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time

try:
    import fastseq  # noqa: F401
except ImportError:     # run from a checkout built in place
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastseq  # noqa: E402
from fastseq.bench import datasets  # noqa: E402
from fastseq.threads import usable_cpus  # noqa: E402


def image_paths(limit):
    ds = datasets.ensure_default_dataset(progress=True)
    paths = sorted(glob.glob(os.path.join(ds["imagenet"], "**", "*.jpg"), recursive=True))
    return paths[:limit] if limit else paths


def read_epoch(paths, shard, threads, batch_size):
    """(seconds, files decoded) for one epoch of this process's shard."""
    fastseq.set_num_threads(threads)
    seq = fastseq.ImageSequence(paths, None, batch_size=batch_size, dim=(224, 224),
                                label_mode=None, seed=0, shard=shard)
    from fastseq.keras import base
    decoded = []
    real = base.load_files

    def counting(encoded, *a, **k):
        decoded.extend(encoded)
        return real(encoded, *a, **k)

    base.load_files = counting
    return seq, decoded


def child(argv):
    index, batch_size, rounds = int(argv[0]), int(argv[1]), int(argv[2])
    paths = json.loads(sys.stdin.readline())
    seq, decoded = read_epoch(paths, (index, 2), 1, batch_size)
    for _ in range(rounds):
        print("ready", flush=True)
        sys.stdin.readline()            # go
        t0 = time.perf_counter()
        decoded.clear()
        for i in range(len(seq)):
            seq[i]
        seq.on_epoch_end()
        print(json.dumps({"seconds": time.perf_counter() - t0, "files": len(decoded),
                          "distinct": len(set(decoded))}), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=320)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return child(a.child)
    paths = image_paths(a.limit)
    n = len(paths)

    seq, decoded = read_epoch(paths, (0, 1), 2, a.batch_size)
    one = []
    for _ in range(a.rounds):
        decoded.clear()
        t0 = time.perf_counter()
        for i in range(len(seq)):
            seq[i]
        one.append(time.perf_counter() - t0)
        seq.on_epoch_end()
    one_files = len(decoded)

    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", str(i),
                               str(a.batch_size), str(a.rounds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
             for i in range(2)]
    two, files = [], []
    try:
        for pr in procs:
            pr.stdin.write(json.dumps(paths) + "\n")
            pr.stdin.flush()
        for _ in range(a.rounds):
            for pr in procs:
                while pr.stdout.readline().strip() != "ready":
                    pass
            t0 = time.perf_counter()
            for pr in procs:
                pr.stdin.write("go\n")
                pr.stdin.flush()
            results = [json.loads(pr.stdout.readline()) for pr in procs]
            two.append(time.perf_counter() - t0)
            files = [r["files"] for r in results]
    finally:
        for pr in procs:
            pr.kill()
            pr.wait()
    report = {
        "machine": f"{os.cpu_count()} CPUs (usable {usable_cpus()})",
        "images": n, "batch_size": a.batch_size,
        "one_process_2_threads": {"images_per_s": n / min(one), "files_decoded": one_files},
        "two_processes_1_thread_each": {"images_per_s": n / min(two),
                                        "files_decoded_per_process": files},
    }
    print(f"{n} images at 224x224, batch {a.batch_size}, best of {a.rounds}; "
          f"{report['machine']}")
    print(f"  1 process x 2 threads : {report['one_process_2_threads']['images_per_s']:7.1f} "
          f"images/s, {one_files} files decoded")
    print(f"  2 processes x 1 thread: "
          f"{report['two_processes_1_thread_each']['images_per_s']:7.1f} images/s, "
          f"files decoded per process {files}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
