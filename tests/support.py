"""Independent re-implementations used by the tests to check outputs (not the package's code)."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def read(path: Path) -> np.ndarray:
    """Pixels as stored, RGBA/P/LA converted the obvious way."""
    im = Image.open(path)
    if im.mode in ("RGBA", "P", "PA"):
        im = im.convert("RGB")
    elif im.mode == "LA":
        im = im.convert("L")
    return np.asarray(im)


def manifest(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def ids(root: Path, split: str, part: str) -> list[str]:
    return [l.strip() for l in (root / split / f"{part}.txt").read_text().splitlines() if l.strip()]


def gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image.astype(np.float64)
    if (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all():
        return image[..., 0].astype(np.float64)
    return 0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]


def centroids(mask: np.ndarray) -> list[tuple[int, int]]:
    """Rounded (cy, cx) of the 8-connected components, in label order."""
    n, _, _, c = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    return [(int(np.floor(c[i, 1] + 0.5)), int(np.floor(c[i, 0] + 0.5))) for i in range(1, n)]


def expected_displaced(src: Path, row: dict[str, str], grid: int) -> np.ndarray:
    """docs/method.md section 3 computed from a manifest row: grid cell of the noise source, bilinear resize, mix."""
    image = read(src / "images" / f"{row['source_id']}.png")
    noise_src = gray(read(src / "images" / f"{row['noise_source_id']}.png"))
    rh, rw = noise_src.shape[0] // grid, noise_src.shape[1] // grid
    r, c = int(row["noise_row"]), int(row["noise_col"])
    patch = noise_src[r * rh:(r + 1) * rh, c * rw:(c + 1) * rw].astype(np.float32)
    n = cv2.resize(patch, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    if image.ndim == 3:
        n = n[..., None]
    a = np.float32(float(row["alpha"]))
    return np.clip(np.rint(a * n + (np.float32(1) - a) * image.astype(np.float32)), 0, 255).astype(np.uint8)


def expected_gray_displaced(src: Path, row: dict[str, str], grid: int) -> np.ndarray:
    """docs/method.md section 3 on gray: the source's gray (its channel when R=G=B, else the 601 weights, in
    float), the noise cell resized bilinear, mixed in float32, rounded once."""
    import cv2

    image = gray(read(src / "images" / f"{row['source_id']}.png")).astype(np.float32)
    noise_src = gray(read(src / "images" / f"{row['noise_source_id']}.png"))
    rh, rw = noise_src.shape[0] // grid, noise_src.shape[1] // grid
    r, c = int(row["noise_row"]), int(row["noise_col"])
    patch = noise_src[r * rh:(r + 1) * rh, c * rw:(c + 1) * rw].astype(np.float32)
    n = cv2.resize(patch, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    a = np.float32(float(row["alpha"]))
    return np.clip(np.rint(a * n + (np.float32(1) - a) * image), 0, 255).astype(np.uint8)
