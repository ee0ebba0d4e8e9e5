#!/usr/bin/env python
"""Benchmark of the trainer's data path and step. Run by hand, not by the tests.

    OMP_NUM_THREADS=1 python benchmarks/bench_train.py --json benchmarks/results/train-cpu.json
    python benchmarks/bench_train.py --ref-code /tmp/ref-trainer      # + run A against another trainer
    python benchmarks/bench_train.py --paper                            # CUDA: paper-scale step too

In one run, on the machine it runs on, it measures:

- the data path alone, from the PNG build and from its ``.h5``: the device-resident loader
  (load once, then batched crops on the device) against the streaming DataLoader (decode and crop
  image by image, from the files; 0 workers on CPU, 8 on CUDA), in images/s;
- one training step (forward, backward, Adagrad) at ``--width``, ``--crop``, ``--batch`` with
  batches already on the device, and the ratio of a device-resident batch to a step (target < 5 %);
- on CUDA with ``--paper``: a step at width 32, batch 256, crop 256 (the CUDA default precision, channels_last), its peak
  memory, and the steps of one 7-minute run at that step time (and the time of the paper's 4500);
- with ``--ref-code DIR`` (a checkout of another version of the trainer, e.g. ``git archive <commit>``):
  the ``train`` command of both trainers, run-A settings (width 8, crop 256, batch 4 on NUDT-SIRST,
  CPU), ``--ref-steps`` steps, alternated ``--ref-repeats`` times, medians: seconds per step over the
  first half of the steps (no scoring in it), and the whole command's wall and CPU seconds
  (start-up, data, steps, scoring 8 test images). On a shared machine the CPU seconds are the
  steadier figure: wall time depends on what else runs.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from sirst_synth.store.reader import open_dataset  # noqa: E402
from sirst_synth.train.data import DeviceData, Schedule, StreamData, batch_schedule, group_members, normalisation  # noqa: E402
from sirst_synth.train.loss import group_soft_iou  # noqa: E402
from sirst_synth.train.model import UNetAFF  # noqa: E402
from sirst_synth.train.precision import Precision, resolve_precision  # noqa: E402

DEFAULT_DATA = Path("/work/baseline/before/nudt")
DEFAULT_NUDT = REPO.parent / "shared" / "datasets" / "NUDT-SIRST"
TARGET_BATCH_SHARE = 0.05  # a device-resident batch in < 5 % of a step
PAPER_STEPS = 4500         # 1500 epochs x 3 steps at batch 256 on NUDT-SIRST
PRESET_RUN_MINUTES = 7     # one run of a few minutes, as examples/gpu_check.sh plans them


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batches(batches: Any, n: int, device: torch.device) -> float:
    """Seconds per batch over ``n`` batches after 2 warm-up batches."""
    it = iter(batches)
    for _ in range(2):
        next(it)
    sync(device)
    t = time.perf_counter()
    for _ in range(n):
        next(it)
    sync(device)
    return (time.perf_counter() - t) / n


def data_path(path: Path, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Images/s of the device-resident and the streaming data path on one dataset file or folder."""
    ds = open_dataset(path)
    ids = ds.ids("train")
    members = group_members(ids, ds.groups())
    schedule = Schedule(*batch_schedule(members, args.batch, 0, args.batches + 2), 0)
    t = time.perf_counter()
    data = DeviceData.load(ds, ids, args.crop, device)
    sync(device)
    load_s = time.perf_counter() - t
    resident = time_batches(data.batches(schedule, args.crop), args.batches, device)
    del data
    t = time.perf_counter()
    mean, std = normalisation(ds, ids)
    stats_s = time.perf_counter() - t
    workers = 8 if device.type == "cuda" else 0
    stream = StreamData(ds, ids, mean, std, workers, device)
    streamed = time_batches(stream.batches(schedule, args.crop), args.batches, device)
    return {
        "source": str(path), "images": len(ids), "load_s": round(load_s, 2),
        "load_images_per_s": round(len(ids) / load_s, 1),
        "resident_batch_s": resident, "resident_images_per_s": round(args.batch / resident, 1),
        "stream_stats_s": round(stats_s, 2), "stream_workers": workers,
        "stream_batch_s": streamed, "stream_images_per_s": round(args.batch / streamed, 1),
        "resident_speedup": round(streamed / resident, 1),
    }


