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
    """Turn the tool's own errors, and file system errors, into one line per problem and exit
    status 1 (traceback with -v)."""
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (SirstSynthError, OSError) as exc:
            if _settings().verbose:
                raise
            problems = getattr(exc, "problems", None)
            if problems:
                lines = [str(p) for p in problems]
            elif isinstance(exc, OSError):
                lines = [f"{exc.filename or 'file system'}: {exc.strerror or exc}"]
            else:
                lines = [str(exc)]
            for line in lines:
                click.echo(f"error: {line}", err=True)
            if problems:
                click.echo(f"error: {len(problems)} bad source id(s); {exc.hint}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("error: interrupted; nothing is marked complete (finish with --resume)", err=True)
            sys.exit(130)

    return wrapper


class OptionValueError(click.ClickException):
    """An option value out of its range: one line, exit status 1 (like every bad input)."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def in_range(low: float | None = None, high: float | None = None, odd: bool = False) -> Callable[..., Any]:
    """A click callback refusing values outside [low, high] (and even values with ``odd``)."""
    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return value
        name = param.opts[-1] if param.opts else param.name
        if (low is not None and value < low) or (high is not None and value > high) or (odd and value % 2 == 0):
            if low is not None and high is not None:
                want = f"in [{low:g}, {high:g}]"
            else:
                want = f">= {low:g}" if low is not None else f"<= {high:g}" if high is not None else ""
            if odd:
                want = f"odd and {want}" if want else "odd"
            raise OptionValueError(f"{name} must be {want}, got {value:g}")
        return value

    return check


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
    logging.addLevelName(logging.WARNING, "warning")
    logging.addLevelName(logging.INFO, "info")
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
        raise OptionValueError("-j 0 means 0 workers; use N > 0, or -1 for all cores (-2: all but one)")
    return value


def run_options(fn: Callable[..., Any], resume: bool = True) -> Callable[..., Any]:
    """-j, --backend, --scheduler, --skip-invalid, --force, --resume."""
    if resume:
        fn = click.option("--resume", is_flag=True,
                          help="Finish an interrupted run in the output folder (same parameters and source required).")(fn)
    fn = click.option("--force", is_flag=True, help="Replace an existing output (its files written by this tool).")(fn)
    fn = click.option("--scheduler", metavar="ADDRESS",
                      help="dask.distributed scheduler for --backend dask, e.g. tcp://10.0.0.5:8786.")(fn)
    fn = click.option("--backend", type=click.Choice(["local", "dask"]), default="local", show_default=True,
                      help="Where workers run: local processes, or a dask cluster (extra [dask]; "
                           "workers must reach --src and -o by the same paths).")(fn)
    fn = click.option("--skip-invalid", is_flag=True,
                      help="Leave out bad source ids (recorded in sirst-synth.json) instead of stopping.")(fn)
    fn = click.option("-j", "--jobs", "n_jobs", default=-1, show_default=True, type=int, callback=_jobs,
                      help="Worker processes (-1: all cores). Outputs do not depend on it.")(fn)
    return fn


def noise_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--grid, --max-var, --max-mean."""
    fn = click.option("--max-mean", default=255.0, show_default=True, type=float, callback=in_range(0),
                      help="Keep regions with 0 < mean < this.")(fn)
    fn = click.option("--max-var", default=50.0, show_default=True, type=float, callback=in_range(0),
                      help="Keep regions with 0 < variance < this.")(fn)
    fn = click.option("--grid", default=8, show_default=True, type=int, callback=in_range(1),
                      help="Regions per side (each region needs at least 2x2 pixels).")(fn)
    return fn


FIT = click.Choice(["resize", "tile"])


def alpha_option(fn: Callable[..., Any], default: float | None = None) -> Callable[..., Any]:
    extra = {"default": default, "show_default": True} if default is not None else {"required": True}
    return click.option("--alpha", type=float, callback=in_range(0.0, 1.0),
                        help="Noise weight a in I_mix = a*N + (1-a)*I, in [0, 1].", **extra)(fn)


def s_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--s", "s", default=3, show_default=True, type=int, callback=in_range(1, odd=True),
                        help="Window side (odd) rotated around each target.")(fn)


def seed_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--seed", default=0, show_default=True, type=int, callback=in_range(0))(fn)


def _open(src: Path, split: str, train_list: str, test_list: str):
    from sirst_synth.dataset import open_dataset

    return open_dataset(src, split, train_list, test_list, allow_hdf5=False)


def _opts(n_jobs: int, skip_invalid: bool, force: bool, resume: bool = False):
    from sirst_synth.pipeline import RunOptions

    if force and resume:
        raise OptionValueError("--force and --resume exclude each other: --force starts again, --resume finishes")
    return RunOptions(n_jobs=n_jobs, progress=_settings().progress, skip_invalid=skip_invalid, force=force,
                      resume=resume)


def _workers(backend: str, scheduler: str | None):
    from sirst_synth.parallel import workers

    return workers(backend, scheduler)


def _counts_line(command: str, s: dict) -> str:
    parts = [f"{s['train']} train ({s['original']} original, {s['displaced']} displaced, {s['negative']} negative)",
             f"{s['test']} test"]
    skipped = f", {s['skipped']} skipped" if s["skipped"] else ""
    how = {"resumed": " (resumed)", "complete": " (already complete)"}.get(s.get("resumed"), "")
    return f"{command}: {' + '.join(parts)} images{skipped} -> {s['out']}{how} in {s['seconds']:.1f} s"


