"""The ``sirst-synth`` command line: parses options, calls one pipeline function, prints one line.

Data commands never import torch; ``train`` and ``eval`` import it only when they run.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from sirst_synth import __version__
from sirst_synth.errors import SirstSynthError

log = logging.getLogger("sirst_synth")


class Settings:
    """Global flags of the group, stored on the click context."""

    def __init__(self, verbose: bool, quiet: bool):
        self.verbose = verbose
        self.quiet = quiet

    @property
    def progress(self) -> bool:
        return not self.quiet and sys.stderr.isatty()


def _settings() -> Settings:
    ctx = click.get_current_context()
    return ctx.find_object(Settings) or Settings(False, False)


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the tool's own errors into one line per problem and exit status 1 (traceback with -v)."""
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SirstSynthError as exc:
            if _settings().verbose:
                raise
            problems = getattr(exc, "problems", None)
            for line in [str(p) for p in problems] if problems else [str(exc)]:
                click.echo(f"error: {line}", err=True)
            if problems:
                click.echo(f"error: {len(problems)} bad source id(s); {exc.hint}", err=True)
            sys.exit(1)

    return wrapper


def _summary(text: str) -> None:
    if not _settings().quiet:
        click.echo(text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sirst-synth")
@click.option("-v", "--verbose", is_flag=True, help="Log details; show tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars and no summary line.")
@click.pass_context
def main(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """Synthesise SIRST training data: noise sampling, Noise2Noise displacement, negatives."""
    ctx.obj = Settings(verbose, quiet)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)


# -- shared options ---------------------------------------------------------------------------

def source_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--src, --split, --train-list, --test-list."""
    fn = click.option("--test-list", default="test.txt", show_default=True, help="Test list file name in the split folder.")(fn)
    fn = click.option("--train-list", default="train.txt", show_default=True,
                      help="Train list file name in the split folder (SIRST: trainval.txt).")(fn)
    fn = click.option("--split", default="50_50", show_default=True, help="Folder of the split lists.")(fn)
    fn = click.option("--src", required=True, type=click.Path(path_type=Path), help="Source dataset folder.")(fn)
    return fn


def _jobs(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value == 0:
        raise click.BadParameter("0 workers; use N > 0, or -1 for all cores (-2: all but one)")
    return value


def run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """-j, --skip-invalid, --force."""
    fn = click.option("--force", is_flag=True, help="Replace an existing output (its files written by this tool).")(fn)
    fn = click.option("--skip-invalid", is_flag=True,
                      help="Leave out bad source ids (recorded in sirst-synth.json) instead of stopping.")(fn)
    fn = click.option("-j", "--jobs", "n_jobs", default=-1, show_default=True, type=int, callback=_jobs,
                      help="Worker processes (-1: all cores). Outputs do not depend on it.")(fn)
    return fn


def noise_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--grid, --max-var, --max-mean."""
    fn = click.option("--max-mean", default=255.0, show_default=True, type=float, help="Keep regions with 0 < mean < this.")(fn)
    fn = click.option("--max-var", default=50.0, show_default=True, type=float, help="Keep regions with 0 < variance < this.")(fn)
    fn = click.option("--grid", default=8, show_default=True, type=click.IntRange(min=1), help="Regions per side.")(fn)
    return fn


ALPHA = click.FloatRange(0.0, 1.0)
FIT = click.Choice(["resize", "tile"])
SEED = click.IntRange(min=0)


def _open(src: Path, split: str, train_list: str, test_list: str):
    from sirst_synth.dataset import open_dataset

    return open_dataset(src, split, train_list, test_list)


def _opts(n_jobs: int, skip_invalid: bool, force: bool):
    from sirst_synth.pipeline import RunOptions

    return RunOptions(n_jobs=n_jobs, progress=_settings().progress, skip_invalid=skip_invalid, force=force)


def _counts_line(command: str, s: dict) -> str:
    parts = [f"{s['train']} train ({s['original']} original, {s['displaced']} displaced, {s['negative']} negative)",
             f"{s['test']} test"]
    skipped = f", {s['skipped']} skipped" if s["skipped"] else ""
    return f"{command}: {' + '.join(parts)} images{skipped} -> {s['out']} in {s['seconds']:.1f} s"


# -- commands -----------------------------------------------------------------------------------

@main.command("sample-noise")
@source_options
@noise_options
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Noise bank file (HDF5).")
@run_options
@friendly_errors
def sample_noise_cmd(src, split, train_list, test_list, grid, max_var, max_mean, out, n_jobs, skip_invalid, force):
    """Cut noise-prone regions of the train images into a noise bank (HDF5)."""
    from sirst_synth.pipeline import sample_noise
    from sirst_synth.scan import NoiseParams

    ds = _open(src, split, train_list, test_list)
    s = sample_noise(ds, out, NoiseParams(grid, max_var, max_mean), _opts(n_jobs, skip_invalid, force))
    _summary(f"sample-noise: {s['patches']} patches from {s['images_with_patches']} of {s['images']} train images"
             f"{', %d skipped' % s['skipped'] if s['skipped'] else ''} -> {out} in {s['seconds']:.1f} s")


@main.command("displace")
@source_options
@click.option("--noise", "noise_path", required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Noise bank from sample-noise.")
@click.option("--alpha", required=True, type=ALPHA, help="Noise weight a in I_mix = a*N + (1-a)*I.")
@click.option("--rounds", default=1, show_default=True, type=click.IntRange(min=1), help="Displaced versions per train image.")
@click.option("--fit", default="resize", show_default=True, type=FIT, help="Fit the patch to the image: bilinear resize or tiling.")
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Output dataset folder.")
@run_options
@friendly_errors
def displace_cmd(src, split, train_list, test_list, noise_path, alpha, rounds, fit, seed, out, n_jobs, skip_invalid, force):
    """Copy a dataset and add Noise2Noise-displaced versions of its train images."""
    from sirst_synth.pipeline import displace_dataset

    ds = _open(src, split, train_list, test_list)
    s = displace_dataset(ds, noise_path, out, alpha, rounds, fit, seed, _opts(n_jobs, skip_invalid, force))
    _summary(_counts_line("displace", s))


@main.command("negaug")
@source_options
@click.option("--s", "s", default=3, show_default=True, type=int, help="Window side (odd) rotated around each target.")
@click.option("--only", "kinds", multiple=True, default=("original", "displaced"), show_default=True,
              type=click.Choice(["original", "displaced"]),
              help="Negate only train images of this kind (repeatable; kind from the manifest, 'original' "
                   "without one). Negatives are never negated again: rotating back would repeat an image.")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Output dataset folder.")
@run_options
@friendly_errors
def negaug_cmd(src, split, train_list, test_list, s, kinds, out, n_jobs, skip_invalid, force):
    """Copy a dataset and add the rotated negatives of every target of its train images."""
    from sirst_synth.pipeline import negaug_dataset

    ds = _open(src, split, train_list, test_list)
    summary = negaug_dataset(ds, out, s, kinds, _opts(n_jobs, skip_invalid, force))
    _summary(_counts_line("negaug", summary))


@main.command("build")
@source_options
@click.option("--alpha", default=0.1, show_default=True, type=ALPHA, help="Noise weight a in I_mix = a*N + (1-a)*I.")
@click.option("--s", "s", default=3, show_default=True, type=int, help="Window side (odd) rotated around each target.")
@click.option("-o", "--out", default=Path("SIRST-5K"), show_default=True, type=click.Path(path_type=Path),
              help="Output dataset folder.")
@click.option("--total", default=5562, show_default=True, type=click.IntRange(min=1),
              help="Training images in the output, originals included.")
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--fit", default="resize", show_default=True, type=FIT, help="Fit the patch to the image: bilinear resize or tiling.")
@noise_options
@run_options
@friendly_errors
def build_cmd(src, split, train_list, test_list, alpha, s, out, total, seed, fit, grid, max_var, max_mean,
              n_jobs, skip_invalid, force):
    """Build the SIRST-5K training set (noise bank, displacement, negatives) from a source dataset."""
    from sirst_synth.pipeline import build
    from sirst_synth.scan import NoiseParams

    ds = _open(src, split, train_list, test_list)
    summary = build(ds, out, alpha, s, total, seed, NoiseParams(grid, max_var, max_mean), fit,
                    _opts(n_jobs, skip_invalid, force))
    _summary(_counts_line("build", summary))


@main.command("demo-data")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("-n", "--images", "n_images", default=40, show_default=True, type=click.IntRange(min=2),
              help="Images in all (half train, half test).")
@click.option("--seed", default=0, show_default=True, type=SEED)
@friendly_errors
def demo_data_cmd(out, n_images, seed):
    """Write a small synthetic SIRST-like dataset (no download needed)."""
    import time

    from sirst_synth.demo import make_demo_dataset

    start = time.perf_counter()
    try:
        s = make_demo_dataset(out, n_images=n_images, seed=seed)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    _summary(f"demo-data: {s['images']} images ({s['train']} train, {s['test']} test, {s['targets']} targets)"
             f" -> {out} in {time.perf_counter() - start:.1f} s")


# -- the reference trainer (torch is imported only when these commands run) ----------------------
from sirst_synth.train.cli import eval_command, train_command  # noqa: E402

main.add_command(train_command, "train")
main.add_command(eval_command, "eval")

from sirst_synth.verify import verify_command  # noqa: E402
main.add_command(verify_command, "verify")

# -- looking at the data (numpy and OpenCV are imported only when these commands run) ------------
from sirst_synth.inspect_cli import info_command, preview_command, preview_noise_command  # noqa: E402

main.add_command(preview_command, "preview")
main.add_command(preview_noise_command, "preview-noise")
main.add_command(info_command, "info")
