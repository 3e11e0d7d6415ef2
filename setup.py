"""Build script for fastseq's native extension.

fastseq links libjpeg-turbo (the libjpeg API).  Where it comes from, in order:

``FASTSEQ_JPEG_STATIC=/prefix/lib/libjpeg.a``
    Link this static archive into the extension (it must be built with
    -fPIC; tools/build_libjpeg_turbo.sh makes one).  Headers are taken from
    ``FASTSEQ_JPEG_INCLUDE``, or else from ``/prefix/include``.  This is how
    the published wheels are built: they need no libjpeg at run time.
``FASTSEQ_JPEG_INCLUDE`` / ``FASTSEQ_JPEG_LIBDIR`` / ``FASTSEQ_JPEG_LIBS``
    Directories holding jpeglib.h and the library, and the space-separated
    library names (default ``jpeg``).  Linked dynamically.
otherwise
    pkg-config ``libjpeg``, then the compiler's default paths.  Linked
    dynamically; ``auditwheel repair`` / ``delocate`` then copy the library
    into the wheel (see tools/build_wheel.sh).

fastseq also links libpng 1.6 (PNG decoding) and zlib.  They come from
``FASTSEQ_PNG_INCLUDE`` / ``FASTSEQ_PNG_LIBDIR`` / ``FASTSEQ_PNG_LIBS``
(default ``png16 z``) when set, else pkg-config ``libpng``, else the
compiler's default paths; a missing png.h stops the build naming the package.

And libwebp (WebP decoding) with libwebpdemux (the first frame of an
animation), from ``FASTSEQ_WEBP_INCLUDE`` / ``FASTSEQ_WEBP_LIBDIR`` /
``FASTSEQ_WEBP_LIBS`` (default ``webpdemux webp``) when set, else pkg-config
``libwebpdemux`` (which brings libwebp), else the compiler's default paths; a
missing webp/decode.h or webp/demux.h stops the build naming libwebp-dev.

The library lookups and the Cython step run when the extension is built
(``build_ext``), not when this file is loaded, so that an sdist or the
project metadata can be made on a machine without libjpeg-turbo or numpy.
A missing jpeglib.h stops the build with instructions (see ``_missing``).
"""
import os
import shlex
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext

ENV_VARS = ("FASTSEQ_JPEG_STATIC", "FASTSEQ_JPEG_INCLUDE", "FASTSEQ_JPEG_LIBDIR",
            "FASTSEQ_JPEG_LIBS", "FASTSEQ_PNG_INCLUDE", "FASTSEQ_PNG_LIBDIR",
            "FASTSEQ_PNG_LIBS", "FASTSEQ_WEBP_INCLUDE", "FASTSEQ_WEBP_LIBDIR",
            "FASTSEQ_WEBP_LIBS")

# The C sources of the extension (besides fastseq/_native.pyx).
CSRC = ["csrc/jpeg_decode.c", "csrc/png_decode.c", "csrc/webp_decode.c", "csrc/bmp_decode.c", "csrc/pnm_decode.c", "csrc/resample.c", "csrc/resample_simd.c", "csrc/pool.c", "csrc/batch.c", "csrc/warp.c", "csrc/cache.c", "csrc/bufpool.c"]

# Where compilers look for headers when no directory is given.
DEFAULT_INCLUDE_DIRS = ["/usr/include", "/usr/local/include",
                        "/opt/homebrew/include", "/opt/libjpeg-turbo/include"]


