"""Checkpoints: the model, its input normalisation and, for ``last.pt``, the training state."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from sirst_synth.errors import CheckpointError
from sirst_synth.train.model import UNetAFF

FORMAT = "sirst-synth-checkpoint"
#: the checkpoint format's version (docs/training.md).
VERSION = 1


def save(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` with :func:`torch.save` under a temporary name, then rename into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save`; raise :class:`CheckpointError` otherwise."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # torch raises many types for foreign or broken files
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a sirst-synth checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')}; this sirst-synth reads version {VERSION}")
    return state


def model_state(model: UNetAFF, mean: float, std: float) -> dict[str, Any]:
    """What inference needs: architecture, weights, normalisation."""
    return {
        "model": {"name": "UNetAFF", "width": model.width, "in_channels": model.in_channels},
        "state_dict": model.state_dict(),
        "normalisation": {"mean": mean, "std": std},
    }


def build_model(state: dict[str, Any], device: torch.device | str = "cpu") -> tuple[UNetAFF, float, float]:
    """The model of a checkpoint (weights loaded, on ``device``), with its mean and std."""
    spec = state["model"]
    model = UNetAFF(width=spec["width"], in_channels=spec["in_channels"])
    model.load_state_dict(state["state_dict"])
    norm = state["normalisation"]
    return model.to(device), float(norm["mean"]), float(norm["std"])
