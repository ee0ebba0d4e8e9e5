"""Inference on whole images of any size: normalise, pad to a multiple of 32, crop back.

Images of the same padded size run together; the threshold (logit > 0, i.e. sigmoid > 0.5) is
applied on the device and each batch comes back to the host once, as booleans. The forward pass
runs in the given :class:`~sirst_synth.train.precision.Precision` (fp32 by default).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from sirst_synth.errors import DatasetError
from sirst_synth.store.reader import DatasetReader
from sirst_synth.train.augment import pad_to_multiple
from sirst_synth.train.metrics import Scores
from sirst_synth.train.precision import Precision

#: test images are padded (bottom, right, with the mean) to a multiple of this.
PAD_MULTIPLE = 32


@torch.no_grad()
def predict(
    model: torch.nn.Module, ds: DatasetReader, ids: Sequence[str], mean: float, std: float,
    device: torch.device, batch_size: int = 8, precision: Precision | None = None,
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(id, boolean prediction (H, W))`` for each id, in order (sigmoid > 0.5).

    Consecutive images of the same padded size are run together, up to ``batch_size``.
    """
    was_training = model.training
    model.eval()
    precision = precision or Precision("fp32", device)
    channels_last = device.type == "cuda"
    pending: list[tuple[str, tuple[int, int], np.ndarray]] = []

    def flush() -> Iterator[tuple[str, np.ndarray]]:
        batch = torch.from_numpy(np.stack([p[2] for p in pending]))[:, None].to(device)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with precision.autocast():
            preds = (model(batch)[:, 0] > 0).cpu().numpy()  # logit > 0: sigmoid > 0.5
        for (id_, (h, w), _), out in zip(pending, preds):
            yield id_, out[:h, :w]
        pending.clear()

    try:
        for id_ in ids:
            gray = (ds.read_gray(id_) - mean) / std
            padded = pad_to_multiple(gray.astype(np.float32), PAD_MULTIPLE)
            if pending and (padded.shape != pending[0][2].shape or len(pending) == batch_size):
                yield from flush()
            pending.append((id_, gray.shape, padded))
        if pending:
            yield from flush()
    finally:
        model.train(was_training)


def evaluate(
    model: torch.nn.Module, ds: DatasetReader, ids: Sequence[str], mean: float, std: float,
    device: torch.device, batch_size: int = 8,
    on_prediction: Callable[[str, np.ndarray], None] | None = None, precision: Precision | None = None,
) -> dict[str, float | int]:
    """Scores of ``model`` on ``ids`` of ``ds`` (see :mod:`sirst_synth.train.metrics`).

    ``on_prediction(id, mask)``, when given, receives each boolean prediction (e.g. to save it).
    """
    scores = Scores()
    for id_, pred in predict(model, ds, ids, mean, std, device, batch_size, precision):
        if on_prediction is not None:
            on_prediction(id_, pred)
        try:
            scores.update(pred, ds.read_mask(id_) > 0)
        except ValueError as exc:
            raise DatasetError(f"{id_}: {exc}") from None
    return scores.result()
