#!/usr/bin/env python
"""Benchmark of ``sirst-synth build`` against its I/O floor. Run by hand, not by the tests.

    python benchmarks/bench_build.py --skip-10x           # NUDT-SIRST, -j 2, best of 3: all but the 10 x build
    python benchmarks/bench_build.py --json /tmp/bench.json  # everything, with the 10 x build
    python benchmarks/bench_build.py --encodings ../shared/datasets/SIRST:idx_427:trainval.txt
                                                          # the PNG settings table (see --encodings)

In one run, on the same cores, it measures:

- the I/O floor: decode every train image and mask of the split once, and encode as
  many gray images and masks as the build generates (4899 each for the default build) with
  OpenCV's default PNG settings, in memory, without writing files, on the same number of joblib
  workers as the build;
- the write floor (a second reference, which also writes the files): decode every source image
  and mask the build reads (train and test ids) once, and encode + write as many PNGs as the build
  leaves in images/ and masks/, with the build's own decoder, encoder and atomic writer;
- ``sirst-synth build`` with defaults at ``-j N`` and ``-j 1`` (wall time of the subprocess) and
  the peak memory of its process tree;
- a build ``--scale`` times larger (``--total`` x scale): time and memory against the default;
- ``sirst-synth --help`` start-up;
- ``build --format h5``: its time against the PNG build's, the sizes of the file and of the PNG
  folder, and reading one training epoch (every train image and mask once) from each.

It prints a table with each figure next to its target and PASS/FAIL; see benchmarks/README.md.

Every timed run writes a new folder, and nothing is deleted until the end. On a file system
without a journal (ext4 as this project's machines mount it) creating a file costs several times
more for up to six minutes after many files were deleted (ext4 skips the inodes of recently
deleted files, scanning the inode table for others), so deleting one build just before timing the
next would charge it for the deletion. The ``--format h5`` builds, which delete their own staging
folder, run after all the PNG builds and floors.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sirst_synth.method.gray import rounded_gray

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SRC = REPO.parent / "shared" / "datasets" / "NUDT-SIRST"
DEFAULT_TOTAL = 5562
#: Items (decodes + encodes) per floor task: enough that joblib's per-task overhead is negligible.
FLOOR_ITEMS_PER_TASK = 50

# Targets: the build against its I/O floor, its speed-up, the h5 build.
TARGET_IO_FLOOR_RATIO = 2.0   # build time <= 2.0 x the I/O floor (1.5 is where we want to end up)
GOAL_IO_FLOOR_RATIO = 1.5
TARGET_SPEEDUP = 1.8          # -j 2 at least 1.8 x faster than -j 1
TARGET_H5_TIME = 1.3          # build --format h5 at most 1.3 x the PNG build
# Targets: the build against its write floor, the 10 x build, start-up.
TARGET_FLOOR_RATIO = 1.5      # build time <= 1.5 x the write floor
TARGET_MEM_GROWTH = 1.10      # 10 x build: peak RSS within 10 % of the default build's
TARGET_TIME_SLACK = 1.1       # 10 x build: at most 11 x the time (1.1 x the scale)
TARGET_HELP_SECONDS = 0.5     # sirst-synth --help


# -- running a command and watching its memory ---------------------------------------------------

@dataclass
class Memory:
    """Peak resident memory (bytes) of a process tree, sampled every ``interval`` seconds.

    ``parent``: the peak of the command's own process. ``worker``: the highest peak of any single
    descendant (joblib worker). ``tree``: the peak of the sum over the tree at one instant (shared
    library pages are counted once per process, so this overstates the physical total a little).
    ``kernel_max``: the kernel's high-water mark of the largest single process of the tree (from
    ``wait4``; exact, but only for descendants that were reaped before the command exited).
    """

    parent: int = 0
    worker: int = 0
    tree: int = 0
    kernel_max: int = 0
    processes: int = 0
    samples: int = 0
    per_process: dict[str, int] = field(default_factory=dict)


class TreeSampler(threading.Thread):
    """Samples the RSS of a process and its descendants until :meth:`stop`."""

    def __init__(self, pid: int, interval: float = 0.02, refresh_every: int = 10):
        super().__init__(daemon=True)
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.interval = interval
        self.refresh_every = refresh_every  # the tree is re-listed every N samples (listing is slower)
        self.memory = Memory()
        self._names: dict[int, str] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        procs: list = [self.root]
        n = 0
        while not self._stop_event.is_set():
            if n % self.refresh_every == 0:
                try:
                    procs = [self.root, *self.root.children(recursive=True)]
                except self._psutil.Error:
                    break
            self._sample(procs)
            n += 1
            self._stop_event.wait(self.interval)

    def _sample(self, procs: list) -> None:
        total = 0
        for p in procs:
            try:
                rss = p.memory_info().rss
            except self._psutil.Error:
                continue
            total += rss
            if p.pid not in self._names:
                self._names[p.pid] = self._describe(p)
            key = self._names[p.pid]
            self.memory.per_process[key] = max(self.memory.per_process.get(key, 0), rss)
            if p.pid == self.root.pid:
                self.memory.parent = max(self.memory.parent, rss)
            else:
                self.memory.worker = max(self.memory.worker, rss)
        self.memory.tree = max(self.memory.tree, total)
        self.memory.samples += 1
        self.memory.processes = len(self._names)

    def _describe(self, p) -> str:
        """'pid name: the start of its command line', for the JSON record."""
        try:
            cmd = " ".join(p.cmdline())
        except self._psutil.Error:
            cmd = "?"
        return f"{p.pid}: {cmd[:100]}"

    def stop(self) -> Memory:
        self._stop_event.set()
        self.join()
        return self.memory


@dataclass
class Run:
    """One timed command: wall seconds, exit status, peak memory, output tails."""

    argv: list[str]
    seconds: float
    returncode: int
    cpu: float = 0.0  # user + sys seconds of the command and its reaped descendants (wait4)
    memory: Memory = field(default_factory=Memory)
    stdout: str = ""
    stderr: str = ""

    def error_line(self) -> str:
        lines = [ln for ln in (self.stderr + "\n" + self.stdout).splitlines() if ln.strip()]
        return lines[-1].strip() if lines else f"exit status {self.returncode}"


def run_command(argv: Sequence[str], log_dir: Path, watch_memory: bool = True) -> Run:
    """Run ``argv``, timing its wall clock with ``perf_counter`` and sampling its tree's memory."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / "stdout.txt", log_dir / "stderr.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        sampler = TreeSampler(proc.pid) if watch_memory else None
        if sampler:
            sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        memory = sampler.stop() if sampler else Memory()
    memory.kernel_max = usage.ru_maxrss * 1024  # Linux reports KiB
    return Run(list(argv), seconds, proc.returncode, usage.ru_utime + usage.ru_stime, memory,
               out_path.read_text(errors="replace")[-2000:], err_path.read_text(errors="replace")[-2000:])


