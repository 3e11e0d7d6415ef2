#!/usr/bin/env bash
# Build fastseq's extension with clang + AddressSanitizer + UndefinedBehavior-
# Sanitizer and run the test files that need no TensorFlow under it.
#
#   tools/sanitize.sh                  # build (incrementally) and run the tests
#   tools/sanitize.sh -k resize -x     # extra arguments go to pytest
#   tools/sanitize.sh --build-only     # only the build (tools/fuzz.sh uses it)
#
# The build goes into a copy of the sources ($FASTSEQ_SAN_DIR, default
# build/sanitize), never into the checkout, so a normal in-place build is left
# alone and cannot be imported by mistake (the tests run with the copy as the
# working directory and the checkout off sys.path).
#
# Exit status is non-zero when the build fails, a test fails, or any
# sanitizer report is written, by the test process or by any child it starts
# (reports go to files under $FASTSEQ_SAN_DIR/reports and are printed here).
# Before the tests, a canary (a tiny library with a heap overflow and a signed
# overflow, loaded under the same settings) must be reported, proving that the
# runtime, the options and the report check work on this machine.
#
# Environment: PYTHON (default python3) needs numpy, Pillow, Cython, pytest,
# setuptools; CC (default clang); FASTSEQ_CORPUS (default ../shared/corpus/jpeg
# beside the checkout, if present); FASTSEQ_SAN_TESTS (the test files);
# FASTSEQ_SAN_CLEAN=1 rebuilds from scratch.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
build_only=0
if [ "${1:-}" = --build-only ]; then build_only=1; shift; fi
PYTHON=${PYTHON:-python3}
# A relative path must survive the cd's below.
case $PYTHON in */*) PYTHON=$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON") ;; esac
CC=${CC:-clang}
SAN_DIR=${FASTSEQ_SAN_DIR:-$ROOT/build/sanitize}
mkdir -p "$SAN_DIR"
SAN_DIR=$(cd "$SAN_DIR" && pwd)
# test_leaks.py is left out: ASan's quarantine (freed memory is held back to
# catch use-after-free) makes resident memory grow by design, which is exactly
# what that test measures.  The harnesses under fuzz/ run LeakSanitizer on the
# C core instead.
TESTS=${FASTSEQ_SAN_TESTS:-tests/test_batch_api.py tests/test_conformance.py
    tests/test_errors.py tests/test_resize_parity.py tests/test_resize_simd.py
    tests/test_threads.py tests/test_resize_plan.py tests/test_options.py tests/test_warp.py
    tests/test_png.py tests/test_webp.py tests/test_bmp_pnm.py tests/test_cache.py
    tests/test_bufpool.py}

# -fno-wrapv undoes the -fwrapv in Python's own CFLAGS, so that UBSan sees
# signed overflow; the flags are appended after setup.py's (-O3 ...) so that
# they win.  -fsanitize=fuzzer-no-link adds coverage hooks for the atheris
# harness (tools/fuzz.sh); under plain ASan, as here, the runtime's no-op
# defaults answer them.  No -shared-libasan: the extension names no runtime,
# so either ASan runtime (clang's, or atheris' asan_with_fuzzer.so) can be
# preloaded.
SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fsanitize=fuzzer-no-link
    -fno-omit-frame-pointer -fno-wrapv -g -O1"
export FASTSEQ_SAN_FLAGS=$(echo $SAN_FLAGS)

die() { echo "sanitize.sh: $*" >&2; exit 2; }
command -v "$CC" >/dev/null || die "$CC not found (apt-get install clang libclang-rt-14-dev)"
ASAN_RT=$("$CC" -print-file-name=libclang_rt.asan-x86_64.so)
[ -f "$ASAN_RT" ] || die "no ASan runtime ($ASAN_RT); apt-get install libclang-rt-14-dev"

# --- copy the sources (keeping the previous build for an incremental one)
if [ "${FASTSEQ_SAN_CLEAN:-0}" = 1 ]; then rm -rf "$SAN_DIR"; mkdir -p "$SAN_DIR"; fi
FLAGS_STAMP="$CC $FASTSEQ_SAN_FLAGS"
if [ "$(cat "$SAN_DIR/.flags" 2>/dev/null)" != "$FLAGS_STAMP" ]; then
    rm -rf "$SAN_DIR/build" "$SAN_DIR"/fastseq/_native*.so "$SAN_DIR/fastseq/_native.c"
fi
find "$SAN_DIR/fastseq" "$SAN_DIR/tests" "$SAN_DIR/csrc" -type f \
    ! -name '_native*.so' ! -name '_native.c' -delete 2>/dev/null || true
# tar keeps the mtimes, so setuptools rebuilds only what changed; the
# checkout's own build outputs never reach the copy.
tar -C "$ROOT" -cf - --exclude='*.so' --exclude='_native.c' --exclude=__pycache__ \
    fastseq csrc tests setup.py pyproject.toml README.md | tar -C "$SAN_DIR" -xf -

# setup.py lists no headers as dependencies: a changed header rebuilds all.
for so in "$SAN_DIR"/fastseq/_native*.so; do
    [ -e "$so" ] && [ -n "$(find "$SAN_DIR/csrc" "$SAN_DIR/fastseq" -name '*.h' -newer "$so" -o -name '*.pxd' -newer "$so")" ] && rm -f "$so"
done

# A compiler wrapper puts the sanitizer flags last on every compile and link.
cat > "$SAN_DIR/cc" <<EOF
#!/bin/sh
exec $CC "\$@" $FASTSEQ_SAN_FLAGS
EOF
chmod +x "$SAN_DIR/cc"

echo "== sanitizer build ($CC: $FASTSEQ_SAN_FLAGS) in $SAN_DIR"
(cd "$SAN_DIR" && CC="$SAN_DIR/cc" LDSHARED="$SAN_DIR/cc -shared" \
    "$PYTHON" setup.py -q build_ext --inplace) || die "sanitizer build failed"
echo "$FLAGS_STAMP" > "$SAN_DIR/.flags"

SO=$(ls "$SAN_DIR"/fastseq/_native*.so)
# The extension must really be instrumented (a compiler that ignored the
# flags would otherwise give a silently clean run).
undef=$(nm -D --undefined-only "$SO")
grep -q '__asan_report_load' <<<"$undef" || die "$SO has no ASan instrumentation"
grep -q '__ubsan_handle_.*_abort' <<<"$undef" || die "$SO has no UBSan instrumentation"
if [ $build_only = 1 ]; then echo "== built $SO"; exit 0; fi

REPORTS=$SAN_DIR/reports
rm -rf "$REPORTS"; mkdir -p "$REPORTS"
export LD_PRELOAD=$ASAN_RT
# detect_leaks=0: CPython keeps its own allocations until exit (the fuzz
# harnesses check the C core for leaks).  allocator_may_return_null: a huge
# malloc returns NULL as it would without ASan (the core reports it as
# FS_ERR_NOMEM).  PYTHONMALLOC=malloc puts Python's buffers (bytes objects
# read by decode_batch) under ASan's redzones too.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:allocator_may_return_null=1:log_path=$REPORTS/report"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$REPORTS/report"
export PYTHONMALLOC=malloc
export PYTHONDONTWRITEBYTECODE=1

# Prints the reports; returns 1 when there is one.
check_reports() {
    local found=0 f
    for f in "$1"/*; do
        [ -e "$f" ] || continue
        echo "---- $f" >&2
        cat "$f" >&2
        found=1
    done
    return $found
}

# --- canary: prove that a report here makes this script fail
CANARY=$SAN_DIR/canary
rm -rf "$CANARY"; mkdir -p "$CANARY/reports"
cat > "$CANARY/canary.c" <<'EOF'
#include <stdlib.h>
int heap_overflow(int n) {          /* reads one int past the block */
    int *p = malloc((size_t)n * sizeof *p), r;
    for (int i = 0; i < n; i++) p[i] = i;
    r = p[n];
    free(p);
    return r;
}
int signed_overflow(int a) { return a + 1; }   /* a = INT_MAX: UB */
EOF
"$CC" -shared -fPIC $FASTSEQ_SAN_FLAGS -o "$CANARY/canary.so" "$CANARY/canary.c"
for fn in "heap_overflow(4)" "signed_overflow(2**31 - 1)"; do
    rm -f "$CANARY"/reports/*
    if ASAN_OPTIONS="${ASAN_OPTIONS/log_path=$REPORTS/log_path=$CANARY/reports}" \
       UBSAN_OPTIONS="${UBSAN_OPTIONS/log_path=$REPORTS/log_path=$CANARY/reports}" \
       "$PYTHON" -c "import ctypes; ctypes.CDLL('$CANARY/canary.so').$fn" 2>/dev/null \
       && check_reports "$CANARY/reports" 2>/dev/null; then
        die "canary $fn was NOT reported: the sanitizer setup does not work here"
    fi
    grep -qE 'AddressSanitizer|runtime error' "$CANARY"/reports/* \
        || die "canary $fn failed without a sanitizer report"
done
echo "== canary: an injected heap overflow and a signed overflow were both reported"

# --- the tests
corpus=${FASTSEQ_CORPUS:-$ROOT/../shared/corpus/jpeg}
[ -f "$corpus/MANIFEST.tsv" ] && export FASTSEQ_CORPUS=$(cd "$corpus" && pwd)
echo "== sanitized tests: $(echo $TESTS)"
set +e
# -P: the copy's fastseq comes from the working directory via PYTHONPATH
# only, never from the checkout.
(cd "$SAN_DIR" && PYTHONPATH="$SAN_DIR" "$PYTHON" -P -c \
    "import fastseq._native as c, sys; sys.exit(c.__file__ != '$SO')") \
    || { echo "sanitize.sh: tests would not import $SO" >&2; exit 2; }
# The worker-crash tests make a child die of a signal on purpose; under ASan
# that child leaves a DEADLYSIGNAL report, which is the point, not a finding.
# The cache's flat-RSS test measures resident memory, which ASan's quarantine
# grows by design (as test_leaks.py, left out above).
(cd "$SAN_DIR" && PYTHONPATH="$SAN_DIR" "$PYTHON" -P -m pytest -q -p no:cacheprovider \
    --deselect tests/test_threads.py::test_crash_in_a_worker_reaches_faulthandler \
    --deselect tests/test_cache.py::test_reading_a_disk_cache_keeps_rss_flat \
    $TESTS "$@")
rc=$?
set -e
if ! check_reports "$REPORTS"; then
    echo "== sanitize.sh: FAILED: sanitizer report(s) above (pytest exit $rc)" >&2
    exit 1
fi
if [ $rc -ne 0 ]; then
    echo "== sanitize.sh: FAILED: pytest exit $rc, no sanitizer report" >&2
    exit $rc
fi
echo "== sanitize.sh: OK: tests passed under ASan+UBSan, no reports"
