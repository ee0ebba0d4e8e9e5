"""``--precision``: the formats as CUDA computes them, emulated on the CPU to measure their quality."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sirst_synth.cli import main
from sirst_synth.train.loop import TrainConfig, train
from sirst_synth.train.model import UNetAFF
from sirst_synth.train.precision import CUDA_DEFAULT, PRECISIONS, Precision, resolve_precision, round_tf32, round_to

from train_fixtures import blob_dataset

CPU = torch.device("cpu")


def test_tf32_keeps_ten_mantissa_bits_rounding_to_nearest_even() -> None:
    one_ulp = 2.0 ** -10  # TF32's spacing just above 1
    x = torch.tensor([1.0, 1 + one_ulp, 1 + one_ulp / 2, 1 + 3 * one_ulp / 2, 1 + one_ulp / 4, -3.14159265])
    out = round_tf32(x)
    assert out[:5].tolist() == [1.0, 1 + one_ulp, 1.0, 1 + 2 * one_ulp, 1.0]  # ties go to the even mantissa
    assert abs(out[5].item() + 3.14159265) <= 3.15 * 2.0 ** -11
    values = torch.randn(10_000) * 100
    assert torch.all((round_tf32(values) - values).abs() <= values.abs() * 2.0 ** -11)
    assert torch.equal(round_tf32(round_tf32(values)), round_tf32(values))


def test_low_formats_round_like_the_dtype() -> None:
    x = torch.randn(1000)
    assert torch.equal(round_to(x, "bf16"), x.bfloat16().float())
    assert torch.equal(round_to(x, "fp16"), x.half().float())
    assert torch.equal(round_to(x, "fp32"), x)


def test_auto_is_the_cuda_default_on_cuda_and_fp32_on_the_cpu() -> None:
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == CUDA_DEFAULT
    assert resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(ValueError, match="fp64"):
        resolve_precision("fp64", CPU)


@pytest.mark.parametrize("name", PRECISIONS)
def test_emulation_changes_the_numbers_not_the_model(name: str) -> None:
    torch.manual_seed(0)
    reference = UNetAFF(4)
    torch.manual_seed(0)
    model = Precision(name, CPU).prepare(UNetAFF(4))
    assert model.state_dict().keys() == reference.state_dict().keys()
    x = torch.randn(2, 1, 32, 32, requires_grad=True)
    out, ref = model(x), reference(x)
    if name == "fp32":
        assert torch.equal(out, ref)
    else:
        assert not torch.equal(out, ref)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_bf16_moves_the_logits_most() -> None:
    """bf16's 7-bit mantissa against the 10 bits of tf32 and fp16 (the review measured 23-37 % at width 32)."""
    x = torch.randn(2, 1, 32, 32)
    errors = {}
    for name in PRECISIONS:
        torch.manual_seed(0)
        errors[name] = Precision(name, CPU).prepare(UNetAFF(4))(x).detach()
    ref = errors.pop("fp32")
    relative = {name: ((out - ref).abs().mean() / ref.abs().mean()).item() for name, out in errors.items()}
    assert relative["tf32"] < 0.1 and relative["fp16"] < 0.1
    assert relative["bf16"] > 2 * max(relative["tf32"], relative["fp16"])


def test_emulated_half_precision_rounds_outputs_and_gradients() -> None:
    conv = Precision("fp16", CPU).prepare(torch.nn.Conv2d(1, 2, 3))
    x = torch.randn(1, 1, 8, 8, requires_grad=True)
    y = conv(x)
    assert torch.equal(y, y.half().float())
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.equal(x.grad, x.grad.half().float())


def test_train_runs_and_records_each_precision_on_the_cpu(tmp_path: Path) -> None:
    data = blob_dataset(tmp_path / "data", 6)
    for name in ("tf32", "fp16"):
        summary = train(TrainConfig(data=str(data), out=str(tmp_path / name), width=4, crop=32, batch_size=4,
                                    steps=2, log_every=1, device="cpu", precision=name), log=lambda _: None)
        assert summary["precision_name"] == name and "emulated" in summary["precision"]
        assert ("loss scaling" in summary["precision"]) == (name == "fp16")  # fp16 underflows without it
        assert summary["done"] and summary["last"]["mIoU"] is not None


def test_train_and_eval_help_list_precision() -> None:
    for command in ("train", "eval"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert "--precision [auto|fp32|tf32|bf16|fp16]" in result.output
