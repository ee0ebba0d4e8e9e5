"""Synthesis on the device inside the trainer: ``train --synth online --noise noise.h5``.

Instead of a built dataset, the trainer holds the real training set (:class:`DeviceData`) and a
noise bank (:class:`~sirst_synth.transforms.torch.DeviceBank`) on the device, and makes every
batch's displaced images and rotations there, step by step, with the functions of
:mod:`sirst_synth.transforms.torch` (the numpy transforms' rules and arithmetic).

**What a run draws from** (:func:`online_plan`): the items an offline build of the same source
would hold, with the default ``--total`` (:class:`~sirst_synth.plan.params.BuildParams`, 5562):
every original image (its own group), then units in the build's plan order
(:func:`~sirst_synth.plan.units.plan_units`) until the total is reached, the last one cut. A unit
is a group: a displaced image and its rotations, one view per (target in label order, rotation
slot j = 0, 1, 2), the build's largest unit (it skips about 1.5 % of rotations, which repeat an
image; here each is replaced as below). Groups are packed into batches by the same
:func:`~sirst_synth.train.data.batch_schedule` as an offline run, so a run has the same steps and
batch size as an offline run of the default build, and a group's views share a batch.

**What a step computes** (:meth:`OnlineData.views`), from a generator seeded by
``(seed, "online", step)`` on the device: one patch per group in the batch, uniform among the
patches of other images (the build's rule), fitted to the image (``--fit``) and mixed in
(``--alpha``); each rotated view turns its target's ``s`` x ``s`` window by the j-th of the
rotations that change it (k = 1, 2, 3 in order; with fewer than j + 1 of them, the (j mod count)-th;
with none, the view is the displaced image). Then the crops, flips and normalisation of the
offline path (:meth:`DeviceData.crops`), one draw per group. A resumed run draws what the
uninterrupted run would have drawn.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sirst_synth.errors import TrainError
from sirst_synth.method.choices import ROTATIONS
from sirst_synth.method.negatives import max_negatives
from sirst_synth.method.targets import find_targets
from sirst_synth.plan.params import BuildParams
from sirst_synth.plan.seeding import rng_for
from sirst_synth.plan.units import plan_units
from sirst_synth.store.reader import DatasetReader
from sirst_synth.train.config import TrainConfig
from sirst_synth.train.data import Batch, DeviceData, Schedule, device_budget, device_steps
from sirst_synth.transforms.bank import Bank
from sirst_synth.transforms.core import check_alpha, check_fit, check_s
from sirst_synth.transforms.torch import (
    DeviceBank,
    changing,
    gather_windows,
    mix,
    noise_fields,
    nth_true,
    rotate_windows,
    rotation_tables,
    window_origins,
)

#: kinds of the items of an online run
ORIGINAL, DISPLACED, ROTATED = 0, 1, 2


@dataclass
class OnlinePlan:
    """The items an online run draws from: for item m, train image ``base[m]``, its ``kind``
    (:data:`ORIGINAL`, :data:`DISPLACED`, :data:`ROTATED`), and for a rotation the ``target``
    (0-based, label order) and the rotation slot ``turn`` (0, 1, 2); ``members``: the groups."""

    base: np.ndarray
    kind: np.ndarray
    target: np.ndarray
    turn: np.ndarray
    members: list[list[int]]

    @property
    def size(self) -> int:
        return len(self.base)


def online_plan(ids: Sequence[str], targets: Sequence[int], seed: int, total: int | None = None,
                groups: bool = True) -> OnlinePlan:
    """The items of an online run over train images ``ids`` with ``targets[i]`` targets each: the
    originals, then units in the build's plan order up to ``total`` items (default: the build's
    default ``--total``; at least the originals). ``groups=False``: every item its own group."""
    total = max(BuildParams().total if total is None else total, len(ids))
    rows: list[tuple[int, int, int, int]] = [(i, ORIGINAL, 0, 0) for i in range(len(ids))]
    members = [[i] for i in range(len(ids))]
    position = {id_: i for i, id_ in enumerate(ids)}
    units = plan_units(list(ids), seed)
    while len(rows) < total:
        _, id_ = next(units)
        i = position[id_]
        views = [(i, DISPLACED, 0, 0)] + [(i, ROTATED, t, j) for t in range(targets[i]) for j in range(len(ROTATIONS))]
        assert len(views) == 1 + max_negatives(targets[i])
        views = views[:total - len(rows)]
        members.append(list(range(len(rows), len(rows) + len(views))))
        rows.extend(views)
    base, kind, target, turn = (np.array(column, np.int64) for column in zip(*rows))
    if not groups:
        members = [[m] for m in range(len(rows))]
    return OnlinePlan(base, kind, target, turn, members)


def check_config(config: TrainConfig) -> None:
    """Refuse online options that cannot work together (one line each)."""
    if config.synth not in ("offline", "online"):
        raise TrainError(f"--synth must be offline or online, got {config.synth!r}")
    if config.synth == "offline":
        if config.noise is not None:
            raise TrainError("--noise is for --synth online (an offline run trains on a built dataset)")
        return
    if config.noise is None:
        raise TrainError("--synth online needs --noise: a noise bank of the training set (sirst-synth sample-noise)")
    if config.loader == "stream":
        raise TrainError("--synth online synthesises on the device: it needs the device loader, not --loader stream")
    try:
        check_alpha(config.alpha)
        check_s(config.s)
        check_fit(config.fit)
    except ValueError as exc:
        raise TrainError(f"--synth online: {exc}") from None


def check_source(ds: DatasetReader) -> None:
    """Refuse a built dataset: online synthesis starts from the real training set."""
    rows = ds.manifest() or {}
    generated = sum(1 for row in rows.values() if row.get("kind") in ("displaced", "negative"))
    if generated:
        raise TrainError(f"{ds.root}: a built dataset ({generated} generated images); --synth online synthesises "
                         "from the real training set: give its source as --data")


@dataclass
class Views:
    """One step's synthesised views, before cropping: (B, Hs, Ws) uint8 ``images`` and ``masks``,
    and per view its train image ``base``, ``patch`` (-1: not displaced), and the rotated window
    (``y0``, ``x0``, ``k``; k = 0: none)."""

    images: torch.Tensor
    masks: torch.Tensor
    base: torch.Tensor
    patch: torch.Tensor
    y0: torch.Tensor
    x0: torch.Tensor
    k: torch.Tensor


class OnlineData:
    """The real training set and a noise bank on one device, and batches synthesised there.

    Yields the batches of :class:`~sirst_synth.train.data.DeviceData` (``(image, mask, slot)``)
    for the items of an :class:`OnlinePlan`; ``mean`` and ``std`` are the real images'.
    """

    def __init__(self, data: DeviceData, bank: DeviceBank, codes: torch.Tensor, plan: OnlinePlan, alpha: float,
                 fit: str, s: int, seed: int) -> None:
        self.data, self.bank, self.codes, self.plan = data, bank, codes, plan
        self.alpha, self.fit, self.s, self.seed = alpha, fit, s, seed
        self.device = data.device
        self.items = {name: torch.from_numpy(getattr(plan, name)).to(self.device)
                      for name in ("base", "kind", "target", "turn")}
        self.tables = rotation_tables(s, self.device)
        smallest = data.sizes.min().item() if len(data.sizes) else s
        if smallest < s:
            raise TrainError(f"--s {s} is larger than a {smallest}-pixel side of a training image")
        sizes = {tuple(size) for size in data.sizes.tolist()}
        #: (h, w) of every image when they are all the same size
        self.image_size: tuple[int, int] | None = sizes.pop() if len(sizes) == 1 else None

    @property
    def mean(self) -> float:
        return self.data.mean

    @mean.setter
    def mean(self, value: float) -> None:
        self.data.mean = value

    @property
    def std(self) -> float:
        return self.data.std

    @std.setter
    def std(self, value: float) -> None:
        self.data.std = value

    @classmethod
    def load(cls, config: TrainConfig, ds: Any, ids: Sequence[str], bank: Bank, plan: OnlinePlan,
             device: torch.device) -> OnlineData:
        """The training set of ``ids`` and ``bank`` on ``device``."""
        data = DeviceData.load(ds, ids, config.crop, device)
        patches = DeviceBank(bank).to(device)
        codes = patches.codes(ids)
        return cls(data, patches, codes, plan, config.alpha, config.fit, config.s, config.seed)

    def generator(self, step: int) -> torch.Generator:
        """The generator of step ``step`` (0-based), on the device: seeded by ``(seed, "online", step)``."""
        seed = int(rng_for(self.seed, "online", step).integers(2**63))
        return torch.Generator(device=self.device).manual_seed(seed)

    def views(self, index: torch.Tensor, slot: torch.Tensor, generator: torch.Generator) -> Views:
        """The full-size views of items ``index`` (B,) in group slots ``slot`` (B,)."""
        data, bank, s = self.data, self.bank, self.s
        shape = (data.images.shape[1], data.images.shape[2])
        item = {name: values[index] for name, values in self.items.items()}
        base, kind = item["base"], item["kind"]
        b = len(index)
        # one patch per group slot, drawn for every slot number 0 .. B-1 (unused ones are ignored)
        slot_base = torch.zeros(b, dtype=torch.int64, device=self.device).scatter_(0, slot, base)
        u = torch.rand(b, generator=generator, dtype=torch.float64, device=self.device)
        patch = bank.draw(self.codes[slot_base], u)[slot]
        if self.image_size is not None:
            heights, widths = self.image_size
            field = noise_fields(bank.patches, bank.sizes, patch, heights, widths, shape,
                                 self.fit, bank.patch_size)
        else:
            field = noise_fields(bank.patches, bank.sizes, patch, data.sizes[base, 0], data.sizes[base, 1],
                                 shape, self.fit)
        originals = data.images[base]
        displaced = (kind != ORIGINAL).view(-1, 1, 1)
        images = torch.where(displaced, mix(originals, field, self.alpha), originals)
        masks = data.masks[base]
        # rotations: the j-th of the rotations that change the target's window (k = 1, 2, 3 in order)
        count = data.count[base]
        centre = data.offset[base] + torch.minimum(item["target"], (count - 1).clamp(min=0))
        cy, cx = data.centres[centre].unbind(1)
        y0, x0 = window_origins(cy, cx, s, data.sizes[base, 0], data.sizes[base, 1])
        turns = changing(gather_windows(images, y0, x0, s), self.tables)
        n_turns = turns.sum(1)
        col = nth_true(turns, item["turn"] % n_turns.clamp(min=1))
        k = torch.where((kind == ROTATED) & (count > 0) & (n_turns > 0), col + 1, 0)
        images = rotate_windows(images, y0, x0, k, s, self.tables)
        masks = rotate_windows(masks, y0, x0, k, s, self.tables)
        return Views(images, masks, base, torch.where(displaced.view(-1), patch, -1), y0, x0, k)

    def batches(self, schedule: Schedule, crop: int, start: int = 0) -> Iterator[Batch]:
        """(image, mask, slot) of steps ``start`` .. end, synthesised on the device."""
        for step, index, slot, u in device_steps(schedule, self.device, start):
            views = self.views(index, slot, self.generator(step))
            yield (*self.data.crops(views.base, u, crop, (views.images, views.masks)), slot)


def target_counts(ds: DatasetReader, ids: Sequence[str]) -> list[int]:
    """How many targets each train image's mask holds."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda id_: len(find_targets(ds.read_mask(id_))), ids))


