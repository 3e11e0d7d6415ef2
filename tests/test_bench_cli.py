"""`python -m fastseq bench` / `info`, the benchmark engine and the default
dataset.  Everything runs on tiny datasets (a few small JPEGs), so the whole
file takes seconds on 2 cores; the TensorFlow loaders are only ever exercised
as "not installed" (hidden), because importing TensorFlow alone takes ~10 s.
Performance figures are never asserted here: the benchmark is not a test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import PIL
import pytest
from PIL import Image

import fastseq
from fastseq import bench
from fastseq.bench import datasets, fitbench, report, stats
from conftest import PANDAS_MISSING  # noqa: E402

PKG_ROOT = str(pathlib.Path(fastseq.__file__).resolve().parent.parent)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop(bench.HIDE_ENV, None)
    env.update(extra)
    return env


def run_cli(*args, timeout=120, **env):
    return subprocess.run([sys.executable, "-m", "fastseq", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=_env(**env))


def _installed(*dists):
    """The version of the first installed distribution, or "not installed"."""
    from importlib import metadata

    for d in dists:
        try:
            return metadata.version(d)
        except metadata.PackageNotFoundError:
            pass
    return "not installed"


TF_VERSION = _installed("tensorflow", "tensorflow-cpu", "tf-nightly")
KERAS_VERSION = _installed("keras")
TURBOJPEG_VERSION = _installed("PyTurboJPEG")

TINY = ("--n-imagenet", "6", "--n-large", "0", "--rounds", "1", "--warmup", "1",
        "--batch-size", "4", "--no-progress")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("fastseq-cache")


@pytest.fixture(scope="module")
def tiny_run(cache, tmp_path_factory):
    """One full CLI run on a tiny generated dataset, shared by the tests
    that inspect its output, JSON and plot."""
    out = tmp_path_factory.mktemp("bench-out")
    js, png = out / "bench.json", out / "bench.png"
    proc = run_cli("bench", "--cache-dir", cache, *TINY,
                   "--loaders", "fastseq,fastseq@1,pillow,turbojpeg,bare",
                   "--json", js, "--plot", png)
    return proc, js, png


# ---------------------------------------------------------------------------
# The command end to end.

def test_bench_runs_on_tiny_dataset(tiny_run):
    proc, js, png = tiny_run
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = proc.stdout
    # header: CPU, cores, threads and every version the issue names, as installed
    assert "CPU:" in out and "cores used:" in out and "threads:" in out
    inf = fastseq.info()
    for text in (f"fastseq {fastseq.__version__}", f"libjpeg-turbo {inf['libjpeg_turbo']} ",
                 f"Pillow {PIL.__version__}", f"numpy {np.__version__}",
                 f"TensorFlow {TF_VERSION},", f"Keras {KERAS_VERSION},",
                 f"PyTurboJPEG {TURBOJPEG_VERSION},"):
        assert text in out, text
    # one table row per loader, with figures
    n = fastseq.get_num_threads()
    for label in (f"fastseq, {n} thread", "fastseq, 1 thread", "Pillow per image",
                  "PyTurboJPEG + thread-pool resize", "bare libjpeg-turbo decode"):
        assert label in out, label
    assert "images/s" in out and "ms/batch" in out and "of bare limit" in out
    assert "(reference)" in out
    assert f"wrote {js}" in out and f"wrote {png}" in out


# Every field the JSON schema in fastseq.bench's docstring documents.
TOP_FIELDS = {"schema", "created", "interrupted", "machine", "versions", "settings",
              "sets", "fit", "notes"}
MACHINE_FIELDS = {"cpu", "cores_used", "cores_total", "platform", "python", "other_cpu_load"}
VERSION_FIELDS = {"fastseq", "libjpeg_turbo", "simd", "pillow", "numpy", "tensorflow",
                  "keras", "pyturbojpeg"}
SETTINGS_FIELDS = {"size", "batch_size", "threads", "rounds", "warmup_batches",
                   "interpolation", "dtype", "color_mode", "dct_scaling", "loaders"}
SET_FIELDS = {"name", "title", "path", "n_images", "description", "reference", "bare",
              "results"}
RESULT_FIELDS = {"loader", "name", "label", "threads", "status", "note", "output",
                 "n_images", "n_batches", "rounds_done", "round_seconds", "images_per_s",
                 "ms_per_batch", "speedup", "fraction_of_bare"}


def test_json_has_every_documented_field(tiny_run):
    proc, js, _ = tiny_run
    assert proc.returncode == 0, proc.stderr
    d = json.loads(js.read_text())
    assert set(d) == TOP_FIELDS
    assert d["schema"] == "fastseq-bench/1" and d["interrupted"] is False
    assert set(d["machine"]) == MACHINE_FIELDS
    assert set(d["versions"]) == VERSION_FIELDS
    assert d["versions"]["fastseq"] == fastseq.__version__
    assert d["versions"]["libjpeg_turbo"] == fastseq.info()["libjpeg_turbo"]
    assert set(d["settings"]) == SETTINGS_FIELDS
    assert d["settings"]["size"] == [224, 224] and d["settings"]["batch_size"] == 4
    assert d["fit"] is None
    assert [s["name"] for s in d["sets"]] == ["imagenet"]
    s = d["sets"][0]
    assert set(s) == SET_FIELDS
    assert s["n_images"] == 6
    assert s["reference"] == f"fastseq@{d['settings']['threads']}"
    assert s["bare"] == f"bare@{d['settings']['threads']}"
    assert "ImageNet-like" in s["description"]
    rows = {r["loader"]: r for r in s["results"]}
    assert set(rows) == set(d["settings"]["loaders"])
    for r in rows.values():
        assert set(r) == RESULT_FIELDS, r["loader"]
        if r["name"] == "turbojpeg" and TURBOJPEG_VERSION == "not installed":
            # e.g. the JAX venv: a missing peer is a skipped row (see below)
            assert r["status"] == "skipped" and r["images_per_s"] is None, r
            continue
        assert r["status"] == "ok", r
        assert r["n_images"] == 6 and r["n_batches"] == 2 and r["rounds_done"] == 1
        assert len(r["round_seconds"]) == 1 and r["round_seconds"][0] > 0
        # the figures are consistent with each other
        assert r["images_per_s"] == pytest.approx(6 / r["round_seconds"][0])
        assert r["ms_per_batch"] == pytest.approx(1000 * r["round_seconds"][0] / 2)
        ref = rows[s["reference"]]
        assert r["speedup"] == pytest.approx(ref["images_per_s"] / r["images_per_s"])
    assert rows[s["reference"]]["speedup"] == pytest.approx(1.0)
    assert rows[s["bare"]]["fraction_of_bare"] == pytest.approx(1.0)
    assert rows["pillow"]["fraction_of_bare"] == pytest.approx(
        rows["pillow"]["images_per_s"] / rows[s["bare"]]["images_per_s"])
    assert rows["fastseq@1"]["threads"] == 1 and rows["pillow"]["threads"] == 1


def test_plot_is_a_valid_png(tiny_run):
    proc, _, png = tiny_run
    assert proc.returncode == 0, proc.stderr
    data = png.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 300 and im.height > 200
        # a chart, not a blank canvas: many distinct colours
        assert len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)) > 10
    import matplotlib.image

    assert matplotlib.image.imread(str(png)).ndim == 3


def test_missing_peer_is_reported_and_skipped(cache, tmp_path):
    js = tmp_path / "b.json"
    # Keras is pinned to the TensorFlow backend, so keras-idg needs TensorFlow too
    proc = run_cli("bench", "--cache-dir", cache, *TINY,
                   "--loaders", "fastseq,turbojpeg,keras-ds,keras-idg", "--json", js,
                   KERAS_BACKEND="tensorflow", **{bench.HIDE_ENV: "turbojpeg,tensorflow"})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    # the header says what the loaders found: hidden means not installed
    assert "TensorFlow not installed," in proc.stdout
    assert "PyTurboJPEG not installed," in proc.stdout
    assert f"Keras {KERAS_VERSION}," in proc.stdout
    lines = proc.stdout.splitlines()
    skipped = [l for l in lines if "skipped:" in l]
    assert len(skipped) == 3, proc.stdout
    assert any("PyTurboJPEG" in l and "not installed" in l for l in skipped)
    assert sum("TensorFlow is not installed" in l for l in skipped) == 2
    d = json.loads(js.read_text())
    assert d["versions"]["tensorflow"] is None and d["versions"]["pyturbojpeg"] is None
    n = d["settings"]["threads"]
    rows = {r["loader"]: r for r in d["sets"][0]["results"]}
    assert rows[f"fastseq@{n}"]["status"] == "ok" and rows[f"fastseq@{n}"]["images_per_s"] > 0
    for key in (f"turbojpeg@{n}", f"keras-ds@{n}", "keras-idg"):
        assert rows[key]["status"] == "skipped" and rows[key]["images_per_s"] is None
        assert "not installed" in rows[key]["note"]


def test_user_dir_flat_and_limit(tmp_path):
    """DIR may be a flat folder; non-images are ignored; --limit caps it."""
    rng = np.random.default_rng(0)
    for i in range(5):
        arr = rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / f"p{i}.jpg", quality=90)
    Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "notes.txt").write_text("not an image")
    js = tmp_path / "out.json"
    proc = run_cli("bench", tmp_path, "--loaders", "fastseq,pillow,bare", "--rounds", "1",
                   "--warmup", "0", "--batch-size", "2", "--size", "32x48", "--limit", "4",
                   "--no-progress", "--json", js)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(js.read_text())
    s = d["sets"][0]
    assert s["name"] == "dir" and s["n_images"] == 4
    assert "6 files in a flat folder" in s["description"]
    assert d["settings"]["size"] == [32, 48]
    rows = {r["name"]: r for r in s["results"]}
    assert rows["fastseq"]["status"] == rows["pillow"]["status"] == "ok"
    assert rows["fastseq"]["n_batches"] == 2


def test_ctrl_c_stops_cleanly_and_prints_what_was_measured(cache, tmp_path):
    js = tmp_path / "c.json"
    args = [sys.executable, "-m", "fastseq", "bench", "--cache-dir", str(cache),
            "--n-imagenet", "6", "--n-large", "0", "--rounds", "100000", "--warmup", "0",
            "--batch-size", "4", "--no-progress", "-v", "--loaders", "fastseq,pillow",
            "--json", str(js)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    try:
        deadline = time.monotonic() + 60
        seen = []
        for line in proc.stderr:       # -v prints one line per measured round
            seen.append(line)
            if "round 2/" in line or time.monotonic() > deadline:
                break
        assert any("round 2/" in l for l in seen), "".join(seen)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = "".join(seen) + err
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "interrupted by Ctrl-C" in out
    assert "Pillow per image" in out and "images/s" in out
    d = json.loads(js.read_text())
    assert d["interrupted"] is True
    for r in d["sets"][0]["results"]:
        assert r["rounds_done"] >= 1 and r["images_per_s"] > 0


@pytest.mark.parametrize("args, message", [
    (["/nonexistent/fastseq-images"], "no such directory: /nonexistent/fastseq-images"),
    (["--size", "abc"], "bad --size 'abc'"),
    (["--size", "0"], "bad --size '0'"),
    (["--size", "224x"], "bad --size '224x'"),
    (["--loaders", "fastseq,nope"], "unknown loader 'nope'"),
    (["--loaders", "pillow@2"], "loader 'pillow' runs on one thread"),
    (["--loaders", "fastseq@zero"], "bad thread count in 'fastseq@zero'"),
    (["--rounds", "0"], "--rounds must be >= 1"),
    (["--epochs", "1"], "--epochs must be >= 2"),
    (["--batch-size", "-3"], "--batch-size must be >= 1"),
    (["--threads", "0"], "--threads must be between 1 and 256"),
    (["--rounds", "many"], "argument --rounds: invalid int value: 'many'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--json", "/nonexistent/dir/out.json"], "--json: folder does not exist"),
])
def test_bad_arguments_give_one_line_and_exit_2(args, message, capsys):
    assert bench.bench_main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastseq bench: error: ")
    assert message in lines[0]


def test_bad_dirs(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    no_images = tmp_path / "texts"
    (no_images / "class_a").mkdir(parents=True)
    (no_images / "class_a" / "readme.txt").write_text("hello")
    a_file = tmp_path / "file.jpg"
    a_file.write_bytes(b"\xff\xd8")
    cases = [(empty, "directory is empty"), (no_images, "no image files"),
             (a_file, "not a directory")]
    for d, message in cases:
        assert bench.bench_main([str(d), "--no-progress"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1, err
        assert message in err and str(d) in err


def test_cli_errors_through_the_real_command(tmp_path):
    """The same checks through `python -m fastseq`: exit status and no traceback."""
    proc = run_cli("bench", tmp_path / "missing", timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"fastseq bench: error: no such directory: {tmp_path / 'missing'}"
    assert proc.stdout == ""
    proc = run_cli("frobnicate", timeout=60)
    assert proc.returncode == 2 and "unknown command 'frobnicate'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_info_command():
    proc = run_cli("info", timeout=60)
    assert proc.returncode == 0, proc.stderr
    inf = fastseq.info()
    assert f"fastseq        {inf['fastseq']}" in proc.stdout
    assert f"libjpeg-turbo  {inf['libjpeg_turbo']}" in proc.stdout
    assert "SIMD active: " + ("yes" if inf["simd"] else "no") in proc.stdout
    assert f"threads        {inf['threads']}" in proc.stdout
    assert f"resize SIMD    {inf['resize_simd']} " in proc.stdout
    assert f"TensorFlow     {TF_VERSION}\n" in proc.stdout
    assert f"Keras          {KERAS_VERSION}\n" in proc.stdout
    assert f"PyTurboJPEG    {TURBOJPEG_VERSION}\n" in proc.stdout
    proc = run_cli("info", timeout=60, FASTSEQ_NUM_THREADS="1",
                   **{bench.HIDE_ENV: "tensorflow,keras,turbojpeg"})
    assert "threads        1 " in proc.stdout
    assert "TensorFlow     not installed\n" in proc.stdout
    assert "Keras          not installed\n" in proc.stdout
    assert "PyTurboJPEG    not installed\n" in proc.stdout


# ---------------------------------------------------------------------------
# Engine pieces.

def test_parse_size_and_loaders():
    assert bench.parse_size("224") == (224, 224)
    assert bench.parse_size("160x224") == (160, 224)
    assert bench.parse_size("160,224") == (160, 224)
    for bad in ("", "x", "-1", "1x2x3", "65537", "2.5"):
        with pytest.raises(bench.BenchError):
            bench.parse_size(bad)
    keys = [l.key for l in bench.parse_loaders("fastseq,fastseq@1,pillow,bare@3,fastseq", 4)]
    assert keys == ["fastseq@4", "fastseq@1", "pillow", "bare@3"]
    assert [l.key for l in bench.parse_loaders("all", 2)] == [
        "fastseq@2", "fastseq@1", "fastseq-df@2", "pillow", "keras-idg", "keras-ds@2",
        "turbojpeg@2", "bare@2", "bare@1"]


def _row(key, ips, threads):
    name = key.split("@")[0]
    loader = bench.Loader(bench.LOADERS[name], threads)
    r = stats.new_result(loader)
    r.update(n_images=100, n_batches=4, round_seconds=[100 / ips * f for f in (0.9, 3.0, 1.0)])
    return r


def test_medians_speedups_and_fractions():
    rows = [_row("fastseq", 400, 2), _row("fastseq", 220, 1), _row("pillow", 100, 1),
            _row("bare", 500, 2), _row("bare", 250, 1)]
    sr = dict(results=rows, reference=None, bare=None)
    stats.finish_set(sr, threads=2)
    by = {r["loader"]: r for r in rows}
    assert sr["reference"] == "fastseq@2" and sr["bare"] == "bare@2"
    assert by["fastseq@2"]["images_per_s"] == pytest.approx(400)   # the median round
    assert by["fastseq@2"]["ms_per_batch"] == pytest.approx(1000 * 0.25 / 4)
    assert by["pillow"]["speedup"] == pytest.approx(4.0)
    assert by["fastseq@1"]["speedup"] == pytest.approx(400 / 220)
    # the bare decode on the same number of threads is the limit of each row
    assert by["fastseq@2"]["fraction_of_bare"] == pytest.approx(0.8)
    assert by["fastseq@1"]["fraction_of_bare"] == pytest.approx(220 / 250)
    assert by["pillow"]["fraction_of_bare"] == pytest.approx(100 / 250)
    text = report.format_set(dict(sr, title="T", path="/p", n_images=100, description=""))
    assert "4.00x faster" in text and "80%" in text


def test_failed_and_skipped_rows_do_not_break_the_report():
    rows = [_row("fastseq", 400, 2), _row("turbojpeg", 1, 2)]
    rows[1].update(status="skipped", note="PyTurboJPEG is not installed", round_seconds=[])
    sr = dict(results=rows, reference=None, bare=None, title="T", path="/p", n_images=100,
              description="")
    stats.finish_set(sr, threads=2)
    assert sr["bare"] is None and rows[0]["fraction_of_bare"] is None
    assert rows[1]["images_per_s"] is None and rows[1]["speedup"] is None
    assert "skipped: PyTurboJPEG is not installed" in report.format_set(sr)


# ---------------------------------------------------------------------------
# The default dataset.

def test_default_dataset_contents(tmp_path):
    ds = datasets.ensure_default_dataset(tmp_path, n_imagenet=24, n_large=0, progress=False)
    assert ds["large"] is None and os.path.isfile(ds["manifest"])
    files = sorted(pathlib.Path(ds["imagenet"]).rglob("*.jpg"))
    assert len(files) == 24
    assert len({f.parent.name for f in files}) == 10          # class folders
    man = json.loads(pathlib.Path(ds["manifest"]).read_text())
    assert man["complete"] is True and len(man["files"]) == 24
    kinds = set()
    for e in man["files"]:
        with Image.open(os.path.join(ds["root"], e["file"])) as im:
            assert im.format == "JPEG"
            assert im.size == (e["width"], e["height"])
            assert 300 <= min(im.size) <= 500
            assert (im.mode == "L") == (e["kind"] == "grayscale")
            assert bool(im.info.get("progressive")) == e["progressive"]
            if im.mode != "L":
                # Pillow: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0
                from PIL import JpegImagePlugin

                ss = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}[JpegImagePlugin.get_sampling(im)]
                assert ss == e["subsampling"]
        assert 75 <= e["quality"] <= 95
        kinds.add(e["kind"])
    assert {"baseline-420", "baseline-444", "grayscale", "progressive-420"} <= kinds
    # photo-like, not noise: compresses to a few bits per pixel
    bpp = datasets.summarize_dataset(ds)["imagenet"]["bits_per_pixel"]
    assert 0.8 < bpp < 5, bpp
    text = datasets.describe_dataset(ds)
    assert "ImageNet-like: 24 JPEGs in 10 class folders" in text


def test_default_dataset_is_deterministic_and_reused(tmp_path):
    a = datasets.ensure_default_dataset(tmp_path / "a", n_imagenet=5, n_large=0, progress=False)
    b = datasets.ensure_default_dataset(tmp_path / "b", n_imagenet=5, n_large=0, progress=False)
    fa = sorted(pathlib.Path(a["imagenet"]).rglob("*.jpg"))
    fb = sorted(pathlib.Path(b["imagenet"]).rglob("*.jpg"))
    assert [f.relative_to(a["imagenet"]) for f in fa] == [f.relative_to(b["imagenet"]) for f in fb]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(fa, fb))
    mtimes = [f.stat().st_mtime_ns for f in fa]
    again = datasets.ensure_default_dataset(tmp_path / "a", n_imagenet=5, n_large=0,
                                            progress=False)
    assert again == a
    assert [f.stat().st_mtime_ns for f in fa] == mtimes          # not regenerated


def test_half_written_dataset_is_never_reused(tmp_path):
    ds = datasets.ensure_default_dataset(tmp_path, n_imagenet=4, n_large=0, progress=False)
    victim = sorted(pathlib.Path(ds["imagenet"]).rglob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:100])                # truncated by a crash
    ds2 = datasets.ensure_default_dataset(tmp_path, n_imagenet=4, n_large=0, progress=False)
    assert ds2 == ds
    with Image.open(victim) as im:
        im.load()                                                # whole again
    # a folder with the final name but no manifest is regenerated, too
    os.remove(ds["manifest"])
    ds3 = datasets.ensure_default_dataset(tmp_path, n_imagenet=4, n_large=0, progress=False)
    assert os.path.isfile(ds3["manifest"])
    # a killed generator's temporary folder is cleaned up, never used
    stale = tmp_path / ".tmp-default-v1-s0-in4-lg0-999999999-1"
    stale.mkdir()
    datasets.ensure_default_dataset(tmp_path, n_imagenet=3, n_large=0, progress=False)
    assert not stale.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_large_set_is_6_to_12_megapixels(tmp_path):
    ds = datasets.ensure_default_dataset(tmp_path, n_imagenet=0, n_large=1, progress=False)
    assert ds["imagenet"] is None
    (f,) = pathlib.Path(ds["large"]).glob("*.jpg")
    with Image.open(f) as im:
        assert 6e6 <= im.width * im.height <= 12e6
    assert "Large photos: 1 JPEGs" in datasets.describe_dataset(ds)


def test_dataset_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="not both 0"):
        datasets.ensure_default_dataset(tmp_path, n_imagenet=0, n_large=0)
    with pytest.raises(ValueError):
        datasets.ensure_default_dataset(tmp_path, n_imagenet=-1)
    assert bench.bench_main(["--cache-dir", str(tmp_path), "--n-imagenet", "0",
                             "--n-large", "0", "--no-progress"]) == 2


def test_fit_is_skipped_with_a_note_when_fitbench_is_missing(cache, tmp_path):
    js = tmp_path / "f.json"
    proc = run_cli("bench", "--cache-dir", cache, *TINY, "--loaders", "fastseq", "--fit",
                   "--json", js, **{bench.HIDE_ENV: "fastseq.bench.fitbench"})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "model.fit benchmark skipped: fastseq.bench.fitbench is not available" in proc.stdout
    fit = json.loads(js.read_text())["fit"]
    assert fit["status"] == "skipped" and fit["result"] is None and fit["note"]


def _documented_fit_result(data_dir, size, batch_size, epochs):
    """A run_fit_benchmark result exactly as its docstring documents it (and
    as test_fit_result_shape_matches_a_real_run checks against a real run),
    with made-up figures: 6 images, every loader ran but tf_dataset, which
    was skipped with the model_only floor (no TensorFlow), on JAX."""
    n = 6
    spe = {"fastseq": 1.5, "fastseq_w2": 1.8, "fastseq_bilinear": 1.6, "fastseq_sequence": 2.0,
           "seed_pil_w1": 6.0, "seed_pil_w2": 4.5, "keras_legacy": 7.5, "ready_batches": 1.2}

    def entry(name):
        return dict(description=fitbench.LOADERS.get(name) or fitbench.FLOORS[name],
                    seconds_per_epoch=spe[name], images_per_s=n / spe[name],
                    round_seconds_per_epoch=[spe[name]],
                    epoch_seconds=[[3 * spe[name]] + [spe[name]] * (epochs - 1)])

    why = "TensorFlow is not installed (No module named 'tensorflow')"
    others = ("seed_pil_w1", "seed_pil_w2", "keras_legacy", "tf_dataset")
    return {
        "data_dir": os.path.abspath(data_dir), "n_images": n, "n_classes": 3,
        "size": list(size), "batch_size": batch_size, "epochs": epochs,
        "steps_per_epoch": 2, "cpus": 2, "rounds": 1, "load_average": [1.0, 0.5, 0.25],
        "model": "Conv2D(8, 3, strides=4, relu) -> GlobalAveragePooling2D -> Dense(3, softmax) "
                 f"on {size[0]}x{size[1]}x3, SGD",
        "versions": {"fastseq": fastseq.__version__, "keras": "3.15.1", "keras_backend": "jax",
                     "numpy": np.__version__, "pillow": PIL.__version__, "python": "3.11.7",
                     "libjpeg_turbo": fastseq.info()["libjpeg_turbo"]},
        "prefetch": True,
        "loaders": {k: entry(k) for k in fitbench.LOADERS if k in spe},
        "floors": {"ready_batches": entry("ready_batches")},
        "skipped": {"tf_dataset": f"{why}: {fitbench.NEEDS_TENSORFLOW['tf_dataset']}",
                    "model_only": f"{why}: {fitbench.NEEDS_TENSORFLOW['model_only']}"},
        "speedup": {f"vs_{o}": spe[o] / spe["fastseq"] if o in spe else None
                    for o in ("fastseq_w2",) + others},
        "speedup_bilinear": {f"vs_{o}": spe[o] / spe["fastseq_bilinear"] if o in spe else None
                             for o in others},
        "input_only": {"fastseq": 0.4, "fastseq_bilinear": 0.5},
    }


def _table(text):
    """The rows of a Markdown table in `text`: first cell -> other cells."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and line.endswith(" |"):
            cells = [c.strip() for c in line[2:-2].split(" | ")]
            rows[cells[0]] = cells[1:]
    return rows


