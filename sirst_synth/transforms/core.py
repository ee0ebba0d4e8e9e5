"""The method as online transforms on numpy arrays: :class:`NoiseDisplace` (docs/method.md
section 3) and :class:`TargetRotate` (section 4), for any ``Dataset.__getitem__``.

Each transform draws its parameters (:meth:`draw`, from an explicit ``numpy.random.Generator``)
apart from applying them (:meth:`apply`), and applies them with the build's own method functions
(:func:`sirst_synth.method.displace.displace`, :func:`sirst_synth.method.negatives.rotate_window`).
Called on a dict of arrays, a transform returns the dict with ``image`` and ``mask`` replaced
and ``record`` (a manifest row: what it drew), which :func:`sirst_synth.transforms.replay.apply_record`
turns back into the same pixels.

Images are uint8, (H, W) gray or (H, W, 3) (R = G = B, as NUDT-SIRST stores gray; a colour
image is displaced on its ITU-R 601 gray, as the build does); the output keeps the input's layout
(a displaced image is gray, its channels equal). Masks are (H, W) or (H, W, C) of the image's
height and width, target pixels > 0.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sirst_synth.errors import TransformError
from sirst_synth.method.choices import FITS
from sirst_synth.method.displace import displace
from sirst_synth.method.gray import method_gray
from sirst_synth.method.negatives import changing_rotations, check_window_size, rotate_window, window_origin
from sirst_synth.method.targets import Target, find_targets
from sirst_synth.plan.draws import pick
from sirst_synth.plan.params import RANGES
from sirst_synth.store.imageio import mask_from_image
from sirst_synth.transforms.bank import Bank, BankLike

#: how :class:`TargetRotate` chooses windows: one target's, or every target's (each its own k)
TARGET_CHOICES = ("one", "every")
#: the separator of several rotations' values in one record field (``TargetRotate(targets="every")``)
SEP = ";"

Record = dict[str, str]


def check_probability(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise TransformError(f"p must be in [0, 1], got {p}")
    return float(p)


def _in_range(name: str, value: float) -> None:
    """``value`` within the build's range for parameter ``name`` (:data:`sirst_synth.plan.params.RANGES`),
    the message naming the argument ``name`` rather than the build's option."""
    try:
        dataclasses.replace(RANGES[name], option=name).check(value)
    except ValueError as exc:
        raise TransformError(str(exc)) from None


def check_alpha(alpha: float) -> float:
    """``alpha`` in [0, 1] (the build's range)."""
    _in_range("alpha", alpha)
    return float(alpha)


def check_s(s: int) -> int:
    """``s`` odd and >= 1 (the build's range)."""
    _in_range("s", s)
    return int(s)


def check_fit(fit: str) -> str:
    if fit not in FITS:
        raise TransformError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    return fit


def gray_of(image: np.ndarray, name: str = "image") -> np.ndarray:
    """The gray the method computes on (:func:`~sirst_synth.store.method_gray`) of a uint8
    image: (H, W) uint8 for gray or equal channels (a view), float32 ITU-R 601 gray for colour
    (rounded once, after mixing, as the build does); :class:`TransformError` for anything else."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        dtype = getattr(image, "dtype", type(image).__name__)
        raise TransformError(f"{name}: uint8 pixels expected, got {dtype}")
    if image.ndim == 2:
        return image
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise TransformError(f"{name}: (H, W), (H, W, 1) or (H, W, 3) expected, got shape {image.shape}")
    return image[..., 0] if image.shape[2] == 1 else method_gray(image[..., :3])


def check_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The (H, W) mask (largest channel) of ``image``; :class:`TransformError` when its size differs."""
    if not isinstance(mask, np.ndarray) or mask.ndim not in (2, 3):
        raise TransformError(f"mask: an (H, W) array expected, got {getattr(mask, 'shape', type(mask).__name__)}")
    if mask.shape[:2] != image.shape[:2]:
        raise TransformError(f"mask: {mask.shape[0]}x{mask.shape[1]} differs from the image's "
                             f"{image.shape[0]}x{image.shape[1]}")
    return mask_from_image(mask) if mask.ndim == 3 else mask


def targets_of(mask: np.ndarray) -> list[Target]:
    """:func:`~sirst_synth.method.targets.find_targets` of ``mask`` (H, W), run on the box around
    its target pixels only (about 10 x faster on a 256 x 256 infrared mask). The box starts at
    even coordinates, so OpenCV's labelling, which scans 2 x 2 blocks, numbers the targets as on
    the whole mask."""
    rows = np.flatnonzero(mask.any(1))
    if not rows.size:
        return []
    cols = np.flatnonzero(mask.any(0))
    y0, x0 = int(rows[0]) & ~1, int(cols[0]) & ~1
    box = mask[y0:int(rows[-1]) + 1, x0:int(cols[-1]) + 1]
    return [dataclasses.replace(t, cy=t.cy + y0, cx=t.cx + x0) for t in find_targets(box)]


