"""What an export needs to know of a dataset's files, each file read once, in worker threads.

1. Every listed image and mask is read and hashed (SHA-256: the split fingerprint of the export
   record, :func:`~sirst_synth.store.fingerprint.split_fingerprint`).
2. Only what is still unknown is decoded:

   - each distinct mask (by its hash) once, to tell whether it is an 8-bit gray PNG of 0 and 255
     only, linked as it is, or one that must be rewritten; but not the masks a build wrote for its
     generated images: each is an 8-bit gray PNG of its original's mask values (a negative turns
     one window), so it is linked when that mask's values are 0 and 255 only;
   - with the image statistics (``basicirstd``, ``points``), each image once, for its gray pixel
     count, sum and sum of squares (the pooled train statistics) and its own mean and std
     (BasicIRSTD's per-image convention), except a build's negatives: a negative only turns the
     pixels of one window, so its statistics are those of its group's first image.

   Both shortcuts hold only while the files are as the build wrote them: a file, and the one it
   derives from, must hash as the build's ``manifest.csv`` records, else it is decoded.

For the default build of NUDT-SIRST that is 12,452 files hashed, then 1,308 masks and 2,286 images
decoded (the 3,940 negatives and the generated images' masks are not), instead of 18,014 decodes.
"""
from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from sirst_synth.method.gray import method_gray
from sirst_synth.progress import Progress
from sirst_synth.store import imageio
from sirst_synth.store.fingerprint import ImageSums, gray_stats, norm_from_sums, per_image_from

#: files per worker job: few round trips, results small
CHUNK = 64

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ImageStats:
    """One image's gray statistics (0..255)."""

    sums: ImageSums  #: pixels, sum, sum of squares
    mean: float
    std: float       #: population std


def image_stats(path: str) -> ImageStats:
    """Decode one image and measure its gray (:func:`~sirst_synth.store.method_gray`,
    :func:`~sirst_synth.store.fingerprint.gray_stats`)."""
    return ImageStats(*gray_stats(method_gray(imageio.read_image(path))))


def mask_verdict(data: bytes) -> tuple[bool, bool]:
    """Of mask bytes: whether they are an 8-bit gray PNG holding 0 and 255 only (linked as they
    are), and whether the mask's values (its largest channel) are 0 and 255 only."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        gray_png = im.format == "PNG" and im.mode == "L"
    mask = imageio.mask_from_image(imageio.decode_image(data, "mask"))
    values = bool(((mask == 0) | (mask == 255)).all())
    return gray_png and values, values


def mask_is_binary_png(data: bytes) -> bool:
    """Whether mask bytes are an 8-bit gray PNG holding 0 and 255 only (linked as they are)."""
    return mask_verdict(data)[0]


def read(path: str) -> bytes:
    """A file's bytes (:func:`~sirst_synth.store.imageio.read_bytes`'s errors, no path object)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return imageio.read_bytes(path)  # says why, in its words


def _hash_files(paths: Sequence[str]) -> list[str]:
    return [imageio.sha256(read(p)) for p in paths]


def _decode(job: tuple[Sequence[str], Sequence[str]]) -> tuple[list[tuple[bool, bool]], list[ImageStats]]:
    masks, images = job
    return [mask_verdict(read(p)) for p in masks], [image_stats(p) for p in images]


def _chunks(items: Sequence[str]) -> list[list[str]]:
    return [list(items[i:i + CHUNK]) for i in range(0, len(items), CHUNK)]


def run_threads(fn: Callable[[T], R], jobs: Sequence[T], n_jobs: int, label: str, progress: Progress) -> Iterator[R]:
    """``fn(job)`` for each job in ``n_jobs`` threads (-1: one per core), results in job order, with a
    progress bar on stderr. Threads, not processes: reading, hashing (hashlib), PNG decoding
    (OpenCV) and inflating release the GIL, and nothing is started, imported or pickled per worker."""
    workers = (os.cpu_count() or 1) if n_jobs < 0 else max(n_jobs, 1)
    with progress(label, len(jobs)) as bar:
        if workers == 1 or len(jobs) <= 1:
            for job in jobs:
                yield fn(job)
                bar.update(1)
            return
        with ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(fn, job) for job in jobs]
            try:
                for future in futures:
                    yield future.result()
                    bar.update(1)
            finally:
                for future in futures:
                    future.cancel()


