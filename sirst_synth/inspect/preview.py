"""Preview sheet of a built dataset: for each chosen source image, one row of
original | displaced | each of its negatives, read through the manifest.

Every target's s x s window is outlined (red); in a negative, the window it rotates is outlined
in magenta, and two zoomed insets (nearest neighbour, each pixel a z x z block) show that window
and a few pixels around it before (the group's displaced image) and after the rotation. Images
keep their pixel values: gray stays gray (R = G = B on the sheet). The module also holds the
drawing helpers of the noise-bank sheet (:mod:`sirst_synth.inspect.preview_noise`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from sirst_synth.errors import PreviewError
from sirst_synth.method.negatives import negatives, window_origin
from sirst_synth.method.targets import Target, find_targets
from sirst_synth.plan.seeding import rng_for
from sirst_synth.store.reader import DatasetReader

PAD = 8                       #: space between cells and around the sheet
LINE = 14                     #: height of one text line
TEXT_LINES = 3                #: text lines under each image
HEADER_LINES = 3              #: text lines at the top of the sheet
MARGIN = 4                    #: context pixels around the window in the insets
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
OUTLINE = (255, 40, 40)       #: red: the s x s window of every target
ROTATED = (255, 0, 255)       #: magenta: the window a negative rotates (stands out on white too)
_FONT, _SCALE = cv2.FONT_HERSHEY_SIMPLEX, 0.4
#: the widest sheet by default: what a screen shows without zooming out
SHEET_WIDTH = 1600
#: the smallest tile the sheet's width shrinks an image to; past it, a row shows fewer negatives
MIN_TILE = 96

# -- drawing helpers (shared with the noise-bank sheet) ---------------------------------------

def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3): gray repeated into three equal channels, RGB kept as it is."""
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image


