"""Issue 13's cache benchmark (``benchmarks/bench_cache.py``,
``fastseq bench --cache``): what a cache of resized pixels buys, as ratios
measured in one run.

Loader alone, each ``fastseq.ImageDataGenerator(rescale=1/255)
.flow_from_directory(dir, target_size=size, batch_size=64, shuffle=True)``
read batch by batch (``it[i]``, prefetch on), every epoch timed:

* ``uncached``: no cache;
* ``disk``: ``cache=<a fresh temporary directory>``; epoch 1 decodes and
  writes every entry, later epochs read them;
* ``memory``: ``cache="memory"``;
* ``aug`` / ``aug_disk``: Keras' common augmentation recipe
  (fastseq.bench.augbench.RECIPE) without and with the disk cache;
* ``second_process``: SECOND_ROUNDS rounds of two fresh Python processes
  on a fresh disk cache: a first run (epoch 1 writes the cache, epochs 2
  and 3 read it) and then a second run reading the cache the first wrote
  (its page cache warm, as for a second run on the same machine).  Each
  timed read that starts a run's reading (the first run's epoch 2, the
  second run's epoch 1) follows the same warm-up, warm_process: the pool
  started, the batch buffers faulted in (what any process has after its
  first batches) and WARM_BUSY_S of decoding on the pool, because on this
  VM an epoch that follows idle CPUs is slower than one that follows busy
  ones, whatever it reads (a full-cache epoch after a 1 s sleep: 70 ms,
  against 64 ms for the epoch before it, eight processes), and without the
  busy part the first run's epoch 2 followed its busy epoch 1 while the
  second run's epoch 1 followed an idle wait.  The target is the median of
  the rounds' ratios, the first run's epochs >= 2 over the second run's
  epoch 1: two processes side by side, because a process's speed on this
  VM varies by up to 25% from one process to the next (16,000 images/s in
  one, 20,000 in the next, a minute apart), which a comparison against the
  one main process cannot average out.  The same second run without the
  warm-up (COLD_ROUNDS times) is reported, not targeted, as is the second
  run's epoch 1 over its own epoch 2.

A loader's "epoch >= 2" figure is the median of its epochs after the first.
Loaders alternate epoch by epoch, so load from elsewhere on the machine is
shared among them.

With ``fit``: ``model.fit`` seconds per epoch (epoch 1 excluded; the mean of
the later ones, fitbench.seconds_per_epoch, as in fastseq's fit benchmark:
what a training run pays, tf.data's stalled epochs included; the report
also gives the ratios by the median of the later epochs) on
fastseq.bench.fitbench's model, FIT_EPOCHS epochs per process, each loader
in a process of its own, FIT_ROUNDS interleaved rounds of them (run_fit; a
ratio is the median of its rounds'), for fastseq with a disk cache filled
in its epoch 1 (as ``.cache()`` fills), the ``ready_batches`` floor (a
PyDataset returning ready-made batches, served as fastseq's datasets are),
the same floor through Keras' own pipeline (``ready_batches_keras``, not a
target: what any PyDataset pays there), the seed's PIL Sequence
(``seed_pil_w1``), ``image_dataset_from_directory(...).cache()`` (tf.data's
own cache), ``tf_dataset_cache_shuffled`` (the same cache of single
images, shuffled and batched afresh every epoch, as fastseq's iterators
serve; reported, not targeted) and ``model_only`` (the model trained on a
few batches TensorFlow already holds as tensors, no Python per step: the
floor of every loader; reported, not targeted).  The last three need
TensorFlow.  Minor page faults per epoch are reported beside them (see
fastseq.keras.tfdata for why).

A second view of the fit figures, reported, not targeted (run_fit_paired):
fastseq cached (and ``fastseq_cache_memory``, with ``cache="memory"``), the
ready-batches floor, ``.cache()`` and ``model_only`` training one model in
one process, an epoch each in turn, PAIRED_CYCLES cycles, each ratio the
median of its cycles'.  Side by side in one
process, the loaders share its speed, which run_fit's rounds cannot
average out in three processes; but what a loader pays between epochs
(tf.data's stalls) falls outside its timed epochs there.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import time

import fastseq
from fastseq.bench.augbench import RECIPE, images_for, load_line

SIZE = (224, 224)
BATCH = 64
LOADERS = ("uncached", "disk", "memory", "aug", "aug_disk")


def make_iterator(name, data_dir, cache_dir, size=SIZE, batch_size=BATCH, seed=0):
    gen_kw = dict(RECIPE) if name.startswith("aug") else {}
    cache = {"disk": cache_dir, "aug_disk": cache_dir, "memory": "memory"}.get(name)
    with contextlib.redirect_stdout(io.StringIO()):       # "Found N images"
        return fastseq.ImageDataGenerator(rescale=1 / 255, **gen_kw).flow_from_directory(
            data_dir, target_size=size, batch_size=batch_size, shuffle=True, seed=seed,
            cache=cache)


def one_epoch(it):
    t0 = time.perf_counter()
    for i in range(len(it)):
        it[i]
    it.on_epoch_end()
    return time.perf_counter() - t0


_CHILD = """
import json, sys, time
sys.path[:0] = {path!r}
from fastseq.bench.cachebench import make_iterator, one_epoch, warm_process
it = make_iterator("disk", {data!r}, {cache!r}, tuple({size!r}), {batch!r}, seed=1)
times = []
for e in range({epochs!r}):
    if e in {warm_before!r}:
        warm_process(tuple({size!r}), {batch!r})
    times.append(one_epoch(it))