def with_layout(gray: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``gray`` (H, W) in the layout of ``like``: itself, or repeated over ``like``'s channels."""
    if like.ndim == 2:
        return gray
    return np.repeat(gray[:, :, None], like.shape[2], axis=2)


@dataclass(frozen=True)
class PatchDraw:
    """A drawn bank patch: its index, the image it was cut from and its grid cell."""

    index: int
    source_id: str
    row: int
    col: int


@dataclass(frozen=True)
class Rotation:
    """A drawn rotation: the target (label, centre), its s x s window's origin, and k (counter-clockwise k x 90 degrees)."""

    target: int
    cy: int
    cx: int
    y0: int
    x0: int
    s: int
    k: int


def rotate(array: np.ndarray, rotations: Sequence[Rotation]) -> np.ndarray:
    """``array`` (an image or a mask) with each rotation's window turned, in order
    (:func:`~sirst_synth.method.negatives.rotate_window`); itself when there is none."""
    for r in rotations:
        array = rotate_window(array, r.y0, r.x0, r.s, r.k)
    return array


class NoiseDisplace:
    """Mix a noise patch drawn from ``bank`` into the image (docs/method.md section 3), with
    probability ``p``; the mask is unchanged.

    The patch is drawn uniformly among the bank's patches cut from other images than
    ``image_id`` (all of them when the bank holds that image's only), by one
    ``rng.integers`` draw: the build's rule and draw (:class:`sirst_synth.plan.draws.NoiseDrawer`),
    so ``rng_for(seed, "displace", 0, id)`` gives the patch that ``build --seed seed`` gave the
    image in round 0. With ``p < 1`` one ``rng.random()`` decides first whether to apply.

    ``bank``: a ``sample-noise`` file, an open :class:`~sirst_synth.store.noisebank.NoiseBank` or a
    :class:`~sirst_synth.transforms.bank.Bank`, held in memory; ``test_ids``: ids the bank must not
    hold patches of (default: the test list of the source the bank records).
    """

    def __init__(self, bank: BankLike, alpha: float = 0.1, fit: str = "resize", p: float = 1.0,
                 test_ids: Sequence[str] | None = None) -> None:
        self.bank = Bank.load(bank, test_ids)
        self.alpha = check_alpha(alpha)
        self.fit = check_fit(fit)
        self.p = check_probability(p)

    def __repr__(self) -> str:
        return f"NoiseDisplace({self.bank.name!r}, alpha={self.alpha}, fit={self.fit!r}, p={self.p})"

    def draw(self, rng: np.random.Generator, image_id: str, exclude: Sequence[int] = ()) -> PatchDraw | None:
        """The patch for the image ``image_id`` (None when the ``p`` draw says not to apply);
        ``exclude``: patches the image must not get again (the build's earlier rounds)."""
        if self.p < 1.0 and not rng.random() < self.p:
            return None
        if not isinstance(image_id, str) or not image_id:
            raise TransformError("NoiseDisplace needs the image's id (image_id=...): a patch is never drawn "
                                 "from the image itself")
        candidates = self.bank.candidates(image_id)
        if len(exclude):
            candidates = np.setdiff1d(candidates, exclude, assume_unique=True)
            if not candidates.size:
                raise TransformError(f"{self.bank.name}: no patch left for {image_id!r} once {len(exclude)} are excluded")
        index = pick(candidates, rng)
        row, col = (int(v) for v in self.bank.grid[index])
        return PatchDraw(index, self.bank.source_id[index], row, col)

    def apply(self, image: np.ndarray, draw: PatchDraw | None) -> np.ndarray:
        """``image`` displaced with the drawn patch (itself when ``draw`` is None)."""
        return self._displaced(image, gray_of(image), draw)

    def _displaced(self, image: np.ndarray, gray: np.ndarray, draw: PatchDraw | None) -> np.ndarray:
        if draw is None:
            return image
        return with_layout(displace(gray, self.bank.patch(draw.index), self.alpha, self.fit), image)

    def record(self, draw: PatchDraw | None, image_id: str, record: Record | None = None) -> Record:
        """``record`` with what was drawn, as a manifest row's fields (unchanged when nothing was)."""
        record = dict(record or {})
        if draw is None:
            return record
        if record.get("kind") == "negative":
            raise TransformError("NoiseDisplace after TargetRotate: the method displaces first, then rotates "
                                 "(docs/method.md section 5); put NoiseDisplace before TargetRotate")
        record.update(kind="displaced", source_id=record.get("source_id") or image_id,
                      noise_source_id=draw.source_id, noise_row=str(draw.row), noise_col=str(draw.col),
                      noise_index=str(draw.index), alpha=repr(self.alpha), fit=self.fit)
        return record

    def __call__(self, *, rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, image_id: str,
                 **data: Any) -> dict[str, Any]:
        """Draw and apply on ``image`` (uint8) and ``mask``; other keys pass through, ``record`` is updated."""
        check_mask(image, mask)
        gray = gray_of(image)
        draw = self.draw(rng, image_id)
        record = self.record(draw, image_id, data.pop("record", None))
        return {**data, "image": self._displaced(image, gray, draw), "mask": mask, "image_id": image_id,
                "record": record}


class TargetRotate:
    """Rotate the ``s`` x ``s`` window centred on a target by k x 90 degrees (docs/method.md
    section 4), in the image and the mask alike, with probability ``p``.

    ``targets="one"``: one target, drawn uniformly among those whose window some rotation
    changes, then k drawn uniformly among the rotations (1, 2, 3) that change its window: a draw
    that would leave the image unchanged (a symmetric window) is never made, as the build skips
    it. ``targets="every"``: every target in label order, each with its own k drawn the same way
    (a target whose window no rotation changes is left). Windows are placed as the build places
    them (:func:`~sirst_synth.method.negatives.window_origin`); an image without a target is
    returned unchanged.
    """

    def __init__(self, s: int = 3, p: float = 1.0, targets: str = "one") -> None:
        self.s = check_s(s)
        self.p = check_probability(p)
        if targets not in TARGET_CHOICES:
            raise TransformError(f"targets must be one of {', '.join(TARGET_CHOICES)}, got {targets!r}")
        self.targets = targets

    def __repr__(self) -> str:
        return f"TargetRotate(s={self.s}, p={self.p}, targets={self.targets!r})"

    def check_size(self, height: int, width: int) -> None:
        try:
            check_window_size(self.s, height, width)
        except ValueError as exc:
            raise TransformError(f"TargetRotate: {exc}") from None

    def draw(self, rng: np.random.Generator, image: np.ndarray, mask: np.ndarray,
             targets: Sequence[Target] | None = None) -> list[Rotation]:
        """The rotations to apply (none when the ``p`` draw says not to, or nothing can change);
        ``targets``: the mask's targets when already known (default: :func:`targets_of`)."""
        mask2d = check_mask(image, mask)
        height, width = image.shape[:2]
        self.check_size(height, width)
        if self.p < 1.0 and not rng.random() < self.p:
            return []
        found = targets_of(mask2d) if targets is None else list(targets)
        s = self.s
        if self.targets == "one":
            options = []
            for t in found:
                y0, x0 = window_origin(t.cy, t.cx, s, height, width)
                ks = changing_rotations(image[y0:y0 + s, x0:x0 + s])
                if ks:
                    options.append((t, y0, x0, ks))
            if not options:
                return []
            t, y0, x0, ks = options[int(rng.integers(len(options)))]
            return [Rotation(t.label, t.cy, t.cx, y0, x0, s, ks[int(rng.integers(len(ks)))])]
        rotations, current = [], image
        for t in found:
            y0, x0 = window_origin(t.cy, t.cx, s, height, width)
            ks = changing_rotations(current[y0:y0 + s, x0:x0 + s])
            if ks:
                rotation = Rotation(t.label, t.cy, t.cx, y0, x0, s, ks[int(rng.integers(len(ks)))])
                current = rotate_window(current, y0, x0, s, rotation.k)
                rotations.append(rotation)
        return rotations

    @staticmethod
    def apply(image: np.ndarray, mask: np.ndarray, rotations: Sequence[Rotation]) -> tuple[np.ndarray, np.ndarray]:
        """``image`` and ``mask`` with each rotation's window turned, in order."""
        return rotate(image, rotations), rotate(mask, rotations)

    @staticmethod
    def record(rotations: Sequence[Rotation], record: Record | None = None, image_id: str | None = None) -> Record:
        """``record`` with the rotations, as a negative's manifest fields (several joined by ``;``)."""
        record = dict(record or {})
        if not rotations:
            return record
        if record.get("kind") == "negative":
            raise TransformError("TargetRotate applied twice to one sample: its record would not replay; "
                                 "use targets='every' to rotate several windows")
        fields = {name: SEP.join(str(getattr(r, name)) for r in rotations) for name in ("target", "cy", "cx", "k")}
        record.update(kind="negative", s=str(rotations[0].s), **fields)
        if not record.get("source_id") and image_id:
            record["source_id"] = image_id
        return record

    def __call__(self, *, rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, **data: Any) -> dict[str, Any]:
        """Draw and apply on ``image`` and ``mask``; other keys pass through, ``record`` is updated."""
        rotations = self.draw(rng, image, mask)
        record = self.record(rotations, data.pop("record", None), data.get("image_id"))
        image, mask = self.apply(image, mask, rotations)
        return {**data, "image": image, "mask": mask, "record": record}