def zoom(image: np.ndarray, z: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor: each pixel becomes a z x z block."""
    return np.repeat(np.repeat(image, z, axis=0), z, axis=1)


def fit_text(text: str, width: int) -> str:
    """``text``, cut and ended with '..' when wider than ``width`` pixels."""
    if cv2.getTextSize(text, _FONT, _SCALE, 1)[0][0] <= width:
        return text
    while text and cv2.getTextSize(text + "..", _FONT, _SCALE, 1)[0][0] > width:
        text = text[:-1]
    return text + ".."


def put_text(canvas: np.ndarray, text: str, y: int, x: int, width: int, colour=TEXT) -> None:
    """Write one line whose box starts at row ``y`` (top), column ``x``, cut to ``width`` pixels."""
    cv2.putText(canvas, fit_text(text, width), (x, y + LINE - 4), _FONT, _SCALE, colour, 1, cv2.LINE_AA)


def paste(canvas: np.ndarray, image: np.ndarray, y: int, x: int) -> None:
    """Copy ``image`` (H, W, 3) into ``canvas`` with its top-left corner at (y, x)."""
    canvas[y : y + image.shape[0], x : x + image.shape[1]] = image


def encode_sheet(sheet: np.ndarray) -> bytes:
    """PNG bytes of an RGB sheet (zlib level 9: sheets are kept small)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise PreviewError("PNG encoding of the sheet failed")
    return buf.tobytes()


# -- which images go on the sheet --------------------------------------------------------------

@dataclass(frozen=True)
class PreviewRow:
    """One sheet row: a source image, the displaced image shown (or None) and that image's negatives."""

    source_id: str
    original: str | None
    displaced: str | None
    negatives: list[str] = field(default_factory=list)

    @property
    def base(self) -> str | None:
        """The group image the negatives were rotated from: the displaced image, else the original."""
        return self.displaced or self.original


class ManifestIndex:
    """What came from what, from a manifest's rows (id -> row, in file order)."""

    def __init__(self, rows: dict[str, dict[str, str]]):
        self.rows = rows
        self.sources: list[str] = []                        # train source ids, in manifest order
        self.displaced: dict[str, dict[int, str]] = {}      # source id -> round -> displaced id
        self.negatives: dict[str, list[str]] = {}           # group id -> negative ids
        seen: set[str] = set()
        for id_, row in rows.items():
            src = row["source_id"] or id_
            if row["split"] == "train" and src not in seen:
                seen.add(src)
                self.sources.append(src)
            if row["kind"] == "displaced":
                self.displaced.setdefault(src, {})[int(row["round"] or 0)] = id_
            elif row["kind"] == "negative":
                self.negatives.setdefault(row["group"], []).append(id_)

    def row_for(self, source_id: str, round_: int | None = None, displaced: str | None = None) -> PreviewRow:
        """The sheet row of ``source_id``: its displaced image of round ``round_`` (default: the
        lowest round it has) or the given ``displaced`` id, and that image's negatives."""
        rounds = self.displaced.get(source_id, {})
        if displaced is None and rounds:
            if round_ is None:
                displaced = rounds[min(rounds)]
            elif round_ in rounds:
                displaced = rounds[round_]
            else:
                raise PreviewError(f"source id {source_id!r}: no displaced image of round {round_} "
                                   f"(rounds: {', '.join(map(str, sorted(rounds)))})")
        original = source_id if self.rows.get(source_id, {}).get("kind") == "original" else None
        base = displaced or original
        return PreviewRow(source_id, original, displaced, list(self.negatives.get(base, [])) if base else [])

    def resolve(self, id_: str, round_: int | None = None) -> PreviewRow:
        """The row for a user-given id: a source id, a displaced id (that round) or a negative id
        (its group)."""
        row = self.rows.get(id_)
        if row is None:
            if id_ in self.displaced:
                return self.row_for(id_, round_)
            raise PreviewError(f"id {id_!r}: not in the manifest")
        src = row["source_id"] or id_
        if row["kind"] == "displaced":
            return self.row_for(src, displaced=id_)
        if row["kind"] == "negative":
            group = row["group"]
            if self.rows.get(group, {}).get("kind") == "displaced":
                return self.row_for(src, displaced=group)
            return PreviewRow(src, src if self.rows.get(src, {}).get("kind") == "original" else None,
                              None, list(self.negatives.get(group, [])))
        return self.row_for(src, round_)

    def candidates(self, round_: int | None = None) -> list[str]:
        """Train source ids that have something generated to show (in round ``round_`` if given)."""
        if round_ is not None:
            return [s for s in self.sources if round_ in self.displaced.get(s, {})]
        return [s for s in self.sources if s in self.displaced or s in self.negatives]


def choose_rows(rows: dict[str, dict[str, str]], ids: Sequence[str] = (), n: int = 8, seed: int = 0,
                round_: int | None = None) -> list[PreviewRow]:
    """The sheet's rows: the given ``ids`` in that order, else ``n`` source images drawn with
    ``seed`` among those with generated images, in manifest order."""
    index = ManifestIndex(rows)
    if ids:
        return [index.resolve(i, round_) for i in ids]
    pool = index.candidates(round_)
    if not pool:
        what = f"displaced image of round {round_}" if round_ is not None else "displaced or negative image"
        raise PreviewError(f"the manifest lists no {what}; preview shows a dataset built by sirst-synth")
    picks = rng_for(seed, "preview").choice(len(pool), size=min(n, len(pool)), replace=False)
    return [index.row_for(pool[i], round_) for i in sorted(picks)]


# -- geometry ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """Where everything goes. A cell is one image: its tile, TEXT_LINES lines, then a line of inset
    labels and two insets (before, after) of ``context`` x ``context`` pixels zoomed ``z`` times."""

    tile: int = 256
    s: int = 3

    @property
    def context(self) -> int:
        return self.s + 2 * MARGIN

    @property
    def z(self) -> int:
        """Inset zoom: two insets (plus a 1-pixel gap each side) side by side under the tile, >= 2."""
        return max(2, ((self.tile - PAD) // 2 - 2) // self.context)

    @property
    def inset(self) -> int:
        return self.context * self.z

    @property
    def cell_w(self) -> int:
        return max(self.tile, 2 * (self.inset + 2) + PAD)

    @property
    def cell_h(self) -> int:
        return self.tile + 2 + (TEXT_LINES + 1) * LINE + self.inset + 2

    @property
    def header_h(self) -> int:
        return PAD + HEADER_LINES * LINE + PAD

    def size(self, rows: int, columns: int) -> tuple[int, int]:
        """(height, width) of a sheet of ``rows`` rows and ``columns`` cells per row."""
        return self.header_h + rows * (self.cell_h + PAD), PAD + columns * (self.cell_w + PAD)

    def cell(self, row: int, col: int) -> tuple[int, int]:
        """Top-left (y, x) of a cell."""
        return self.header_h + row * (self.cell_h + PAD), PAD + col * (self.cell_w + PAD)

    def inset_origin(self, row: int, col: int, which: int) -> tuple[int, int]:
        """Top-left (y, x) of inset ``which`` (0: before, 1: after) of a cell."""
        y, x = self.cell(row, col)
        return y + self.tile + 2 + (TEXT_LINES + 1) * LINE + 1, x + 1 + which * (self.inset + 2 + PAD)


def fit_layout(tile: int, s: int, columns: int, width: int | None) -> tuple[Layout, int]:
    """The layout of a sheet of ``columns`` cells per row at most ``width`` pixels wide (None: any
    width), and the cells a row shows: the tile shrinks from ``tile`` (to :data:`MIN_TILE` at least)
    until every cell fits, else a row shows as many as fit (3 at least)."""
    layout = Layout(tile, s)
    if width is None:
        return layout, columns
    while layout.size(1, columns)[1] > width and layout.tile > MIN_TILE:
        layout = Layout(layout.tile - 1, s)
    return layout, min(columns, max(3, (width - PAD) // (layout.cell_w + PAD)))


def context_origin(y0: int, x0: int, s: int, height: int, width: int) -> tuple[int, int, int, int]:
    """The inset's crop around the window at (y0, x0): top, left, rows, columns (shifted inside)."""
    ch, cw = min(s + 2 * MARGIN, height), min(s + 2 * MARGIN, width)
    cy0 = min(max(y0 - MARGIN, 0), height - ch)
    cx0 = min(max(x0 - MARGIN, 0), width - cw)
    return cy0, cx0, ch, cw


# -- drawing -----------------------------------------------------------------------------------

def _draw_tile(canvas: np.ndarray, image: np.ndarray, y: int, x: int, tile: int,
               windows: Sequence[tuple[int, int, int]], rotated: tuple[int, int, int] | None) -> None:
    """The image scaled to fit ``tile`` (nearest up, area down), windows outlined 2 px outside."""
    h, w = image.shape[:2]
    f = tile / max(h, w)
    th, tw = max(1, round(h * f)), max(1, round(w * f))
    scaled = cv2.resize(to_rgb(image), (tw, th), interpolation=cv2.INTER_NEAREST if f >= 1 else cv2.INTER_AREA)
    oy, ox = y + (tile - th) // 2, x + (tile - tw) // 2
    paste(canvas, scaled, oy, ox)
    for box, colour in [(b, OUTLINE) for b in windows] + ([(rotated, ROTATED)] if rotated else []):
        wy, wx, s = box
        top, left = oy + math.floor(wy * f), ox + math.floor(wx * f)
        bottom, right = oy + math.ceil((wy + s) * f) - 1, ox + math.ceil((wx + s) * f) - 1
        cv2.rectangle(canvas, (left - 2, top - 2), (right + 2, bottom + 2), colour, 1)


def _draw_inset(canvas: np.ndarray, image: np.ndarray, window: tuple[int, int, int], origin: tuple[int, int],
                z: int, colour: tuple[int, int, int], label: str, label_width: int) -> None:
    """Zoomed crop around ``window``; its outline lies on the pixel just outside the window's blocks."""
    wy, wx, s = window
    h, w = image.shape[:2]
    cy0, cx0, ch, cw = context_origin(wy, wx, s, h, w)
    iy, ix = origin
    put_text(canvas, label, iy - LINE - 1, ix, label_width)
    paste(canvas, zoom(to_rgb(image)[cy0 : cy0 + ch, cx0 : cx0 + cw], z), iy, ix)
    top, left = iy + (wy - cy0) * z - 1, ix + (wx - cx0) * z - 1
    cv2.rectangle(canvas, (left, top), (left + s * z + 1, top + s * z + 1), colour, 1)


def _windows(targets: Sequence[Target], s: int, shape: tuple[int, ...]) -> list[tuple[int, int, int]]:
    return [(*window_origin(t.cy, t.cx, s, shape[0], shape[1]), s) for t in targets]


def _mode(image: np.ndarray) -> str:
    if image.ndim == 2:
        return "gray"
    same = np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])
    return "RGB, R=G=B" if same else "RGB"