# -- commands -----------------------------------------------------------------------------------

@main.command("sample-noise")
@source_options
@noise_options
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Noise bank file (HDF5).")
@run_options
@friendly_errors
def sample_noise_cmd(src, split, train_list, test_list, grid, max_var, max_mean, out, n_jobs, backend, scheduler,
                     skip_invalid, force, resume):
    """Cut noise-prone regions of the train images into a noise bank (HDF5)."""
    from sirst_synth.pipeline import sample_noise
    from sirst_synth.scan import NoiseParams

    if resume:
        raise OptionValueError("sample-noise writes one file at the end, so there is nothing to resume; "
                               "run it again (with --force to replace the file)")
    ds = _open(src, split, train_list, test_list)
    with _workers(backend, scheduler):
        s = sample_noise(ds, out, NoiseParams(grid, max_var, max_mean), _opts(n_jobs, skip_invalid, force))
    _summary(f"sample-noise: {s['patches']} patches from {s['images_with_patches']} of {s['images']} train images"
             f"{', %d skipped' % s['skipped'] if s['skipped'] else ''} -> {out} in {s['seconds']:.1f} s")


@main.command("displace")
@source_options
@click.option("--noise", "noise_path", required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Noise bank from sample-noise.")
@alpha_option
@click.option("--rounds", default=1, show_default=True, type=int, callback=in_range(1),
              help="Displaced versions per train image.")
@click.option("--fit", default="resize", show_default=True, type=FIT, help="Fit the patch to the image: bilinear resize or tiling.")
@seed_option
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Output dataset folder.")
@run_options
@friendly_errors
def displace_cmd(src, split, train_list, test_list, noise_path, alpha, rounds, fit, seed, out, n_jobs, backend,
                 scheduler, skip_invalid, force, resume):
    """Copy a dataset and add Noise2Noise-displaced versions of its train images."""
    from sirst_synth.pipeline import displace_dataset

    ds = _open(src, split, train_list, test_list)
    opts = _opts(n_jobs, skip_invalid, force, resume)
    with _workers(backend, scheduler):
        s = displace_dataset(ds, noise_path, out, alpha, rounds, fit, seed, opts)
    _summary(_counts_line("displace", s))


@main.command("negaug")
@source_options
@s_option
@click.option("--only", "kinds", multiple=True, default=("original", "displaced"), show_default=True,
              type=click.Choice(["original", "displaced"]),
              help="Negate only train images of this kind (repeatable; kind from the manifest, 'original' "
                   "without one). Negatives are never negated again: rotating back would repeat an image.")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Output dataset folder.")
@run_options
@friendly_errors
def negaug_cmd(src, split, train_list, test_list, s, kinds, out, n_jobs, backend, scheduler, skip_invalid, force, resume):
    """Copy a dataset and add the rotated negatives of every target of its train images."""
    from sirst_synth.pipeline import negaug_dataset

    ds = _open(src, split, train_list, test_list)
    opts = _opts(n_jobs, skip_invalid, force, resume)
    with _workers(backend, scheduler):
        summary = negaug_dataset(ds, out, s, kinds, opts)
    _summary(_counts_line("negaug", summary))


@main.command("build")
@source_options
@click.option("--alpha", default=0.1, show_default=True, type=float, callback=in_range(0.0, 1.0),
              help="Noise weight a in I_mix = a*N + (1-a)*I, in [0, 1].")
@s_option
@click.option("-o", "--out", default=None, type=click.Path(path_type=Path),
              help="Output dataset folder, or HDF5 file with --format h5.  [default: SIRST-5K or SIRST-5K.h5]")
@click.option("--format", "fmt", type=click.Choice(["png", "h5"]), default="png", show_default=True,
              help="png: the DNANet folder layout. h5: one HDF5 file (images, masks, ids, splits, manifest), "
                   "built through the folder OUT.building/, removed once the file is complete.")
@click.option("--total", default=5562, show_default=True, type=int, callback=in_range(1),
              help="Training images in the output, originals included.")
@seed_option
@click.option("--fit", default="resize", show_default=True, type=FIT, help="Fit the patch to the image: bilinear resize or tiling.")
@noise_options
@run_options
@friendly_errors
def build_cmd(src, split, train_list, test_list, alpha, s, out, fmt, total, seed, fit, grid, max_var, max_mean,
              n_jobs, backend, scheduler, skip_invalid, force, resume):
    """Build the SIRST-5K training set (noise bank, displacement, negatives) from a source dataset."""
    from sirst_synth.pipeline import build, build_h5
    from sirst_synth.scan import NoiseParams

    ds = _open(src, split, train_list, test_list)
    opts = _opts(n_jobs, skip_invalid, force, resume)
    run = build if fmt == "png" else build_h5
    out = out or Path("SIRST-5K" if fmt == "png" else "SIRST-5K.h5")
    with _workers(backend, scheduler):
        summary = run(ds, out, alpha, s, total, seed, NoiseParams(grid, max_var, max_mean), fit, opts)
    _summary(_counts_line("build", summary))


@main.command("demo-data")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("-n", "--images", "n_images", default=40, show_default=True, type=int, callback=in_range(2),
              help="Images in all (half train, half test).")
@seed_option
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

from sirst_synth.interop.cli import export_command, import_command  # noqa: E402
main.add_command(import_command, "import"); main.add_command(export_command, "export")
