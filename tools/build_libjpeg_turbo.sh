#!/usr/bin/env bash
# Build libjpeg-turbo as a static, position-independent archive with SIMD,
# from a pinned release tarball whose SHA-256 is checked, and install it to
# PREFIX (PREFIX/lib/libjpeg.a, PREFIX/include/jpeglib.h, and the licence
# files under PREFIX/share/doc/libjpeg-turbo).
#
#   tools/build_libjpeg_turbo.sh PREFIX
#
# cibuildwheel runs this in before-all (pyproject.toml), inside the manylinux
# container on Linux and on the runner on macOS; setup.py then links
# PREFIX/lib/libjpeg.a because FASTSEQ_JPEG_STATIC names it.  It needs
# internet access to the libjpeg-turbo release (or LJT_TARBALL), cmake, a C
# compiler and, on x86-64, nasm (installed here with the system's package
# manager when missing, unless LJT_NO_INSTALL=1).
#
# Environment (all optional):
#   LJT_TARBALL     use this local tarball instead of downloading (still checked)
#   LJT_VERSION     build another release; then LJT_SHA256 must be given too
#   LJT_SHA256      expected SHA-256 of the tarball
#   LJT_URL         download URL (default: the GitHub release asset)
#   LJT_NO_INSTALL  1: never install nasm/cmake, fail if missing
#   LJT_JOBS        parallel build jobs (default: CPU count)
set -euo pipefail

PREFIX=${1:?usage: tools/build_libjpeg_turbo.sh PREFIX}

# The pinned release.  SHA-256 of the release asset libjpeg-turbo-3.1.4.1.tar.gz
# (https://github.com/libjpeg-turbo/libjpeg-turbo/releases/download/3.1.4.1/),
# as published in Homebrew's formula Formula/j/jpeg-turbo.rb (read in the
# mirror yurikoles/homebrew-core at commit
# 03f52b991619132f45023a35a37e9c631247af8f); the same value is pinned by a
# Conan-style recipe and a CMake ExternalProject found by the same search.
# 3.1.4.1 is also the libjpeg-turbo that Pillow's wheels bundle
# (JPEGTURBO_VERSION in Pillow's wheels-dependencies.sh), so fastseq and
# Pillow decode with the same codec.
PINNED_VERSION=3.1.4.1
PINNED_SHA256=ecae8008e2cc9ade2f2c1bb9d5e6d4fb73e7c433866a056bd82980741571a022

if [[ -n "${LJT_VERSION:-}" && "${LJT_VERSION}" != "$PINNED_VERSION" && -z "${LJT_SHA256:-}" ]]; then
    echo "build_libjpeg_turbo: LJT_VERSION=$LJT_VERSION needs LJT_SHA256 (its tarball's SHA-256)" >&2
    exit 2
fi
VERSION=${LJT_VERSION:-$PINNED_VERSION}
SHA256=${LJT_SHA256:-$PINNED_SHA256}
URL=${LJT_URL:-https://github.com/libjpeg-turbo/libjpeg-turbo/releases/download/$VERSION/libjpeg-turbo-$VERSION.tar.gz}

log() { printf '\n==> build_libjpeg_turbo: %s\n' "$*"; }
die() { printf 'build_libjpeg_turbo: error: %s\n' "$*" >&2; exit 1; }

OS=$(uname -s)
ARCH=$(uname -m)
case "$ARCH" in
    x86_64|amd64|i?86) NEED_NASM=1 ;;   # x86 SIMD is written in NASM syntax
    *) NEED_NASM=0 ;;                    # Arm uses NEON intrinsics/GAS: no nasm
esac
if [[ "$OS" == Darwin ]]; then
    # Honour the wheel's target architecture on macOS (one arch per runner).
    case "${ARCHFLAGS:-}" in
        *x86_64*) ARCH=x86_64; NEED_NASM=1 ;;
        *arm64*)  ARCH=arm64;  NEED_NASM=0 ;;
    esac
fi
JOBS=${LJT_JOBS:-$( (command -v nproc >/dev/null && nproc) || sysctl -n hw.ncpu 2>/dev/null || echo 2)}

install_pkg() {  # install_pkg NAME: with whatever package manager exists
    [[ "${LJT_NO_INSTALL:-0}" == 1 ]] && die "$1 is missing and LJT_NO_INSTALL=1"
    local sudo=""
    [[ $(id -u) != 0 ]] && command -v sudo >/dev/null && sudo="sudo"
    if command -v dnf >/dev/null; then $sudo dnf install -y "$1"
    elif command -v yum >/dev/null; then $sudo yum install -y "$1"
    elif command -v apt-get >/dev/null; then $sudo apt-get update -q && $sudo apt-get install -y -q "$1"
    elif command -v apk >/dev/null; then $sudo apk add --no-cache "$1"
    elif command -v brew >/dev/null; then brew install "$1"
    else die "cannot install $1: no known package manager"
    fi
}

