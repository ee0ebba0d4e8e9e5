"""The data commands: ``sample-noise``, ``displace``, ``negaug``, ``build`` and ``demo-data``.

Each parses its options, calls one stage of :mod:`sirst_synth.run.stages`, and prints one line.
numpy, OpenCV and h5py are imported inside the commands, so ``sirst-synth --help`` stays fast.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sirst_synth.cli.app import (
    OptionValueError,
    alpha_option,
    channels_option,
    fit_option,
    friendly_errors,
    in_range,
    main,
    method_range,
    noise_options,
    option_groups,
    run_options,
    s_option,
    seed_option,
    settings,
    source_options,
    summary,
)
from sirst_synth.interop.layouts import LAYOUTS as EXPORT_LAYOUTS
from sirst_synth.store.layout import INFO_NAME

if TYPE_CHECKING:
    from sirst_synth.run.options import StageResult

#: the option sections of the commands that read a source and write a dataset (or a bank)
INPUT = ("src", "split", "train_list", "test_list")
RUN = ("n_jobs", "backend", "scheduler", "skip_invalid", "force", "resume")

#: the choices of ``build --layout``: the layouts ``export --to`` writes, DNANet's (a plain build's) first
LAYOUTS = ("dnanet", *(layout for layout in EXPORT_LAYOUTS if layout != "dnanet"))


def _open(src: Path, split: str, train_list: str, test_list: str):
    from sirst_synth.store.reader import open_dataset

    return open_dataset(src, split, train_list, test_list, allow_hdf5=False)


def _opts(n_jobs: int, skip_invalid: bool, force: bool, resume: bool = False):
    from sirst_synth.run.options import RunOptions

    if force and resume:
        raise OptionValueError("--force and --resume exclude each other: --force starts again, --resume finishes")
    return RunOptions(n_jobs=n_jobs, progress=settings().bars(), skip_invalid=skip_invalid, force=force,
                      resume=resume)


def _workers(backend: str, scheduler: str | None):
    from sirst_synth.run.parallel import workers

    return workers(backend, scheduler)


def _skipped_ids(out: str) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Split -> the ids ``--skip-invalid`` left out, and the record's ``source`` (valid ids per split)."""
    from sirst_synth.store.reader import open_dataset
    from sirst_synth.store.record import read_record

    record = open_dataset(out).info() if Path(out).is_file() else read_record(Path(out))  # any split
    source = (record or {}).get("source") or {}
    found: dict[str, list[str]] = {}
    for item in source.get("skipped_invalid") or []:
        found.setdefault(str(item.get("split")), []).append(str(item.get("id")))
    return found, source


def _few(ids: list[str], shown: int = 5) -> str:
    return ", ".join(ids[:shown]) + (f", ... ({len(ids) - shown} more)" if len(ids) > shown else "")


def _warn_skipped(result: StageResult) -> str:
    """Warn which split lost which ids to ``--skip-invalid``; return the summary's ", N skipped (...)"."""
    if not result.skipped:
        return ""
    found, source = _skipped_ids(str(result.out))
    if not found:
        return f", {result.skipped} skipped"
    parts = [f"{len(ids)} of {len(ids) + int(source.get(split) or 0)} {split} ids ({_few(ids)})"
             for split, ids in found.items()]
    click.echo(f"warning: --skip-invalid left out {' and '.join(parts)}; the reasons are in {INFO_NAME} "
               "(source.skipped_invalid)", err=True)
    return f", {result.skipped} skipped ({', '.join(f'{len(ids)} {split}' for split, ids in found.items())})"


def _counts_line(command: str, result: StageResult) -> str:
    """The closing line of a command that wrote a dataset, from its stage's ``result``."""
    parts = [f"{result.train} train ({result.original} original, {result.displaced} displaced, "
             f"{result.negative} negative)", f"{result.test} test"]
    skipped = _warn_skipped(result)
    how = {"resumed": " (resumed)", "complete": " (already complete)"}.get(result.mode.value, "")
    return f"{command}: {' + '.join(parts)} images{skipped} -> {result.out}{how} in {result.seconds:.1f} s"


