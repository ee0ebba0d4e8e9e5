"""Errors the train and eval commands turn into one line for the user (no torch import here)."""
from __future__ import annotations


class TrainError(ValueError):
    """A training run that cannot start as asked."""


class CheckpointError(ValueError):
    """A file that is not a sirst-synth checkpoint."""