def _row_s(rows: dict[str, dict[str, str]], row: PreviewRow, default: int) -> int:
    for id_ in row.negatives:
        if rows[id_]["s"]:
            return int(rows[id_]["s"])
    return default


def preview_sheet(ds, rows: Sequence[PreviewRow], s: int = 3, tile: int = 256,
                  header: Sequence[str] = (), width: int | None = SHEET_WIDTH) -> np.ndarray:
    """The RGB sheet (uint8) of ``rows`` of dataset ``ds`` (anything with read_image, read_mask and
    manifest), at most ``width`` pixels wide (None: as wide as the rows need; see :func:`fit_layout`).
    ``s`` is the window side when a row has no negative to say it; up to two ``header`` lines are
    written at the top, then a legend. A row without negatives says why in their place."""
    manifest = ds.manifest() or {}
    sides = [_row_s(manifest, r, s) for r in rows]
    columns = 2 + max((max(len(r.negatives), 1) for r in rows), default=0)
    layout, columns = fit_layout(tile, max(sides, default=s), columns, width)
    sheet = np.empty((*layout.size(len(rows), columns), 3), dtype=np.uint8)
    sheet[:] = BACKGROUND
    width = sheet.shape[1] - 2 * PAD
    legend = (f"row: original | displaced | its negatives.  red: {layout.s}x{layout.s} window of each target;"
              f" magenta: the window rotated; insets x{layout.z}, nearest neighbour")
    for i, line in enumerate([*header[: HEADER_LINES - 1], legend]):
        put_text(sheet, line, PAD + i * LINE, PAD, width)
    for r, (row, side) in enumerate(zip(rows, sides)):
        _draw_row(sheet, layout, r, ds, manifest, row, side, columns - 2)
    return sheet