@option_groups({"Input": INPUT, "Method": ("grid", "max_var", "max_mean"), "Output": ("out",), "Run": RUN})
@main.command("sample-noise")
@source_options
@noise_options
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Noise bank file (HDF5).")
@partial(run_options, resume=False)  # the bank is written in one piece at the end: nothing to resume
@friendly_errors
def sample_noise_cmd(src, split, train_list, test_list, grid, max_var, max_mean, out, n_jobs, backend, scheduler,
                     skip_invalid, force):
    """Sample the train images' noise into a bank.

    Cut the noise-prone regions of the train images (a grid of regions with 0 < variance <
    --max-var, 0 < mean < --max-mean and no target pixel) into a noise bank, one HDF5 file.
    Test images are never read for noise.

    \b
    Example:
      sirst-synth sample-noise --src NUDT-SIRST -o noise.h5
    """
    from sirst_synth.plan.params import NoiseParams
    from sirst_synth.run.stages.sample_noise import SampleNoise

    ds = _open(src, split, train_list, test_list)
    with _workers(backend, scheduler):
        result = SampleNoise(NoiseParams(grid, max_var, max_mean)).run(ds, out, _opts(n_jobs, skip_invalid, force))
    skipped = f", {result.skipped} skipped" if result.skipped else ""
    summary(f"sample-noise: {result.patches} patches from {result.images_with_patches} of {result.images} "
            f"train images{skipped} -> {out} in {result.seconds:.1f} s")


@option_groups({"Input": (*INPUT, "noise_path"), "Method": ("alpha", "rounds", "fit", "seed"),
                "Output": ("out", "channels"), "Run": RUN})
