"""``info``: what a dataset holds, source or built.

Per split part: images, image sizes, channel modes, targets per image (histogram) and target
sizes in pixels (min / median / max); the train images' mean and std (``img_norm_cfg``, gray,
0..255, every pixel pooled). For a built dataset also the manifest's counts per kind and per round,
the build's record (``sirst-synth.json``: parameters, source, counts, img_norm_cfg) and its run log.
Images are read through the Dataset interface only, in joblib workers.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from sirst_synth.errors import SirstSynthError
from sirst_synth.method.gray import float_gray
from sirst_synth.method.targets import find_targets
from sirst_synth.progress import Progress, silent
from sirst_synth.run.parallel import run_jobs
from sirst_synth.store.fingerprint import ImageSums, gray_sums, norm_from_sums
from sirst_synth.store.layout import PARTS
from sirst_synth.store.reader import DatasetReader
from sirst_synth.store.record import read_runs

BATCH = 64  #: ids per worker job


def channel_mode(image: np.ndarray) -> str:
    """'gray', 'RGB, R=G=B' (gray stored as RGB, as NUDT-SIRST) or 'RGB'."""
    if image.ndim == 2:
        return "gray"
    same = np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])
    return "RGB, R=G=B" if same else "RGB"


#: id, height, width, channel mode, target areas, gray pixel sums
Facts = tuple[str, int, int, str, list[int], ImageSums]


def image_facts(ids: Sequence[str], ds) -> tuple[list[Facts], list[tuple[str, str]]]:
    """Facts of each readable id whose mask matches its image, and (id, problem) of the others."""
    facts, problems = [], []
    for id_ in ids:
        try:
            image, mask = ds.read_image(id_), ds.read_mask(id_)
        except SirstSynthError as exc:
            problems.append((id_, str(exc)))
            continue
        h, w = image.shape[:2]
        if mask.shape != (h, w):
            problems.append((id_, f"mask is {mask.shape[1]}x{mask.shape[0]} but image is {w}x{h} (width x height)"))
            continue
        facts.append((id_, h, w, channel_mode(image), [t.area for t in find_targets(mask)], gray_sums(float_gray(image))))
    return facts, problems


def _batches(ids: Sequence[str]) -> list[list[str]]:
    return [list(ids[i : i + BATCH]) for i in range(0, len(ids), BATCH)]


def collect_facts(ds, ids: Sequence[str], n_jobs: int = 1, progress: Progress = silent
                  ) -> tuple[dict[str, Facts], dict[str, str]]:
    """Facts by id and problems by id of ``ids``, read in joblib workers, BATCH ids per job."""
    facts: dict[str, Facts] = {}
    problems: dict[str, str] = {}
    for batch_facts, batch_problems in run_jobs(image_facts, _batches(ids), n_jobs, "info", progress, ds):
        facts.update((f[0], f) for f in batch_facts)
        problems.update(batch_problems)
    return facts, problems


def summarize_part(facts: Sequence[Facts]) -> dict:
    """Counts of one part (train or test) from its images' facts."""
    areas = [a for f in facts for a in f[4]]
    per_image = Counter(len(f[4]) for f in facts)
    norm = norm_from_sums([f[5] for f in facts])
    return {
        "images": len(facts),
        "sizes": dict(sorted(Counter(f"{f[2]}x{f[1]}" for f in facts).items(), key=lambda kv: -kv[1])),
        "size_range": {"width": [min(f[2] for f in facts), max(f[2] for f in facts)],
                       "height": [min(f[1] for f in facts), max(f[1] for f in facts)]} if facts else None,
        "modes": dict(sorted(Counter(f[3] for f in facts).items(), key=lambda kv: -kv[1])),
        "targets": len(areas),
        "targets_per_image": {str(k): per_image[k] for k in sorted(per_image)},
        "target_pixels": {"min": min(areas), "median": float(np.median(areas)), "max": max(areas)} if areas else None,
        "mean": norm["mean"], "std": norm["std"],
    }


def build_record(ds: DatasetReader) -> dict[str, Any] | None:
    """The build's ``sirst-synth.json`` as a dict, or None when the dataset has none."""
    return ds.info()


def summarize_manifest(rows: dict[str, dict[str, str]], split_ids: dict[str, list[str]]) -> dict:
    """Counts per split and kind, per round and kind, and ids of the split lists missing from it."""
    kinds: dict[str, Counter] = {}
    rounds: dict[str, Counter] = {}
    for row in rows.values():
        kinds.setdefault(row["split"], Counter())[row["kind"]] += 1
        if row["round"]:
            rounds.setdefault(row["round"], Counter())[row["kind"]] += 1
    listed = [i for part in PARTS for i in split_ids[part]]
    return {
        "rows": len(rows),
        "kinds": {split: dict(sorted(c.items())) for split, c in sorted(kinds.items())},
        "rounds": {r: dict(sorted(rounds[r].items())) for r in sorted(rounds, key=int)},
        "listed_without_row": sum(1 for i in listed if i not in rows),
        "rows_not_listed": len(set(rows) - set(listed)),
    }


