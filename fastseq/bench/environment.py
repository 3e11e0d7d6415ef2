"""Facts about the machine and the installed versions, and the CPU time
other processes take during a run (the report's noise warning)."""

from __future__ import annotations

import os
import platform

from fastseq.bench.common import hidden_modules

def _read_cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _dist_version(*names):
    from importlib import metadata

    for n in names:
        try:
            return metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return None


def collect_environment():
    """(machine, versions) dicts, without importing TensorFlow.  A package
    that the HIDE_ENV test hook hides is reported as not installed (None)."""
    import numpy as np
    import PIL

    import fastseq
    from fastseq.threads import usable_cpus

    inf = fastseq.info()
    cores = usable_cpus()
    machine = dict(cpu=_read_cpu_model(), cores_used=cores, cores_total=os.cpu_count() or cores,
                   platform=platform.platform(terse=True), python=platform.python_version())
    hidden = set(hidden_modules())
    versions = dict(fastseq=inf["fastseq"], libjpeg_turbo=inf["libjpeg_turbo"],
                    simd=bool(inf["simd"]), pillow=PIL.__version__, numpy=np.__version__)
    for key, module, dists in (("tensorflow", "tensorflow",
                                ("tensorflow", "tensorflow-cpu", "tf-nightly")),
                               ("keras", "keras", ("keras",)),
                               ("pyturbojpeg", "turbojpeg", ("PyTurboJPEG",))):
        versions[key] = None if module in hidden else _dist_version(*dists)
    return machine, versions


def busy_cpu_seconds():
    """CPU seconds all processes of the machine have used (Linux), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def own_cpu_seconds():
    # children_* count the worker processes once they are joined.
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system