@main.command("displace")
@source_options
@click.option("--noise", "noise_path", required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Noise bank from sample-noise.")
@alpha_option()
@click.option("--rounds", default=1, show_default=True, type=int, callback=method_range("rounds"),
              help="Displaced versions per train image.")
@fit_option()
@seed_option
@channels_option
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Output dataset folder.")
@run_options
@friendly_errors
def displace_cmd(src, split, train_list, test_list, noise_path, alpha, rounds, fit, seed, channels, out, n_jobs, backend,
                 scheduler, skip_invalid, force, resume):
    """Add noise-displaced copies of train images.

    Copy a dataset and add Noise2Noise-displaced versions of its train images: I_mix = a*N +
    (1-a)*I, with N a noise-bank patch fitted to the image, --rounds versions per image.

    \b
    Example:
      sirst-synth displace --src NUDT-SIRST --noise noise.h5 --alpha 0.1 -o displaced
    """
    from sirst_synth.plan.params import DisplaceParams
    from sirst_synth.run.stages.displace import Displace

    ds = _open(src, split, train_list, test_list)
    opts = _opts(n_jobs, skip_invalid, force, resume)
    with _workers(backend, scheduler):
        result = Displace(DisplaceParams(alpha, rounds, fit, seed, channels), noise_path).run(ds, out, opts)
    summary(_counts_line("displace", result))


@option_groups({"Input": INPUT, "Method": ("s", "kinds"), "Output": ("out", "channels"), "Run": RUN})
@main.command("negaug")
@source_options
@s_option()
@channels_option
@click.option("--only", "kinds", multiple=True, default=("original", "displaced"), show_default=True,
              type=click.Choice(["original", "displaced"]),
              help="Negate only train images of this kind (repeatable; kind from the manifest, 'original' "
                   "without one). Negatives are never negated again: rotating back would repeat an image.")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Output dataset folder.")
@run_options
@friendly_errors
def negaug_cmd(src, split, train_list, test_list, s, channels, kinds, out, n_jobs, backend, scheduler, skip_invalid, force, resume):
    """Add rotated negatives of every target.

    Copy a dataset and add, for every target of its train images, the image with the target's
    s x s window rotated by 90, 180 and 270 degrees (a rotation that repeats the window is skipped).

    \b
    Example:
      sirst-synth negaug --src displaced --s 3 --only displaced -o with-negatives
    """
    from sirst_synth.plan.params import NegaugParams
    from sirst_synth.run.stages.negaug import Negaug

    ds = _open(src, split, train_list, test_list)
    opts = _opts(n_jobs, skip_invalid, force, resume)
    with _workers(backend, scheduler):
        result = Negaug(NegaugParams(s, tuple(kinds), channels)).run(ds, out, opts)
    summary(_counts_line("negaug", result))


@option_groups({"Input": INPUT,
                "Method": ("alpha", "s", "total", "seed", "fit", "grid", "max_var", "max_mean"),
                "Output": ("out", "fmt", "layout", "name", "channels"), "Run": RUN})
@main.command("build")
@source_options
@alpha_option(default=0.1)
@s_option()
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
@click.option("--total", default=5562, show_default=True, type=int, callback=method_range("total"),
              help="Training images in the output, originals included.")
@seed_option
@channels_option
@fit_option()
@noise_options
@run_options
@friendly_errors
def build_cmd(src, split, train_list, test_list, alpha, s, out, fmt, layout, name, total, seed, channels, fit, grid,
              max_var, max_mean, n_jobs, backend, scheduler, skip_invalid, force, resume):
    """Build SIRST-5K from a source dataset.

    Build the SIRST-5K training set from a source dataset in one run: the noise bank, rounds of
    displacement and the negatives, --total training images in all (originals included); the test
    split is copied unchanged, so the output is a complete dataset.

    \b
    Example:
      sirst-synth build --src NUDT-SIRST -o SIRST-5K
    """
    from sirst_synth.plan.params import BuildParams, NoiseParams
    from sirst_synth.run.stages.build import Build

    ds = _open(src, split, train_list, test_list)
    opts = _opts(n_jobs, skip_invalid, force, resume)
    params = BuildParams(alpha, s, total, seed, fit, NoiseParams(grid, max_var, max_mean), channels)
    if fmt == "h5" and layout is not None:
        raise OptionValueError(f"--layout {layout} writes a folder; --format h5 writes one file: choose one")
    if name is not None and layout is None:
        raise OptionValueError("--name names the dataset folder of --layout; a plain build is the folder -o")
    out = out or Path("SIRST-5K" if fmt == "png" else "SIRST-5K.h5")
    click.get_current_context().params["out"] = out  # where an interrupted run lies (friendly_errors)
    output = _build_output(out, fmt, layout, name)
    with _workers(backend, scheduler):
        result = Build(params).run(ds, output, opts)
    summary(_counts_line("build", result))


def _build_output(out: Path, fmt: str, layout: str | None, name: str | None):
    """The output ``build`` writes, chosen once: a folder of PNG files, one HDF5 file, or a trainer's layout."""
    if layout is not None:
        from sirst_synth.interop.build_layout import LayoutOutput

        return LayoutOutput(layout, out, name)
    if fmt == "h5":
        from sirst_synth.run.h5_output import H5FileOutput

        return H5FileOutput(out)
    from sirst_synth.run.output import FolderOutput

    return FolderOutput(out)


@option_groups({"Dataset": ("n_images", "seed")})
@main.command("demo-data")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("-n", "--images", "n_images", default=40, show_default=True, type=int, callback=in_range(2),
              help="Images in all (half train, half test).")
@seed_option
@friendly_errors
def demo_data_cmd(out, n_images, seed):
    """Write a small synthetic SIRST-like dataset.

    Gray images with small bright targets and their masks, in the DNANet layout (split 50_50):
    no download needed, for trying the commands.

    \b
    Example:
      sirst-synth demo-data demo
    """
    import time

    from sirst_synth.demo import make_demo_dataset

    start = time.perf_counter()
    result = make_demo_dataset(out, n_images=n_images, seed=seed)
    summary(f"demo-data: {result['images']} images ({result['train']} train, {result['test']} test, "
            f"{result['targets']} targets) -> {out} in {time.perf_counter() - start:.1f} s")
