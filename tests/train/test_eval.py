"""The eval command: score a folder of predicted masks or a checkpoint (docs/method.md section 8)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sirst_synth.cli.train import eval_command
from sirst_synth.store import imageio
from sirst_synth.train import checkpoint
from sirst_synth.train.model import UNetAFF

from train_fixtures import blob_scene, write_dataset

torch.set_num_threads(1)


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    """Test images of two sizes, none a multiple of 32; 'c' is a train image."""
    rng = np.random.default_rng(0)
    items = {"a": blob_scene(rng, (40, 60), 1), "b": blob_scene(rng, (64, 50), 2), "c": blob_scene(rng, (32, 32), 1)}
    return write_dataset(tmp_path / "data", items, ["c"], ["a", "b"])


def write_preds(folder: Path, preds: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for id_, mask in preds.items():
        imageio.write_atomic(folder / f"{id_}.png", imageio.encode_png(mask))
    return folder


def run_eval(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(eval_command, list(args))
    return result.exit_code, result.stdout, result.output


def test_perfect_predictions_score_100(data: Path, tmp_path: Path) -> None:
    preds = write_preds(tmp_path / "pred", {i: imageio.read_mask(data / "masks" / f"{i}.png") for i in ("a", "b")})
    code, out, _ = run_eval("--pred", str(preds), "--data", str(data), "--json")
    assert code == 0
    assert json.loads(out) == {"mIoU": 100.0, "nIoU": 100.0, "Pd": 100.0, "Fa": 0.0, "images": 2, "targets": 3}


def test_false_alarms_over_images_of_two_sizes(data: Path, tmp_path: Path) -> None:
    a = imageio.read_mask(data / "masks" / "a.png")
    b = imageio.read_mask(data / "masks" / "b.png")
    a = a.copy()
    a[0:2, 0:2] = 200  # 4 false-alarm pixels (> 127), far from the target
    b = np.where(b > 0, 100, 0).astype(np.uint8)  # <= 127: no prediction in b at all
    preds = write_preds(tmp_path / "pred", {"a": a, "b": b})
    code, out, _ = run_eval("--pred", str(preds), "--data", str(data), "--json")
    result = json.loads(out)
    assert code == 0
    assert result["Fa"] == pytest.approx(1e6 * 4 / (40 * 60 + 64 * 50))
    assert result["Pd"] == pytest.approx(100 / 3)  # a's one target of 3
    assert result["mIoU"] == pytest.approx(100 * 9 / (9 + 4 + 18))  # a: 9 / 13; b: 0 / 18
    assert result["nIoU"] == pytest.approx(100 * (9 / 13 + 0) / 2)


def test_table_output(data: Path, tmp_path: Path) -> None:
    preds = write_preds(tmp_path / "pred", {i: imageio.read_mask(data / "masks" / f"{i}.png") for i in ("a", "b")})
    code, out, _ = run_eval("--pred", str(preds), "--data", str(data))
    assert code == 0
    header, row = out.splitlines()[-2:]
    assert header.split() == ["mIoU", "nIoU", "Pd", "Fa", "images", "targets"]
    assert row.split() == ["100.00", "100.00", "100.00", "0.00", "2", "3"]


def test_missing_prediction_names_the_id(data: Path, tmp_path: Path) -> None:
    preds = write_preds(tmp_path / "pred", {"a": imageio.read_mask(data / "masks" / "a.png")})
    code, out, output = run_eval("--pred", str(preds), "--data", str(data), "--json")
    assert code == 1 and out == ""
    assert output.strip().splitlines() == [f"error: {preds / 'b.png'}: no prediction for id b"]


def test_prediction_of_the_wrong_size(data: Path, tmp_path: Path) -> None:
    preds = write_preds(tmp_path / "pred", {"a": np.zeros((40, 60), np.uint8), "b": np.zeros((10, 10), np.uint8)})
    code, _, output = run_eval("--pred", str(preds), "--data", str(data))
    assert code == 1 and "id b" in output and "Traceback" not in output


def test_checkpoint_scores_and_saves_masks_any_size(data: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    ckpt = tmp_path / "model.pt"
    checkpoint.save(ckpt, checkpoint.model_state(UNetAFF(width=4), mean=80.0, std=10.0))
    saved = tmp_path / "saved"
    code, out, output = run_eval("--checkpoint", str(ckpt), "--data", str(data), "--json", "--save-pred", str(saved),
                                 "--device", "cpu")
    assert code == 0, output
    from_model = json.loads(out)
    assert from_model["images"] == 2 and from_model["targets"] == 3
    masks = {i: imageio.read_mask(saved / f"{i}.png") for i in ("a", "b")}
    assert masks["a"].shape == (40, 60) and masks["b"].shape == (64, 50)
    assert all(set(np.unique(m)) <= {0, 255} for m in masks.values())
    # the saved masks, scored as a folder, give the same scores
    code, out, _ = run_eval("--pred", str(saved), "--data", str(data), "--json")
    assert code == 0 and json.loads(out) == from_model


def test_train_part(data: Path, tmp_path: Path) -> None:
    preds = write_preds(tmp_path / "pred", {"c": imageio.read_mask(data / "masks" / "c.png")})
    code, out, _ = run_eval("--pred", str(preds), "--data", str(data), "--part", "train", "--json")
    assert code == 0 and json.loads(out)["images"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "exactly one of --checkpoint and --pred"),
        (["--checkpoint", "x.pt", "--pred", "p"], "exactly one of --checkpoint and --pred"),
        (["--pred", "p", "--save-pred", "s"], "--save-pred needs --checkpoint"),
    ],
)
def test_usage_errors(data: Path, args: list[str], message: str) -> None:
    code, _, output = run_eval(*args, "--data", str(data))
    assert code == 2 and message in output


def test_not_a_checkpoint(data: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    code, _, output = run_eval("--checkpoint", str(bad), "--data", str(data))
    assert code == 1 and "not a readable checkpoint" in output and "Traceback" not in output
    code, _, output = run_eval("--checkpoint", str(tmp_path / "none.pt"), "--data", str(data))
    assert code == 1 and "checkpoint not found" in output


def test_scoring_a_folder_does_not_import_torch(data: Path, tmp_path: Path) -> None:
    preds = write_preds(tmp_path / "pred", {i: imageio.read_mask(data / "masks" / f"{i}.png") for i in ("a", "b")})
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from sirst_synth.cli.train import eval_command\n"
        f"r = CliRunner().invoke(eval_command, ['--pred', {str(preds)!r}, '--data', {str(data)!r}, '--json'])\n"
        "print(r.exit_code, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "False"]


def test_other_list_names(data: Path, tmp_path: Path) -> None:
    (data / "50_50" / "train.txt").rename(data / "50_50" / "trainval.txt")
    preds = write_preds(tmp_path / "pred", {"c": imageio.read_mask(data / "masks" / "c.png")})
    code, out, output = run_eval("--pred", str(preds), "--data", str(data), "--part", "train",
                                 "--train-list", "trainval.txt", "--json")
    assert code == 0 and json.loads(out)["images"] == 1
    code, _, output = run_eval("--pred", str(preds), "--data", str(data), "--part", "train")
    assert code == 1 and "trainval.txt" in output  # the error lists the split files found


def test_eval_ends_with_a_summary_line_with_seconds(data: Path, tmp_path: Path) -> None:
    preds = write_preds(tmp_path / "pred", {i: imageio.read_mask(data / "masks" / f"{i}.png") for i in ("a", "b")})
    result = CliRunner().invoke(eval_command, ["--pred", str(preds), "--data", str(data), "--json"])
    assert result.exit_code == 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"eval: 2 images, 3 targets of {data} (50_50/test) scored in ") and last.endswith(" s")
    json.loads(result.stdout)  # the JSON alone on stdout
