#!/usr/bin/env bash
# Build zlib, libpng and libwebp (with libwebpdemux and libsharpyuv) as
# static, position-independent archives from pinned release tarballs whose
# SHA-256 is checked, and install them to PREFIX (PREFIX/lib/*.a,
# PREFIX/include, and each licence under PREFIX/share/doc/NAME).
#
#   tools/build_codecs.sh PREFIX
#
# cibuildwheel runs this in before-all (pyproject.toml) after
# tools/build_libjpeg_turbo.sh, which is its model; setup.py then links the
# archives because FASTSEQ_PNG_LIBDIR / FASTSEQ_WEBP_LIBDIR name PREFIX/lib,
# which holds no shared library, so the wheel needs no system libpng, zlib
# or libwebp.  It needs internet access to the three releases (or the
# *_TARBALL variables), cmake and a C compiler.
#
# Where it was written there is no internet beyond PyPI and apt, so the
# pinned downloads are unexercised: the pins below are the published
# SHA-256s, each read in at least two independent packaging recipes.  The
# build steps were exercised there with Debian's upstream tarballs of older
# releases (zlib 1.2.13, libpng 1.6.39, libwebp 1.2.4, from `apt-get source`)
# given through the *_TARBALL variables with their versions and SHA-256s
# substituted: the archives installed, linked into fastseq with no shared
# zlib/libpng/libwebp left, and the PNG/WebP/BMP/PNM tests passed on it.
#
# Environment (all optional):
#   ZLIB_TARBALL / PNG_TARBALL / WEBP_TARBALL  local tarballs (still checked)
#   CODECS_NO_INSTALL  1: never install cmake, fail if missing
#   CODECS_JOBS        parallel build jobs (default: CPU count)
set -euo pipefail

PREFIX=${1:?usage: tools/build_codecs.sh PREFIX}

# Pinned releases.  SHA-256s as published in, and cross-checked between:
# zlib 1.3.1     - the Bazel Central Registry and TensorFlow's workspace
#                  (same value for the GitHub release and zlib.net/fossils)
# libpng 1.6.47  - Homebrew's libpng formula and SDL's dependency script
# libwebp 1.5.0  - Homebrew's webp formula, Debian's libwebp_1.5.0.orig.tar.gz
#                  and Arch Linux's PKGBUILD
ZLIB_VERSION=1.3.1
ZLIB_SHA256=9a93b2b7dfdac77ceba5a558a580e74667dd6fede4585b91eefb60f03b72df23
ZLIB_URL=https://github.com/madler/zlib/releases/download/v$ZLIB_VERSION/zlib-$ZLIB_VERSION.tar.gz
PNG_VERSION=1.6.47
PNG_SHA256=b213cb381fbb1175327bd708a77aab708a05adde7b471bc267bd15ac99893631
PNG_URL=https://downloads.sourceforge.net/project/libpng/libpng16/$PNG_VERSION/libpng-$PNG_VERSION.tar.xz
WEBP_VERSION=1.5.0
WEBP_SHA256=7d6fab70cf844bf6769077bd5d7a74893f8ffd4dfb42861745750c63c2a5c92c
WEBP_URL=https://storage.googleapis.com/downloads.webmproject.org/releases/webp/libwebp-$WEBP_VERSION.tar.gz

log() { printf '\n==> build_codecs: %s\n' "$*"; }
die() { printf 'build_codecs: error: %s\n' "$*" >&2; exit 1; }

OS=$(uname -s)
ARCH=$(uname -m)
if [[ "$OS" == Darwin ]]; then
    case "${ARCHFLAGS:-}" in
        *x86_64*) ARCH=x86_64 ;;
        *arm64*)  ARCH=arm64 ;;
    esac
fi
JOBS=${CODECS_JOBS:-$( (command -v nproc >/dev/null && nproc) || sysctl -n hw.ncpu 2>/dev/null || echo 2)}

