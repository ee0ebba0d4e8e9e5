"""sirst_synth.run.stages: the stage objects called directly on a tiny synthetic dataset."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from sirst_synth.errors import ParamError, PlanError, SourceProblems
from sirst_synth.plan.params import BuildParams, DisplaceParams, NegaugParams, NoiseParams
from sirst_synth.run.jobs import Place
from sirst_synth.run.journal import Journal, run_recorded
from sirst_synth.run.options import RunOptions
from sirst_synth.run.stages.base import DatasetStage, Sources, chain, copied, scan_sources
from sirst_synth.run.stages.build import Build
from sirst_synth.run.stages.displace import Displace
from sirst_synth.run.stages.negaug import Negaug
from sirst_synth.run.stages.sample_noise import SampleNoise
from sirst_synth.store import imageio
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.layout import INFO_NAME, LOCK_NAME, RUN_LOG_NAME, state_dir
from sirst_synth.store.manifest import Row, new_row
from sirst_synth.store.noisebank import NoiseBank

SPLIT = "50_50"
TRAIN = [f"tr{i}" for i in range(6)]
TEST = ["te0", "te1"]
OPTS = RunOptions(n_jobs=1)
#: targets per image: 1 or 2, each a 3x3 window that differs under every rotation (3 negatives each)
TARGETS = {id_: 1 + i % 2 for i, id_ in enumerate(TRAIN + TEST)}


def write_source(root: Path) -> Dataset:
    for sub in ("images", "masks", SPLIT):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, id_ in enumerate(TRAIN + TEST):
        rng = np.random.default_rng(i)
        image = (50 + rng.integers(0, 6, (32, 32))).astype(np.uint8)
        mask = np.zeros((32, 32), np.uint8)
        for y, x in [(5, 5), (22, 20)][: TARGETS[id_]]:
            image[y:y + 3, x:x + 3] = np.arange(160, 250, 10, dtype=np.uint8).reshape(3, 3)
            mask[y:y + 3, x:x + 3] = 255
        (root / "images" / f"{id_}.png").write_bytes(imageio.encode_png(image))
        (root / "masks" / f"{id_}.png").write_bytes(imageio.encode_png(mask))
    (root / SPLIT / "train.txt").write_text("\n".join(TRAIN) + "\n")
    (root / SPLIT / "test.txt").write_text("\n".join(TEST) + "\n")
    return Dataset(root)


@pytest.fixture
def src(tmp_path) -> Dataset:
    return write_source(tmp_path / "src")


@pytest.fixture
def bank(src, tmp_path) -> Path:
    path = tmp_path / "noise.h5"
    SampleNoise(NoiseParams(grid=8)).run(src, path, OPTS)
    return path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def content_digest(root: Path) -> str:
    """Every file of the dataset except the run log (which holds timings) and the lock."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in (RUN_LOG_NAME, LOCK_NAME)):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


# -- sample-noise ------------------------------------------------------------------------------------


def test_sample_noise_writes_a_bank_of_train_patches_only(src, tmp_path):
    summary = SampleNoise(NoiseParams(grid=8)).run(src, tmp_path / "noise.h5", OPTS)
    with NoiseBank(tmp_path / "noise.h5") as bank:
        assert len(bank) == summary.patches > 0
        assert set(bank.source_id) <= set(TRAIN)
        assert bank.attrs["split"] == SPLIT
    assert (summary.images, summary.skipped) == (6, 0)


def test_sample_noise_validates_its_parameters_before_writing(src, tmp_path):
    out = tmp_path / "new" / "noise.h5"
    with pytest.raises(ParamError, match="--grid"):
        SampleNoise(NoiseParams(grid=0)).run(src, out, OPTS)
    assert not (tmp_path / "new").exists()


def test_sample_noise_with_no_noise_prone_region_writes_nothing(src, tmp_path):
    out = tmp_path / "new" / "noise.h5"
    with pytest.raises(PlanError, match="no noise-prone region"):
        SampleNoise(NoiseParams(grid=8, max_var=0.001)).run(src, out, OPTS)
    assert not (tmp_path / "new").exists()


