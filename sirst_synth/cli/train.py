"""The ``train`` and ``eval`` commands. torch is imported inside the commands, never at import."""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from sirst_synth.cli.app import OptionValueError, alpha_option, fit_option, friendly_errors, main, option_groups, s_option, settings
from sirst_synth.errors import DatasetError

#: ``--smoke``: a tiny model on small crops for a few steps, scored on a few test images.
SMOKE_PRESET = {"width": 8, "crop": 64, "steps": 20, "batch_size": 4, "eval_images": 16, "log_every": 5}
DEVICES = click.Choice(["auto", "cpu", "cuda"])
PRECISIONS = click.Choice(["auto", "fp32", "tf32", "bf16", "fp16"])
THREADS_HELP = ("torch's CPU threads [default: the cores the load average leaves idle, at least 1; "
                "OMP_NUM_THREADS when set].")
PRECISION_HELP = ("Numeric precision: fp32, tf32, bf16, fp16 (with loss scaling); on the CPU all but fp32 are "
                  "emulated, to measure their quality. auto: fp32 everywhere (TF32 off on CUDA): every "
                  "lower format trained this model worse (docs/experiment.md).")
POSITIVE = click.IntRange(min=1)
SPLIT_HELP = "Split folder of the lists [default: 50_50; an .h5 dataset: its own split]."
DEVICE_HELP = "Where the model runs: cuda, cpu, or auto (cuda when present)."


@option_groups({
    "Data": ("data", "split", "train_list", "test_list", "eval_data", "crop", "loader", "workers",
             "synth", "noise", "alpha", "s", "fit"),
    "Model and loss": ("width", "iou", "neg_loss", "precision", "compile_"),
    "Schedule": ("steps", "epochs", "steps_per_epoch", "batch_size", "lr"),
    "Scoring": ("eval_every", "eval_images", "curve_images"),
    "Run": ("out", "resume", "smoke", "device", "seed", "threads", "log_every", "save_every_min", "stop_after_min"),
})
@main.command("train")
@click.option("--data", type=click.Path(),
              help="Training dataset: a folder (DNANet layout) or a build --format h5 file. Required unless --resume.")
@click.option("--split", help=SPLIT_HELP)
@click.option("--train-list", default="train.txt", show_default=True,
              help="Train list file name in the split folder (SIRST: trainval.txt).")
@click.option("--test-list", default="test.txt", show_default=True, help="Test list file name in the split folder.")
@click.option("--eval-data", type=click.Path(),
              help="Dataset whose test split scores the model [default: the --data test split].")
@click.option("--steps", type=POSITIVE,
              help="Optimiser steps of the run [default: --epochs x --steps-per-epoch].")
@click.option("--epochs", default=1500, show_default=True, type=POSITIVE,
              help="Passes, when --steps is not given: the run is epochs x steps-per-epoch steps.")
@click.option("--steps-per-epoch", type=POSITIVE,
              help="Steps per epoch [default: one pass, ceil(train images / batch size)].")
@click.option("--batch-size", default=256, show_default=True, type=POSITIVE,
              help="Images per optimiser step (every batch is full; groups enter whole).")
