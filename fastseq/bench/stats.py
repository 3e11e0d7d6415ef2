"""Per-loader figures: a row's fields, its median round, the speed-up of
the reference fastseq row over it and its fraction of the bare decode."""

from __future__ import annotations

import statistics

def new_result(loader):
    return dict(loader=loader.key, name=loader.spec.name, label=loader.label,
                threads=loader.threads, status="ok", note=None, output="",
                n_images=0, n_batches=0, rounds_done=0, round_seconds=[],
                images_per_s=None, ms_per_batch=None, speedup=None,
                fraction_of_bare=None)


def finish_set(set_result, threads):
    """Medians, speed-ups of the reference fastseq and fractions of bare."""
    rows = set_result["results"]
    for r in rows:
        if r["round_seconds"] and r["status"] == "ok":
            med = statistics.median(r["round_seconds"])
            r["images_per_s"] = r["n_images"] / med if med > 0 else None
            r["ms_per_batch"] = 1000 * med / max(1, r["n_batches"])
    ok = [r for r in rows if r["images_per_s"]]

    def pick(name):
        same = [r for r in ok if r["name"] == name and r["threads"] == threads]
        return (same or [r for r in ok if r["name"] == name] or [None])[0]

    ref, bare = pick("fastseq"), pick("bare")
    set_result["reference"] = ref["loader"] if ref else None
    set_result["bare"] = bare["loader"] if bare else None
    bare_by_threads = {r["threads"]: r for r in ok if r["name"] == "bare"}
    for r in ok:
        if ref:
            r["speedup"] = ref["images_per_s"] / r["images_per_s"]
        b = bare_by_threads.get(r["threads"], bare)
        if b and r["name"] != "bare":
            r["fraction_of_bare"] = r["images_per_s"] / b["images_per_s"]
        elif b is r:
            r["fraction_of_bare"] = 1.0

