"""``sirst-synth verify DIR``: check a built dataset against its ``manifest.csv`` and ``sirst-synth.json``.

Every listed image and mask must be present, hash as recorded, decode, and pair with a mask of
the same size; the split lists and the json's counts must equal the manifest's. No other file may
lie in the folders the tool writes (images/, masks/, the split folder) nor anywhere under a name the
tool uses (``.sirst-synth*``, temporary files): those fail. Files a trainer adds beside them
(DNANet's ``value_result/`` in a plain build) are *foreign*: listed, one line per top-level entry,
and a failure only with ``--strict``. In a folder written by ``export --to dnanet`` of a build, the
export's record and the files it lists are the tool's, and DNANet's result folders it made
(``value_result/``, ``visulization_result/``) are DNANet's: listed, never a failure. Each problem
is one line naming the file or id. numpy, OpenCV and Pillow are imported only when a check runs,
so ``sirst-synth --help`` stays fast.
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sirst_synth.errors import RecordError, VerifyError
from sirst_synth.progress import Progress, silent
from sirst_synth.store.layout import (
    DNANET_RESULT_FOLDERS,
    EXPORT_RECORD_NAME,
    INFO_NAME,
    KINDS,
    LOCK_NAME,
    MANIFEST_NAME,
    PARTS,
    PIXEL_FOLDERS,
    RUN_LOG_NAME,
    STATE_PREFIX,
    image_name,
    is_temp_name,
    mask_name,
)
from sirst_synth.store.record import read_record

INTERRUPTED = "left by an interrupted build; run build --resume"
LOCKED = "the lock of a command writing this folder, or left by one killed; wait for it, or run build --resume"
#: Ids hashed and decoded per worker job (keeps joblib's per-job overhead small).
BATCH = 64
_HEX64 = re.compile(r"^[0-9a-f]{64}$")




@dataclass
class Report:
    """What a check found: problems (one line each) and the size of what it checked."""

    root: Path
    problems: list[str] = field(default_factory=list)
    images: int = 0
    #: entries the tool never writes (a trainer's files), one line per top-level entry
    foreign: list[str] = field(default_factory=list)
    #: the result folders of DNANet that ``export --to dnanet`` made, with what DNANet wrote there
    results: list[str] = field(default_factory=list)

    def add(self, rel: str, message: str) -> None:
        self.problems.append(f"{self.root / rel}: {message}")


@dataclass(frozen=True)
class _Item:
    """One manifest id to check: its files' expected hashes."""

    id: str
    sha_image: str
    sha_mask: str


# -- sirst-synth.json -------------------------------------------------------------------------------

def _read_info(root: Path, report: Report) -> dict[str, Any] | None:
    try:
        info = read_record(root)
    except RecordError as exc:
        report.problems.append(str(exc))
        return None
    if info is None:
        report.add(INFO_NAME, "missing: the build never completed (finish it with build --resume)")
    return info


def _split_from_info(info: dict | None, report: Report) -> str | None:
    if info is None:
        return None
    parameters = info.get("parameters")
    split = parameters.get("split") if isinstance(parameters, dict) else None
    if not isinstance(split, str) or not split or split in (".", "..") or "/" in split or "\\" in split:
        report.add(INFO_NAME, f"parameters.split is missing or not a folder name ({split!r})")
        return None
    return split


def _guess_split(root: Path) -> str | None:
    """The one folder holding train.txt and test.txt, when the json cannot say."""
    found = [p.name for p in sorted(root.iterdir())
             if p.is_dir() and all((p / f"{part}.txt").is_file() for part in PARTS)]
    return found[0] if len(found) == 1 else None


# -- manifest.csv ---------------------------------------------------------------------------------