def step_time(width: int, crop: int, batch: int, device: torch.device, steps: int,
              compile_model: bool = False) -> dict[str, Any]:
    """Seconds per training step (median of ``steps`` after warm-up) and, on CUDA, peak memory."""
    torch.manual_seed(0)
    model = UNetAFF(width).to(device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        model = model.to(memory_format=torch.channels_last)
        torch.cuda.reset_peak_memory_stats(device)
    precision = Precision(resolve_precision("auto", device), device)
    precision.prepare(model)
    net = torch.compile(model) if compile_model else model
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.05)
    image = torch.randn(batch, 1, crop, crop, device=device)
    mask = (torch.rand(batch, 1, crop, crop, device=device) > 0.995).float()
    slot = torch.arange(batch, device=device)
    if cuda:
        image = image.contiguous(memory_format=torch.channels_last)
    times = []
    for k in range(steps + 3):
        sync(device)
        t = time.perf_counter()
        with precision.autocast():
            logits = net(image)
        loss = group_soft_iou(logits, mask, slot)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync(device)
        if k >= 3:
            times.append(time.perf_counter() - t)
    out = {"width": width, "crop": crop, "batch": batch, "step_s": statistics.median(times),
           "images_per_s": round(batch / statistics.median(times), 1),
           "precision": precision.describe(),
           "compiled": compile_model}
    if cuda:
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return out


def run_train(code: Path, args: list[str], out: Path) -> tuple[float, float]:
    """Wall and CPU (user + sys) seconds of ``python -m sirst_synth train ARGS -o OUT`` run from ``code``."""
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sirst_synth", "train", *args, "-o", str(out)], env=env, check=True,
                   stdout=subprocess.DEVNULL, cwd=code)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def mini_eval_set(nudt: Path, root: Path, n: int = 8) -> Path:
    """NUDT-SIRST's images with a test list of its first ``n`` test ids (symbolic links, no copy)."""
    (root / "50_50").mkdir(parents=True)
    for sub in ("images", "masks"):
        (root / sub).symlink_to((nudt / sub).resolve())
    for part in ("train", "test"):
        ids = (nudt / "50_50" / f"{part}.txt").read_text().split()[:n]
        (root / "50_50" / f"{part}.txt").write_text("\n".join(ids) + "\n")
    return root


