"""The data commands: ``sample-noise``, ``displace``, ``negaug``, ``build`` and ``demo-data``.

Each parses its options, calls one stage of :mod:`sirst_synth.run.stages`, and prints one line.
numpy, OpenCV and h5py are imported inside the commands, so ``sirst-synth --help`` stays fast.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sirst_synth.cli.app import (
    FIT,
    OptionValueError,
    alpha_option,
    channels_option,
    friendly_errors,
    in_range,
    main,
    method_range,
    noise_options,
    run_options,
    s_option,
    seed_option,
    settings,
    source_options,
    summary,
)

#: the folder layouts of ``build --layout`` (those ``export --to`` writes)
LAYOUTS = ("dnanet", "basicirstd", "coco", "folders", "mshnet", "points", "voc", "yolo")


def _open(src: Path, split: str, train_list: str, test_list: str):
    from sirst_synth.store.reader import open_dataset

    return open_dataset(src, split, train_list, test_list, allow_hdf5=False)


def _opts(n_jobs: int, skip_invalid: bool, force: bool, resume: bool = False):
    from sirst_synth.run.stages.base import RunOptions

    if force and resume:
        raise OptionValueError("--force and --resume exclude each other: --force starts again, --resume finishes")
    return RunOptions(n_jobs=n_jobs, progress=settings().progress, skip_invalid=skip_invalid, force=force,
                      resume=resume)


def _workers(backend: str, scheduler: str | None):
    from sirst_synth.run.parallel import workers

    return workers(backend, scheduler)


def _counts_line(command: str, s: dict[str, Any]) -> str:
    parts = [f"{s['train']} train ({s['original']} original, {s['displaced']} displaced, {s['negative']} negative)",
             f"{s['test']} test"]
    skipped = f", {s['skipped']} skipped" if s["skipped"] else ""
    how = {"resumed": " (resumed)", "complete": " (already complete)"}.get(str(s.get("resumed")), "")
    return f"{command}: {' + '.join(parts)} images{skipped} -> {s['out']}{how} in {s['seconds']:.1f} s"


@main.command("sample-noise")
@source_options
@noise_options
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Noise bank file (HDF5).")
@run_options
@friendly_errors
def sample_noise_cmd(src, split, train_list, test_list, grid, max_var, max_mean, out, n_jobs, backend, scheduler,
                     skip_invalid, force, resume):
    """Cut noise-prone regions of the train images into a noise bank (HDF5)."""
    from sirst_synth.plan.params import NoiseParams
    from sirst_synth.run.stages.sample_noise import SampleNoise

    if resume:
        raise OptionValueError("sample-noise writes one file at the end, so there is nothing to resume; "
                               "run it again (with --force to replace the file)")
    ds = _open(src, split, train_list, test_list)
    with _workers(backend, scheduler):
        s = SampleNoise(NoiseParams(grid, max_var, max_mean)).run(ds, out, _opts(n_jobs, skip_invalid, force))
    skipped = f", {s['skipped']} skipped" if s["skipped"] else ""
    summary(f"sample-noise: {s['patches']} patches from {s['images_with_patches']} of {s['images']} train images"
            f"{skipped} -> {out} in {s['seconds']:.1f} s")


@main.command("displace")
@source_options
@click.option("--noise", "noise_path", required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Noise bank from sample-noise.")
@alpha_option
@click.option("--rounds", default=1, show_default=True, type=int, callback=method_range("--rounds"),
              help="Displaced versions per train image.")
@click.option("--fit", default="resize", show_default=True, type=FIT, help="Fit the patch to the image: bilinear resize or tiling.")
@seed_option
@channels_option
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Output dataset folder.")
@run_options
@friendly_errors
def displace_cmd(src, split, train_list, test_list, noise_path, alpha, rounds, fit, seed, channels, out, n_jobs, backend,
                 scheduler, skip_invalid, force, resume):
    """Copy a dataset and add Noise2Noise-displaced versions of its train images."""
    from sirst_synth.plan.params import DisplaceParams
    from sirst_synth.run.stages.displace import Displace

    ds = _open(src, split, train_list, test_list)
    opts = _opts(n_jobs, skip_invalid, force, resume)
    with _workers(backend, scheduler):
        s = Displace(DisplaceParams(alpha, rounds, fit, seed, channels), noise_path).run(ds, out, opts)
    summary(_counts_line("displace", s))


@main.command("negaug")
@source_options
@s_option
@channels_option
@click.option("--only", "kinds", multiple=True, default=("original", "displaced"), show_default=True,
              type=click.Choice(["original", "displaced"]),
              help="Negate only train images of this kind (repeatable; kind from the manifest, 'original' "
                   "without one). Negatives are never negated again: rotating back would repeat an image.")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Output dataset folder.")
@run_options
@friendly_errors
def negaug_cmd(src, split, train_list, test_list, s, channels, kinds, out, n_jobs, backend, scheduler, skip_invalid, force, resume):
    """Copy a dataset and add the rotated negatives of every target of its train images."""
    from sirst_synth.plan.params import NegaugParams
    from sirst_synth.run.stages.negaug import Negaug

    ds = _open(src, split, train_list, test_list)
    opts = _opts(n_jobs, skip_invalid, force, resume)
    with _workers(backend, scheduler):
        result = Negaug(NegaugParams(s, tuple(kinds), channels)).run(ds, out, opts)
    summary(_counts_line("negaug", result))


@main.command("build")
@source_options
@click.option("--alpha", default=0.1, show_default=True, type=float, callback=method_range("--alpha"),
              help="Noise weight a in I_mix = a*N + (1-a)*I, in [0, 1].")
@s_option
@click.option("-o", "--out", default=None, type=click.Path(path_type=Path),
              help="Output dataset folder, or HDF5 file with --format h5.  [default: SIRST-5K or SIRST-5K.h5]")
@click.option("--format", "fmt", type=click.Choice(["png", "h5"]), default="png", show_default=True,
              help="png: the DNANet folder layout. h5: one HDF5 file (images, masks, ids, splits, manifest), "
                   "built through the folder OUT.building/, removed once the file is complete.")
@click.option("--layout", default=None, type=click.Choice(LAYOUTS),
              help="Write the build in a trainer's layout, as export --to LAYOUT --name NAME -o OUT would "
                   "(dnanet, basicirstd, points: the folder OUT/NAME/ beside the datasets OUT holds), built "
                   "through NAME.building/ beside it, with sirst-synth.json and manifest.csv at its top. "
                   "[default: a plain build in OUT, DNANet's layout]")
@click.option("--name", default=None,
              help="With --layout: the dataset's name (its folder OUT/NAME/ for dnanet, basicirstd, points) "
                   "[default: OUT's folder name].")
@click.option("--total", default=5562, show_default=True, type=int, callback=method_range("--total"),
              help="Training images in the output, originals included.")
@seed_option
@channels_option
@click.option("--fit", default="resize", show_default=True, type=FIT, help="Fit the patch to the image: bilinear resize or tiling.")
@noise_options
@run_options
@friendly_errors
def build_cmd(src, split, train_list, test_list, alpha, s, out, fmt, layout, name, total, seed, channels, fit, grid,
              max_var, max_mean, n_jobs, backend, scheduler, skip_invalid, force, resume):
    """Build the SIRST-5K training set (noise bank, displacement, negatives) from a source dataset."""
    from sirst_synth.plan.params import BuildParams, NoiseParams
    from sirst_synth.run.stages.build import Build
    from sirst_synth.run.stages.build_h5 import BuildH5

    ds = _open(src, split, train_list, test_list)
    opts = _opts(n_jobs, skip_invalid, force, resume)
    params = BuildParams(alpha, s, total, seed, fit, NoiseParams(grid, max_var, max_mean), channels)
    if fmt == "h5" and layout is not None:
        raise OptionValueError(f"--layout {layout} writes a folder; --format h5 writes one file: choose one")
    if name is not None and layout is None:
        raise OptionValueError("--name names the dataset folder of --layout; a plain build is the folder -o")
    stage: Any = Build(params) if fmt == "png" else BuildH5(params)
    if layout is not None:
        from sirst_synth.interop.build_layout import BuildLayout

        stage = BuildLayout(layout, params, name)
    out = out or Path("SIRST-5K" if fmt == "png" else "SIRST-5K.h5")
    with _workers(backend, scheduler):
        result = stage.run(ds, out, opts)
    summary(_counts_line("build", result))


@main.command("demo-data")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("-n", "--images", "n_images", default=40, show_default=True, type=int, callback=in_range(2),
              help="Images in all (half train, half test).")
@seed_option
@friendly_errors
def demo_data_cmd(out, n_images, seed):
    """Write a small synthetic SIRST-like dataset (no download needed)."""
    import time

    from sirst_synth.store.demo import make_demo_dataset

    start = time.perf_counter()
    s = make_demo_dataset(out, n_images=n_images, seed=seed)
    summary(f"demo-data: {s['images']} images ({s['train']} train, {s['test']} test, {s['targets']} targets)"
             f" -> {out} in {time.perf_counter() - start:.1f} s")
