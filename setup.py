"""Build script for fastseq's native extension.

libjpeg-turbo is found with pkg-config (``libjpeg``), or taken from the
environment: ``FASTSEQ_JPEG_INCLUDE`` / ``FASTSEQ_JPEG_LIBDIR`` (directories)
and ``FASTSEQ_JPEG_LIBS`` (space-separated library names, default ``jpeg``).
It is linked dynamically: a wheel carries the library via ``auditwheel
repair`` (see tools/build_wheel.sh).
"""
import os
import shlex
import subprocess
import sys

from setuptools import Extension, setup


def _pkg_config(*args):
    try:
        out = subprocess.run(["pkg-config", *args, "libjpeg"], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return shlex.split(out)


def _jpeg_config():
    inc = os.environ.get("FASTSEQ_JPEG_INCLUDE")
    libdir = os.environ.get("FASTSEQ_JPEG_LIBDIR")
    libs = os.environ.get("FASTSEQ_JPEG_LIBS", "jpeg").split()
    include_dirs, library_dirs = [], []
    if inc or libdir:
        include_dirs = [inc] if inc else []
        library_dirs = [libdir] if libdir else []
    else:
        cflags = _pkg_config("--cflags")
        ldflags = _pkg_config("--libs")
        if cflags is not None:
            include_dirs = [f[2:] for f in cflags if f.startswith("-I")]
        if ldflags is not None:
            library_dirs = [f[2:] for f in ldflags if f.startswith("-L")]
            found = [f[2:] for f in ldflags if f.startswith("-l")]
            libs = found or libs
    _check_header(include_dirs)
    return include_dirs, library_dirs, libs


def _check_header(include_dirs):
    """Fail early, with instructions, when jpeglib.h cannot be found."""
    candidates = list(include_dirs) + ["/usr/include", "/usr/local/include",
                                       "/opt/homebrew/include",
                                       "/opt/libjpeg-turbo/include"]
    if any(os.path.exists(os.path.join(d, "jpeglib.h")) for d in candidates):
        return
    if os.environ.get("FASTSEQ_SKIP_HEADER_CHECK"):
        return
    sys.stderr.write(
        "\n"
        "fastseq: cannot find libjpeg-turbo's header jpeglib.h.\n"
        "  fastseq is built against libjpeg-turbo (the libjpeg API).\n"
        "  Install it, then build again:\n"
        "    Debian/Ubuntu: apt-get install libjpeg62-turbo-dev (or libjpeg-turbo8-dev)\n"
        "    Fedora/RHEL:   dnf install libjpeg-turbo-devel\n"
        "    macOS:         brew install jpeg-turbo\n"
        "  or point the build at an installation:\n"
        "    FASTSEQ_JPEG_INCLUDE=/path/include FASTSEQ_JPEG_LIBDIR=/path/lib pip install .\n"
        "  Prebuilt wheels (pip install fastseq) need none of this.\n\n")
    raise SystemExit(1)


def extensions():
    import numpy
    from Cython.Build import cythonize

    include_dirs, library_dirs, libs = _jpeg_config()
    csrc = ["csrc/jpeg_decode.c", "csrc/resample.c", "csrc/pool.c",
            "csrc/batch.c"]
    if sys.platform == "win32":
        extra_compile_args = ["/O2"]
        extra_link_args = []
    else:
        extra_compile_args = ["-O3", "-std=gnu11", "-ffp-contract=off",
                              "-fvisibility=hidden", "-Wall", "-Wno-unused-function"]
        extra_link_args = ["-pthread"]
    ext = Extension(
        "fastseq._core",
        sources=["fastseq/_core.pyx"] + csrc,
        include_dirs=["csrc", numpy.get_include()] + include_dirs,
        library_dirs=library_dirs,
        libraries=libs,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=extra_compile_args,
        extra_link_args=extra_link_args,
    )
    return cythonize([ext], language_level=3,
                     compiler_directives={"boundscheck": False,
                                          "wraparound": False,
                                          "cdivision": True,
                                          "embedsignature": True})


setup(ext_modules=extensions())
