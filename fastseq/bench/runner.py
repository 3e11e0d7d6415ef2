"""Orchestration: one process per loader, started at once; per set, the
page cache warmed, each loader prepared and warmed up, then the rounds, one
loader at a time, alternating round by round; medians at the end."""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import tempfile
import time

from fastseq.bench.environment import busy_cpu_seconds, collect_environment, own_cpu_seconds
from fastseq.bench.files import make_view, warm_page_cache
from fastseq.bench.loaders import DEFAULT_LOADERS, parse_loaders
from fastseq.bench.stats import finish_set, new_result
from fastseq.bench.worker import Worker, WorkerDied

SCHEMA = "fastseq-bench/1"


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


def run_benchmark(sets, *, size=(224, 224), batch_size=64, threads=None,
                  loaders=DEFAULT_LOADERS, rounds=3, warmup=2,
                  interpolation="bilinear", dct_scaling=True, progress=True,
                  verbose=False, notes=None, workdir=None):
    """Run the loaders on each set and return the result dict (see the
    :mod:`fastseq.bench` docstring for its schema).

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
            results=[new_result(l) for l in loaders]))

    busy0, own0, wall0 = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
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
            workers[l.key] = Worker(ctx, l, cfg)
        live = []
        for l in loaders:
            w = workers[l.key]
            try:
                reply = w.recv()
            except WorkerDied as e:
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
    busy1, own1, wall1 = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
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
        finish_set(sr, threads)
    return result


def _run_set(s, sr, live, workers, rounds, warmup, progress, verbose, tmp, batch_size):
    rows = {r["loader"]: r for r in sr["results"]}
    items = s["items"]
    paths = [p for p, _ in items]
    view = None
    if any(l.spec.needs_dir for l in live):
        view = make_view(items, os.path.join(tmp, f"view-{s['name']}"))
    warm_page_cache(paths)
    n_batches = math.ceil(len(paths) / batch_size)
    active = []
    for l in live:
        row = rows[l.key]
        w = workers[l.key]
        reply = w.request("prepare", paths, view)
        if reply[0] == "ok" and warmup > 0:
            reply = w.request("run", warmup)
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
                reply = w.request("run", None, on_progress=bar.update)
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


