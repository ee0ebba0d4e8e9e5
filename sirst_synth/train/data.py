"""Training data: the batch schedule, the device-resident training set and the streaming fallback.

**Schedule.** :func:`batch_schedule` draws every batch of the run up front from the seed. Groups
(the views of one label, from ``manifest.csv``) enter a batch whole and every batch holds exactly
``batch_size`` images: groups are taken in shuffled passes; when the next group does not fit in
the room left, the first group that fits among the next :data:`LOOKAHEAD` is taken instead, and
only when none fits is the next group cut (its first views fill the batch, the rest start the
next one). Each view carries its group's *slot* in the batch (0, 1, ...), which the group loss
(:mod:`sirst_synth.train.loss`) reduces by. The views of a step are decided by uniforms keyed by
``(seed, "view", step)`` (:func:`step_uniforms`), one row per slot, so the views of a group share
one crop and flip draw. Nothing depends on global state, the device or the number of workers,
and a resumed run draws what the uninterrupted run would have drawn.

**Device-resident data** (:class:`DeviceData`): the training images and masks are loaded once as
uint8 tensors on the training device, mean and std come from their histogram there, and
crops, flips, transposes, normalisation and the target-holding crops run batched on the device
(one gather per batch). **Streaming** (:class:`StreamData`): a DataLoader that decodes each
image when it is needed, for a training set larger than the device's memory; it yields the same
batches (it applies :func:`sirst_synth.train.augment.view_from_uniforms` image by image).
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from sirst_synth.errors import DatasetError
from sirst_synth.method.gray import float_gray
from sirst_synth.method.targets import find_targets
from sirst_synth.plan.seeding import rng_for
from sirst_synth.store.dataset import Dataset
from sirst_synth.train.augment import UNIFORMS_PER_VIEW, apply_view, view_from_uniforms

#: groups looked at, beyond the next one, for one that fits the room left in a batch.
LOOKAHEAD = 64
#: share of the device's free memory the resident training set may take (the rest: the model).
DEVICE_MEMORY_SHARE = 0.25
#: steps whose schedule (indices, slots, uniforms) goes to the device at once.
CHUNK_STEPS = 256


def rounded_gray(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) gray: the channel of a gray or R = G = B image, else ITU-R 601 rounded."""
    if image.dtype == np.uint8 and image.ndim == 2:
        return image
    return np.rint(float_gray(image)).clip(0, 255).astype(np.uint8)


