"""One hash per benchmark split, and the image statistics trainers normalise with (``img_norm_cfg``).

:func:`split_fingerprint` uses the definition of :meth:`sirst_synth.run.scan.ScanResult.fingerprint`
(the ``source.fingerprint`` a build records): SHA-256 over the lines
``<part>\\t<id>\\t<sha256 of the image file>\\t<sha256 of the mask file>\\n``, parts in sorted
order (``test`` before ``train``), ids in list order. It hashes every listed id as its files are on
disk, so it equals the build's value whenever the build skipped no id.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from sirst_synth.store import imageio
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.layout import PARTS


def _file_sha(path: Path) -> str:
    return imageio.sha256(imageio.read_bytes(path))


def hashed_line(part: str, id_: str, sha256_image: str, sha256_mask: str) -> str:
    """One hashed line of a fingerprint (the one definition, also of the build's ``source.fingerprint``)."""
    return f"{part}\t{id_}\t{sha256_image}\t{sha256_mask}\n"


def fingerprint_of(lines: Iterable[str]) -> str:
    """SHA-256 (hex) of fingerprint lines, in order."""
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode())
    return h.hexdigest()


def fingerprint_lines(ds: Dataset) -> list[str]:
    """The hashed lines, in hashing order (for a diff when two fingerprints differ)."""
    return [hashed_line(part, id_, _file_sha(ds.image_path(id_)), _file_sha(ds.mask_path(id_)))
            for part in sorted(PARTS) for id_ in ds.ids(part)]


def split_fingerprint(ds: Dataset) -> str:
    """SHA-256 (hex) of the split's ids and file hashes; see the module docstring."""
    return fingerprint_of(fingerprint_lines(ds))


def checked_split_fingerprint(ds: Dataset) -> str | None:
    """:func:`split_fingerprint`, or None when a list is missing, an id is unsafe or a file cannot
    be read (the source check then says which). Reads and hashes every listed file, decodes none."""
    from sirst_synth.errors import SirstSynthError
    from sirst_synth.store.layout import id_problem

    try:
        ids = {part: ds.ids(part) for part in sorted(PARTS)}
        if any(id_problem(i) for part_ids in ids.values() for i in part_ids):
            return None
        return fingerprint_of(hashed_line(part, i, _file_sha(ds.image_path(i)), _file_sha(ds.mask_path(i)))
                              for part, part_ids in ids.items() for i in part_ids)
    except (SirstSynthError, OSError):
        return None


ImageSums = tuple[int, float, float]  #: pixels, sum and sum of squares of one gray image


def gray_sums(gray: np.ndarray) -> ImageSums:
    """Pixels, sum and sum of squares of one gray image (uint8: exact integer sums; float: float64).

    The same pixels give the same bits whether the image is in a worker's hands or read back from
    its file, so a build records these for the images it writes instead of reading them again."""
    if gray.dtype == np.uint8:
        g = gray.astype(np.int64)
        return int(g.size), float(g.sum()), float(np.square(g).sum())
    f = gray.astype(np.float64)
    return int(f.size), float(f.sum()), float(np.square(f).sum())


def norm_from_sums(sums: list[ImageSums]) -> dict[str, float | int]:
    """``img_norm_cfg`` from per-image sums, pooled in list order (so equal inputs give equal bits)."""
    pixels = sum(s[0] for s in sums)
    if pixels == 0:
        return {"mean": 0.0, "std": 0.0, "images": 0, "pixels": 0}
    mean = math.fsum(s[1] for s in sums) / pixels
    std = math.sqrt(max(math.fsum(s[2] for s in sums) / pixels - mean * mean, 0.0))
    return {"mean": round(mean, 6), "std": round(std, 6), "images": len(sums), "pixels": pixels}


def img_norm_cfg(ds: Dataset, part: str = "train") -> dict[str, float | int]:
    """Mean and std of every pixel of the gray images of ``part`` (0..255 scale), pooled over images.

    Gray is :func:`sirst_synth.store.float_gray` (an RGB image with R = G = B gives its channel).
    The std is the population std of all pixels together. BasicIRSTD's own fallback
    (``get_img_norm_cfg`` for a name it does not know) differs: it averages per-image means and
    per-image stds over train + test.
    """
    return norm_from_sums([gray_sums(ds.read_gray(id_)) for id_ in ds.ids(part)])


def gray_stats(gray: np.ndarray) -> tuple[ImageSums, float, float]:
    """One gray image's :func:`gray_sums`, mean and (population) std, in float64. A uint8 image is
    measured from its histogram: exact sums and mean, and the std of 256 weighted deviations."""
    if gray.dtype != np.uint8:
        return gray_sums(gray), float(gray.mean(dtype=np.float64)), float(gray.std(dtype=np.float64))
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)  # counts < 2**53: exact
    values = np.arange(256, dtype=np.float64)
    pixels, total = int(gray.size), float(hist @ values)
    mean = total / pixels
    return (pixels, total, float(hist @ (values * values))), mean, math.sqrt(float(hist @ np.square(values - mean)) / pixels)


def per_image_norm_cfg(ds: Dataset, parts: tuple[str, ...] = ("train", "test")) -> dict[str, float | int]:
    """BasicIRSTD's fallback statistics: the mean of per-image means and the mean of per-image
    stds, over train + test (its ``get_img_norm_cfg`` for a dataset name it does not know).
    Reported beside :func:`img_norm_cfg` so the two can be told apart."""
    from sirst_synth.method.gray import method_gray

    stats = [gray_stats(method_gray(ds.read_image(id_))) for part in parts for id_ in ds.ids(part)]
    return per_image_from(stats)


def per_image_from(stats: list[tuple[ImageSums, float, float]]) -> dict[str, float | int]:
    """:func:`per_image_norm_cfg` from each image's :func:`gray_stats`, in order."""
    if not stats:
        return {"mean": 0.0, "std": 0.0, "images": 0}
    mean = float(np.mean([s[1] for s in stats]))
    std = float(np.mean([s[2] for s in stats]))
    return {"mean": round(mean, 6), "std": round(std, 6), "images": len(stats)}


#: fingerprints of public benchmark splits, as shipped in their public sources (SOURCE.txt of each
#: copy in ../shared/datasets): every listed id with its image and mask file hashes.
KNOWN_SPLITS: dict[str, str] = {
    "07397e9088512bc28ff0d2c14115e97ed0f009eafa043b7c483229763f02f66b": "NUDT-SIRST 50_50 (663 train / 664 test)",
    "51a55aefa91f57ec2efd67535af71f7638d98b1c616d2daf9c4387f76d3292b6": "SIRST idx_427 (341 trainval / 86 test)",
    "dda8832fd7433548cfe52c20f2a70efb28d6265c0a5162b0e96a391165d9ff5d":
        "SIRST idx_427 without Misc_111 (what build --skip-invalid records)",
}


def known_split(fingerprint: str) -> str | None:
    """The name of the public benchmark split with this fingerprint, or None."""
    return KNOWN_SPLITS.get(fingerprint)


def fingerprint_line(ds: Dataset) -> str:
    """One line for ``info --fingerprint``: the hash, the split, its counts, and a known name."""
    fp = split_fingerprint(ds)
    name = known_split(fp)
    counts = f"{len(ds.ids('train'))} train / {len(ds.ids('test'))} test"
    return f"{fp}  {ds.root} split {ds.split} ({counts})" + (f": {name}" if name else "")