print(json.dumps(times))
"""

#: Rounds of a first and a second run in fresh processes (see the module's
#: docstring): five, because a process's speed, not the cache, decides a
#: round's ratio (0.70-1.03 within one run of three rounds, all three
#: processes of a round within 25 s).
SECOND_ROUNDS = 5
#: Second runs without the warm-up (reported, not targeted).
COLD_ROUNDS = 3
#: Seconds of decoding on the pool that end warm_process (see the module's
#: docstring): with 0.3 s, a second run's epoch 1 was as fast as its epoch 2
#: (the median of eight ratios 1.00; 0.89-0.92 in runs without it).
WARM_BUSY_S = 0.3


def warm_process(size, batch_size, busy_s=WARM_BUSY_S):
    """What a process has after its first batches, whether or not it reads
    a cache, and busy CPUs: the native pool's threads started (a tiny
    in-memory decode), three batch buffers of the epoch's shape faulted in
    and returned to fastseq's buffer pool, then `busy_s` seconds (at least
    one batch) of decoding 32 in-memory 256x256 JPEGs to `size` on the
    pool, which touches no file and no cache."""
    import numpy as np
    from PIL import Image

    from fastseq.batch import aligned_empty

    jpeg = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 120, 150)).save(jpeg, "JPEG")
    fastseq.decode_batch([jpeg.getvalue()] * 2, (8, 8))
    bufs = [aligned_empty((batch_size, size[0], size[1], 3), np.float32) for _ in range(3)]
    for b in bufs:
        b.fill(0)
    del bufs
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(noise).save(jpeg, "JPEG", quality=90)
    batch = [jpeg.getvalue()] * 32
    t0 = time.perf_counter()
    while True:
        fastseq.decode_batch(batch, tuple(size))
        if time.perf_counter() - t0 >= busy_s:
            return


def child_code(data_dir, cache_dir, size, batch_size, epochs, warm_before):
    """The Python source epochs_in_child runs: it prints the epochs' seconds
    as one JSON line."""
    from fastseq.bench.common import fastseq_path

    return _CHILD.format(path=fastseq_path(), warm_before=sorted(int(e) for e in warm_before),
                         epochs=int(epochs), data=data_dir, cache=cache_dir, size=list(size),
                         batch=batch_size)


def epochs_in_child(data_dir, cache_dir, size, batch_size, epochs=2, warm_before=(0,)):
    """Seconds of `epochs` epochs of the disk-cache loader on `cache_dir`
    in a fresh process, warm_process run before each epoch (0-based) in
    `warm_before` (a 1,000-image epoch from the cache takes 45-75 ms here;
    without the warm-up a fresh process's first one took 56-115 ms,
    starting the pool and faulting in its batch buffers, which every
    process pays once whatever it reads).  A child that fails or outlives
    fitbench's CHILD_START_S + CHILD_EPOCH_S per epoch raises RuntimeError."""
    from fastseq.bench.common import child_failure, run_python_child
    from fastseq.bench.fitbench import CHILD_EPOCH_S, CHILD_START_S

    code = child_code(data_dir, cache_dir, size, batch_size, epochs, warm_before)
    what = f"the cache benchmark's child process on {cache_dir!r}"
    proc = run_python_child(code, [], CHILD_START_S + CHILD_EPOCH_S * epochs, what)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    raise child_failure(what, proc)