def test_sample_noise_refuses_a_grid_too_fine_for_the_images(src, tmp_path):
    with pytest.raises(PlanError, match="use --grid <= 16"):
        SampleNoise(NoiseParams(grid=20)).run(src, tmp_path / "noise.h5", OPTS)
    assert not (tmp_path / "noise.h5").exists()


def test_sample_noise_rerun_gives_a_byte_identical_bank(src, tmp_path):
    # displace records the bank's sha256 and --resume compares it: a resampled bank must match
    SampleNoise(NoiseParams(grid=8)).run(src, tmp_path / "a.h5", OPTS)
    SampleNoise(NoiseParams(grid=8)).run(src, tmp_path / "b.h5", OPTS)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


# -- displace ----------------------------------------------------------------------------------------


def test_displace_adds_rounds_displaced_images_per_train_image(src, bank, tmp_path):
    out = tmp_path / "out"
    summary = Displace(DisplaceParams(alpha=0.3, rounds=2), bank).run(src, out, OPTS)
    assert (summary.train, summary.test, summary.original, summary.displaced) == (18, 2, 6, 12)
    train = lines(out / SPLIT / "train.txt")
    assert train[:6] == TRAIN
    assert sorted(train[6:]) == sorted(f"{i}_r{r}" for i in TRAIN for r in (0, 1))
    assert lines(out / SPLIT / "test.txt") == TEST
    assert len(list((out / "images").iterdir())) == len(list((out / "masks").iterdir())) == 20
    assert not state_dir(out).exists()


def test_displace_validates_its_parameters_before_writing(src, bank, tmp_path):
    with pytest.raises(ParamError, match="--alpha"):
        Displace(DisplaceParams(alpha=2.0), bank).run(src, tmp_path / "out", OPTS)
    assert not (tmp_path / "out").exists()


def test_displace_rerun_gives_byte_identical_files(src, bank, tmp_path):
    Displace(DisplaceParams(alpha=0.3), bank).run(src, tmp_path / "a", OPTS)
    Displace(DisplaceParams(alpha=0.3), bank).run(src, tmp_path / "b", OPTS)
    assert content_digest(tmp_path / "a") == content_digest(tmp_path / "b")


def test_displace_records_the_noise_bank_hash(src, bank, tmp_path):
    Displace(DisplaceParams(alpha=0.3), bank).run(src, tmp_path / "out", OPTS)
    info = json.loads((tmp_path / "out" / INFO_NAME).read_text())
    assert info["parameters"]["noise_bank_sha256"] == hashlib.sha256(bank.read_bytes()).hexdigest()


def test_displace_resume_of_a_complete_output_does_nothing(src, bank, tmp_path):
    out = tmp_path / "out"
    Displace(DisplaceParams(alpha=0.3), bank).run(src, out, OPTS)
    before = content_digest(out)
    summary = Displace(DisplaceParams(alpha=0.3), bank).run(src, out, RunOptions(n_jobs=1, resume=True))
    assert summary.mode == "complete"
    assert content_digest(out) == before


def test_a_displace_object_run_twice_writes_the_same_dataset_twice(src, bank, tmp_path):
    stage = Displace(DisplaceParams(alpha=0.3), bank)
    stage.run(src, tmp_path / "a", OPTS)
    stage.run(src, tmp_path / "b", OPTS)
    assert lines(tmp_path / "b" / SPLIT / "train.txt") == lines(tmp_path / "a" / SPLIT / "train.txt")


# -- negaug ------------------------------------------------------------------------------------------


def test_negaug_adds_each_train_image_followed_by_its_negatives(src, tmp_path):
    out = tmp_path / "out"
    summary = Negaug(NegaugParams(s=3)).run(src, out, OPTS)
    negatives = 3 * sum(TARGETS[i] for i in TRAIN)
    assert (summary.train, summary.negative, summary.original, summary.test) == (6 + negatives, negatives, 6, 2)
    expected = [x for i in TRAIN for x in [i, *(f"{i}_t{t}_k{k}" for t in range(1, TARGETS[i] + 1) for k in (1, 2, 3))]]
    assert lines(out / SPLIT / "train.txt") == expected