@click.option("--lr", default=0.05, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Adagrad learning rate (cosine-annealed over the steps to 1e-5).")
@click.option("--iou", type=click.Choice(["batch", "sample"]), default="batch", show_default=True,
              help="Soft-IoU pooled over the batch (DNANet, BasicIRSTD) or per image (Eq. 8 read per sample).")
@click.option("--neg-loss", type=click.Choice(["sum", "min", "none"]), default="sum", show_default=True,
              help="Over a group's views: sum (Eq. 9, views pooled), min (Algorithm 2), none (no groups).")
@click.option("--device", type=DEVICES, default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Seed of the model's initialisation, the batches and the crops.")
@click.option("--width", default=32, show_default=True, type=POSITIVE,
              help="Base channel count of the U-Net (32: 8.69 M parameters).")
@click.option("--crop", default=256, show_default=True, type=int, help="Training crop side, a multiple of 16.")
@click.option("--loader", type=click.Choice(["auto", "device", "stream"]), default="auto", show_default=True,
              help="device: training set resident on the device; stream: DataLoader from disk; "
                   "auto: device when it fits.")
@click.option("--workers", type=click.IntRange(min=0),
              help="Streaming loader's workers [default: 8 on CUDA, 0 on CPU].")
@click.option("--synth", type=click.Choice(["offline", "online"]), default="offline", show_default=True,
              help="offline: train on --data as it is (a build); online: --data is the real training set, and each "
                   "step displaces and rotates on the device (needs --noise; docs/transforms.md).")
@click.option("--noise", type=click.Path(dir_okay=False),
              help="--synth online: the noise bank of --data's train split (sirst-synth sample-noise).")
@alpha_option(default=0.1, when="--synth online: ")
@s_option(when="--synth online: ")
@fit_option(when="--synth online: ")
@click.option("--log-every", default=50, show_default=True, type=POSITIVE, help="Log the loss every N steps.")
@click.option("--eval-every", type=POSITIVE, help="Also score the eval split every N steps [default: at the end only].")
@click.option("--eval-images", type=POSITIVE, help="Score only the first N test images [default: all].")
@click.option("--curve-images", type=POSITIVE,
              help="--eval-every scores N test images spread evenly over the split; the end scores all.")
@click.option("--precision", type=PRECISIONS, default="auto", show_default=True, help=PRECISION_HELP)
@click.option("--save-every-min", default=10.0, show_default=True, type=click.FloatRange(min=0),
              help="Write last.pt every N minutes (and at the end, and when stopped).")
@click.option("--stop-after-min", type=click.FloatRange(min=0),
              help="Save and stop after N minutes of this command; continue with --resume.")
@click.option("--compile/--no-compile", "compile_", default=None,
              help="torch.compile the model [default: on CUDA, off on CPU].")
@click.option("--threads", type=POSITIVE, help=THREADS_HELP)
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue the run in -o from its last.pt.")
@click.option("--smoke", is_flag=True,
              help="Quick check: width 8, crop 64, 20 steps of batch 4, 16 test images (options given win).")
@click.pass_context
@friendly_errors
def train_command(ctx: click.Context, resume: bool, smoke: bool, compile_: bool | None, **options: Any) -> None:
    """Train the reference U-Net + AFF model.

    Soft-IoU + group loss, Adagrad, cosine schedule over the steps. Writes last.pt, best.pt (best
    eval mIoU), log.csv and metrics.json into the run folder.

    \b
    Example:
      sirst-synth train --data SIRST-5K --eval-data NUDT-SIRST -o runs/sirst5k
    """
    options["compile"] = compile_
    given = {name: value for name, value in options.items()
             if name != "compile" and ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)}
    if ctx.get_parameter_source("compile_") not in (ParameterSource.DEFAULT, None):
        given["compile"] = compile_
    if smoke:
        for name, value in SMOKE_PRESET.items():
            if name not in given:
                options[name] = given[name] = value
        options["smoke"] = True
    if options["crop"] < 16 or options["crop"] % 16:
        raise OptionValueError(f"--crop must be a positive multiple of 16, got {options['crop']}")
    for name in ("data", "eval_data", "noise"):
        if options[name] is not None:
            options[name] = given[name] = os.path.abspath(options[name])

    from sirst_synth.train.loop import TrainConfig, resume_config, train

    if resume:
        config = resume_config(options["out"], given)
    elif options["data"] is None:
        raise click.UsageError("--data is required (unless --resume)")
    else:
        config = TrainConfig(**options)
    summary = train(config, resume=resume, log=click.echo, progress=settings().bars())
    if summary.get("stopped") in ("SIGINT", "SIGTERM"):
        ctx.exit(130 if summary["stopped"] == "SIGINT" else 143)


@option_groups({"Input": ("checkpoint", "pred", "data", "split", "train_list", "test_list", "part"),
                "Output": ("as_json", "save_pred"), "Run": ("device", "batch_size", "precision", "threads")})
@main.command("eval")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Model checkpoint (last.pt or best.pt) to score.")
@click.option("--pred", type=click.Path(file_okay=False),
              help="Folder of predicted masks <id>.png (> 127 is target) to score instead of a model.")
@click.option("--data", required=True, type=click.Path(),
              help="Dataset with the ground truth: a folder or a build --format h5 file.")
@click.option("--split", help=SPLIT_HELP)
@click.option("--train-list", default="train.txt", show_default=True, help="Train list file name in the split folder.")
@click.option("--test-list", default="test.txt", show_default=True, help="Test list file name in the split folder.")
@click.option("--part", type=click.Choice(["test", "train"]), default="test", show_default=True,
              help="Which list to score.")
@click.option("--json", "as_json", is_flag=True, help='Print one JSON object {"mIoU", "nIoU", "Pd", "Fa", "images", "targets"}.')
@click.option("--save-pred", type=click.Path(file_okay=False), help="Write the model's predicted masks (0/255 PNG) here.")
@click.option("--device", type=DEVICES, default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--batch-size", default=8, show_default=True, type=POSITIVE,
              help="Images per forward pass (same-size images only).")
@click.option("--precision", type=PRECISIONS, default="auto", show_default=True, help=PRECISION_HELP)
@click.option("--threads", type=POSITIVE, help=THREADS_HELP)
@friendly_errors
def eval_command(
    checkpoint: str | None, pred: str | None, data: str, split: str | None, train_list: str, test_list: str,
    part: str, as_json: bool, save_pred: str | None, device: str, batch_size: int, precision: str,
    threads: int | None,
) -> None:
    """Score a model or predicted masks.

    Score a checkpoint, or a folder of predicted masks, on a dataset split: mIoU, nIoU, Pd, Fa.

    \b
    Example:
      sirst-synth eval --checkpoint runs/sirst5k/best.pt --data NUDT-SIRST
    """
    if (checkpoint is None) == (pred is None):
        raise click.UsageError("give exactly one of --checkpoint and --pred")
    if save_pred is not None and checkpoint is None:
        raise click.UsageError("--save-pred needs --checkpoint")
    from sirst_synth.store.reader import open_dataset
    from sirst_synth.train.metrics import format_table

    t = time.perf_counter()
    ds = open_dataset(data, split, train_list, test_list)
    ids = ds.ids(part)
    flags = settings()
    with flags.bars()("scoring", len(ids)) as bar:
        if checkpoint is not None:
            from sirst_synth.train.threads import apply_threads

            if not flags.quiet:
                click.echo(f"eval: {apply_threads(threads)}", err=True)
            result = _score_checkpoint(checkpoint, ds, ids, device, batch_size, save_pred, precision, bar.update)
        else:
            assert pred is not None
            result = _score_folder(Path(pred), ds, ids, bar.update)
    if as_json:
        click.echo(json.dumps({k: None if isinstance(v, float) and math.isnan(v) else v for k, v in result.items()}))
    else:
        click.echo(f"{checkpoint or pred} on {data} ({ds.split}/{part})")
        click.echo(format_table(result))
    if not flags.quiet:
        click.echo(f"eval: {len(ids)} images, {result['targets']} targets of {data} ({ds.split}/{part}) scored "
                   f"in {time.perf_counter() - t:.1f} s", err=True)


def _score_folder(pred_dir: Path, ds: Any, ids: list[str], advance: Any) -> dict[str, float | int]:
    from sirst_synth.store import imageio
    from sirst_synth.train.metrics import Scores, from_png_mask

    if not pred_dir.is_dir():
        raise DatasetError(f"{pred_dir}: prediction folder not found")
    scores = Scores()
    for id_ in ids:
        path = pred_dir / f"{id_}.png"
        if not path.is_file():
            raise DatasetError(f"{path}: no prediction for id {id_}")
        pred = from_png_mask(imageio.read_mask(path))
        gt = ds.read_mask(id_) > 0
        if pred.shape != gt.shape:
            raise DatasetError(f"{path}: size {pred.shape} differs from the mask of id {id_} {gt.shape}")
        scores.update(pred, gt)
        advance(1)
    return scores.result()


def _score_checkpoint(
    path: str, ds: Any, ids: list[str], device_name: str, batch_size: int, save_pred: str | None, precision: str,
    advance: Any,
) -> dict[str, float | int]:
    import numpy as np

    from sirst_synth.store import imageio
    from sirst_synth.train import checkpoint
    from sirst_synth.train.loop import resolve_device
    from sirst_synth.train.precision import Precision, resolve_precision
    from sirst_synth.train.predict import evaluate

    device = resolve_device(device_name)
    numerics = Precision(resolve_precision(precision, device), device)
    model, mean, std = checkpoint.build_model(checkpoint.load(path, device), device)
    numerics.prepare(model)
    out = Path(save_pred) if save_pred is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    def save(id_: str, pred: np.ndarray) -> None:
        if out is not None:
            imageio.write_atomic(out / f"{id_}.png", imageio.encode_png(pred.astype(np.uint8) * 255))
        advance(1)

    return evaluate(model, ds, ids, mean, std, device, batch_size, on_prediction=save, precision=numerics)


#: train options a study passes to every run (declared once, on ``train``).
COMPARE_SHARES = ("split", "train_list", "test_list", "batch_size", "lr", "iou", "neg_loss", "device", "width",
                  "crop", "loader", "log_every", "save_every_min", "stop_after_min", "precision", "compile_")


@option_groups({
    "Study": ("arms", "test", "seeds", "steps", "curve_every", "curve_images"),
    "Training (as train's)": ("split", "train_list", "test_list", "batch_size", "lr", "iou", "neg_loss", "width", "crop",
                              "loader", "precision", "compile_"),
    "Run": ("out", "jobs", "device", "log_every", "save_every_min", "stop_after_min"),
})
@main.command("compare")
@click.option("--arm", "arms", multiple=True, required=True, metavar="NAME=PATH",
              help="A training set: its name and dataset (repeat; the first is the baseline). "
                   "{seed} in PATH is replaced by each seed (one build per seed).")
@click.option("--test", required=True, type=click.Path(), help="Dataset whose test split scores every run.")
@click.option("--seeds", default="0,1,2", show_default=True,
              help="Seeds, comma-separated: each changes the model's initialisation and batches.")
@click.option("--steps", required=True, type=POSITIVE, help="Optimiser steps of every run.")
@click.option("--curve-every", type=POSITIVE, help="Score the curve subset every N steps [default: only at the end].")
@click.option("--curve-images", default=64, show_default=True, type=POSITIVE,
              help="Test images of the curve subset (spread evenly over the split).")
@click.option("-j", "--jobs", default=1, show_default=True, type=POSITIVE,
              help="Runs at once, one thread each (their results do not depend on it).")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="Study folder (run again with the same options to resume).")
