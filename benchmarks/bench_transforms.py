#!/usr/bin/env python
"""Benchmark of the online transforms and of ``train --synth online``. Run by hand, not by the tests.

    OMP_NUM_THREADS=1 python benchmarks/bench_transforms.py --json benchmarks/results/transforms-cpu.json
    python benchmarks/bench_transforms.py --device cuda      # the trainer's figures on CUDA

In one run, on the machine it runs on, it measures:

- **the numpy transforms per 256 x 256 image** (``NoiseDisplace`` + ``TargetRotate``, in memory, on
  NUDT-SIRST train images as stored, R = G = B, and as gray; median of ``--passes`` passes over
  ``--images`` images), against **the build's time per generated image**: ``sirst-synth build``
  of NUDT-SIRST with ``--build-jobs`` workers (default 1, the transforms' one process), wall time
  / generated images (target: transforms <= 2 x);
- **a training step, online against offline**, at ``--width``, ``--crop``, ``--batch``: offline
  the default build (the one just made) resident on the device, online the real training set and
  the noise bank there with the batches synthesised per step (:mod:`sirst_synth.train.online`).
  The two alternate ``--repeats`` times, ``--steps`` steps each after warm-up; medians of the
  wall and CPU (this process) seconds per step, and their ratio online / offline (target
  <= 1.05); and the data path alone (a batch, no model), whose difference over the offline step
  is what the synthesis adds to a step. On a shared machine the CPU seconds are the steadier figure.
"""
from __future__ import annotations

import argparse
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sirst_synth.method.gray import rounded_gray  # noqa: E402
from sirst_synth.store.reader import open_dataset  # noqa: E402
from sirst_synth.train.config import TrainConfig  # noqa: E402
from sirst_synth.train.data import DeviceData, Schedule, batch_schedule, group_members  # noqa: E402
from sirst_synth.train.loss import group_soft_iou  # noqa: E402
from sirst_synth.train.model import UNetAFF  # noqa: E402
from sirst_synth.train.online import OnlineData, online_plan, target_counts  # noqa: E402
from sirst_synth.transforms import Bank, NoiseDisplace, TargetRotate  # noqa: E402