def test_negaug_validates_its_parameters_before_writing(src, tmp_path):
    with pytest.raises(ParamError, match="--s must be odd"):
        Negaug(NegaugParams(s=4)).run(src, tmp_path / "out", OPTS)
    assert not (tmp_path / "out").exists()


def test_negaug_refuses_a_window_larger_than_an_image_before_writing(src, tmp_path):
    with pytest.raises(PlanError, match="--s: .*larger than the 32x32 image"):
        Negaug(NegaugParams(s=33)).run(src, tmp_path / "out", OPTS)
    assert not (tmp_path / "out").exists()


def test_negaug_refuses_a_source_it_was_already_applied_to(src, tmp_path):
    Negaug(NegaugParams(s=3)).run(src, tmp_path / "once", OPTS)
    with pytest.raises(PlanError, match="would overwrite source images"):
        Negaug(NegaugParams(s=3)).run(Dataset(tmp_path / "once"), tmp_path / "twice", OPTS)
    assert not (tmp_path / "twice").exists()


def test_negaug_rerun_gives_byte_identical_files(src, tmp_path):
    Negaug(NegaugParams(s=3)).run(src, tmp_path / "a", OPTS)
    Negaug(NegaugParams(s=3)).run(src, tmp_path / "b", OPTS)
    assert content_digest(tmp_path / "a") == content_digest(tmp_path / "b")


# -- build -------------------------------------------------------------------------------------------

#: 12 generated images: the plan's first two units give 7 each, so the second one is cut to fit
BUILD = BuildParams(alpha=0.2, s=3, total=18, noise=NoiseParams(grid=8))


def test_build_writes_exactly_total_training_images(src, tmp_path):
    out = tmp_path / "out"
    summary = Build(BUILD).run(src, out, OPTS)
    assert (summary.train, summary.test, summary.original) == (18, 2, 6)
    assert summary.displaced + summary.negative == 12
    assert len(lines(out / SPLIT / "train.txt")) == 18
    assert not state_dir(out).exists()


def test_build_removes_the_files_of_a_unit_cut_to_fit(src, tmp_path):
    out = tmp_path / "out"
    Build(BUILD).run(src, out, OPTS)
    listed = set(lines(out / SPLIT / "train.txt")) | set(lines(out / SPLIT / "test.txt"))
    assert {p.stem for p in (out / "images").iterdir()} == listed
    assert {p.stem for p in (out / "masks").iterdir()} == listed


def test_build_validates_its_parameters_before_writing(src, tmp_path):
    with pytest.raises(ParamError, match="--total"):
        Build(BuildParams(total=0)).run(src, tmp_path / "out", OPTS)
    assert not (tmp_path / "out").exists()


def test_build_refuses_a_total_below_the_originals_before_writing(src, tmp_path):
    with pytest.raises(PlanError, match="--total 5 is smaller than the 6 original"):
        Build(BuildParams(total=5, noise=NoiseParams(grid=8))).run(src, tmp_path / "out", OPTS)
    assert not (tmp_path / "out").exists()


def test_build_rerun_gives_byte_identical_files(src, tmp_path):
    Build(BUILD).run(src, tmp_path / "a", OPTS)
    Build(BUILD).run(src, tmp_path / "b", OPTS)
    assert content_digest(tmp_path / "a") == content_digest(tmp_path / "b")


def test_a_bad_source_id_stops_a_stage_before_it_writes(src, tmp_path):
    (src.root / "images" / "tr2.png").unlink()
    with pytest.raises(SourceProblems, match="train id 'tr2'"):
        Negaug(NegaugParams(s=3)).run(src, tmp_path / "out", OPTS)
    assert not (tmp_path / "out").exists()


def test_skip_invalid_leaves_the_bad_id_out(src, tmp_path):
    (src.root / "images" / "tr2.png").unlink()
    summary = Negaug(NegaugParams(s=3)).run(src, tmp_path / "out", RunOptions(n_jobs=1, skip_invalid=True))
    assert summary.skipped == 1
    assert "tr2" not in lines(tmp_path / "out" / SPLIT / "train.txt")


