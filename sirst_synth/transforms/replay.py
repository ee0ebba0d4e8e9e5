"""A sample's pixels from its recorded draw: a manifest row of a build, or the ``record`` of the
online transforms (:mod:`sirst_synth.transforms.core`), with the method functions the build uses.

:func:`replay` reads the row's source image (and the noise patch's, cut with the build's grid)
from the source dataset and gives the build's pixels exactly (docs/method.md section 3's "a
displaced image can be recomputed from its manifest row"); :func:`apply_record` does the same on
arrays a caller already holds (an online sample's input).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sirst_synth.errors import TransformError
from sirst_synth.method.displace import displace
from sirst_synth.method.gray import method_gray, rounded_gray
from sirst_synth.method.negatives import window_origin
from sirst_synth.method.noise import crop, grid_boxes
from sirst_synth.store.reader import DatasetReader
from sirst_synth.transforms.bank import Bank
from sirst_synth.transforms.core import SEP, Rotation, gray_of, rotate, with_layout

Row = Mapping[str, Any]


def replay_params(info: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters :func:`replay` needs (``grid``, ``fit``) from a build's ``sirst-synth.json``."""
    params = info.get("parameters", {})
    return {"grid": int(params.get("grid", 8)), "fit": str(params.get("fit", "resize"))}


def record_rotations(row: Row, height: int, width: int) -> list[Rotation]:
    """The rotations of a negative's row (several joined by ``;``), windows placed as the build places them."""
    try:
        s = int(row["s"])
        fields = [str(row[name]).split(SEP) for name in ("target", "cy", "cx", "k")]
        if len({len(f) for f in fields}) != 1:
            raise ValueError("target, cy, cx and k differ in length")
        rotations = []
        for target, cy, cx, k in zip(*fields):
            y0, x0 = window_origin(int(cy), int(cx), s, height, width)
            rotations.append(Rotation(int(target), int(cy), int(cx), y0, x0, s, int(k)))
    except (KeyError, ValueError) as exc:
        raise TransformError(f"row {row.get('id', '')!r}: not a negative's fields ({exc})") from None
    return rotations


def record_patch(row: Row, bank: Bank) -> np.ndarray:
    """The bank patch a row names (``noise_index`` when it is the bank's, else its source and grid cell)."""
    index = row.get("noise_index")
    if index not in (None, ""):
        i = int(index)
        if 0 <= i < len(bank) and bank.source_id[i] == row["noise_source_id"]:
            return bank.patch(i)
    return bank.patch(bank.index_of(row["noise_source_id"], int(row["noise_row"]), int(row["noise_col"])))


def cut_patch(source: DatasetReader, row: Row, grid: int) -> np.ndarray:
    """The patch a row names, cut again from its source image: grid cell (``noise_row``, ``noise_col``)
    of the image's gray with ``grid`` x ``grid`` cells (as ``sample-noise`` cut it)."""
    gray = method_gray(source.read_image(row["noise_source_id"]))
    r, c = int(row["noise_row"]), int(row["noise_col"])
    boxes = grid_boxes(gray.shape[0], gray.shape[1], grid)
    return crop(gray, boxes[r * grid + c][2])


def apply_record(row: Row, image: np.ndarray, mask: np.ndarray, bank: Bank | None = None,
                 patch: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The pixels of ``row`` computed from its input ``image`` and ``mask``.

    ``image``: uint8 as a transform took it (the output keeps its layout), or the float32 gray of
    a colour source (:func:`~sirst_synth.store.method_gray`; the output is uint8 gray).
    The noise patch of a displaced row (or of a negative of one) is ``patch``, else the one of
    ``bank`` that the row names. An original's row gives its input back.
    """
    kind = row.get("kind") or "original"
    if kind == "original":
        return image, mask
    if kind not in ("displaced", "negative"):
        raise TransformError(f"row {row.get('id', '')!r}: unknown kind {kind!r}")
    given = image.dtype == np.uint8  # else the float gray of a colour source (replay)
    if row.get("noise_source_id"):
        if patch is None:
            if bank is None:
                raise TransformError(f"row {row.get('id', '')!r} is displaced: give the noise bank (or the patch)")
            patch = record_patch(row, bank)
        out = displace(gray_of(image) if given else image, patch, float(row["alpha"]), str(row.get("fit") or "resize"))
        out = with_layout(out, image) if given else out
    else:
        out = image if given else rounded_gray(image)
    if kind == "negative":
        rotations = record_rotations(row, out.shape[0], out.shape[1])
        out, mask = rotate(out, rotations), rotate(mask, rotations)
    return out, mask


def replay(row: Row, source: DatasetReader, grid: int = 8, fit: str | None = None,
           bank: Bank | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(image, mask) of a manifest row, computed from the ``source`` dataset it was built from.

    A generated image comes back as uint8 (H, W) gray (what the method computes; a
    ``--channels 3`` build stores it as R = G = B), its mask with the source mask's values; an
    original as its file's pixels. The noise patch is ``bank``'s when given, else cut again from
    the source with ``grid`` (a build removes its own bank); ``fit`` overrides the row's (a
    build's rows do not carry it: see :func:`replay_params`).
    """
    if fit is not None:
        row = {**row, "fit": fit}
    source_id = row.get("source_id") or row.get("id")
    if not source_id:
        raise TransformError("a row without source_id or id cannot be replayed")
    image, mask = source.read_image(source_id), source.read_mask(source_id)
    if (row.get("kind") or "original") == "original":
        return image, mask
    patch = None
    if row.get("noise_source_id"):
        patch = record_patch(row, bank) if bank is not None else cut_patch(source, row, grid)
    return apply_record(row, method_gray(image), mask, patch=patch)
