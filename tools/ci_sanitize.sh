#!/usr/bin/env bash
# CI: the sanitized tests (tools/sanitize.sh) and a short fuzz run
# (tools/fuzz.sh, about a minute over four harnesses), on a fresh
# Debian 12 machine.  Installs clang, its sanitizer/libFuzzer runtimes and
# libjpeg-turbo with apt, and its Python packages into its own venv
# (.venv-sanitize).  Exits non-zero when either step fails: a test failure,
# any ASan/UBSan report, or any fuzzer crash, leak, hang or out-of-memory.
set -uo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "== ci_sanitize: apt packages"
$SUDO apt-get update -qq || exit 2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    clang libclang-rt-14-dev libjpeg62-turbo-dev libpng-dev libwebp-dev pkg-config \
    python3-dev python3-venv binutils >/dev/null || exit 2

VENV=${FASTSEQ_SAN_VENV:-.venv-sanitize}
echo "== ci_sanitize: venv $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || exit 2
# atheris 3.0.0 has manylinux wheels for CPython 3.11 (Debian 12's python3).
"$VENV/bin/pip" install -q numpy Pillow Cython pytest setuptools atheris==3.0.0 || exit 2
export PYTHON=$PWD/$VENV/bin/python

start=$(date +%s)
tools/sanitize.sh
san=$?
mid=$(date +%s)
tools/fuzz.sh
fuzz=$?
end=$(date +%s)

word() { [ "$1" = 0 ] && echo ok || echo "FAILED (exit $1)"; }
echo "== ci_sanitize summary"
echo "sanitized tests (ASan+UBSan): $(word $san), $((mid - start)) s"
echo "fuzz run (libFuzzer+atheris): $(word $fuzz), $((end - mid)) s"
[ $san = 0 ] && [ $fuzz = 0 ]