def _pkg_config(*args, package="libjpeg"):
    try:
        out = subprocess.run(["pkg-config", *args, package], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return shlex.split(out)


def _missing(what):
    """Stop the build with instructions for getting libjpeg-turbo."""
    sys.stderr.write(
        "\n"
        f"fastseq: {what}\n"
        "  fastseq is built against libjpeg-turbo (the libjpeg API: jpeglib.h\n"
        "  and libjpeg).  Install it, then build again:\n"
        "    Debian/Ubuntu: apt-get install libjpeg62-turbo-dev (or libjpeg-turbo8-dev)\n"
        "    Fedora/RHEL:   dnf install libjpeg-turbo-devel\n"
        "    macOS:         brew install jpeg-turbo\n"
        "  or point the build at an installation with environment variables:\n"
        "    FASTSEQ_JPEG_INCLUDE=/path/include FASTSEQ_JPEG_LIBDIR=/path/lib pip install .\n"
        "    (FASTSEQ_JPEG_LIBS='jpeg' names the library; FASTSEQ_JPEG_STATIC=/path/lib/libjpeg.a\n"
        "    links a static, -fPIC libjpeg-turbo, see tools/build_libjpeg_turbo.sh)\n"
        "  Prebuilt wheels (pip install fastseq) need none of this.\n\n")
    raise SystemExit(1)


def _has_header(d):
    return os.path.isfile(os.path.join(d, "jpeglib.h"))


def _jpeg_config():
    """(include_dirs, library_dirs, libraries, extra_objects) for libjpeg-turbo."""
    static = os.environ.get("FASTSEQ_JPEG_STATIC")
    inc = os.environ.get("FASTSEQ_JPEG_INCLUDE")
    if static:
        if not os.path.isfile(static):
            _missing(f"FASTSEQ_JPEG_STATIC={static} is not a file.")
        if not inc:
            inc = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(static))),
                               "include")
        if not _has_header(inc):
            _missing(f"cannot find jpeglib.h in {inc} (the headers for "
                     f"FASTSEQ_JPEG_STATIC={static}; set FASTSEQ_JPEG_INCLUDE).")
        return [inc], [], [], [static]

    libdir = os.environ.get("FASTSEQ_JPEG_LIBDIR")
    libs = os.environ.get("FASTSEQ_JPEG_LIBS", "jpeg").split()
    if inc or libdir:
        include_dirs = [inc] if inc else []
        library_dirs = [libdir] if libdir else []
        if inc and not _has_header(inc):
            # An explicit directory is a promise: do not fall back silently.
            _missing(f"cannot find libjpeg-turbo's header jpeglib.h in "
                     f"FASTSEQ_JPEG_INCLUDE={inc}.")
    else:
        include_dirs, library_dirs = [], []
        cflags = _pkg_config("--cflags")
        ldflags = _pkg_config("--libs")
        if cflags is not None:
            include_dirs = [f[2:] for f in cflags if f.startswith("-I")]
        if ldflags is not None:
            library_dirs = [f[2:] for f in ldflags if f.startswith("-L")]
            libs = [f[2:] for f in ldflags if f.startswith("-l")] or libs
    if not any(_has_header(d) for d in include_dirs + DEFAULT_INCLUDE_DIRS):
        if not os.environ.get("FASTSEQ_SKIP_HEADER_CHECK"):
            _missing("cannot find libjpeg-turbo's header jpeglib.h.")
    return include_dirs, library_dirs, libs, []


def _png_config():
    """(include_dirs, library_dirs, libraries) for libpng and zlib."""
    inc = os.environ.get("FASTSEQ_PNG_INCLUDE")
    libdir = os.environ.get("FASTSEQ_PNG_LIBDIR")
    libs = os.environ.get("FASTSEQ_PNG_LIBS", "png16 z").split()
    include_dirs, library_dirs = [inc] if inc else [], [libdir] if libdir else []
    if not (inc or libdir):
        cflags = _pkg_config("--cflags", package="libpng")
        ldflags = _pkg_config("--libs", package="libpng")
        if cflags is not None:
            include_dirs = [f[2:] for f in cflags if f.startswith("-I")]
        if ldflags is not None:
            library_dirs = [f[2:] for f in ldflags if f.startswith("-L")]
            # png_decode.c calls zlib's crc32 itself.
            libs = [f[2:] for f in ldflags if f.startswith("-l")] + ["z"]
    has = lambda d: os.path.isfile(os.path.join(d, "png.h"))
    if not any(has(d) for d in include_dirs + ([] if inc else DEFAULT_INCLUDE_DIRS)):
        if not os.environ.get("FASTSEQ_SKIP_HEADER_CHECK"):
            sys.stderr.write(
                "\n"
                f"fastseq: cannot find libpng's header png.h{' in ' + inc if inc else ''}.\n"
                "  fastseq decodes PNG with libpng 1.6 (and zlib).  Install it, then build again:\n"
                "    Debian/Ubuntu: apt-get install libpng-dev (it brings zlib1g-dev)\n"
                "    Fedora/RHEL:   dnf install libpng-devel\n"
                "    macOS:         brew install libpng\n"
                "  or set FASTSEQ_PNG_INCLUDE / FASTSEQ_PNG_LIBDIR (and FASTSEQ_PNG_LIBS,\n"
                "  default 'png16 z').\n\n")
            raise SystemExit(1)
    return include_dirs, library_dirs, libs