# -- the extension point: a stage implementing only prepare and train_rows ------------------------------


@dataclass(frozen=True)
class FlipParams:
    mirror: bool = True

    def validate(self) -> None:
        if not self.mirror:
            raise ParamError("--mirror must be set")

    def record(self) -> dict[str, Any]:
        return {"mirror": self.mirror}


#: ids flip_one was called on; flip_one raises KeyboardInterrupt (a kill) on call number KILL_AT["n"]
CALLS: list[str] = []
KILL_AT: dict[str, int | None] = {"n": None}


def flip_one(id_: str, place: Place) -> list[Row]:
    CALLS.append(id_)
    if len(CALLS) == KILL_AT["n"]:
        raise KeyboardInterrupt
    image = place.src.read_image(id_)[:, ::-1]
    mask = place.src.read_mask(id_)[:, ::-1]
    out_id = f"{id_}_flip"
    png, mask_png = imageio.encode_png(np.ascontiguousarray(image)), imageio.encode_png(np.ascontiguousarray(mask))
    imageio.write_atomic(place.out / "images" / f"{out_id}.png", png)
    imageio.write_atomic(place.out / "masks" / f"{out_id}.png", mask_png)
    return [new_row(id=out_id, split="train", kind="displaced", source_id=id_, group=out_id,
                    sha256_image=imageio.sha256(png), sha256_mask=imageio.sha256(mask_png))]


@dataclass
class Flip(DatasetStage):
    name: ClassVar[str] = "flip"
    params: FlipParams

    def prepare(self, ds: Dataset, opts: RunOptions) -> Sources:
        return scan_sources(ds, opts)

    def train_rows(self, sources: Sources, place: Place, copies: Journal, opts: RunOptions):
        ids = [r.id for r in sources.train]
        journal = Journal(state_dir(place.out) / "flips.jsonl")
        for _ in run_recorded(flip_one, ids, ids, journal, opts.n_jobs, "flipping", opts.progress, place):
            pass
        return chain(copied(copies, "train"), journal.rows())


def test_a_stage_implementing_only_prepare_and_train_rows_writes_a_complete_dataset(src, tmp_path):
    out = tmp_path / "out"
    summary = Flip(FlipParams()).run(src, out, OPTS)
    assert (summary.train, summary.test, summary.mode) == (12, 2, "fresh")
    assert lines(out / SPLIT / "train.txt") == TRAIN + [f"{i}_flip" for i in TRAIN]
    info = json.loads((out / INFO_NAME).read_text())
    assert info["command"] == "flip"
    assert info["parameters"] == {"split": SPLIT, "mirror": True}
    assert np.array_equal(imageio.read_image(out / "images" / "tr0_flip.png"), src.read_image("tr0")[:, ::-1])


def test_a_new_stage_gets_parameter_validation_before_writing(src, tmp_path):
    with pytest.raises(ParamError, match="--mirror"):
        Flip(FlipParams(mirror=False)).run(src, tmp_path / "out", OPTS)
    assert not (tmp_path / "out").exists()


def test_a_new_stage_gets_resume_after_an_interruption(src, tmp_path, monkeypatch):
    fresh = tmp_path / "fresh"
    Flip(FlipParams()).run(src, fresh, OPTS)
    out = tmp_path / "out"
    monkeypatch.setitem(KILL_AT, "n", 4)
    CALLS.clear()
    with pytest.raises(KeyboardInterrupt):
        Flip(FlipParams()).run(src, out, OPTS)
    assert not (out / INFO_NAME).exists()
    monkeypatch.setitem(KILL_AT, "n", None)
    CALLS.clear()
    summary = Flip(FlipParams()).run(src, out, RunOptions(n_jobs=1, resume=True))
    assert summary.mode == "resumed"
    assert TRAIN[3:] == CALLS
    assert content_digest(out) == content_digest(fresh)