def _read_manifest(root: Path, report: Report) -> list[dict[str, str]]:
    """Rows of manifest.csv that are well-formed; malformed rows are reported by line number."""
    from sirst_synth.store.layout import id_problem
    from sirst_synth.store.manifest import COLUMNS

    path = root / MANIFEST_NAME
    if not path.is_file():
        hint = (" (an unfinished build's state is there: run build --resume)"
                if any(p.name.startswith(STATE_PREFIX) for p in root.iterdir()) else "")
        raise VerifyError(f"{path}: not found; {root} is not a finished sirst-synth dataset{hint}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            lines = [(reader.line_num, line) for line in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise VerifyError(f"{path}: cannot be read as CSV ({exc})") from None
    if header is None:
        raise VerifyError(f"{path}: empty (no header)")
    if tuple(header) != COLUMNS:
        missing = [c for c in COLUMNS if c not in header]
        extra = [c for c in header if c not in COLUMNS]
        detail = "; ".join(filter(None, [f"missing {', '.join(missing)}" if missing else "",
                                         f"unknown {', '.join(extra)}" if extra else ""])) or "wrong order"
        if missing:
            raise VerifyError(f"{path}: columns are not sirst-synth's ({detail})")
        report.add(MANIFEST_NAME, f"columns are not sirst-synth's ({detail})")
    rows, seen = [], set()
    for number, line in lines:
        if not line:
            continue
        if len(line) != len(header):
            report.add(MANIFEST_NAME, f"line {number}: {len(line)} fields, the header has {len(header)}")
            continue
        row = dict(zip(header, line))
        id_ = row["id"]
        bad = id_problem(id_)
        if bad:
            report.add(MANIFEST_NAME, f"line {number}: id {id_!r}: {bad}")
            continue
        if id_ in seen:
            report.add(MANIFEST_NAME, f"line {number}: id {id_!r} is listed twice")
            continue
        seen.add(id_)
        if row["split"] not in PARTS:
            report.add(MANIFEST_NAME, f"line {number}: id {id_!r} has split {row['split']!r}, not train or test")
        elif row["kind"] not in KINDS:
            report.add(MANIFEST_NAME, f"line {number}: id {id_!r} has kind {row['kind']!r}, not {', '.join(KINDS)}")
        for column in ("sha256_image", "sha256_mask"):
            if not _HEX64.match(row[column]):
                report.add(MANIFEST_NAME, f"line {number}: id {id_!r} has no valid {column}")
        rows.append(row)
    return rows


# -- images and masks (run in workers) ------------------------------------------------------------

def _check_file(root: Path, rel: str, expected: str) -> tuple[bytes | None, str | None]:
    """The file's bytes when present and hashed as expected, else None and the problem."""
    try:
        data = (root / rel).read_bytes()
    except FileNotFoundError:
        return None, "missing (listed in manifest.csv)"
    except OSError as exc:
        return None, f"cannot read ({exc.strerror})"
    if hashlib.sha256(data).hexdigest() != expected:
        return None, "sha256 differs from manifest.csv (file changed or corrupted)"
    return data, None


def check_items(items: list[_Item], root: str, shown: str | None = None) -> list[str]:
    """Problems of a batch of ids: presence, hashes, decoding, image and mask sizes. Files are read
    under ``root`` (absolute: a worker's working folder may be another) and named under ``shown``."""
    from sirst_synth.errors import ImageError
    from sirst_synth.store.imageio import decode_image

    where, named, problems = Path(root), Path(shown if shown is not None else root), []
    for item in items:
        shapes = {}
        for folder, rel, expected in zip(PIXEL_FOLDERS, (image_name(item.id), mask_name(item.id)),
                                         (item.sha_image, item.sha_mask)):
            data, problem = _check_file(where, rel, expected)
            if data is not None and problem is None:
                try:
                    shapes[folder] = decode_image(data, str(named / rel)).shape[:2]
                    continue
                except ImageError as exc:
                    problems.append(str(exc))
                    continue
            problems.append(f"{named / rel}: {problem}")
        if len(shapes) == 2 and len(set(shapes.values())) == 2:
            (ih, iw), (mh, mw) = shapes.values()
            problems.append(f"{named / mask_name(item.id)}: {mh}x{mw} mask for a {ih}x{iw} image")
    return problems


def _check_files(rows: list[dict[str, str]], root: Path, n_jobs: int, progress: Progress) -> list[str]:
    from sirst_synth.run.parallel import run_jobs

    items = [_Item(r["id"], r["sha256_image"], r["sha256_mask"]) for r in rows]
    batches = [items[i:i + BATCH] for i in range(0, len(items), BATCH)]
    return [p for found in run_jobs(check_items, batches, n_jobs, "verifying", progress, str(root.absolute()), str(root))
            for p in found]


# -- split lists, counts, strays --------------------------------------------------------------------

def _describe_difference(listed: list[str], wanted: list[str]) -> str:
    listed_set, wanted_set = set(listed), set(wanted)
    missing = [i for i in wanted if i not in listed_set]
    extra = [i for i in listed if i not in wanted_set]

    def few(ids: list[str]) -> str:
        return ", ".join(repr(i) for i in ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")

    if missing or extra:
        parts = [f"lacks {few(missing)}" if missing else "", f"has {few(extra)} not in the manifest" if extra else ""]
        return f"{len(listed)} ids, the manifest has {len(wanted)}: " + "; ".join(filter(None, parts))
    if len(listed) != len(set(listed)):
        dup = sorted(i for i, n in Counter(listed).items() if n > 1)
        return f"lists {few(dup)} more than once"
    line = next(n for n, (a, b) in enumerate(zip(listed, wanted)) if a != b)
    return f"order differs from the manifest at line {line + 1}: {listed[line]!r}, manifest {wanted[line]!r}"


def _check_split_lists(root: Path, split: str, rows: list[dict[str, str]], report: Report) -> None:
    from sirst_synth.errors import DatasetError
    from sirst_synth.store.dataset import read_id_list

    for part in PARTS:
        rel = f"{split}/{part}.txt"
        wanted = [r["id"] for r in rows if r["split"] == part]
        try:
            listed = read_id_list(root / rel)
        except DatasetError as exc:
            report.add(rel, str(exc).split(": ", 1)[-1])
            continue
        if listed != wanted:
            report.add(rel, _describe_difference(listed, wanted))


def _check_counts(info: dict | None, rows: list[dict[str, str]], report: Report) -> None:
    from sirst_synth.run.folder import count_kinds

    if info is None:
        return
    recorded = info.get("counts")
    if not isinstance(recorded, dict):
        report.add(INFO_NAME, "has no counts")
        return
    counts = count_kinds([r for r in rows if r["split"] in PARTS and r["kind"] in KINDS])
    for name, value in counts.items():
        if recorded.get(name) != value:
            report.add(INFO_NAME, f"counts.{name} is {recorded.get(name)!r}, the manifest has {value}")


def _export_record(root: Path) -> dict[str, Any]:
    """The ``sirst-synth-export.json`` of an exported folder (``export --to dnanet`` of a build), or {}."""
    import json

    try:
        record = json.loads((root / EXPORT_RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _strays(root: Path, expected: set[str], owned: set[str], report: Report,
            results: tuple[str, ...] = ()) -> None:
    """Every file under ``root`` not in ``expected`` (relative POSIX paths): build leftovers and
    files inside the tool's folders ``owned`` are problems, files in a trainer's ``results`` folders
    are that trainer's (listed, never a failure), the rest foreign (one line per top-level entry)."""
    found = []
    for folder, dirs, files in os.walk(root):
        rel_dir = Path(folder).relative_to(root)
        for name in sorted(dirs):
            if name.startswith(STATE_PREFIX) or os.path.islink(os.path.join(folder, name)):
                found.append(((rel_dir / name).as_posix(), name))
        dirs[:] = sorted(d for d in dirs if not d.startswith(STATE_PREFIX) and not os.path.islink(os.path.join(folder, d)))
        found += [((rel_dir / name).as_posix(), name) for name in files]
    foreign: dict[str, int] = {}
    by_trainer: dict[str, int] = {}
    for rel, name in sorted(found):
        if rel in expected:
            continue
        top = rel.split("/", 1)[0]
        if top in results and "/" in rel:
            by_trainer[top] = by_trainer.get(top, 0) + 1
        elif name == LOCK_NAME:
            report.add(rel, LOCKED)
        elif name.startswith(STATE_PREFIX) or is_temp_name(name):
            report.add(rel, INTERRUPTED)
        elif top in owned or "/" not in rel and name in (MANIFEST_NAME, INFO_NAME):
            report.add(rel, f"stray file (not listed in {MANIFEST_NAME})")
        else:
            foreign[top] = foreign.get(top, 0) + 1
    for top, n in sorted(foreign.items()):
        if (root / top).is_dir() and not (root / top).is_symlink():
            report.foreign.append(f"{root / top}/: foreign folder ({n} file{'s' if n != 1 else ''} "
                                  "not written by sirst-synth)")
        else:
            report.foreign.append(f"{root / top}: foreign file (not written by sirst-synth)")
    for top, n in sorted(by_trainer.items()):
        report.results.append(f"{root / top}/: DNANet's results, made by export --to dnanet "
                              f"({n} file{'s' if n != 1 else ''} written by DNANet; not checked)")


# -- the whole check ------------------------------------------------------------------------------

def verify_report(root: Path, n_jobs: int = 1, progress: Progress = silent) -> Report:
    """Check the dataset at ``root``; raise :class:`VerifyError` when it cannot be checked at all."""
    root = Path(root)
    if not root.is_dir():
        if not root.exists():
            raise VerifyError(f"{root}: folder not found")
        hdf5 = " (an HDF5 build: verify checks folder builds only)" if root.suffix in (".h5", ".hdf5") else ""
        raise VerifyError(f"{root}: not a folder{hdf5}")
    report = Report(root)
    info = _read_info(root, report)
    split = _split_from_info(info, report)
    rows = _read_manifest(root, report)
    report.images = len(rows)
    if split is None:  # the json cannot say: the one folder holding both lists
        split = _guess_split(root)
    report.problems += _check_files(rows, root, n_jobs, progress)
    expected = {MANIFEST_NAME, INFO_NAME, RUN_LOG_NAME}
    expected |= {name(r["id"]) for r in rows for name in (image_name, mask_name)}
    export = _export_record(root)
    if export:  # an exported build (export --to dnanet): its record and the files it lists are the tool's
        written = export.get("written")
        expected |= {EXPORT_RECORD_NAME} | {w for w in (written if isinstance(written, list) else ()) if isinstance(w, str)}
    results = DNANET_RESULT_FOLDERS if export.get("format") == "dnanet" else ()
    owned = set(PIXEL_FOLDERS)
    if split is not None:
        if not (root / split).is_dir():
            report.add(split, "split folder missing")
        else:
            _check_split_lists(root, split, rows, report)
        expected |= {f"{split}/{part}.txt" for part in PARTS}
        owned.add(split)
    _check_counts(info, rows, report)
    _strays(root, expected, owned, report, results)
    return report


def verify_dataset(root: Path, n_jobs: int = 1, strict: bool = False) -> list[str]:
    """Problems of the built dataset at ``root``, one line each naming the file or id; empty when
    intact. Foreign files are problems only with ``strict``."""
    report = verify_report(root, n_jobs)
    return report.problems + (report.foreign if strict else [])
