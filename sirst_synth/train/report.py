"""A study's results: one record per run, per-arm mean and spread, paired differences, curves.

``table.json`` holds ``runs`` (everything needed to repeat each run: its ``train`` arguments, its
training data's ``sirst-synth.json`` parameters, torch's version and threads, its scores and
curve), ``arms`` (per arm, over its finished seeds: mean and sample standard deviation of each
metric) and ``paired`` (per arm after the first: the difference to the first arm on each seed
that both finished, with its mean and standard deviation). ``table.md`` shows the same;
``curves.png`` plots mIoU and Fa against steps on the curve subset, one line per arm (the mean of
its seeds) in the band of its seeds (min to max), with each run's final whole-split score marked.
"""
from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path
from typing import Any

from sirst_synth.store.imageio import write_atomic
from sirst_synth.train.compare import STUDY_FILE, Arm, Study
from sirst_synth.train.metrics import METRIC_NAMES

#: the fields of a dataset's sirst-synth.json kept in a run's record.
DATA_RECORD_KEYS = ("tool", "version", "command", "parameters", "seed", "source", "counts")


def load_study(out: Path) -> Study:
    """The :class:`Study` recorded in ``out/study.json``."""
    saved = json.loads((out / STUDY_FILE).read_text())
    return Study(arms=tuple(Arm(a["name"], a["data"]) for a in saved["arms"]), test=saved["test"],
                 seeds=tuple(saved["seeds"]), steps=saved["steps"], curve_every=saved["curve_every"],
                 curve_images=saved["curve_images"], train_options=saved["train_options"])


def _data_record(path: str) -> dict[str, Any] | None:
    record = Path(path) / "sirst-synth.json"
    if not record.is_file():
        return None
    saved = json.loads(record.read_text())
    return {k: saved[k] for k in DATA_RECORD_KEYS if k in saved}


def run_record(study: Study, arm: Arm, seed: int, run_dir: Path) -> dict[str, Any] | None:
    """The record of one run with a ``metrics.json`` (finished or stopped), else None."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    final = m.get("last") or {}
    return {
        "arm": arm.name, "seed": seed, "data": arm.data_for(seed), "data_record": _data_record(arm.data_for(seed)),
        "test": os.path.abspath(study.test), "train_args": study.train_args(arm, seed, run_dir),
        "done": m["done"], "steps_done": m["step"], "steps": m["steps"], "batch_size": m["batch_size"],
        "train_images": m["train_images"], "groups": m["groups"], "eval_images": m["eval_images"],
        **{k: final.get(k) for k in METRIC_NAMES},
        "train_seconds": m["seconds"], "eval_seconds": m["eval_seconds"], "seconds_per_step": m["seconds_per_step"],
        "device": m["device_name"], "precision": m["precision"], "torch": m.get("torch"),
        "threads": m.get("threads"), "config": m["config"], "curve": _curve_from_csv(run_dir),
    }


def _curve_from_csv(run_dir: Path) -> list[dict[str, Any]]:
    import csv

    path = run_dir / "log.csv"
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("mIoU"):
                rows.append({"step": int(row["step"]), "loss": float(row["loss"]) if row.get("loss") else None,
                             **{k: float(row[k]) if row.get(k) else None for k in METRIC_NAMES},
                             "eval_images": int(row["eval_images"]) if row.get("eval_images") else None})
    return rows


def _spread(values: list[float]) -> dict[str, float | int | None]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return {"n": 0, "mean": None, "std": None}
    return {"n": len(values), "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None}


def summarise(study: Study, out: Path) -> dict[str, Any]:
    """``table.json``'s content for the runs of ``study`` in ``out`` so far."""
    runs = [r for arm, seed in study.runs()
            if (r := run_record(study, arm, seed, out / "runs" / study.run_name(arm, seed))) is not None]
    scored = [r for r in runs if r["mIoU"] is not None]
    arms = {}
    for arm in study.arms:
        mine = [r for r in scored if r["arm"] == arm.name]
        arms[arm.name] = {"runs": len(mine), "seeds": [r["seed"] for r in mine],
                          "all_steps_done": all(r["done"] for r in mine) and len(mine) == len(study.seeds),
                          **{k: _spread([r[k] for r in mine]) for k in METRIC_NAMES}}
    first = study.arms[0].name
    base = {r["seed"]: r for r in scored if r["arm"] == first}
    paired = {}
    for arm in study.arms[1:]:
        pairs = [(base[r["seed"]], r) for r in scored if r["arm"] == arm.name and r["seed"] in base]
        paired[arm.name] = {
            "against": first, "seeds": [b["seed"] for b, _ in pairs],
            **{k: {"per_seed": [b_r[1][k] - b_r[0][k] for b_r in pairs],
                   **_spread([b_r[1][k] - b_r[0][k] for b_r in pairs])} for k in METRIC_NAMES},
        }
    return {"study": study.record(), "runs": runs, "arms": arms, "paired": paired}


