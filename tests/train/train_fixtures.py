"""Tiny datasets on disk for the trainer and scorer tests (docs/method.md section 1 layout)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from sirst_synth.store import imageio


def write_dataset(
    root: Path, items: dict[str, tuple[np.ndarray, np.ndarray]], train: list[str], test: list[str],
    groups: dict[str, str] | None = None, split: str = "50_50",
) -> Path:
    """Write images/, masks/, <split>/train.txt and test.txt (and a manifest with ``groups``)."""
    for sub in ("images", "masks", split):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for id_, (image, mask) in items.items():
        imageio.write_atomic(root / "images" / f"{id_}.png", imageio.encode_png(image))
        imageio.write_atomic(root / "masks" / f"{id_}.png", imageio.encode_png(mask))
    (root / split / "train.txt").write_text("".join(f"{i}\n" for i in train))
    (root / split / "test.txt").write_text("".join(f"{i}\n" for i in test))
    if groups is not None:
        with open(root / "manifest.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "split", "group"])
            for id_ in items:
                writer.writerow([id_, "train" if id_ in train else "test", groups.get(id_, "")])
    return root


def blob_scene(rng: np.random.Generator, shape: tuple[int, int], n_targets: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy gray background with ``n_targets`` bright 3x3 squares; mask 0/255."""
    h, w = shape
    image = rng.normal(80, 8, shape).clip(0, 255)
    mask = np.zeros(shape, np.uint8)
    for _ in range(n_targets):
        y, x = int(rng.integers(4, h - 5)), int(rng.integers(4, w - 5))
        image[y - 1:y + 2, x - 1:x + 2] = 200
        mask[y - 1:y + 2, x - 1:x + 2] = 255
    return image.astype(np.uint8), mask


def blob_dataset(root: Path, n: int, shape: tuple[int, int] = (64, 64), seed: int = 0,
                 same_train_test: bool = False) -> Path:
    """``n`` blob scenes; the first half train, the rest test (or all in both)."""
    rng = np.random.default_rng(seed)
    items = {f"im{i:03d}": blob_scene(rng, shape, 1 + i % 3) for i in range(n)}
    ids = list(items)
    if same_train_test:
        return write_dataset(root, items, ids, ids)
    return write_dataset(root, items, ids[: n // 2], ids[n // 2:])