def read_pair(ds: Dataset, id_: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 gray image, uint8 0/1 mask) of ``id_``; :class:`DatasetError` if their sizes differ."""
    image = rounded_gray(ds.read_image(id_))
    mask = (ds.read_mask(id_) > 0).astype(np.uint8)
    if image.shape != mask.shape:
        raise DatasetError(f"{id_}: image {image.shape} and mask {mask.shape} differ in size")
    return image, mask


def stats_from_histogram(hist: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """Mean and std of the pixels counted by a 256-bin histogram of values 0..255 (std 1 if flat)."""
    hist = torch.as_tensor(hist, dtype=torch.float64)
    values = torch.arange(256, dtype=torch.float64, device=hist.device)
    count = hist.sum()
    mean = (hist * values).sum() / count
    var = (hist * values.square()).sum() / count - mean.square()
    mean_f, var_f, count_f = (float(x) for x in torch.stack([mean, var, count]).tolist())
    if not count_f:
        raise ValueError("no training image to compute the mean and std from")
    std = float(np.sqrt(max(var_f, 0.0)))
    return mean_f, std if std > 1e-6 else 1.0


def normalisation(ds: Dataset, ids: Sequence[str]) -> tuple[float, float]:
    """Mean and std of the gray pixels (0..255) of the images ``ids`` (decoded on host threads)."""
    def hist(id_: str) -> np.ndarray:
        return np.bincount(rounded_gray(ds.read_image(id_)).ravel(), minlength=256)

    with ThreadPoolExecutor(_threads()) as pool:
        total = sum(pool.map(hist, ids), np.zeros(256, np.int64))
    return stats_from_histogram(total)


def _threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def group_members(ids: Sequence[str], groups: dict[str, str] | None) -> list[list[int]]:
    """Indices of ``ids`` gathered by group, in order of first appearance.

    Without groups (None), or for an id missing from them, an image is its own group.
    """
    by_group: dict[str, list[int]] = {}
    for index, id_ in enumerate(ids):
        key = groups.get(id_, id_) if groups else id_
        by_group.setdefault(key, []).append(index)
    return list(by_group.values())


def batch_schedule(
    members: list[list[int]], batch_size: int, seed: int, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices and group slots of every batch of the run: two (steps, batch_size) int64 arrays.

    See the module doc for the packing rule; pass ``p`` shuffles the groups with
    ``rng_for(seed, "batches", p)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if not members:
        raise ValueError("no group to draw batches from")
    index = np.empty((steps, batch_size), np.int64)
    slot = np.empty((steps, batch_size), np.int64)
    queue: deque[tuple[int, list[int]]] = deque()  # (group number, its views not yet served)
    passes = 0
    for step in range(steps):
        filled = n_slot = 0
        in_batch: set[int] = set()
        while filled < batch_size:
            while len(queue) <= LOOKAHEAD:
                order = rng_for(seed, "batches", passes).permutation(len(members))
                queue.extend((g, members[g]) for g in order.tolist())
                passes += 1
            k = _pick(queue, batch_size - filled, in_batch)
            g, group = queue[k]
            room = batch_size - filled
            if len(group) > room:  # nothing fits: cut this group, its rest stays in the queue
                queue[k] = (g, group[room:])
                group = group[:room]
            else:
                del queue[k]
            index[step, filled:filled + len(group)] = group
            slot[step, filled:filled + len(group)] = n_slot
            in_batch.add(g)
            filled += len(group)
            n_slot += 1
    return index, slot


def _pick(queue: deque[tuple[int, list[int]]], room: int, in_batch: set[int]) -> int:
    """Position in the queue's look-ahead of the group to serve next (see :func:`batch_schedule`).

    In order of preference: the first group that fits and is not yet in the batch (a group can
    be queued twice across a pass boundary), the first one not in the batch (to be cut), the
    first that fits, the next one. The last two only happen with fewer images than a batch.
    """
    first_fresh = first_fit = None
    for k in range(min(LOOKAHEAD + 1, len(queue))):
        group, views = queue[k]
        fits = len(views) <= room
        if group not in in_batch:
            if fits:
                return k
            if first_fresh is None:
                first_fresh = k
        elif fits and first_fit is None:
            first_fit = k
    if first_fresh is not None:
        return first_fresh
    return first_fit if first_fit is not None else 0


def step_uniforms(seed: int, step: int, batch_size: int) -> np.ndarray:
    """(batch_size, 7) float64 uniforms of step ``step`` (0-based): row ``s`` decides slot ``s``'s view."""
    return rng_for(seed, "view", step).random((batch_size, UNIFORMS_PER_VIEW))