def cli(*args: str) -> list[str]:
    """``sirst-synth ARGS`` run with this interpreter."""
    return [sys.executable, "-m", "sirst_synth", *args]


def console_script() -> list[str]:
    """The ``sirst-synth`` console script installed for this interpreter, else ``python -m``."""
    script = Path(sys.executable).parent / "sirst-synth"
    return [str(script)] if script.is_file() else cli()


# -- the I/O floor ---------------------------------------------------------------------------------

def _floor_task(src: str, ids: list[str], n_images: int, n_masks: int, out: str, first: int) -> tuple[int, int]:
    """Decode the images and masks of ``ids`` once; encode and write ``n_images`` image PNGs and
    ``n_masks`` mask PNGs from them, cyclically. Returns (decoded, written)."""
    from sirst_synth.store import imageio

    root, out_dir = Path(src), Path(out)
    images = [imageio.read_image(root / "images" / f"{i}.png") for i in ids]
    masks = [imageio.read_mask(root / "masks" / f"{i}.png") for i in ids]
    for j in range(n_images):
        imageio.write_atomic(out_dir / "images" / f"{first + j:07d}.png", imageio.encode_png(images[j % len(images)]))
    for j in range(n_masks):
        imageio.write_atomic(out_dir / "masks" / f"{first + j:07d}.png", imageio.encode_png(masks[j % len(masks)]))
    return 2 * len(ids), n_images + n_masks


