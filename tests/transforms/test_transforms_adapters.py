"""The transforms inside albumentations' ``A.Compose`` and as torch modules on NUDT-SIRST batches."""
from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch

from sirst_synth.errors import TransformError
from sirst_synth.method.gray import rounded_gray
from sirst_synth.method.negatives import window_origin
from sirst_synth.method.targets import find_targets
from sirst_synth.store.dataset import Dataset
from sirst_synth.transforms import Bank, apply_record
from sirst_synth.transforms import albumentations as alb
from sirst_synth.transforms import torch as tt

torch.set_num_threads(1)
N_SAMPLES = 12


@pytest.fixture(scope="module")
def bank(nudt_noise: Path) -> Bank:
    return Bank.load(nudt_noise)


@pytest.fixture(scope="module")
def samples(nudt: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Train images of NUDT-SIRST as stored (R = G = B), their masks (0/255) and ids, spread over the split."""
    ds = Dataset(nudt)
    ids = ds.ids("train")
    picked = [ids[i] for i in np.linspace(0, len(ids) - 1, N_SAMPLES).astype(int)]
    return [(i, ds.read_image(i), ds.read_mask(i)) for i in picked]


def window_mask(mask: np.ndarray, s: int = 3) -> np.ndarray:
    """True inside the s x s window of every target of ``mask`` (placed as the build places them)."""
    inside = np.zeros(mask.shape[:2], bool)
    for t in find_targets(mask):
        y0, x0 = window_origin(t.cy, t.cx, s, *mask.shape[:2])
        inside[y0:y0 + s, x0:x0 + s] = True
    return inside


# ------------------------------------------------------------------------------------ albumentations


def test_in_compose_displacement_keeps_shape_dtype_and_mask(bank: Bank, samples) -> None:
    pipeline = A.Compose([alb.NoiseDisplace(bank, alpha=0.1), A.HorizontalFlip(p=0.0)], seed=1)
    for id_, image, mask in samples:
        out = pipeline(image=image, mask=mask, image_id=id_)
        assert out["image"].shape == image.shape == (256, 256, 3) and out["image"].dtype == np.uint8
        assert np.array_equal(out["mask"], mask)
        assert not np.array_equal(out["image"], image)
        assert all(np.array_equal(out["image"][..., 0], out["image"][..., c]) for c in (1, 2))  # still R = G = B


def test_in_compose_rotation_changes_nothing_outside_the_windows(samples) -> None:
    pipeline = A.Compose([alb.TargetRotate(s=3, targets="every")], seed=2)
    turned = 0
    for _, image, mask in samples:
        out = pipeline(image=image, mask=mask)
        assert out["image"].shape == image.shape and out["image"].dtype == np.uint8 and out["mask"].dtype == mask.dtype
        outside = ~window_mask(mask)
        assert np.array_equal(out["image"][outside], image[outside])
        assert np.array_equal(out["mask"][outside], mask[outside])
        turned += not np.array_equal(out["image"], image)
    assert turned >= N_SAMPLES - 1


def test_in_compose_same_seed_same_output_and_the_record_replays(bank: Bank, samples) -> None:
    def pipeline(seed: int) -> A.Compose:
        return A.Compose([alb.NoiseDisplace(bank), alb.TargetRotate(s=3), A.HorizontalFlip(p=0.5)], seed=seed,
                         save_applied_params=True)

    first, second, other = pipeline(7), pipeline(7), pipeline(8)
    for id_, image, mask in samples:
        a = first(image=image, mask=mask, image_id=id_)
        b = second(image=image, mask=mask, image_id=id_)
        c = other(image=image, mask=mask, image_id=id_)
        assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"])
        assert not np.array_equal(a["image"], c["image"])
        record = alb.applied_record(a["applied_transforms"])
        assert record["kind"] == "negative" and record["noise_source_id"] != id_
        flipped = any(name == "HorizontalFlip" for name, _ in a["applied_transforms"])
        replayed, replayed_mask = apply_record(record, image, mask, bank=bank)
        if flipped:
            replayed, replayed_mask = replayed[:, ::-1], replayed_mask[:, ::-1]
        assert np.array_equal(replayed, a["image"]) and np.array_equal(replayed_mask, a["mask"])


def test_in_compose_gray_images_and_p(bank: Bank, samples) -> None:
    id_, image, mask = samples[0]
    gray = rounded_gray(image)
    out = A.Compose([alb.NoiseDisplace(bank), alb.TargetRotate()], seed=0)(image=gray, mask=mask, image_id=id_)
    assert out["image"].shape == gray.shape and out["image"].dtype == np.uint8
    never = A.Compose([alb.NoiseDisplace(bank, p=0.0)], seed=0)(image=gray, mask=mask, image_id=id_)
    assert np.array_equal(never["image"], gray)


def test_in_compose_errors_are_ours(bank: Bank, samples) -> None:
    id_, image, mask = samples[0]
    with pytest.raises(TransformError, match="needs the image's id"):
        A.Compose([alb.NoiseDisplace(bank)])(image=image, mask=mask)
    with pytest.raises(TransformError, match="s=301 is larger than the 256x256 image"):
        A.Compose([alb.TargetRotate(s=301)])(image=image, mask=mask)


# ------------------------------------------------------------------------------------------ torch


def batch(samples, dtype: torch.dtype = torch.uint8) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    images = torch.from_numpy(np.stack([rounded_gray(image) for _, image, _ in samples]))[:, None]
    masks = torch.from_numpy(np.stack([mask for _, _, mask in samples]))[:, None]
    if dtype != torch.uint8:
        images = images.to(dtype) / 255
    return images, masks, [id_ for id_, _, _ in samples]


@pytest.mark.parametrize("fit", ["resize", "tile"])
def test_torch_modules_give_the_numpy_transforms_pixels(bank: Bank, samples, fit: str) -> None:
    images, masks, ids = batch(samples)
    displace, rotate = tt.NoiseDisplace(bank, fit=fit), tt.TargetRotate(targets="every")
    generator = torch.Generator().manual_seed(0)
    shown, shown_masks = displace(images, masks, ids, generator)
    assert torch.equal(shown_masks, masks)
    out, out_masks = rotate(shown, shown_masks, generator)
    assert out.shape == images.shape and out.dtype == torch.uint8 and out_masks.dtype == masks.dtype
    records = rotate.records(rotate.last_params, displace.records(displace.last_params, ids))
    differ = 0
    for i, (_, image, mask) in enumerate(samples):
        assert records[i]["noise_source_id"] != ids[i]
        expected, expected_mask = apply_record(records[i], rounded_gray(image), mask, bank=bank)
        difference = np.abs(expected.astype(int) - out[i, 0].numpy().astype(int))
        assert difference.max() <= 1
        differ += int((difference > 0).sum())
        assert np.array_equal(expected_mask, out_masks[i, 0].numpy())
    if fit == "tile":
        assert differ == 0
    assert differ <= 0.001 * images.numel()


def test_torch_rotation_changes_nothing_outside_the_windows_and_same_seed_same_output(samples) -> None:
    images, masks, _ = batch(samples)
    rotate = tt.TargetRotate(s=3)
    out, out_masks = rotate(images, masks, torch.Generator().manual_seed(3))
    again, _ = rotate(images, masks, torch.Generator().manual_seed(3))
    other, _ = rotate(images, masks, torch.Generator().manual_seed(4))
    assert torch.equal(out, again) and not torch.equal(out, other)
    for i, (_, _, mask) in enumerate(samples):
        outside = torch.from_numpy(~window_mask(mask))
        assert torch.equal(out[i, 0][outside], images[i, 0][outside])
        assert torch.equal(out_masks[i, 0][outside], masks[i, 0][outside])
    assert (rotate.last_params.k > 0).sum() >= N_SAMPLES - 1


def test_torch_float_images_mix_on_the_0_1_scale(bank: Bank, samples) -> None:
    images, masks, ids = batch(samples)
    floats = images.float() / 255
    displace = tt.NoiseDisplace(bank, fit="tile")
    as_u8, _ = displace(images, masks, ids, torch.Generator().manual_seed(5))
    as_float, _ = displace(floats, masks, ids, torch.Generator().manual_seed(5))
    assert as_float.dtype == torch.float32 and float(as_float.min()) >= 0 and float(as_float.max()) <= 1
    assert float((as_float * 255 - as_u8.float()).abs().max()) <= 0.5 + 1e-3


def test_torch_bad_batches_are_one_clear_error(bank: Bank, samples) -> None:
    images, masks, ids = batch(samples)
    displace = tt.NoiseDisplace(bank)
    for call, message in [
        (lambda: displace(images[:, 0], masks[:, 0], ids), "a \\(B, 1, H, W\\) batch expected"),
        (lambda: displace(images, masks[..., :-1], ids), "mask: shape .* differs"),
        (lambda: displace(images, masks, ids[:-1]), f"ids: {N_SAMPLES - 1} for a batch of {N_SAMPLES}"),
        (lambda: tt.TargetRotate(s=301)(images, masks), "s=301 is larger than the 256x256 image"),
    ]:
        with pytest.raises(TransformError, match=message):
            call()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_modules_on_cuda_give_the_numpy_transforms_pixels(bank: Bank, samples) -> None:
    images, masks, ids = batch(samples)
    cuda = torch.device("cuda")
    displace, rotate = tt.NoiseDisplace(bank).to(cuda), tt.TargetRotate()
    generator = torch.Generator(device=cuda).manual_seed(0)
    out, out_masks = rotate(*displace(images.to(cuda), masks.to(cuda), ids, generator), generator)
    assert out.device.type == "cuda"
    records = rotate.records(rotate.last_params, displace.records(displace.last_params, ids))
    differ = 0
    for i, (_, image, mask) in enumerate(samples):
        expected, expected_mask = apply_record(records[i], rounded_gray(image), mask, bank=bank)
        difference = np.abs(expected.astype(int) - out[i, 0].cpu().numpy().astype(int))
        assert difference.max() <= 1 and np.array_equal(expected_mask, out_masks[i, 0].cpu().numpy())
        differ += int((difference > 0).sum())
    assert differ <= 0.001 * images.numel()