def test_fit_calls_run_fit_benchmark_with_the_documented_signature(cache, monkeypatch, capsys):
    calls = []

    def run_fit_benchmark(data_dir, *, size, batch_size, epochs, progress):
        calls.append(dict(data_dir=data_dir, size=size, batch_size=batch_size,
                          epochs=epochs, progress=progress))
        return _documented_fit_result(data_dir, size, batch_size, epochs)

    # only the run is faked: the report goes through the real formatter
    monkeypatch.setattr(fitbench, "run_fit_benchmark", run_fit_benchmark)
    monkeypatch.delenv(bench.HIDE_ENV, raising=False)
    rc = bench.bench_main(["--cache-dir", str(cache), *TINY, "--loaders", "fastseq",
                           "--fit", "--epochs", "3", "--size", "96x128"])
    out = capsys.readouterr().out
    assert rc == 0
    (call,) = calls
    assert call["data_dir"].endswith("imagenet") and os.path.isdir(call["data_dir"])
    assert call == dict(data_dir=call["data_dir"], size=(96, 128), batch_size=4, epochs=3,
                        progress=False)
    fit = out[out.index("model.fit benchmark (seconds per epoch):"):].splitlines()
    assert fit[1] == ("  6 images, 96x128, batch 4, 3 epochs (epoch 1 excluded); Keras 3.15.1 "
                      "on jax; model: Conv2D(8, 3, strides=4, relu) -> GlobalAveragePooling2D "
                      "-> Dense(3, softmax) on 96x128x3, SGD")
    rows = _table(out)
    L, F = fitbench.LOADERS, fitbench.FLOORS
    assert rows["loader"] == ["s/epoch", "images/s", "vs fastseq"]
    assert rows[L["fastseq"]] == ["1.500", "4", "1.00x"]
    assert rows[L["fastseq_w2"]] == ["1.800", "3", "1.20x"]
    assert rows[L["seed_pil_w1"]] == ["6.000", "1", "4.00x"]
    assert rows[L["keras_legacy"]] == ["7.500", "1", "5.00x"]
    assert rows[F["ready_batches"]] == ["1.200", "5", "0.80x"]
    assert rows[L["tf_dataset"]] == rows[F["model_only"]] == ["skipped", "-", "-"]
    assert len(rows) == 1 + 7 + 1 + 2
    assert ("  skipped tf_dataset: TensorFlow is not installed (No module named 'tensorflow'): "
            "image_dataset_from_directory needs tf.data") in fit
    assert ("  fastseq with workers=2 takes 1.20x the time per epoch of workers=1 "
            "(fastseq's prefetch on)") in fit


