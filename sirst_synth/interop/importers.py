"""``import FORMAT SRC``: read a benchmark as its authors release it, one reader per FORMAT.

Each reader returns a :class:`Release`: the files of every listed id and the split lists, as
found in SRC. :func:`import_release` then writes the canonical layout (docs/method.md section 1) through
:mod:`sirst_synth.interop.writer`. Readers only look at SRC; they never write to it.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sirst_synth.errors import ImportProblems
from sirst_synth.store.dataset import read_id_list
from sirst_synth.store.layout import id_problem

IMAGE_EXTS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")
#: the split folder name for releases that ship one unnamed split (irstd-1k, folders)
DEFAULT_SPLIT_NAME = "released"


@dataclass(frozen=True)
class Item:
    """The release files of one id. ``mask`` None: the release ships no mask (target-free)."""

    id: str
    image: Path
    mask: Path | None


@dataclass
class Release:
    """What a reader found: files by id, and per split folder the ids of train and test."""

    format: str
    root: Path
    items: dict[str, Item] = field(default_factory=dict)
    splits: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    #: split -> part -> the release file the list came from (relative to root), "" for folders
    list_files: dict[str, dict[str, str]] = field(default_factory=dict)
    #: image files in the release that no split lists (not imported)
    unlisted: list[str] = field(default_factory=list)


def _find(folder: Path, stem: str, exts: tuple[str, ...] = IMAGE_EXTS) -> Path | None:
    """The first ``folder/stem<ext>`` that exists, trying ``exts`` in order."""
    for ext in exts:
        for suffix in (ext, ext.upper()):
            path = folder / f"{stem}{suffix}"
            if path.is_file():
                return path
    return None


def _stems(folder: Path) -> list[str]:
    """Ids of the image files below ``folder`` (relative, with folder parts), sorted."""
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(folder).with_suffix("").as_posix()
                  for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _need_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise ImportProblems([f"{path}: {what} folder not found"], "is SRC the right folder and FORMAT the right format?")
    return path


def _read_list(path: Path, problems: list[str]) -> list[str]:
    """Ids of a split list; unsafe ids and duplicates are added to ``problems``."""
    ids = read_id_list(path)
    seen = set()
    for id_ in ids:
        bad = id_problem(id_)
        if bad:
            problems.append(f"{path}: id {id_!r} {bad}")
        elif id_ in seen:
            problems.append(f"{path}: id {id_!r} is listed twice")
        seen.add(id_)
    return ids


def _check_split(name: str, parts: dict[str, list[str]], files: dict[str, str], problems: list[str]) -> None:
    for part in ("train", "test"):
        if not parts[part]:
            problems.append(f"{files[part] or name}: lists no id")
    for id_ in sorted(set(parts["train"]) & set(parts["test"])):
        problems.append(f"split {name}: id {id_!r} is in both {files['train']} and {files['test']} (test leakage)")


def _collect(release: Release, image_dir: Path, mask_for: Callable[[str], Path | None],
             image_for: Callable[[str], Path | None], problems: list[str], mask_optional: bool = False) -> None:
    """Fill ``release.items`` for every listed id; missing files go to ``problems``."""
    listed = sorted({i for parts in release.splits.values() for ids in parts.values() for i in ids})
    for id_ in listed:
        if id_problem(id_):
            continue
        image = image_for(id_)
        if image is None:
            problems.append(f"id {id_!r}: image not found in {image_dir} (tried {', '.join(IMAGE_EXTS)})")
            continue
        mask = mask_for(id_)
        if mask is None and not mask_optional:
            problems.append(f"id {id_!r}: mask not found for image {image}")
            continue
        release.items[id_] = Item(id_, image, mask)
    on_disk = set(_stems(image_dir))
    release.unlisted = sorted(on_disk - set(listed))


def _finish(release: Release, problems: list[str]) -> Release:
    for name, parts in release.splits.items():
        _check_split(name, parts, release.list_files[name], problems)
    if not release.splits:
        problems.append(f"{release.root}: no split lists found for format {release.format}")
    if problems:
        raise ImportProblems(problems)
    return release


def _add_split(release: Release, name: str, train: Path, test: Path, problems: list[str]) -> None:
    release.splits[name] = {"train": _read_list(train, problems), "test": _read_list(test, problems)}
    release.list_files[name] = {"train": train.relative_to(release.root).as_posix(),
                                "test": test.relative_to(release.root).as_posix()}


# -- one reader per FORMAT -----------------------------------------------------------------------

def read_sirst(src: Path, split_name: str | None = None) -> Release:
    """SIRST as released: ``images/<id>.png``, ``masks/<id>_pixels0.png`` (XML boxes beside them),
    one folder per split (``idx_427``, ``idx_320``) holding ``trainval.txt`` and ``test.txt``."""
    release, problems = Release("sirst", src), list[str]()
    images, masks = _need_dir(src / "images", "images"), _need_dir(src / "masks", "masks")
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        if (folder / "trainval.txt").is_file() and (folder / "test.txt").is_file():
            _add_split(release, folder.name, folder / "trainval.txt", folder / "test.txt", problems)
    _collect(release, images, lambda i: _find(masks, f"{i}_pixels0"), lambda i: _find(images, i), problems)
    return _finish(release, problems)


_V2_SPLIT = re.compile(r"^(?:(trainval|test)_(?P<a>.+)|(?P<b>.+)_(trainval|test))\.txt$")


def read_sirst_v2(src: Path, split_name: str | None = None) -> Release:
    """SIRST-V2 as released: ``mixed/<id>.png``, ``annotations/masks/<id>_pixels0.png``, lists
    ``splits/trainval_<name>.txt`` + ``splits/test_<name>.txt`` (also ``<name>_trainval.txt``).
    Target-free images ship no mask: they get an all-zero mask."""
    release, problems = Release("sirst-v2", src), list[str]()
    images = _need_dir(src / "mixed", "mixed (images)")
    masks = _need_dir(src / "annotations" / "masks", "annotations/masks")
    lists = _need_dir(src / "splits", "splits")
    names = sorted({m.group("a") or m.group("b") for p in lists.glob("*.txt") if (m := _V2_SPLIT.match(p.name))})
    for name in names:
        pairs = [(lists / f"trainval_{name}.txt", lists / f"test_{name}.txt"),
                 (lists / f"{name}_trainval.txt", lists / f"{name}_test.txt")]
        for train, test in pairs:
            if train.is_file() and test.is_file():
                _add_split(release, name, train, test, problems)
                break
    _collect(release, images, lambda i: _find(masks, f"{i}_pixels0"), lambda i: _find(images, i), problems,
             mask_optional=True)
    return _finish(release, problems)


def read_irstd_1k(src: Path, split_name: str | None = None) -> Release:
    """IRSTD-1k as released: ``IRSTD1k_Img/<id>.png``, ``IRSTD1k_Label/<id>.png``, ``trainval.txt``
    and ``test.txt`` beside them (one split, named ``split_name``)."""
    release, problems = Release("irstd-1k", src), list[str]()
    images, masks = _need_dir(src / "IRSTD1k_Img", "IRSTD1k_Img"), _need_dir(src / "IRSTD1k_Label", "IRSTD1k_Label")
    if (src / "trainval.txt").is_file() and (src / "test.txt").is_file():
        _add_split(release, split_name or DEFAULT_SPLIT_NAME, src / "trainval.txt", src / "test.txt", problems)
    _collect(release, images, lambda i: _find(masks, i), lambda i: _find(images, i), problems)
    return _finish(release, problems)


_BASIC_LIST = re.compile(r"^train_(?P<name>.+)\.txt$")


def read_basicirstd(src: Path, split_name: str | None = None) -> Release:
    """BasicIRSTD's layout: ``img_idx/train_<name>.txt`` + ``img_idx/test_<name>.txt`` (or beside
    ``images/``), ``images/`` and ``masks/`` with ``.png``, ``.bmp`` or ``.jpg`` files; each
    ``<name>`` is one split."""
    release, problems = Release("basicirstd", src), list[str]()
    images, masks = _need_dir(src / "images", "images"), _need_dir(src / "masks", "masks")
    folder = src / "img_idx" if (src / "img_idx").is_dir() else src
    for path in sorted(folder.glob("train_*.txt")):
        match = _BASIC_LIST.match(path.name)
        assert match is not None  # the files were chosen by this pattern
        name = match.group("name")
        if (folder / f"test_{name}.txt").is_file():
            _add_split(release, name, path, folder / f"test_{name}.txt", problems)
    exts = (".png", ".bmp", ".jpg")  # BasicIRSTD's loader tries these, in this order
    _collect(release, images, lambda i: _find(masks, i, exts), lambda i: _find(images, i, exts), problems)
    return _finish(release, problems)


_TRAIN_FOLDERS, _TEST_FOLDERS = ("trainval", "train"), ("test",)


def read_folders(src: Path, split_name: str | None = None) -> Release:
    """Per-part folders (SeRankDet, mmseg): ``trainval/images`` + ``trainval/masks`` (or ``train/``)
    and ``test/images`` + ``test/masks``; ids are the image file names without extension."""
    release, problems = Release("folders", src), list[str]()
    parts = {}
    for part, names in (("train", _TRAIN_FOLDERS), ("test", _TEST_FOLDERS)):
        found = [n for n in names if (src / n / "images").is_dir()]
        if len(found) > 1:
            problems.append(f"{src}: both {found[0]}/ and {found[1]}/ hold images; keep one train folder")
        if not found:
            raise ImportProblems([f"{src}: no {' or '.join(n + '/images' for n in names)} folder"],
                                 "is SRC the right folder and FORMAT the right format?")
        parts[part] = found[0]
    name = split_name or DEFAULT_SPLIT_NAME
    release.splits[name] = {}
    release.list_files[name] = {}
    for part, folder in parts.items():
        images, masks = src / folder / "images", _need_dir(src / folder / "masks", f"{folder}/masks")
        ids = _stems(images)
        dupes = sorted(i for i, n in Counter(ids).items() if n > 1)
        problems += [f"{images}: several files for id {i!r} (different extensions)" for i in dupes]
        release.splits[name][part] = ids
        release.list_files[name][part] = f"{folder}/images/"
        for id_ in ids:
            bad = id_problem(id_)
            if bad:
                problems.append(f"{images}: file {id_!r} {bad}")
                continue
            image, mask = _find(images, id_), _find(masks, id_)
            if mask is None or image is None:
                problems.append(f"{part} id {id_!r}: {'mask' if mask is None else 'image'} not found in "
                                f"{masks if mask is None else images}")
                continue
            release.items[id_] = Item(id_, image, mask)
        unmatched = sorted(set(_stems(masks)) - set(ids))
        release.unlisted += [f"{folder}/masks/{m}" for m in unmatched]
    return _finish(release, problems)


def read_dnanet(src: Path, split_name: str | None = None) -> Release:
    """The DNANet layout itself (validated and copied): ``images/<id>.png``, ``masks/<id>.png``,
    every folder holding ``train.txt`` and ``test.txt`` is a split."""
    release, problems = Release("dnanet", src), list[str]()
    images, masks = _need_dir(src / "images", "images"), _need_dir(src / "masks", "masks")
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        if (folder / "train.txt").is_file() and (folder / "test.txt").is_file():
            _add_split(release, folder.name, folder / "train.txt", folder / "test.txt", problems)
    png = (".png",)
    _collect(release, images, lambda i: _find(masks, i, png), lambda i: _find(images, i, png), problems)
    return _finish(release, problems)


READERS: dict[str, Callable[[Path, str | None], Release]] = {
    "sirst": read_sirst,
    "sirst-v2": read_sirst_v2,
    "irstd-1k": read_irstd_1k,
    "basicirstd": read_basicirstd,
    "folders": read_folders,
    "dnanet": read_dnanet,
}


def read_release(fmt: str, src: Path, split_name: str | None = None) -> Release:
    """Read ``src`` with the reader of ``fmt``."""
    if not src.is_dir():
        raise ImportProblems([f"{src}: source folder not found"])
    return READERS[fmt](src, split_name)
