"""``export DIR --to FORMAT``: write a dataset in the layout another trainer reads, one function
per FORMAT. Images (and masks already stored as 0/255 gray PNG) are hard links to the dataset's
files where the file system allows, so an export costs no space; ``copy`` forces copies.

``dnanet``, ``basicirstd`` and ``points`` write one dataset folder, ``OUT/<name>/``, beside whatever
else ``OUT`` holds (a trainer's ``datasets/`` with the benchmarks it ships): that folder is the
export's output, its record ``sirst-synth-export.json`` is inside it, and ``--force`` replaces
only an earlier export of the same name (:mod:`sirst_synth.run.owned`). The other formats write
``OUT`` itself. The record lists every file the export wrote (``written``).

A mask that is not an 8-bit gray 0/255 PNG (an RGB mask, a soft mask) is written as one
(targets: ``mask > 0``), because BasicIRSTD, MSHNet and LESPS divide masks by 255 and
BasicIRSTD never reduces a 3-D mask to 2-D. Boxes and points come from :mod:`.boxes`.

Before writing, every file is hashed once and only what is still unknown is decoded, in workers
(:mod:`.filescan`): each distinct mask once, and for the image statistics each image once but a
build's negatives, whose statistics are their group's first image's.
"""
from __future__ import annotations

import csv
import io
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sirst_synth.errors import ExportError, SirstSynthError
from sirst_synth.interop.boxes import Component, coco_box, components, voc_box, yolo_line
from sirst_synth.interop.filescan import Derived, FileScan, scan_files
from sirst_synth.interop.staging import id_list_text, link_or_copy, write_text
from sirst_synth.progress import Progress, silent
from sirst_synth.run.owned import files_under
from sirst_synth.store import imageio
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.fingerprint import fingerprint_of, hashed_line, img_norm_cfg, per_image_norm_cfg, split_fingerprint
from sirst_synth.store.layout import (
    DNANET_RESULT_FOLDERS,
    EXPORT_RECORD_NAME,
    IMAGES,
    INFO_NAME,
    MANIFEST_NAME,
    MASKS,
    SUFFIX,
    flat_names,
    id_problem,
)
from sirst_synth.store.record import read_record, recorded_split

RECORD = EXPORT_RECORD_NAME
#: the formats that write one dataset folder ``OUT/<name>/`` (the others write ``OUT``)
NAMED = ("basicirstd", "dnanet", "points")
#: the placeholder of each folder DNANet's scripts write into (DNANET_RESULT_FOLDERS)
DNANET_RESULT_TEXT = {
    "value_result": "DNANet's test.py writes its results here: <st_model>_PD_FA_255.mat, "
                    "<st_model>_best_IoU.log, <st_model>_best_other_metric.log.\n",
    "visulization_result": "DNANet's visulization.py and test_and_visulization.py write their figures here "
                           "(<st_model>_visulization_result/, <st_model>_visulization_fuse/).\n",
}
PLACEHOLDER = "README.txt"
#: the formats that link or rewrite each mask (the others read masks for boxes or points only)
MASK_FORMATS = ("basicirstd", "dnanet", "folders", "mshnet", "points")
#: the formats that record the image statistics
NORM_FORMATS = ("basicirstd", "points")
#: the one class of every box format
CLASS_NAME = "target"
VOC_CLASS_NAME = "Target"  # SIRST's own VOC files name the class "Target"


