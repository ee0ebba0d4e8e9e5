"""The four operations behind the CLI: sample-noise, displace, negaug and build (SPEC sections 2-7).

Each one validates its source first (nothing is written when a source id is bad, unless
``skip_invalid``), plans every job up front, runs the jobs in joblib workers and writes the
dataset's closing files last.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from sirst_synth.dataset import Dataset
from sirst_synth.displace import FITS
from sirst_synth.errors import SirstSynthError
from sirst_synth.jobs import CopyJob, NoiseDraw, Place, UnitJob, remove_outputs, run_copy, run_unit
from sirst_synth.manifest import Row, new_row, original_row
from sirst_synth.negatives import check_window_size
from sirst_synth.noisebank import NoiseBank, NoiseBankWriter
from sirst_synth.output import (
    check_output, check_output_file, completed_run, finish_output, make_folder, start_output,
)
from sirst_synth.plan import (
    NoiseDrawer, PlanError, build_id_clashes, check_new_ids, displaced_id, negative_ids, next_batch, plan_units,
    refuse_clashes,
)
from sirst_synth.runstate import Journal, ResumeError, run_recorded, state_dir
from sirst_synth.scan import NoiseParams, Problem, ScanResult, check_grid, odd_mask_warnings, scan

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
    resume: bool = False


def _check_sources(result: ScanResult, opts: RunOptions) -> list[dict]:
    """Raise on problems unless they may be skipped; warn about odd masks; return the skipped ids."""
    if result.problems and (not opts.skip_invalid or not result.records):
        raise SourceProblems(result.problems, skippable=bool(result.records))
    if not result.records["train"]:
        raise PlanError(f"no valid train image left after skipping {len(result.problems)} bad id(s)")
    for line in odd_mask_warnings(result):
        log.warning(line)
    return [{"id": p.id, "split": p.part, "problem": p.message} for p in result.problems]


def _absolute(ds: Dataset) -> Dataset:
    """``ds`` with an absolute root, so workers elsewhere (a cluster) reach it by path."""
    return dataclasses.replace(ds, root=ds.root.resolve())


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


def _run_copies(jobs: list[CopyJob], place: Place, opts: RunOptions) -> Journal:
    """Copy every source id (recorded in the ``copies`` journal); return the journal."""
    journal = Journal(state_dir(place.out) / "copies.jsonl")
    keys = [f"{job.row['split']}/{job.id}" for job in jobs]
    for _ in run_recorded(run_copy, jobs, keys, journal, opts.n_jobs, "copying", opts.progress, place):
        pass
    journal.close()
    return journal


def _copied(copies: Journal, part: str) -> Iterator[Row]:
    """The copied rows of ``part``, in split order, streamed from the journal."""
    return (row for row in copies.rows() if row["split"] == part)


def _unit_key(job: UnitJob) -> str:
    return job.out_id if job.noise is not None else f"{job.out_id}/negatives"


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
    attrs = {"split": ds.split, "source": str(ds.root.resolve())}
    new_folder = next((p for p in [out.parent, *out.parent.parents] if p.parent.exists()), None)
    new_folder = new_folder if new_folder is not None and not new_folder.exists() else None
    make_folder(out.parent)
    try:
        result, _, writer = _check_and_sample(ds, ("train",), out, attrs, noise, opts)
    except BaseException:
        if new_folder is not None:
            shutil.rmtree(new_folder, ignore_errors=True)  # created above, and left empty by the writer
        raise
    return {"patches": len(writer), "images": writer.images, "images_with_patches": writer.images_with_patches,
            "skipped": len(result.problems), "seconds": time.perf_counter() - start}


def _check_and_sample(ds: Dataset, parts: tuple[str, ...], bank_path: Path, attrs: dict, noise: NoiseParams,
                      opts: RunOptions) -> tuple[ScanResult, list[dict], NoiseBankWriter]:
    """Check every id of ``parts`` and sample the train images' noise into a bank at ``bank_path``,
    which appears only when the sources, the grid and the bank pass their checks."""
    writer = NoiseBankWriter(bank_path, {"grid": noise.grid, "max_var": noise.max_var, "max_mean": noise.max_mean,
                                         **attrs})
    try:
        result = scan(ds, parts, opts.n_jobs, opts.progress, noise, writer)
        skipped = _check_sources(result, opts)
        _check_grid(result, noise)
        _check_bank(len(writer), writer.images, noise)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return result, skipped, writer


def _check_grid(result: ScanResult, noise: NoiseParams) -> None:
    problem = check_grid(result.records["train"], noise.grid)
    if problem:
        raise PlanError(problem)


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
    ds = _absolute(ds)
    _check_params(alpha=alpha, fit=fit)
    check_output(out, ds.root, opts.force, opts.resume)
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
    params = {"alpha": alpha, "rounds": rounds, "fit": fit, "seed": seed, "noise_bank_sha256": bank_info["sha256"]}
    run = _run_record("displace", ds, params, result)
    how = start_output(out, ds.root, ds.split, run, opts.force, opts.resume)
    if how == "complete":
        return _already_complete(out)
    place = Place(ds, out.resolve(), str(Path(bank_path).resolve()))
    copies = _run_copies(_copy_jobs(ds, result), place, opts)
    journal = Journal(state_dir(out) / "units.jsonl")
    for _ in run_recorded(run_unit, units, [_unit_key(u) for u in units], journal, opts.n_jobs, "displacing",
                          opts.progress, place):
        pass
    rows = _chain(_copied(copies, "train"), journal.rows(), _copied(copies, "test"))
    return _finish(out, ds, result, skipped, rows, run, {"noise_bank": bank_info}, start, how)


def negaug_dataset(ds: Dataset, out: Path, s: int, kinds: Iterable[str], opts: RunOptions) -> dict:
    """Copy ``ds`` to ``out`` and add the distinct negatives of its train images of ``kinds``."""
    start = time.perf_counter()
    ds = _absolute(ds)
    kinds = tuple(kinds)
    _check_params(s=s)
    check_output(out, ds.root, opts.force, opts.resume)
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
    run = _run_record("negaug", ds, {"s": s, "kinds": sorted(set(kinds))}, result)
    how = start_output(out, ds.root, ds.split, run, opts.force, opts.resume)
    if how == "complete":
        return _already_complete(out)
    place = Place(ds, out.resolve())
    copies = _run_copies(_copy_jobs(ds, result), place, opts)
    journal = Journal(state_dir(out) / "units.jsonl")
    negs = dict(zip((u.input_id for u in units),
                    run_recorded(run_unit, units, [_unit_key(u) for u in units], journal, opts.n_jobs,
                                 "negatives", opts.progress, place)))
    train = {row["id"]: row for row in _copied(copies, "train")}
    rows = [r for rec in result.records["train"] for r in (train[rec.id], *negs.get(rec.id, []))]
    rows += _copied(copies, "test")
    return _finish(out, ds, result, skipped, rows, run, {}, start, how)


def build(
    ds: Dataset, out: Path, alpha: float, s: int, total: int, seed: int, noise: NoiseParams, fit: str, opts: RunOptions,
    completed: dict | None = None,
) -> dict:
    """The whole SIRST-5K build: noise bank, rounds of displacement + negatives, cut to ``total``.

    The bank is sampled in a local temporary folder while the source is checked, then moved into
    the output's state folder, where workers (local or on a cluster) read it by path.
    ``completed``: the record of a finished copy kept elsewhere (see :func:`build_h5`).
    """
    start = time.perf_counter()
    ds = _absolute(ds)
    _check_params(alpha=alpha, fit=fit, s=s)
    check_output(out, ds.root, opts.force, opts.resume)
    workdir = Path(tempfile.mkdtemp(prefix="sirst-synth-"))
    try:
        scanned_bank = workdir / "noise.h5"
        result, skipped, writer = _check_and_sample(ds, ("train", "test"), scanned_bank, {}, noise, opts)
        log.info("noise bank: %d patches from %d of %d train images", len(writer), writer.images_with_patches, writer.images)
        train = result.records["train"]
        _check_params(s=s, records=train)
        if total < len(train):
            raise PlanError(f"--total {total} is smaller than the {len(train)} original training images")
        _check_build_plan(result, scanned_bank, total - len(train), seed)
        params = {"alpha": alpha, "s": s, "total": total, "seed": seed, "grid": noise.grid,
                  "max_var": noise.max_var, "max_mean": noise.max_mean, "fit": fit}
        run = _run_record("build", ds, params, result)
        how = start_output(out, ds.root, ds.split, run, opts.force, opts.resume, completed)
        if how == "complete":
            return _already_complete(out, completed)
        bank_path = state_dir(out).resolve() / "noise.h5"
        shutil.move(scanned_bank, bank_path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    place = Place(ds, out.resolve(), str(bank_path))
    copies = _run_copies(_copy_jobs(ds, result), place, opts)
    needed = total - len(train)
    units = _build_units(train, bank_path, place, alpha, s, needed, seed, fit, opts)
    rows = _chain(_copied(copies, "train"), islice(units.rows(), needed), _copied(copies, "test"))
    return _finish(out, ds, result, skipped, rows, run, {}, start, how)


def _all_ids(result: ScanResult) -> set[str]:
    return {r.id for records in result.records.values() for r in records}


def _chain(*parts: Iterable[Row]) -> Iterator[Row]:
    for part in parts:
        yield from part


def _run_record(command: str, ds: Dataset, params: dict, result: ScanResult) -> dict:
    """What a resumed build must match: command, parameters (split included), source fingerprint."""
    return {"command": command, "parameters": {"split": ds.split, **params}, "fingerprint": result.fingerprint()}


def _already_complete(out: Path, info: dict | None = None) -> dict:
    info = info or completed_run(out) or {}
    return {"out": str(out), **info.get("counts", {}), "skipped": len(info.get("source", {}).get("skipped_invalid", [])),
            "seconds": 0.0, "resumed": "complete"}


def _check_build_plan(result: ScanResult, bank_path: Path, needed: int, seed: int) -> None:
    """Before anything is written: enough patches for the rounds needed, no id clash.

    Every unit yields at least one image, so ``ceil(needed / train images)`` rounds suffice.
    """
    train = result.records["train"]
    rounds = -(-needed // len(train))
    with NoiseBank(bank_path) as bank:
        NoiseDrawer(bank.source_id, seed).check_capacity([r.id for r in train], rounds)
    refuse_clashes(build_id_clashes(_all_ids(result), {r.id: r.targets for r in train}, rounds))


def _build_units(train, bank_path: Path, place: Place, alpha: float, s: int, needed: int,
                 seed: int, fit: str, opts: RunOptions) -> Journal:
    """Run units in plan order, batch by batch, until exactly ``needed`` images are generated.

    Every unit's rows go to the ``units`` journal whole; the last unit is cut to fit (its extra
    files removed), so the dataset's generated rows are the journal's first ``needed`` rows.
    """
    with NoiseBank(bank_path) as bank:
        sources, grid = bank.source_id, bank.grid
    drawer = NoiseDrawer(sources, seed)
    max_sizes = {r.id: 1 + 3 * r.targets for r in train}
    units = plan_units([r.id for r in train], seed)
    journal = Journal(state_dir(place.out) / "units.jsonl")
    made = 0
    while made < needed:
        batch = next_batch(units, max_sizes, needed - made)
        log.info("batch of %d units from round %d for %d images still needed", len(batch), batch[0][0], needed - made)
        jobs = []
        for round_, id_ in batch:
            idx = drawer.draw(id_, round_)
            draw = NoiseDraw(idx, sources[idx], int(grid[idx][0]), int(grid[idx][1]))
            jobs.append(UnitJob(id_, displaced_id(id_, round_), new_row(split="train", source_id=id_, round=round_),
                                draw, alpha, fit, s))
        for unit_rows in run_recorded(run_unit, jobs, [_unit_key(j) for j in jobs], journal, opts.n_jobs,
                                      "building", opts.progress, place):
            room = needed - made
            made += min(room, len(unit_rows))
            remove_outputs(place.out, [r["id"] for r in unit_rows[room:]])
    journal.close()
    return journal


def _finish(out: Path, ds: Dataset, result: ScanResult, skipped: list[dict], rows: Iterable[Row],
            run: dict, extra: dict, start: float, how: str) -> dict:
    seconds = round(time.perf_counter() - start, 3)
    info = {"command": run["command"], "parameters": run["parameters"], **extra,
            "source": _source_info(ds, result, skipped), "resumed": how == "resumed", "elapsed_seconds": seconds}
    counts = finish_output(out, ds.split, rows, info)
    return {"out": str(out), **counts, "skipped": len(skipped), "seconds": seconds, "resumed": how}


def build_h5(
    ds: Dataset, out: Path, alpha: float, s: int, total: int, seed: int, noise: NoiseParams, fit: str, opts: RunOptions
) -> dict:
    """:func:`build` written as one HDF5 file ``out``: the PNG build is made (or resumed) in the
    folder ``OUT.building/``, packed into ``out`` (renamed into place when complete), then removed.

    ``--resume`` on a finished file checks its recorded parameters and source like a folder's."""
    from sirst_synth.h5store import H5Dataset, pack_dataset

    staging = out.with_name(out.name + ".building")
    completed = None
    if opts.resume and out.is_file() and not staging.exists():
        completed = H5Dataset(out).info()
    else:
        check_output_file(out, ds.root, opts.force or opts.resume)
    try:
        summary = build(ds, staging, alpha, s, total, seed, noise, fit, opts, completed)
    except ResumeError as exc:
        if completed is None:
            raise
        raise ResumeError(str(exc).replace(str(staging), str(out))) from None
    if summary["resumed"] == "complete":
        return {**summary, "out": str(out)}
    start = time.perf_counter()
    for tmp in out.parent.glob(f".{out.name}.*.tmp"):  # a pack cut short
        tmp.unlink(missing_ok=True)
    pack_dataset(staging, out, ds.split, progress=opts.progress, n_jobs=opts.n_jobs)
    shutil.rmtree(staging)
    return {**summary, "out": str(out), "seconds": round(summary["seconds"] + time.perf_counter() - start, 3)}
