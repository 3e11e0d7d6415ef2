"""Directory listing with the exact semantics of Keras' legacy
``flow_from_directory``, built on ``os.scandir``.

Keras lists a class folder with ``os.walk`` (sorted by the walked directory's
path), keeps a file when its lower-cased name ends with one of
:data:`WHITE_LIST_FORMATS` (no dot is required: ``"xjpg"`` counts), and names
it ``<class>/<relative path>`` through ``os.path.relpath``.  For large folders
the per-file ``relpath`` and ``join`` calls dominate; here the relative names
are built by concatenation from the walked components instead, which gives the
same strings because every component is a real directory entry name (never
``.`` or ``..``).

Imports no Keras.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Sequence

__all__ = ["WHITE_LIST_FORMATS", "directory_path", "list_classes", "walk_valid_files",
           "list_directory"]

WHITE_LIST_FORMATS = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff")


def directory_path(directory: str | bytes | os.PathLike) -> str:
    """An iterator's ``directory`` argument as a str; a TypeError naming the
    argument for anything that is not a path (Python's own message from
    ``os.fspath`` does not say which argument it was)."""
    if not isinstance(directory, (str, bytes, os.PathLike)):
        raise TypeError(f"directory must be a path (str, bytes or os.PathLike), "
                        f"got {type(directory).__name__}")
    return os.fsdecode(os.fspath(directory))


def list_classes(directory: str) -> list[str]:
    """Sorted names of the entries of `directory` that are directories,
    symlinks to directories included (``os.path.isdir`` semantics)."""
    names = []
    with os.scandir(directory) as it:
        for entry in it:
            try:
                if entry.is_dir():      # follows symlinks, as os.path.isdir
                    names.append(entry.name)
            except OSError:
                pass
    names.sort()
    return names


def _scan(path: str):
    """One directory as os.walk sees it: (subdirectories, files), or None
    when os.walk would yield nothing for it (unreadable, or an error while
    reading it)."""
    dirs, files = [], []
    try:
        it = os.scandir(path)
    except OSError:
        return None
    with it:
        while True:
            try:
                entry = next(it)
            except StopIteration:
                break
            except OSError:
                return None
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                try:
                    is_link = entry.is_symlink()
                except OSError:
                    is_link = False
                dirs.append((entry.name, is_link))
            else:
                files.append(entry.name)
    return dirs, files


def walk_valid_files(class_dir: str, follow_links: bool,
                     white_list_formats: Sequence[str] = WHITE_LIST_FORMATS
                     ) -> list[str]:
    """Valid files under `class_dir`, as paths relative to `class_dir`
    (``os.sep``-joined), in Keras' order: directories sorted by their path
    string, files sorted by name within each directory.

    Directories are descended as ``os.walk(class_dir, followlinks=...)``
    does: the top is always read (even through a symlink); below it, a
    symlinked directory is entered only with `follow_links`.
    """
    suffixes = tuple(white_list_formats)
    sep = os.sep
    # (relative root, absolute root).  Keras sorts walked roots by their full
    # path; all of them share the `class_dir` prefix, so sorting the relative
    # part ("" for the top, "a", "a/b", ...) gives the same order, including
    # the cases where '/' does not sort like a component boundary
    # ("a-b" < "a/b").
    found: list[tuple[str, list[str]]] = []
    stack = [("", class_dir)]
    while stack:
        rel, path = stack.pop()
        scanned = _scan(path)
        if scanned is None:
            continue
        dirs, files = scanned
        keep = [f for f in files if f.lower().endswith(suffixes)]
        if keep:
            found.append((rel, keep))
        for name, is_link in dirs:
            if follow_links or not is_link:
                stack.append((rel + sep + name if rel else name,
                              os.path.join(path, name)))
    found.sort(key=lambda item: item[0])
    out: list[str] = []
    for rel, keep in found:
        keep.sort()
        if rel:
            prefix = rel + sep
            out.extend(prefix + f for f in keep)
        else:
            out.extend(keep)
    return out


def list_directory(directory: str, classes: Iterable[str],
                   follow_links: bool = False,
                   split: tuple[float, float] | None = None,
                   white_list_formats: Sequence[str] = WHITE_LIST_FORMATS,
                   max_workers: int | None = None
                   ) -> tuple[list[str], list[int]]:
    """List the images of each class folder ``directory/<class>``.

    Returns ``(filenames, class_ids)``: filenames relative to `directory`
    (``<class>/<path inside the class>``), classes in the given order, and
    within a class in Keras' order; ``class_ids[i]`` is the index of the
    class of ``filenames[i]`` in ``dict(zip(classes, range(len(classes))))``
    (Keras' ``class_indices``).  `split` ``(lo, hi)`` keeps, per
    class, the files ``[int(lo * n), int(hi * n))`` exactly as Keras does.

    Class folders are walked concurrently: ``os.scandir`` releases the GIL
    while it reads the directory, which pays off on cold caches and network
    file systems.
    """
    classes = list(classes)
    class_dirs = [os.path.join(directory, c) for c in classes]
    if max_workers is None:
        max_workers = min(16, len(class_dirs))
    if max_workers > 1:
        with ThreadPoolExecutor(max_workers=max_workers) as pool:
            per_class = list(pool.map(
                lambda d: walk_valid_files(d, follow_links, white_list_formats),
                class_dirs))
    else:
        per_class = [walk_valid_files(d, follow_links, white_list_formats)
                     for d in class_dirs]
    # Keras labels a file with class_indices[basename(class folder)]; with
    # repeated names in `classes` the last position wins, as in a dict.
    class_indices = dict(zip(classes, range(len(classes))))
    filenames: list[str] = []
    class_ids: list[int] = []
    sep = os.sep
    warned_tiff = False
    for class_dir, files in zip(class_dirs, per_class):
        if not warned_tiff and any(f.lower().endswith(".tiff") for f in files):
            warned_tiff = True
            warnings.warn('Using ".tiff" files with multiple bands will cause '
                          "distortion. Please verify your output.", stacklevel=3)
        if split:
            n = len(files)
            files = files[int(split[0] * n):int(split[1] * n)]
        label = os.path.basename(class_dir)
        if label not in class_indices:
            raise ValueError(f"class {label!r} (folder {class_dir!r}): class names "
                             "must be single folder names inside the directory")
        k = class_indices[label]
        prefix = label + sep
        filenames.extend(prefix + f for f in files)
        class_ids.extend([k] * len(files))
    return filenames, class_ids