@dataclass
class Exporter:
    """Writes into the (temporary) output folder and counts what it did."""

    ds: Dataset
    out: Path
    copy: bool = False
    #: workers of the file scan (:meth:`scan`), and where progress is shown (:mod:`sirst_synth.progress`)
    n_jobs: int = 1
    progress: Progress = silent
    linked: int = 0
    copied: int = 0
    rewritten_masks: list[str] = field(default_factory=list)
    _masks: dict[str, np.ndarray] = field(default_factory=dict)
    #: flat id -> the dataset's id, for ids with folder parts
    _source: dict[str, str] = field(default_factory=dict)
    #: what :meth:`scan` found (hashes, mask verdicts, image statistics)
    _files: FileScan | None = None
    #: the folders :meth:`place` made
    _folders: set[str] = field(default_factory=set)

    def scan(self, check_masks: bool, stats: bool) -> FileScan:
        """Hash every listed file once; decode each distinct mask (``check_masks``) and the images
        whose statistics are needed (``stats``), a build's negatives left out (:mod:`.filescan`)."""
        ids = self._ids()
        every = [i for part in ("train", "test") for i in ids[part]]
        images, masks = [self._file(i, IMAGES) for i in every], [self._file(i, MASKS) for i in every]
        same_as, mask_from = self._derived()
        self._files = scan_files(images, masks, check_masks, stats, self.n_jobs, self.progress, same_as, mask_from)
        return self._files

    def _derived(self) -> tuple[Derived, Derived]:
        """What a build's ``manifest.csv`` says its files derive from: each negative's image from its
        group's first image (the same pixels, one window turned), and each generated image's mask
        from its original's mask (the same values, written as 8-bit gray), with the recorded hashes."""
        try:
            rows = self.ds.manifest() or {}
        except (SirstSynthError, OSError, ValueError):
            return {}, {}
        originals = {row.get("source_id"): row for row in rows.values() if row.get("kind") == "original"}
        same_as: Derived = {}
        mask_from: Derived = {}
        for id_, row in rows.items():
            group = rows.get(row.get("group") or "")
            if row.get("kind") == "negative" and group is not None and group.get("kind") != "negative":
                same_as[self._file(id_, IMAGES)] = (row["sha256_image"], self._file(group["id"], IMAGES),
                                                    group["sha256_image"])
            original = originals.get(row.get("source_id"))
            if row.get("kind") in ("displaced", "negative") and original is not None:
                mask_from[self._file(id_, MASKS)] = (row["sha256_mask"], self._file(original["id"], MASKS),
                                                     original["sha256_mask"])
        return same_as, mask_from

    def _file(self, id_: str, folder: str) -> str:
        """The path of the dataset's image (``folder`` images) or mask of its id ``id_``, as a string
        (the key of the scan's tables; no path object per file)."""
        return f"{self._root}/{folder}/{id_}{SUFFIX}"

    @property
    def _root(self) -> str:
        return str(self.ds.root)

    def fingerprint(self) -> str:
        """The split fingerprint (:func:`~sirst_synth.store.fingerprint.split_fingerprint`), from the
        scan's hashes when it ran."""
        if self._files is None:
            return split_fingerprint(self.ds)
        sha = self._files.sha
        return fingerprint_of(hashed_line(part, i, sha[self._file(i, IMAGES)], sha[self._file(i, MASKS)])
                              for part in sorted(("train", "test")) for i in self.ds.ids(part))

    def norm_cfgs(self) -> tuple[dict, dict]:
        """The pooled train statistics and BasicIRSTD's per-image ones over train + test."""
        if self._files is None or not self._files.stats:
            return img_norm_cfg(self.ds, "train"), per_image_norm_cfg(self.ds)
        ids = self._ids()
        return self._files.norm_cfgs([self._file(i, IMAGES) for i in ids["train"]],
                                     [self._file(i, IMAGES) for i in ids["test"]])

    def each(self, ids: Iterable[str], label: str) -> Iterator[str]:
        """``ids``, each reported to :attr:`progress` once it is done."""
        ids = list(ids)
        with self.progress(label, len(ids)) as bar:
            for id_ in ids:
                yield id_
                bar.update(1)

    def parts(self) -> dict[str, list[str]]:
        """Flat ids per part, in list order (checked: safe ids, one flat name each, no id in both
        parts). An id with folder parts (``44/1(814)``) is written under its flat name (``44__1(814)``)."""
        ids = self._ids()
        flat = flat_names([i for part in ids.values() for i in part])
        self._source = {f: i for i, f in flat.items()}
        return {part: [flat[i] for i in part_ids] for part, part_ids in ids.items()}

    def path(self, id_: str, folder: str) -> Path:
        """The dataset's image (``folder`` images) or mask file of the flat id ``id_``."""
        src = self._source.get(id_, id_)
        return self.ds.image_path(src) if folder == "images" else self.ds.mask_path(src)

    def _ids(self) -> dict[str, list[str]]:
        ids = {part: self.ds.ids(part) for part in ("train", "test")}
        for part, part_ids in ids.items():
            for id_ in part_ids:
                bad = id_problem(id_)
                if bad:
                    raise ExportError(f"{self.ds.split_file(part)}: id {id_!r}: {bad}")
        both = sorted(set(ids["train"]) & set(ids["test"]))
        if both:
            raise ExportError(f"{self.ds.split_file('train')}: id {both[0]!r} is also in the test list (test leakage)")
        return ids

    def place(self, src: str | Path, dst: str | Path) -> None:
        """Link (or copy) one dataset file to ``dst``."""
        folder = os.path.dirname(dst)
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        try:
            linked = link_or_copy(src, dst, self.copy)
        except (FileNotFoundError, IsADirectoryError):
            raise ExportError(f"{src}: file not found") from None
        if linked:
            self.linked += 1
        else:
            self.copied += 1

    def image(self, id_: str, dst: str | Path) -> None:
        self.place(self._file(self._source.get(id_, id_), IMAGES), dst)

    def mask_array(self, id_: str) -> np.ndarray:
        """The (H, W) mask of ``id_``."""
        if id_ not in self._masks:  # keep the last mask only: exports read one id at a time
            self._masks.clear()
            self._masks[id_] = imageio.read_mask(self.path(id_, "masks"))
        return self._masks[id_]

    def mask(self, id_: str, dst: str | Path) -> None:
        """Link a 0/255 gray PNG mask; write any other mask as one (targets: > 0)."""
        src = self._file(self._source.get(id_, id_), MASKS)
        found = self._files
        sha = found.sha.get(src) if found is not None else None
        if sha is not None and found is not None and sha in found.binary_mask:
            binary = found.binary_mask[sha]
        else:
            data = imageio.read_bytes(src)
            with Image.open(io.BytesIO(data)) as im:
                gray_png = im.format == "PNG" and im.mode == "L"
            binary = gray_png and bool(np.isin(self.mask_array(id_), (0, 255)).all())
        if binary:
            self.place(src, dst)
            return
        mask = self.mask_array(id_)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        Path(dst).write_bytes(imageio.encode_png(np.where(mask > 0, 255, 0).astype(np.uint8)))
        self.rewritten_masks.append(id_)

    def targets(self, id_: str) -> list[Component]:
        return components(self.mask_array(id_))

    def size(self, id_: str) -> tuple[int, int, int]:
        """(width, height, channels) of the image, from its header."""
        with Image.open(self.path(id_, "images")) as im:
            channels = 1 if im.mode in ("1", "L", "LA", "I", "I;16", "F") else 3
            return im.width, im.height, channels


