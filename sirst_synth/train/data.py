"""Training data: normalisation statistics, the crop dataset and the group-aware batch sampler.

Groups enter a batch whole: :class:`GroupBatchSampler` shuffles the groups (the views of one
label, from ``manifest.csv``) and packs them into batches of at most ``batch_size`` images, so
the group loss (:mod:`sirst_synth.train.loss`) sees all of a group's views in the same step. A
group larger than a batch is cut into batch-sized pieces. Every random choice is keyed by
``(seed, epoch, batch, group slot)`` through :func:`sirst_synth.plan.seeding.rng_for`, so batches and
crops do not depend on global state or on the number of DataLoader workers, and a resumed run
draws what the uninterrupted run would have drawn.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from sirst_synth.errors import DatasetError
from sirst_synth.plan.seeding import rng_for
from sirst_synth.store.dataset import Dataset
from sirst_synth.train.augment import apply_view, draw_view

#: one sample of a batch: (index in the training ids, (epoch, batch, group slot)).
SampleKey = tuple[int, tuple[int, int, int]]


def normalisation(ds: Dataset, ids: Sequence[str]) -> tuple[float, float]:
    """Mean and std of the gray pixels (0..255) of the images ``ids``."""
    total = total_sq = count = 0.0
    for id_ in ids:
        gray = ds.read_gray(id_).astype(np.float64)
        total += gray.sum()
        total_sq += np.square(gray).sum()
        count += gray.size
    if not count:
        raise ValueError("no training image to compute the mean and std from")
    mean = total / count
    std = float(np.sqrt(max(total_sq / count - mean * mean, 0.0)))
    return float(mean), std if std > 1e-6 else 1.0


def group_members(ids: Sequence[str], groups: dict[str, str] | None) -> list[list[int]]:
    """Indices of ``ids`` gathered by group, in order of first appearance.

    Without groups (None), or for an id missing from them, an image is its own group.
    """
    by_group: dict[str, list[int]] = {}
    for index, id_ in enumerate(ids):
        key = groups.get(id_, id_) if groups else id_
        by_group.setdefault(key, []).append(index)
    return list(by_group.values())


class GroupBatchSampler:
    """Batches of whole groups; an epoch is one shuffled pass or ``steps_per_epoch`` batches."""

    def __init__(
        self, members: list[list[int]], batch_size: int, seed: int, steps_per_epoch: int | None = None
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.members = members
        self.batch_size = batch_size
        self.seed = seed
        self.steps_per_epoch = steps_per_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _pass(self, epoch: int, pass_no: int) -> list[list[int]]:
        """One shuffled pass over the groups, packed into batches of sample indices (group-contiguous)."""
        order = rng_for(self.seed, "batches", epoch, pass_no).permutation(len(self.members))
        batches: list[list[list[int]]] = []
        current: list[list[int]] = []
        size = 0
        for g in order.tolist():
            group = self.members[g]
            if current and size + len(group) > self.batch_size:
                batches.append(current)
                current, size = [], 0
            while len(group) > self.batch_size:
                batches.append([group[: self.batch_size]])
                group = group[self.batch_size:]
            current.append(group)
            size += len(group)
        if current:
            batches.append(current)
        return batches

    def batches(self, epoch: int) -> list[list[list[int]]]:
        """The epoch's batches, each a list of groups, each a list of sample indices."""
        out = self._pass(epoch, 0)
        if self.steps_per_epoch is None:
            return out
        pass_no = 0
        while len(out) < self.steps_per_epoch:
            pass_no += 1
            out += self._pass(epoch, pass_no)
        return out[: self.steps_per_epoch]

    def __iter__(self) -> Iterator[list[SampleKey]]:
        for b, batch in enumerate(self.batches(self.epoch)):
            yield [(index, (self.epoch, b, slot)) for slot, group in enumerate(batch) for index in group]

    def __len__(self) -> int:
        return len(self.batches(self.epoch))


class CropDataset(torch.utils.data.Dataset):
    """Normalised training crops; item ``(index, (epoch, batch, slot))`` -> (image, mask, slot).

    The view (crop, flips, transpose) is drawn from ``(seed, "view", epoch, batch, slot)``: the
    same for every member of a group in a batch. Image (1, crop, crop) float32, padded with the
    mean (0 after normalisation); mask (1, crop, crop) float32 0/1.
    """

    def __init__(
        self, ds: Dataset, ids: Sequence[str], mean: float, std: float, crop: int, seed: int
    ) -> None:
        self.ds, self.ids, self.mean, self.std, self.crop, self.seed = ds, list(ids), mean, std, crop, seed

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, item: SampleKey) -> tuple[torch.Tensor, torch.Tensor, int]:
        index, (epoch, batch, slot) = item
        id_ = self.ids[index]
        image = (self.ds.read_gray(id_) - self.mean) / self.std
        mask = (self.ds.read_mask(id_) > 0).astype(np.float32)
        if image.shape != mask.shape:
            raise DatasetError(f"{id_}: image {image.shape} and mask {mask.shape} differ in size")
        view = draw_view(rng_for(self.seed, "view", epoch, batch, slot), mask, self.crop)
        image = apply_view(image.astype(np.float32), view)
        mask = apply_view(mask, view)
        return torch.from_numpy(image)[None], torch.from_numpy(mask)[None], slot