def before_after(ref: Path, nudt: Path, steps: int, repeats: int, tmp: Path) -> dict[str, Any]:
    """Run-A settings on CPU: the trainer in ``ref`` ("old") against this one ("new"), ``steps`` steps each.

    The two alternate ``repeats`` times (ref first, then this one first, ...); medians are kept.
    Both score 8 test images at the end, so the commands differ only in the trainer.
    """
    half = steps // 2
    common = ["--data", str(nudt), "--eval-data", str(mini_eval_set(nudt, tmp / "eval8")), "--width", "8",
              "--crop", "256", "--batch-size", "4", "--seed", "0", "--device", "cpu"]
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for r in range(repeats):
        for which in (("old", "new") if r % 2 == 0 else ("new", "old")):
            out = tmp / f"{which}{r}"
            if which == "old":
                wall, cpu = run_train(ref, [*common, "--epochs", "2", "--steps-per-epoch", str(half),
                                            "--eval-every", "2"], out)
                with open(out / "epochs.csv", newline="") as fh:
                    first = float(next(csv.DictReader(fh))["seconds"]) / half  # epoch 1: steps only
            else:
                wall, cpu = run_train(REPO, [*common, "--steps", str(2 * half), "--log-every", str(half)], out)
                with open(out / "log.csv", newline="") as fh:
                    first = float(next(csv.DictReader(fh))["seconds"]) / half
            runs[which].append({"s_per_step": round(first, 4), "command_s": round(wall, 1), "cpu_s": round(cpu, 1)})
    med = {w: {k: statistics.median(run[k] for run in runs[w]) for k in runs[w][0]} for w in runs}
    return {
        "settings": "NUDT-SIRST train, width 8, crop 256, batch 4, CPU, seed 0 (run A of docs/experiment.md); "
                    "8 test images scored at the end",
        "steps": 2 * half, "repeats": repeats, "runs": runs,
        "old_s_per_step": med["old"]["s_per_step"], "new_s_per_step": med["new"]["s_per_step"],
        "s_per_step_ratio_new_over_old": round(med["new"]["s_per_step"] / med["old"]["s_per_step"], 3),
        "old_command_s": med["old"]["command_s"], "new_command_s": med["new"]["command_s"],
        "command_ratio_new_over_old": round(med["new"]["command_s"] / med["old"]["command_s"], 3),
        "old_command_cpu_s": med["old"]["cpu_s"], "new_command_cpu_s": med["new"]["cpu_s"],
        "command_cpu_ratio_new_over_old": round(med["new"]["cpu_s"] / med["old"]["cpu_s"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a PNG build (SIRST-5K of NUDT-SIRST)")
    parser.add_argument("--h5", type=Path, help="its .h5 [default: packed into a temporary file]")
    parser.add_argument("--nudt", type=Path, default=DEFAULT_NUDT)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=30, help="batches timed per data path")
    parser.add_argument("--steps", type=int, default=10, help="training steps timed")
    parser.add_argument("--paper", action="store_true", help="CUDA: also time the paper-scale step")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model in the step timings")
    parser.add_argument("--ref-code", type=Path, help="checkout of another version of the trainer (git archive <commit>): run A on both")
    parser.add_argument("--ref-steps", type=int, default=40)
    parser.add_argument("--ref-repeats", type=int, default=3)
    parser.add_argument("--only-ref", action="store_true", help="run only the --ref-code comparison")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "device": str(device),
                    "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
                    or "cpu"},
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        h5 = args.h5
        if args.only_ref:
            pass
        elif h5 is None:
            from sirst_synth.run.pack import pack_dataset

            h5 = tmp / "build.h5"
            pack_dataset(args.data, h5, "50_50", n_jobs=min(2, os.cpu_count() or 1))
        if not args.only_ref:
            result["data_path"] = {"png": data_path(args.data, args, device), "h5": data_path(h5, args, device)}
            result["step"] = step_time(args.width, args.crop, args.batch, device, args.steps, args.compile)
            resident = max(r["resident_batch_s"] for r in result["data_path"].values())
            share = resident / result["step"]["step_s"]
            result["batch_over_step"] = {"share": round(share, 4), "target": TARGET_BATCH_SHARE,
                                         "pass": share < TARGET_BATCH_SHARE}
        if device.type == "cuda" and args.paper:
            paper = step_time(32, 256, 256, device, args.steps, args.compile)
            result["paper_step"] = paper
            fixed_s = 60  # start-up, loading 5562 images, scoring 664: about a minute per run
            preset = int((PRESET_RUN_MINUTES * 60 - fixed_s) / paper["step_s"]) // 50 * 50
            result["projection"] = {
                "preset_steps_per_run": preset,
                "preset_minutes_both_runs": round(2 * (fixed_s + preset * paper["step_s"]) / 60, 1),
                "paper_4500_steps_minutes_both_runs": round(2 * (fixed_s + PAPER_STEPS * paper["step_s"]) / 60, 1),
            }
        if args.ref_code is not None:
            result["run_a_before_after"] = before_after(args.ref_code, args.nudt, args.ref_steps, args.ref_repeats, tmp)
    print(json.dumps(result, indent=2))
    for name, r in result.get("data_path", {}).items():
        print(f"data path {name}: resident {r['resident_images_per_s']} img/s (load {r['load_s']} s), "
              f"streaming {r['stream_images_per_s']} img/s ({r['stream_workers']} workers): x{r['resident_speedup']}")
    s = result.get("step")
    if s:
        print(f"step: width {s['width']} crop {s['crop']} batch {s['batch']}: {s['step_s'] * 1e3:.1f} ms "
              f"({s['images_per_s']} img/s); resident batch / step = {result['batch_over_step']['share']:.2%} "
              f"(target < {TARGET_BATCH_SHARE:.0%}): {'PASS' if result['batch_over_step']['pass'] else 'FAIL'}")
    if "run_a_before_after" in result:
        r = result["run_a_before_after"]
        print(f"run A, {r['steps']} steps, median of {r['repeats']}: {r['old_s_per_step']} -> {r['new_s_per_step']} "
              f"s/step (x{r['s_per_step_ratio_new_over_old']}); command {r['old_command_s']} -> {r['new_command_s']} s "
              f"wall (x{r['command_ratio_new_over_old']}), {r['old_command_cpu_s']} -> {r['new_command_cpu_s']} s CPU "
              f"(x{r['command_cpu_ratio_new_over_old']})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