@dataclass
class FileScan:
    """The hashes of a dataset's files, the verdict on each distinct mask, the statistics of each image."""

    #: file path -> SHA-256
    sha: dict[str, str] = field(default_factory=dict)
    #: mask SHA-256 -> an 8-bit gray PNG of 0 and 255 only
    binary_mask: dict[str, bool] = field(default_factory=dict)
    #: mask SHA-256 -> its values are 0 and 255 only (of the masks decoded)
    binary_values: dict[str, bool] = field(default_factory=dict)
    #: image path -> statistics
    stats: dict[str, ImageStats] = field(default_factory=dict)
    decoded_images: int = 0
    derived_images: int = 0
    decoded_masks: int = 0
    derived_masks: int = 0

    def norm_cfgs(self, train: Sequence[str], test: Sequence[str]) -> tuple[dict, dict]:
        """``img_norm_cfg`` of the train images (pooled pixels, as
        :func:`~sirst_synth.store.fingerprint.img_norm_cfg`) and BasicIRSTD's per-image convention
        over train + test (as :func:`~sirst_synth.store.fingerprint.per_image_norm_cfg`), from the
        image paths of each part."""
        pooled = norm_from_sums([self.stats[p].sums for p in train])
        every = [self.stats[p] for p in (*train, *test)]
        return pooled, per_image_from([(s.sums, s.mean, s.std) for s in every])


#: a file the build derived from another: its path -> (its recorded SHA-256, the other's path, the
#: other's recorded SHA-256)
Derived = dict[str, tuple[str, str, str]]


def _as_recorded(found: FileScan, derived: Derived, listed: set[str]) -> dict[str, str]:
    """Path -> the other path, for each file of ``derived`` that, with the other, hashes as recorded."""
    return {path: other for path, (sha, other, other_sha) in derived.items()
            if path in listed and other in listed and other not in derived
            and found.sha.get(path) == sha and found.sha.get(other) == other_sha}


def scan_files(images: Sequence[str], masks: Sequence[str], check_masks: bool, stats: bool, n_jobs: int,
               progress: Progress, same_as: Derived | None = None, mask_from: Derived | None = None) -> FileScan:
    """Hash ``images`` and ``masks`` (paths, one pair per id); with ``check_masks`` decode each
    distinct mask; with ``stats`` each image. Not decoded, when both files hash as recorded: an
    image of ``same_as`` (a build's negative, mapped to its group's first image, whose statistics
    are then its own), and a mask of ``mask_from`` (a mask the build wrote, 8-bit gray, from an
    original's mask: it holds only 0 and 255 when that mask's values do)."""
    found = FileScan()
    paths = [*images, *masks]
    for chunk, digests in zip(_chunks(paths), run_threads(_hash_files, _chunks(paths), n_jobs, "hashing", progress)):
        found.sha.update(zip(chunk, digests))
    first_of: dict[str, str] = {}  # the distinct masks to decode: sha -> a path
    from_original: dict[str, str] = {}  # the masks the build wrote: sha -> the original's mask
    if check_masks:
        written = _as_recorded(found, mask_from or {}, set(masks))
        for mask in masks:
            sha = found.sha[mask]
            if mask in written and sha not in first_of:
                from_original.setdefault(sha, written[mask])
            elif mask not in written:
                first_of.setdefault(sha, mask)
                from_original.pop(sha, None)
        for original in set(from_original.values()):
            first_of.setdefault(found.sha[original], original)
        from_original = {sha: original for sha, original in from_original.items() if sha not in first_of}
    derived = _as_recorded(found, same_as or {}, set(images)) if stats else {}
    to_decode = [p for p in dict.fromkeys(images) if p not in derived] if stats else []
    mask_chunks, image_chunks = _chunks(list(first_of.values())), _chunks(to_decode)
    jobs = [(mask_chunks[i] if i < len(mask_chunks) else [], image_chunks[i] if i < len(image_chunks) else [])
            for i in range(max(len(mask_chunks), len(image_chunks)))]
    for (masks_done, images_done), (verdicts, measured) in zip(jobs, run_threads(_decode, jobs, n_jobs, "decoding",
                                                                                 progress)):
        for mask, (binary, values) in zip(masks_done, verdicts):
            found.binary_mask[found.sha[mask]], found.binary_values[found.sha[mask]] = binary, values
        found.stats.update(zip(images_done, measured))
    for sha, original in from_original.items():
        found.binary_mask[sha] = found.binary_values[found.sha[original]]
    for image, group in derived.items():
        found.stats[image] = found.stats[group]
    found.decoded_images, found.derived_images = len(to_decode), len(derived)
    found.decoded_masks, found.derived_masks = len(first_of), len(from_original)
    return found