def _webp_config():
    """(include_dirs, library_dirs, libraries) for libwebp and libwebpdemux."""
    inc = os.environ.get("FASTSEQ_WEBP_INCLUDE")
    libdir = os.environ.get("FASTSEQ_WEBP_LIBDIR")
    libs = os.environ.get("FASTSEQ_WEBP_LIBS", "webpdemux webp").split()
    include_dirs, library_dirs = [inc] if inc else [], [libdir] if libdir else []
    if not (inc or libdir):
        cflags = _pkg_config("--cflags", package="libwebpdemux")
        ldflags = _pkg_config("--libs", package="libwebpdemux")
        if cflags is not None:
            # pkg-config names .../include/webp; the sources include <webp/...>.
            include_dirs = [os.path.dirname(f[2:].rstrip("/")) if f.rstrip("/").endswith("/webp")
                            else f[2:] for f in cflags if f.startswith("-I")]
        if ldflags is not None:
            library_dirs = [f[2:] for f in ldflags if f.startswith("-L")]
            libs = [f[2:] for f in ldflags if f.startswith("-l")] or libs
    has = lambda d: all(os.path.isfile(os.path.join(d, "webp", h))
                        for h in ("decode.h", "demux.h"))
    if not any(has(d) for d in include_dirs + ([] if inc else DEFAULT_INCLUDE_DIRS)):
        if not os.environ.get("FASTSEQ_SKIP_HEADER_CHECK"):
            sys.stderr.write(
                "\n"
                f"fastseq: cannot find libwebp's headers webp/decode.h and webp/demux.h"
                f"{' in ' + inc if inc else ''}.\n"
                "  fastseq decodes WebP with libwebp (and libwebpdemux for animations).\n"
                "  Install it, then build again:\n"
                "    Debian/Ubuntu: apt-get install libwebp-dev\n"
                "    Fedora/RHEL:   dnf install libwebp-devel\n"
                "    macOS:         brew install webp\n"
                "  or set FASTSEQ_WEBP_INCLUDE (the directory holding webp/) /\n"
                "  FASTSEQ_WEBP_LIBDIR (and FASTSEQ_WEBP_LIBS, default 'webpdemux webp').\n\n")
            raise SystemExit(1)
    return include_dirs, library_dirs, libs


