"""Soft-IoU (Eq. 8) and the group loss over negatives (Eq. 9, Algorithm 2).

Soft-IoU with smooth 1 is ``1 - (I + 1) / (U + 1)``, ``I = sum(p * y)``, ``U = sum(p) + sum(y) - I``,
``p = sigmoid(logits)``. What the sums run over is the *pooling*:

``--iou batch`` (default, as DNANet's and BasicIRSTD's ``SoftIoULoss``)
    one Soft-IoU whose sums run over every pixel of every view in the batch. A crop without a
    target then only adds its false-alarm mass to the union: it cannot, on its own, make
    "predict nothing" the optimum. With groups, ``sum`` and ``none`` are that same batch-pooled
    loss (a group's views are pooled with everything else, so a group of k views weighs k
    images, as Eq. 9's sum does); ``min`` first picks, in each group, the view whose own
    Soft-IoU is smallest (Algorithm 2), then pools the picked views over the batch.
``--iou sample`` (Eq. 8 read per image)
    one Soft-IoU per *unit*, averaged over the batch's units: with ``sum`` a unit is a group
    (its views' sums pooled into one Soft-IoU, Eq. 9), with ``min`` the smallest per-view
    Soft-IoU of the group, with ``none`` a single view.

A dataset without groups gives every image a group of its own, so all ``--neg-loss`` modes
are then the same loss. Group membership comes as a (N,) tensor of *slots*: integers in
``[0, N)``, equal for the views of one group. Nothing here synchronises with the host: there is
no ``.item()``, no ``unique`` and no data-dependent shape, so a CUDA step is never stalled.
"""
from __future__ import annotations

import torch

NEG_LOSSES = ("sum", "min", "none")
IOU_MODES = ("batch", "sample")
SMOOTH = 1.0


def _sums(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-view (N,) intersection and union of sigmoid(logits) with target, in float32."""
    prob = torch.sigmoid(logits.float()).flatten(1)
    target = target.float().flatten(1)
    inter = (prob * target).sum(1)
    union = prob.sum(1) + target.sum(1) - inter
    return inter, union


def _iou_loss(inter: torch.Tensor, union: torch.Tensor, smooth: float) -> torch.Tensor:
    return 1.0 - (inter + smooth) / (union + smooth)


def soft_iou_per_sample(logits: torch.Tensor, target: torch.Tensor, smooth: float = SMOOTH) -> torch.Tensor:
    """(N,) Soft-IoU loss of each view; ``logits`` and ``target`` (0/1) are (N, 1, H, W)."""
    return _iou_loss(*_sums(logits, target), smooth)


def soft_iou_pooled(logits: torch.Tensor, target: torch.Tensor, smooth: float = SMOOTH) -> torch.Tensor:
    """Scalar Soft-IoU loss with intersection and union summed over the whole batch."""
    inter, union = _sums(logits, target)
    return _iou_loss(inter.sum(), union.sum(), smooth)


def _per_slot(values: torch.Tensor, slots: torch.Tensor, reduce: str) -> torch.Tensor:
    """(N,) ``values`` reduced ('sum' or 'amin') into N slots; unused slots hold 0 or +inf."""
    n = values.shape[0]
    fill = 0.0 if reduce == "sum" else float("inf")
    out = torch.full((n,), fill, dtype=values.dtype, device=values.device)
    return out.scatter_reduce(0, slots, values, reduce=reduce, include_self=True)


def _first_min_view(per_view: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the view of each group with the smallest loss (the first one on ties)."""
    n = per_view.shape[0]
    group_min = _per_slot(per_view.detach(), slots, "amin")
    index = torch.arange(n, device=per_view.device)
    candidate = torch.where(per_view.detach() == group_min[slots], index, n)
    first = torch.full((n,), n, dtype=index.dtype, device=index.device)
    first = first.scatter_reduce(0, slots, candidate, reduce="amin", include_self=True)
    return index == first[slots]


def _mean_over_used(per_slot: torch.Tensor, used: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_slot`` over the slots that hold a view (no boolean indexing: no sync)."""
    return torch.where(used, per_slot, torch.zeros_like(per_slot)).sum() / used.sum()


def group_soft_iou(
    logits: torch.Tensor, target: torch.Tensor, slots: torch.Tensor | None = None,
    iou: str = "batch", neg_loss: str = "sum", smooth: float = SMOOTH,
) -> torch.Tensor:
    """The training loss of a batch: Soft-IoU pooled as ``iou`` says, groups reduced by ``neg_loss``.

    ``slots`` (N,) int64 in ``[0, N)`` gives each view's group; None: every view its own group.
    See the module doc for the modes.
    """
    if iou not in IOU_MODES:
        raise ValueError(f"iou must be one of {IOU_MODES}, got {iou!r}")
    if neg_loss not in NEG_LOSSES:
        raise ValueError(f"neg-loss must be one of {NEG_LOSSES}, got {neg_loss!r}")
    inter, union = _sums(logits, target)
    n = inter.shape[0]
    if slots is None or neg_loss == "none":
        slots = torch.arange(n, device=inter.device)
    slots = slots.to(device=inter.device, dtype=torch.int64)
    if neg_loss == "min":
        chosen = _first_min_view(_iou_loss(inter, union, smooth), slots)
        if iou == "batch":
            zero = torch.zeros_like(inter)
            return _iou_loss(torch.where(chosen, inter, zero).sum(), torch.where(chosen, union, zero).sum(), smooth)
        per_view = _iou_loss(inter, union, smooth)
        return torch.where(chosen, per_view, torch.zeros_like(per_view)).sum() / chosen.sum()
    if iou == "batch":
        return _iou_loss(inter.sum(), union.sum(), smooth)
    used = _per_slot(torch.ones_like(inter), slots, "sum") > 0
    per_group = _iou_loss(_per_slot(inter, slots, "sum"), _per_slot(union, slots, "sum"), smooth)
    return _mean_over_used(per_group, used)