log "tools"
if [[ $NEED_NASM == 1 ]] && ! command -v nasm >/dev/null && ! command -v yasm >/dev/null; then
    install_pkg nasm
fi
if ! command -v cmake >/dev/null; then
    [[ "${LJT_NO_INSTALL:-0}" == 1 ]] && die "cmake is missing and LJT_NO_INSTALL=1"
    python3 -m pip install cmake
fi
cmake --version | head -n1
[[ $NEED_NASM == 1 ]] && { nasm -v 2>/dev/null || yasm --version | head -n1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ljt-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
TARBALL="$WORK/libjpeg-turbo-$VERSION.tar.gz"

log "source libjpeg-turbo $VERSION"
if [[ -n "${LJT_TARBALL:-}" ]]; then
    cp "$LJT_TARBALL" "$TARBALL"
elif command -v curl >/dev/null; then
    curl -fsSL --retry 5 --retry-delay 5 -o "$TARBALL" "$URL"
elif command -v wget >/dev/null; then
    wget -q --tries=5 -O "$TARBALL" "$URL"
else
    python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$URL" "$TARBALL"
fi

if command -v sha256sum >/dev/null; then
    GOT=$(sha256sum "$TARBALL" | cut -d' ' -f1)
elif command -v shasum >/dev/null; then
    GOT=$(shasum -a 256 "$TARBALL" | cut -d' ' -f1)
else
    GOT=$(python3 -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$TARBALL")
fi
if [[ "$GOT" != "$SHA256" ]]; then
    die "SHA-256 mismatch for ${LJT_TARBALL:-$URL}: expected $SHA256, got $GOT"
fi
echo "sha256 ok: $GOT"

tar -xzf "$TARBALL" -C "$WORK"
SRC="$WORK/libjpeg-turbo-$VERSION"
[[ -f "$SRC/CMakeLists.txt" ]] || die "no CMakeLists.txt in $SRC"

log "configure (static, -fPIC, SIMD required) for $OS $ARCH"
CMAKE_ARGS=(
    -S "$SRC" -B "$WORK/build"
    -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_INSTALL_PREFIX="$PREFIX"
    -DCMAKE_INSTALL_LIBDIR="$PREFIX/lib"    # absolute: 2.x reads a relative one oddly
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON   # the archive goes into a shared object
    -DENABLE_SHARED=OFF
    -DENABLE_STATIC=ON
    -DWITH_SIMD=ON
    -DREQUIRE_SIMD=ON                      # fail rather than build a slow codec
    -DWITH_TURBOJPEG=OFF                   # fastseq uses the libjpeg API only
    -DWITH_TOOLS=OFF
    -DWITH_TESTS=OFF
    # CMake 4 refuses projects that declare compatibility with CMake < 3.5
    # (libjpeg-turbo 2.x does); older CMake ignores this variable.
    -DCMAKE_POLICY_VERSION_MINIMUM=3.5
)
if [[ "$OS" == Darwin ]]; then
    CMAKE_ARGS+=(-DCMAKE_OSX_ARCHITECTURES="$ARCH")
    [[ -n "${MACOSX_DEPLOYMENT_TARGET:-}" ]] && \
        CMAKE_ARGS+=(-DCMAKE_OSX_DEPLOYMENT_TARGET="$MACOSX_DEPLOYMENT_TARGET")
fi
cmake "${CMAKE_ARGS[@]}"

log "build ($JOBS jobs) and install to $PREFIX"
cmake --build "$WORK/build" --parallel "$JOBS"
cmake --install "$WORK/build"

log "check the result"
LIB="$PREFIX/lib/libjpeg.a"
[[ -f "$LIB" ]] || die "$LIB was not installed"
[[ -f "$PREFIX/include/jpeglib.h" ]] || die "$PREFIX/include/jpeglib.h was not installed"
grep -q '^#define WITH_SIMD' "$PREFIX/include/jconfig.h" \
    || die "jconfig.h does not define WITH_SIMD: the codec was built without SIMD"
# Every object of the archive must be linkable into a shared object (-fPIC).
printf 'int fastseq_ljt_probe(void) { return 0; }\n' > "$WORK/probe.c"
CC=${CC:-cc}
if [[ "$OS" == Darwin ]]; then
    $CC -shared -fPIC -arch "$ARCH" -o "$WORK/probe.so" "$WORK/probe.c" -Wl,-all_load "$LIB"
else
    $CC -shared -fPIC -o "$WORK/probe.so" "$WORK/probe.c" \
        -Wl,--whole-archive "$LIB" -Wl,--no-whole-archive
fi
echo "libjpeg-turbo $VERSION: $LIB (static, position-independent, SIMD)"
grep '^#define LIBJPEG_TURBO_VERSION ' "$PREFIX/include/jconfig.h" || true
