"""Validating a source dataset before anything is written, and sampling noise in the same pass.

Every id of the split is read once by a worker: image and mask present, decodable, 8-bit, same
size (a test image, which is only copied, as a PNG checked whole without decoding its pixels,
:func:`sirst_synth.store.imageio.checked_png_shape`, when it is an 8-bit gray or RGB PNG). The
worker returns a small record (size, channels, targets, file hashes) and, for train images when
asked, the noise-prone patches of that image (docs/method.md section 2). A worker keeps the
train images it decoded (:func:`sirst_synth.run.sources.keep_source`), so the units it runs later do
not decode them again.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sirst_synth.method.gray import method_gray
from sirst_synth.method.noise import NoiseRegion, crop, noise_prone_regions
from sirst_synth.method.targets import find_targets
from sirst_synth.plan.params import NoiseParams
from sirst_synth.progress import Progress
from sirst_synth.run.journal import kill_point
from sirst_synth.run.parallel import run_jobs
from sirst_synth.run.sinks import PNG_FILES, ImageSink
from sirst_synth.run.sources import keep_source, one_opencv_thread
from sirst_synth.store import imageio
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.fingerprint import ImageSums, fingerprint_of, gray_sums, hashed_line
from sirst_synth.store.h5.stored import StoredImage
from sirst_synth.store.layout import PARTS, flat_name, id_problem
from sirst_synth.store.noisebank import NoiseBankWriter

if TYPE_CHECKING:
    from sirst_synth.run.output import Output


@dataclass(frozen=True)
class SourceRecord:
    """What the plan needs to know of one valid source image."""

    id: str
    part: str
    height: int
    width: int
    channels: int
    targets: int
    sha256_image: str
    sha256_mask: str
    #: mask values other than 0 and 255 (at most 5, ascending); pixels > 0 are still the targets.
    odd_mask_values: tuple[int, ...] = ()
    #: pixels, sum and sum of squares of a train image's gray (for ``img_norm_cfg``)
    gray_sums: ImageSums | None = None


@dataclass(frozen=True)
class Problem:
    """A bad source id and what is wrong with it."""

    id: str
    part: str
    message: str

    def __str__(self) -> str:
        return self.message if self.id == "-" else f"{self.part} id {self.id!r}: {self.message}"


@dataclass
class ScanResult:
    """Valid records per part, in split order, and the problems found."""

    records: dict[str, list[SourceRecord]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def fingerprint(self) -> str:
        """SHA-256 over every valid id with its part and file hashes, in split order."""
        return fingerprint_of(hashed_line(part, r.id, r.sha256_image, r.sha256_mask)
                              for part in sorted(self.records) for r in self.records[part])


@dataclass(frozen=True)
class _ScanJob:
    id: str
    part: str
    sample: bool


_Outcome = tuple["SourceRecord | None", "Problem | None", list[NoiseRegion], list[np.ndarray], "StoredImage | None"]


def _scan_one(job: _ScanJob, ds: Dataset, noise: NoiseParams, sink: ImageSink) -> _Outcome:
    bad = id_problem(job.id)
    if bad:
        return None, Problem(job.id, job.part, bad), [], [], None
    one_opencv_thread()
    image: np.ndarray | None = None
    try:
        image_bytes = imageio.read_bytes(ds.image_path(job.id))
        # a test image is only copied: a PNG checked whole without decoding its pixels is enough
        shape = None if job.part == "train" or sink.stores_originals else imageio.checked_png_shape(image_bytes)
        if shape is None:
            image = imageio.decode_image(image_bytes, f"image {ds.image_path(job.id)}")
            shape = (*image.shape[:2], 1 if image.ndim == 2 else image.shape[2])
        mask_bytes = imageio.read_bytes(ds.mask_path(job.id))
        mask = imageio.mask_from_image(imageio.decode_image(mask_bytes, f"mask {ds.mask_path(job.id)}"))
    except imageio.ImageError as exc:
        return None, Problem(job.id, job.part, str(exc)), [], [], None
    (h, w, channels), (mh, mw) = shape, mask.shape
    if (h, w) != (mh, mw):
        return None, Problem(job.id, job.part, f"mask is {mw}x{mh} but image is {w}x{h} (width x height)"), [], [], None
    flat = mask.ravel()
    values = np.flatnonzero(np.bincount(flat[np.flatnonzero(flat)], minlength=256))  # the target pixels' values
    odd = tuple(int(v) for v in values if v not in (0, 255))[:5]
    targets = find_targets(mask)
    record = SourceRecord(
        job.id, job.part, h, w, channels, len(targets),
        imageio.sha256(image_bytes), imageio.sha256(mask_bytes), odd,
    )
    # uint8, or float32 for a colour image: as float_gray, unrounded
    gray = method_gray(image) if image is not None and (job.part == "train" or sink.stores_originals) else None
    stored = sink.original(flat_name(job.id), image, mask, gray) if image is not None else None
    if job.part != "train":
        return record, None, [], [], stored
    assert image is not None and gray is not None
    record = dataclasses.replace(record, gray_sums=gray_sums(gray))
    keep_source(ds, job.id, gray, mask, targets)
    if not job.sample:
        return record, None, [], [], stored
    if h // noise.grid < 2 or w // noise.grid < 2:  # refused by check_grid before the bank is used
        return record, None, [], [], stored
    regions = noise_prone_regions(gray.astype(np.float32, copy=False), mask, noise.grid, noise.max_var, noise.max_mean)
    # the patches travel back to the parent in the gray's own type (uint8 for a gray source: a
    # quarter of the bytes); the parent stores them as float32 (what crop() of the float gray gives)
    patches = [np.ascontiguousarray(gray[y0:y1, x0:x1]) for y0, x0, y1, x1 in (r.box for r in regions)]
    return record, None, regions, patches, stored


def odd_mask_warnings(result: ScanResult, shown: int = 5) -> list[str]:
    """Warning lines for masks with values other than 0 and 255 (the first ``shown``, then a count)."""
    odd = [r for records in result.records.values() for r in records if r.odd_mask_values]
    lines = [f"{r.part} id {r.id!r}: mask has values other than 0 and 255 ({', '.join(map(str, r.odd_mask_values))}"
             f"{', ...' if len(r.odd_mask_values) == 5 else ''}); pixels > 0 are used as targets" for r in odd[:shown]]
    if len(odd) > shown:
        lines.append(f"... and {len(odd) - shown} more masks with values other than 0 and 255")
    return lines


def check_grid(records: list[SourceRecord], grid: int) -> str | None:
    """Why ``grid`` is unusable (regions under 2x2 pixels in the smallest train image), or None."""
    if not records:
        return None
    small = min(records, key=lambda r: min(r.height, r.width))
    if small.height // grid >= 2 and small.width // grid >= 2:
        return None
    best = min(small.height, small.width) // 2
    return (f"--grid {grid} cuts train id {small.id!r} ({small.width}x{small.height} pixels) into regions of "
            f"{small.width // grid}x{small.height // grid} pixels; regions need at least 2x2 pixels: use --grid <= {best}")


def duplicate_problems(ds: Dataset, ids: dict[str, list[str]]) -> list[Problem]:
    """Ids listed twice in a part, or in both train and test (leakage)."""
    problems = []
    for part, part_ids in ids.items():
        for id_, n in Counter(part_ids).items():
            if n > 1:
                problems.append(Problem(id_, part, f"listed {n} times in {ds.split_file(part)}"))
    if "train" in ids and "test" in ids:
        for id_ in sorted(set(ids["train"]) & set(ids["test"])):
            problems.append(Problem(id_, "train", "also listed in the test split (test leakage)"))
    return problems


def scan(
    ds: Dataset,
    parts: tuple[str, ...],
    n_jobs: int,
    progress: Progress,
    noise: NoiseParams | None = None,
    bank: NoiseBankWriter | None = None,
    output: Output | None = None,
) -> ScanResult:
    """Validate every id of ``parts``; with ``bank``, sample noise from the train images into it;
    with ``output``, hand it each valid image in job order when it stores the originals as decoded
    (:attr:`~sirst_synth.run.sinks.ImageSink.stores_originals`).

    Both split lists are checked for duplicates and train/test leakage, whichever parts are read.
    """
    ids = {part: ds.ids(part) for part in parts}
    listed = {part: ids[part] if part in ids else ds.ids(part) for part in PARTS}
    result = ScanResult(problems=duplicate_problems(ds, listed))  # leakage even when only train is read
    result.problems += [Problem("-", p, f"{ds.split_file(p)} lists no id") for p in parts if not ids[p]]
    if result.problems:
        return result
    jobs = [_ScanJob(i, part, bank is not None and part == "train") for part in parts for i in ids[part]]
    result.records = {part: [] for part in parts}
    sink = output.sink if output is not None else PNG_FILES
    outcomes = run_jobs(_scan_one, jobs, n_jobs, "checking sources", progress, ds, noise or NoiseParams(), sink)
    for done, (job, (record, problem, regions, patches, stored)) in enumerate(zip(jobs, outcomes), 1):
        if problem is not None:
            result.problems.append(problem)
            continue
        result.records[job.part].append(record)
        if output is not None and stored is not None:
            output.add_original(stored)
        if bank is not None and job.sample:
            bank.add(job.id, regions, [crop(patch, (0, 0, *patch.shape)) for patch in patches])
        kill_point("scan", done)  # tests only
    return result
