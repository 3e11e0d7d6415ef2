"""What every part of the benchmark shares: the user-error exception, the
one-line form of an exception, the test hook that hides modules, and the
runner of the benchmark's child Python processes."""

from __future__ import annotations

import os
import subprocess
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


def fastseq_path() -> list[str]:
    """What a child process puts first on ``sys.path`` to import this
    process's fastseq (an in-place build or an install)."""
    import fastseq

    return [os.path.dirname(os.path.dirname(os.path.abspath(fastseq.__file__)))]


def run_python_child(code: str, args: list[str], timeout: float,
                     what: str) -> subprocess.CompletedProcess:
    """``python -c code *args`` in a new process, its output captured and
    TensorFlow's C++ logging quiet (TF_CPP_MIN_LOG_LEVEL 2 unless set).  A
    child still running after `timeout` seconds is killed:
    RuntimeError "`what` did not finish within ... (killed)"."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                              text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{what} did not finish within {timeout:g} s (killed)") from None


def child_failure(what: str, proc: subprocess.CompletedProcess) -> RuntimeError:
    """The error for a child (run_python_child) that gave no result: its
    exit status and the last line of its stderr."""
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    return RuntimeError(f"{what} failed (exit {proc.returncode}): {tail}")