@dataclass
class OnlineSetup:
    """What ``train --synth online`` prepares before the schedule: the bank and the plan."""

    bank: Bank
    plan: OnlinePlan

    @classmethod
    def prepare(cls, config: TrainConfig, ds: DatasetReader, eval_ds: DatasetReader, ids: Sequence[str],
                log: Callable[[str], None]) -> OnlineSetup | None:
        """Check the options, the source and the bank (no test image's patch); plan the items.
        None for an offline run (whose options are checked too)."""
        check_config(config)
        if config.synth != "online":
            return None
        check_source(ds)
        assert config.noise is not None
        test_ids = set(ds.ids("test")) | (set(eval_ds.ids("test")) if eval_ds is not ds else set())
        try:
            bank = Bank.load(config.noise, sorted(test_ids))
        except ValueError as exc:
            raise TrainError(f"--noise: {exc}") from None
        plan = online_plan(ids, target_counts(ds, ids), config.seed, groups=config.neg_loss != "none")
        kinds = np.bincount(plan.kind, minlength=3)
        log(f"online synthesis: {len(bank)} noise patches from {len(set(bank.source_id))} images; "
            f"{plan.size} items a pass ({kinds[ORIGINAL]} original, {kinds[DISPLACED]} displaced, "
            f"{kinds[ROTATED]} rotated) in {len(plan.members)} groups; alpha {config.alpha}, fit {config.fit}, "
            f"s {config.s}")
        return cls(bank, plan)

    def load(self, config: TrainConfig, ds: DatasetReader, ids: Sequence[str], device: torch.device) -> OnlineData:
        """The training set and the bank on ``device`` (:class:`TrainError` when they do not fit)."""
        first = ds.read_mask(ids[0])
        need = DeviceData.nbytes(len(ids), first.shape, config.crop) + 4 * int(self.bank.pixels.size)
        budget = device_budget(device)
        if need > budget:
            raise TrainError(f"--synth online: the training set and the noise bank need about {need / 2**30:.1f} GiB "
                             f"on {device}, more than the {budget / 2**30:.1f} GiB they may take")
        return OnlineData.load(config, ds, ids, self.bank, self.plan, device)