# -- layouts of segmentation trainers ------------------------------------------------------------

def _flat_layout(ex: Exporter, root: Path, ids: dict[str, list[str]]) -> None:
    """``root/images/<id>.png`` and ``root/masks/<id>.png`` for every id."""
    top = os.fspath(root)
    for id_ in ex.each(ids["train"] + ids["test"], "linking"):
        ex.image(id_, f"{top}/{IMAGES}/{id_}{SUFFIX}")
        ex.mask(id_, f"{top}/{MASKS}/{id_}{SUFFIX}")


def _carry_build_record(ex: Exporter) -> bool:
    """Link a build's ``manifest.csv`` and ``sirst-synth.json`` into the export when it exports the
    build's own split lists (so ``verify`` checks the exported folder); True when it did."""
    try:
        split = recorded_split(read_record(ex.ds.root))
    except SirstSynthError:
        return False
    if (split != ex.ds.split or (ex.ds.train_list, ex.ds.test_list) != ("train.txt", "test.txt")
            or not (ex.ds.root / MANIFEST_NAME).is_file()):
        return False
    for name in (MANIFEST_NAME, INFO_NAME):
        link_or_copy(ex.ds.root / name, ex.out / name, ex.copy)
    return True


def export_dnanet(ex: Exporter, name: str) -> dict:
    """DNANet: ``OUT/<name>/images``, ``masks``, ``<split>/train.txt`` and ``test.txt``, the result
    folders its scripts write into (``value_result/``, ``visulization_result/``), and a build's
    manifest and record."""
    ids = ex.parts()
    _flat_layout(ex, ex.out, ids)
    write_text(ex.out / ex.ds.split / "train.txt", id_list_text(ids["train"]))
    write_text(ex.out / ex.ds.split / "test.txt", id_list_text(ids["test"]))
    for folder in DNANET_RESULT_FOLDERS:
        write_text(ex.out / folder / PLACEHOLDER, DNANET_RESULT_TEXT[folder])
    return {"name": name, "split": ex.ds.split, "build_record": _carry_build_record(ex)}


