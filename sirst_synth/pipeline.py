"""The four operations behind the CLI: sample-noise, displace, negaug and build (SPEC sections 2-7).

Each one validates its source first (nothing is written when a source id is bad, unless
``skip_invalid``), plans every job up front, runs the jobs in joblib workers and writes the
dataset's closing files last.
"""
from __future__ import annotations

from sirst_synth.errors import SirstSynthError

import logging
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sirst_synth.dataset import Dataset
from sirst_synth.displace import FITS
from sirst_synth.jobs import CopyJob, NoiseDraw, Place, UnitJob, remove_outputs, run_copy, run_unit
from sirst_synth.manifest import Row, new_row, original_row
from sirst_synth.negatives import check_window_size
from sirst_synth.noisebank import NoiseBank, NoiseBankWriter
from sirst_synth.output import check_output, check_output_file, count_kinds, finish_output, prepare_output
from sirst_synth.parallel import run_jobs
from sirst_synth.plan import (
    NoiseDrawer, PlanError, check_new_ids, displaced_id, negative_ids, next_batch, plan_units,
)
from sirst_synth.scan import NoiseParams, Problem, ScanResult, scan

log = logging.getLogger(__name__)


class SourceProblems(SirstSynthError):
    """Bad source ids, one line each."""

    def __init__(self, problems: list[Problem], skippable: bool = True):
        self.problems = problems
        self.hint = "fix them or pass --skip-invalid" if skippable else "fix the split lists"
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class RunOptions:
    """How to run, not what to compute: outputs never depend on these."""

    n_jobs: int = -1
    progress: bool = False
    skip_invalid: bool = False
    force: bool = False


def _check_sources(result: ScanResult, opts: RunOptions) -> list[dict]:
    """Raise on problems unless they may be skipped; return the skipped ids for the record."""
    if result.problems and (not opts.skip_invalid or not result.records):
        raise SourceProblems(result.problems, skippable=bool(result.records))
    if not result.records["train"]:
        raise PlanError(f"no valid train image left after skipping {len(result.problems)} bad id(s)")
    return [{"id": p.id, "split": p.part, "problem": p.message} for p in result.problems]


def _check_params(alpha: float | None = None, s: int | None = None, fit: str | None = None, records=()) -> None:
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise PlanError(f"--alpha must be in [0, 1], got {alpha}")
    if fit is not None and fit not in FITS:
        raise PlanError(f"--fit must be one of {', '.join(FITS)}, got {fit!r}")
    if s is not None and (s < 1 or s % 2 == 0):
        raise PlanError(f"--s must be odd and >= 1, got {s}")
    if s is not None:
        for r in records:
            try:
                check_window_size(s, r.height, r.width)
            except ValueError as exc:
                raise PlanError(f"--s: {exc} ({r.part} id {r.id!r})") from None


def _copy_jobs(ds: Dataset, result: ScanResult) -> list[CopyJob]:
    """Copy jobs for every valid id, keeping the source's manifest rows when it has them."""
    manifest = ds.manifest() or {}
    jobs = []
    for part in ("train", "test"):
        for rec in result.records.get(part, []):
            row = manifest.get(rec.id) or original_row(rec.id, part)
            jobs.append(CopyJob(rec.id, {**row, "split": part}))
    return jobs


def _run_copies(jobs: list[CopyJob], place: Place, opts: RunOptions) -> dict[str, Row]:
    rows = run_jobs(run_copy, jobs, opts.n_jobs, "copying", opts.progress, place)
    return {job.row["split"] + "/" + job.id: row for job, row in zip(jobs, rows)}


def _ordered(copies: dict[str, Row], result: ScanResult, part: str) -> list[Row]:
    return [copies[f"{part}/{r.id}"] for r in result.records.get(part, [])]


def _source_info(ds: Dataset, result: ScanResult, skipped: list[dict]) -> dict:
    return {
        "path": str(ds.root.resolve()), "split": ds.split, "train_list": ds.train_list,
        "test_list": ds.test_list, "fingerprint": result.fingerprint(),
        "train": len(result.records.get("train", [])), "test": len(result.records.get("test", [])),
        "skipped_invalid": skipped,
    }


def sample_noise(ds: Dataset, out: Path, noise: NoiseParams, opts: RunOptions) -> dict:
    """Write the noise bank of the train images of ``ds`` to ``out`` (an HDF5 file)."""
    start = time.perf_counter()
    check_output_file(out, ds.root, opts.force)
    attrs = {"grid": noise.grid, "max_var": noise.max_var, "max_mean": noise.max_mean,
             "split": ds.split, "source": str(ds.root.resolve())}
    writer = NoiseBankWriter(out, attrs)
    try:
        result = scan(ds, ("train",), opts.n_jobs, opts.progress, noise, writer)
        _check_sources(result, opts)
        _check_bank(len(writer), writer.images, noise)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return {"patches": len(writer), "images": writer.images, "images_with_patches": writer.images_with_patches,
            "skipped": len(result.problems), "seconds": time.perf_counter() - start}


