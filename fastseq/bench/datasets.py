"""The default benchmark dataset: deterministic, photo-like JPEGs.

:func:`ensure_default_dataset` generates, once, into a cache folder:

* ``imagenet/``: an ImageNet-like set in class folders (``class_00`` ...):
  short side 300-500 px, common photo aspect ratios, JPEG quality 75-95,
  a mix of baseline 4:2:0, 4:4:4 and 4:2:2, progressive and grayscale files;
* ``large/``: a smaller set of 6-12 megapixel camera-sized photos.

The pictures are synthetic but compress like photographs (about 2 bits per
pixel at quality 90, 4:2:0): smooth colour gradients, hard-edged shapes and
lines, and texture at several scales, including fine grain.  Random noise
would compress far worse and make entropy decoding dominate the benchmark.

Every image is a pure function of (seed, set, index), so the dataset is the
same on every machine for a given Pillow/libjpeg version.

A dataset folder is generated under a temporary name and renamed into place
only after its ``MANIFEST.json`` is written, so a folder with the final name
is always complete; it is reused only if the manifest matches the requested
parameters and every listed file exists with its recorded size.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

__all__ = ["ensure_default_dataset", "ensure_format_dataset", "describe_dataset",
           "describe_format_dataset", "summarize_dataset", "default_cache_dir",
           "DEFAULT_N_IMAGENET", "DEFAULT_N_LARGE", "DEFAULT_N_FORMAT", "FORMATS"]

#: Bumped whenever the generator's output changes, so old caches are not reused.
GENERATOR_VERSION = 1
DEFAULT_N_IMAGENET = 1000
DEFAULT_N_LARGE = 16
DEFAULT_SEED = 0
MANIFEST = "MANIFEST.json"

_N_CLASSES = 10
_ASPECTS = (4 / 3, 3 / 2, 1.0, 5 / 4, 16 / 9)
# Camera sensor sizes (width, height) between 6 and 12 megapixels.
_LARGE_SIZES = ((3000, 2000), (3264, 2448), (3456, 2304), (3648, 2736),
                (3840, 2160), (4000, 3000))
# (name, weight): the ImageNet-like encoding mix.
_IMAGENET_KINDS = (("baseline-420", 50), ("baseline-444", 20),
                   ("progressive-420", 15), ("grayscale", 10),
                   ("baseline-422", 5))
_LARGE_KINDS = (("baseline-420", 70), ("baseline-444", 15),
                ("progressive-420", 15))
# The PNG and WebP sets (ensure_format_dataset): ImageNet-like sizes, the
# same photo-like content, and a mix of the colour types such folders hold.
DEFAULT_N_FORMAT = 300
FORMATS = {
    "png": (("rgb", 55), ("rgba", 15), ("gray", 15), ("palette", 10), ("gray16", 5)),
    "webp": (("lossy-rgb", 60), ("lossy-rgba", 15), ("lossless-rgb", 15),
             ("lossless-rgba", 10)),
}
_SET_IDS = {"imagenet": 1, "large": 2, "png": 3, "webp": 4}
_SUBSAMPLING = {"420": 2, "422": 1, "444": 0}
_SUBSAMPLING_NAME = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}


def default_cache_dir() -> Path:
    """``$FASTSEQ_CACHE_DIR``, else the user's cache directory + ``fastseq``
    (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux)."""
    env = os.environ.get("FASTSEQ_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "fastseq"
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "fastseq" / "Cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fastseq"


# --------------------------------------------------------------------------
# Image synthesis.  Runs in worker processes; must only depend on its
# arguments (the rng is seeded from them), never on call order.

def _rng(seed, set_id, index):
    import numpy as np

    return np.random.default_rng([seed, set_id, index])


def _noise_layer(rng, w, h, div, amp, chans):
    """Uniform noise of amplitude `amp` at 1/`div` resolution, upsampled
    (bilinear) to w x h: texture whose grain size is about `div` pixels."""
    import numpy as np
    from PIL import Image

    tw, th = max(2, w // div), max(2, h // div)
    small = rng.integers(128 - amp, 129 + amp, (th, tw, chans), dtype=np.uint8)
    mode = "RGB" if chans == 3 else "L"
    img = Image.fromarray(small if chans == 3 else small[..., 0], mode)
    big = np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.int16)
    return big.reshape(h, w, chans) - 128


def synth_photo(rng, width, height):
    """A photo-like RGB PIL image: gradients, shapes, multi-scale texture."""
    import numpy as np
    from PIL import Image, ImageDraw

    gw, gh = int(rng.integers(2, 6)), int(rng.integers(2, 6))
    corners = rng.integers(0, 256, (gh, gw, 3), dtype=np.uint8)
    img = Image.fromarray(corners).resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    short = min(width, height)
    for _ in range(int(rng.integers(15, 50))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        # log-uniform sizes: a few large regions, many small details
        r = float(np.exp(rng.uniform(np.log(0.01), np.log(0.3)))) * short
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 4))
        if kind == 0:
            draw.ellipse([cx - r, cy - r * rng.uniform(0.5, 1.5), cx + r, cy + r], fill=color)
        elif kind == 1:
            draw.rectangle([cx - r, cy - r, cx + r * rng.uniform(0.5, 2.0), cy + r], fill=color)
        elif kind == 2:
            end = (cx + rng.uniform(-3, 3) * r, cy + rng.uniform(-3, 3) * r)
            draw.line([(cx, cy), end], fill=color, width=max(1, int(r / 8)))
        else:
            angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 7))))
            stretch = rng.uniform(0.5, 1.2)
            draw.polygon([(cx + r * np.cos(a), cy + r * stretch * np.sin(a)) for a in angles],
                         fill=color)
    pix = np.asarray(img).astype(np.int16)
    pix += _noise_layer(rng, width, height, 8, 24, 3)      # coarse colour mottling
    pix += _noise_layer(rng, width, height, 2, 12, 1)      # fine texture
    pix += rng.integers(-4, 5, (height, width, 1), dtype=np.int16)   # sensor grain
    np.clip(pix, 0, 255, out=pix)
    return Image.fromarray(pix.astype(np.uint8))


def _pick(rng, weighted):
    total = sum(w for _, w in weighted)
    x = rng.uniform(0, total)
    for name, w in weighted:
        if x < w:
            return name
        x -= w
    return weighted[-1][0]


def _plan(seed, n_imagenet, n_large):
    """The list of images to make: dicts with every encoding parameter.
    Parameters are drawn from a per-image rng, so a dataset with more images
    has the smaller one's images as a prefix."""
    plan = []
    n_classes = max(1, min(_N_CLASSES, n_imagenet))
    for i in range(n_imagenet):
        rng = _rng(seed, 1, i)
        short = int(rng.integers(300, 501))
        aspect = _ASPECTS[int(rng.integers(0, len(_ASPECTS)))]
        long_ = int(round(short * aspect))
        w, h = (long_, short) if rng.uniform() < 0.75 else (short, long_)
        kind = _pick(rng, _IMAGENET_KINDS)
        plan.append(dict(set="imagenet", index=i,
                         file=f"imagenet/class_{i % n_classes:02d}/img_{i:05d}.jpg",
                         width=w, height=h, quality=int(rng.integers(75, 96)),
                         kind=kind))
    for i in range(n_large):
        rng = _rng(seed, 2, i)
        w, h = _LARGE_SIZES[int(rng.integers(0, len(_LARGE_SIZES)))]
        if rng.uniform() < 0.3:
            w, h = h, w
        plan.append(dict(set="large", index=i, file=f"large/photo_{i:03d}.jpg",
                         width=w, height=h, quality=int(rng.integers(85, 96)),
                         kind=_pick(rng, _LARGE_KINDS)))
    return plan