@dataclass
class Schedule:
    """The run's batches: (steps, B) sample indices and group slots, and the seed of the views."""

    index: np.ndarray
    slot: np.ndarray
    seed: int

    @property
    def steps(self) -> int:
        return self.index.shape[0]

    @property
    def batch_size(self) -> int:
        return self.index.shape[1]

    def uniforms(self, start: int, stop: int) -> np.ndarray:
        """(stop - start, B, 7) uniforms of steps ``start`` .. ``stop - 1``."""
        return np.stack([step_uniforms(self.seed, s, self.batch_size) for s in range(start, stop)])

    def view_uniforms(self, step: int) -> np.ndarray:
        """(B, 7) uniforms of each view of ``step``: its group slot's row."""
        return step_uniforms(self.seed, step, self.batch_size)[self.slot[step]]


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class DeviceData:
    """The training set as uint8 tensors on one device, and batched crops of it.

    ``images`` and ``masks`` are (N, Hs, Ws), each image at the top left of its slot (padded
    with 0 when images differ in size or are smaller than the crop); ``sizes`` (N, 2) their
    true sizes; target centres (cy, cx) of image i are ``centres[offset[i]:offset[i] + count[i]]``.
    """

    def __init__(
        self, images: torch.Tensor, masks: torch.Tensor, sizes: torch.Tensor,
        centres: torch.Tensor, offset: torch.Tensor, count: torch.Tensor,
    ) -> None:
        self.images, self.masks, self.sizes = images, masks, sizes
        self.centres, self.offset, self.count = centres, offset, count
        self.device = images.device
        hs, ws = images.shape[1:]
        self.padded = bool((sizes[:, 0] < hs).any() or (sizes[:, 1] < ws).any())
        self.mean, self.std = self._stats()

    @classmethod
    def load(cls, ds: Dataset, ids: Sequence[str], crop: int, device: torch.device) -> DeviceData:
        """Decode ``ids`` of ``ds`` (host threads) into uint8 tensors on ``device``."""
        def one(id_: str) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
            image, mask = read_pair(ds, id_)
            return image, mask, [(t.cy, t.cx) for t in find_targets(mask)]

        with ThreadPoolExecutor(_threads()) as pool:
            items = list(pool.map(one, ids))
        sizes = np.array([item[0].shape for item in items], np.int64).reshape(-1, 2)
        hs, ws = max(int(sizes[:, 0].max()), crop), max(int(sizes[:, 1].max()), crop)
        images = np.zeros((len(items), hs, ws), np.uint8)
        masks = np.zeros_like(images)
        for i, (image, mask, _) in enumerate(items):
            images[i, :image.shape[0], :image.shape[1]] = image
            masks[i, :mask.shape[0], :mask.shape[1]] = mask
        count = np.array([len(item[2]) for item in items], np.int64)
        offset = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
        # one spare (0, 0) centre at the end: the index of images without a target
        centres = np.array([c for item in items for c in item[2]] + [(0, 0)], np.int64).reshape(-1, 2)
        return cls(*(torch.from_numpy(a).to(device) for a in (images, masks, sizes, centres, offset, count)))

    def _stats(self) -> tuple[float, float]:
        hist = torch.zeros(256, dtype=torch.int64, device=self.device)
        for chunk in torch.split(self.images, 256):
            hist += torch.bincount(chunk.reshape(-1).long(), minlength=256)
        if self.padded:  # padding zeros are not pixels
            hist[0] -= self.images[0].numel() * len(self.images) - self.sizes.prod(1).sum()
        return stats_from_histogram(hist)

    @staticmethod
    def nbytes(n_images: int, shape: tuple[int, int], crop: int) -> int:
        """Device bytes of ``n_images`` images and masks of ``shape`` (padded to the crop)."""
        return 2 * n_images * max(shape[0], crop) * max(shape[1], crop)

    def crops(self, index: torch.Tensor, u: torch.Tensor, crop: int,
              pixels: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (B, 1, crop, crop) float32 crops and 0/1 masks of images ``index`` (B,).

        ``u`` (B, 7) float64 are each view's uniforms; the arithmetic is
        :func:`sirst_synth.train.augment.view_from_uniforms`', element for element. ``pixels``:
        (B, Hs, Ws) uint8 images and masks to crop instead, row b in place of image ``index[b]``
        (same size and targets; the online synthesis, :mod:`sirst_synth.train.online`).
        """
        c = crop
        h, w = self.sizes[index].unbind(1)
        ph, pw = h.clamp(min=c), w.clamp(min=c)
        n = self.count[index]
        has = n > 0
        pick = self.offset[index] + torch.minimum((u[:, 1] * n).long(), (n - 1).clamp(min=0))
        pick = torch.where(has, pick, len(self.centres) - 1)
        cy, cx = self.centres[pick].unbind(1)
        force = (u[:, 0] < 0.5) & has
        top = torch.where(force, torch.minimum((cy - (u[:, 2] * c).long()).clamp(min=0), ph - c),
                          (u[:, 2] * (ph - c + 1)).long())
        left = torch.where(force, torch.minimum((cx - (u[:, 3] * c).long()).clamp(min=0), pw - c),
                           (u[:, 3] * (pw - c + 1)).long())
        flip_v, flip_h, transpose = (u[:, 4:7] < 0.5).unbind(1)
        grid = torch.arange(c, device=self.device)
        i, j = grid.view(1, c, 1), grid.view(1, 1, c)
        t = transpose.view(-1, 1, 1)
        a, b = torch.where(t, j, i), torch.where(t, i, j)  # out[i, j] = flipped[j, i] when transposed
        rows = top.view(-1, 1, 1) + torch.where(flip_v.view(-1, 1, 1), c - 1 - a, a)
        cols = left.view(-1, 1, 1) + torch.where(flip_h.view(-1, 1, 1), c - 1 - b, b)
        hs, ws = self.images.shape[1:]
        images, masks, row = ((self.images, self.masks, index) if pixels is None
                              else (*pixels, torch.arange(len(index), device=self.device)))
        flat = (row.view(-1, 1, 1) * hs + rows) * ws + cols
        image = (images.reshape(-1)[flat].float() - self.mean) / self.std
        if self.padded:
            inside = (rows < h.view(-1, 1, 1)) & (cols < w.view(-1, 1, 1))
            image = torch.where(inside, image, torch.zeros((), device=self.device))
        mask = masks.reshape(-1)[flat].float()
        return image.unsqueeze(1), mask.unsqueeze(1)

    def batches(self, schedule: Schedule, crop: int, start: int = 0) -> Iterator[Batch]:
        """(image, mask, slot) of steps ``start`` .. end; the schedule goes to the device in chunks."""
        for _, index, slot, u in device_steps(schedule, self.device, start):
            yield (*self.crops(index, u, crop), slot)


def device_steps(schedule: Schedule, device: torch.device,
                 start: int = 0) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(step, indices, slots, each view's uniforms) of steps ``start`` .. end, on ``device``: the
    schedule goes there in chunks of :data:`CHUNK_STEPS` steps."""
    for first in range(start, schedule.steps, CHUNK_STEPS):
        last = min(first + CHUNK_STEPS, schedule.steps)
        index = torch.from_numpy(schedule.index[first:last]).to(device)
        slot = torch.from_numpy(schedule.slot[first:last]).to(device)
        u = torch.from_numpy(schedule.uniforms(first, last)).to(device)
        u = torch.gather(u, 1, slot.unsqueeze(2).expand(-1, -1, u.shape[2]))  # each view: its slot's row
        for k in range(last - first):
            yield first + k, index[k], slot[k], u[k]


class CropDataset(torch.utils.data.Dataset):
    """One normalised training crop per item ``(index, slot, uniforms)`` -> (image, mask, slot).

    Decodes the image on each access: the streaming path, and the per-image reference of
    :meth:`DeviceData.crops`. Image (1, crop, crop) float32 padded with the mean (0 after
    normalisation); mask (1, crop, crop) float32 0/1.
    """

    def __init__(self, ds: Dataset, ids: Sequence[str], mean: float, std: float, crop: int) -> None:
        self.ds, self.ids, self.mean, self.std, self.crop = ds, list(ids), mean, std, crop

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, item: tuple[int, int, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, int]:
        index, slot, u = item
        image, mask = read_pair(self.ds, self.ids[index])
        view = view_from_uniforms(u, [(t.cy, t.cx) for t in find_targets(mask)], image.shape, self.crop)
        image = apply_view((image.astype(np.float32) - self.mean) / self.std, view)
        mask = apply_view(mask.astype(np.float32), view)
        return torch.from_numpy(image)[None], torch.from_numpy(mask)[None], slot


class _StepSampler:
    """Batch sampler over the schedule's steps ``start`` .. end: keys for :class:`CropDataset`."""

    def __init__(self, schedule: Schedule, start: int) -> None:
        self.schedule, self.start = schedule, start

    def __iter__(self) -> Iterator[list[tuple[int, int, np.ndarray]]]:
        for step in range(self.start, self.schedule.steps):
            u = self.schedule.view_uniforms(step)
            yield [(int(i), int(s), u[k]) for k, (i, s) in
                   enumerate(zip(self.schedule.index[step], self.schedule.slot[step]))]

    def __len__(self) -> int:
        return self.schedule.steps - self.start


class StreamData:
    """The streaming fallback: one DataLoader (one iterator) over the whole run's schedule."""

    def __init__(self, ds: Dataset, ids: Sequence[str], mean: float, std: float, workers: int,
                 device: torch.device) -> None:
        self.ds, self.ids, self.mean, self.std = ds, list(ids), mean, std
        self.workers, self.device = workers, device

    def batches(self, schedule: Schedule, crop: int, start: int = 0) -> Iterator[Batch]:
        """(image, mask, slot) of steps ``start`` .. end, on the device."""
        loader = torch.utils.data.DataLoader(
            CropDataset(self.ds, self.ids, self.mean, self.std, crop), batch_sampler=_StepSampler(schedule, start),
            num_workers=self.workers, pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if self.workers else None,
        )
        for image, mask, slot in loader:
            yield (image.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True),
                   slot.to(self.device, non_blocking=True))


def device_budget(device: torch.device) -> int:
    """Bytes the resident training set may take on ``device``."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
    else:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # not POSIX: assume it fits
            return 1 << 62
    return int(free * DEVICE_MEMORY_SHARE)
