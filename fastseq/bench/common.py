"""What every part of the benchmark shares: the user-error exception, the
one-line form of an exception, and the test hook that hides modules."""

from __future__ import annotations

import os
import sys

#: Set by tests to make modules unimportable (comma-separated names, e.g.
#: "turbojpeg,tensorflow"): in the loader workers, in the ``--fit`` run
#: (``"fastseq.bench.fitbench"`` hides the fit benchmark itself) and in the
#: versions the report prints.  It simulates a peer that is not installed.
HIDE_ENV = "FASTSEQ_BENCH_HIDE_MODULES"


class BenchError(Exception):
    """A user error (bad argument or input): printed as one line."""


def hidden_modules() -> list[str]:
    """The module names HIDE_ENV hides."""
    return [s for s in (s.strip() for s in os.environ.get(HIDE_ENV, "").split(",")) if s]


def hide_modules() -> None:
    """Make the modules HIDE_ENV names unimportable in this process."""
    for name in hidden_modules():
        sys.modules[name] = None        # "import name" now raises ImportError


#: Keras backends' packages, as a reason names them.
_BACKENDS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def keras_import_failure(exc: ImportError) -> str:
    """Why ``import keras`` failed, in one line: most often the package of
    the backend Keras is set to (``KERAS_BACKEND``) is not installed."""
    missing = (exc.name or "").split(".")[0]
    if missing in _BACKENDS:
        return (f"{_BACKENDS[missing]} is not installed, and Keras is set to use it as its "
                f"backend ({exc}); set KERAS_BACKEND to an installed one")
    return f"Keras cannot be imported ({one_line(exc)})"


def one_line(exc: BaseException) -> str:
    """``"TypeName: first line of the message"``."""
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else ''}".rstrip(": ")