def _shape(value):
    """The JSON shape of `value`: dicts' keys (recursively) and leaf types,
    with int figures counted as float and None as any type."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    if value is None:
        return "any"
    return "float" if isinstance(value, (int, float)) and not isinstance(value, bool) else \
        type(value).__name__


@pytest.fixture(scope="module")
def real_fit(cache):
    """run_fit_benchmark itself on the tiny generated set: 6 images at 32x32,
    2 epochs, fastseq at workers=1 and 2, and the floors."""
    ds = datasets.ensure_default_dataset(cache, n_imagenet=6, n_large=0, progress=False)
    return fitbench.run_fit_benchmark(ds["imagenet"], size=32, batch_size=4, epochs=2,
                                      loaders=["fastseq", "fastseq_w2"], progress=False)


def test_fit_result_shape_matches_a_real_run(real_fit):
    fake = _documented_fit_result("/d", (32, 32), 4, 2)
    real = real_fit
    assert set(real) == set(fake)
    for group in ("loaders", "floors"):
        for entry in real[group].values():
            assert _shape(entry) == _shape(fake["loaders"]["fastseq"])
    assert set(real["speedup"]) == set(fake["speedup"])
    assert set(real["speedup_bilinear"]) == set(fake["speedup_bilinear"])
    # the fake's versions are a TensorFlow-less run's
    assert set(real["versions"]) - {"tensorflow"} == set(fake["versions"])
    for key in ("data_dir", "n_images", "n_classes", "size", "batch_size", "epochs",
                "steps_per_epoch", "cpus", "rounds", "load_average", "model", "prefetch"):
        assert _shape(real[key]) in (_shape(fake[key]), "any"), key
    assert _shape(real["input_only"]) == {"fastseq": "float"}
    assert all(isinstance(v, str) for v in real["skipped"].values())


def test_fit_formatter_on_a_real_run(real_fit):
    res = real_fit
    assert res["n_images"] == 6 and res["size"] == [32, 32] and res["epochs"] == 2
    assert list(res["loaders"]) == ["fastseq", "fastseq_w2"]
    for entry in list(res["loaders"].values()) + list(res["floors"].values()):
        assert len(entry["epoch_seconds"]) == 1 and len(entry["epoch_seconds"][0]) == 2
        assert entry["seconds_per_epoch"] == entry["epoch_seconds"][0][1] > 0
        assert entry["images_per_s"] == pytest.approx(6 / entry["seconds_per_epoch"])
    assert res["speedup"]["vs_fastseq_w2"] == pytest.approx(
        res["loaders"]["fastseq_w2"]["seconds_per_epoch"]
        / res["loaders"]["fastseq"]["seconds_per_epoch"])
    assert res["speedup"]["vs_seed_pil_w1"] is None           # not run
    text = report.format_fit(dict(status="ok", note=None, result=res))
    rows = _table(text)
    ours = res["loaders"]["fastseq"]["seconds_per_epoch"]
    for group in ("loaders", "floors"):
        for name, entry in res[group].items():
            desc = fitbench.LOADERS.get(name) or fitbench.FLOORS[name]
            assert rows[desc] == [f"{entry['seconds_per_epoch']:.3f}",
                                  f"{entry['images_per_s']:.0f}",
                                  f"{entry['seconds_per_epoch'] / ours:.2f}x"]
    for name in res["skipped"]:
        desc = fitbench.LOADERS.get(name) or fitbench.FLOORS[name]
        assert rows[desc] == ["skipped", "-", "-"]
        assert f"  skipped {name}: {res['skipped'][name]}" in text.splitlines()
    assert len(rows) == 1 + 2 + len(res["floors"]) + len(res["skipped"])
    assert f"Keras {res['versions']['keras']} on {res['versions']['keras_backend']};" in text
    assert f"workers=2 takes {res['speedup']['vs_fastseq_w2']:.2f}x the time" in text


def _non_tf_backend():
    return next((b for b in ("jax", "torch") if importlib.util.find_spec(b)), None)


def test_fit_runs_without_tensorflow(cache, tmp_path):
    """--fit with TensorFlow hidden: Keras runs on JAX (or torch) when one is
    installed, and the runs that need tf.data are skipped with a line each;
    with no other backend, the fit is skipped with one line saying why."""
    backend = _non_tf_backend()
    js = tmp_path / "f.json"
    proc = run_cli("bench", "--cache-dir", cache, *TINY, "--loaders", "fastseq", "--fit",
                   "--size", "32", "--json", js, timeout=600,
                   KERAS_BACKEND=backend or "jax", **{bench.HIDE_ENV: "tensorflow"})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    d = json.loads(js.read_text())
    fit = d["fit"]
    assert d["versions"]["tensorflow"] is None
    if backend is None:
        assert fit["status"] == "skipped" and fit["result"] is None
        assert fit["note"].startswith("JAX is not installed, and Keras is set to use it")
        assert f"model.fit benchmark skipped: {fit['note']}" in proc.stdout.splitlines()
        return
    assert fit["status"] == "ok", fit["note"]
    res = fit["result"]
    assert res["versions"]["keras_backend"] == backend
    assert "tensorflow" not in res["versions"]
    assert set(res["skipped"]) == {"tf_dataset", "model_only"}
    assert list(res["loaders"]) == [n for n in fitbench.LOADERS if n != "tf_dataset"]
    assert list(res["floors"]) == ["ready_batches"]
    assert res["speedup"]["vs_tf_dataset"] is None
    lines = proc.stdout.splitlines()
    for name, why in res["skipped"].items():
        assert why.startswith("TensorFlow is not installed")
        assert why.endswith(fitbench.NEEDS_TENSORFLOW[name])
        assert f"  skipped {name}: {why}" in lines


def _class_tree(root, n_classes=2, per_class=3):
    rng = np.random.default_rng(5)
    for c in range(n_classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, (30 + i, 40, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / f"c{c}" / f"{i}.jpg", quality=90)


@pytest.mark.parametrize("which", ["--cache", "--augment"])
def test_a_bad_image_is_named_by_its_own_path(tmp_path, which):
    """The cache and augmentation benchmarks read links to the --limit
    images in a temporary folder; a file that cannot be decoded is named by
    the user's path in the one-line error, not by its link."""
    _class_tree(tmp_path / "img")
    bad = tmp_path / "img" / "c1" / "0.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    proc = run_cli("bench", tmp_path / "img", which, "--limit", "6", "--size", "24x32",
                   "--batch-size", "2", "--no-progress", timeout=300)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("fastseq bench: error: cannot decode image "), last
    assert repr(str(bad)) in last and "truncated" in last and "fastseq-bench-" not in last


