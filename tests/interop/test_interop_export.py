"""``export DIR --to FORMAT``: each trainer's own loading logic, re-written here from its public
repository, runs on the exported demo data; boxes and points equal the masks' components."""
from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from sirst_synth.progress import silent
from sirst_synth.run.scan import scan
from sirst_synth.store.fingerprint import img_norm_cfg, split_fingerprint
from sirst_synth.store.reader import open_dataset

from conftest import run_cli, tree_digest
from support import centroids, gray, ids, read


def _export(src: Path, fmt: str, out: Path, *extra: str) -> Path:
    before = tree_digest(src)
    run_cli("export", src, "--to", fmt, "-o", out, *extra)
    assert tree_digest(src) == before, "export changed its source"
    return out


def _stats(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of the 8-connected components of mask > 0, sorted."""
    n, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    return sorted(tuple(int(v) for v in stats[i, :4]) for i in range(1, n))


def _truth(src: Path, id_: str) -> np.ndarray:
    return read(src / "masks" / f"{id_}.png")


# -- segmentation trainers' loaders ---------------------------------------------------------------

def dnanet_load(root: str, dataset: str, split_method: str) -> tuple[list[str], list[str]]:
    """DNANet ``load_dataset``: readline, ``line.split('\\n')[0]``."""
    out = []
    for name in ("train.txt", "test.txt"):
        names = []
        with open(root + "/" + dataset + "/" + split_method + "/" + name) as f:
            line = f.readline()
            while line:
                names.append(line.split("\n")[0])
                line = f.readline()
        out.append(names)
    return out[0], out[1]


def dnanet_item(dataset_dir: str, img_id: str) -> tuple[np.ndarray, np.ndarray]:
    """DNANet ``TrainSetLoader``: ``.png``, image ``convert('RGB')``, mask ``/ 255``."""
    img = Image.open(dataset_dir + "/images/" + img_id + ".png").convert("RGB")
    mask = Image.open(dataset_dir + "/masks/" + img_id + ".png")
    return np.array(img), np.expand_dims(np.array(mask), axis=0).astype("float32") / 255.0


def test_dnanet_loader(demo, tmp_path):
    out = _export(demo, "dnanet", tmp_path / "out", "--name", "SIRST-5K")
    train, test = dnanet_load(str(out), "SIRST-5K", "50_50")
    assert train == ids(demo, "50_50", "train") and test == ids(demo, "50_50", "test")
    for id_ in train + test:
        img, mask = dnanet_item(str(out / "SIRST-5K"), id_)
        assert img.ndim == 3 and img.shape[2] == 3 and mask.shape[0] == 1
        assert set(np.unique(mask)) <= {0.0, 1.0}
        assert np.array_equal(mask[0] == 1.0, _truth(demo, id_) > 0)


def basicirstd_item(dataset_dir: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """BasicIRSTD ``TrainSetLoader.__getitem__`` (png, then bmp, then jpg; ``convert('I')``)."""
    try:
        img = Image.open((dataset_dir + "/images/" + name + ".png").replace("//", "/")).convert("I")
        mask = Image.open((dataset_dir + "/masks/" + name + ".png").replace("//", "/"))
    except Exception:
        img = Image.open((dataset_dir + "/images/" + name + ".bmp").replace("//", "/")).convert("I")
        mask = Image.open((dataset_dir + "/masks/" + name + ".bmp").replace("//", "/"))
    img = np.array(img, dtype=np.float32)
    mask = np.array(mask, dtype=np.float32) / 255.0
    if len(mask.shape) > 3:  # as in BasicIRSTD: a 3-D mask is never reduced
        mask = mask[:, :, 0]
    return img, mask


def test_basicirstd_loader_and_norm_cfg(demo, tmp_path):
    out = _export(demo, "basicirstd", tmp_path / "datasets", "--name", "SIRST-5K")
    dataset_dir = str(out) + "/" + "SIRST-5K"
    with open(dataset_dir + "/img_idx/train_" + "SIRST-5K" + ".txt") as f:
        train = f.read().splitlines()
    with open(dataset_dir + "/img_idx/test_" + "SIRST-5K" + ".txt") as f:  # TestSetLoader: no fallback
        test = f.read().splitlines()
    assert train == ids(demo, "50_50", "train") and test == ids(demo, "50_50", "test")
    for id_ in train + test:
        img, mask = basicirstd_item(dataset_dir, id_)
        assert img.ndim == 2 and mask.ndim == 2 and set(np.unique(mask)) <= {0.0, 1.0}
        assert np.array_equal(mask == 1.0, _truth(demo, id_) > 0)
    pixels = np.concatenate([gray(read(demo / "images" / f"{i}.png")).ravel() for i in train])
    record = json.loads((out / "SIRST-5K" / "sirst-synth-export.json").read_text())
    assert record["img_norm_cfg"]["mean"] == pytest.approx(pixels.mean(), abs=1e-5)
    assert record["img_norm_cfg"]["std"] == pytest.approx(pixels.std(), abs=1e-5)


def test_mshnet_loader(demo, tmp_path):
    out = _export(demo, "mshnet", tmp_path / "out")
    for txtfile, part in (("trainval.txt", "train"), ("test.txt", "test")):
        with open(os.path.join(out, txtfile)) as f:
            names = [line.strip() for line in f.readlines()]
        assert names == ids(demo, "50_50", part)
        for name in names:
            img = Image.open(os.path.join(out, "images", name + ".png")).convert("RGB")
            mask = np.array(Image.open(os.path.join(out, "masks", name + ".png")), np.float32) / 255.0  # ToTensor
            assert img.size == (mask.shape[1], mask.shape[0]) and set(np.unique(mask)) <= {0.0, 1.0}


def test_serankdet_folders_loader(demo, tmp_path):
    out = _export(demo, "folders", tmp_path / "out")
    for folder, part in (("trainval", "train"), ("test", "test")):
        names = os.listdir(os.path.join(out, folder, "images"))
        assert sorted(names) == sorted(f"{i}.png" for i in ids(demo, "50_50", part))
        for name in names:
            img = Image.open(os.path.join(out, folder, "images", name)).convert("RGB")
            mask = np.array(Image.open(os.path.join(out, folder, "masks", name)).convert("L"))
            assert img.size == mask.shape[::-1] and np.array_equal(mask > 0, _truth(demo, name[:-4]) > 0)


# -- box formats ---------------------------------------------------------------------------------

def test_yolo_boxes_are_the_components(demo, tmp_path):
    out = _export(demo, "yolo", tmp_path / "out")
    lines = [l for l in (out / "data.yaml").read_text().splitlines() if l and not l.startswith("#")]
    assert lines == ["train: images/train", "val: images/val", "names:", "  0: target"]  # no path: key
    for folder, part in (("train", "train"), ("val", "test")):
        for id_ in ids(demo, "50_50", part):
            assert (out / "images" / folder / f"{id_}.png").is_file()
            truth = _truth(demo, id_)
            h, w = truth.shape
            boxes = []
            for line in (out / "labels" / folder / f"{id_}.txt").read_text().splitlines():
                cls, cx, cy, bw, bh = line.split()
                assert cls == "0"
                cx, cy, bw, bh = float(cx) * w, float(cy) * h, float(bw) * w, float(bh) * h
                boxes.append((round(cx - bw / 2), round(cy - bh / 2), round(bw), round(bh)))
            assert sorted(boxes) == _stats(truth)


def test_voc_boxes_are_the_components(demo, tmp_path):
    out = _export(demo, "voc", tmp_path / "out")
    listed = {}
    for name, part in (("trainval", "train"), ("test", "test")):
        listed[part] = (out / "ImageSets" / "Main" / f"{name}.txt").read_text().split()
        assert listed[part] == ids(demo, "50_50", part)
    for id_ in listed["train"] + listed["test"]:
        root = ET.parse(out / "Annotations" / f"{id_}.xml").getroot()
        assert (out / "JPEGImages" / root.findtext("filename")).is_file()
        truth = _truth(demo, id_)
        assert (int(root.findtext("size/width")), int(root.findtext("size/height"))) == truth.shape[::-1]
        boxes = [tuple(int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
                 for o in root.iter("object")]
        assert sorted((x0 - 1, y0 - 1, x1 - x0 + 1, y1 - y0 + 1) for x0, y0, x1, y1 in boxes) == _stats(truth)


def test_coco_boxes_are_the_components(demo, tmp_path):
    out = _export(demo, "coco", tmp_path / "out")
    for part in ("train", "test"):
        data = json.loads((out / "annotations" / f"instances_{part}.json").read_text())
        assert [Path(im["file_name"]).stem for im in data["images"]] == ids(demo, "50_50", part)
        assert data["categories"] == [{"id": 1, "name": "target", "supercategory": "target"}]
        assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"])
        for im in data["images"]:
            assert (out / "images" / im["file_name"]).is_file()
            truth = _truth(demo, Path(im["file_name"]).stem)
            boxes = [tuple(a["bbox"]) for a in data["annotations"] if a["image_id"] == im["id"]]
            assert sorted(boxes) == _stats(truth) and (im["height"], im["width"]) == truth.shape


# -- points ------------------------------------------------------------------------------------

def test_points_are_the_centroids_and_lesps_reads_them(demo, tmp_path):
    out = _export(demo, "points", tmp_path / "out", "--name", "SIRST-5K")
    dataset_dir = str(out / "SIRST-5K")  # LESPS: --dataset_dir is the dataset folder itself
    with open(dataset_dir + "/img_idx/train_" + "SIRST-5K" + ".txt") as f:
        train_list = f.read().splitlines()
    doc = json.loads((out / "SIRST-5K" / "points.json").read_text())
    by_id = {r["id"]: r for r in doc["images"]}
    assert [r["id"] for r in doc["images"]] == ids(demo, "50_50", "train") + ids(demo, "50_50", "test")
    for id_ in train_list:
        Image.open(dataset_dir + "/images/" + id_ + ".png").convert("I")
        label = np.array(Image.open(dataset_dir + "/masks_centroid/" + id_ + ".png"), dtype=np.float32) / 255.0
        expected = centroids(_truth(demo, id_))
        assert sorted(zip(*np.nonzero(label))) == sorted(expected)
        assert sorted((y, x) for x, y in by_id[id_]["points"]) == sorted(expected)
    # PAL: ./dataset/<name>/origin/{img,masks_centroid} for training, val/{img,mask} for testing
    origin, val = out / "SIRST-5K" / "origin", out / "SIRST-5K" / "val"
    assert sorted(os.listdir(origin / "img")) == sorted(f"{i}.png" for i in train_list)
    assert sorted(os.listdir(origin / "masks_centroid")) == sorted(os.listdir(origin / "img"))
    assert sorted(os.listdir(val / "mask")) == sorted(f"{i}.png" for i in ids(demo, "50_50", "test"))
    for name in os.listdir(val / "img"):
        assert np.array_equal(read(val / "mask" / name) > 0, _truth(demo, name[:-4]) > 0)
    rows = (out / "SIRST-5K" / "points.csv").read_text().splitlines()
    assert rows[0] == "id,split,target,x,y,cx,cy,area" and len(rows) - 1 == sum(len(r["points"]) for r in doc["images"])


# -- links, copies, masks that need rewriting, fingerprints ---------------------------------------------

def test_files_are_hard_links_unless_copy(demo, tmp_path):
    linked = _export(demo, "mshnet", tmp_path / "linked")
    copied = _export(demo, "mshnet", tmp_path / "copied", "--copy")
    for p in (demo / "images").iterdir():
        assert os.stat(linked / "images" / p.name).st_ino == os.stat(p).st_ino
        assert os.stat(copied / "images" / p.name).st_ino != os.stat(p).st_ino
        assert (copied / "images" / p.name).read_bytes() == p.read_bytes()
    a = json.loads((linked / "sirst-synth-export.json").read_text())
    b = json.loads((copied / "sirst-synth-export.json").read_text())
    assert a["files"]["copied"] == 0 and b["files"]["linked"] == 0 and a["fingerprint"] == b["fingerprint"]


def test_export_is_deterministic(demo, tmp_path):
    _export(demo, "coco", tmp_path / "a")
    _export(demo, "coco", tmp_path / "b")
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")


def test_soft_or_rgb_masks_are_written_as_gray_0_255(demo, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(demo, src)
    first = ids(src, "50_50", "train")[0]
    mask = read(src / "masks" / f"{first}.png")
    Image.fromarray(np.stack([np.where(mask > 0, 128, 0).astype(np.uint8)] * 3, axis=2), "RGB").save(
        src / "masks" / f"{first}.png")
    out = _export(src, "basicirstd", tmp_path / "out", "--name", "X")
    written = Image.open(out / "X" / "masks" / f"{first}.png")
    assert written.mode == "L" and np.array_equal(np.array(written), np.where(mask > 0, 255, 0))
    assert json.loads((out / "X" / "sirst-synth-export.json").read_text())["files"]["masks_rewritten"] == [first]


def test_split_fingerprint_is_the_scan_fingerprint(demo):
    ds = open_dataset(demo)
    assert split_fingerprint(ds) == scan(ds, ("train", "test"), 1, silent).fingerprint()
    assert img_norm_cfg(ds)["images"] == len(ids(demo, "50_50", "train"))


def test_export_of_a_build_uses_its_recorded_split(demo, tmp_path):
    built = tmp_path / "built"
    run_cli("build", "--src", demo, "--total", "60", "-j", "1", "-o", built)
    out = _export(built, "basicirstd", tmp_path / "out")
    record = json.loads((built / "sirst-synth.json").read_text())
    listed = (out / "built" / "img_idx" / "train_built.txt").read_text().splitlines()
    assert len(listed) == 60 and listed == ids(built, "50_50", "train")
    assert json.loads((out / "built" / "sirst-synth-export.json").read_text())["split"] == "50_50"
    assert record["source"]["fingerprint"] == split_fingerprint(open_dataset(demo))


def test_export_refuses_bad_outputs(demo, tmp_path):
    run_cli("export", demo, "--to", "yolo", "-o", demo / "yolo", expect=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "x").write_text("x")
    for force in ((), ("--force",)):
        result = run_cli("export", demo, "--to", "yolo", "-o", out, *force, expect=1)
        assert result.output == (f"error: {out}: holds x, not written by sirst-synth; choose another -o "
                                 "(--force replaces only what sirst-synth wrote)\n")
    (out / "x").unlink()
    run_cli("export", demo, "--to", "yolo", "-o", out)
    (out / "x").write_text("x")
    assert "use --force" in run_cli("export", demo, "--to", "yolo", "-o", out, expect=1).output
    run_cli("export", demo, "--to", "yolo", "-o", out, "--force")
    assert (out / "x").read_text() == "x" and (out / "data.yaml").is_file()
    run_cli("export", demo, "--to", "basicirstd", "-o", tmp_path / "n", "--name", "../x", expect=1)
    run_cli("export", tmp_path / "missing", "--to", "coco", "-o", tmp_path / "m", expect=1)
    assert not (tmp_path / "n").exists() and not (tmp_path / "m").exists()


def test_known_benchmark_fingerprints():
    from sirst_synth.store.fingerprint import fingerprint_line, per_image_norm_cfg

    from conftest import NUDT, SIRST, need

    nudt = open_dataset(need(NUDT))
    assert fingerprint_line(nudt).split()[0] == "07397e9088512bc28ff0d2c14115e97ed0f009eafa043b7c483229763f02f66b"
    assert fingerprint_line(nudt).endswith(": NUDT-SIRST 50_50 (663 train / 664 test)")
    sirst = open_dataset(need(SIRST), "idx_427")
    assert split_fingerprint(sirst) == "51a55aefa91f57ec2efd67535af71f7638d98b1c616d2daf9c4387f76d3292b6"
    # BasicIRSTD hard-codes NUDT-SIRST's statistics as mean 107.809, std 33.023 (per-image averages)
    cfg = per_image_norm_cfg(nudt)
    assert cfg["mean"] == pytest.approx(107.809, abs=0.01) and cfg["std"] == pytest.approx(33.023, abs=0.01)


def test_python_entry_points(demo, tmp_path):
    from sirst_synth.interop.exporters import ExportError, export_dataset
    from sirst_synth.interop.writer import import_dataset

    record = export_dataset(open_dataset(demo), "mshnet", tmp_path / "m")
    assert record["train"] == len(ids(demo, "50_50", "train")) and (tmp_path / "m" / "trainval.txt").is_file()
    with pytest.raises(ExportError):
        export_dataset(open_dataset(demo), "nope", tmp_path / "x")
    report = import_dataset("dnanet", demo, tmp_path / "d")
    assert report.images == len(ids(demo, "50_50", "train")) + len(ids(demo, "50_50", "test"))