if ! command -v cmake >/dev/null; then
    [[ "${CODECS_NO_INSTALL:-0}" == 1 ]] && die "cmake is missing and CODECS_NO_INSTALL=1"
    python3 -m pip install cmake
fi
cmake --version | head -n1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/codecs-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

sha256() {
    if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null; then shasum -a 256 "$1" | cut -d' ' -f1
    else python3 -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$1"
    fi
}

# fetch NAME URL SHA256 LOCAL_TARBALL: download (or copy) and check; prints the path
fetch() {
    local name=$1 url=$2 want=$3 local_copy=$4
    local out="$WORK/$(basename "$url")"
    if [[ -n "$local_copy" ]]; then
        cp "$local_copy" "$out"
    elif command -v curl >/dev/null; then
        curl -fsSL --retry 5 --retry-delay 5 -o "$out" "$url"
    elif command -v wget >/dev/null; then
        wget -q --tries=5 -O "$out" "$url"
    else
        python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$url" "$out"
    fi
    local got
    got=$(sha256 "$out")
    [[ "$got" == "$want" ]] || die "SHA-256 mismatch for $name (${local_copy:-$url}): expected $want, got $got"
    echo "sha256 ok: $name $got" >&2
    echo "$out"
}

CMAKE_COMMON=(
    -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_INSTALL_PREFIX="$PREFIX"
    -DCMAKE_INSTALL_LIBDIR=lib
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON   # the archives go into a shared object
    -DBUILD_SHARED_LIBS=OFF
    -DCMAKE_PREFIX_PATH="$PREFIX"
    -DCMAKE_POLICY_VERSION_MINIMUM=3.5
)
if [[ "$OS" == Darwin ]]; then
    CMAKE_COMMON+=(-DCMAKE_OSX_ARCHITECTURES="$ARCH")
    [[ -n "${MACOSX_DEPLOYMENT_TARGET:-}" ]] && \
        CMAKE_COMMON+=(-DCMAKE_OSX_DEPLOYMENT_TARGET="$MACOSX_DEPLOYMENT_TARGET")
fi

# ---------------------------------------------------------------- zlib
log "zlib $ZLIB_VERSION"
tb=$(fetch zlib "$ZLIB_URL" "$ZLIB_SHA256" "${ZLIB_TARBALL:-}")
tar -xzf "$tb" -C "$WORK"
src="$WORK/zlib-$ZLIB_VERSION"
# zlib's own configure: a static libz.a only (its CMake build always makes
# the shared library too).
ZCFLAGS="-O2 -fPIC"
[[ "$OS" == Darwin ]] && ZCFLAGS+=" -arch $ARCH"
(cd "$src" && CFLAGS="$ZCFLAGS" ./configure --static --prefix="$PREFIX" \
    && make -j"$JOBS" && make install)
mkdir -p "$PREFIX/share/doc/zlib"
# zlib's licence is the notice at the top of its README (1.3.1 has a
# LICENSE file too).
cp "$src/README" "$PREFIX/share/doc/zlib/"
[[ -f "$src/LICENSE" ]] && cp "$src/LICENSE" "$PREFIX/share/doc/zlib/"

# ---------------------------------------------------------------- libpng
log "libpng $PNG_VERSION"
tb=$(fetch libpng "$PNG_URL" "$PNG_SHA256" "${PNG_TARBALL:-}")
tar -xJf "$tb" -C "$WORK"
src="$WORK/libpng-$PNG_VERSION"
cmake -S "$src" -B "$WORK/png-build" "${CMAKE_COMMON[@]}" \
    -DPNG_SHARED=OFF -DPNG_STATIC=ON -DPNG_TESTS=OFF -DPNG_TOOLS=OFF \
    -DPNG_FRAMEWORK=OFF -DZLIB_ROOT="$PREFIX" \
    -DZLIB_LIBRARY="$PREFIX/lib/libz.a" -DZLIB_INCLUDE_DIR="$PREFIX/include"