def _check_bank(patches: int, images: int, noise: NoiseParams) -> None:
    if patches == 0:
        raise PlanError(
            f"no noise-prone region in {images} train images with a {noise.grid}x{noise.grid} grid, "
            f"0 < var < {noise.max_var:g} and 0 < mean < {noise.max_mean:g}; "
            "relax the thresholds (raise --max-var or --max-mean) or change --grid"
        )


def _inherited(row: Row | None, id_: str, round_: int | None = None) -> Row:
    """Fields a generated image inherits from its input's manifest row."""
    source = (row or {}).get("source_id") or id_
    fields = {"split": "train", "source_id": source}
    if round_ is not None:
        fields["round"] = round_
    elif row and row.get("round"):
        fields.update({k: row[k] for k in ("round", "noise_source_id", "noise_row", "noise_col", "alpha")})
    return new_row(**fields)


def displace_dataset(
    ds: Dataset, bank_path: Path, out: Path, alpha: float, rounds: int, fit: str, seed: int, opts: RunOptions
) -> dict:
    """Copy ``ds`` to ``out`` and add ``rounds`` displaced versions of every train image."""
    start = time.perf_counter()
    _check_params(alpha=alpha, fit=fit)
    check_output(out, ds.root, opts.force)
    if rounds < 1:
        raise PlanError(f"--rounds must be >= 1, got {rounds}")
    with NoiseBank(bank_path) as bank:
        sources, grid, bank_info = bank.source_id, bank.grid, bank.describe()
    result = scan(ds, ("train", "test"), opts.n_jobs, opts.progress)
    skipped = _check_sources(result, opts)
    manifest = ds.manifest() or {}
    check_new_ids(_all_ids(result), (displaced_id(r.id, k) for r in result.records["train"] for k in range(rounds)))
    drawer = NoiseDrawer(sources, seed)
    units = []
    for r in range(rounds):
        for rec in result.records["train"]:
            row = _inherited(manifest.get(rec.id), rec.id, r)
            idx = drawer.draw(rec.id, r, row["source_id"])
            draw = NoiseDraw(idx, sources[idx], int(grid[idx][0]), int(grid[idx][1]))
            units.append(UnitJob(rec.id, displaced_id(rec.id, r), row, draw, alpha, fit))
    prepare_output(out, ds.root, ds.split, opts.force)
    place = Place(ds, out, str(Path(bank_path).resolve()))
    copies = _run_copies(_copy_jobs(ds, result), place, opts)
    generated = [row for rows in run_jobs(run_unit, units, opts.n_jobs, "displacing", opts.progress, place) for row in rows]
    rows = _ordered(copies, result, "train") + generated + _ordered(copies, result, "test")
    params = {"alpha": alpha, "rounds": rounds, "fit": fit, "seed": seed, "noise_bank": bank_info}
    return _finish(out, ds, result, skipped, rows, "displace", params, start)


def negaug_dataset(ds: Dataset, out: Path, s: int, kinds: Iterable[str], opts: RunOptions) -> dict:
    """Copy ``ds`` to ``out`` and add the distinct negatives of its train images of ``kinds``."""
    start = time.perf_counter()
    kinds = tuple(kinds)
    check_output(out, ds.root, opts.force)
    result = scan(ds, ("train", "test"), opts.n_jobs, opts.progress)
    skipped = _check_sources(result, opts)
    _check_params(s=s, records=result.records["train"])
    manifest = ds.manifest() or {}
    units = []
    for rec in result.records["train"]:
        row = manifest.get(rec.id)
        if ((row or {}).get("kind") or "original") in kinds:
            units.append(UnitJob(rec.id, rec.id, _inherited(row, rec.id), s=s))
    targets = {r.id: r.targets for r in result.records["train"]}
    check_new_ids(_all_ids(result), (i for u in units for i in negative_ids(u.input_id, targets[u.input_id])))
    prepare_output(out, ds.root, ds.split, opts.force)
    place = Place(ds, out)
    copies = _run_copies(_copy_jobs(ds, result), place, opts)
    negs = {u.input_id: rows for u, rows in zip(units, run_jobs(run_unit, units, opts.n_jobs, "negatives", opts.progress, place))}
    rows = []
    for rec in result.records["train"]:
        rows += [copies[f"train/{rec.id}"], *negs.get(rec.id, [])]
    rows += _ordered(copies, result, "test")
    return _finish(out, ds, result, skipped, rows, "negaug", {"s": s, "kinds": list(kinds)}, start)