def test_images_for_maps_every_failure_back_to_the_users_file(tmp_path):
    """augbench.images_for: the error and each failure it lists name the
    user's files, with the code, reason and index kept."""
    import glob

    from fastseq.bench import augbench

    _class_tree(tmp_path / "img")
    bad = [tmp_path / "img" / "c0" / "1.jpg", tmp_path / "img" / "c1" / "2.jpg"]
    for b in bad:
        b.write_bytes(b.read_bytes()[:300])
    with pytest.raises(fastseq.ImageDecodeError) as ei:
        with augbench.images_for(tmp_path / "img", 6, "fastseq-test-") as (_, data_dir, n):
            assert n == 6
            links = sorted(glob.glob(os.path.join(data_dir, "*", "*")))
            fastseq.load_batch(links, (8, 8))
    e = ei.value
    assert e.source == str(bad[0]) and e.code == "truncated" and e.index == 1
    assert [(f.index, f.source, f.code) for f in e.failures] == [
        (1, str(bad[0]), "truncated"), (5, str(bad[1]), "truncated")]
    assert str(e).startswith(f"cannot decode image {str(bad[0])!r}: ")
    assert "(and 1 more failed image(s) in this batch)" in str(e)


def test_augment_runs_the_augmentation_benchmark(tmp_path):
    """`bench --augment DIR`: the three loaders of fastseq.bench.augbench on
    the same --limit images, the section-5 targets, the JSON (figures never
    asserted)."""
    _class_tree(tmp_path / "img")
    js = tmp_path / "aug.json"
    proc = run_cli("bench", tmp_path / "img", "--augment", "--limit", "4", "--rounds", "2",
                   "--size", "24x32", "--batch-size", "3", "--no-progress", "--json", js,
                   timeout=300)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(js.read_text())
    assert d["n_images"] == 4 and d["size"] == [24, 32] and d["rounds"] == 2
    assert d["warp_simd"] in ("avx2", "none") and d["fit"] is None
    for name in ("fastseq_aug", "fastseq", "keras_aug"):
        assert len(d["loading"]["seconds"][name]) == 2 and d["loading"]["images_per_s"][name] > 0
    assert [t["minimum"] for t in d["targets"]] == [10.0, 0.8]
    for t in d["targets"]:
        assert f"{t['target']}: {t['ratio']:.2f}x" in proc.stdout
    assert proc.stdout.count("PASS") + proc.stdout.count("MISS") == 2


