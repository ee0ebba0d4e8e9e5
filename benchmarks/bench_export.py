#!/usr/bin/env python
"""Benchmark of ``sirst-synth export --to basicirstd`` against the build it exports, and of
``build --resume`` on the finished build. Run by hand, not by the tests.

    python benchmarks/bench_export.py --json benchmarks/results/export-<commit>.json

In one run, on the same cores, each repeat (default 3):

1. ``sirst-synth -q build --src SRC -o WORK/build-<i> -j N`` (defaults, a fresh folder);
2. ``sirst-synth -q export WORK/build-<i> --to basicirstd -o WORK/export-<i> -j N``: hard links,
   the split fingerprint (every file hashed) and both image statistics (pooled train, and
   BasicIRSTD's per-image convention over train + test);
3. ``sirst-synth -q build --src SRC -o WORK/build-<i> -j N --resume`` on the finished build;
4. ``sirst-synth --version`` (Python's start, for scale).

Each is a subprocess, timed by wall clock (``time.perf_counter``, start-up included), with the CPU
seconds (user + sys) of its whole process tree. The export's ratio to the build is taken within
each repeat (the two ran back to back, under the same load), and the table shows the best (or
median, ``--stat median``) of the repeats. Targets: export <= 1/3 of the build; ``--resume`` on a
finished build within 1 s of ``--version``.

Every run writes a new folder; nothing is deleted until the end (see bench_build.py on ext4).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_build import DEFAULT_SRC, cli, machine_info, pick  # the shared machine record and summary

TARGET_EXPORT_RATIO = 1 / 3     # export --to basicirstd <= 1/3 of the build's time
TARGET_RESUME_OVER_START = 1.0  # --resume on a finished build: at most 1 s more than --version


def timed(argv: list[str]) -> tuple[float, float]:
    """Run ``argv``; return (wall seconds, CPU seconds of its process tree)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stat", choices=("best", "median"), default="best")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    info = machine_info()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-export-"))
    work.mkdir(parents=True, exist_ok=True)
    jobs = str(args.jobs)
    runs = []
    try:
        for i in range(args.repeat):
            build, export = work / f"build-{i}", work / f"export-{i}"
            b = timed(cli("-q", "build", "--src", str(args.src), "-o", str(build), "-j", jobs))
            e = timed(cli("-q", "export", str(build), "--to", "basicirstd", "-o", str(export), "-j", jobs))
            r = timed(cli("-q", "build", "--src", str(args.src), "-o", str(build), "-j", jobs, "--resume"))
            v = timed(cli("--version"))
            run = {"build_s": b[0], "build_cpu_s": b[1], "export_s": e[0], "export_cpu_s": e[1],
                   "resume_s": r[0], "resume_cpu_s": r[1], "version_s": v[0],
                   "export_over_build": e[0] / b[0], "export_over_build_cpu": e[1] / b[1]}
            runs.append(run)
            print(f"repeat {i + 1}: build {b[0]:.1f} s, export {e[0]:.1f} s ({e[0] / b[0]:.3f} x), "
                  f"--resume {r[0]:.2f} s, --version {v[0]:.2f} s", flush=True)
        record = json.loads((work / "export-0" / "build-0" / "sirst-synth-export.json").read_text())
    finally:
        info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    fig = {key: pick([r[key] for r in runs], args.stat) for key in runs[0]}
    ratio = fig["export_over_build"]
    resume_over = fig["resume_s"] - fig["version_s"]
    checks = {"export <= 1/3 x build": ratio <= TARGET_EXPORT_RATIO,
              "--resume (finished) <= --version + 1 s": resume_over <= TARGET_RESUME_OVER_START}
    print(f"\n{args.src.name}, -j {args.jobs}, {args.stat} of {args.repeat}; load average "
          f"{info['load_average_start']} -> {info['load_average_end']}")
    print(f"{'figure':<44}{'seconds':>10}{'CPU s':>10}")
    print(f"{'build (default)':<44}{fig['build_s']:>10.2f}{fig['build_cpu_s']:>10.2f}")
    print(f"{'export --to basicirstd':<44}{fig['export_s']:>10.2f}{fig['export_cpu_s']:>10.2f}")
    print(f"{'build --resume (finished)':<44}{fig['resume_s']:>10.2f}{fig['resume_cpu_s']:>10.2f}")
    print(f"{'sirst-synth --version':<44}{fig['version_s']:>10.2f}")
    print(f"{'export / build (same repeat)':<44}{ratio:>10.3f}{fig['export_over_build_cpu']:>10.3f}   "
          f"target <= {TARGET_EXPORT_RATIO:.3f}: {'PASS' if checks['export <= 1/3 x build'] else 'FAIL'}")
    print(f"{'--resume - --version':<44}{resume_over:>10.2f}{'':>10}   target <= {TARGET_RESUME_OVER_START:.1f}: "
          f"{'PASS' if checks['--resume (finished) <= --version + 1 s'] else 'FAIL'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "machine": info, "src": str(args.src), "jobs": args.jobs, "repeat": args.repeat, "stat": args.stat,
            "figures": fig, "runs": runs, "targets": {"export_over_build": TARGET_EXPORT_RATIO,
                                                      "resume_minus_version_s": TARGET_RESUME_OVER_START},
            "pass": checks, "export_record": {k: record[k] for k in ("img_norm_cfg", "img_norm_cfg_per_image_train_test",
                                                                     "files", "fingerprint")},
        }, indent=2) + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
