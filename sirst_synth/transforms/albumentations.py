"""``NoiseDisplace`` and ``TargetRotate`` as albumentations ``DualTransform``s (extra ``albumentations``).

Same names and arguments as :mod:`sirst_synth.transforms` (whose draw and apply they call), for
``A.Compose([...])`` on ``image`` (uint8: gray, R = G = B, or colour, displaced on its gray) and ``mask``::

    pipeline = A.Compose([NoiseDisplace("noise.h5", alpha=0.1), TargetRotate(s=3), A.HorizontalFlip()],
                         seed=0, save_applied_params=True)
    out = pipeline(image=image, mask=mask, image_id="000123")

``NoiseDisplace`` needs the image's id (``image_id=...``, passed through the pipeline) so that it
never draws a patch of the image itself. Draws come from the transform's own generator
(``self.random_generator``, seeded by ``A.Compose(seed=...)``); ``p`` is albumentations' own.
The applied parameters hold ``record``: what was drawn, as a manifest row
(:func:`sirst_synth.transforms.replay.apply_record` replays it).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import numpy as np

from sirst_synth.transforms import core
from sirst_synth.transforms.bank import BankLike


class NoiseDisplace(A.DualTransform):
    """Mix a noise patch of ``bank`` into the image (docs/method.md section 3); the mask is unchanged.

    Targets: image, mask. Needs ``image_id`` in the data.
    """

    class InitSchema(A.BasicTransform.InitSchema):
        bank: Any
        alpha: float
        fit: str
        test_ids: Any

    def __init__(self, bank: BankLike, alpha: float = 0.1, fit: str = "resize", p: float = 1.0,
                 test_ids: Sequence[str] | None = None) -> None:
        super().__init__(p=p)
        self.method = core.NoiseDisplace(bank, alpha, fit, 1.0, test_ids)
        self.bank, self.alpha, self.fit, self.test_ids = bank, alpha, fit, test_ids

    @property
    def targets_as_params(self) -> list[str]:
        return ["image"]

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        image = data["image"]
        core.gray_of(image)
        if data.get("mask") is not None:
            core.check_mask(image, data["mask"])
        draw = self.method.draw(self.random_generator, data.get("image_id"))  # type: ignore[arg-type]
        return {"draw": draw, "record": self.method.record(draw, data["image_id"])}

    def apply(self, img: np.ndarray, draw: core.PatchDraw | None = None, **params: Any) -> np.ndarray:
        return self.method.apply(img, draw)

    def apply_to_mask(self, mask: np.ndarray, **params: Any) -> np.ndarray:
        return mask

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("alpha", "fit")


class TargetRotate(A.DualTransform):
    """Rotate the ``s`` x ``s`` window of one (or every) target by a drawn k x 90 degrees, image
    and mask alike (docs/method.md section 4); draws that would leave the image unchanged are not made.

    Targets: image, mask (the targets are the mask's 8-connected components).
    """

    class InitSchema(A.BasicTransform.InitSchema):
        s: int
        targets: str

    def __init__(self, s: int = 3, p: float = 1.0, targets: str = "one") -> None:
        super().__init__(p=p)
        self.method = core.TargetRotate(s, 1.0, targets)
        self.s, self.targets_choice = s, targets

    @property
    def targets_as_params(self) -> list[str]:
        return ["image", "mask"]

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        rotations = self.method.draw(self.random_generator, data["image"], data["mask"])
        return {"rotations": rotations, "record": self.method.record(rotations, image_id=data.get("image_id"))}

    def apply(self, img: np.ndarray, rotations: Sequence[core.Rotation] = (), **params: Any) -> np.ndarray:
        return core.rotate(img, rotations)

    def apply_to_mask(self, mask: np.ndarray, rotations: Sequence[core.Rotation] = (), **params: Any) -> np.ndarray:
        return core.rotate(mask, rotations)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("s", "targets")

    def get_transform_init_args(self) -> dict[str, Any]:
        return {"s": self.s, "targets": self.targets_choice}


def applied_record(applied_transforms: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """One record of a sample from ``A.Compose(..., save_applied_params=True)``'s
    ``out["applied_transforms"]``: the records of the transforms above, merged in order (a
    displacement then a rotation make a negative's row)."""
    record: dict[str, str] = {}
    for _, params in applied_transforms:
        record.update(params.get("record") or {})
    return record