DEFAULT_NUDT = REPO.parent / "shared" / "datasets" / "NUDT-SIRST"
TARGET_TRANSFORMS_OVER_BUILD = 2.0  # the numpy transforms within 2 x the build's time per generated image
TARGET_ONLINE_OVER_OFFLINE = 1.05   # an online step within 5 % of an offline one


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cli(*args: str | Path) -> tuple[float, float]:
    """Wall and CPU (user + sys of the children) seconds of ``python -m sirst_synth -q ARGS``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sirst_synth", "-q", *map(str, args)], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def transforms_per_image(nudt: Path, bank: Bank, n: int, passes: int) -> dict[str, Any]:
    """Median seconds per image of each transform and of both, on images as stored and as gray."""
    ds = open_dataset(nudt)
    ids = ds.ids("train")[:n]
    stored = [(i, ds.read_image(i), ds.read_mask(i)) for i in ids]
    layouts = {"stored (R = G = B)": stored, "gray": [(i, rounded_gray(im), m) for i, im, m in stored]}
    displace, rotate = NoiseDisplace(bank), TargetRotate()
    out: dict[str, Any] = {"images": len(ids), "shape": list(stored[0][1].shape), "passes": passes}
    for name, samples in layouts.items():
        times: dict[str, list[float]] = {"displace": [], "rotate": [], "both": []}
        for p in range(passes):
            rng = np.random.default_rng(p)
            for which in times:
                t = time.perf_counter()
                for id_, image, mask in samples:
                    data: dict[str, Any] = {"image": image, "mask": mask, "image_id": id_}
                    if which in ("displace", "both"):
                        data = displace(rng=rng, **data)
                    if which in ("rotate", "both"):
                        data = rotate(rng=rng, **data)
                times[which].append((time.perf_counter() - t) / len(samples))
        out[name] = {which: statistics.median(v) for which, v in times.items()}
    return out


class Arm:
    """One side of the step comparison: its batches, its model and optimiser."""

    def __init__(self, data: Any, schedule: Schedule, width: int, crop: int, device: torch.device) -> None:
        torch.manual_seed(0)
        self.model = UNetAFF(width).to(device)
        self.optimizer = torch.optim.Adagrad(self.model.parameters(), lr=0.05)
        self.data, self.schedule, self.crop, self.device = data, schedule, crop, device
        self.next_step = 0

    def batches(self, n: int) -> Any:
        start, self.next_step = self.next_step, self.next_step + n
        return self.data.batches(self.schedule, self.crop, start)

    def steps(self, n: int, warm: int = 2) -> tuple[list[float], list[float]]:
        """Wall and CPU seconds of ``n`` training steps (data included) after ``warm`` steps."""
        walls, cpus = [], []
        it = self.batches(n + warm)
        for k in range(n + warm):
            sync(self.device)
            t, c = time.perf_counter(), time.process_time()
            image, mask, slot = next(it)
            loss = group_soft_iou(self.model(image), mask, slot)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            sync(self.device)
            if k >= warm:
                walls.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
        return walls, cpus

    def data_path(self, n: int, warm: int = 2) -> tuple[float, float]:
        """Median wall and CPU seconds of a batch alone (no model)."""
        walls, cpus = [], []
        it = self.batches(n + warm)
        for k in range(n + warm):
            sync(self.device)
            t, c = time.perf_counter(), time.process_time()
            next(it)
            sync(self.device)
            if k >= warm:
                walls.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
        return statistics.median(walls), statistics.median(cpus)


def online_against_offline(nudt: Path, build: Path, noise: Path, args: argparse.Namespace,
                           device: torch.device) -> dict[str, Any]:
    crop, batch = args.crop, args.batch
    steps = (args.repeats * (args.steps + 2) + args.batches + 2) + 8
    built = open_dataset(build)
    built_ids = built.ids("train")
    offline_schedule = Schedule(*batch_schedule(group_members(built_ids, built.groups()), batch, 0, steps), 0)
    offline = DeviceData.load(built, built_ids, crop, device)
    source = open_dataset(nudt)
    ids = source.ids("train")
    plan = online_plan(ids, target_counts(source, ids), seed=0)
    config = TrainConfig(data=str(nudt), out="unused", synth="online", noise=str(noise), crop=crop)
    online = OnlineData.load(config, source, ids, Bank.load(noise), plan, device)
    online_schedule = Schedule(*batch_schedule(plan.members, batch, 0, steps), 0)
    arms = {"offline": Arm(offline, offline_schedule, args.width, crop, device),
            "online": Arm(online, online_schedule, args.width, crop, device)}
    walls: dict[str, list[float]] = {"offline": [], "online": []}
    cpus: dict[str, list[float]] = {"offline": [], "online": []}
    for r in range(args.repeats):
        for name in (("offline", "online") if r % 2 == 0 else ("online", "offline")):
            w, c = arms[name].steps(args.steps)
            walls[name] += w
            cpus[name] += c
    paths = {name: arm.data_path(args.batches) for name, arm in arms.items()}
    step = {name: {"wall_s": statistics.median(walls[name]), "cpu_s": statistics.median(cpus[name])} for name in arms}
    added = paths["online"][0] - paths["offline"][0]
    added_cpu = paths["online"][1] - paths["offline"][1]
    return {
        "settings": f"width {args.width}, crop {crop}, batch {batch}; offline: the default build of NUDT-SIRST "
                    f"({len(built_ids)} images) resident; online: {len(ids)} images + {len(online.bank.bank)} patches",
        "steps_per_repeat": args.steps, "repeats": args.repeats, "step": step,
        "step_wall_ratio_online_over_offline": round(step["online"]["wall_s"] / step["offline"]["wall_s"], 4),
        "step_cpu_ratio_online_over_offline": round(step["online"]["cpu_s"] / step["offline"]["cpu_s"], 4),
        "data_path_batch_s": {name: {"wall_s": w, "cpu_s": c} for name, (w, c) in paths.items()},
        "synthesis_added_share_of_offline_step": round(added / step["offline"]["wall_s"], 4),
        "synthesis_added_cpu_share_of_offline_step": round(added_cpu / step["offline"]["cpu_s"], 4),
        "target": TARGET_ONLINE_OVER_OFFLINE,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nudt", type=Path, default=DEFAULT_NUDT)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=200, help="images per pass of the numpy transforms")
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--build-jobs", type=int, default=1)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="training steps timed per repeat and arm")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=30, help="batches timed for the data path alone")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "commit": commit.strip(),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "device": str(device),
                    "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "load_average_start": os.getloadavg()},
    }
    with tempfile.TemporaryDirectory(dir=args.work) as tmp_name:
        tmp = Path(tmp_name)
        noise, build = tmp / "noise.h5", tmp / "build"
        cli("sample-noise", "--src", args.nudt, "-o", noise, "-j", "2")
        wall, cpu = cli("build", "--src", args.nudt, "-o", build, "-j", args.build_jobs)
        generated = sum(open_dataset(build).info()["counts"][k] for k in ("displaced", "negative"))
        bank = Bank.load(noise)
        numpy_figures = transforms_per_image(args.nudt, bank, args.images, args.passes)
        per_image = wall / generated
        slowest = max(numpy_figures[layout]["both"] for layout in ("stored (R = G = B)", "gray"))
        result["numpy_transforms"] = {
            **numpy_figures,
            "build": {"jobs": args.build_jobs, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "generated": generated,
                      "wall_s_per_generated_image": per_image},
            "both_over_build_per_image": round(slowest / per_image, 4), "target": TARGET_TRANSFORMS_OVER_BUILD,
        }
        result["trainer"] = online_against_offline(args.nudt, build, noise, args, device)
    result["machine"]["load_average_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    n, t = result["numpy_transforms"], result["trainer"]
    print(f"numpy transforms, both, per image: {n['gray']['both'] * 1e3:.3f} ms gray, "
          f"{n['stored (R = G = B)']['both'] * 1e3:.3f} ms R=G=B; build -j {args.build_jobs}: "
          f"{per_image * 1e3:.3f} ms per generated image; ratio {n['both_over_build_per_image']} "
          f"(target <= {TARGET_TRANSFORMS_OVER_BUILD})")
    print(f"training step online / offline ({t['settings']}): wall x{t['step_wall_ratio_online_over_offline']}, "
          f"CPU x{t['step_cpu_ratio_online_over_offline']} (target <= {TARGET_ONLINE_OVER_OFFLINE}); "
          f"the synthesis adds {t['synthesis_added_share_of_offline_step']:.2%} of an offline step "
          f"({t['synthesis_added_cpu_share_of_offline_step']:.2%} in CPU time)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
