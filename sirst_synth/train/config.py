"""A training run's options (the ``train`` command's), and which of them a resumed run may change.

torch-free, so that a study (:mod:`sirst_synth.train.compare`) can read it without loading torch.
"""
from __future__ import annotations

from dataclasses import dataclass

#: the U-Net's base channel count (8.69 M parameters).
DEFAULT_WIDTH = 32
#: options a resumed run may change; every other one is the run's own.
RESUME_MAY_CHANGE = ("device", "workers", "loader", "log_every", "eval_every", "save_every_min",
                     "stop_after_min", "compile", "threads")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (the ``train`` command's options)."""

    data: str
    out: str
    split: str | None = None  # None: 50_50 for a folder, the file's own split for an .h5 dataset
    train_list: str = "train.txt"
    test_list: str = "test.txt"
    eval_data: str | None = None
    steps: int | None = None  # None: epochs x steps_per_epoch
    epochs: int = 1500
    steps_per_epoch: int | None = None  # None: one pass, ceil(train images / batch size)
    batch_size: int = 256
    lr: float = 0.05
    iou: str = "batch"
    neg_loss: str = "sum"
    device: str = "auto"
    seed: int = 0
    width: int = DEFAULT_WIDTH
    crop: int = 256
    loader: str = "auto"  # auto | device | stream
    workers: int | None = None
    log_every: int = 50
    eval_every: int | None = None  # steps; None: at the end only
    eval_images: int | None = None  # score only the first N test images (smoke)
    curve_images: int | None = None  # eval_every scores N evenly spaced eval images; the end: all
    precision: str = "auto"  # fp32 | tf32 | bf16 | fp16 | auto (CUDA: precision.CUDA_DEFAULT; CPU: fp32)
    save_every_min: float = 10.0
    stop_after_min: float | None = None
    compile: bool | None = None  # None: on CUDA only
    threads: int | None = None  # torch's CPU threads; None: threads.choose_threads
    synth: str = "offline"  # offline: train on --data as it is | online: synthesise on the device (train/online.py)
    noise: str | None = None  # --synth online: the noise bank (sample-noise) of --data's train split
    alpha: float = 0.1  # --synth online: the method's alpha, s and fit (docs/method.md sections 3-4)
    s: int = 3
    fit: str = "resize"
    smoke: bool = False
