"""What each ``--precision`` does to training quality, measured on the CPU (docs/experiment.md).

The setting, one in which bf16 trains worse than fp32: NUDT-SIRST, width 8, 128 x 128 crops,
batch 8, 800 steps, scored on the 664 test images; seeds 0 and 1; fp32, and tf32, bf16 and fp16
emulated (:mod:`sirst_synth.train.precision`: rounded convolution operands, fp32 accumulation).
One thread per run, ``-j`` runs at once; resumable (finished runs are kept). Writes
``results/precision-cpu.json``.

    python benchmarks/precision_cpu.py --nudt ../shared/datasets/NUDT-SIRST --work runs/precision-cpu
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
SEEDS = (0, 1)
SETTING = ["--width", "8", "--crop", "128", "--batch-size", "8", "--steps", "800", "--device", "cpu",
           "--log-every", "100", "--save-every-min", "2"]


def run(nudt: Path, work: Path, precision: str, seed: int) -> dict[str, object]:
    """Train (or resume, or reuse) one run; return its record."""
    sys.path.insert(0, str(REPO))
    from sirst_synth.train.compare import one_thread_env

    out = work / f"{precision}-s{seed}"
    metrics = out / "metrics.json"
    if not (metrics.is_file() and json.loads(metrics.read_text())["done"]):
        args = (["--resume", "-o", str(out)] if (out / "last.pt").is_file() else
                ["--data", str(nudt), *SETTING, "--precision", precision, "--seed", str(seed), "-o", str(out)])
        with open(work / f"{precision}-s{seed}.log", "ab") as console:
            subprocess.run([sys.executable, "-m", "sirst_synth", "train", *args], stdout=console,
                           stderr=subprocess.STDOUT, env={**one_thread_env(), "PYTHONPATH": str(REPO)}, check=True)
    m = json.loads(metrics.read_text())
    return {"precision": precision, "seed": seed, "described": m["precision"], **m["last"],
            "final_loss": _final_loss(out), "seconds_per_step": m["seconds_per_step"]}


def _final_loss(out: Path) -> float:
    import csv

    with open(out / "log.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["loss"]]
    return float(rows[-1]["loss"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nudt", type=Path, default=REPO.parent / "shared" / "datasets" / "NUDT-SIRST")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "precision-cpu")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)),
                        help="train only these seeds' runs now (the summary needs all of them)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    now = [int(s) for s in args.seeds.split(",")]
    jobs = [(p, s) for s in now for p in PRECISIONS]
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda job: run(args.nudt.resolve(), args.work.resolve(), *job), jobs))
    if sorted(now) != sorted(SEEDS):
        return
    summary = {}
    for precision in PRECISIONS:
        mine = [r for r in runs if r["precision"] == precision]
        summary[precision] = {k: {"per_seed": [r[k] for r in mine], "mean": statistics.fmean(r[k] for r in mine)}
                              for k in ("mIoU", "nIoU", "Pd", "Fa", "final_loss")}  # type: ignore[misc]
    result = {"setting": SETTING, "seeds": list(SEEDS), "runs": runs, "summary": summary}
    path = REPO / "benchmarks" / "results" / "precision-cpu.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for precision, s in summary.items():
        print(f"{precision}: mIoU {s['mIoU']['per_seed']} final loss {s['final_loss']['per_seed']}")


if __name__ == "__main__":
    main()