def export_basicirstd(ex: Exporter, name: str) -> dict:
    """BasicIRSTD and SCTransNet: ``OUT/<name>/img_idx/train_<name>.txt``, ``test_<name>.txt``,
    ``images/``, ``masks/``."""
    ids = ex.parts()
    _flat_layout(ex, ex.out, ids)
    write_text(ex.out / "img_idx" / f"train_{name}.txt", id_list_text(ids["train"]))
    write_text(ex.out / "img_idx" / f"test_{name}.txt", id_list_text(ids["test"]))
    pooled, per_image = ex.norm_cfgs()
    return {"name": name, "img_norm_cfg": pooled, "img_norm_cfg_per_image_train_test": per_image}


def export_mshnet(ex: Exporter, name: str) -> dict:
    """MSHNet: ``OUT/trainval.txt``, ``OUT/test.txt``, ``images/``, ``masks/``."""
    ids = ex.parts()
    _flat_layout(ex, ex.out, ids)
    write_text(ex.out / "trainval.txt", id_list_text(ids["train"]))
    write_text(ex.out / "test.txt", id_list_text(ids["test"]))
    return {}


def export_folders(ex: Exporter, name: str) -> dict:
    """SeRankDet / mmseg folders: ``OUT/trainval/{images,masks}``, ``OUT/test/{images,masks}``."""
    ids = ex.parts()
    for part, folder in (("train", "trainval"), ("test", "test")):
        for id_ in ex.each(ids[part], f"linking {part}"):
            ex.image(id_, ex.out / folder / "images" / f"{id_}.png")
            ex.mask(id_, ex.out / folder / "masks" / f"{id_}.png")
    return {}


# -- box formats ------------------------------------------------------------------------------

def _voc_xml(id_: str, size: tuple[int, int, int], targets: list[Component]) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = f"{id_}.png"
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "sirst-synth export"
    el = ET.SubElement(root, "size")
    for tag, dim in zip(("width", "height", "depth"), size):
        ET.SubElement(el, tag).text = str(dim)
    ET.SubElement(root, "segmented").text = "0"
    for t in targets:
        obj = ET.SubElement(root, "object")
        for tag, value in (("name", VOC_CLASS_NAME), ("pose", "Unspecified"), ("truncated", "0"), ("difficult", "0")):
            ET.SubElement(obj, tag).text = value
        box = ET.SubElement(obj, "bndbox")
        for tag, coord in zip(("xmin", "ymin", "xmax", "ymax"), voc_box(t)):
            ET.SubElement(box, tag).text = str(coord)
    ET.indent(root, space="    ")
    return ET.tostring(root, encoding="unicode") + "\n"


def export_voc(ex: Exporter, name: str) -> dict:
    """Pascal VOC: ``Annotations/<id>.xml`` (1-based inclusive boxes), ``ImageSets/Main/{trainval,test}.txt``,
    images kept lossless as ``JPEGImages/<id>.png`` (the XML's ``filename`` names them)."""
    ids = ex.parts()
    for id_ in ids["train"] + ids["test"]:
        ex.image(id_, ex.out / "JPEGImages" / f"{id_}.png")
        write_text(ex.out / "Annotations" / f"{id_}.xml", _voc_xml(id_, ex.size(id_), ex.targets(id_)))
    write_text(ex.out / "ImageSets" / "Main" / "trainval.txt", id_list_text(ids["train"]))
    write_text(ex.out / "ImageSets" / "Main" / "test.txt", id_list_text(ids["test"]))
    return {"class": VOC_CLASS_NAME}


