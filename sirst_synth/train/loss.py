"""Soft-IoU loss (Eq. 8) and the group loss over negatives (Eq. 9, Algorithm 2).

A batch holds whole groups (see :class:`sirst_synth.train.data.GroupBatchSampler`); each sample
carries its group's slot number in the batch. Per-sample Soft-IoU losses are reduced per group,
then averaged over the batch's groups:

- ``sum`` (Eq. 9, default): a group's loss is the sum of its members' losses;
- ``min`` (Algorithm 2): a group's loss is its smallest member loss;
- ``none``: groups are ignored, the loss is the mean over samples.

A dataset without groups gives every image a group of its own, and all three are plain Soft-IoU.
"""
from __future__ import annotations

import torch

NEG_LOSSES = ("sum", "min", "none")
SMOOTH = 1.0


def soft_iou_per_sample(logits: torch.Tensor, target: torch.Tensor, smooth: float = SMOOTH) -> torch.Tensor:
    """1 - (|p * y| + smooth) / (|p| + |y| - |p * y| + smooth) per sample, p = sigmoid(logits).

    ``logits`` and ``target`` are (N, 1, H, W); ``target`` holds 0/1. Computed in float32.
    """
    prob = torch.sigmoid(logits.float())
    target = target.float()
    dims = tuple(range(1, prob.ndim))
    inter = (prob * target).sum(dims)
    union = prob.sum(dims) + target.sum(dims) - inter
    return 1.0 - (inter + smooth) / (union + smooth)


def group_loss(per_sample: torch.Tensor, groups: torch.Tensor, mode: str = "sum") -> torch.Tensor:
    """Reduce (N,) per-sample losses by the (N,) group slots of the batch; see the module doc."""
    if mode not in NEG_LOSSES:
        raise ValueError(f"neg-loss must be one of {NEG_LOSSES}, got {mode!r}")
    if mode == "none":
        return per_sample.mean()
    _, slot = torch.unique(groups, return_inverse=True)
    n_groups = int(slot.max()) + 1
    if mode == "sum":
        reduced = torch.zeros(n_groups, dtype=per_sample.dtype, device=per_sample.device)
        reduced = reduced.index_add(0, slot, per_sample)
    else:
        reduced = torch.full((n_groups,), float("inf"), dtype=per_sample.dtype, device=per_sample.device)
        reduced = reduced.scatter_reduce(0, slot, per_sample, reduce="amin", include_self=True)
    return reduced.mean()