def _configure(ext):
    """Fill in libjpeg-turbo, libpng, libwebp and numpy, and turn the .pyx into C, in place."""
    include_dirs, library_dirs, libs, extra_objects = _jpeg_config()
    png_inc, png_libdirs, png_libs = _png_config()
    include_dirs = include_dirs + [d for d in png_inc if d not in include_dirs]
    library_dirs = library_dirs + [d for d in png_libdirs if d not in library_dirs]
    libs = libs + [l for l in png_libs if l not in libs]
    webp_inc, webp_libdirs, webp_libs = _webp_config()
    include_dirs = include_dirs + [d for d in webp_inc if d not in include_dirs]
    library_dirs = library_dirs + [d for d in webp_libdirs if d not in library_dirs]
    libs = libs + [l for l in webp_libs if l not in libs]
    import numpy
    from Cython.Build import cythonize

    ext.include_dirs = ["csrc", numpy.get_include()] + include_dirs
    ext.library_dirs = library_dirs
    ext.libraries = libs
    ext.extra_objects = extra_objects
    if sys.platform.startswith("linux"):
        # Keep the symbols of any static codec (libjpeg-turbo, or the zlib,
        # libpng and libwebp archives of tools/build_codecs.sh) private to
        # the extension; shared libraries are not affected.
        ext.extra_link_args = ext.extra_link_args + ["-Wl,--exclude-libs,ALL"]
    (c_ext,) = cythonize([ext], language_level=3, quiet=True,
                         compiler_directives={"boundscheck": False,
                                              "wraparound": False,
                                              "cdivision": True,
                                              "embedsignature": True})
    ext.sources = c_ext.sources
    ext.depends = sorted(set(ext.depends) | set(getattr(c_ext, "depends", [])))


def _codec_notices():
    """{vendor folder: licence files} of the codecs tools/build_codecs.sh
    installed (PREFIX/share/doc/NAME beside the FASTSEQ_*_LIBDIR archives),
    to ship in a wheel that links them statically."""
    found = {}
    for var, names in (("FASTSEQ_PNG_LIBDIR", ("zlib", "libpng")),
                       ("FASTSEQ_WEBP_LIBDIR", ("libwebp",))):
        libdir = os.environ.get(var)
        if not libdir:
            continue
        for name in names:
            doc = os.path.join(os.path.dirname(os.path.abspath(libdir)), "share", "doc", name)
            if os.path.isdir(doc):
                found[name] = [os.path.join(doc, f) for f in sorted(os.listdir(doc))]
    return found


def _static_notices():
    """libjpeg-turbo's licence files, to ship in a wheel that embeds it
    statically (its IJG and BSD-style licences ask for the notice)."""
    static = os.environ.get("FASTSEQ_JPEG_STATIC")
    if not static:
        return []
    prefix = os.path.dirname(os.path.dirname(os.path.abspath(static)))
    docdir = os.environ.get("FASTSEQ_JPEG_LICENSE_DIR",
                            os.path.join(prefix, "share", "doc", "libjpeg-turbo"))
    found = [os.path.join(docdir, n) for n in ("LICENSE.md", "README.ijg")
             if os.path.isfile(os.path.join(docdir, n))]
    if not found:
        sys.stderr.write(f"fastseq: warning: no libjpeg-turbo LICENSE.md in {docdir}; "
                         "the wheel will not carry its licence notice\n")
    return found


class build_ext(_build_ext):
    def run(self):
        for ext in self.extensions:
            _configure(ext)
        super().run()
        if not self.inplace:
            import shutil
            dest = os.path.join(self.build_lib, "fastseq", "_vendor", "libjpeg-turbo")
            for path in _static_notices():
                os.makedirs(dest, exist_ok=True)
                shutil.copy(path, dest)
            for name, paths in _codec_notices().items():
                d = os.path.join(self.build_lib, "fastseq", "_vendor", name)
                os.makedirs(d, exist_ok=True)
                for path in paths:
                    shutil.copy(path, d)


def extensions():
    # GCC or Clang on a POSIX system: the C core uses pthreads, POSIX file I/O
    # and GNU C builtins, so there is no MSVC variant of these flags (see the
    # Windows note in pyproject.toml).
    extra_compile_args = ["-O3", "-std=gnu11", "-ffp-contract=off",
                          "-fvisibility=hidden", "-Wall", "-Wno-unused-function"]
    extra_link_args = ["-pthread"]
    return [Extension(
        "fastseq._native",
        sources=["fastseq/_native.pyx"] + CSRC,
        depends=["fastseq/csrc.pxd"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=extra_compile_args,
        extra_link_args=extra_link_args,
    )]


if __name__ == "__main__":
    setup(ext_modules=extensions(), cmdclass={"build_ext": build_ext})
