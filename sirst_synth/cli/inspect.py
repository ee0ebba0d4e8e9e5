"""The ``info``, ``verify``, ``preview`` and ``preview-noise`` commands: look at a dataset or a noise bank.

numpy, OpenCV and h5py are imported inside the commands, so ``sirst-synth --help`` stays fast.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from sirst_synth.cli.app import OptionValueError, check_jobs, friendly_errors, in_range, main, option_groups, settings, summary
from sirst_synth.errors import PreviewError, RecordError


def _open(path: Path, split: str | None, train_list: str, test_list: str):
    """Open ``path``; without --split, the split a built dataset records, else the reader's
    default (50_50 for a folder, the file's own for an HDF5 dataset)."""
    from sirst_synth.store.reader import open_dataset
    from sirst_synth.store.record import read_record, recorded_split

    if split is None and path.is_dir():
        try:
            split = recorded_split(read_record(path))
        except RecordError:
            split = None  # info reports the unreadable record
    return open_dataset(path, split, train_list, test_list)


def _check_out(out: Path, source: Path, force: bool) -> None:
    """Refuse a sheet name not ending in .png, one inside the source, and an existing file
    unless ``force``."""
    from sirst_synth.run.folder import check_output_file

    if out.suffix.lower() != ".png":
        raise PreviewError(f"{out}: the sheet is a PNG; give a file name ending in .png")
    check_output_file(out, source, force)


def _write_sheet(out: Path, sheet) -> None:
    from sirst_synth.inspect.preview import encode_sheet
    from sirst_synth.run.folder import make_folder
    from sirst_synth.store.imageio import write_atomic

    make_folder(out.parent)
    write_atomic(out, encode_sheet(sheet))


def dataset_options(fn):
    """DIR, --split, --train-list, --test-list."""
    fn = click.option("--test-list", default="test.txt", show_default=True,
                      help="Test list file name in the split folder.")(fn)
    fn = click.option("--train-list", default="train.txt", show_default=True,
                      help="Train list file name in the split folder (SIRST: trainval.txt).")(fn)
    fn = click.option("--split", default=None,
                      help="Folder of the split lists [default: the one a built dataset records, else 50_50].")(fn)
    fn = click.argument("dataset", type=click.Path(path_type=Path))(fn)
    return fn


def _sheet_width(ctx: click.Context, param: click.Parameter, value: int) -> int | None:
    """--size: 0 (no limit: None) or a width that holds three cells of the smallest tile."""
    from sirst_synth.inspect.preview import MIN_TILE, PAD

    least = PAD + 3 * (MIN_TILE + PAD)
    if value != 0 and value < least:
        raise OptionValueError(f"--size must be 0 (no limit) or >= {least}, got {value}")
    return value or None


INPUT = ("split", "train_list", "test_list")


@option_groups({"Input": INPUT, "Sheet": ("ids", "n_rows", "seed", "round_", "tile", "width"),
                "Output": ("out", "force")})
@main.command("preview")
@dataset_options
@click.option("--id", "ids", multiple=True,
              help="Show this image (repeatable): a source id, a displaced id (that round) "
                   "or a negative id (its group).")
@click.option("-n", "n_rows", default=8, show_default=True, type=int, callback=in_range(1),
              help="Rows: source images drawn at random (without --id).")
@click.option("--seed", default=0, show_default=True, type=int, callback=in_range(0),
              help="Seed of the random choice of rows.")
@click.option("--round", "round_", type=int, callback=in_range(0),
              help="Show the displaced image of this round [default: each source's lowest round].")
@click.option("--tile", default=256, show_default=True, type=int, callback=in_range(32),
              help="Largest side of each image's box on the sheet, pixels (images are scaled to fit).")
@click.option("--size", "width", default=1600, show_default=True, type=int, callback=_sheet_width,
              help="Widest sheet, pixels: the boxes shrink (to 96 px) and then a row shows fewer negatives "
                   "to fit. 0: no limit.")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Sheet file (.png).")
@click.option("--force", is_flag=True, help="Replace an existing sheet file.")
@friendly_errors
def preview_command(dataset, split, train_list, test_list, ids, n_rows, seed, round_, tile, width, out, force):
    """Draw a sheet of a built dataset's images.

    One row per source image: original | displaced | its negatives. Every target's s x s window
    is outlined; zoomed insets show each negative's window before and after rotation; a row
    without negatives says why. Ids and parameters come from manifest.csv and sirst-synth.json.

    \b
    Example:
      sirst-synth preview SIRST-5K -n 4 -o sheet.png
    """
    from sirst_synth.inspect.info import build_record
    from sirst_synth.inspect.preview import choose_rows, preview_sheet

    start = time.perf_counter()
    _check_out(out, dataset, force)
    ds = _open(dataset, split, train_list, test_list)
    manifest = ds.manifest()
    if manifest is None:
        raise PreviewError(f"{dataset}: no manifest.csv; preview shows a dataset built by sirst-synth "
                           "(build, displace or negaug)")
    rows = choose_rows(manifest, ids, n_rows, seed, round_)
    record = build_record(ds) or {}
    params = record.get("parameters") or {}
    counts = record.get("counts") or {}
    kinds = ("train", "original", "displaced", "negative", "test")
    header = [f"{dataset}: " + ", ".join(f"{counts[k]} {k}" for k in kinds if k in counts),
              f"{record.get('command', 'built')}: " + " ".join(f"{k}={v}" for k, v in params.items())]
    sheet = preview_sheet(ds, rows, s=int(params.get("s", 3)), tile=tile, header=header, width=width)
    _write_sheet(out, sheet)
    summary(f"preview: {len(rows)} rows ({', '.join(r.source_id for r in rows)}), "
            f"{sheet.shape[1]}x{sheet.shape[0]} -> {out} in {time.perf_counter() - start:.1f} s", err=True)


@option_groups({"Sheet": ("n_patches", "seed", "raw"), "Output": ("out", "force")})
@main.command("preview-noise")
@click.argument("bank_path", metavar="NOISE.h5", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("-n", "n_patches", default=64, show_default=True, type=int, callback=in_range(1),
              help="Patches on the sheet, drawn at random.")
@click.option("--seed", default=0, show_default=True, type=int, callback=in_range(0),
              help="Seed of the random choice of patches.")
@click.option("--raw", is_flag=True, help="Draw the patches' own values instead of stretching each to its min..max.")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Sheet file (.png).")
@click.option("--force", is_flag=True, help="Replace an existing sheet file.")
@friendly_errors
def preview_noise_command(bank_path, n_patches, seed, raw, out, force):
    """Draw a sheet of noise-bank patches.

    Patches drawn at random from a noise bank, each with its source id, variance and mean, and a
    histogram of the bank's variances.

    \b
    Example:
      sirst-synth preview-noise noise.h5 -n 32 -o noise.png
    """
    from sirst_synth.inspect.preview_noise import noise_sheet
    from sirst_synth.store.noisebank import NoiseBank

    start = time.perf_counter()
    _check_out(out, bank_path, force)
    with NoiseBank(bank_path) as bank:
        a = bank.attrs
        header = (f"{bank_path}: {len(bank)} patches from {a.get('images_with_patches', '?')} of "
                  f"{a.get('images', '?')} images; grid {a.get('grid', '?')}, 0 < var < {a.get('max_var', '?')},"
                  f" 0 < mean < {a.get('max_mean', '?')}",)
        sheet = noise_sheet(bank, n_patches, seed, raw, header)
    _write_sheet(out, sheet)
    summary(f"preview-noise: {min(n_patches, len(bank))} of {len(bank)} patches, "
            f"{sheet.shape[1]}x{sheet.shape[0]} -> {out} in {time.perf_counter() - start:.1f} s", err=True)


@option_groups({"Input": INPUT, "Output": ("as_json", "fingerprint"), "Run": ("n_jobs",)})
@main.command("info")
@dataset_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the report.")
@click.option("--fingerprint", is_flag=True,
              help="Print only the split's fingerprint (SHA-256 of its ids and file hashes) and the public "
                   "split it matches, if any.")
@click.option("-j", "--jobs", "n_jobs", default=-1, show_default=True, type=int, callback=check_jobs,
              help="Worker processes (-1: all cores).")
@friendly_errors
def info_command(dataset, split, train_list, test_list, as_json, fingerprint, n_jobs):
    """Describe a dataset (source or built).

    Images per split, sizes, channel modes, targets, the train images' mean and std
    (img_norm_cfg), and for a built dataset its counts per kind and round, its build parameters
    and its runs.

    \b
    Example:
      sirst-synth info NUDT-SIRST
    """
    from sirst_synth.inspect.info import dataset_info, format_info

    start = time.perf_counter()
    ds = _open(dataset, split, train_list, test_list)
    if fingerprint:  # its one line is the summary
        _print_fingerprint(ds, as_json)
        return
    info = dataset_info(ds, n_jobs, progress=settings().bars(shown=not as_json))
    click.echo(json.dumps(info, indent=2) if as_json else format_info(info))
    images, bad = info["images"], len(info["problems"])
    summary(f"info: {dataset}: {images['train']} train + {images['test']} test images, {info['kind']} dataset"
            f"{f', {bad} unreadable' if bad else ''}, in {time.perf_counter() - start:.1f} s", err=True)


def _print_fingerprint(ds, as_json: bool) -> None:
    from sirst_synth.errors import DatasetError
    from sirst_synth.store.dataset import Dataset
    from sirst_synth.store.fingerprint import fingerprint_line, known_split, split_fingerprint

    if not isinstance(ds, Dataset):
        raise DatasetError(f"{ds.root}: --fingerprint hashes the files of a dataset folder, not an HDF5 file")
    if not as_json:
        click.echo(fingerprint_line(ds))
        return
    fp = split_fingerprint(ds)
    click.echo(json.dumps({"fingerprint": fp, "path": str(ds.root), "split": ds.split,
                           "train": len(ds.ids("train")), "test": len(ds.ids("test")), "known": known_split(fp)},
                          indent=2))


@option_groups({"Check": ("strict",), "Run": ("n_jobs",)})
@main.command("verify")
@click.argument("root", metavar="DIR", type=click.Path(path_type=Path))
@click.option("-j", "--jobs", "n_jobs", default=-1, show_default=True, type=int, callback=check_jobs,
              help="Worker processes hashing and decoding (-1: all cores).")
@click.option("--strict", is_flag=True,
              help="Fail on foreign files too (files sirst-synth never writes, such as a trainer's value_result/).")
def verify_command(root: Path, n_jobs: int, strict: bool) -> None:
    """Check a build against its manifest and record.

    Every file manifest.csv lists must be present, hash as recorded and decode; the split lists
    and sirst-synth.json's counts must agree with it (exit 1 when anything is wrong). Files a
    trainer adds beside the tool's (value_result/, logs) are listed as foreign and fail only with
    --strict.

    \b
    Example:
      sirst-synth verify SIRST-5K
    """
    from sirst_synth.inspect.verify import verify_report

    flags = settings()
    start = time.perf_counter()
    report = friendly_errors(verify_report)(root, n_jobs, flags.bars())
    for line in report.problems + report.foreign + report.results:
        click.echo(line)
    failed = bool(report.problems) or (strict and bool(report.foreign))
    summary(verify_verdict(report, root, strict, time.perf_counter() - start), err=True)
    sys.exit(1 if failed else 0)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def verify_verdict(report, root: Path, strict: bool, seconds: float) -> str:
    """One verdict line: intact, or what fails (problems; with --strict, foreign entries too), with
    the seconds, then the foreign entries left unchecked without --strict."""
    foreign = _count(len(report.foreign), "foreign entry", "foreign entries")
    files = f"{report.images} images, {2 * report.images} files, hashes equal"
    if report.problems:
        what = _count(len(report.problems), "problem", "problems")
        if report.foreign and strict:
            what += f" and {foreign} (--strict)"
        line = f"verify: {root} fails: {what}, in {seconds:.1f} s"
    elif report.foreign and strict:
        line = f"verify: {root} fails --strict: {foreign} (its own {files}), in {seconds:.1f} s"
    else:
        line = f"verify: {root} intact: {files}, in {seconds:.1f} s"
    if report.foreign and not strict:
        line += f"; {foreign} not checked (--strict fails on {'it' if len(report.foreign) == 1 else 'them'})"
    return line
