"""``python -m fastseq`` / the ``fastseq`` command.

Subcommands:

* ``bench [DIR] [options]``: compare image loaders (see fastseq.bench).
* ``info``: versions, the libjpeg-turbo build, SIMD state and thread count.
"""

from __future__ import annotations

import sys

USAGE = """usage: fastseq {bench,info} ...

  fastseq bench [DIR] [--size 224] [--batch-size 64] [--threads N]
                [--loaders LIST] [--rounds R] [--fit] [--json FILE] [--plot FILE]
      compare image loaders on DIR or on a generated default dataset
      (fastseq bench --help for every option)
  fastseq info
      versions, libjpeg-turbo build and SIMD state, thread count"""


def info_main(argv=None, prog="fastseq info"):
    if argv:
        print(f"{prog}: error: unexpected arguments: {' '.join(argv)}", file=sys.stderr)
        return 2
    import fastseq
    from fastseq.bench import collect_environment

    inf = fastseq.info()
    machine, versions = collect_environment()
    rows = [
        ("fastseq", inf["fastseq"]),
        ("libjpeg-turbo", f"{inf['libjpeg_turbo']} (built with SIMD: "
                          f"{'yes' if inf['simd_built'] else 'no'}; SIMD active: "
                          f"{'yes' if inf['simd'] else 'no'})"),
        ("resize SIMD", f"{inf['resize_simd']} (fastseq's resampler; results are identical either way)"),
        ("threads", f"{inf['threads']} (set with fastseq.set_num_threads or FASTSEQ_NUM_THREADS)"),
        ("cores", f"{machine['cores_used']} usable of {machine['cores_total']}"),
        ("CPU", machine["cpu"]),
        ("Pillow", versions["pillow"]),
        ("numpy", versions["numpy"]),
        ("TensorFlow", versions["tensorflow"] or "not installed"),
        ("Keras", versions["keras"] or "not installed"),
        ("PyTurboJPEG", versions["pyturbojpeg"] or "not installed"),
        ("Python", f"{machine['python']} on {machine['platform']}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "bench":
        from fastseq.bench import bench_main

        return bench_main(rest, prog="fastseq bench")
    if cmd == "info":
        return info_main(rest)
    print(f"fastseq: error: unknown command {cmd!r}; expected 'bench' or 'info' "
          "(see fastseq --help)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