YOLO_YAML = """\
# written by sirst-synth export --to yolo; paths are relative to this file's folder
# (ultralytics uses the folder of data.yaml when 'path' is not set)
train: images/train
val: images/val
names:
  0: {name}
"""


def export_yolo(ex: Exporter, name: str) -> dict:
    """YOLO (ultralytics): ``images/{train,val}/<id>.png``, ``labels/{train,val}/<id>.txt`` with
    ``0 cx cy w h`` (normalised; an image without target gets an empty file), ``data.yaml``."""
    ids = ex.parts()
    for part, folder in (("train", "train"), ("test", "val")):
        for id_ in ids[part]:
            ex.image(id_, ex.out / "images" / folder / f"{id_}.png")
            w, h, _ = ex.size(id_)
            lines = "".join(yolo_line(t, w, h) + "\n" for t in ex.targets(id_))
            write_text(ex.out / "labels" / folder / f"{id_}.txt", lines)
    write_text(ex.out / "data.yaml", YOLO_YAML.format(name=CLASS_NAME))
    return {"class": CLASS_NAME}


def _coco(ex: Exporter, ids: list[str], description: str) -> dict:
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, id_ in enumerate(ids, start=1):
        w, h, _ = ex.size(id_)
        images.append({"id": image_id, "file_name": f"{id_}.png", "width": w, "height": h})
        for t in ex.targets(id_):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                                "bbox": coco_box(t), "area": t.area, "iscrowd": 0})
    return {"info": {"description": description}, "licenses": [], "images": images,
            "annotations": annotations, "categories": [{"id": 1, "name": CLASS_NAME, "supercategory": CLASS_NAME}]}


def export_coco(ex: Exporter, name: str) -> dict:
    """COCO: ``images/<id>.png`` and ``annotations/instances_{train,test}.json`` (boxes
    ``[x, y, w, h]`` of the mask's components, ``area`` = component pixels, one category)."""
    ids = ex.parts()
    for id_ in ids["train"] + ids["test"]:
        ex.image(id_, ex.out / "images" / f"{id_}.png")
    for part in ("train", "test"):
        data = _coco(ex, ids[part], f"{name} {part} split, exported by sirst-synth")
        write_text(ex.out / "annotations" / f"instances_{part}.json", json.dumps(data, indent=1) + "\n")
    return {"class": CLASS_NAME}


# -- points (PAL, LESPS) -----------------------------------------------------------------------

def _point_mask(shape: tuple[int, int], targets: list[Component]) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    for t in targets:
        out[t.row, t.col] = 255
    return out


def export_points(ex: Exporter, name: str) -> dict:
    """Point supervision (LESPS, PAL): the BasicIRSTD layout of ``OUT/<name>`` plus
    ``masks_centroid/<id>.png`` (255 at each target's rounded centroid), ``points.json`` and
    ``points.csv`` (x = column, y = row), and PAL's ``origin/`` and ``val/`` folders."""
    info = export_basicirstd(ex, name)
    ids = ex.parts()
    root = ex.out
    records, rows = [], []
    for part in ("train", "test"):
        for id_ in ids[part]:
            mask = ex.mask_array(id_)
            targets = ex.targets(id_)
            (root / "masks_centroid").mkdir(exist_ok=True)
            (root / "masks_centroid" / f"{id_}.png").write_bytes(imageio.encode_png(_point_mask(mask.shape, targets)))
            records.append({"id": id_, "split": part, "width": mask.shape[1], "height": mask.shape[0],
                            "points": [[t.col, t.row] for t in targets]})
            rows += [[id_, part, t.label, t.col, t.row, f"{t.cx:.4f}", f"{t.cy:.4f}", t.area] for t in targets]
    doc = {"coordinates": "x = column, y = row: 0-based pixel of each target's centroid, rounded half up",
           "images": records}
    write_text(root / "points.json", json.dumps(doc, indent=1) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "split", "target", "x", "y", "cx", "cy", "area"])
    writer.writerows(rows)
    write_text(root / "points.csv", buf.getvalue())
    _pal_layout(ex, root, ids)
    return {**info, "points": len(rows)}


