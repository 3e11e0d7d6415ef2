"""Packaging checks: the sdist, the build's missing-libjpeg error, the
cibuildwheel configuration, and (on CI) the installed wheel itself.

The source-tree tests skip when the tests run outside the repository (as in
cibuildwheel's test step, which copies only tests/).  The installed-wheel
test runs only when the FASTSEQ_EXPECT_* variables say what to expect
(pyproject.toml's cibuildwheel test-environment sets them).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
HAVE_TREE = (REPO / "setup.py").is_file() and (REPO / "csrc").is_dir()
needs_tree = pytest.mark.skipif(not HAVE_TREE, reason="needs the source tree (setup.py, csrc/)")

# What `pip install fastseq` gets, per platform (pyproject.toml [tool.cibuildwheel]).
PYS = ["cp310", "cp311", "cp312", "cp313"]
EXPECTED_IDS = {
    "linux": {f"{py}-manylinux_{arch}" for py in PYS for arch in ("x86_64", "aarch64")},
    "macos": {f"{py}-macosx_{arch}" for py in PYS for arch in ("x86_64", "arm64")},
    "windows": set(),   # the C core is POSIX-only: no Windows wheels yet
}


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CIBW_", "FASTSEQ_JPEG_", "FASTSEQ_SKIP"))}
    env.update(extra)
    return env


def _stage(dst: pathlib.Path) -> pathlib.Path:
    """Copy the files git would ship (tracked + untracked, not ignored) so
    that builds never write into the working tree."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "-co",
                              "--exclude-standard"], check=True, capture_output=True).stdout
        files = [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the source tree is not a git checkout")
    for rel in files:
        src = REPO / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    return dst


# --------------------------------------------------------------------- sdist

@needs_tree
@pytest.mark.skipif(importlib.util.find_spec("build") is None, reason="needs 'build' (pip install build)")
def test_sdist_carries_sources_and_no_build_output(tmp_path):
    src = _stage(tmp_path / "src")
    # No isolation: the sdist step needs only setuptools (setup.py imports
    # numpy and Cython only when the extension is built).
    r = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation",
                        "--skip-dependency-check", "--outdir", str(tmp_path / "dist"), str(src)],
                       capture_output=True, text=True, env=_clean_env())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (sdist,) = (tmp_path / "dist").glob("fastseq-*.tar.gz")
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}

    tree = [str(p.relative_to(src)) for p in src.rglob("*") if p.is_file()]
    need = ["csrc/*.c", "csrc/*.h", "fastseq/*.py", "fastseq/*.pyx", "fastseq/*.pxd",
            "fastseq/*.pyi", "fastseq/py.typed", "README.md", "LICENSE",
            "pyproject.toml", "setup.py", "MANIFEST.in"]
    missing = sorted(f for f in tree if any(fnmatch.fnmatch(f, p) for p in need)
                     and f not in names)
    assert not missing, f"the sdist lacks {missing}"
    for f in ("LICENSE", "setup.py", "pyproject.toml", "fastseq/_native.pyx",
              "fastseq/csrc.pxd", "fastseq/py.typed"):
        assert f in names
    # setup.py's list of C sources must all be shipped.
    for line in (src / "setup.py").read_text().splitlines():
        if line.startswith("CSRC ="):
            csrc = [w.strip('"\' ,[]') for w in line.split("=", 1)[1].split(",")]
            assert csrc and all(c in names for c in csrc if c), (csrc, sorted(names))
    junk = sorted(n for n in names
                  if any(fnmatch.fnmatch(n, p) for p in ("*.so", "*.o", "*.pyc", "*.pyd",
                                                          "*.dylib", "fastseq/_native.c")))
    assert not junk, f"the sdist carries build output {junk}"


# ------------------------------------------------------- missing libjpeg error

