"""The benchmarked files: listing a folder's images, spreading a subset over
it, the class-per-folder view the Keras loaders read, the page-cache warm-up."""

from __future__ import annotations

import os
import shutil

from fastseq.bench.common import BenchError

#: File extensions every compared loader reads (the Keras loaders list
#: files by extension; these four are the ones both accept and decode).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

def list_images(directory, extensions=IMAGE_EXTENSIONS):
    """Sorted image files under `directory` (recursively), with the class of
    each: its first folder below `directory` (``""`` for a flat folder).
    `extensions`: the (lower-case) endings listed; the WebP benchmark,
    which no Keras loader reads, passes ``(".webp",)``.
    Raises BenchError with a one-line reason when there is nothing to use."""
    if not os.path.exists(directory):
        raise BenchError(f"no such directory: {directory}")
    if not os.path.isdir(directory):
        raise BenchError(f"not a directory: {directory}")
    try:
        if not os.listdir(directory):
            raise BenchError(f"directory is empty: {directory}")
    except PermissionError:
        raise BenchError(f"cannot read directory: {directory}") from None
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.lower().endswith(tuple(extensions)) and not f.startswith("."):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, directory)
                cls = rel.split(os.sep, 1)[0] if os.sep in rel else ""
                found.append((path, cls))
    if not found:
        raise BenchError(f"no image files ({', '.join(extensions)}) found in {directory}")
    return found


def subsample(items, limit):
    """At most `limit` items, evenly spread (so every class is represented)."""
    if limit is None or limit >= len(items):
        return list(items)
    n = len(items)
    return [items[i * n // limit] for i in range(limit)]


def make_view(items, root):
    """A class-per-folder tree of symlinks to `items` under `root`: the Keras
    loaders read a directory, and this one holds exactly the benchmarked
    files (a flat folder becomes one class, ``images``)."""
    os.makedirs(root)
    for i, (path, cls) in enumerate(items):
        d = os.path.join(root, cls or "images")
        os.makedirs(d, exist_ok=True)
        # The index prefix keeps names unique and Keras' sorted order ours.
        link = os.path.join(d, f"{i:07d}_{os.path.basename(path)}")
        try:
            os.symlink(os.path.abspath(path), link)
        except OSError:
            shutil.copyfile(path, link)
    return root


def warm_page_cache(paths):
    """Read every file once, so that no loader pays for the first read."""
    for p in paths:
        try:
            with open(p, "rb") as f:
                while f.read(1 << 20):
                    pass
        except OSError:
            pass

