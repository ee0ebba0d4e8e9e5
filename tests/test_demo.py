"""The demo dataset: docs/method.md section 1 layout, 1-4 visible targets per image, flat sky, determinism."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sirst_synth import demo
from sirst_synth.demo import make_demo_dataset
from sirst_synth.store import imageio
from sirst_synth.store.reader import open_dataset

N_IMAGES = 40


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "demo"
    summary = make_demo_dataset(root, n_images=N_IMAGES, seed=0)
    assert summary["images"] == N_IMAGES
    return root


def _ids(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "images").glob("*.png"))


def _components(mask: np.ndarray) -> tuple[int, np.ndarray]:
    """Number of 8-connected targets and their label image (docs/method.md section 1)."""
    n, labels = cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)
    return n - 1, labels


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_layout_and_counts(out: Path) -> None:
    ids = _ids(out)
    assert ids == [f"demo_{i:04d}" for i in range(1, N_IMAGES + 1)]
    assert sorted(p.stem for p in (out / "masks").glob("*.png")) == ids
    train_text = (out / "50_50" / "train.txt").read_bytes()
    test_text = (out / "50_50" / "test.txt").read_bytes()
    assert b"\r" not in train_text + test_text and train_text.endswith(b"\n")
    train, test = train_text.decode().split(), test_text.decode().split()
    assert len(train) == len(test) == N_IMAGES // 2
    assert not set(train) & set(test)
    assert sorted(train + test) == ids
    assert sorted(p.name for p in out.iterdir()) == ["50_50", "images", "masks"]


def test_images_and_masks_are_8bit_gray_of_equal_size(out: Path) -> None:
    from PIL import Image

    for id_ in _ids(out):
        with Image.open(out / "images" / f"{id_}.png") as image:
            image_mode, image_size = image.mode, image.size
        with Image.open(out / "masks" / f"{id_}.png") as mask:
            mask_mode, mask_size = mask.mode, mask.size
        assert image_mode == mask_mode == "L"
        assert image_size == mask_size == (256, 256)


def test_masks_are_exactly_0_and_255(out: Path) -> None:
    for id_ in _ids(out):
        mask = imageio.read_mask(out / "masks" / f"{id_}.png")
        assert set(np.unique(mask).tolist()) == {0, 255}


def test_one_to_four_small_targets_per_image(out: Path) -> None:
    total = 0
    for id_ in _ids(out):
        mask = imageio.read_mask(out / "masks" / f"{id_}.png")
        n, labels = _components(mask)
        assert 1 <= n <= 4, id_
        total += n
        for label in range(1, n + 1):
            rows, cols = np.nonzero(labels == label)
            assert np.ptp(rows) + 1 <= 7 and np.ptp(cols) + 1 <= 7, id_
    assert 40 <= total <= 4 * N_IMAGES


def test_summary_counts_targets(tmp_path: Path) -> None:
    summary = make_demo_dataset(tmp_path / "d", n_images=5, seed=2)
    masks = [imageio.read_mask(p) for p in sorted((tmp_path / "d" / "masks").glob("*.png"))]
    assert summary == {
        "images": 5, "train": 3, "test": 2, "targets": sum(_components(m)[0] for m in masks)
    }


def test_targets_brighter_than_their_surroundings(out: Path) -> None:
    ring_kernel = np.ones((7, 7), np.uint8)
    for id_ in _ids(out):
        image = imageio.read_image(out / "images" / f"{id_}.png").astype(np.float32)
        mask = imageio.read_mask(out / "masks" / f"{id_}.png")
        n, labels = _components(mask)
        for label in range(1, n + 1):
            target = (labels == label).astype(np.uint8)
            ring = (cv2.dilate(target, ring_kernel) > 0) & (mask == 0)
            assert image[target > 0].mean() > image[ring].mean() + 5, (id_, label)


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    make_demo_dataset(tmp_path / "a", n_images=6, seed=3)
    make_demo_dataset(tmp_path / "b", n_images=6, seed=3)
    make_demo_dataset(tmp_path / "c", n_images=6, seed=4)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.startswith("images"))


def test_image_depends_on_seed_and_index_only(out: Path, tmp_path: Path) -> None:
    make_demo_dataset(tmp_path / "small", n_images=3, seed=0)
    for id_ in _ids(tmp_path / "small"):
        for sub in ("images", "masks"):
            name = f"{sub}/{id_}.png"
            assert (tmp_path / "small" / name).read_bytes() == (out / name).read_bytes()


def test_readable_by_open_dataset(out: Path) -> None:
    ds = open_dataset(out, "50_50")
    assert len(ds.ids("train")) == len(ds.ids("test")) == N_IMAGES // 2
    for id_ in ds.ids("train")[:3] + ds.ids("test")[:3]:
        gray, mask = ds.read_gray(id_), ds.read_mask(id_)
        assert gray.shape == mask.shape == (256, 256)


def test_train_images_have_flat_noise_prone_regions(out: Path) -> None:
    """docs/method.md section 2 with its defaults: g = 8 grid, 0 < var < 50, no target pixel."""
    ds = open_dataset(out, "50_50")
    g, flat_per_image = 8, []
    for id_ in ds.ids("train"):
        gray, mask = ds.read_gray(id_), ds.read_mask(id_)
        rh, rw = gray.shape[0] // g, gray.shape[1] // g
        flat = 0
        for r in range(g):
            for c in range(g):
                region = np.s_[r * rh : (r + 1) * rh, c * rw : (c + 1) * rw]
                var = float(gray[region].var())
                flat += 0 < var < 50 and not mask[region].any()
        flat_per_image.append(flat)
    assert sum(flat_per_image) > 0
    assert sum(f > 0 for f in flat_per_image) >= len(flat_per_image) // 2


def test_custom_size(tmp_path: Path) -> None:
    make_demo_dataset(tmp_path / "d", n_images=4, size=(64, 96), seed=1)
    for id_ in _ids(tmp_path / "d"):
        image = imageio.read_image(tmp_path / "d" / "images" / f"{id_}.png")
        mask = imageio.read_mask(tmp_path / "d" / "masks" / f"{id_}.png")
        assert image.shape == mask.shape == (64, 96)
        assert 1 <= _components(mask)[0] <= 4


def test_split_lists_are_written_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[Path] = []
    real_write = imageio.write_atomic

    def spy(path: Path, data: bytes) -> None:
        written.append(Path(path))
        real_write(path, data)

    monkeypatch.setattr(demo.imageio, "write_atomic", spy)
    make_demo_dataset(tmp_path / "d", n_images=4)
    assert [p.parent.name for p in written[-2:]] == ["50_50", "50_50"]
    assert all(p.parent.name in ("images", "masks") for p in written[:-2])


def test_empty_existing_folder_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    assert make_demo_dataset(tmp_path / "d", n_images=2)["images"] == 2


def test_refuses_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        make_demo_dataset(tmp_path / "d")
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["keep.txt"]


def test_refuses_a_file_as_folder(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        make_demo_dataset(tmp_path / "f")


@pytest.mark.parametrize("n_images", [1, 0, -3])
def test_refuses_fewer_than_two_images(tmp_path: Path, n_images: int) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        make_demo_dataset(tmp_path / "d", n_images=n_images)
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("size", [(16, 256), (256, 8)])
def test_refuses_tiny_size(tmp_path: Path, size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="size"):
        make_demo_dataset(tmp_path / "d", size=size)