def _jpeg_check(env, patch=""):
    """Run setup.py's libjpeg lookup alone, in a subprocess."""
    code = ("import runpy\n"
            f"g = runpy.run_path({str(REPO / 'setup.py')!r}, run_name='fastseq_setup')\n"
            f"{patch}\n"
            "print(g['_jpeg_config']())\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=str(REPO))


def _assert_instructions(r):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    msg = r.stderr
    for needle in ("jpeglib.h", "libjpeg-turbo", "apt-get install libjpeg62-turbo-dev",
                   "dnf install libjpeg-turbo-devel", "brew install jpeg-turbo",
                   "FASTSEQ_JPEG_INCLUDE=", "FASTSEQ_JPEG_LIBDIR=", "FASTSEQ_JPEG_STATIC=",
                   "pip install fastseq"):
        assert needle in msg, f"{needle!r} missing from:\n{msg}"
    assert "Traceback" not in msg


@needs_tree
def test_include_dir_without_headers_gives_instructions():
    r = _jpeg_check(_clean_env(FASTSEQ_JPEG_INCLUDE="/nonexistent"))
    _assert_instructions(r)
    assert "FASTSEQ_JPEG_INCLUDE=/nonexistent" in r.stderr


@needs_tree
def test_no_headers_anywhere_gives_instructions():
    # As on a machine without the -dev package: no pkg-config result and no
    # jpeglib.h in the default include directories.
    r = _jpeg_check(_clean_env(PKG_CONFIG_LIBDIR="/nonexistent", PKG_CONFIG_PATH=""),
                    patch="g['DEFAULT_INCLUDE_DIRS'][:] = []")
    _assert_instructions(r)
    assert "cannot find libjpeg-turbo's header jpeglib.h" in r.stderr


@needs_tree
def test_missing_static_archive_gives_instructions():
    r = _jpeg_check(_clean_env(FASTSEQ_JPEG_STATIC="/nonexistent/lib/libjpeg.a"))
    _assert_instructions(r)
    assert "FASTSEQ_JPEG_STATIC=/nonexistent/lib/libjpeg.a is not a file" in r.stderr


def _config_check(function, env, patch=""):
    """Run one of setup.py's library lookups (`function`) alone, in a
    subprocess, after `patch` (Python run on setup.py's globals `g`)."""
    code = ("import runpy\n"
            f"g = runpy.run_path({str(REPO / 'setup.py')!r}, run_name='fastseq_setup')\n"
            f"{patch}\n"
            f"print(g[{function!r}]())\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=str(REPO))


def _png_check(env, patch=""):
    return _config_check("_png_config", env, patch)


@needs_tree
@pytest.mark.parametrize("env,patch", [
    ({"FASTSEQ_PNG_INCLUDE": "/nonexistent"}, ""),
    # as on a machine without libpng-dev: no pkg-config result, no png.h
    ({"PKG_CONFIG_LIBDIR": "/nonexistent", "PKG_CONFIG_PATH": ""},
     "g['DEFAULT_INCLUDE_DIRS'][:] = []"),
])
def test_missing_libpng_names_the_package(env, patch):
    r = _png_check(_clean_env(**env), patch)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    for needle in ("cannot find libpng's header png.h", "apt-get install libpng-dev",
                   "dnf install libpng-devel", "brew install libpng", "FASTSEQ_PNG_INCLUDE"):
        assert needle in r.stderr, f"{needle!r} missing from:\n{r.stderr}"
    assert "Traceback" not in r.stderr
    if "FASTSEQ_PNG_INCLUDE" in env:
        assert "png.h in /nonexistent" in r.stderr


@needs_tree
def test_libpng_found_here():
    r = _png_check(_clean_env())
    assert r.returncode == 0 and "png16" in r.stdout and "'z'" in r.stdout, r.stderr


@needs_tree
def test_build_ext_stops_before_compiling(tmp_path):
    # The whole build command, not just the helper: it must stop with the
    # instructions before Cython or the compiler run.
    src = _stage(tmp_path / "src")
    r = subprocess.run([sys.executable, "setup.py", "-q", "build_ext"], cwd=str(src),
                       capture_output=True, text=True,
                       env=_clean_env(FASTSEQ_JPEG_INCLUDE="/nonexistent"))
    _assert_instructions(r)
    assert not (src / "fastseq" / "_native.c").exists()


# ------------------------------------- importing a checkout without its build

def _run_in(cwd, *args):
    # A newcomer's shell: no PYTHONPATH, and not conftest's PYTHONSAFEPATH.
    env = _clean_env()
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONSAFEPATH", None)
    return subprocess.run(list(args), cwd=str(cwd), capture_output=True, text=True,
                          env=env, timeout=300)


def _editable_fastseq_finder():
    """The import hook of a ``pip install -e`` of fastseq in this interpreter,
    or None.  It sits after the path finder, so it answers for any
    ``fastseq.*`` module a package found on sys.path lacks: it hands an
    unbuilt copy the editable checkout's compiled extension."""
    for finder in sys.meta_path:
        name = getattr(finder, "__module__", "") or ""
        if name.startswith("__editable__") and "fastseq" in name:
            return name
    return None


@needs_tree
@pytest.mark.parametrize("how", [["-c", "import fastseq"], ["-m", "fastseq", "bench"]],
                         ids=["import", "python-m"])
def test_unbuilt_checkout_says_what_happened_and_what_to_run(tmp_path, how):
    # A fresh clone: the staged copy has no compiled extension, and python -c
    # / python -m put its root (the working directory) first on sys.path.
    finder = _editable_fastseq_finder()
    if finder:
        pytest.skip(f"fastseq is installed in editable mode here ({finder}): its import hook "
                    "gives an unbuilt copy that checkout's compiled extension")
    src = _stage(tmp_path / "src")
    assert not list((src / "fastseq").glob("_native*.so"))
    r = _run_in(src, sys.executable, *how)
    assert r.returncode != 0
    err = r.stderr
    assert (f"ImportError: fastseq's compiled extension is not built in {src / 'fastseq'}: "
            "you are importing the source checkout.") in err, err
    for needle in ("`pip install .`", "run from outside the checkout",
                   "`.venv/bin/fastseq bench`", "`python setup.py build_ext --inplace`"):
        assert needle in err, f"{needle!r} missing from:\n{err}"
    assert "circular" not in err and "partially initialized" not in err, err


@needs_tree
def test_broken_extension_keeps_its_own_error(tmp_path):
    # An extension that is there but cannot load (here: not a shared object)
    # must not be reported as "not built".
    src = _stage(tmp_path / "src")
    import importlib.machinery

    (src / "fastseq" / f"_native{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"junk")
    r = _run_in(src, sys.executable, "-c", "import fastseq")
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "not built" not in r.stderr, r.stderr


def _console_script():
    script = pathlib.Path(sys.executable).parent / "fastseq"
    if not script.is_file():
        pytest.skip(f"no installed `fastseq` command beside {sys.executable} "
                    "(fastseq is not pip-installed in this Python)")
    return script


@pytest.mark.parametrize("args", [["info"], ["--help"]])
def test_console_script_runs_at_the_checkout_root(args):
    # The README's main command runs `.venv/bin/fastseq bench` at the root of
    # the clone: a console script puts its own folder, not the working
    # directory, on sys.path, so the installed package is the one imported.
    r = _run_in(REPO, str(_console_script()), *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ("libjpeg-turbo" if args == ["info"] else "fastseq bench") in r.stdout


@needs_tree
def test_console_script_ignores_an_unbuilt_checkout_in_cwd(tmp_path):
    # Same, where the working directory is certainly an unbuilt checkout.
    src = _stage(tmp_path / "src")
    r = _run_in(src, str(_console_script()), "info")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "libjpeg-turbo" in r.stdout


# ------------------------------------------------------------- cibuildwheel

def _identifiers(platform, **env):
    if shutil.which("cibuildwheel") is None:
        pytest.skip("cibuildwheel is not installed (pip install cibuildwheel)")
    r = subprocess.run(["cibuildwheel", "--print-build-identifiers", "--platform", platform,
                        str(REPO)], capture_output=True, text=True, env=_clean_env(**env))
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


@needs_tree
@pytest.mark.parametrize("platform", sorted(EXPECTED_IDS))
def test_cibuildwheel_builds_exactly_the_supported_wheels(platform):
    assert _identifiers(platform) == EXPECTED_IDS[platform]


@needs_tree
def test_cibuildwheel_skips_unsupported_builds_explicitly():
    # Even when every architecture is asked for, the skip list keeps out
    # musllinux, 32-bit and free-threaded builds.
    ids = _identifiers("linux", CIBW_ARCHS="all")
    assert EXPECTED_IDS["linux"] <= ids
    bad = {i for i in ids if "musllinux" in i or "i686" in i or "armv7l" in i}
    assert not bad
    assert not _identifiers("linux", CIBW_BUILD="cp31?t-*", CIBW_ARCHS="all")
    assert not _identifiers("windows", CIBW_ARCHS="all")


# ------------------------------------------------------- the installed wheel

EXPECT = {k: v for k, v in os.environ.items() if k.startswith("FASTSEQ_EXPECT_")}


@pytest.mark.skipif(not EXPECT, reason="set by cibuildwheel's test-environment "
                                       "(FASTSEQ_EXPECT_*): checks a built wheel")
def test_installed_wheel_embeds_the_pinned_codec():
    import fastseq
    from fastseq import _native

    pkg = pathlib.Path(fastseq.__file__).resolve().parent
    assert not (pkg.parent / "setup.py").exists(), f"fastseq imported from a source tree: {pkg}"
    info = fastseq.info()
    want = EXPECT.get("FASTSEQ_EXPECT_LIBJPEG_TURBO")
    if want:
        assert str(info["libjpeg_turbo"]).startswith(want), info
    if EXPECT.get("FASTSEQ_EXPECT_SIMD") == "1":
        assert info["simd_built"], info
    if EXPECT.get("FASTSEQ_EXPECT_STATIC_JPEG") == "1":
        ext = pathlib.Path(_native.__file__)
        if sys.platform.startswith("linux"):
            deps = subprocess.run(["ldd", str(ext)], capture_output=True, text=True).stdout
        elif sys.platform == "darwin":
            deps = subprocess.run(["otool", "-L", str(ext)], capture_output=True,
                                  text=True).stdout
        else:
            pytest.skip(f"no dependency lister for {sys.platform}")
        assert "libjpeg" not in deps, f"the extension needs a shared libjpeg:\n{deps}"
        assert (pkg / "_vendor" / "libjpeg-turbo" / "LICENSE.md").is_file(), \
            "the wheel embeds libjpeg-turbo but not its licence"
    for key, name in (("FASTSEQ_EXPECT_LIBPNG", "libpng"), ("FASTSEQ_EXPECT_ZLIB", "zlib"),
                      ("FASTSEQ_EXPECT_LIBWEBP", "libwebp")):
        if EXPECT.get(key):
            assert str(info[name]) == EXPECT[key], info
    if EXPECT.get("FASTSEQ_EXPECT_STATIC_CODECS") == "1":
        # tools/build_codecs.sh's archives linked in: no shared zlib, libpng
        # or libwebp needed, and their licences shipped.
        ext = pathlib.Path(_native.__file__)
        if sys.platform.startswith("linux"):
            deps = subprocess.run(["ldd", str(ext)], capture_output=True, text=True).stdout
        elif sys.platform == "darwin":
            deps = subprocess.run(["otool", "-L", str(ext)], capture_output=True,
                                  text=True).stdout
        else:
            pytest.skip(f"no dependency lister for {sys.platform}")
        for lib in ("libpng", "libwebp", "libsharpyuv", "libz."):
            assert lib not in deps, f"the extension needs a shared {lib}:\n{deps}"
        for name in ("zlib", "libpng", "libwebp"):
            vendor = pkg / "_vendor" / name
            assert vendor.is_dir() and any(vendor.iterdir()), \
                f"the wheel embeds {name} but not its licence"


def _webp_check(env, patch=""):
    return _config_check("_webp_config", env, patch)


@needs_tree
@pytest.mark.parametrize("env,patch", [
    ({"FASTSEQ_WEBP_INCLUDE": "/nonexistent"}, ""),
    # as on a machine without libwebp-dev: no pkg-config result, no headers
    ({"PKG_CONFIG_LIBDIR": "/nonexistent", "PKG_CONFIG_PATH": ""},
     "g['DEFAULT_INCLUDE_DIRS'][:] = []"),
])
def test_missing_libwebp_names_the_package(env, patch):
    r = _webp_check(_clean_env(**env), patch)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    for needle in ("cannot find libwebp's headers webp/decode.h and webp/demux.h",
                   "apt-get install libwebp-dev", "dnf install libwebp-devel",
                   "brew install webp", "FASTSEQ_WEBP_INCLUDE"):
        assert needle in r.stderr, f"{needle!r} missing from:\n{r.stderr}"
    assert "Traceback" not in r.stderr
    if "FASTSEQ_WEBP_INCLUDE" in env:
        assert "in /nonexistent" in r.stderr


@needs_tree
def test_libwebp_found_here():
    r = _webp_check(_clean_env())
    assert r.returncode == 0 and "'webpdemux'" in r.stdout and "'webp'" in r.stdout, r.stderr