def second_process_rounds(data_dir, cache_root, size, batch_size, rounds=SECOND_ROUNDS):
    """`rounds` times, on a new cache directory under `cache_root`: a first
    run's three epochs, warmed up before its epochs 1 and 2, then a second
    run's two, warmed up before its epoch 1, each in a fresh process.
    ``{"first": [s, s, s], "second": [s, s]}`` per round."""
    out = []
    for r in range(rounds):
        cache_dir = os.path.join(cache_root, f"round{r}")
        first = epochs_in_child(data_dir, cache_dir, size, batch_size, epochs=3,
                                warm_before=(0, 1))
        out.append(dict(first=first,
                        second=epochs_in_child(data_dir, cache_dir, size, batch_size)))
    return out


def second_process_ratio(rounds):
    """The median over `rounds` (second_process_rounds) of the first run's
    epochs >= 2 (their median) over the second run's epoch 1."""
    return statistics.median(statistics.median(r["first"][1:]) / r["second"][0] for r in rounds)


def run_loading(data_dir, cache_root, epochs, size=SIZE, batch_size=BATCH):
    # the disk loaders share a directory: the unaugmented and augmented
    # runs use the same pixels (the same parameters), so "aug_disk"
    # starts warm; it gets a directory of its own to time its first epoch
    dirs = {"disk": os.path.join(cache_root, "plain"), "aug_disk": os.path.join(cache_root, "aug")}
    its = {n: make_iterator(n, data_dir, dirs.get(n), size, batch_size) for n in LOADERS}
    times = {n: [] for n in LOADERS}
    for e in range(epochs):
        order = LOADERS if e % 2 == 0 else LOADERS[::-1]
        for n in order:
            times[n].append(one_epoch(its[n]))
    second = second_process_rounds(data_dir, os.path.join(cache_root, "processes"), size,
                                   batch_size)
    cold = [epochs_in_child(data_dir, dirs["disk"], size, batch_size, warm_before=())
            for _ in range(COLD_ROUNDS)]
    stats = {n: dict(its[n]._store().stats) for n in LOADERS if its[n]._store() is not None}
    return dict(seconds=times, second_process=second, second_process_cold=cold,
                cache_stats=stats)


FIT_LOADERS = ("fastseq_cache", "ready_batches", "ready_batches_keras", "seed_pil_w1",
               "tf_dataset_cache", "tf_dataset_cache_shuffled", "model_only")
#: Reported against fastseq cached, not targets: what each shows.
FIT_INFO = {
    "tf_dataset_cache_shuffled": "image_dataset_from_directory().cache() of single images, "
                                 "shuffled and batched afresh every epoch (what fastseq and "
                                 "Keras' iterators serve; plain .cache() replays the first "
                                 "epoch's batches)",
    "model_only": "the model on tensors TensorFlow already holds, no input pipeline "
                  "(no loader is faster)",
}
#: model.fit figures vary more between processes than between epochs of one
#: (the strict floor: 0.44 s/epoch in one process, 0.61 in another ten
#: minutes later, on the same 2-core VM), so the loaders the fit targets
#: compare run FIT_ROUNDS times, interleaved (round r in FIT_LOADERS' order,
#: the next reversed), and each ratio is the median of its rounds' ratios.
FIT_ROUNDS = 3
#: Epochs per fit process, the first excluded: six later epochs, so that a
#: process's mean holds tf.data's occasional stalled epoch at about the rate
#: it comes (README, "Cache").
FIT_EPOCHS = 7
#: Run once: ~6 s/epoch, its target (>= 5x) far from any noise.
_FIT_ONCE = ("seed_pil_w1",)


