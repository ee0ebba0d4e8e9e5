"""A small synthetic SIRST-like dataset, so the tool can be tried without any download.

Each image is an infrared-looking scene: a dim sky with a smooth gradient and vignetting,
fractal clouds that leave some of the sky flat, in half of the images a textured ground band
under a wavy horizon, then 1-4 point-spread targets and sensor noise (Gaussian read noise and
weak fixed-pattern column stripes). A target's mask is its thresholded blob, one 8-connected
component per target. The layout is docs/method.md section 1 (``images/``, ``masks/``, ``50_50/``).

All randomness comes from ``np.random.default_rng`` seeded by ``SeedSequence([seed, 0, index])``
for image ``index`` and ``SeedSequence([seed, 1])`` for the split: the same seed gives
byte-identical files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sirst_synth.errors import OutputError, ParamError
from sirst_synth.store import imageio
from sirst_synth.store.layout import DEFAULT_SPLIT, PIXEL_FOLDERS, image_name, mask_name

__all__ = ["make_demo_dataset", "render_scene", "SPLIT"]

#: split folder written by the demo (NUDT-SIRST's name).
SPLIT = DEFAULT_SPLIT

#: highest background level before targets and noise, so every target has headroom.
_BG_MAX = 190.0
#: a target's mask is where its unit-peak point-spread profile reaches this level.
_MASK_LEVEL = 0.3
#: least distance between target centres (mask radius <= 3 px, so masks stay >= 6 px apart).
_MIN_SEPARATION = 12.0
_MIN_SIDE = 32
_IMAGE_STREAM, _SPLIT_STREAM = 0, 1


@dataclass(frozen=True)
class Target:
    """A point-spread target: sub-pixel centre, Gaussian widths (px), angle (rad), peak (levels)."""

    cy: float
    cx: float
    sigma_major: float
    sigma_minor: float
    angle: float
    amplitude: float


# --------------------------------------------------------------------------- background


def fractal_noise(
    rng: np.random.Generator, shape: tuple[int, int], base_cells: int = 3, octaves: int = 5,
    persistence: float = 0.55,
) -> np.ndarray:
    """Cloud-like float32 field of zero mean and unit std: random grids upsampled and summed."""
    h, w = shape
    total = np.zeros(shape, np.float32)
    amp = 1.0
    for octave in range(octaves):
        cells = base_cells * 2**octave
        gh = max(2, round(cells * h / max(h, w))) + 1
        gw = max(2, round(cells * w / max(h, w))) + 1
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        total += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        amp *= persistence
    total -= total.mean()
    return total / max(float(total.std()), 1e-6)


def sky(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Dim sky: base level, linear gradient, vignetting, and clouds that leave flat patches."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy / max(h - 1, 1) - 0.5, xx / max(w - 1, 1) - 0.5
    theta = rng.uniform(0, 2 * np.pi)
    ramp = rng.uniform(0, 35) * (np.cos(theta) * yy + np.sin(theta) * xx)
    vignette = 1.0 - rng.uniform(0, 0.25) * (yy**2 + xx**2) * 2
    cover = rng.uniform(0.3, 1.3)  # threshold in std units: the sky above it is cloud
    clouds = np.clip(fractal_noise(rng, shape) - cover, 0, None) ** 1.3 * rng.uniform(25, 70)
    return (rng.uniform(25, 110) + ramp + clouds) * vignette


def ground(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """Put a textured ground band, with a few block-like structures, under a wavy horizon."""
    h, w = background.shape
    wave = cv2.resize(rng.standard_normal((1, 6)).astype(np.float32), (w, 1),
                      interpolation=cv2.INTER_CUBIC)[0]
    horizon = rng.uniform(0.55, 0.85) * h + wave * rng.uniform(0.01, 0.05) * h
    rows = np.arange(h, dtype=np.float32)[:, None]
    alpha = cv2.GaussianBlur((rows > horizon[None, :]).astype(np.float32), (0, 0), 1.2)
    level = float(np.median(background)) + rng.uniform(-30, 60)
    texture = fractal_noise(rng, (h, max(w // 3, 2)), base_cells=6, octaves=4)
    land = level + rng.uniform(8, 22) * cv2.resize(texture, (w, h), interpolation=cv2.INTER_LINEAR)
    for _ in range(rng.integers(0, 4)):  # buildings standing on the ground, with their own level
        bw, bh = rng.integers(w // 12, w // 3), rng.integers(h // 16, h // 5)
        x0 = int(rng.integers(0, w - bw))
        y0 = int(np.clip(horizon[x0 : x0 + bw].min() - bh, 0, h - 1))
        land[y0:, x0 : x0 + bw] += rng.uniform(-40, 50)
        alpha[y0:, x0 : x0 + bw] = 1.0
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.8)
    return alpha * land + (1 - alpha) * background


def fit_range(background: np.ndarray, top: float = _BG_MAX, bottom: float = 3.0) -> np.ndarray:
    """Squeeze the levels linearly into [bottom, top] when they overflow it (targets need room)."""
    lo, hi = float(background.min()), float(background.max())
    new_lo, new_hi = max(lo, bottom), min(hi, top)
    if (new_lo, new_hi) == (lo, hi) or hi <= lo:
        return background
    return new_lo + (background - lo) * ((new_hi - new_lo) / (hi - lo))


def sensor_noise(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Gaussian read noise plus weak fixed-pattern column stripes."""
    read = rng.normal(0, rng.uniform(1.0, 3.0), shape)
    stripes = rng.normal(0, rng.uniform(0.3, 1.2), shape[1])[None, :]
    return (read + stripes).astype(np.float32)