def dataset_info(ds, n_jobs: int = 1, progress: Progress = silent) -> dict:
    """Everything ``info`` reports, as a JSON-ready dict. Ids whose image or mask cannot be read,
    or whose sizes differ, are listed under ``problems`` and left out of the per-part counts
    (``images`` counts the split lists)."""
    split_ids = {part: ds.ids(part) for part in PARTS}
    unique = list(dict.fromkeys(i for part in PARTS for i in split_ids[part]))
    facts, problems = collect_facts(ds, unique, n_jobs, progress)
    manifest = ds.manifest()
    out: dict = {
        "path": str(getattr(ds, "root", "")),
        "kind": "built" if manifest is not None else "source",
        "split": getattr(ds, "split", None),
        "images": {**{part: len(split_ids[part]) for part in PARTS}, "total": len(unique)},
        "parts": {part: summarize_part([facts[i] for i in split_ids[part] if i in facts]) for part in PARTS},
        "problems": [{"id": i, "problem": problems[i]} for i in unique if i in problems],
    }
    train = [facts[i] for i in split_ids["train"] if i in facts]
    out["img_norm_cfg"] = {"part": "train", **norm_from_sums([f[5] for f in train])}
    if manifest is not None:
        out["manifest"] = summarize_manifest(manifest, split_ids)
        record = build_record(ds)
        if record is not None:
            out["build"] = {k: record.get(k) for k in ("command", "version", "parameters", "source", "img_norm_cfg",
                                                       "counts") if k in record}
            root = getattr(ds, "root", None)
            out["build"]["runs"] = read_runs(root) if root is not None and root.is_dir() else []
    return out


def _counter_text(d: dict, sep: str = " x") -> str:
    return ", ".join(f"{k}{sep}{v}" for k, v in d.items())


def _sizes_text(part: dict, shown: int = 4) -> str:
    sizes = part["sizes"]
    if len(sizes) <= shown:
        return _counter_text(sizes)
    r = part["size_range"]
    first = dict(list(sizes.items())[:shown])
    (w0, w1), (h0, h1) = r["width"], r["height"]
    return f"{len(sizes)} distinct (width {w0}..{w1}, height {h0}..{h1}); most common {_counter_text(first)}"


def format_info(info: dict) -> str:
    """The human-readable report of :func:`dataset_info`."""
    im = info["images"]
    lines = [f"{info['path']}: {info['kind']} dataset, split {info['split']}",
             f"images: {im['train']} train + {im['test']} test = {im['total']}"]
    for part in PARTS:
        p = info["parts"][part]
        px = p["target_pixels"]
        lines += [f"{part}: {p['images']} images, {p['targets']} targets",
                  f"  sizes: {_sizes_text(p)}",
                  f"  modes: {_counter_text(p['modes'])}",
                  f"  targets per image: {_counter_text(p['targets_per_image'], ': ')}",
                  f"  target pixels: min {px['min']}, median {px['median']:g}, max {px['max']}" if px
                  else "  target pixels: no target",
                  f"  gray mean {p['mean']:.4f}, std {p['std']:.4f}"]
    if info["problems"]:
        lines.append(f"problems: {len(info['problems'])} id(s) left out of the counts above")
        lines += [f"  {p['id']}: {p['problem']}" for p in info["problems"]]
    m = info.get("manifest")
    if m:
        lines.append(f"manifest: {m['rows']} rows; " + "; ".join(
            f"{split}: {_counter_text(k, ' ')}" for split, k in m["kinds"].items()))
        for r, k in m["rounds"].items():
            lines.append(f"  round {r}: {_counter_text(k, ' ')}")
        if m["listed_without_row"] or m["rows_not_listed"]:
            lines.append(f"  mismatch: {m['listed_without_row']} listed id(s) without a row, "
                         f"{m['rows_not_listed']} row(s) not in the split lists")
    b = info.get("build")
    if b:
        params = b.get("parameters") or {}
        lines.append(f"build: {b.get('command', '?')} (sirst-synth {b.get('version', '?')}): "
                     + " ".join(f"{k}={v}" for k, v in params.items()))
        src = b.get("source") or {}
        if src:
            lines.append(f"  source: {src.get('path')} ({src.get('train')} train, {src.get('test')} test,"
                         f" fingerprint {str(src.get('fingerprint', ''))[:12]})")
        for run in b.get("runs") or []:
            lines.append(f"  run: {run.get('mode')} in {run.get('seconds')} s, finished {run.get('finished')}")
    n = info.get("img_norm_cfg")
    if n:
        lines.append(f"img_norm_cfg (train, gray 0..255, all pixels pooled): mean {n['mean']:.6f}, std {n['std']:.6f}"
                     f" over {n['images']} images")
    return "\n".join(lines)
