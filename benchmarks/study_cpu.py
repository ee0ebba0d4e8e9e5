"""The CPU study: does SIRST-5K help the reference model at equal steps? (docs/experiment.md)

Two regimes and their ablations, each a ``sirst-synth compare`` of 3 seeds, fp32, one thread per run, ``-j 2``:

- *full*: NUDT-SIRST's 663 train images vs the default SIRST-5K built from them (``--seed`` = the
  run's seed, so the seed changes the build too);
- *low*: 66 train images (a seeded choice, committed in ``results/study-cpu-train66.txt``) vs the
  build from those 66 in the same proportion (``--total`` 554), and three ablations: displacement
  only (``sample-noise`` + ``displace --rounds 7``: 66 + 462 images), negatives only (``negaug``:
  the 66 and their rotated negatives; no randomness, so one set for all seeds) and ``--fit tile``;
- *low-noneg*, *full-noneg*: the grouped arms of each regime again with ``--neg-loss none``;
- *low-b32*, *low-b32-noneg*: the low regime at batch 32: the real arm and SIRST-554 with the
  group loss, then SIRST-554 and negatives-only without it.

Every set's test split is NUDT-SIRST's 664 test images; every run is scored on them. Resumable:
run it again and it continues (builds with ``--resume``, finished runs kept). Writes the two study
folders under ``--work``, then ``results/study-cpu.json`` and ``docs/study-cpu.png``.

    python benchmarks/study_cpu.py --nudt ../shared/datasets/NUDT-SIRST --work runs/study-cpu
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SEEDS = (0, 1, 2)
LOW_N = 66
FULL_TOTAL = 5562
#: the study's model and batch: chosen from measured one-thread step times (docs/experiment.md).
TRAIN = ["--width", "8", "--crop", "64", "--batch-size", "8", "--device", "cpu", "--precision", "fp32",
         "--log-every", "50", "--save-every-min", "2"]
REGIMES = {
    # steps: the low-data real arm sees each of its 66 images 1000 x 8 / 66 = 121 times
    "low": {"steps": 1000, "curve_every": 100},
    "full": {"steps": 2000, "curve_every": 200},
    # the low regime's grouped arms again without the group loss (--neg-loss none: every image is its
    # own group, batches are drawn image by image): does the data hurt, or the way groups fill a batch?
    "low-noneg": {"steps": 1000, "curve_every": 100, "extra": ["--neg-loss", "none"]},
    # the full regime again without the group loss; the real arm has no groups, so its runs must
    # equal the full regime's (a check that the runs are deterministic)
    "full-noneg": {"steps": 2000, "curve_every": 200, "extra": ["--neg-loss", "none"]},
    # the low regime at batch 32 (a group is then a sixteenth to an eighth of a batch, not a quarter
    # to a half), with and without the group loss: does the group loss stop hurting at a larger batch?
    "low-b32": {"steps": 1000, "curve_every": 100, "extra": ["--batch-size", "32"]},
    "low-b32-noneg": {"steps": 1000, "curve_every": 100, "extra": ["--batch-size", "32", "--neg-loss", "none"]},
}
CURVE_IMAGES = 64
DISPLACE_ROUNDS = 7  # 66 x (1 + 7) = 528 images, the nearest to 554 that displace alone can make


def cli(*args: str) -> None:
    """Run ``sirst-synth`` (this checkout's) and stop on failure."""
    cmd = [sys.executable, "-m", "sirst_synth", *args]
    print("$ sirst-synth " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})


def low_data_ids(nudt: Path, n: int = LOW_N) -> list[str]:
    """``n`` of NUDT-SIRST's train ids, drawn with seed 0 (sorted)."""
    ids = (nudt / "50_50" / "train.txt").read_text().split()
    rng = np.random.default_rng(np.random.SeedSequence([0, int.from_bytes(b"low-data", "big")]))
    return sorted(rng.choice(ids, size=n, replace=False).tolist())


def subset(nudt: Path, train: list[str], out: Path) -> Path:
    """A dataset of ``train`` and NUDT-SIRST's whole test split (hard links, or copies)."""
    if (out / "50_50" / "test.txt").is_file():
        return out
    test = (nudt / "50_50" / "test.txt").read_text().split()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in ("images", "masks", "50_50"):
        (tmp / sub).mkdir(parents=True)
    for id_ in train + test:
        for sub in ("images", "masks"):
            src, dst = nudt / sub / f"{id_}.png", tmp / sub / f"{id_}.png"
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
    (tmp / "50_50" / "train.txt").write_text("".join(f"{i}\n" for i in train))
    (tmp / "50_50" / "test.txt").write_text("".join(f"{i}\n" for i in test))
    os.replace(tmp, out)
    return out


def built(path: Path) -> bool:
    """A complete dataset folder, or a noise bank file (written whole)."""
    return path.is_file() or (path / "sirst-synth.json").is_file()


def once(path: Path, *args: str) -> None:
    """Run a build-like command into ``path`` unless it is complete (``--resume`` when started)."""
    if built(path):
        return
    cli(*args, "-o", str(path), *(["--resume"] if path.exists() else []))


