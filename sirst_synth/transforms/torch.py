"""``NoiseDisplace`` and ``TargetRotate`` as ``torch.nn.Module``s on batches, on any device (extra ``train``).

Same names and arguments as :mod:`sirst_synth.transforms`. Images and masks are ``(B, 1, H, W)``
tensors on one device; images uint8 (the method's 8-bit arithmetic: float32 mix, round half to
even, clip) or float in [0, 1] (the same mix on the 0..1 scale, not rounded); masks any dtype.
Draws come from a ``torch.Generator`` (on any device; the draws are moved to the batch's).
Each module's ``forward`` draws (``draw``) then applies (``transform``: ``apply`` is torch's own), keeps the draw in
``last_params``, and :meth:`records` turns a draw into the numpy transforms' records, which
:func:`sirst_synth.transforms.replay.apply_record` replays. The trainer's online synthesis
(:mod:`sirst_synth.train.online`) uses the functions below.

The device arithmetic follows the method functions: the mix is theirs operation for operation;
rotations gather through index tables made by :func:`~sirst_synth.method.negatives.rotate_window`
itself; the patch draw is uniform among the other images' patches. A bilinear resize on the
device (``F.interpolate``, half-pixel centres as ``cv2.INTER_LINEAR``) may round differently from
OpenCV's; ``fit="tile"`` is exact.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sirst_synth.errors import TransformError
from sirst_synth.method.choices import ROTATIONS
from sirst_synth.method.negatives import rotate_window
from sirst_synth.transforms import core
from sirst_synth.transforms.bank import Bank, BankLike

# -- functions on device tensors ------------------------------------------------------------------


def rotation_tables(s: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(4, s * s) int64: row k lists, for each pixel of an s x s window rotated by k x 90 degrees,
    the window pixel it comes from (:func:`rotate_window` applied to the pixels' numbers)."""
    numbers = np.arange(s * s, dtype=np.int64).reshape(s, s)
    tables = np.stack([rotate_window(numbers, 0, 0, s, k).ravel() for k in range(4)])
    return torch.from_numpy(tables).to(device)


