#!/usr/bin/env bash
# Build and run fastseq's fuzz harnesses (fuzz/), each for a fixed time.
#
#   tools/fuzz.sh                      # batch 25 s, resize 15 s, cache 10 s, decode_batch 20 s
#   tools/fuzz.sh -t 3600 batch        # one harness, one hour
#   tools/fuzz.sh -t 600 -j 2 resize   # two libFuzzer workers (-fork)
#
# Harnesses:
#   batch         fuzz/fuzz_batch.c: fs_batch_run on an in-memory image (libFuzzer)
#   resize        fuzz/fuzz_resize.c: fs_resize_u8, SIMD against scalar (libFuzzer)
#   cache         fuzz/fuzz_cache.c: fs_cache_read on arbitrary and on damaged
#                 entry files, never a hit from a changed byte (libFuzzer)
#   decode_batch  fuzz/fuzz_decode_batch.py: fastseq.decode_batch (atheris),
#                 against the ASan+UBSan build of tools/sanitize.sh
# The C harnesses link csrc/*.c with -fsanitize=fuzzer,address,undefined and
# libjpeg dynamically; LeakSanitizer is on in them.
#
# Under $FASTSEQ_FUZZ_DIR (default build/fuzz):
#   seeds/H     rebuilt at every run from the shared JPEG corpus plus tiny
#               generated images (fuzz/make_seeds.py)
#   corpus/H    what the fuzzer found interesting; kept between runs
#   crashes/H   crash-*, leak-*, timeout-*, oom-* inputs of any finding
#   logs/H.log  the fuzzer's full output
# Reproduce a finding: build/fuzz/bin/fuzz_batch build/fuzz/crashes/batch/crash-...
# (or tools/fuzz.sh --repro decode_batch FILE for the atheris harness).
#
# Exit status: 0 when no harness found anything, 1 on any crash, sanitizer
# report, contract violation, leak, timeout (-timeout, per input) or
# out-of-memory (-rss_limit_mb), 2 on a setup error.
#
# Environment: PYTHON (default python3) with numpy and Pillow (seeds), atheris
# (decode_batch), Cython, setuptools, pytest (the sanitizer build); CC
# (default clang); FASTSEQ_CORPUS (default ../shared/corpus/jpeg beside the
# checkout); FUZZ_TIMEOUT (seconds per input, default 10); FUZZ_RSS_MB
# (default 2048); FUZZ_SEED (libFuzzer's -seed and the atheris harness's
# PYTHONHASHSEED; default: the checkout's commit, its first 8 hex digits, so
# that CI and a local run of the same commit mutate alike and a finding
# recurs when the commit is run again; a tree that is not a git checkout
# gets 1).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
# A relative path must survive the cd's below.
case $PYTHON in */*) PYTHON=$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON") ;; esac
CC=${CC:-clang}
DIR=${FASTSEQ_FUZZ_DIR:-$ROOT/build/fuzz}
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS_MB=${FUZZ_RSS_MB:-2048}
die() { echo "fuzz.sh: $*" >&2; exit 2; }
if [ -z "${FUZZ_SEED:-}" ]; then
    head=$(git -C "$ROOT" rev-parse --short=8 HEAD 2>/dev/null || true)
    FUZZ_SEED=$(( 16#${head:-1} ))
    [ "$FUZZ_SEED" -gt 0 ] || FUZZ_SEED=1      # 0 would make libFuzzer pick one
fi
# libFuzzer's -seed is an unsigned int, and 0 means "pick one"
[[ "$FUZZ_SEED" =~ ^[0-9]{1,10}$ ]] && [ "$FUZZ_SEED" -ge 1 ] && [ "$FUZZ_SEED" -le 4294967295 ] \
    || die "FUZZ_SEED must be an integer from 1 to 4294967295, got '$FUZZ_SEED'"

seconds="" jobs=1 repro=""
while [ $# -gt 0 ]; do
    case $1 in
        -t) seconds=$2; shift 2 ;;
        -j) jobs=$2; shift 2 ;;
        --repro) repro=1; shift ;;
        -h|--help) sed -n '2,39p' "$0"; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) break ;;
    esac
done
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(batch resize cache decode_batch)
default_seconds() { case $1 in batch) echo 25 ;; resize) echo 15 ;; cache) echo 10 ;; decode_batch) echo 20 ;; esac; }
checked=("${harnesses[@]}")
[ -z "$repro" ] || checked=("${harnesses[0]}")   # --repro HARNESS FILE
for h in "${checked[@]}"; do
    [ -n "$(default_seconds "$h")" ] || die "unknown harness $h (batch, resize, cache, decode_batch)"
done

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
SAN_DIR=${FASTSEQ_SAN_DIR:-$ROOT/build/sanitize}

# The Python harness: the sanitizer build on the path and atheris' ASan
# runtime preloaded.  That runtime carries libFuzzer, so the extension's
# coverage hooks (-fsanitize=fuzzer-no-link) guide the fuzzer through the C
# core as well as through the Python code; with clang's plain runtime they
# would be no-ops.  CPython is not instrumented, hence no leak check.
run_atheris() {
    local rt
    rt=$("$PYTHON" -c 'import atheris, os; print(os.path.join(atheris.path(), "asan_with_fuzzer.so"))') \
        || die "$PYTHON has no atheris (pip install atheris), needed by decode_batch"
    LD_PRELOAD=$rt PYTHONPATH="$SAN_DIR" PYTHONMALLOC=malloc PYTHONHASHSEED=$FUZZ_SEED \
    ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:allocator_may_return_null=1" \
        "$PYTHON" -P "$ROOT/fuzz/fuzz_decode_batch.py" "$@"
}

repro_file=""
if [ -n "$repro" ]; then
    [ ${#harnesses[@]} -eq 2 ] || die "usage: tools/fuzz.sh --repro HARNESS FILE"
    repro_file=${harnesses[1]}
    harnesses=("${harnesses[0]}")
fi

# --- build (incremental; a replay builds too, so it runs the checkout as it is)
need_c=0 need_py=0
for h in "${harnesses[@]}"; do
    case $h in decode_batch) need_py=1 ;; *) need_c=1 ;; esac
done
FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined
       -fno-omit-frame-pointer -fno-wrapv -g -O1 -std=gnu11 -ffp-contract=off"
if [ $need_c = 1 ]; then
    echo "== building the C harnesses ($CC, ASan+UBSan+libFuzzer) in $DIR/bin"
    mkdir -p "$DIR/obj" "$DIR/bin"
    objs=()
    for c in "$ROOT"/csrc/*.c; do
        o="$DIR/obj/$(basename "${c%.c}").o"
        # A header change rebuilds every object (the sources are small).
        if [ ! "$o" -nt "$c" ] || [ -n "$(find "$ROOT/csrc" -name '*.h' -newer "$o")" ]; then
            $CC $FLAGS -fsanitize=fuzzer-no-link -I"$ROOT/csrc" -c "$c" -o "$o"
        fi
        objs+=("$o")
    done
    for h in batch resize cache; do
        $CC $FLAGS -fsanitize=fuzzer -I"$ROOT/csrc" -o "$DIR/bin/fuzz_$h" \
            "$ROOT/fuzz/fuzz_$h.c" "${objs[@]}" -ljpeg -lpng16 -lz -lwebpdemux -lwebp -pthread -lm
    done
fi
if [ $need_py = 1 ]; then
    "$PYTHON" -c "import atheris" 2>/dev/null \
        || die "$PYTHON has no atheris (pip install atheris), needed by decode_batch"
    "$ROOT/tools/sanitize.sh" --build-only
fi

if [ -n "$repro_file" ]; then
    case ${harnesses[0]} in
        decode_batch) run_atheris -runs=1 "$repro_file" ;;
        *) "$DIR/bin/fuzz_${harnesses[0]}" -runs=1 "$repro_file" ;;
    esac
    exit
fi

echo "== seeds"
"$PYTHON" "$ROOT/fuzz/make_seeds.py" "$DIR/seeds"

# --- run
declare -A result execs secs
fail=0
for h in "${harnesses[@]}"; do
    t=${seconds:-$(default_seconds "$h")}
    mkdir -p "$DIR/corpus/$h" "$DIR/crashes/$h" "$DIR/logs"
    log="$DIR/logs/$h.log"
    before=$(ls "$DIR/crashes/$h" | wc -l)
    args=("$DIR/corpus/$h" "$DIR/seeds/$h" -max_total_time="$t" -timeout="$TIMEOUT"
          -rss_limit_mb="$RSS_MB" -artifact_prefix="$DIR/crashes/$h/" -print_final_stats=1 -seed="$FUZZ_SEED")
    [ "$jobs" -gt 1 ] && args+=(-fork="$jobs" -ignore_crashes=0)
    echo "== fuzzing $h for ${t}s"
    start=$(date +%s)
    set +e
    if [ "$h" = decode_batch ]; then
        run_atheris "${args[@]}" -detect_leaks=0 >"$log" 2>&1
    else
        ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:allocator_may_return_null=1" \
            "$DIR/bin/fuzz_$h" "${args[@]}" -detect_leaks=1 >"$log" 2>&1
    fi
    rc=$?
    set -e
    secs[$h]=$(( $(date +%s) - start ))
    # -fork prints its totals differently; take the last count either way.
    execs[$h]=$( (grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" \
                  | tail -1 | grep -oE '[0-9]+$') || true)
    [ -n "${execs[$h]}" ] || execs[$h]=$( (grep -oE '#[0-9]+' "$log" | tail -1 | tr -d '#') || true)
    after=$(ls "$DIR/crashes/$h" | wc -l)
    if [ $rc -ne 0 ] || [ "$after" -gt "$before" ] \
       || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
        result[$h]="FINDING (exit $rc)"
        fail=1
        echo "---- $h: the report, from $log" >&2
        # From the first report line (not ASan's shadow-byte legend), else the end.
        awk '/ERROR: |runtime error:|Uncaught Python exception|deadly signal|SIMD|status/ {f=1}
             f && n++ < 45' "$log" >&2
        grep -E '^(SUMMARY|artifact_prefix)' "$log" >&2 || tail -n 30 "$log" >&2
        ls -t "$DIR/crashes/$h" | head -5 | sed "s#^#---- input: $DIR/crashes/$h/#" >&2
    else
        result[$h]=ok
    fi
done

echo "== fuzz summary (per-input timeout ${TIMEOUT}s, rss limit ${RSS_MB} MB, FUZZ_SEED=$FUZZ_SEED)"
printf '%-14s %8s %12s  %s\n' harness seconds executions result
for h in "${harnesses[@]}"; do
    printf '%-14s %8s %12s  %s\n' "$h" "${secs[$h]}" "${execs[$h]:-?}" "${result[$h]}"
done
if [ $fail -ne 0 ]; then
    echo "fuzz.sh: FAILED: findings above; inputs under $DIR/crashes" >&2
    exit 1
fi
echo "fuzz.sh: OK: no findings"
