"""Preview sheet of a noise bank: a grid of patches with their source id, variance and mean, and a
histogram strip of the variances of every patch in the bank.

A noise patch is flat by construction (variance < max_var), so each patch is shown stretched to
its own min..max (gray, nearest neighbour) unless ``raw``; its mean and variance are written
under it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sirst_synth.inspect.preview import BACKGROUND, LINE, PAD, TEXT, paste, put_text, to_rgb, zoom
from sirst_synth.plan.seeding import rng_for

TEXT_LINES = 2          #: lines under each patch
HEADER_LINES = 2
HIST_H = 80             #: height of the histogram's bars area
HIST_BINS = 50
BAR = (150, 150, 150)
TICK = (255, 230, 0)    #: yellow ticks: the variances of the patches on the sheet


def choose_patches(count: int, n: int, seed: int) -> list[int]:
    """``n`` patch numbers out of ``count`` drawn with ``seed``, ascending (all when n >= count)."""
    if n >= count:
        return list(range(count))
    return sorted(int(i) for i in rng_for(seed, "preview-noise").choice(count, size=n, replace=False))


def stretch(patch: np.ndarray) -> np.ndarray:
    """uint8 patch spread over 0..255 from its own min..max (a constant patch gives 128)."""
    lo, hi = float(patch.min()), float(patch.max())
    if hi <= lo:
        return np.full(patch.shape, 128, dtype=np.uint8)
    return np.rint((patch - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def as_shown(patch: np.ndarray, raw: bool) -> np.ndarray:
    """The uint8 pixels a patch is drawn with: stretched, or its own values rounded (``raw``)."""
    return np.clip(np.rint(patch), 0, 255).astype(np.uint8) if raw else stretch(patch)


@dataclass(frozen=True)
class NoiseLayout:
    """Grid geometry: ``columns`` cells per row; each patch is zoomed ``z`` times into a
    ``side`` x ``side`` box, with TEXT_LINES lines under it."""

    columns: int
    side: int
    z: int

    @property
    def cell_w(self) -> int:
        return max(self.side, 136)

    @property
    def cell_h(self) -> int:
        return self.side + 2 + TEXT_LINES * LINE

    @property
    def header_h(self) -> int:
        return PAD + HEADER_LINES * LINE + PAD

    @property
    def strip_h(self) -> int:
        """The histogram strip: a title line, the bars, tick marks and an axis line."""
        return LINE + HIST_H + 6 + LINE + PAD

    def size(self, patches: int) -> tuple[int, int]:
        rows = math.ceil(patches / self.columns)
        return (self.header_h + rows * (self.cell_h + PAD) + self.strip_h,
                PAD + self.columns * (self.cell_w + PAD))

    def cell(self, i: int) -> tuple[int, int]:
        """Top-left (y, x) of patch cell ``i``; the patch itself starts there."""
        r, c = divmod(i, self.columns)
        return self.header_h + r * (self.cell_h + PAD), PAD + c * (self.cell_w + PAD)


def noise_layout(shapes: list[tuple[int, int]], target: int = 96) -> NoiseLayout:
    """Square-ish grid; the zoom makes the largest patch about ``target`` pixels (at least 1x)."""
    n = max(1, len(shapes))
    largest = max((max(h, w) for h, w in shapes), default=1)
    z = max(1, target // largest)
    return NoiseLayout(columns=math.ceil(math.sqrt(n)), side=largest * z, z=z)


def noise_sheet(bank, n: int = 64, seed: int = 0, raw: bool = False, header: tuple[str, ...] = ()) -> np.ndarray:
    """The RGB sheet (uint8) of ``n`` patches of ``bank`` (a :class:`~sirst_synth.store.noisebank.NoiseBank`)."""
    chosen = choose_patches(len(bank), n, seed)
    layout = noise_layout([(int(bank.shape[i][0]), int(bank.shape[i][1])) for i in chosen])
    sheet = np.empty((*layout.size(len(chosen)), 3), dtype=np.uint8)
    sheet[:] = BACKGROUND
    width = sheet.shape[1] - 2 * PAD
    shown = "raw values" if raw else "each stretched to its own min..max"
    lines = [*header[: HEADER_LINES - 1], f"{len(chosen)} of {len(bank)} patches (seed {seed}), {shown},"
             f" x{layout.z} nearest neighbour"]
    for i, line in enumerate(lines):
        put_text(sheet, line, PAD + i * LINE, PAD, width)
    for i, index in enumerate(chosen):
        y, x = layout.cell(i)
        paste(sheet, zoom(to_rgb(as_shown(bank.patch(index), raw)), layout.z), y, x)
        row, col = (int(v) for v in bank.grid[index])
        put_text(sheet, f"{bank.source_id[index]} ({row},{col}) #{index}", y + layout.side + 2, x, layout.cell_w)
        put_text(sheet, f"var {bank.var[index]:.1f} mean {bank.mean[index]:.1f}",
                 y + layout.side + 2 + LINE, x, layout.cell_w)
    _histogram(sheet, np.asarray(bank.var, dtype=np.float64), [float(bank.var[i]) for i in chosen],
               sheet.shape[0] - layout.strip_h, width, bank.attrs.get("max_var"))
    return sheet


def _histogram(sheet: np.ndarray, var: np.ndarray, shown: list[float], y: int, width: int, max_var) -> None:
    """Bars of the variance histogram (HIST_BINS bins from 0 to max_var, or the largest variance);
    yellow ticks under the axis mark the patches on the sheet."""
    hi = float(max_var) if max_var is not None and np.isfinite(max_var) and max_var > 0 else float(var.max())
    hi = max(hi, float(var.max()), 1e-9)
    counts, _ = np.histogram(var, bins=HIST_BINS, range=(0.0, hi))
    put_text(sheet, f"variance of all {len(var)} patches: {HIST_BINS} bins over 0..{hi:g}, tallest {counts.max()};"
                    " yellow ticks: the patches above", y, PAD, width)
    bottom = y + LINE + HIST_H
    bin_w = width / HIST_BINS
    for b, count in enumerate(counts):
        if count:
            h = max(1, round(HIST_H * count / counts.max()))
            cv2.rectangle(sheet, (PAD + round(b * bin_w), bottom - h), (PAD + round((b + 1) * bin_w) - 2, bottom - 1),
                          BAR, -1)
    cv2.line(sheet, (PAD, bottom), (PAD + width - 1, bottom), TEXT, 1)
    for v in shown:
        tx = PAD + min(width - 1, round(v / hi * (width - 1)))
        cv2.line(sheet, (tx, bottom + 1), (tx, bottom + 5), TICK, 1)
    put_text(sheet, "0", bottom + 6, PAD, 40)
    label = f"{hi:g}"
    put_text(sheet, label, bottom + 6, PAD + width - 8 * len(label), 8 * len(label))
