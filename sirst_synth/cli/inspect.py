"""The ``info``, ``verify``, ``preview`` and ``preview-noise`` commands: look at a dataset or a noise bank.

numpy, OpenCV and h5py are imported inside the commands, so ``sirst-synth --help`` stays fast.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from sirst_synth.cli.app import check_jobs, friendly_errors, in_range, main, settings, summary
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
    from sirst_synth.run.output import check_output_file

    if out.suffix.lower() != ".png":
        raise PreviewError(f"{out}: the sheet is a PNG; give a file name ending in .png")
    check_output_file(out, source, force)


def _write_sheet(out: Path, sheet) -> None:
    from sirst_synth.inspect.preview import encode_sheet
    from sirst_synth.run.output import make_folder
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
              help="Side of each image's box on the sheet, pixels (images are scaled to fit).")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Sheet file (.png).")
@click.option("--force", is_flag=True, help="Replace an existing sheet file.")
@friendly_errors
def preview_command(dataset, split, train_list, test_list, ids, n_rows, seed, round_, tile, out, force):
    """Draw a sheet of a built dataset: per source image, original | displaced | its negatives.

    Every target's s x s window is outlined; zoomed insets show each negative's window before and
    after rotation. Ids and parameters come from manifest.csv and sirst-synth.json.
    """
    from sirst_synth.inspect.info import build_record
    from sirst_synth.inspect.preview import choose_rows, preview_sheet

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
    sheet = preview_sheet(ds, rows, s=int(params.get("s", 3)), tile=tile, header=header)
    _write_sheet(out, sheet)
    summary(f"preview: {len(rows)} rows ({', '.join(r.source_id for r in rows)}), "
             f"{sheet.shape[1]}x{sheet.shape[0]} -> {out}")


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
    """Draw a sheet of noise-bank patches (source id, variance, mean) with a histogram of variances."""
    from sirst_synth.inspect.preview_noise import noise_sheet
    from sirst_synth.store.noisebank import NoiseBank

    _check_out(out, bank_path, force)
    with NoiseBank(bank_path) as bank:
        a = bank.attrs
        header = (f"{bank_path}: {len(bank)} patches from {a.get('images_with_patches', '?')} of "
                  f"{a.get('images', '?')} images; grid {a.get('grid', '?')}, 0 < var < {a.get('max_var', '?')},"
                  f" 0 < mean < {a.get('max_mean', '?')}",)
        sheet = noise_sheet(bank, n_patches, seed, raw, header)
    _write_sheet(out, sheet)
    summary(f"preview-noise: {min(n_patches, len(bank))} of {len(bank)} patches, "
             f"{sheet.shape[1]}x{sheet.shape[0]} -> {out}")


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
    """Describe a dataset (source or built): images per split, sizes, channel modes, targets, the
    train images' mean and std (img_norm_cfg), and for a built dataset its counts per kind and
    round, its build parameters and its runs."""
    from sirst_synth.inspect.info import dataset_info, format_info

    ds = _open(dataset, split, train_list, test_list)
    if fingerprint:
        _print_fingerprint(ds, as_json)
        return
    info = dataset_info(ds, n_jobs, progress=settings().progress and not as_json)
    click.echo(json.dumps(info, indent=2) if as_json else format_info(info))


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


@main.command("verify")
@click.argument("root", metavar="DIR", type=click.Path(path_type=Path))
@click.option("-j", "--jobs", "n_jobs", default=-1, show_default=True, type=int, callback=check_jobs,
              help="Worker processes hashing and decoding (-1: all cores).")
@click.option("--strict", is_flag=True,
              help="Fail on foreign files too (files sirst-synth never writes, such as a trainer's value_result/).")
def verify_command(root: Path, n_jobs: int, strict: bool) -> None:
    """Check a built dataset against manifest.csv and sirst-synth.json (exit 1 when anything is wrong).

    Files a trainer adds beside the tool's (value_result/, logs) are listed as foreign and fail
    only with --strict."""
    from sirst_synth.inspect.verify import verify_report

    flags = settings()
    report = friendly_errors(verify_report)(root, n_jobs, flags.progress)
    for line in report.problems + report.foreign + report.results:
        click.echo(line)
    failed = bool(report.problems) or (strict and bool(report.foreign))
    if not flags.quiet:
        n, f = len(report.problems), len(report.foreign)
        extra = (f"; {f} foreign entr{'ies' if f != 1 else 'y'} "
                 f"({'a failure with --strict' if strict else 'not checked; --strict fails on them'})" if f else "")
        if report.problems:
            click.echo(f"verify: {root}: {n} problem{'s' if n != 1 else ''}{extra}")
        else:
            click.echo(f"verify: {root} intact: {report.images} images, {2 * report.images} files, "
                       f"hashes equal{extra}")
    sys.exit(1 if failed else 0)