cmake --build "$WORK/png-build" --parallel "$JOBS"
cmake --install "$WORK/png-build"
mkdir -p "$PREFIX/share/doc/libpng"
cp "$src/LICENSE" "$PREFIX/share/doc/libpng/"

# ---------------------------------------------------------------- libwebp
log "libwebp $WEBP_VERSION"
tb=$(fetch libwebp "$WEBP_URL" "$WEBP_SHA256" "${WEBP_TARBALL:-}")
tar -xzf "$tb" -C "$WORK"
src="$WORK/libwebp-$WEBP_VERSION"
# The libraries only (decode, demux; sharpyuv comes with them): no tools,
# so none of them looks for the system's libpng/libjpeg/giflib.
cmake -S "$src" -B "$WORK/webp-build" "${CMAKE_COMMON[@]}" \
    -DWEBP_BUILD_ANIM_UTILS=OFF -DWEBP_BUILD_CWEBP=OFF -DWEBP_BUILD_DWEBP=OFF \
    -DWEBP_BUILD_GIF2WEBP=OFF -DWEBP_BUILD_IMG2WEBP=OFF -DWEBP_BUILD_VWEBP=OFF \
    -DWEBP_BUILD_WEBPINFO=OFF -DWEBP_BUILD_WEBPMUX=OFF -DWEBP_BUILD_EXTRAS=OFF \
    -DWEBP_BUILD_LIBWEBPMUX=OFF
cmake --build "$WORK/webp-build" --parallel "$JOBS"
cmake --install "$WORK/webp-build"
mkdir -p "$PREFIX/share/doc/libwebp"
cp "$src/COPYING" "$src/PATENTS" "$PREFIX/share/doc/libwebp/"
# libsharpyuv is a library of its own from libwebp 1.3 on (the pinned 1.5.0
# installs it; libwebp.a's encoder needs it); before, its objects were
# inside libwebp.a.
SHARPYUV=""
grep -q "add_library(sharpyuv[ )]" "$src/CMakeLists.txt" \
    && ! grep -q "add_library(sharpyuv OBJECT" "$src/CMakeLists.txt" && SHARPYUV=libsharpyuv

# ---------------------------------------------------------------- check
log "check the result"
for f in lib/libz.a lib/libpng16.a lib/libwebp.a lib/libwebpdemux.a \
         ${SHARPYUV:+lib/$SHARPYUV.a} \
         include/zlib.h include/png.h include/webp/decode.h include/webp/demux.h; do
    [[ -f "$PREFIX/$f" ]] || die "$PREFIX/$f was not installed"
done
# No shared copy may sit beside the archives: the linker would prefer it.
if ls "$PREFIX"/lib/*.so* "$PREFIX"/lib/*.dylib >/dev/null 2>&1; then
    die "shared libraries in $PREFIX/lib: $(ls "$PREFIX"/lib/*.so* "$PREFIX"/lib/*.dylib 2>/dev/null)"
fi
# Every object of every archive must be linkable into a shared object (-fPIC).
printf 'int fastseq_codecs_probe(void) { return 0; }\n' > "$WORK/probe.c"
CC=${CC:-cc}
LSHARP=${SHARPYUV:+-lsharpyuv}
for a in libz libpng16 $SHARPYUV libwebp libwebpdemux; do
    if [[ "$OS" == Darwin ]]; then
        $CC -shared -fPIC -arch "$ARCH" -o "$WORK/probe.so" "$WORK/probe.c" \
            -Wl,-force_load,"$PREFIX/lib/$a.a" -L"$PREFIX/lib" -lwebp $LSHARP -lz
    else
        $CC -shared -fPIC -o "$WORK/probe.so" "$WORK/probe.c" \
            -Wl,--whole-archive "$PREFIX/lib/$a.a" -Wl,--no-whole-archive \
            -L"$PREFIX/lib" $LSHARP -lz -lm -pthread
    fi
done
echo "zlib $ZLIB_VERSION, libpng $PNG_VERSION, libwebp $WEBP_VERSION: static, position-independent, in $PREFIX"