def _split(n: int, parts: int) -> list[int]:
    """``n`` items in ``parts`` near-equal counts."""
    return [n // parts + (1 if k < n % parts else 0) for k in range(parts)]


def io_floor(src: Path, ids: list[str], n_images: int, n_masks: int, out: Path, n_jobs: int) -> dict:
    """Time the I/O floor with fresh joblib (loky) workers, as a build starts them."""
    from joblib import Parallel, delayed
    from joblib.externals.loky import get_reusable_executor

    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    items = 2 * len(ids) + n_images + n_masks
    tasks = max(1, min(len(ids), round(items / FLOOR_ITEMS_PER_TASK)))
    id_counts, img_counts, mask_counts = _split(len(ids), tasks), _split(n_images, tasks), _split(n_masks, tasks)
    jobs, at_id, at_out = [], 0, 0
    for k in range(tasks):
        chunk = ids[at_id:at_id + id_counts[k]]
        jobs.append(delayed(_floor_task)(str(src), chunk, img_counts[k], mask_counts[k], str(out), at_out))
        at_id += id_counts[k]
        at_out += max(img_counts[k], mask_counts[k])
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    done = Parallel(n_jobs=n_jobs)(jobs)
    seconds = time.perf_counter() - start
    if n_jobs != 1:
        get_reusable_executor().shutdown(wait=True)  # reaps the workers; the next floor starts afresh
    cpu = _cpu_seconds() - cpu_before
    decoded, written = (sum(x) for x in zip(*done))
    return {"seconds": seconds, "cpu": cpu, "decoded": decoded, "written": written, "tasks": tasks}


def _io_floor_task(src: str, ids: list[str], n_images: int, n_masks: int) -> tuple[int, int, int]:
    """Decode the train images and masks of ``ids`` once; encode ``n_images`` gray images and
    ``n_masks`` masks from them, cyclically, with OpenCV's default PNG settings, in memory.
    Returns (decoded, encoded, encoded bytes)."""
    import cv2

    from sirst_synth.store import imageio

    root = Path(src)
    images = [rounded_gray(imageio.read_image(root / "images" / f"{i}.png")) for i in ids]
    masks = [imageio.read_mask(root / "masks" / f"{i}.png") for i in ids]
    size = 0
    for j in range(n_images):
        size += cv2.imencode(".png", images[j % len(images)])[1].size
    for j in range(n_masks):
        size += cv2.imencode(".png", masks[j % len(masks)])[1].size
    return 2 * len(ids), n_images + n_masks, size


def io_floor_11(src: Path, train_ids: list[str], generated: int, n_jobs: int) -> dict:
    """Time the I/O floor with fresh joblib (loky) workers, as a build starts them."""
    from joblib import Parallel, delayed
    from joblib.externals.loky import get_reusable_executor

    items = 2 * len(train_ids) + 2 * generated
    tasks = max(1, min(len(train_ids), round(items / FLOOR_ITEMS_PER_TASK)))
    id_counts, out_counts = _split(len(train_ids), tasks), _split(generated, tasks)
    jobs, at = [], 0
    for k in range(tasks):
        jobs.append(delayed(_io_floor_task)(str(src), train_ids[at:at + id_counts[k]], out_counts[k], out_counts[k]))
        at += id_counts[k]
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    done = Parallel(n_jobs=n_jobs)(jobs)
    seconds = time.perf_counter() - start
    if n_jobs != 1:
        get_reusable_executor().shutdown(wait=True)
    cpu = _cpu_seconds() - cpu_before
    decoded, encoded, size = (sum(x) for x in zip(*done))
    return {"seconds": seconds, "cpu": cpu, "decoded": decoded, "encoded": encoded, "encoded_bytes": size,
            "tasks": tasks}


def _cpu_seconds() -> float:
    """user + sys seconds of this process and of its reaped children (the floor's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# -- reading the built dataset -----------------------------------------------------------------

def count_outputs(out: Path) -> dict:
    """Files the build left in images/ and masks/, and how many of them it PNG-encoded
    (the others are byte copies: originals and test images)."""
    n_images = sum(1 for _ in (out / "images").glob("*.png"))
    n_masks = sum(1 for _ in (out / "masks").glob("*.png"))
    encoded = generated = None
    manifest = out / "manifest.csv"
    if manifest.is_file():
        with open(manifest, newline="", encoding="utf-8") as fh:
            kinds = [row.get("kind", "") for row in csv.DictReader(fh)]
        generated = sum(k in ("displaced", "negative") for k in kinds)
        encoded = 2 * generated  # every generated image and its mask; originals are byte copies
    return {"images": n_images, "masks": n_masks, "files": n_images + n_masks, "encoded_by_build": encoded,
            "generated": generated}


def read_epoch(path: Path, split: str | None) -> dict:
    """Read every train image and mask once through ``sirst_synth.store.dataset.open_dataset``."""
    from sirst_synth.store.reader import open_dataset

    reader = open_dataset(path, split) if split else open_dataset(path)
    try:
        start = time.perf_counter()
        ids = reader.ids("train")
        nbytes = 0
        for id_ in ids:
            nbytes += reader.read_image(id_).nbytes + reader.read_mask(id_).nbytes
        seconds = time.perf_counter() - start
    finally:
        close = getattr(reader, "close", None)
        if callable(close):
            close()
    return {"seconds": seconds, "ids": len(ids), "decoded_mb": nbytes / 2**20}


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- PNG settings for the generated images and masks ------------------------------------------------

def _png_params(names: str) -> list[int]:
    """OpenCV imwrite parameters from 'level=1 strategy=RLE filter=UP bilevel' (empty: OpenCV's defaults)."""
    import cv2

    params: list[int] = []
    for word in names.split():
        key, _, value = word.partition("=")
        if key == "level":
            params += [cv2.IMWRITE_PNG_COMPRESSION, int(value)]
        elif key == "strategy":
            params += [cv2.IMWRITE_PNG_STRATEGY, getattr(cv2, f"IMWRITE_PNG_STRATEGY_{value}")]
        elif key == "filter":
            params += [cv2.IMWRITE_PNG_FILTER, getattr(cv2, f"IMWRITE_PNG_FILTER_{value}")]
        elif key == "bilevel":
            params += [cv2.IMWRITE_PNG_BILEVEL, 1]
    return params


#: (label, layout, OpenCV settings) of the images compared; layout rgb writes R=G=B.
IMAGE_SETTINGS = (
    ("RGB, level 3, default strategy, all filters", "rgb", "level=3"),
    ("RGB, OpenCV defaults", "rgb", ""),
    ("gray, level 3", "gray", "level=3"),
    ("gray, OpenCV defaults (level 1, RLE, Sub)", "gray", ""),
    ("gray, level 1, default strategy, all filters", "gray", "level=1 strategy=DEFAULT"),
    ("gray, level 1, Huffman only, Up", "gray", "level=1 strategy=HUFFMAN_ONLY filter=UP"),
    ("gray, level 1, Huffman only, Paeth", "gray", "level=1 strategy=HUFFMAN_ONLY filter=PAETH"),
    ("gray, level 1, RLE, Paeth", "gray", "level=1 strategy=RLE filter=PAETH"),
    ("gray, level 1, RLE, Up (OpenCV; the bands' settings)", "gray", "level=1 strategy=RLE filter=UP"),
)
MASK_SETTINGS = (
    ("8-bit, OpenCV defaults", ""),
    ("8-bit, level 1, RLE, no filter (OpenCV)", "level=1 strategy=RLE filter=NONE"),
    ("1-bit, OpenCV defaults", "bilevel"),
    ("1-bit, level 1, RLE, no filter", "level=1 strategy=RLE filter=NONE bilevel"),
)


def displaced_samples(spec: str, n: int) -> tuple[str, list, list, float]:
    """Up to ``n`` displaced gray images and their masks, computed as the build does (alpha 0.1, a
    noise-prone patch of the next train image), from ``SRC[:SPLIT[:TRAIN_LIST]]``; and the mean
    size of the source's mask files."""
    from sirst_synth.method.displace import displace
    from sirst_synth.method.noise import crop, noise_prone_regions
    from sirst_synth.store import imageio
    from sirst_synth.store.dataset import Dataset

    root, split, train_list = (spec.split(":") + ["50_50", "train.txt"][len(spec.split(":")) - 1:])[:3]
    ds = Dataset(Path(root), split, train_list)
    ids = []
    for id_ in ds.ids("train"):
        try:
            image, mask = ds.read_image(id_), ds.read_mask(id_)
        except imageio.ImageError:
            continue
        if image.shape[:2] == mask.shape:
            ids.append((id_, rounded_gray(image), mask))
        if len(ids) == n + 1:
            break
    images, masks = [], []
    for k, (_, gray, mask) in enumerate(ids[:n]):
        other_gray, other_mask = ids[(k + 1) % len(ids)][1:]
        other = other_gray.astype(np.float32)
        regions = noise_prone_regions(other, other_mask)
        patch = crop(other, regions[0].box) if regions else other[: other.shape[0] // 8, : other.shape[1] // 8]
        images.append(displace(gray, patch, 0.1))
        masks.append(mask)
    mask_bytes = statistics.mean(ds.mask_path(i).stat().st_size for i, _, _ in ids[:n])
    return f"{Path(root).name} ({len(images)} displaced images)", images, masks, mask_bytes


def _time_encoding(arrays: list, params: list[int], reps: int, encode=None) -> tuple[float, float, float]:
    """(ms to encode, KiB, ms to decode with OpenCV) per array: best of ``reps`` passes, one core.
    ``encode``: a function of the index and array giving PNG bytes, instead of OpenCV's ``params``."""
    import cv2

    best_enc = best_dec = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        if encode is None:
            out = [cv2.imencode(".png", a, params)[1] for a in arrays]
        else:
            out = [np.frombuffer(encode(k, a), np.uint8) for k, a in enumerate(arrays)]
        best_enc = min(best_enc, time.perf_counter() - start)
        start = time.perf_counter()
        for o in out:
            cv2.imdecode(o, cv2.IMREAD_UNCHANGED)
        best_dec = min(best_dec, time.perf_counter() - start)
    n = len(arrays)
    return best_enc / n * 1e3, sum(o.size for o in out) / n / 1024, best_dec / n * 1e3


def banded_rows(images: list, masks: list, reps: int) -> list[tuple]:
    """The banded PNGs the build writes (:mod:`sirst_synth.store.pngbands`): a displaced image and its
    mask encoded whole, and a negative (a 3 x 3 window at the image centre rotated) re-deflated
    from its displaced image's bands."""
    from sirst_synth.method.negatives import rotate_window
    from sirst_synth.store import imageio, pngbands

    bases = [imageio.banded_image(a) for a in images]
    windows = [((a.shape[0] - 3) // 2, (a.shape[1] - 3) // 2) for a in images]
    negatives = [rotate_window(a, y, x, 3, 1) for a, (y, x) in zip(images, windows)]
    return [
        ("image", "gray, banded: 16-row bands, level 1, RLE, Up (chosen)",
         *_time_encoding(images, [], reps, lambda k, a: imageio.encode_image(a))),
        ("image", "negative: its window's bands re-deflated (chosen)",
         *_time_encoding(negatives, [], reps, lambda k, a: pngbands.changed(bases[k], a, windows[k][0],
                                                                             windows[k][0] + 3).png())),
        ("mask", "8-bit, one band, level 1, RLE, no filter (chosen)",
         *_time_encoding(masks, [], reps, lambda k, a: imageio.encode_mask(a))),
    ]


def bench_encodings(specs: list[str], n: int, reps: int) -> dict:
    """Print and return the size and time of each PNG setting on displaced images and masks."""
    import numpy as np  # noqa: F401  (displaced_samples)

    figures: dict = {}
    for spec in specs:
        say(f"encodings: {spec}")
        name, images, masks, mask_bytes = displaced_samples(spec, n)
        rows = []
        for label, layout, words in IMAGE_SETTINGS:
            arrays = [np.repeat(a[:, :, None], 3, axis=2) for a in images] if layout == "rgb" else images
            rows.append(("image", label, *_time_encoding(arrays, _png_params(words), reps)))
        for label, words in MASK_SETTINGS:
            arrays = [(m > 0).astype(np.uint8) * 255 for m in masks] if "bilevel" in words else masks
            rows.append(("mask", label, *_time_encoding(arrays, _png_params(words), reps)))
        rows += banded_rows(images, masks, reps)
        rows.append(("mask", "source mask files, copied as they are", 0.0, mask_bytes / 1024, float("nan")))
        figures[name] = [dict(zip(("what", "setting", "encode_ms", "kib", "decode_ms"), r)) for r in rows]
        print(f"\n{name}, one core, best of {reps} passes")
        print(f"{'':6}{'setting':<56}{'encode ms':>10}{'KiB':>8}{'decode ms':>11}")
        for what, label, enc, kib, dec in rows:
            print(f"{what:<6}{label:<56}{enc:>10.3f}{kib:>8.2f}{dec:>11.3f}")
    return figures


# -- reporting --------------------------------------------------------------------------------------

def machine_info() -> dict:
    import cv2
    import joblib
    import numpy

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "sirst_synth"], cwd=REPO).returncode != 0
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": git("rev-parse", "--short", "HEAD") + (" (sirst_synth/ has uncommitted changes)" if dirty else ""),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": numpy.__version__, "opencv": cv2.__version__, "joblib": joblib.__version__,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def pick(values: list[float], stat: str) -> float:
    return min(values) if stat == "best" else statistics.median(values)


def mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


class Table:
    """Rows of (figure, value, target, verdict)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []
        self.failed = 0

    def add(self, name: str, value: str, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        self.failed += ok is False
        self.rows.append((name, value, target, verdict))

    def note(self, text: str) -> None:
        self.rows.append((text, "", "", ""))

    def print(self) -> None:
        rows = [r for r in self.rows if r[1] or r[2]] + [("figure", "value", "target", "")]
        w = [max(len(r[i]) for r in rows) for i in range(3)]
        print(f"{'figure':<{w[0]}}  {'value':>{w[1]}}  {'target':<{w[2]}}  result")
        print("-" * (sum(w) + 12))
        for name, value, target, verdict in self.rows:
            if not value and not target:
                print(name)
            else:
                print(f"{name:<{w[0]}}  {value:>{w[1]}}  {target:<{w[2]}}  {verdict}")


# -- the benchmark ------------------------------------------------------------------------------------

def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run_record(run: Run) -> dict:
    """A run's figures for the JSON file."""
    return {"seconds": run.seconds, "cpu": run.cpu, "memory": asdict(run.memory)}


def build_argv(args: argparse.Namespace, out: Path, n_jobs: int, total: int, *extra: str) -> list[str]:
    return cli("-q", "build", "--src", str(args.src), "--split", args.split, "-o", str(out),
               "-j", str(n_jobs), "--total", str(total), "--force", *extra)


def timed_build(args: argparse.Namespace, out: Path, n_jobs: int, total: int, label: str, *extra: str,
                memory: bool = False) -> Run:
    """One build into ``out``, which must not exist; raises SystemExit when it fails. ``memory``:
    sample its process tree's memory (the sampler takes CPU time from the build, so the runs
    that time the build do not sample).

    Nothing is deleted between timed runs (see the module docstring)."""
    if out.exists():
        sys.exit(f"bench: {out} exists; every timed run writes a new folder")
    say(f"{label}: build -j {n_jobs} --total {total} {' '.join(extra)}".rstrip())
    run = run_command(build_argv(args, out, n_jobs, total, *extra), args.work / "logs" / label, memory)
    if run.returncode != 0 and not extra:
        sys.exit(f"bench: {label} failed ({run.error_line()}); command: {' '.join(run.argv)}")
    rss = f", peak RSS parent {mib(run.memory.parent)}, tree {mib(run.memory.tree)}" if memory else ""
    say(f"{label}: {run.seconds:.1f} s ({run.cpu:.1f} s CPU){rss}")
    return run


def help_startup(runs: int = 5) -> dict:
    """Median wall time of ``sirst-synth --help`` (console script) and of ``python -m sirst_synth --help``."""
    figures = {}
    for name, argv in (("script", [*console_script(), "--help"]), ("module", cli("--help"))):
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        figures[name] = {"argv": " ".join(argv), "median": statistics.median(times), "all": times}
    return figures


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", type=Path, default=DEFAULT_SRC, help="source dataset (default: %(default)s)")
    p.add_argument("--split", default="50_50", help="split folder of the source (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=2, help="workers for the build and the floor (default: %(default)s)")
    p.add_argument("--total", type=int, default=DEFAULT_TOTAL, help="--total of the default build (default: %(default)s)")
    p.add_argument("--scale", type=int, default=10, help="size factor of the large build (default: %(default)s)")
    p.add_argument("--work", type=Path, help="scratch folder (default: a new temporary folder, removed at the end)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--skip-10x", dest="skip_scale", action="store_true", help="skip the large build")
    p.add_argument("--skip-h5", action="store_true", help="skip the HDF5 build and the epoch-read comparison")
    p.add_argument("--repeat", type=int, default=3,
                   help="repeat the floors and the builds N times (default: %(default)s)")
    p.add_argument("--stat", choices=("median", "best"), default="best",
                   help="how repeats are summarised: median or best (minimum) (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also save every figure to this JSON file")
    p.add_argument("--encodings", nargs="+", metavar="SRC[:SPLIT[:TRAIN_LIST]]",
                   help="only measure the PNG settings (size, encode and decode time per image and mask, one "
                        "core) on displaced images of these datasets, e.g. ../shared/datasets/NUDT-SIRST "
                        "../shared/datasets/SIRST:idx_427:trainval.txt")
    p.add_argument("--samples", type=int, default=200, help="displaced images per dataset for --encodings (default: %(default)s)")
    args = p.parse_args(argv)
    if args.encodings:
        return args
    if args.jobs < 1 or args.repeat < 1 or args.scale < 1 or args.total < 1:
        p.error("--jobs, --repeat, --scale and --total must be >= 1")
    if not (args.src / "images").is_dir():
        p.error(f"{args.src}: no images/ folder (is --src a dataset?)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.encodings:
        figures = bench_encodings(args.encodings, args.samples, 5)
        if args.json:
            args.json.write_text(json.dumps({"machine": machine_info(), "encodings": figures}, indent=2) + "\n")
        return 0
    try:
        import psutil  # noqa: F401
    except ImportError:
        sys.exit("bench: psutil is needed to sample memory (pip install psutil)")
    from sirst_synth.store.reader import open_dataset

    temp = args.work is None
    args.work = Path(tempfile.mkdtemp(prefix="sirst-bench-")) if temp else args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    try:
        return bench(args, open_dataset(args.src, args.split))
    finally:
        if temp and not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)


def bench(args: argparse.Namespace, src) -> int:
    info = machine_info()
    ids = src.ids("train") + src.ids("test")
    n, stat, work = args.jobs, args.stat, args.work
    figures: dict = {"machine": info, "options": {k: str(v) for k, v in vars(args).items()}}
    say(f"{info['cpus_usable']} usable cores, load average {info['load_average_start']}; work folder {work}")

    say("start-up: sirst-synth --help x 5")
    figures["help"] = help_startup()

    runs: dict[str, list] = {"build_n": [], "build_1": [], "floor": [], "io_floor": [], "io_floor_1": [], "build_h5": []}
    train_ids = src.ids("train")
    memory_run = timed_build(args, work / f"build-j{n}-memory", n, args.total, "memory", memory=True)
    counts = count_outputs(work / f"build-j{n}-memory")

    def build_n() -> None:
        runs["build_n"].append(timed_build(args, work / f"build-j{n}-{rep}", n, args.total, f"build-j{n}-{rep}"))

    def io_floor_step() -> None:
        generated = counts["generated"]
        say(f"I/O floor -j {n}: decode {len(train_ids)} train images + masks, encode {generated} + {generated} "
            "gray PNGs in memory (OpenCV defaults)")
        runs["io_floor"].append(io_floor_11(args.src, train_ids, generated, n))
        f = runs["io_floor"][-1]
        say(f"I/O floor: {f['seconds']:.1f} s ({f['cpu']:.0f} s CPU, {f['tasks']} tasks)")

    def floor() -> None:
        say(f"write floor -j {n}: decode {len(ids)} images + masks, encode + write {counts['images']} + "
            f"{counts['masks']} PNGs")
        runs["floor"].append(io_floor(args.src, ids, counts["images"], counts["masks"], work / f"floor-{rep}", n))
        f = runs["floor"][-1]
        say(f"write floor: {f['seconds']:.1f} s ({f['cpu']:.0f} s CPU, {f['tasks']} tasks)")

    def build_1() -> None:
        if n != 1:
            runs["build_1"].append(timed_build(args, work / f"build-j1-{rep}", 1, args.total, f"build-j1-{rep}"))

    def io_floor_1() -> None:  # the speed-up the floor itself gets from n workers: what -j 1 / -j n can reach
        if n != 1:
            say("I/O floor -j 1: the same work in one process")
            runs["io_floor_1"].append(io_floor_11(args.src, train_ids, counts["generated"], 1))
            say(f"I/O floor -j 1: {runs['io_floor_1'][-1]['seconds']:.1f} s")

    def build_h5(k: int) -> None:
        if not args.skip_h5:
            runs["build_h5"].append(timed_build(args, work / f"build-{k}.h5", n, args.total, f"build-h5-{k}",
                                                "--format", "h5"))

    for rep in range(args.repeat):  # odd repeats run in reverse order, so drifting load hits all alike
        steps = (build_n, io_floor_step, floor, build_1, io_floor_1)
        for step in steps if rep % 2 == 0 else reversed(steps):
            step()
    for k in range(args.repeat):  # last: an h5 build deletes its staging folder (see the docstring)
        build_h5(k)

    def summary(key: str, field: str) -> float:
        return pick([r[field] if isinstance(r, dict) else getattr(r, field) for r in runs[key]], stat)

    build_s, floor_s = summary("build_n", "seconds"), summary("floor", "seconds")
    io_s, io_cpu = summary("io_floor", "seconds"), summary("io_floor", "cpu")
    build_cpu, floor_cpu = summary("build_n", "cpu"), summary("floor", "cpu")
    mem = {k: getattr(memory_run.memory, k) for k in ("parent", "worker", "tree", "kernel_max")}
    figures["build"] = {"jobs": n, "total": args.total, "seconds": build_s, "cpu": build_cpu, "memory": mem,
                        "memory_run": run_record(memory_run),
                        "outputs": counts, "runs": [run_record(r) for r in runs["build_n"]]}
    figures["io_floor"] = {"seconds": io_s, "cpu": io_cpu, "ratio": build_s / io_s, "runs": runs["io_floor"]}
    figures["floor"] = {"seconds": floor_s, "cpu": floor_cpu, "ratio": build_s / floor_s, "runs": runs["floor"]}

    table = Table()
    reps = f"{args.repeat} runs, {stat}" if args.repeat > 1 else "1 run"
    table.note(f"-- build vs I/O floor, -j {n} ({reps}) --")
    table.add(f"build -j {n} (wall, incl. start-up)", f"{build_s:.2f} s")
    table.add(f"I/O floor -j {n}", f"{io_s:.2f} s")
    table.add("build / I/O floor", f"{build_s / io_s:.2f} x", f"<= {TARGET_IO_FLOOR_RATIO} x (goal {GOAL_IO_FLOOR_RATIO})",
              build_s / io_s <= TARGET_IO_FLOOR_RATIO)
    table.add("  decoded (train images + masks) / encoded in memory", f"{runs['io_floor'][0]['decoded']} / "
              f"{runs['io_floor'][0]['encoded']}")
    table.add(f"  CPU: build -j {n} / I/O floor (user+sys)", f"{build_cpu:.1f} / {io_cpu:.1f} s")
    if runs["build_1"]:
        build_1_s, build_1_cpu = summary("build_1", "seconds"), summary("build_1", "cpu")
        speedup = build_1_s / build_s
        figures["build_j1"] = {"seconds": build_1_s, "cpu": build_1_cpu, "speedup": speedup,
                               "runs": [run_record(r) for r in runs["build_1"]]}
        table.add("build -j 1", f"{build_1_s:.2f} s")
        table.add(f"speed-up -j 1 / -j {n}", f"{speedup:.2f} x",
                  f">= {TARGET_SPEEDUP} x" if n == 2 else "", speedup >= TARGET_SPEEDUP if n == 2 else None)
        table.add(f"  CPU: build -j 1 / -j {n} (user+sys)", f"{build_1_cpu:.1f} / {build_cpu:.1f} s")
        io_1_s = summary("io_floor_1", "seconds")
        figures["io_floor_j1"] = {"seconds": io_1_s, "speedup": io_1_s / io_s, "runs": runs["io_floor_1"]}
        table.add(f"  the I/O floor's own speed-up: -j 1 / -j {n}", f"{io_1_s:.2f} / {io_s:.2f} s = {io_1_s / io_s:.2f} x")
    table.note(f"-- build vs write floor, -j {n} ({reps}) --")
    table.add(f"write floor -j {n}", f"{floor_s:.2f} s")
    table.add("build / write floor", f"{build_s / floor_s:.2f} x", f"<= {TARGET_FLOOR_RATIO} x",
              build_s / floor_s <= TARGET_FLOOR_RATIO)
    table.add("  files written (images + masks)", f"{counts['files']}")
    if counts["encoded_by_build"] is not None:
        table.add("  of which PNG-encoded by the build", f"{counts['encoded_by_build']}")
    table.add(f"  CPU: build -j {n} / write floor (user+sys)", f"{build_cpu:.1f} / {floor_cpu:.1f} s")
    table.note(f"-- peak RSS of the -j {n} build (one more run, sampled) --")
    table.add("parent process", mib(mem["parent"]))
    table.add("largest single worker", mib(mem["worker"]))
    table.add("sum over the process tree", mib(mem["tree"]))
    table.add("largest process, kernel high-water", mib(mem["kernel_max"]))

    if not args.skip_scale:
        big_total = args.total * args.scale
        big = timed_build(args, work / "build-big", n, big_total, f"build-x{args.scale}", memory=True)
        ratio_t = big.seconds / build_s
        ratio_m = {k: getattr(big.memory, k) / mem[k] for k in ("parent", "worker", "tree")}
        figures["scale"] = {"scale": args.scale, "total": big_total, "time_ratio": ratio_t, "memory_ratio": ratio_m,
                            **run_record(big)}
        limit = TARGET_TIME_SLACK * args.scale
        table.note(f"-- {args.scale} x build (--total {big_total}, -j {n}, 1 run) --")
        table.add("build time", f"{big.seconds:.2f} s")
        table.add("time / default build", f"{ratio_t:.2f} x", f"<= {limit:g} x", ratio_t <= limit)
        table.add("  CPU / default build (user+sys)", f"{big.cpu / build_cpu:.2f} x")
        for k, name in (("parent", "parent"), ("worker", "largest worker"), ("tree", "process tree")):
            table.add(f"peak RSS {name}: {mib(getattr(big.memory, k))} / default",
                      f"{ratio_m[k]:.3f}", f"<= {TARGET_MEM_GROWTH:.2f}", ratio_m[k] <= TARGET_MEM_GROWTH)

    table.note("-- start-up --")
    h = figures["help"]
    table.add("sirst-synth --help (median of 5)", f"{h['script']['median']:.3f} s", f"< {TARGET_HELP_SECONDS} s",
              h["script"]["median"] < TARGET_HELP_SECONDS)
    table.add("python -m sirst_synth --help (median of 5)", f"{h['module']['median']:.3f} s")

    if not args.skip_h5:
        bench_h5(args, table, figures, runs["build_h5"], build_s)

    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print()
    print(f"sirst-synth build benchmark, {info['date']}, commit {info['commit']}")
    print(f"machine: {info['cpus_usable']} usable of {info['cpu_count']} cpus ({info['cpu']}), Python {info['python']}, "
          f"numpy {info['numpy']}, opencv {info['opencv']}, joblib {info['joblib']}")
    print(f"source: {args.src} ({len(ids)} ids), --total {args.total}, -j {args.jobs}; "
          f"load average at start {info['load_average_start']}, at end {info['load_average_end']} "
          "(other work on these cores makes the figures noisy)")
    print()
    table.print()
    print()
    print("Times are wall clock (time.perf_counter). The build is timed as a subprocess, Python start-up\n"
          "included; the floor is timed in this process around its joblib run, worker start-up included.\n"
          "Peak RSS is sampled in one more build, not timed (the sampler takes CPU from the build),\n"
          "every 20 ms over the build's process tree (psutil): 'parent' is the\n"
          "sirst-synth process, 'largest single worker' the highest of any one descendant, 'sum' the\n"
          "highest total at one instant (shared library pages counted in every process); the kernel\n"
          "high-water mark (wait4 ru_maxrss) is exact for the largest single process.")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
        print(f"figures saved to {args.json}")
    return 1 if table.failed else 0


def bench_h5(args: argparse.Namespace, table: Table, figures: dict, h5_runs: list[Run], build_s: float) -> None:
    """``--format h5``: build time against the PNG build's, sizes, and reading one epoch from each."""
    table.note(f"-- build --format h5 -j {args.jobs} and one training epoch (every train image + mask), single process --")
    png_dir, h5_path = args.work / f"build-j{args.jobs}-0", args.work / "build-0.h5"
    failed = [r for r in h5_runs if r.returncode != 0]
    if failed or not h5_path.is_file():
        reason = f"build --format h5 failed: {failed[0].error_line() if failed else 'no file'}"
        figures["h5"] = {"available": False, "reason": reason}
        table.note(f"h5: not available ({reason})")
        say(f"h5: not available ({reason})")
        return
    h5_s = pick([r.seconds for r in h5_runs], args.stat)
    pngs, h5s = [], []
    for rep in range(args.repeat):
        say(f"epoch read: PNG build, then .h5{f' ({rep + 1}/{args.repeat})' if args.repeat > 1 else ''}")
        pngs.append(read_epoch(png_dir, args.split))
        h5s.append(read_epoch(h5_path, None))
    png = {**pngs[0], "seconds": pick([r["seconds"] for r in pngs], args.stat)}
    h5 = {**h5s[0], "seconds": pick([r["seconds"] for r in h5s], args.stat)}
    png_size, h5_size = disk_bytes(png_dir), disk_bytes(h5_path)
    figures["h5"] = {"available": True, "png": png, "h5": h5, "png_runs": pngs, "h5_runs": h5s,
                     "build_seconds": h5_s, "time_ratio": h5_s / build_s, "build_runs": [run_record(r) for r in h5_runs],
                     "png_bytes": png_size, "h5_bytes": h5_size}
    table.add(f"build --format h5 -j {args.jobs}", f"{h5_s:.2f} s")
    table.add("build --format h5 / PNG build", f"{h5_s / build_s:.2f} x", f"<= {TARGET_H5_TIME} x",
              h5_s / build_s <= TARGET_H5_TIME)
    table.add("size: .h5 / PNG folder (bytes of files)", f"{mib(h5_size)} / {mib(png_size)}",
              "h5 <= PNG", h5_size <= png_size)
    table.add(f"epoch from PNG ({png['ids']} ids)", f"{png['seconds']:.2f} s")
    table.add(f"epoch from HDF5 ({h5['ids']} ids)", f"{h5['seconds']:.2f} s")
    table.add("PNG / HDF5 read time", f"{png['seconds'] / h5['seconds']:.2f} x")
    if png["ids"] != h5["ids"]:
        table.note(f"warning: PNG build has {png['ids']} train ids, HDF5 has {h5['ids']}")


if __name__ == "__main__":
    sys.exit(main())