def test_augment_without_keras_or_images_is_one_line_and_exit_2(tmp_path):
    _class_tree(tmp_path / "img")
    proc = run_cli("bench", tmp_path / "img", "--augment", "--no-progress",
                   **{bench.HIDE_ENV: "keras"})
    assert proc.returncode == 2
    assert "--augment compares with Keras' legacy ImageDataGenerator" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(flat / "a.jpg")
    proc = run_cli("bench", flat, "--augment", "--no-progress")
    assert proc.returncode == 2 and "no images in class folders" in proc.stderr


def test_flow_runs_the_flow_benchmark(tmp_path):
    """`bench --flow`: fastseq's and Keras' flow with the recipe on the
    generated uint8 array (--limit samples), the section-6 target, the JSON
    (figures never asserted); no dataset is generated."""
    js = tmp_path / "flow.json"
    proc = run_cli("bench", "--flow", "--limit", "40", "--rounds", "2", "--batch-size", "16",
                   "--no-progress", "--json", js, "--cache-dir", tmp_path / "cache",
                   timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "cache").exists()
    d = json.loads(js.read_text())
    assert d["shape"] == [40, 32, 32, 3] and d["batch_size"] == 16 and d["rounds"] == 2
    for name in ("fastseq_flow", "keras_flow"):
        assert len(d["seconds"][name]) == 2 and d["images_per_s"][name] > 0
    [t] = d["targets"]
    assert t["minimum"] == 10.0 and f"{t['target']}: {t['ratio']:.2f}x" in proc.stdout
    proc = run_cli("bench", "--flow", "--augment", "--no-progress")
    assert proc.returncode == 2 and "--flow runs on its own generated array" in proc.stderr
    proc = run_cli("bench", "--flow", "--no-progress", **{bench.HIDE_ENV: "keras"})
    assert proc.returncode == 2 and "--flow compares with Keras' legacy" in proc.stderr