# --------------------------------------------------------------------------- targets


def draw_targets(rng: np.random.Generator, shape: tuple[int, int], count: int) -> list[Target]:
    """Up to ``count`` targets (at least one), kept apart; about one in five near a border."""
    h, w = shape
    targets: list[Target] = []
    for _ in range(50 * count):
        if len(targets) == count:
            break
        cy, cx = _draw_centre(rng, h, w)
        if all(np.hypot(cy - t.cy, cx - t.cx) >= _MIN_SEPARATION for t in targets):
            minor = rng.uniform(0.6, 1.2)
            targets.append(Target(cy, cx, min(minor * rng.uniform(1.0, 1.6), 1.8), minor,
                                  rng.uniform(0, np.pi), rng.uniform(40, 120)))
    return targets


def _draw_centre(rng: np.random.Generator, h: int, w: int) -> tuple[float, float]:
    cy, cx = rng.uniform(6, h - 7), rng.uniform(6, w - 7)
    if rng.random() < 0.2:  # hug one edge, 0.5..3.5 px in
        offset = rng.uniform(0.5, 3.5)
        side = rng.integers(4)
        if side == 0:
            cy = offset
        elif side == 1:
            cy = h - 1 - offset
        elif side == 2:
            cx = offset
        else:
            cx = w - 1 - offset
    return float(cy), float(cx)