def build(
    ds: Dataset, out: Path, alpha: float, s: int, total: int, seed: int, noise: NoiseParams, fit: str, opts: RunOptions
) -> dict:
    """The whole SIRST-5K build: noise bank, rounds of displacement + negatives, cut to ``total``."""
    start = time.perf_counter()
    _check_params(alpha=alpha, fit=fit)
    check_output(out, ds.root, opts.force)
    workdir = Path(tempfile.mkdtemp(prefix="sirst-synth-"))
    try:
        bank_path = workdir / "noise.h5"
        writer = NoiseBankWriter(bank_path, {"grid": noise.grid, "max_var": noise.max_var, "max_mean": noise.max_mean})
        try:
            result = scan(ds, ("train", "test"), opts.n_jobs, opts.progress, noise, writer)
            skipped = _check_sources(result, opts)
            _check_bank(len(writer), writer.images, noise)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        log.info("noise bank: %d patches from %d of %d train images", len(writer), writer.images_with_patches, writer.images)
        train = result.records["train"]
        _check_params(s=s, records=train)
        if total < len(train):
            raise PlanError(f"--total {total} is smaller than the {len(train)} original training images")
        _check_build_plan(result, bank_path, total - len(train), seed)
        prepare_output(out, ds.root, ds.split, opts.force)
        place = Place(ds, out, str(bank_path))
        copies = _run_copies(_copy_jobs(ds, result), place, opts)
        generated = _build_units(train, bank_path, place, alpha, s, total - len(train), seed, fit, opts)
        rows = _ordered(copies, result, "train") + generated + _ordered(copies, result, "test")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    params = {"alpha": alpha, "s": s, "total": total, "seed": seed, "grid": noise.grid,
              "max_var": noise.max_var, "max_mean": noise.max_mean, "fit": fit}
    summary = _finish(out, ds, result, skipped, rows, "build", params, start)
    return summary


def _all_ids(result: ScanResult) -> set[str]:
    return {r.id for records in result.records.values() for r in records}


def _check_build_plan(result: ScanResult, bank_path: Path, needed: int, seed: int) -> None:
    """Before anything is written: enough patches for the rounds needed, no id clash.

    Every unit yields at least one image, so ``ceil(needed / train images)`` rounds suffice.
    """
    train = result.records["train"]
    rounds = -(-needed // len(train))
    with NoiseBank(bank_path) as bank:
        NoiseDrawer(bank.source_id, seed).check_capacity([r.id for r in train], rounds)
    new = (i for k in range(rounds) for r in train
           for i in (displaced_id(r.id, k), *negative_ids(displaced_id(r.id, k), r.targets)))
    check_new_ids(_all_ids(result), new)


def _build_units(train, bank_path: Path, place: Place, alpha: float, s: int, needed: int,
                 seed: int, fit: str, opts: RunOptions) -> list[Row]:
    """Run units in plan order, batch by batch, until exactly ``needed`` images are generated."""
    with NoiseBank(bank_path) as bank:
        sources, grid = bank.source_id, bank.grid
    drawer = NoiseDrawer(sources, seed)
    max_sizes = {r.id: 1 + 3 * r.targets for r in train}
    units = plan_units([r.id for r in train], seed)
    rows: list[Row] = []
    while len(rows) < needed:
        batch = next_batch(units, max_sizes, needed - len(rows))
        log.info("batch of %d units from round %d for %d images still needed", len(batch), batch[0][0], needed - len(rows))
        jobs = []
        for round_, id_ in batch:
            idx = drawer.draw(id_, round_)
            draw = NoiseDraw(idx, sources[idx], int(grid[idx][0]), int(grid[idx][1]))
            jobs.append(UnitJob(id_, displaced_id(id_, round_), new_row(split="train", source_id=id_, round=round_),
                                draw, alpha, fit, s))
        for unit_rows in run_jobs(run_unit, jobs, opts.n_jobs, "building", opts.progress, place):
            room = needed - len(rows)
            rows += unit_rows[:room]
            remove_outputs(place.out, [r["id"] for r in unit_rows[room:]])
    return rows


def _finish(out: Path, ds: Dataset, result: ScanResult, skipped: list[dict], rows: list[Row],
            command: str, params: dict, start: float) -> dict:
    counts = count_kinds(rows)
    seconds = round(time.perf_counter() - start, 3)
    info = {"command": command, "parameters": {"split": ds.split, **params},
            "source": _source_info(ds, result, skipped), "counts": counts, "elapsed_seconds": seconds}
    finish_output(out, ds.split, rows, info)
    return {"out": str(out), **counts, "skipped": len(skipped), "seconds": seconds}