def _cell(spread: dict[str, Any]) -> str:
    if spread["mean"] is None:
        return "n/a"
    return f"{spread['mean']:.2f}" + (f" ± {spread['std']:.2f}" if spread["std"] is not None else "")


def markdown(summary: dict[str, Any]) -> str:
    """``table.md``: per-arm mean ± std, paired differences, then one row per run."""
    study = summary["study"]
    lines = [f"Study: {len(study['arms'])} arms x seeds {study['seeds']}, {study['steps']} steps each; "
             f"test set {study['test']}.", "",
             "| arm | runs | mIoU | nIoU | Pd | Fa (x1e6) |", "|---|---:|---:|---:|---:|---:|"]
    for name, arm in summary["arms"].items():
        lines.append(f"| {name} | {arm['runs']} | " + " | ".join(_cell(arm[k]) for k in METRIC_NAMES) + " |")
    if summary["paired"]:
        lines += ["", "Paired difference to the first arm (same seed), mean ± std over seeds:", "",
                  "| arm - first | seeds | mIoU | nIoU | Pd | Fa (x1e6) |", "|---|---:|---:|---:|---:|---:|"]
        for name, diff in summary["paired"].items():
            lines.append(f"| {name} - {diff['against']} | {len(diff['seeds'])} | "
                         + " | ".join(_cell(diff[k]) for k in METRIC_NAMES) + " |")
    lines += ["", "| run | train images | steps done / planned | batch | mIoU | nIoU | Pd | Fa (x1e6) | train min |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary["runs"]:
        cells = [f"{r[k]:.2f}" if r[k] is not None else "n/a" for k in METRIC_NAMES]
        lines.append(f"| {r['arm']}-s{r['seed']} | {r['train_images']} | {r['steps_done']} / {r['steps']} | "
                     f"{r['batch_size']} | " + " | ".join(cells) + f" | {r['train_seconds'] / 60:.1f} |")
    return "\n".join(lines) + "\n"


def plot_curves(summary: dict[str, Any], path: Path, title: str | None = None) -> None:
    """``curves.png``: mIoU and Fa against steps, one line per arm (seeds' mean) in its seeds' band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(summary["arms"]):
        colour = colours[i % len(colours)]
        runs = [r for r in summary["runs"] if r["arm"] == name]
        for ax, metric in zip(axes, ("mIoU", "Fa")):
            by_step: dict[int, list[float]] = {}
            for r in runs:
                for row in r["curve"]:
                    if row.get(metric) is not None and row["step"] < r["steps"]:
                        by_step.setdefault(row["step"], []).append(row[metric])
            steps = sorted(by_step)
            if steps:
                seeds = sum(1 for r in runs if any(row["step"] < r["steps"] for row in r["curve"]))
                ax.plot(steps, [statistics.fmean(by_step[s]) for s in steps], color=colour,
                        label=f"{name} ({seeds} seed{'s' if seeds != 1 else ''})")
                ax.fill_between(steps, [min(by_step[s]) for s in steps], [max(by_step[s]) for s in steps],
                                color=colour, alpha=0.2, linewidth=0)
            finals = [(r["steps_done"], r[metric]) for r in runs if r[metric] is not None]
            if finals:
                ax.scatter(*zip(*finals), color=colour, marker="x", s=30)
    for ax, metric in zip(axes, ("mIoU", "Fa")):
        ax.set_xlabel("step")
        ax.set_ylabel("mIoU (x100)" if metric == "mIoU" else "Fa (x1e6)")
        ax.grid(alpha=0.3)
    if any(r["Fa"] for r in summary["runs"]):
        axes[1].set_yscale("log")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8)
    fig.suptitle(title or "lines: curve subset, mean of seeds (band: min-max); x: whole test split at the end",
                 fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(out: str | os.PathLike) -> dict[str, Any]:
    """Rewrite ``table.json``, ``table.md`` and ``curves.png`` of the study in ``out``."""
    out = Path(out)
    summary = summarise(load_study(out), out)
    write_atomic(out / "table.json", (json.dumps(summary, indent=2) + "\n").encode())
    write_atomic(out / "table.md", markdown(summary).encode())
    plot_curves(summary, out / "curves.png")
    return summary
