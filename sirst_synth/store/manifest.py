"""``manifest.csv``: one row per image of a built dataset, the plan plus hashes (docs/method.md section 6)."""
from __future__ import annotations

from typing import Any

COLUMNS = (
    "id", "split", "kind", "source_id", "round", "group",
    "noise_source_id", "noise_row", "noise_col", "alpha",
    "target", "cy", "cx", "s", "k", "channels",
    "sha256_image", "sha256_mask",
)

#: a manifest row: column -> string value (plus, while a build runs, :data:`SUMS`)
Row = dict[str, Any]

#: a row's extra key, not a column: its image's gray sums (pixels, sum, sum of squares), kept by
#: the journal so the build's ``img_norm_cfg`` needs no second read of the images it wrote
SUMS = "_sums"


def new_row(**fields: object) -> Row:
    """A manifest row with every column present; unset columns are empty strings."""
    unknown = set(fields) - set(COLUMNS)
    if unknown:
        raise KeyError(f"unknown manifest columns: {sorted(unknown)}")
    return {c: "" if fields.get(c) is None else str(fields[c]) for c in COLUMNS}


def original_row(id_: str, split: str) -> Row:
    """The row of a source image copied unchanged (its own group)."""
    return new_row(id=id_, split=split, kind="original", source_id=id_, group=id_)