def prepare(nudt: Path, data: Path, jobs: int) -> Path:
    """Every training set of the study, under ``data``; return the low-data source."""
    train66 = low_data_ids(nudt)
    (RESULTS / "study-cpu-train66.txt").write_text("".join(f"{i}\n" for i in train66))
    low = subset(nudt, train66, data / "NUDT-66")
    low_total = round(FULL_TOTAL * LOW_N / 663)
    j = ["-j", str(jobs)]
    once(data / "noise-66.h5", "sample-noise", "--src", str(low), *j)
    once(data / "neg-66", "negaug", "--src", str(low), *j)
    for seed in SEEDS:
        s = ["--seed", str(seed)]
        once(data / f"full-s{seed}", "build", "--src", str(nudt), *s, *j)
        once(data / f"low-s{seed}", "build", "--src", str(low), "--total", str(low_total), *s, *j)
        once(data / f"tile-s{seed}", "build", "--src", str(low), "--total", str(low_total), "--fit", "tile", *s, *j)
        once(data / f"disp-s{seed}", "displace", "--src", str(low), "--noise", str(data / "noise-66.h5"),
             "--alpha", "0.1", "--rounds", str(DISPLACE_ROUNDS), *s, *j)
    return low


def compare(work: Path, regime: str, arms: list[str], nudt: Path, jobs: int) -> None:
    """One regime's ``sirst-synth compare`` (resumes a started one)."""
    spec = REGIMES[regime]
    args = ["compare", *[f"--arm={a}" for a in arms], "--test", str(nudt), "--seeds", ",".join(map(str, SEEDS)),
            "--steps", str(spec["steps"]), "--curve-every", str(spec["curve_every"]),
            "--curve-images", str(CURVE_IMAGES), *TRAIN, *spec.get("extra", []), "-j", str(jobs),
            "-o", str(work / regime)]
    print("$ sirst-synth " + " ".join(args), flush=True)
    done = subprocess.run([sys.executable, "-m", "sirst_synth", *args], env={**os.environ, "PYTHONPATH": str(REPO)},
                          check=False)
    if done.returncode not in (0, 130):
        raise SystemExit(done.returncode)


def collect(work: Path) -> dict[str, object]:
    """Both regimes' table.json in one file, and the curves picture of both."""
    sys.path.insert(0, str(REPO))
    from sirst_synth.train.report import load_study, plot_curves, summarise

    result: dict[str, object] = {"train_options": TRAIN, "regimes": {}}
    pictures = []
    for regime in REGIMES:
        if (work / regime / "study.json").is_file():
            summary = summarise(load_study(work / regime), work / regime)
            result["regimes"][regime] = summary  # type: ignore[index]
            pictures.append((regime, summary))
    (RESULTS / "study-cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    for regime, summary in pictures:
        plot_curves(summary, work / f"curves-{regime}.png",
                    title=f"{regime} regime: {summary['study']['steps']} steps of 8 crops of 64 px, width 8, "
                          f"fp32; lines: mean of seeds on {CURVE_IMAGES} test images (band: min-max); "
                          "x: whole test split")
    _stack([work / f"curves-{regime}.png" for regime, _ in pictures], REPO / "docs" / "study-cpu.png")
    return result


def _stack(paths: list[Path], out: Path) -> None:
    import cv2

    images = [cv2.imread(str(p)) for p in paths if p.is_file()]
    if images:
        cv2.imwrite(str(out), np.vstack(images))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nudt", type=Path, default=REPO.parent / "shared" / "datasets" / "NUDT-SIRST")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "study-cpu")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="runs at once (one thread each)")
    parser.add_argument("--only", choices=sorted(REGIMES), action="append", help="run only this regime")
    parser.add_argument("--collect", action="store_true", help="only gather the results so far")
    args = parser.parse_args()
    nudt, work = args.nudt.resolve(), args.work.resolve()
    data = work / "data"
    if not args.collect:
        low = prepare(nudt, data, args.jobs)
        arms = {
            "full": [f"NUDT-SIRST={nudt}", f"SIRST-5K={data}/full-s{{seed}}"],
            "low": [f"NUDT-66={low}", f"SIRST-554={data}/low-s{{seed}}", f"displace-only={data}/disp-s{{seed}}",
                    f"negatives-only={data}/neg-66", f"fit-tile={data}/tile-s{{seed}}"],
            "low-noneg": [f"SIRST-554={data}/low-s{{seed}}", f"negatives-only={data}/neg-66"],
            "full-noneg": [f"NUDT-SIRST={nudt}", f"SIRST-5K={data}/full-s{{seed}}"],
            "low-b32": [f"NUDT-66={low}", f"SIRST-554={data}/low-s{{seed}}"],
            "low-b32-noneg": [f"SIRST-554={data}/low-s{{seed}}", f"negatives-only={data}/neg-66"],
        }
        for regime in args.only or list(REGIMES):
            compare(work, regime, arms[regime], nudt, args.jobs)
    collect(work)


if __name__ == "__main__":
    main()