def test_dataframe_loaders(tmp_path):
    """fastseq-df and keras-df read the same images as the other loaders."""
    pytest.importorskip("pandas", reason=PANDAS_MISSING)
    _class_tree(tmp_path / "img")
    js = tmp_path / "df.json"
    proc = run_cli("bench", tmp_path / "img", "--loaders", "fastseq-df,keras-df,fastseq",
                   "--rounds", "1", "--warmup", "0", "--size", "24", "--batch-size", "3",
                   "--threads", "2", "--no-progress", "--json", js, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {r["loader"]: r for r in json.loads(js.read_text())["sets"][0]["results"]}
    for key in ("fastseq-df@2", "keras-df", "fastseq@2"):
        assert rows[key]["status"] == "ok" and rows[key]["images_per_s"] > 0, rows[key]


def test_dataframe_loaders_without_pandas_are_skipped(tmp_path):
    """Without pandas the flow_from_dataframe rows are skipped, saying so,
    like any missing peer, and not reported as fastseq failures."""
    _class_tree(tmp_path / "img")
    js = tmp_path / "df.json"
    proc = run_cli("bench", tmp_path / "img", "--loaders", "fastseq-df,keras-df,fastseq",
                   "--rounds", "1", "--warmup", "0", "--size", "24", "--batch-size", "3",
                   "--threads", "2", "--no-progress", "--json", js, timeout=300,
                   **{bench.HIDE_ENV: "pandas"})
    assert proc.returncode == 0, proc.stderr
    assert "failed" not in proc.stdout, proc.stdout
    rows = {r["loader"]: r for r in json.loads(js.read_text())["sets"][0]["results"]}
    for key in ("fastseq-df@2", "keras-df"):
        assert rows[key]["status"] == "skipped" and rows[key]["images_per_s"] is None, rows[key]
        assert rows[key]["note"].startswith("pandas is not installed"), rows[key]
    assert rows["fastseq@2"]["status"] == "ok" and rows["fastseq@2"]["images_per_s"] > 0
    skipped = [l for l in proc.stdout.splitlines() if "skipped:" in l]
    assert len(skipped) == 2 and all("pandas is not installed" in l for l in skipped), skipped


@pytest.mark.parametrize("fmt,pil_format,modes", [
    ("png", "PNG", {"rgb": "RGB", "rgba": "RGBA", "gray": "L", "palette": "P",
                    "gray16": "I;16"}),
    ("webp", "WEBP", {"lossy-rgb": "RGB", "lossy-rgba": "RGBA", "lossless-rgb": "RGB",
                      "lossless-rgba": "RGBA"}),
])
def test_format_datasets(tmp_path, fmt, pil_format, modes):
    """The PNG and WebP benchmark sets: ImageNet-like sizes, each file the
    colour type its manifest says, class folders, reused once made, and
    decoded by fastseq exactly as by Pillow."""
    folder = datasets.ensure_format_dataset(fmt, tmp_path, n=12, progress=False, workers=1)
    man = json.loads((pathlib.Path(folder).parent / datasets.MANIFEST).read_text())
    assert man["complete"] and len(man["files"]) == 12
    kinds = set()
    for e in man["files"]:
        path = os.path.join(os.path.dirname(folder), e["file"])
        with Image.open(path) as im:
            assert im.format == pil_format and im.size == (e["width"], e["height"])
            assert 300 <= min(im.size) <= 500
            assert im.mode == modes[e["kind"]], (e["kind"], im.mode)
            want = np.asarray(im.convert("RGB"))
        np.testing.assert_array_equal(fastseq.decode_image(path, "rgb"), want)
        kinds.add(e["kind"])
    assert len(kinds) >= 2
    items = bench.list_images(folder, extensions=(f".{fmt}",))
    assert len(items) == 12 and len({c for _, c in items}) == 10
    assert f"{fmt.upper()}: 12 images" in datasets.describe_format_dataset(folder)
    mtimes = [p.stat().st_mtime_ns for p in sorted(pathlib.Path(folder).rglob("*.*"))]
    assert datasets.ensure_format_dataset(fmt, tmp_path, n=12, progress=False) == folder
    assert [p.stat().st_mtime_ns for p in sorted(pathlib.Path(folder).rglob("*.*"))] == mtimes


def test_cache_runs_the_cache_benchmark(tmp_path):
    """`bench --cache DIR`: fastseq.bench.cachebench's loaders, a second
    process on the disk cache, the section-3 targets and the JSON (figures
    never asserted; the cache statistics are: epoch 1 stores, later epochs hit)."""
    _class_tree(tmp_path / "img")
    js = tmp_path / "cache.json"
    proc = run_cli("bench", tmp_path / "img", "--cache", "--limit", "5", "--size", "24x32",
                   "--batch-size", "2", "--no-progress", "--json", js, timeout=300)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(js.read_text())
    assert d["n_images"] == 5 and d["size"] == [24, 32] and d["epochs"] == 4 and d["fit"] is None
    for name in ("uncached", "disk", "memory", "aug", "aug_disk"):
        assert len(d["loading"]["seconds"][name]) == 4
    stats = d["loading"]["cache_stats"]
    assert stats["disk"] == {"absent": 5, "stored": 5, "hit": 15}
    assert stats["memory"] == {"stored": 5, "hit": 15}
    rounds = d["loading"]["second_process"]
    assert [(len(r["first"]), len(r["second"])) for r in rounds] == [(3, 2)] * 5
    assert [len(c) for c in d["loading"]["second_process_cold"]] == [2] * 3
    assert "round 5: first run epochs 1-3 images/s: " in proc.stdout
    assert [t["minimum"] for t in d["targets"]] == [10.0, 10.0, 10.0, 3.0, 0.9]
    for t in d["targets"]:
        assert f"{t['target']}: {t['ratio']:.2f}x" in proc.stdout
    assert proc.stdout.count("PASS") + proc.stdout.count("MISS") == 5
    assert "second run's epoch 1 vs its own epoch 2 (median of the rounds; not a target): " \
        in proc.stdout
    proc = run_cli("bench", tmp_path / "img", "--cache", "--augment", "--no-progress")
    assert proc.returncode == 2 and "separate benchmarks" in proc.stderr


def test_formats_runs_the_png_and_webp_benchmark(tmp_path):
    """`bench --formats`: the generated sets (made under --cache-dir, --limit
    images each), fastseq at 2 and 1 threads and Pillow on both, Keras'
    image_dataset_from_directory on PNG, issue 14's targets in the report
    and the JSON (figures never asserted)."""
    js = tmp_path / "formats.json"
    proc = run_cli("bench", "--formats", "--limit", "6", "--rounds", "1", "--warmup", "0",
                   "--threads", "2", "--batch-size", "3", "--no-progress", "--json", js,
                   "--cache-dir", tmp_path / "data", timeout=600)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(js.read_text())
    assert [r["sets"][0]["name"] for r in d["runs"]] == ["png", "webp"]
    loaders = [{x["loader"] for x in r["sets"][0]["results"]} for r in d["runs"]]
    assert {"fastseq@2", "fastseq@1", "pillow"} <= loaders[0] and "keras-ds@2" in loaders[0]
    assert {"fastseq@2", "fastseq@1", "pillow"} == loaders[1]
    assert [t["minimum"] for t in d["targets"]] == [2.5, 1.5, 1.8, 2.0]
    for t in d["targets"]:
        assert t["result"] in ("PASS", "MISS", None)
    assert "Targets (issue 14, section 4)" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["png-v1-s0-n6",
                                                                    "webp-v1-s0-n6"]
    proc = run_cli("bench", "--formats", "webp", "--limit", "6", "--rounds", "1",
                   "--warmup", "0", "--threads", "2", "--batch-size", "3", "--no-progress",
                   "--cache-dir", tmp_path / "data", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "WebP: fastseq (2 threads) / Pillow per image" in proc.stdout
    assert "PNG:" not in proc.stdout.split("Targets")[1]


@pytest.mark.parametrize("args,message", [
    (["--formats", "gif"], "--formats takes png and/or webp, got 'gif'"),
    (["--formats", "--augment"], "--formats runs on its own generated PNG and WebP sets"),
    (["--formats", "--limit", "0"], "--limit must be >= 1, got 0"),
    (["--formats", "png", "--fit"], "no DIR, --augment, --flow, --cache or --fit"),
])
def test_formats_argument_errors(args, message):
    proc = run_cli("bench", *args, "--no-progress")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_formats_with_an_unusable_cache_dir_is_a_clear_error(tmp_path):
    """--cache-dir naming a file: exit 2 and one line naming it, no traceback."""
    f = tmp_path / "not_a_dir"
    f.write_text("x")
    proc = run_cli("bench", "--formats", "png", "--limit", "3", "--no-progress",
                   "--cache-dir", f)
    assert proc.returncode == 2, proc.stderr
    assert "cannot write the PNG/WebP benchmark sets" in proc.stderr and str(f) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cache_fit_rounds_are_interleaved_and_ratios_paired(monkeypatch):
    """cachebench.run_fit: FIT_ROUNDS rounds of one process per loader
    (alternate rounds reversed, the seed's Sequence only in the first),
    every fastseq process on an empty cache directory of its own; a
    process's s/epoch is the mean of its later epochs (a stalled epoch
    counts), and each fit target is the median of its rounds' ratios.
    fit_in_child is replaced by a recorder whose seconds are made up."""
    from fastseq.bench import cachebench

    calls = []
    # per loader and round: a process's later epochs are m, m, m + stall
    later = {"fastseq_cache": [(0.5, 0.0), (0.6, 0.0), (0.4, 0.3)],
             "ready_batches": [(0.45, 0.0), (0.48, 0.0), (0.47, 0.0)],
             "ready_batches_keras": [(1.0, 0.0), (0.9, 0.0), (0.8, 0.0)],
             "seed_pil_w1": [(6.0, 0.0)],
             "tf_dataset_cache": [(0.4, 0.6), (0.7, 0.0), (0.5, 0.6)],
             "tf_dataset_cache_shuffled": [(1.0, 0.0), (0.9, 0.0), (0.75, 0.0)],
             "model_only": [(0.45, 0.0), (0.54, 0.0), (0.4, 0.0)]}

    def fake(name, data_dir, size, batch_size, epochs, *, cache_dir=None, maker=None,
             timeout=None):
        calls.append((name, epochs, cache_dir))
        k = sum(1 for c in calls if c[0] == name) - 1
        m, stall = later[name][k]
        return {"seconds": [9.0, m, m, m + stall], "faults": [5, 1, 2, 3]}

    monkeypatch.setattr(fitbench, "fit_in_child", fake)
    monkeypatch.setattr(fitbench, "_tensorflow_missing", lambda: None)
    monkeypatch.setattr(cachebench, "settle_writeback", lambda: calls.append(("sync",)))
    res = cachebench.run_fit("data", "fc", 4, rounds=3)
    # every process starts with the dirty pages of the ones before written out
    assert calls[0::2] == [("sync",)] * (len(calls) // 2)
    calls[:] = calls[1::2]
    names = list(cachebench.FIT_LOADERS)
    assert [c[0] for c in calls] == (names + [n for n in names[::-1] if n != "seed_pil_w1"]
                                     + [n for n in names if n != "seed_pil_w1"])
    assert all(c[1] == 4 for c in calls)
    assert [c[2] for c in calls if c[0] == "fastseq_cache"] == [
        os.path.join("fc", "round1"), os.path.join("fc", "round2"), os.path.join("fc", "round3")]
    assert all(c[2] is None for c in calls if c[0] != "fastseq_cache")
    # the median of the processes' means: 0.5, 0.6 and 0.4 + 0.3 / 3 = 0.5
    assert res["fastseq_cache"]["s_per_epoch"] == pytest.approx(0.5)
    # 0.4 + 0.6 / 3, 0.7, 0.5 + 0.6 / 3
    assert res["tf_dataset_cache"]["s_per_epoch"] == pytest.approx(0.7)
    assert res["seed_pil_w1"]["s_per_epoch"] == pytest.approx(6.0)
    assert res["fastseq_cache"]["faults_per_epoch"] == 2
    assert len(res["ready_batches"]["runs"]) == 3 and len(res["seed_pil_w1"]["runs"]) == 1
    # paired: median(0.45/0.5, 0.48/0.6, 0.47/0.5) = 0.9, where the ratio of
    # the s/epoch figures would be 0.47/0.5 = 0.94; for the tf.data cache
    # median(0.6/0.5, 0.7/0.6, 0.7/0.5) = 1.2, and by the median epoch
    # (stalls dropped) median(0.8, 7/6, 1.25) = 7/6
    assert cachebench.fit_ratio(res, "ready_batches") == pytest.approx(0.9)
    assert cachebench.fit_ratio(res, "tf_dataset_cache") == pytest.approx(1.2)
    assert cachebench.fit_ratio(res, "tf_dataset_cache",
                                per_process=cachebench.median_of_later) == pytest.approx(7 / 6)
    assert cachebench.fit_ratio(res, "seed_pil_w1") == pytest.approx(12.0)


    # the whole run: the fit targets and the report's second view
    import contextlib

    @contextlib.contextmanager
    def images(src, limit, prefix):
        yield "tmp", "data", 4

    loading = {"seconds": {n: [1.0, 0.1, 0.1, 0.1] for n in cachebench.LOADERS},
               "second_process": [{"first": [1.0, 0.1, 0.1], "second": [0.1, 0.1]}] * 3}
    monkeypatch.setattr(cachebench, "images_for", images)
    monkeypatch.setattr(cachebench, "run_loading", lambda *a: loading)
    monkeypatch.setattr(cachebench, "run_fit", lambda *a, **k: res)
    monkeypatch.setattr(cachebench, "run_fit_paired", lambda *a, **k: None)
    r = cachebench.run_cache_benchmark("src", fit=True)
    fit_targets = {t["target"]: (t["ratio"], t["minimum"]) for t in r["targets"][5:]}
    assert fit_targets == {
        "fit: ready-made batches on fastseq's pipeline / fastseq cached (>= 1/1.15)":
            (pytest.approx(0.9), pytest.approx(1 / 1.15)),
        "fit: ready-made batches on Keras' pipeline (any PyDataset's) / fastseq cached "
        "(>= 1/1.15)": (pytest.approx(1.6), pytest.approx(1 / 1.15)),
        "fit: seed PIL Sequence / fastseq cached": (pytest.approx(12.0), 5.0),
        "fit: image_dataset_from_directory().cache() / fastseq cached": (pytest.approx(1.2), 1.0)}
    assert r["fit_by_median"]["tf_dataset_cache"] == pytest.approx(7 / 6)
    assert r["fit_by_median"]["ready_batches"] == pytest.approx(0.9)
    # median(0.45/0.5, 0.54/0.6, 0.4/0.5) = 0.9 and median(2.0, 1.5, 1.5):
    # reported, not targets
    assert r["fit_info"] == {"tf_dataset_cache_shuffled": pytest.approx(1.5),
                             "model_only": pytest.approx(0.9)}
    assert len(r["targets"]) == 9
    text = cachebench.format_cache_report(r)
    assert "fit fastseq_cache       0.500: 0.50 0.50 0.50 | 0.60 0.60 0.60 | 0.40 0.40 0.70" in text
    assert ("(stalled epochs dropped; not the targets): ready_batches 0.90x, "
            "ready_batches_keras 2.00x, seed_pil_w1 12.00x, tf_dataset_cache 1.17x, "
            "tf_dataset_cache_shuffled 1.88x, model_only 0.90x") in text
    assert ("fit: model_only, the model on tensors TensorFlow already holds, no input "
            "pipeline (no loader is faster) / fastseq cached (not a target): 0.90x") in text
    assert ("fit: tf_dataset_cache_shuffled, image_dataset_from_directory().cache() of single "
            "images, shuffled and batched afresh every epoch") in text
    assert "/ fastseq cached (not a target): 1.50x" in text
    assert "PASS  fit: image_dataset_from_directory().cache() / fastseq cached: 1.20x" in text


def test_cache_fit_without_tensorflow_leaves_out_the_tf_loaders(monkeypatch):
    """Without TensorFlow, run_fit runs every fit loader but the three that
    need tf.data (the tf.data caches and the model-only floor)."""
    from fastseq.bench import cachebench

    calls = []

    def fake(name, data_dir, size, batch_size, epochs, *, cache_dir=None, maker=None,
             timeout=None):
        calls.append(name)
        return {"seconds": [9.0, 0.5, 0.5], "faults": [None, None, None]}

    monkeypatch.setattr(fitbench, "fit_in_child", fake)
    monkeypatch.setattr(fitbench, "_tensorflow_missing", lambda: "no module named tensorflow")
    monkeypatch.setattr(cachebench, "settle_writeback", lambda: None)
    res = cachebench.run_fit("data", "fc", 3, rounds=1)
    assert calls == ["fastseq_cache", "ready_batches", "ready_batches_keras", "seed_pil_w1"]
    assert set(cachebench.FIT_LOADERS) - set(calls) == {
        "tf_dataset_cache", "tf_dataset_cache_shuffled", "model_only"}
    assert set(res) == set(calls)


def test_cache_help_gives_the_fit_epochs_default_from_cachebench():
    from fastseq.bench import cachebench
    from fastseq.bench.cli import build_parser

    text = " ".join(build_parser().format_help().split())
    assert f"max({cachebench.FIT_EPOCHS}, --epochs) with --fit" in text


def test_seconds_per_epoch_is_the_mean_after_the_first_epoch():
    assert fitbench.seconds_per_epoch([9.0, 0.5, 0.5, 1.1]) == pytest.approx(0.7)
    assert fitbench.seconds_per_epoch([9.0, 0.25]) == 0.25
    with pytest.raises(ValueError, match="at least two epochs"):
        fitbench.seconds_per_epoch([9.0])


def test_second_process_rounds_pair_fresh_processes(monkeypatch):
    """cachebench.second_process_rounds: per round, a first run (3 epochs)
    on a new cache directory, then a second run (2 epochs) on the same
    one, both warmed up; the target is the median of the rounds' ratios,
    not a ratio of medians."""
    from fastseq.bench import cachebench

    calls = []
    firsts = iter([[2.0, 0.05, 0.07], [2.0, 0.10, 0.10], [2.0, 0.04, 0.04]])
    seconds = iter([[0.05, 0.05], [0.20, 0.10], [0.05, 0.04]])

    def fake(data_dir, cache_dir, size, batch_size, epochs=2, warm_before=(0,)):
        calls.append((cache_dir, epochs, tuple(warm_before)))
        return next(firsts) if epochs == 3 else next(seconds)

    monkeypatch.setattr(cachebench, "epochs_in_child", fake)
    rounds = cachebench.second_process_rounds("data", "root", (8, 8), 2, rounds=3)
    dirs = [os.path.join("root", f"round{r}") for r in range(3)]
    # the first run's epoch 2 and the second run's epoch 1 follow a warm-up
    assert calls == [c for d in dirs for c in ((d, 3, (0, 1)), (d, 2, (0,)))]
    assert rounds[1] == {"first": [2.0, 0.10, 0.10], "second": [0.20, 0.10]}
    # ratios 0.06/0.05 = 1.2, 0.10/0.20 = 0.5, 0.04/0.05 = 0.8: median 0.8
    assert cachebench.second_process_ratio(rounds) == pytest.approx(0.8)


def test_the_cache_benchmark_child_warms_up_before_the_given_epochs(monkeypatch, capsys):
    """cachebench.child_code: warm_process runs before each epoch in
    `warm_before` and nowhere else; the epochs' seconds are the last line."""
    from fastseq.bench import cachebench

    events = []
    monkeypatch.setattr(sys, "path", list(sys.path))     # the code prepends fastseq's
    monkeypatch.setattr(cachebench, "make_iterator", lambda *a, **k: "it")
    monkeypatch.setattr(cachebench, "warm_process", lambda size, b: events.append(("warm", size)))
    monkeypatch.setattr(cachebench, "one_epoch", lambda it: events.append("epoch") or 0.25)
    for warm_before, want in [((0, 1), ["w", "epoch", "w", "epoch", "epoch"]),
                              ((0,), ["w", "epoch", "epoch", "epoch"]),
                              ((), ["epoch", "epoch", "epoch"])]:
        events.clear()
        exec(cachebench.child_code("d", "c", (24, 32), 2, 3, warm_before), {})
        assert [("w" if e == ("warm", (24, 32)) else e) for e in events] == want
        assert json.loads(capsys.readouterr().out.splitlines()[-1]) == [0.25] * 3


def test_warm_process_ends_with_decoding_on_the_pool(monkeypatch):
    """cachebench.warm_process: the pool started (a 2-image decode), then
    batches of 32 in-memory JPEGs to the epoch's size for at least
    `busy_s` (one batch with 0)."""
    from fastseq.bench import cachebench

    calls = []
    real = fastseq.decode_batch

    def spy(buffers, size, **kw):
        calls.append((len(buffers), tuple(size)))
        return real(buffers, size, **kw)

    monkeypatch.setattr(fastseq, "decode_batch", spy)
    cachebench.warm_process((24, 32), 2, busy_s=0)
    assert calls == [(2, (8, 8)), (32, (24, 32))]
    calls.clear()
    t0 = time.perf_counter()
    cachebench.warm_process((24, 32), 2, busy_s=0.2)
    assert time.perf_counter() - t0 >= 0.2
    assert calls[0] == (2, (8, 8)) and len(calls) >= 3
    assert set(calls[1:]) == {(32, (24, 32))}


def test_a_cache_benchmark_child_that_fails_says_why(tmp_path):
    """cachebench.epochs_in_child: a child that fails (here: no such image
    folder) raises RuntimeError with its exit status and its last line of
    stderr, not a bare CalledProcessError."""
    from fastseq.bench import cachebench

    with pytest.raises(RuntimeError, match=r"child process on .*/c' failed \(exit 1\): "
                                           r"\w*Error.*nowhere"):
        cachebench.epochs_in_child(str(tmp_path / "nowhere"), str(tmp_path / "c"), (8, 8), 2)


def test_a_cache_benchmark_child_that_hangs_is_killed(monkeypatch, tmp_path):
    """cachebench.epochs_in_child under fitbench's limits (here 0.5 s: the
    child is still importing fastseq) is killed with a RuntimeError."""
    from fastseq.bench import cachebench

    monkeypatch.setattr(fitbench, "CHILD_START_S", 0.5)
    monkeypatch.setattr(fitbench, "CHILD_EPOCH_S", 0)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"did not finish within 0\.5 s \(killed\)"):
        cachebench.epochs_in_child(str(tmp_path), str(tmp_path / "c"), (8, 8), 2)
    assert time.monotonic() - t0 < 30


def test_a_fit_child_that_hangs_is_killed_and_named():
    """fitbench.fit_in_child's timeout: the child (here still importing
    Keras after 0.5 s) is killed, and the error names the loader."""
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"loader 'fastseq_cache' in its process did not "
                                           r"finish within 0\.5 s \(killed\)"):
        fitbench.fit_in_child("fastseq_cache", "nowhere", (8, 8), 2, 2, timeout=0.5)
    assert time.monotonic() - t0 < 30


def test_fit_paired_runs_the_loaders_in_turn_in_one_process(tmp_path):
    """fitbench.fit_paired_in_child for real on a tiny set: one epoch per
    loader per cycle, fastseq's disk and memory caches written once (cycle
    1) and read by every later cycle."""
    _class_tree(tmp_path / "img")
    names = ["fastseq_cache", "fastseq_cache_memory", "ready_batches"]
    r = fitbench.fit_paired_in_child(names, str(tmp_path / "img"), (16, 16), 2, 3,
                                     cache_dir=str(tmp_path / "c"))
    assert set(r) == set(names)
    for v in r.values():
        assert len(v["seconds"]) == 3 and all(s > 0 for s in v["seconds"])
        assert len(v["faults"]) == 3
    stats = r["fastseq_cache"]["cache_stats"]
    assert stats["absent"] == stats["stored"] == 6 and stats["hit"] >= 2 * 6
    assert set(stats) == {"absent", "stored", "hit"}
    stats = r["fastseq_cache_memory"]["cache_stats"]
    assert stats["stored"] == 6 and stats["hit"] >= 2 * 6 and set(stats) == {"stored", "hit"}
    assert "cache_stats" not in r["ready_batches"]
    entries = [f for _, _, fs in os.walk(tmp_path / "c") for f in fs if f != "params.txt"]
    assert len(entries) == 6


def test_a_fit_paired_child_that_fails_is_named(tmp_path):
    """A paired child's failure: RuntimeError naming its loaders and the
    child's last error line."""
    missing = str(tmp_path / "nowhere")
    with pytest.raises(RuntimeError) as e:
        fitbench.fit_paired_in_child(["fastseq_cache", "ready_batches"], missing, (8, 8), 2, 2)
    msg = str(e.value)
    assert msg.startswith("model.fit with loaders fastseq_cache, ready_batches in turn in one "
                          "process failed (exit 1): ")
    assert "nowhere" in msg


@pytest.mark.parametrize("names, cycles", [(["seed_pil_w1"], 2), (["ready_batches"] * 2, 2),
                                           (["ready_batches"], 1), ("ready_batches", 2),
                                           (None, 2), ([], 2), (["ready_batches"], "3"),
                                           (["ready_batches"], 2.5), (["ready_batches"], True)])
def test_fit_paired_takes_only_loaders_that_can_share_a_process(names, cycles):
    with pytest.raises(ValueError, match="distinct loaders of .* and >= 2 cycles"):
        fitbench.fit_paired_in_child(names, "nowhere", (8, 8), 2, cycles)


def test_cache_fit_paired_view_is_reported_not_targeted(monkeypatch):
    """cachebench.run_fit_paired: the PAIRABLE loaders TensorFlow allows, in
    one fit_paired_in_child on a directory of its own; each ratio is the
    median of the cycles' after the first; reported, the targets as before."""
    import contextlib

    from fastseq.bench import cachebench

    calls = []
    seconds = {"fastseq_cache": [3.0, 0.5, 0.6, 0.4], "fastseq_cache_memory": [2.0, 0.5, 0.5, 0.5],
               "ready_batches": [1.0, 0.45, 0.6, 0.38],
               "tf_dataset_cache": [4.0, 0.4, 0.5, 0.44], "model_only": [1.0, 0.4, 0.48, 0.4]}

    def fake(names, data_dir, size, batch_size, cycles, *, cache_dir=None, timeout=None):
        calls.append((names, data_dir, size, batch_size, cycles, cache_dir))
        return {n: {"seconds": seconds[n], "faults": [9, 1, 1, 1]} for n in names}

    monkeypatch.setattr(fitbench, "fit_paired_in_child", fake)
    monkeypatch.setattr(fitbench, "_tensorflow_missing", lambda: None)
    monkeypatch.setattr(cachebench, "settle_writeback", lambda: calls.append("sync"))
    paired = cachebench.run_fit_paired("data", "fc", 4)
    assert calls == ["sync", (list(fitbench.PAIRABLE), "data", cachebench.SIZE, 32, 4,
                              os.path.join("fc", "paired"))]
    # median(0.45/0.5, 0.6/0.6, 0.38/0.4) = 0.95; median(0.8, 5/6, 1.1) = 5/6
    assert cachebench.paired_ratio(paired, "ready_batches") == pytest.approx(0.95)
    assert cachebench.paired_ratio(paired, "tf_dataset_cache") == pytest.approx(5 / 6)
    monkeypatch.setattr(fitbench, "_tensorflow_missing", lambda: "no tensorflow")
    assert set(cachebench.run_fit_paired("data", "fc", 4)) == {
        "fastseq_cache", "fastseq_cache_memory", "ready_batches"}

    @contextlib.contextmanager
    def images(src, limit, prefix):
        yield "tmp", "data", 4

    loading = {"seconds": {n: [1.0, 0.1, 0.1, 0.1] for n in cachebench.LOADERS},
               "second_process": [{"first": [1.0, 0.1, 0.1], "second": [0.1, 0.1]}] * 3}
    fit_res = {n: {"runs": [{"seconds": [2.0, 0.5, 0.5], "faults": [1, 1, 1]}],
                   "s_per_epoch": 0.5, "faults_per_epoch": 1}
               for n in cachebench.FIT_LOADERS}
    monkeypatch.setattr(cachebench, "images_for", images)
    monkeypatch.setattr(cachebench, "run_loading", lambda *a: loading)
    monkeypatch.setattr(cachebench, "run_fit", lambda *a, **k: fit_res)
    monkeypatch.setattr(cachebench, "run_fit_paired", lambda *a, **k: paired)
    r = cachebench.run_cache_benchmark("src", fit=True)
    assert r["fit_paired"] is paired
    # median(1, 5/6, 1.25) = 1
    assert r["fit_paired_ratios"] == {"fastseq_cache_memory": pytest.approx(1.0),
                                      "ready_batches": pytest.approx(0.95),
                                      "tf_dataset_cache": pytest.approx(5 / 6),
                                      "model_only": pytest.approx(0.8)}
    assert len(r["targets"]) == 9
    assert all(t["ratio"] == pytest.approx(1.0) for t in r["targets"][5:] if "seed" not in
               t["target"])
    text = cachebench.format_cache_report(r)
    assert "fit, paired epochs in one process (4 cycles of one epoch per loader" in text
    assert "    ready_batches       0.45 0.60 0.38" in text
    assert ("(the median of the cycles'; tf.data's stalls between epochs left out; not the "
            "targets): fastseq_cache_memory 1.00x, ready_batches 0.95x, tf_dataset_cache 0.83x, "
            "model_only 0.80x") in text
    # paired_cycles=0: not run
    monkeypatch.setattr(cachebench, "run_fit_paired", lambda *a, **k: 1 / 0)
    r = cachebench.run_cache_benchmark("src", fit=True, paired_cycles=0)
    assert "fit_paired" not in r and "paired epochs" not in cachebench.format_cache_report(r)
