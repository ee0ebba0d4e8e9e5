"""The method in any training loop: online transforms that draw and apply what the build does.

``NoiseDisplace`` (docs/method.md section 3) and ``TargetRotate`` (section 4) on numpy arrays,
for any ``Dataset.__getitem__``; the same two as albumentations ``DualTransform``s in
:mod:`sirst_synth.transforms.albumentations` (extra ``albumentations``) and as ``torch.nn.Module``s
on batches in :mod:`sirst_synth.transforms.torch` (extra ``train``). :func:`replay` gives a manifest
row's (or a transform's record's) pixels. This module imports neither torch nor albumentations.
See docs/transforms.md.
"""
from sirst_synth.transforms.bank import Bank
from sirst_synth.transforms.core import NoiseDisplace, PatchDraw, Rotation, TargetRotate
from sirst_synth.transforms.replay import apply_record, replay, replay_params

__all__ = ["Bank", "NoiseDisplace", "PatchDraw", "Rotation", "TargetRotate", "apply_record", "replay", "replay_params"]