def settle_writeback() -> None:
    """Write every dirty page out (``os.sync``) before a timed process, so
    that it does not pay for what earlier ones wrote: the kernel writes a
    file back seconds after it is written (2-11 s seen here), in
    whichever process is running then.  The loading part leaves hundreds of
    MB dirty (435 MB seen in /proc/vmstat as it ended), and each fastseq fit
    process writes a 150 MB cache; without this, the writeback of one
    process was seen landing in the next.  (A process's own cache is still
    written back during its own epochs, as in a user's run.  Round 1's
    fastseq process, the first after the loading part, stayed the slowest
    of its three in the first run with this, so that was not the cause.)"""
    if hasattr(os, "sync"):
        os.sync()


def run_fit(data_dir, cache_dir, epochs, size=SIZE, batch_size=32, rounds=FIT_ROUNDS):
    """``model.fit`` per loader of FIT_LOADERS, each run in a process of its
    own (fitbench.fit_in_child), `rounds` times as FIT_ROUNDS says.  Every
    fastseq process starts from an empty disk cache of its own under
    `cache_dir`, as ``.cache()`` starts from none: both fill their cache in
    epoch 1, which is excluded, and read it from epoch 2 on.  Every process
    starts after settle_writeback.  Per loader:
    ``runs``, one ``{"seconds", "faults"}`` per process in round order, and
    over them ``s_per_epoch`` (the median of the processes'
    fitbench.seconds_per_epoch: the mean of their later epochs) and
    ``faults_per_epoch``."""
    from fastseq.bench import fitbench

    names = [n for n in FIT_LOADERS
             if n not in fitbench.NEEDS_TENSORFLOW or fitbench._tensorflow_missing() is None]
    runs = {n: [] for n in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            if r and name in _FIT_ONCE:
                continue
            settle_writeback()
            runs[name].append(fitbench.fit_in_child(
                name, data_dir, size, batch_size, epochs,
                cache_dir=os.path.join(cache_dir, f"round{r + 1}")
                if name == "fastseq_cache" else None))
    out = {}
    for name, rs in runs.items():
        later_faults = [f for r in rs for f in r["faults"][1:] if f is not None]
        out[name] = dict(runs=rs,
                         s_per_epoch=statistics.median(fitbench.seconds_per_epoch(r["seconds"])
                                                       for r in rs),
                         faults_per_epoch=(statistics.median(later_faults)
                                           if later_faults else None))
    return out


#: Cycles of the paired view (run_fit_paired): the first excluded, eleven
#: ratios per loader.
PAIRED_CYCLES = 12


def run_fit_paired(data_dir, cache_dir, cycles=PAIRED_CYCLES, size=SIZE, batch_size=32):
    """The fit figures' second view: fitbench.fit_paired_in_child over
    fitbench.PAIRABLE (those that can run here), fastseq's disk cache in a
    new directory under `cache_dir`, after settle_writeback.  Not the
    targets: it removes the process-to-process variation that decides many
    of run_fit's rounds, but leaves out what a loader pays between epochs,
    tf.data's stalls included (see fit_paired_in_child)."""
    from fastseq.bench import fitbench

    names = [n for n in fitbench.PAIRABLE
             if n not in fitbench.NEEDS_TENSORFLOW or fitbench._tensorflow_missing() is None]
    settle_writeback()
    return fitbench.fit_paired_in_child(names, data_dir, size, batch_size, cycles,
                                        cache_dir=os.path.join(cache_dir, "paired"))


def paired_ratio(paired, other, ours="fastseq_cache"):
    """The median over the cycles after the first (run_fit_paired) of
    `other`'s epoch over `ours`' epoch of the same cycle."""
    return statistics.median(x / y for x, y in zip(paired[other]["seconds"][1:],
                                                   paired[ours]["seconds"][1:]))


def fit_ratio(fit_res, other, ours="fastseq_cache", per_process=None):
    """`other`'s s/epoch over `ours`': the median of the rounds' ratios
    (process i of one against process i of the other, run side by side)
    when both ran in every round, else of the two loaders' s_per_epoch.
    `per_process` reduces one process's epoch seconds to its s/epoch
    (default fitbench.seconds_per_epoch; the report also shows the ratios
    by the median of the later epochs, which drops stalled ones)."""
    from fastseq.bench import fitbench

    per_process = per_process or fitbench.seconds_per_epoch
    a, b = fit_res[other]["runs"], fit_res[ours]["runs"]
    if len(a) == len(b) > 1:
        return statistics.median(per_process(x["seconds"]) / per_process(y["seconds"])
                                 for x, y in zip(a, b))
    return (statistics.median(per_process(x["seconds"]) for x in a)
            / statistics.median(per_process(y["seconds"]) for y in b))


def median_of_later(seconds):
    """A process's later epochs' median (fit_ratio's `per_process` for the
    report's second view)."""
    return statistics.median(seconds[1:])


def checksum_cost(size=SIZE, rounds=200):
    """Microseconds to checksum one entry of `size` (RGB), and to copy it."""
    import numpy as np

    a = np.random.default_rng(0).integers(0, 256, (size[0], size[1], 3), np.uint8)
    b = np.empty_like(a)
    t0 = time.perf_counter()
    for _ in range(rounds):
        fastseq._native.cache_checksum(a)
    t1 = time.perf_counter()
    for _ in range(rounds):
        np.copyto(b, a)
    t2 = time.perf_counter()
    return dict(checksum_us=(t1 - t0) / rounds * 1e6, memcpy_us=(t2 - t1) / rounds * 1e6)


def run_cache_benchmark(src, *, limit=1000, epochs=4, fit=False, fit_epochs=FIT_EPOCHS,
                        fit_rounds=FIT_ROUNDS, paired_cycles=PAIRED_CYCLES, size=SIZE,
                        batch_size=BATCH) -> dict:
    """Figures and targets for the class folders under `src`
    (every image when `limit` is 0).  With `fit`, also run_fit_paired's
    view, of `paired_cycles` cycles (0: not run).  JSON-serialisable."""
    out = dict(source=str(src), size=list(size), batch_size=batch_size, epochs=epochs,
               threads=fastseq.get_num_threads(), cpus=os.cpu_count(),
               load_before=load_line())
    with images_for(src, limit, "fastseq-bench-cache-") as (tmp, data_dir, n):
        out["n_images"] = n
        res = run_loading(data_dir, os.path.join(tmp, "cache"), epochs, size, batch_size)
        fit_res = (run_fit(data_dir, os.path.join(tmp, "fitcache"), fit_epochs, size,
                           rounds=fit_rounds) if fit else None)
        paired = (run_fit_paired(data_dir, os.path.join(tmp, "fitcache"), paired_cycles, size)
                  if fit and paired_cycles else None)
    out["load_after"] = load_line()
    out["checksum"] = checksum_cost(size)
    sec = res["seconds"]
    later = {n: statistics.median(s[1:]) for n, s in sec.items()}
    targets = [
        ("loader: disk cache epoch >= 2 vs its epoch 1", sec["disk"][0] / later["disk"], 10.0),
        ("loader: disk cache epoch >= 2 vs uncached epoch", later["uncached"] / later["disk"], 10.0),
        ("loader: memory cache epoch >= 2 vs uncached epoch", later["uncached"] / later["memory"], 10.0),
        ("augmented: cached epoch >= 2 vs uncached", later["aug"] / later["aug_disk"], 3.0),
        ("second process epoch 1 vs the first run's epochs >= 2 (fresh processes, paired by "
         "round; 1.0 = as fast)", second_process_ratio(res["second_process"]), 0.9),
    ]
    if fit_res:
        targets.append(("fit: ready-made batches on fastseq's pipeline / fastseq cached "
                        "(>= 1/1.15)", fit_ratio(fit_res, "ready_batches"), 1 / 1.15))
        targets.append(("fit: ready-made batches on Keras' pipeline (any PyDataset's) / "
                        "fastseq cached (>= 1/1.15)",
                        fit_ratio(fit_res, "ready_batches_keras"), 1 / 1.15))
        targets.append(("fit: seed PIL Sequence / fastseq cached",
                        fit_ratio(fit_res, "seed_pil_w1"), 5.0))
        if "tf_dataset_cache" in fit_res:
            targets.append(("fit: image_dataset_from_directory().cache() / fastseq cached",
                            fit_ratio(fit_res, "tf_dataset_cache"), 1.0))
        # Not targets.  model_only: no input pipeline at all, so it shows
        # how much of fastseq's cached epoch is the model's.  The shuffled
        # .cache(): tf.data's cache serving what fastseq serves.
        out["fit_info"] = {name: fit_ratio(fit_res, name) for name in FIT_INFO
                           if name in fit_res}
        out["fit_by_median"] = {name: fit_ratio(fit_res, name, per_process=median_of_later)
                                for name in fit_res if name != "fastseq_cache"}
    if paired:
        out["fit_paired"] = paired
        out["fit_paired_ratios"] = {name: paired_ratio(paired, name) for name in paired
                                    if name != "fastseq_cache"}
    out.update(loading=res, later=later, fit=fit_res,
               targets=[dict(target=d, ratio=g, minimum=w) for d, g, w in targets])
    return out


def format_cache_report(r: dict) -> str:
    size = r["size"]
    lines = [f"fastseq {fastseq.__version__}: {r['n_images']} images of {r['source']}, "
             f"{size[0]}x{size[1]}, batch {r['batch_size']}, {r['threads']} threads on "
             f"{r['cpus']} CPUs", f"before: {r['load_before']}", f"after: {r['load_after']}"]
    n = r["n_images"]
    for name, s in r["loading"]["seconds"].items():
        per = " ".join(f"{n / x:.0f}" for x in s)
        lines.append(f"  {name:10s} images/s per epoch: {per}")
    for k, rd in enumerate(r["loading"]["second_process"]):
        lines.append(f"  round {k + 1}: first run epochs 1-3 images/s: "
                     + " ".join(f"{n / x:.0f}" for x in rd["first"])
                     + "; second run epochs 1, 2: "
                     + " ".join(f"{n / x:.0f}" for x in rd["second"]))
    rounds = r["loading"]["second_process"]
    if rounds:
        own = statistics.median(rd["second"][1] / rd["second"][0] for rd in rounds)
        lines.append(f"  second run's epoch 1 vs its own epoch 2 (median of the rounds; not a "
                     f"target): {own:.2f}x")
    cold = r["loading"].get("second_process_cold")
    if cold:
        lines.append("  second process without the warm-up (pool, buffers, busy CPUs), "
                     "epochs 1, 2: "
                     + ", ".join(" ".join(f"{n / x:.0f}" for x in c) for c in cold))
    c = r["checksum"]
    lines.append(f"  entry checksum {c['checksum_us']:.1f} us, memcpy {c['memcpy_us']:.1f} us "
                 f"({size[0]}x{size[1]}x3)")
    if r["fit"]:
        lines.append("  fit s/epoch (the mean of each process's epochs after the first), "
                     "those epochs (| between processes, in round order):")
        for name, v in r["fit"].items():
            faults = v.get("faults_per_epoch")
            lines.append(f"  fit {name:19s} {v['s_per_epoch']:.3f}: "
                         + " | ".join(" ".join(f"{x:.2f}" for x in run["seconds"][1:])
                                      for run in v["runs"])
                         + ("" if faults is None else f"; {faults:.0f} page faults/epoch"))
    for name, ratio in (r.get("fit_info") or {}).items():
        lines.append(f"  fit: {name}, {FIT_INFO[name]} / fastseq cached (not a target): "
                     f"{ratio:.2f}x")
    if r.get("fit_by_median"):
        lines.append("  fit ratios over fastseq cached by each process's median epoch instead "
                     "(stalled epochs dropped; not the targets): "
                     + ", ".join(f"{k} {v:.2f}x" for k, v in r["fit_by_median"].items()))
    if r.get("fit_paired"):
        paired = r["fit_paired"]
        cycles = len(paired["fastseq_cache"]["seconds"])
        lines.append(f"  fit, paired epochs in one process ({cycles} cycles of one epoch per "
                     "loader, the first excluded), s/epoch:")
        for name, v in paired.items():
            lines.append(f"    {name:19s} " + " ".join(f"{x:.2f}" for x in v["seconds"][1:]))
        lines.append("  fit ratios over fastseq cached, paired (the median of the cycles'; "
                     "tf.data's stalls between epochs left out; not the targets): "
                     + ", ".join(f"{k} {v:.2f}x" for k, v in r["fit_paired_ratios"].items()))
    lines.append("targets (issue 13, section 3):")
    for t in r["targets"]:
        ok = "PASS" if t["ratio"] >= t["minimum"] else "MISS"
        lines.append(f"  {ok}  {t['target']}: {t['ratio']:.2f}x (>= {t['minimum']:.2f}x)")
    return "\n".join(lines)