def psf_window(
    target: Target, shape: tuple[int, int], radius: int = 5
) -> tuple[slice, slice, np.ndarray]:
    """Unit-peak elliptical Gaussian of ``target`` on the clipped window around its centre."""
    h, w = shape
    iy, ix = round(target.cy), round(target.cx)
    ys = slice(max(iy - radius, 0), min(iy + radius + 1, h))
    xs = slice(max(ix - radius, 0), min(ix + radius + 1, w))
    dy = np.arange(ys.start, ys.stop, dtype=np.float32)[:, None] - target.cy
    dx = np.arange(xs.start, xs.stop, dtype=np.float32)[None, :] - target.cx
    c, s = np.cos(target.angle), np.sin(target.angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    profile = np.exp(-0.5 * ((u / target.sigma_major) ** 2 + (v / target.sigma_minor) ** 2))
    return ys, xs, profile.astype(np.float32)


def blob_mask(profile: np.ndarray, peak: tuple[int, int]) -> np.ndarray:
    """Thresholded profile, reduced to the 8-connected component holding ``peak``."""
    binary = (profile >= _MASK_LEVEL).astype(np.uint8)
    binary[peak] = 1
    _, labels = cv2.connectedComponents(binary, connectivity=8)
    return labels == labels[peak]


def add_targets(image: np.ndarray, targets: list[Target]) -> np.ndarray:
    """Add the targets to ``image`` in place; return their mask (uint8, 0 or 255)."""
    mask = np.zeros(image.shape, np.uint8)
    for t in targets:
        ys, xs, profile = psf_window(t, image.shape)
        image[ys, xs] += t.amplitude * profile
        peak = (round(t.cy) - ys.start, round(t.cx) - xs.start)
        mask[ys, xs][blob_mask(profile, peak)] = 255
    return mask


# --------------------------------------------------------------------------- scene and dataset


def render_scene(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One demo image and its mask, both uint8 (H, W); the mask holds 1-4 targets, values 0/255."""
    background = sky(rng, shape)
    if rng.random() < 0.5:
        background = ground(rng, background)
    image = fit_range(background).astype(np.float32)
    mask = add_targets(image, draw_targets(rng, shape, int(rng.integers(1, 5))))
    image += sensor_noise(rng, shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask


def _check_args(out_dir: Path, n_images: int, size: tuple[int, int], seed: int) -> None:
    if n_images < 2:
        raise ParamError(f"n_images must be at least 2 (one train, one test image), got {n_images}")
    if len(size) != 2 or min(size) < _MIN_SIDE:
        raise ParamError(f"size must be (height, width), each at least {_MIN_SIDE} px, got {size}")
    if seed < 0:
        raise ParamError(f"seed must be >= 0, got {seed}")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a folder; choose a new or empty folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise OutputError(
            f"{out_dir}: output folder exists and is not empty; choose a new or empty folder"
        )


def _split(ids: list[str], seed: int) -> tuple[list[str], list[str]]:
    """Seeded half/half split (train gets the extra id when odd), each list in id order."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_STREAM]))
    order = rng.permutation(len(ids))
    n_train = len(ids) - len(ids) // 2
    train = sorted(ids[i] for i in order[:n_train])
    test = sorted(ids[i] for i in order[n_train:])
    return train, test


def make_demo_dataset(
    out_dir: str | Path, n_images: int = 40, size: tuple[int, int] = (256, 256), seed: int = 0
) -> dict:
    """Write a synthetic SIRST-like dataset to ``out_dir`` (new or empty); return a summary.

    ``size`` is (height, width). Images and masks are written first and the split lists
    ``50_50/train.txt`` and ``50_50/test.txt`` last, so a half-written folder is not complete.
    The summary holds the counts: ``images``, ``train``, ``test``, ``targets``.
    """
    out_dir = Path(out_dir)
    shape = (int(size[0]), int(size[1]))
    _check_args(out_dir, n_images, shape, seed)
    for sub in (*PIXEL_FOLDERS, SPLIT):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(n_images)))
    ids = [f"demo_{i:0{width}d}" for i in range(1, n_images + 1)]
    n_targets = 0
    for index, id_ in enumerate(ids):
        rng = np.random.default_rng(np.random.SeedSequence([seed, _IMAGE_STREAM, index]))
        image, mask = render_scene(rng, shape)
        n_targets += cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)[0] - 1
        imageio.write_atomic(out_dir / image_name(id_), imageio.encode_png(image))
        imageio.write_atomic(out_dir / mask_name(id_), imageio.encode_png(mask))
    train, test = _split(ids, seed)
    for name, part in (("test.txt", test), ("train.txt", train)):
        imageio.write_atomic(out_dir / SPLIT / name, "".join(f"{i}\n" for i in part).encode())
    return {"images": n_images, "train": len(train), "test": len(test), "targets": n_targets}