@click.pass_context
@friendly_errors
def compare_command(ctx: click.Context, arms: tuple[str, ...], test: str, seeds: str, steps: int,
                    curve_every: int | None, curve_images: int, jobs: int, out: str, **shared: Any) -> None:
    """Compare training sets at equal steps.

    Train the same model on several training sets at equal steps, several seeds; one test set.
    Writes table.md, table.json (per run, per arm mean ± std, paired difference to the first arm)
    and curves.png (mIoU and Fa against steps).

    \b
    Example:
      sirst-synth compare --arm real=NUDT-SIRST --arm synth=SIRST-5K \\
        --test NUDT-SIRST --seeds 0,1,2 --steps 2000 -o study/
    """
    from sirst_synth.train.compare import Study, parse_arm, parse_seeds, run_study
    from sirst_synth.train.report import write_report

    options = {("compile" if name == "compile_" else name): value for name, value in shared.items()
               if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)}
    study = Study(arms=tuple(parse_arm(a) for a in arms), test=test, seeds=parse_seeds(seeds), steps=steps,
                  curve_every=curve_every, curve_images=curve_images, train_options=options)
    t = time.perf_counter()
    done = run_study(study, out, jobs, on_report=write_report, log=click.echo)
    summary = write_report(out)
    click.echo(Path(out, "table.md").read_text(), nl=False)
    finished = sum(r["done"] for r in summary["runs"])
    state = "all runs done" if done else "stopped before the end: run the same command again to continue"
    click.echo(f"compare: {finished}/{len(study.runs())} runs done, {state}; table.md, table.json, "
               f"curves.png in {out} ({time.perf_counter() - t:.0f} s)", err=True)
    if not done:
        ctx.exit(130)


compare_command.params.extend(p for p in train_command.params if p.name in COMPARE_SHARES)
