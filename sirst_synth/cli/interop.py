"""The ``import`` and ``export`` commands (numpy, OpenCV and Pillow are imported when they run)."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from sirst_synth.cli.app import check_jobs, friendly_errors, in_range, main, option_groups, settings, summary
from sirst_synth.cli.inspect import _open, dataset_options
from sirst_synth.interop.layouts import IMPORT_LAYOUTS, LAYOUTS


@contextmanager
def _locked_output(out: Path, src: Path, force: bool, hint: str = "choose another -o") -> Iterator[None]:
    """Check ``out`` and hold the lock beside it (``.OUT.sirst-synth-lock``: the folder is written
    elsewhere and put in place at the end) while the command writes it; a running command there is
    named and refused."""
    from sirst_synth.interop.staging import check_output
    from sirst_synth.run.lock import check_not_running, locked_beside

    check_not_running(out)
    check_output(out, src, force, hint)
    with locked_beside(out):
        yield


def _warn(line: str) -> None:
    click.echo(f"warning: {line}", err=True)


@option_groups({"Input": ("split_name", "mask_threshold", "skip_mismatched"), "Output": ("out", "force")})
@main.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(IMPORT_LAYOUTS))
@click.argument("src", type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Output dataset folder.")
@click.option("--mask-threshold", default=127, show_default=True, type=int, callback=in_range(0, 254),
              help="A mask that is not 0/255 is binarised: value > THRESHOLD -> 255 (a 0/1 mask is scaled).")
@click.option("--split-name", default=None,
              help="Split folder for releases with one unnamed split (irstd-1k, folders) [default: released].")
@click.option("--skip-mismatched", is_flag=True,
              help="Leave out ids whose mask size differs from the image (default: keep them unchanged, with a warning).")
@click.option("--force", is_flag=True,
              help="Replace what sirst-synth wrote in a non-empty output folder (other files stay).")
@friendly_errors
def import_command(fmt, src, out, mask_threshold, split_name, skip_mismatched, force):
    """Convert a released benchmark to this layout.

    Read a benchmark as its authors release it (FORMAT) from SRC and write it in the DNANet
    layout: images/, masks/ (0/255), one split folder per released split, import-manifest.csv,
    import.json.

    \b
    sirst       images/<id>.png, masks/<id>_pixels0.png, idx_*/{trainval,test}.txt
    sirst-v2    mixed/<id>.png, annotations/masks/<id>_pixels0.png, splits/{trainval,test}_<name>.txt
    irstd-1k    IRSTD1k_Img/, IRSTD1k_Label/, trainval.txt, test.txt
    basicirstd  images/, masks/ (.png/.bmp/.jpg), img_idx/{train,test}_<name>.txt
    folders     {trainval|train}/{images,masks}, test/{images,masks}
    dnanet      images/, masks/, <split>/{train,test}.txt (validated and copied)

    \b
    Example:
      sirst-synth import sirst SIRST -o SIRST-dnanet
    """
    from sirst_synth.errors import IdError, ImportProblems
    from sirst_synth.interop.importers import read_release
    from sirst_synth.interop.writer import write_import
    from sirst_synth.store.layout import id_problem

    start = time.perf_counter()
    if split_name is not None and (id_problem(split_name) or "/" in split_name):
        raise IdError(f"--split-name {split_name!r}: not a plain folder name")
    try:
        with _locked_output(out, src, force):
            release = read_release(fmt, src, split_name)
            report = write_import(release, out, mask_threshold, skip_mismatched)
    except ImportProblems as exc:
        if len(exc.lines) > 1:
            for line in exc.shown():
                click.echo(f"error: {line}", err=True)
        raise
    for line in report.warnings():
        _warn(line)
    splits = ", ".join(f"{n} ({len(p['train'])} train / {len(p['test'])} test)" for n, p in sorted(release.splits.items()))
    summary(f"import {fmt}: {report.images} images, {report.converted_images} re-encoded to PNG, "
            f"{len(report.binarised)} masks binarised; splits {splits} -> {out} in {time.perf_counter() - start:.1f} s",
            err=True)


@option_groups({"Input": ("split", "train_list", "test_list"), "Output": ("fmt", "out", "name", "copy", "force"),
                "Run": ("n_jobs",)})
@main.command("export")
@dataset_options
@click.option("--to", "fmt", required=True, type=click.Choice(LAYOUTS), help="Layout to write.")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--name", default=None,
              help="Dataset name (basicirstd, dnanet, points: the folder OUT/<name>/, written beside what OUT "
                   "holds) [default: DIR's name].")
@click.option("--copy", is_flag=True, help="Copy files instead of hard-linking them.")
@click.option("--force", is_flag=True,
              help="Replace an earlier export there (only the files sirst-synth wrote; other files stay).")
@click.option("-j", "--jobs", "n_jobs", default=-1, show_default=True, type=int, callback=check_jobs,
              help="Threads that hash and decode the files (-1: one per core).")
@friendly_errors
def export_command(dataset, split, train_list, test_list, fmt, out, name, copy, force, n_jobs):
    """Write a dataset in a trainer's layout.

    Write DATASET in the layout a trainer reads (--to), hard-linking its files. basicirstd,
    dnanet and points add the folder OUT/<name>/ beside the datasets OUT holds (a trainer's
    datasets/); the others write OUT. Each file is read once; basicirstd and points print the
    image statistics a trainer normalises with.

    \b
    basicirstd  OUT/<name>/{images,masks}, img_idx/{train,test}_<name>.txt (also SCTransNet)
    dnanet      OUT/<name>/{images,masks}, <split>/{train,test}.txt, value_result/
    mshnet      OUT/{images,masks}, trainval.txt, test.txt
    folders     OUT/{trainval,test}/{images,masks} (SeRankDet, mmseg)
    voc         Annotations/<id>.xml, ImageSets/Main/{trainval,test}.txt, JPEGImages/<id>.png
    yolo        images/{train,val}, labels/{train,val}, data.yaml
    coco        images/, annotations/instances_{train,test}.json
    points      basicirstd + masks_centroid/, points.json, points.csv (LESPS, PAL)

    \b
    Example:
      sirst-synth export SIRST-5K --to basicirstd -o datasets
    """
    from sirst_synth.errors import ExportError
    from sirst_synth.interop.exporters import check_name, export_target, run_export, target_hint
    from sirst_synth.interop.staging import staged_folder

    start = time.perf_counter()
    if dataset.is_file():
        raise ExportError(f"{dataset}: export reads a dataset folder, not a file")
    name = check_name(name or dataset.resolve().name)
    target = export_target(fmt, out, name)
    with _locked_output(target, dataset, force, target_hint(fmt)):
        ds = _open(dataset, split, train_list, test_list)
        with staged_folder(target) as tmp:
            record = run_export(ds, fmt, tmp, name, copy, n_jobs, settings().bars())
    for line in norm_lines(record):  # the report: what a trainer is given
        click.echo(line)
    if settings().verbose:
        click.echo(json.dumps({k: v for k, v in record.items() if k != "written"}, indent=2))
    files = record["files"]
    summary(f"export {fmt}: {record['train']} train / {record['test']} test ids, {files['linked']} files linked, "
            f"{files['copied']} copied, {len(files['masks_rewritten'])} masks rewritten -> {target} "
            f"in {time.perf_counter() - start:.1f} s", err=True)


def norm_lines(record: dict) -> list[str]:
    """The two image statistics of an export record, labelled (basicirstd, points)."""
    pooled, per_image = record.get("img_norm_cfg"), record.get("img_norm_cfg_per_image_train_test")
    if not pooled or not per_image:
        return []
    return [f"img_norm_cfg, pooled train pixels (sirst-synth's convention): mean {pooled['mean']:.4f}, "
            f"std {pooled['std']:.4f}",
            f"img_norm_cfg, BasicIRSTD's convention (per-image mean and std averaged over train + test): "
            f"mean {per_image['mean']:.4f}, std {per_image['std']:.4f} "
            f"(--img_norm_cfg_mean {per_image['mean']:.4f} --img_norm_cfg_std {per_image['std']:.4f})"]