def window_origins(cy: torch.Tensor, cx: torch.Tensor, s: int, height: torch.Tensor | int,
                   width: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left corners of the s x s windows centred on (cy, cx), shifted inside (height, width)
    (:func:`~sirst_synth.method.negatives.window_origin`, batched)."""
    half = s // 2
    y0 = torch.minimum((cy - half).clamp(min=0), torch.as_tensor(height, device=cy.device) - s)
    x0 = torch.minimum((cx - half).clamp(min=0), torch.as_tensor(width, device=cx.device) - s)
    return y0, x0


def _window_index(images: torch.Tensor, y0: torch.Tensor, x0: torch.Tensor, s: int) -> torch.Tensor:
    """(B, s * s) flat indices into ``images`` (B, H, W) of each image's window."""
    height, width = images.shape[1:]
    grid = torch.arange(s, device=images.device)
    rows = y0.view(-1, 1, 1) + grid.view(1, s, 1)
    cols = x0.view(-1, 1, 1) + grid.view(1, 1, s)
    batch = torch.arange(images.shape[0], device=images.device).view(-1, 1, 1)
    return ((batch * height + rows) * width + cols).view(images.shape[0], s * s)


def gather_windows(images: torch.Tensor, y0: torch.Tensor, x0: torch.Tensor, s: int) -> torch.Tensor:
    """(B, s * s) pixels of each image's s x s window at (y0, x0); ``images`` (B, H, W)."""
    return images.reshape(-1)[_window_index(images, y0, x0, s)]


def changing(windows: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """(B, 3) bool: whether rotation k = 1, 2, 3 changes each (B, s * s) window
    (:func:`~sirst_synth.method.negatives.changing_rotations`, batched)."""
    return torch.stack([(windows[:, tables[k]] != windows).any(1) for k in ROTATIONS], 1)


def nth_true(flags: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Column of the ``n``-th (0-based) True of each row of ``flags`` (B, C); 0 for a row without one."""
    rank = flags.long().cumsum(1) - 1
    hit = flags & (rank == n.view(-1, 1))
    return hit.long().argmax(1)


def draw_among(flags: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(column, any): a True column of each row of ``flags`` drawn uniformly by the uniforms ``u`` (B,)."""
    count = flags.sum(1)
    n = torch.minimum((u * count).long(), (count - 1).clamp(min=0))
    return nth_true(flags, n), count > 0


def rotate_windows(images: torch.Tensor, y0: torch.Tensor, x0: torch.Tensor, k: torch.Tensor, s: int,
                   tables: torch.Tensor) -> torch.Tensor:
    """A copy of ``images`` (B, H, W) with each image's s x s window at (y0, x0) rotated by its k
    (0: unchanged), as :func:`~sirst_synth.method.negatives.rotate_window`."""
    index = _window_index(images, y0, x0, s)
    flat = images.reshape(-1)
    windows = flat[index]
    rotated = torch.gather(windows, 1, tables[k])
    out = flat.clone()
    out[index.view(-1)] = rotated.view(-1)
    return out.view(images.shape)


def noise_fields(patches: torch.Tensor, sizes: torch.Tensor, index: torch.Tensor, heights: torch.Tensor | int,
                 widths: torch.Tensor | int, shape: tuple[int, int], fit: str,
                 patch_size: tuple[int, int] | None = None) -> torch.Tensor:
    """(B, H, W) float32 noise fields N: patch ``index[b]`` fitted to (heights[b], widths[b])
    (:func:`~sirst_synth.method.displace.fit_noise`), at the top left of an H x W slot.

    ``patches`` (P, PH, PW) float32, each patch at the top left of its slot, ``sizes`` (P, 2).
    ``heights`` and ``widths`` as ints, and ``patch_size`` when every patch has that size, make a
    resize one call without reading sizes back from the device."""
    out_h, out_w = shape
    device = patches.device
    ph, pw = sizes[index, 0], sizes[index, 1]
    if fit == "tile":
        rows = torch.arange(out_h, device=device).view(1, -1) % ph.view(-1, 1)
        cols = torch.arange(out_w, device=device).view(1, -1) % pw.view(-1, 1)
        slot_h, slot_w = patches.shape[1:]
        flat = (index.view(-1, 1, 1) * slot_h + rows.unsqueeze(2)) * slot_w + cols.unsqueeze(1)
        return patches.reshape(-1)[flat]
    if fit != "resize":
        raise TransformError(f"fit must be one of resize, tile, got {fit!r}")
    if patch_size is not None and isinstance(heights, int) and isinstance(widths, int):
        small = patches[index, :patch_size[0], :patch_size[1]].unsqueeze(1)
        fitted = F.interpolate(small, size=(heights, widths), mode="bilinear", align_corners=False).squeeze(1)
        if (heights, widths) == (out_h, out_w):
            return fitted
        field = torch.zeros((len(index), out_h, out_w), dtype=torch.float32, device=device)
        field[:, :heights, :widths] = fitted
        return field
    field = torch.zeros((len(index), out_h, out_w), dtype=torch.float32, device=device)
    keys = torch.stack([ph, pw, torch.as_tensor(heights, device=device).expand_as(ph),
                        torch.as_tensor(widths, device=device).expand_as(pw)], 1)
    for key in torch.unique(keys, dim=0).tolist():
        (rows,) = torch.nonzero((keys == torch.tensor(key, device=device)).all(1), as_tuple=True)
        p_h, p_w, h, w = key
        small = patches[index[rows], :p_h, :p_w].unsqueeze(1)
        field[rows, :h, :w] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).squeeze(1)
    return field


def mix(images: torch.Tensor, noise: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha * N + (1 - alpha) * I`` (:func:`~sirst_synth.method.displace.mix`): uint8 images in
    float32, rounded half to even, clipped, uint8; float images on the 0..1 scale, clipped."""
    a = torch.tensor(np.float32(alpha), device=images.device)
    if images.dtype == torch.uint8:
        mixed = a * noise + (1 - a) * images.float()
        return mixed.round_().clamp_(0, 255).to(torch.uint8)
    a = a.to(images.dtype)
    return (a * (noise.to(images.dtype) / 255) + (1 - a) * images).clamp(0, 1)


# -- the bank on a device -------------------------------------------------------------------------


class DeviceBank(torch.nn.Module):
    """A :class:`~sirst_synth.transforms.bank.Bank`'s patches as buffers ((P, PH, PW) float32, each
    at the top left of its slot; ``sizes`` (P, 2)), and the draw of a patch from another image."""

    def __init__(self, bank: Bank) -> None:
        super().__init__()
        self.bank = bank
        n = len(bank)
        slot_h, slot_w = (int(v) for v in bank.shape.max(0))
        patches = np.zeros((n, slot_h, slot_w), np.float32)
        for i in range(n):
            h, w = bank.shape[i]
            patches[i, :h, :w] = bank.patch(i)
        codes = bank.sources.codes
        order = np.argsort(codes, kind="stable")
        count = np.bincount(codes, minlength=len(bank.sources.code))
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        for name, array in (("patches", patches), ("sizes", bank.shape), ("order", order), ("count", count),
                            ("start", start)):
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(array)), persistent=False)
        shapes = {tuple(int(v) for v in size) for size in bank.shape}
        #: the (h, w) of every patch when they are all the same size (then a resize needs no size read-back)
        self.patch_size: tuple[int, int] | None = None
        if len(shapes) == 1:
            (h, w), = shapes
            self.patch_size = (h, w)
        self.patches: torch.Tensor
        self.sizes: torch.Tensor
        self.order: torch.Tensor
        self.count: torch.Tensor
        self.start: torch.Tensor

    def codes(self, ids: Sequence[str]) -> torch.Tensor:
        """(B,) the source number of each id in the bank (-1: an image with no patch in it)."""
        code = self.bank.sources.code
        return torch.tensor([code.get(str(i), -1) for i in ids], dtype=torch.int64, device=self.patches.device)

    def draw(self, own: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """(B,) patch indices drawn by the uniforms ``u`` (B,) float64, each uniform among the
        patches not cut from source ``own[b]`` (all of them when the bank holds that source's only):
        :meth:`~sirst_synth.plan.draws.PatchSources.candidates`' rule."""
        n = len(self.order)
        known = own >= 0
        own_count = torch.where(known, self.count[own.clamp(min=0)], 0)
        exclude = (own_count > 0) & (own_count < n)
        m = torch.where(exclude, n - own_count, n)
        j = torch.minimum((u * m).long(), m - 1)
        start = self.start[own.clamp(min=0)]
        return self.order[torch.where(exclude & (j >= start), j + own_count, j)]


def _batch(image: torch.Tensor, mask: torch.Tensor) -> None:
    """Refuse anything but (B, 1, H, W) images and masks of one size."""
    if image.ndim != 4 or image.shape[1] != 1:
        raise TransformError(f"image: a (B, 1, H, W) batch expected, got shape {tuple(image.shape)}")
    if mask.shape != image.shape:
        raise TransformError(f"mask: shape {tuple(mask.shape)} differs from the image's {tuple(image.shape)}")


def _uniforms(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """(n,) float64 uniforms from ``generator`` (on its own device), on ``device``."""
    where = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, dtype=torch.float64, device=where).to(device)


# -- the modules ----------------------------------------------------------------------------------


@dataclass
class DisplaceParams:
    """A batch's draw: which images are displaced (``applied``, (B,) bool) with which patch (``index``, (B,))."""

    applied: torch.Tensor
    index: torch.Tensor


class NoiseDisplace(torch.nn.Module):
    """Mix a noise patch of ``bank`` into each image of a batch (docs/method.md section 3); masks unchanged.

    ``forward(image, mask, ids, generator=None)``: ``ids`` name the images (a patch is never drawn
    from the image itself). The bank's patches are buffers: ``.to(device)`` moves them, and a
    batch on another device moves them there.
    """

    def __init__(self, bank: BankLike, alpha: float = 0.1, fit: str = "resize", p: float = 1.0,
                 test_ids: Sequence[str] | None = None) -> None:
        super().__init__()
        self.method = core.NoiseDisplace(bank, alpha, fit, p, test_ids)
        self.alpha, self.fit, self.p = self.method.alpha, self.method.fit, self.method.p
        self.device_bank = DeviceBank(self.method.bank)
        self.last_params: DisplaceParams | None = None

    def extra_repr(self) -> str:
        return f"{self.method.bank.name!r}, alpha={self.alpha}, fit={self.fit!r}, p={self.p}"

    def draw(self, ids: Sequence[str], generator: torch.Generator | None = None,
             device: torch.device | None = None) -> DisplaceParams:
        """One patch for each image ``ids`` names (and, with ``p < 1``, whether to apply it)."""
        bank = self.device_bank
        if device is not None and bank.patches.device != device:
            bank.to(device)
        device = bank.patches.device
        if any(not isinstance(i, str) or not i for i in ids):
            raise TransformError("NoiseDisplace needs each image's id (ids=[...]): a patch is never drawn "
                                 "from the image itself")
        applied = (_uniforms(len(ids), generator, device) < self.p if self.p < 1.0
                   else torch.ones(len(ids), dtype=torch.bool, device=device))
        index = bank.draw(bank.codes(ids), _uniforms(len(ids), generator, device))
        return DisplaceParams(applied, index)

    def transform(self, image: torch.Tensor, mask: torch.Tensor, params: DisplaceParams) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch displaced as ``params`` say."""
        _batch(image, mask)
        bank = self.device_bank
        h, w = image.shape[2:]
        noise = noise_fields(bank.patches, bank.sizes, params.index, h, w, (h, w), self.fit, bank.patch_size)
        mixed = mix(image[:, 0], noise, self.alpha).unsqueeze(1)
        return torch.where(params.applied.view(-1, 1, 1, 1), mixed, image), mask

    def forward(self, image: torch.Tensor, mask: torch.Tensor, ids: Sequence[str],
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        _batch(image, mask)
        if len(ids) != image.shape[0]:
            raise TransformError(f"ids: {len(ids)} for a batch of {image.shape[0]} images")
        self.last_params = self.draw(ids, generator, image.device)
        return self.transform(image, mask, self.last_params)

    def records(self, params: DisplaceParams, ids: Sequence[str]) -> list[core.Record]:
        """Each image's record, as the numpy transform writes it (empty where nothing was applied)."""
        bank, out = self.method.bank, []
        for applied, index, id_ in zip(params.applied.tolist(), params.index.tolist(), ids):
            draw = core.PatchDraw(index, bank.source_id[index], *(int(v) for v in bank.grid[index])) if applied else None
            out.append(self.method.record(draw, id_))
        return out


@dataclass
class RotateParams:
    """A batch's draw: per image and rotation r, the window origin (``y0``, ``x0``), ``k`` (0: none)
    and the target (``label``, ``cy``, ``cx``); each (B, R) with R = 1 (``targets="one"``) or the
    most targets of an image."""

    y0: torch.Tensor
    x0: torch.Tensor
    k: torch.Tensor
    label: torch.Tensor
    cy: torch.Tensor
    cx: torch.Tensor


class TargetRotate(torch.nn.Module):
    """Rotate the ``s`` x ``s`` window of one (or every) target of each image by a drawn k x 90
    degrees, image and mask alike (docs/method.md section 4), with the numpy transform's rules:
    only draws that change the image.

    ``forward(image, mask, generator=None, centres=None)``: the targets are the masks' 8-connected
    components (found on the host), or ``centres``: per image, its targets' (cy, cx) in label order.
    """

    def __init__(self, s: int = 3, p: float = 1.0, targets: str = "one") -> None:
        super().__init__()
        self.method = core.TargetRotate(s, p, targets)
        self.s, self.p, self.targets = self.method.s, self.method.p, self.method.targets
        self.last_params: RotateParams | None = None

    def extra_repr(self) -> str:
        return f"s={self.s}, p={self.p}, targets={self.targets!r}"

    def draw(self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None,
             centres: Sequence[Sequence[tuple[int, int]]] | None = None) -> RotateParams:
        _batch(image, mask)
        b, _, h, w = image.shape
        self.method.check_size(h, w)
        device, s = image.device, self.s
        if centres is None:
            host = mask[:, 0].detach().cpu().numpy()
            centres = [[(t.cy, t.cx) for t in core.targets_of(m)] for m in host]
        most = max((len(c) for c in centres), default=0)
        cy = torch.zeros((b, max(most, 1)), dtype=torch.int64)
        cx = torch.zeros_like(cy)
        valid = torch.zeros(cy.shape, dtype=torch.bool)
        for i, found in enumerate(centres):
            for t, (y, x) in enumerate(found):
                cy[i, t], cx[i, t], valid[i, t] = int(y), int(x), True
        cy, cx, valid = cy.to(device), cx.to(device), valid.to(device)
        label = torch.arange(1, cy.shape[1] + 1, device=device).expand_as(cy)
        applied = (_uniforms(b, generator, device) < self.p if self.p < 1.0
                   else torch.ones(b, dtype=torch.bool, device=device))
        y0, x0 = window_origins(cy, cx, s, h, w)
        tables = rotation_tables(s, device)
        pixels = image[:, 0]
        if self.targets == "one":
            n_t = cy.shape[1]
            windows = gather_windows(pixels.repeat_interleave(n_t, 0), y0.reshape(-1), x0.reshape(-1), s)
            turns = changing(windows, tables).view(b, n_t, 3) & valid.unsqueeze(2)
            which, some = draw_among(turns.any(2), _uniforms(b, generator, device))
            rows = torch.arange(b, device=device)
            col, _ = draw_among(turns[rows, which], _uniforms(b, generator, device))
            k = torch.where(some & applied, col + 1, 0)
            pick = which.view(-1, 1)
            return RotateParams(y0.gather(1, pick), x0.gather(1, pick), k.view(-1, 1), label.gather(1, pick),
                                cy.gather(1, pick), cx.gather(1, pick))
        ks = torch.zeros_like(cy)
        for t in range(cy.shape[1]):
            turns = changing(gather_windows(pixels, y0[:, t], x0[:, t], s), tables) & valid[:, t:t + 1]
            col, some = draw_among(turns, _uniforms(b, generator, device))
            ks[:, t] = torch.where(some & applied, col + 1, 0)
            pixels = rotate_windows(pixels, y0[:, t], x0[:, t], ks[:, t], s, tables)
        return RotateParams(y0, x0, ks, label, cy, cx)

    def transform(self, image: torch.Tensor, mask: torch.Tensor, params: RotateParams) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch with each drawn window rotated, in order."""
        _batch(image, mask)
        tables = rotation_tables(self.s, image.device)
        pixels, labels = image[:, 0], mask[:, 0]
        for r in range(params.k.shape[1]):
            pixels = rotate_windows(pixels, params.y0[:, r], params.x0[:, r], params.k[:, r], self.s, tables)
            labels = rotate_windows(labels, params.y0[:, r], params.x0[:, r], params.k[:, r], self.s, tables)
        return pixels.unsqueeze(1), labels.unsqueeze(1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None,
                centres: Sequence[Sequence[tuple[int, int]]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        self.last_params = self.draw(image, mask, generator, centres)
        return self.transform(image, mask, self.last_params)

    def records(self, params: RotateParams, records: Sequence[core.Record] | None = None) -> list[core.Record]:
        """Each image's record, as the numpy transform writes it, on top of ``records`` (e.g.
        :meth:`NoiseDisplace.records` of the same batch)."""
        out = []
        fields = [params.k, params.y0, params.x0, params.label, params.cy, params.cx]
        for i, (k, y0, x0, label, cy, cx) in enumerate(zip(*(f.tolist() for f in fields))):
            rotations = [core.Rotation(label[r], cy[r], cx[r], y0[r], x0[r], self.s, k[r]) for r in range(len(k)) if k[r]]
            out.append(self.method.record(rotations, records[i] if records is not None else None))
        return out