def _pal_layout(ex: Exporter, root: Path, ids: dict[str, list[str]]) -> None:
    """PAL's folders beside LESPS's: ``origin/{img,mask,masks_centroid}`` (train) and
    ``val/{img,mask}`` (test), all links to the files above."""
    for part, folders in (("train", ("origin/img", "origin/mask", "origin/masks_centroid")),
                          ("test", ("val/img", "val/mask", None))):
        for id_ in ids[part]:
            sources = (root / "images", root / "masks", root / "masks_centroid")
            for folder, source in zip(folders, sources):
                if folder is not None:
                    (root / folder).mkdir(parents=True, exist_ok=True)
                    link_or_copy(source / f"{id_}.png", root / folder / f"{id_}.png", ex.copy)


EXPORTERS: dict[str, Callable[[Exporter, str], dict]] = {
    "basicirstd": export_basicirstd,
    "coco": export_coco,
    "dnanet": export_dnanet,
    "folders": export_folders,
    "mshnet": export_mshnet,
    "points": export_points,
    "voc": export_voc,
    "yolo": export_yolo,
}


def export_record(ex: Exporter, fmt: str, name: str, extra: dict) -> dict:
    """The ``sirst-synth-export.json`` of an export: what was exported from where, and how."""
    return {
        "format": fmt, "name": name, "source": str(ex.ds.root.resolve()), "split": ex.ds.split,
        "train": len(ex.ds.ids("train")), "test": len(ex.ds.ids("test")),
        "fingerprint": ex.fingerprint(),
        "files": {"linked": ex.linked, "copied": ex.copied, "masks_rewritten": sorted(ex.rewritten_masks)},
        **extra,
    }


def check_name(name: str) -> str:
    """A dataset name used in folder and file names (BasicIRSTD's ``<name>``)."""
    bad = id_problem(name)
    if bad or name.startswith(".") or "/" in name:
        raise ExportError(f"--name {name!r}: not a plain folder name")
    return name


def export_target(fmt: str, out: Path, name: str) -> Path:
    """The folder an export writes: ``out/<name>`` for the formats with a dataset folder (NAMED),
    else ``out``."""
    if fmt in NAMED and out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder")
    return out / check_name(name) if fmt in NAMED else out


def run_export(ds: Dataset, fmt: str, out_tmp: Path, name: str, copy: bool, n_jobs: int = 1,
               progress: Progress = silent) -> dict:
    """Write ``ds`` as ``fmt`` into ``out_tmp`` (what becomes :func:`export_target`); return the
    export record (also written there, with every file written listed in ``written``). ``n_jobs``
    workers hash and decode (:meth:`Exporter.scan`); ``progress``: where progress is shown."""
    ex = Exporter(ds, out_tmp, copy, n_jobs=n_jobs, progress=progress)
    ex.scan(check_masks=fmt in MASK_FORMATS, stats=fmt in NORM_FORMATS)
    extra = EXPORTERS[fmt](ex, check_name(name))
    record = export_record(ex, fmt, name, extra)
    record["written"] = [rel for rel in files_under(out_tmp) if rel != RECORD]
    write_text(out_tmp / RECORD, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def export_dataset(ds: Dataset, fmt: str, out: Path, name: str | None = None, copy: bool = False,
                   force: bool = False, n_jobs: int = 1, progress: Progress = silent) -> dict:
    """Export ``ds`` as ``fmt`` into ``out`` (its dataset folder ``out/<name>`` for NAMED formats;
    checked, written in a temporary folder, put in place at the end); the entry point for callers
    other than the CLI (``build --layout``)."""
    from sirst_synth.interop.staging import check_output, staged_folder

    if fmt not in EXPORTERS:
        raise ExportError(f"unknown export format {fmt!r}; one of {', '.join(sorted(EXPORTERS))}")
    name = name or ds.root.resolve().name
    target = export_target(fmt, out, name)
    check_output(target, ds.root, force, target_hint(fmt))
    with staged_folder(target) as tmp:
        return run_export(ds, fmt, tmp, name, copy, n_jobs, progress)


def target_hint(fmt: str) -> str:
    """What to do instead when the export's folder cannot be written."""
    return "choose another --name" if fmt in NAMED else "choose another -o"