def _make_image(args):
    """Worker: synthesize and save one planned image; returns its manifest
    entry (the plan plus the file's byte size)."""
    root, seed, item = args
    set_id = _SET_IDS[item["set"]]
    rng = _rng(seed, set_id + 100, item["index"])   # content stream, apart from the plan's
    img = synth_photo(rng, item["width"], item["height"])
    kind = item["kind"]
    if item["set"] in FORMATS:
        return _save_format(root, item, img, rng)
    save = dict(quality=item["quality"], optimize=False)
    if kind == "grayscale":
        img = img.convert("L")
    else:
        save["subsampling"] = _SUBSAMPLING[kind.rsplit("-", 1)[1]]
    if kind.startswith("progressive"):
        save["progressive"] = True
    path = os.path.join(root, item["file"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path, "JPEG", **save)
    entry = dict(item)
    entry["bytes"] = os.path.getsize(path)
    entry["mode"] = img.mode
    entry["subsampling"] = None if kind == "grayscale" else _SUBSAMPLING_NAME[save["subsampling"]]
    entry["progressive"] = kind.startswith("progressive")
    return entry


def _with_alpha(img, rng):
    """RGBA with a soft vignette-like alpha and a few fully transparent
    patches, as cut-outs and overlays have."""
    import numpy as np
    from PIL import Image

    w, h = img.size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    d = np.sqrt(((y - cy) / h) ** 2 + ((x - cx) / w) ** 2)
    alpha = np.clip(255 * (1.2 - 1.8 * d), 0, 255).astype(np.uint8)
    out = img.convert("RGBA")
    out.putalpha(Image.fromarray(alpha))
    return out


def _save_format(root, item, img, rng):
    import numpy as np
    from PIL import Image

    kind = item["kind"]
    path = os.path.join(root, item["file"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if item["set"] == "png":
        if kind == "rgba":
            img = _with_alpha(img, rng)
        elif kind == "gray":
            img = img.convert("L")
        elif kind == "palette":
            img = img.quantize(256)
        elif kind == "gray16":
            img = Image.fromarray(np.asarray(img.convert("L"), np.uint16) * 257).convert("I;16")
        # Pillow's default zlib level (6) and filter choice, as most PNGs.
        img.save(path, "PNG")
    else:
        lossless = kind.startswith("lossless")
        if kind.endswith("rgba"):
            img = _with_alpha(img, rng)
        if lossless:
            img.save(path, "WEBP", lossless=True, quality=int(item["quality"]))
        else:
            img.save(path, "WEBP", quality=int(item["quality"]))
    entry = dict(item)
    entry["bytes"] = os.path.getsize(path)
    entry["mode"] = img.mode
    return entry


def _plan_format(seed, fmt, n):
    """The PNG or WebP set: ImageNet-like sizes (short side 300-500 px),
    in class folders, a colour-type mix drawn from FORMATS[fmt]."""
    plan = []
    n_classes = max(1, min(_N_CLASSES, n))
    for i in range(n):
        rng = _rng(seed, _SET_IDS[fmt], i)
        short = int(rng.integers(300, 501))
        aspect = _ASPECTS[int(rng.integers(0, len(_ASPECTS)))]
        long_ = int(round(short * aspect))
        w, h = (long_, short) if rng.uniform() < 0.75 else (short, long_)
        plan.append(dict(set=fmt, index=i,
                         file=f"{fmt}/class_{i % n_classes:02d}/img_{i:05d}.{fmt}",
                         width=w, height=h, quality=int(rng.integers(75, 96)),
                         kind=_pick(rng, FORMATS[fmt])))
    return plan


def ensure_format_dataset(fmt, cache_dir=None, *, n=DEFAULT_N_FORMAT, progress=True,
                          seed=DEFAULT_SEED, workers=None) -> str:
    """The folder of the generated PNG or WebP set (``fmt`` "png" or
    "webp"), class folders inside, generated once into the cache like the
    default dataset (a temporary folder renamed into place after its
    manifest is written)."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {sorted(FORMATS)}, not {fmt!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, not {n!r}")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    final = cache / f"{fmt}-v{GENERATOR_VERSION}-s{seed}-n{n}"
    if _format_manifest(final, fmt, n, seed) is not None:
        return str(final / fmt)
    _build_into(cache, final, _plan_format(seed, fmt, n), seed, progress, workers,
                dict(format=fmt, n=n), lambda: _format_manifest(final, fmt, n, seed))
    return str(final / fmt)


def _build_into(cache, final, plan, seed, progress, workers, fields, valid):
    """Generate `plan` into a temporary folder of `cache`, write its
    manifest (`fields` and the files) and rename it to `final`: an old or
    damaged `final` (``valid()`` None) is replaced; when another process
    finished the same set first, theirs is used.  Returns the manifest."""
    cache.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(cache)
    tmp = cache / f".tmp-{final.name}-{os.getpid()}-{time.time_ns() % 10**9}"
    try:
        entries = _generate(tmp, plan, seed, progress, workers)
        man = dict(generator_version=GENERATOR_VERSION, seed=seed, **fields,
                   created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), files=entries,
                   complete=True)
        with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
            json.dump(man, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        if final.exists() and valid() is None:
            shutil.rmtree(final, ignore_errors=True)     # an old or damaged copy
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process finished the same dataset first: use theirs.
            if valid() is None:
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return man


def _format_manifest(root, fmt, n, seed):
    try:
        with open(os.path.join(root, MANIFEST), encoding="utf-8") as f:
            man = json.load(f)
    except (OSError, ValueError):
        return None
    if not (isinstance(man, dict) and man.get("complete")
            and man.get("generator_version") == GENERATOR_VERSION
            and man.get("format") == fmt and man.get("n") == n and man.get("seed") == seed
            and isinstance(man.get("files"), list) and len(man["files"]) == n):
        return None
    for e in man["files"]:
        try:
            if os.path.getsize(os.path.join(root, e["file"])) != e["bytes"]:
                return None
        except (OSError, KeyError, TypeError):
            return None
    return man


def describe_format_dataset(folder) -> str:
    """One line saying what a PNG/WebP set (the folder ensure_format_dataset
    returned) contains."""
    root = os.path.dirname(os.path.abspath(folder))
    with open(os.path.join(root, MANIFEST), encoding="utf-8") as f:
        man = json.load(f)
    files = man["files"]
    kinds = {}
    for e in files:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    total = sum(e["bytes"] for e in files)
    px = sum(e["width"] * e["height"] for e in files)
    shorts = [min(e["width"], e["height"]) for e in files]
    mix = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
    return (f"{man['format'].upper()}: {len(files)} images, short side {min(shorts)}-"
            f"{max(shorts)} px, {total / 1e6:.1f} MB ({8 * total / px:.2f} bits/pixel); {mix}")


# --------------------------------------------------------------------------
# Cache management.

def _dataset_name(n_imagenet, n_large, seed):
    return f"default-v{GENERATOR_VERSION}-s{seed}-in{n_imagenet}-lg{n_large}"


def _paths(root, manifest):
    root = Path(root)
    return {
        "root": str(root),
        "imagenet": str(root / "imagenet") if manifest["n_imagenet"] else None,
        "large": str(root / "large") if manifest["n_large"] else None,
        "manifest": str(root / MANIFEST),
    }


def _load_valid_manifest(root, n_imagenet=None, n_large=None, seed=None):
    """The manifest of a complete dataset at `root`, or None."""
    try:
        with open(os.path.join(root, MANIFEST), encoding="utf-8") as f:
            man = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(man, dict) or man.get("generator_version") != GENERATOR_VERSION:
        return None
    if not man.get("complete"):
        return None
    for key, want in (("n_imagenet", n_imagenet), ("n_large", n_large), ("seed", seed)):
        if want is not None and man.get(key) != want:
            return None
    files = man.get("files")
    if not isinstance(files, list) or len(files) != man["n_imagenet"] + man["n_large"]:
        return None
    for e in files:
        try:
            if os.path.getsize(os.path.join(root, e["file"])) != e["bytes"]:
                return None
        except (OSError, KeyError, TypeError):
            return None
    return man


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _remove_stale_tmp(cache):
    """Remove temporary folders left by generators that were killed."""
    for p in cache.glob(".tmp-*"):
        try:
            pid = int(p.name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def ensure_default_dataset(cache_dir=None, *, n_imagenet=DEFAULT_N_IMAGENET,
                           n_large=DEFAULT_N_LARGE, progress=True,
                           seed=DEFAULT_SEED, workers=None) -> dict:
    """Return the paths of the default dataset, generating it if needed.

    Returns ``{"root", "imagenet", "large", "manifest"}`` (str paths;
    ``"imagenet"``/``"large"`` are None when that set has 0 images).
    `progress` shows a tqdm bar while generating.  `workers` is the number
    of generator processes (default: the CPUs this process may use).
    """
    if not isinstance(n_imagenet, int) or not isinstance(n_large, int) \
            or n_imagenet < 0 or n_large < 0 or n_imagenet + n_large == 0:
        raise ValueError("n_imagenet and n_large must be non-negative ints, "
                         f"not both 0; got {n_imagenet!r}, {n_large!r}")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    final = cache / _dataset_name(n_imagenet, n_large, seed)
    man = _load_valid_manifest(final, n_imagenet, n_large, seed)
    if man is not None:
        return _paths(final, man)

    man = _build_into(cache, final, _plan(seed, n_imagenet, n_large), seed, progress, workers,
                      dict(n_imagenet=n_imagenet, n_large=n_large,
                           n_classes=max(1, min(_N_CLASSES, n_imagenet)) if n_imagenet else 0),
                      lambda: _load_valid_manifest(final, n_imagenet, n_large, seed))
    return _paths(final, man)


def _ignore_sigint():
    # Ctrl-C is handled once, by the parent, which then shuts the pool down.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _generate(root, plan, seed, progress, workers):
    from tqdm import tqdm

    root.mkdir(parents=True)
    if workers is None:
        from fastseq.threads import usable_cpus
        workers = usable_cpus()
    # Big images first, so the pool's tail is small images.
    order = sorted(range(len(plan)), key=lambda i: -plan[i]["width"] * plan[i]["height"])
    jobs = [(str(root), seed, plan[i]) for i in order]
    pixels = sum(p["width"] * p["height"] for p in plan)
    entries = [None] * len(plan)
    bar = tqdm(total=len(plan), unit="img", desc="fastseq: generating dataset",
               disable=not progress, leave=True)
    try:
        # Spawning workers costs ~0.3 s each: not worth it for a tiny set.
        if workers <= 1 or pixels < 20_000_000:
            results = map(_make_image, jobs)
            pool = None
        else:
            import multiprocessing as mp

            pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                       initializer=_ignore_sigint)
            results = pool.map(_make_image, jobs, chunksize=4)
        try:
            for i, entry in zip(order, results):
                entries[i] = entry
                bar.update(1)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
    return entries


# --------------------------------------------------------------------------
# Description.

def _manifest_of(dataset):
    root = dataset["root"] if isinstance(dataset, dict) else dataset
    man = _load_valid_manifest(root)
    if man is None:
        raise ValueError(f"{root} is not a complete fastseq default dataset")
    return man


def summarize_dataset(dataset) -> dict:
    """Figures about a default dataset (a dict from ensure_default_dataset
    or its root folder): per set, counts, sizes, qualities, encodings."""
    man = _manifest_of(dataset)
    out = {}
    for name in ("imagenet", "large"):
        files = [e for e in man["files"] if e["set"] == name]
        if not files:
            continue
        kinds = {}
        for e in files:
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
        mp = [e["width"] * e["height"] / 1e6 for e in files]
        out[name] = dict(
            n_images=len(files),
            n_classes=len({os.path.dirname(e["file"]) for e in files}) if name == "imagenet" else 0,
            short_side=[min(min(e["width"], e["height"]) for e in files),
                        max(min(e["width"], e["height"]) for e in files)],
            megapixels=[round(min(mp), 2), round(max(mp), 2)],
            quality=[min(e["quality"] for e in files), max(e["quality"] for e in files)],
            kinds=dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
            total_bytes=sum(e["bytes"] for e in files),
            bits_per_pixel=round(8 * sum(e["bytes"] for e in files)
                                 / sum(e["width"] * e["height"] for e in files), 2),
        )
    return out


def describe_dataset(dataset) -> str:
    """A few human-readable lines saying what a default dataset contains."""
    summary = summarize_dataset(dataset)
    lines = []
    for name, s in summary.items():
        kinds = ", ".join(f"{k} {v}" for k, v in s["kinds"].items())
        where = f" in {s['n_classes']} class folders" if s["n_classes"] else ""
        if name == "imagenet":
            size = f"short side {s['short_side'][0]}-{s['short_side'][1]} px"
            title = "ImageNet-like"
        else:
            size = f"{s['megapixels'][0]:.1f}-{s['megapixels'][1]:.1f} MP"
            title = "Large photos"
        lines.append(f"{title}: {s['n_images']} JPEGs{where}, {size}, quality "
                     f"{s['quality'][0]}-{s['quality'][1]}, "
                     f"{s['total_bytes'] / 1e6:.1f} MB ({s['bits_per_pixel']} bits/pixel); {kinds}")
    return "\n".join(lines)
