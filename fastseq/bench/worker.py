"""One loader's process and its message protocol (see :func:`worker_main`).

Each loader runs in its own ``multiprocessing`` spawn process, so that no
loader inherits another's threads, caches or imports.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback

from fastseq.bench.common import hide_modules, one_line
from fastseq.bench.loaders import LOADER_CLASSES, Unavailable


def worker_main(conn, cfg):
    """Entry point of a loader process.  Protocol (tuples over `conn`):
    parent sends ("prepare", paths, view) | ("run", n_batches|None) | ("stop",);
    worker answers ("ready", output) | ("unavailable", why) | ("failed", why)
    once after start, then ("ok",) / ("failed", why) to prepare, and
    ("progress", k)* then ("done", seconds, n_images) / ("failed", why) to run.
    """
    # Ctrl-C is the parent's to handle: it stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Library chatter (TensorFlow's logs, Keras' "Found N images") goes to the
    # worker's log file, never into the report.
    log = os.open(cfg["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    hide_modules()
    try:
        loader = LOADER_CLASSES[cfg["name"]](cfg)
    except Unavailable as e:
        conn.send(("unavailable", str(e)))
        return
    except ImportError as e:
        conn.send(("unavailable", f"cannot import {getattr(e, 'name', None) or 'a module'} ({e})"))
        return
    except Exception as e:          # noqa: BLE001 -- reported, never raised
        traceback.print_exc()
        conn.send(("failed", one_line(e)))
        return
    conn.send(("ready", loader.output))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        try:
            if msg[0] == "prepare":
                loader.prepare(msg[1], msg[2])
                conn.send(("ok",))
            elif msg[0] == "run":
                send = conn.send
                t0 = time.perf_counter()
                n = loader.run(msg[1], lambda k: send(("progress", k)))
                conn.send(("done", time.perf_counter() - t0, n))
        except Exception as e:      # noqa: BLE001
            traceback.print_exc()
            conn.send(("failed", one_line(e)))


class WorkerDied(Exception):
    """The worker process exited or its pipe broke."""


class Worker:
    """The parent's handle on one loader process."""

    def __init__(self, ctx, loader, cfg):
        self.loader = loader
        self.log = cfg["log"]
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child, cfg), daemon=True,
                                name=f"fastseq-bench-{loader.key}")
        self.proc.start()
        child.close()

    def recv(self):
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(1)
            raise WorkerDied(f"worker process died (exit code {self.proc.exitcode})"
                             f"{self._log_tail()}") from None

    def _log_tail(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                lines = [l.strip() for l in f if l.strip()]
        except OSError:
            return ""
        return f"; last log line: {lines[-1][:200]}" if lines else ""

    def send(self, *msg):
        try:
            self.conn.send(msg)
        except (BrokenPipeError, OSError):
            raise WorkerDied("worker process is gone") from None

    def request(self, *msg, on_progress=None):
        """Send one request and return its final reply, handing each
        ``("progress", k)`` on the way to `on_progress`.  A worker that dies
        meanwhile answers ``("failed", why)``."""
        try:
            self.send(*msg)
            reply = self.recv()
            while reply[0] == "progress":
                if on_progress is not None:
                    on_progress(reply[1])
                reply = self.recv()
        except WorkerDied as e:
            return ("failed", str(e))
        return reply

    def stop(self, timeout=2.0):
        if self.proc.is_alive():
            try:
                self.conn.send(("stop",))
            except OSError:
                pass
            self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


