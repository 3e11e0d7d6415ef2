"""The report: the text printed at the end of a run, the JSON file and the
bar chart."""

from __future__ import annotations

import json

from fastseq.bench.loaders import LOADER_CLASSES

def format_value(v, spec, none="-"):
    return none if v is None else format(v, spec)


def format_target_table(title, rows):
    """A benchmark script's targets: `title`, then one line per
    (description, measured ratio or None, minimum) with PASS, MISS or n/a."""
    width = max(len(d) for d, _, _ in rows)
    lines = [title, f"  {'target':<{width}}  {'measured':>9}  {'needs':>7}  result"]
    for desc, got, need in rows:
        verdict = "n/a" if got is None else ("PASS" if got >= need else "MISS")
        lines.append(f"  {desc:<{width}}  {format_value(got, '.2f') + 'x':>9}  "
                     f"{'>= ' + format(need, '.1f') + 'x':>7}  {verdict}")
    return "\n".join(lines)


def format_header(result):
    m, v, st = result["machine"], result["versions"], result["settings"]
    h, w = st["size"]
    opt = lambda x: x or "not installed"    # noqa: E731
    lines = [
        f"fastseq bench | CPU: {m['cpu']} | cores used: {m['cores_used']} of "
        f"{m['cores_total']} | threads: {st['threads']}",
        f"versions: fastseq {v['fastseq']}, libjpeg-turbo {v['libjpeg_turbo']} "
        f"(SIMD {'on' if v['simd'] else 'off'}), Pillow {v['pillow']}, numpy {v['numpy']}, "
        f"TensorFlow {opt(v['tensorflow'])}, Keras {opt(v['keras'])}, "
        f"PyTurboJPEG {opt(v['pyturbojpeg'])}, Python {m['python']}",
        f"output: {h}x{w} uint8 RGB, {st['interpolation']}"
        f"{'' if st['dct_scaling'] else ', no DCT scaling'}; batch {st['batch_size']}; "
        + (f"median of {st['rounds']} rounds" if not result["interrupted"] else
           f"median of the rounds completed before Ctrl-C (of {st['rounds']} planned)")
        + f" after {st['warmup_batches']} warm-up batches; "
        "each loader in its own process, rounds alternating",
    ]
    return "\n".join(lines)


def format_set(sr):
    ref = sr["reference"]
    out = [f"{sr['title']}: {sr['n_images']} images from {sr['path']}"]
    if sr.get("description"):
        out += ["  " + line for line in sr["description"].splitlines()]
    head = ("loader", "images/s", "ms/batch", "fastseq is", "of bare limit")
    rows = []
    for r in sr["results"]:
        if r["status"] != "ok" or not r["images_per_s"]:
            why = r["note"] or ("no round completed" if r["status"] == "ok" else r["status"])
            rows.append((r["label"], f"{r['status'] if r['status'] != 'ok' else 'n/a'}: {why}"))
            continue
        sp = r["speedup"]
        sp_txt = "(reference)" if r["loader"] == ref else (format_value(sp, ".2f") + "x faster"
                                                           if sp is None or sp >= 1
                                                           else f"{1 / sp:.2f}x slower")
        frac = r["fraction_of_bare"]
        frac_txt = format_value(frac and 100 * frac, ".0f") + ("%" if frac else "")
        rows.append((r["label"], f"{r['images_per_s']:.1f}", f"{r['ms_per_batch']:.1f}",
                     sp_txt if ref else "-", frac_txt))
    width = max([len(head[0])] + [len(r[0]) for r in rows])
    fmt = f"  {{:<{width}}}  {{:>10}}  {{:>9}}  {{:>14}}  {{:>13}}"
    out.append(fmt.format(*head))
    for r in rows:
        if len(r) == 2:
            out.append(f"  {r[0]:<{width}}  {r[1]}")
        else:
            out.append(fmt.format(*r))
    notes = [f"  note: {r['label']}: {r['note']}" for r in sr["results"]
             if r["status"] == "ok" and r["note"]]
    notes += [f"  note: {r['label']} yields {r['output']}" for r in sr["results"]
              if r["status"] == "ok" and r["output"] not in ("", "uint8", LOADER_CLASSES["bare"].output)]
    return "\n".join(out + notes)


