"""Writing an imported release in the canonical layout (docs/method.md section 1), plus its provenance.

    OUT/images/<flat id>.png     OUT/masks/<flat id>.png
    OUT/<split>/train.txt        OUT/<split>/test.txt       (one folder per released split)
    OUT/import-manifest.csv      one row per id: where each file came from, what was done, sha256s
    OUT/import.json              format, source lists with their sha256, threshold, counts, warnings

Everything is written into a temporary folder next to OUT that replaces OUT at the end.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sirst_synth.interop import convert
from sirst_synth.interop.importers import ImportProblems, Item, Release
from sirst_synth.interop.staging import id_list_text, staged_folder, write_text
from sirst_synth.store import imageio
from sirst_synth.store.layout import IMPORT_MANIFEST_NAME, IMPORT_RECORD_NAME, flat_names

MANIFEST = IMPORT_MANIFEST_NAME
RECORD = IMPORT_RECORD_NAME
COLUMNS = (
    "id", "source_id", "splits", "image_source", "image_action", "mask_source", "mask_action",
    "width", "height", "mask_width", "mask_height",
    "sha256_source_image", "sha256_source_mask", "sha256_image", "sha256_mask",
)


@dataclass
class ImportReport:
    """Counts and warnings of one import."""

    images: int = 0
    converted_images: int = 0
    binarised: list[str] = field(default_factory=list)
    size_mismatch: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    empty_masks: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)

    def warnings(self, shown: int = 5) -> list[str]:
        """One line per kind of warning, naming the first ``shown`` ids."""
        def few(ids: list[str]) -> str:
            more = f", ... ({len(ids)} in all)" if len(ids) > shown else ""
            return ", ".join(ids[:shown]) + more

        lines = []
        if self.binarised:
            lines.append(f"{len(self.binarised)} mask(s) were not binary 0/255 and were binarised: {few(self.binarised)}")
        if self.dropped:
            lines.append(f"binarising removed target pixels (all at or below --mask-threshold) in: {few(self.dropped)}")
        if self.size_mismatch:
            what = "left out (--skip-mismatched)" if self.skipped else "kept unchanged (build refuses them unless --skip-invalid)"
            lines.append(f"{len(self.size_mismatch)} mask(s) differ in size from their image, {what}: {few(self.size_mismatch)}")
        if self.empty_masks:
            lines.append(f"{len(self.empty_masks)} image(s) have no mask in the release and got an empty mask: {few(self.empty_masks)}")
        if self.unlisted:
            lines.append(f"{len(self.unlisted)} file(s) in the release are in no split list and were not imported: {few(self.unlisted)}")
        return lines


def _source_name(release: Release, path: Path | None) -> str:
    return "" if path is None else path.relative_to(release.root).as_posix()


def _convert_item(item: Item, threshold: int) -> tuple[convert.Converted, convert.MaskResult, bytes, bytes]:
    """Image and mask bytes to write for one id, plus the source bytes (for their hashes)."""
    image_src = convert.read_file(item.image)
    image = convert.convert_image(image_src, f"image {item.image}")
    if item.mask is None:
        return image, convert.empty_mask(image.width, image.height), image_src, b""
    mask_src = convert.read_file(item.mask)
    return image, convert.convert_mask(mask_src, f"mask {item.mask}", threshold), image_src, mask_src


def _row(release: Release, item: Item, flat: str, splits: str, image, mask, image_src: bytes, mask_src: bytes) -> dict:
    return {
        "id": flat, "source_id": item.id, "splits": splits,
        "image_source": _source_name(release, item.image), "image_action": image.action,
        "mask_source": _source_name(release, item.mask), "mask_action": mask.action,
        "width": image.width, "height": image.height, "mask_width": mask.width, "mask_height": mask.height,
        "sha256_source_image": imageio.sha256(image_src),
        "sha256_source_mask": imageio.sha256(mask_src) if item.mask is not None else "",
        "sha256_image": imageio.sha256(image.data), "sha256_mask": imageio.sha256(mask.data),
    }


def _split_membership(release: Release) -> dict[str, str]:
    """id -> ``split:part`` entries joined by ``;`` (sorted by split)."""
    out: dict[str, list[str]] = {}
    for name in sorted(release.splits):
        for part in ("train", "test"):
            for id_ in release.splits[name][part]:
                out.setdefault(id_, []).append(f"{name}:{part}")
    return {k: ";".join(v) for k, v in out.items()}


def _write_items(release: Release, tmp: Path, flats: dict[str, str], threshold: int, skip_mismatched: bool,
                 report: ImportReport) -> list[dict]:
    """Convert and write every id; collect problems and raise them all at the end."""
    (tmp / "images").mkdir()
    (tmp / "masks").mkdir()
    membership = _split_membership(release)
    rows, problems = [], []
    for id_ in sorted(release.items, key=lambda i: flats[i]):
        item, flat = release.items[id_], flats[id_]
        try:
            image, mask, image_src, mask_src = _convert_item(item, threshold)
        except imageio.ImageError as exc:
            problems.append(f"id {id_!r}: {exc}")
            continue
        if (mask.width, mask.height) != (image.width, image.height):
            report.size_mismatch.append(id_)
            if skip_mismatched:
                report.skipped.append(id_)
                continue
        report.images += 1
        report.converted_images += image.action != "copied"
        if mask.odd_values:
            report.binarised.append(id_)
        if mask.dropped_pixels:
            report.dropped.append(id_)
        if item.mask is None:
            report.empty_masks.append(id_)
        (tmp / "images" / f"{flat}.png").write_bytes(image.data)
        (tmp / "masks" / f"{flat}.png").write_bytes(mask.data)
        rows.append(_row(release, item, flat, membership[id_], image, mask, image_src, mask_src))
    if problems:
        raise ImportProblems(problems)
    return rows


def _manifest_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _list_record(release: Release, name: str, part: str, ids: list[str]) -> dict:
    source = release.list_files[name][part]
    path = release.root / source
    sha = imageio.sha256(path.read_bytes()) if source and path.is_file() else ""
    return {"source": source, "sha256_source": sha, "ids": len(ids)}


def _write_splits(release: Release, tmp: Path, flats: dict[str, str], skipped: set[str]) -> dict:
    record: dict[str, Any] = {}
    for name in sorted(release.splits):
        record[name] = {}
        for part, file in (("train", "train.txt"), ("test", "test.txt")):
            ids = [flats[i] for i in release.splits[name][part] if i not in skipped]
            write_text(tmp / name / file, id_list_text(ids))
            record[name][part] = _list_record(release, name, part, ids)
    return record


def write_import(release: Release, out: Path, threshold: int, skip_mismatched: bool) -> ImportReport:
    """Write ``release`` into ``out`` (replacing it; the caller has checked ``--force``)."""
    flats = flat_names(sorted(release.items))
    report = ImportReport(unlisted=list(release.unlisted))
    with staged_folder(out, "import") as tmp:
        rows = _write_items(release, tmp, flats, threshold, skip_mismatched, report)
        splits = _write_splits(release, tmp, flats, set(report.skipped))
        write_text(tmp / MANIFEST, _manifest_text(rows))
        record = {
            "format": release.format, "source": str(release.root.resolve()), "mask_threshold": threshold,
            "splits": splits, "images": report.images, "converted_images": report.converted_images,
            "binarised_masks": sorted(report.binarised), "size_mismatch": sorted(report.size_mismatch),
            "skipped": sorted(report.skipped), "empty_masks": sorted(report.empty_masks),
            "renamed_ids": {i: f for i, f in sorted(flats.items()) if i != f},
        }
        write_text(tmp / RECORD, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return report


def import_dataset(fmt: str, src: Path, out: Path, threshold: int = 127, split_name: str | None = None,
                   skip_mismatched: bool = False, force: bool = False) -> ImportReport:
    """Read the release ``src`` as ``fmt`` and write it into ``out`` (the CLI's ``import``)."""
    from sirst_synth.interop.importers import read_release
    from sirst_synth.interop.staging import check_output

    check_output(out, src, force)
    return write_import(read_release(fmt, src, split_name), out, threshold, skip_mismatched)