def _text_lines(sheet: np.ndarray, layout: Layout, r: int, c: int, lines: Sequence[str]) -> None:
    y, x = layout.cell(r, c)
    for i, line in enumerate(lines[:TEXT_LINES]):
        put_text(sheet, line, y + layout.tile + 2 + i * LINE, x, layout.cell_w)


def no_negatives_reason(image: np.ndarray, mask: np.ndarray, targets: list[Target], s: int) -> list[str]:
    """Why an image has no negative on the sheet, in lines: no target; every target's window
    rotation-symmetric (each rotation would repeat the image, docs/method.md section 4); or none
    generated although the method gives some."""
    if not targets:
        return ["no negatives:", "no target in this image", "(a negative rotates a target's window)"]
    if min(image.shape[:2]) < s or next(negatives(image, mask, targets, s), None) is None:
        return ["no negatives:", f"each target's {s}x{s} window is", "rotation-symmetric: a rotation", "would repeat the image"]
    return ["no negatives generated:", "the build's --total ended first,", "or negaug --only left them out"]


def _draw_row(sheet: np.ndarray, layout: Layout, r: int, ds: DatasetReader, manifest: dict[str, dict[str, str]],
              row: PreviewRow, s: int, shown: int) -> None:
    """Row ``r``: original, displaced, then up to ``shown`` negatives (or why there are none)."""
    assert row.base is not None, "a preview row has its group's image"
    base_image = ds.read_image(row.base)
    base_mask = ds.read_mask(row.base)
    targets = find_targets(base_mask)
    windows = _windows(targets, s, base_mask.shape)
    lw = layout.inset

    # original
    original = ds.read_image(row.original) if row.original else None
    y, x = layout.cell(r, 0)
    if original is not None:
        h, w = original.shape[:2]
        _draw_tile(sheet, original, y, x, layout.tile, windows, None)
        more = f" ({shown} shown)" if len(row.negatives) > shown else ""
        _text_lines(sheet, layout, r, 0, [f"{row.original} (original)", f"{w}x{h} {_mode(original)}",
                                          f"{len(targets)} target(s), {len(row.negatives)} negative(s){more}"])
    else:
        _text_lines(sheet, layout, r, 0, [f"{row.source_id}: original not in this dataset"])

    # displaced, with the first target's window before (original) and after displacement
    if row.displaced:
        d = manifest[row.displaced]
        _draw_tile(sheet, base_image, *layout.cell(r, 1), layout.tile, windows, None)
        _text_lines(sheet, layout, r, 1, [row.displaced, f"displaced: round {d['round']}, alpha {d['alpha']}",
                                          f"noise: {d['noise_source_id']} cell ({d['noise_row']},{d['noise_col']})"])
        if windows and original is not None and original.shape[:2] == base_image.shape[:2]:
            for which, (image, label) in enumerate(((original, "original t1"), (base_image, "displaced t1"))):
                _draw_inset(sheet, image, windows[0], layout.inset_origin(r, 1, which), layout.z, OUTLINE, label, lw)
    else:
        _text_lines(sheet, layout, r, 1, ["no displaced image"])

    # negatives: the rotated window before (group image) and after
    if not row.negatives:  # the reason may use the rest of the row
        y, x = layout.cell(r, 2)
        for i, line in enumerate(no_negatives_reason(base_image, base_mask, targets, s)):
            put_text(sheet, line, y + i * LINE, x, sheet.shape[1] - x - PAD)
    for c, neg_id in enumerate(row.negatives[:shown], start=2):
        m = manifest[neg_id]
        image = ds.read_image(neg_id)
        ns = int(m["s"] or s)
        box = (*window_origin(int(m["cy"]), int(m["cx"]), ns, image.shape[0], image.shape[1]), ns)
        _draw_tile(sheet, image, *layout.cell(r, c), layout.tile, [w for w in windows if w != box], box)
        k = int(m["k"])
        _text_lines(sheet, layout, r, c, [neg_id, f"target {m['target']}, k={k}: {90 * k} deg ccw",
                                          f"centre ({m['cy']},{m['cx']}), s={ns}"])
        _draw_inset(sheet, base_image, box, layout.inset_origin(r, c, 0), layout.z, ROTATED, "before", lw)
        _draw_inset(sheet, image, box, layout.inset_origin(r, c, 1), layout.z, ROTATED, "after", lw)