def format_fit(fit):
    """The ``--fit`` section: run_fit_benchmark's result as a table, each run
    skipped with why, and fastseq's workers=1 row against its workers=2 row."""
    if fit is None:
        return ""
    if fit["status"] != "ok":
        return f"model.fit benchmark {fit['status']}: {fit['note']}"
    from fastseq.bench.fitbench import format_fit_table

    res = fit["result"]
    v = res["versions"]
    lines = ["model.fit benchmark (seconds per epoch):",
             f"  {res['n_images']} images, {res['size'][0]}x{res['size'][1]}, batch "
             f"{res['batch_size']}, {res['epochs']} epochs (epoch 1 excluded); Keras "
             f"{v['keras']} on {v['keras_backend']}; model: {res['model']}",
             format_fit_table(res)]
    lines += [f"  skipped {name}: {why}" for name, why in res["skipped"].items()]
    w2 = res["speedup"].get("vs_fastseq_w2")
    if w2 is not None:
        prefetch = {True: "fastseq's prefetch on", False: "fastseq's prefetch off",
                    None: "this fastseq has no built-in prefetch"}[res["prefetch"]]
        lines.append(f"  fastseq with workers=2 takes {w2:.2f}x the time per epoch of "
                     f"workers=1 ({prefetch})")
    return "\n".join(lines)


def format_report(result):
    parts = [format_header(result)]
    parts += [format_set(sr) for sr in result["sets"]]
    if result.get("fit") is not None:
        parts.append(format_fit(result["fit"]))
    if result["notes"]:
        parts.append("\n".join(f"note: {n}" for n in result["notes"]))
    return "\n\n".join(parts)


def write_json(result, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, default=str)
        f.write("\n")


def plot_results(result, path):
    """A horizontal bar chart of images/s per loader, one panel per set."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    sets = [sr for sr in result["sets"] if any(r["images_per_s"] for r in sr["results"])]
    if not sets:
        sets = result["sets"][:1]
    heights = [max(1, len(sr["results"])) for sr in sets]
    fig, axes = plt.subplots(len(sets), 1, squeeze=False,
                             figsize=(9, 1.2 + 0.45 * sum(heights) + 0.8 * len(sets)),
                             gridspec_kw=dict(height_ratios=heights))
    for ax, sr in zip(axes[:, 0], sets):
        rows = [r for r in sr["results"]][::-1]          # first loader on top
        vals = [r["images_per_s"] or 0 for r in rows]
        colors = ["#d62728" if r["name"] == "fastseq" else
                  "#7f7f7f" if r["name"] == "bare" else "#1f77b4" for r in rows]
        bars = ax.barh(range(len(rows)), vals, color=colors)
        for b, r in zip(bars, rows):
            if r["name"] == "bare":
                b.set_hatch("//")
                b.set_alpha(0.6)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r["label"] for r in rows], fontsize=8)
        top = max(vals) if any(vals) else 1
        for i, r in enumerate(rows):
            if r["images_per_s"]:
                txt = f"{r['images_per_s']:.0f}/s"
                sp = r["speedup"]
                if not sp or r["loader"] == sr["reference"]:
                    pass
                elif r["name"] == "fastseq":
                    ref = next(x for x in sr["results"] if x["loader"] == sr["reference"])
                    txt += f"  ({ref['threads']} threads: {sp:.2f}x this)"
                elif r["name"] != "bare":
                    txt += (f"  (fastseq {sp:.1f}x faster)" if sp >= 1
                            else f"  (fastseq {1 / sp:.1f}x slower)")
                elif r["name"] == "bare" and sr["reference"]:
                    ref = next(x for x in sr["results"] if x["loader"] == sr["reference"])
                    if r["threads"] == ref["threads"]:
                        txt += f"  (fastseq: {100 * ref['fraction_of_bare']:.0f}% of it)"
            else:
                txt = r["status"] if r["status"] != "ok" else "n/a"
            ax.text(vals[i] + top * 0.01, i, txt, va="center", fontsize=8)
        ax.set_xlim(0, top * 1.5)       # room for the labels right of the bars
        ax.set_xlabel("images/s (higher is better)")
        ax.set_title(f"{sr['title']} ({sr['n_images']} images)", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    st, m = result["settings"], result["machine"]
    fig.suptitle(f"fastseq bench: {st['size'][0]}x{st['size'][1]} uint8 RGB, "
                 f"{st['interpolation']}, batch {st['batch_size']} | {m['cpu']}, "
                 f"{st['threads']} threads", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)

