"""Numeric precision of training and scoring: ``fp32``, ``tf32``, ``bf16``, ``fp16``.

On CUDA each is what the hardware does: ``fp32`` with TF32 switched off, ``tf32`` (fp32 tensors,
convolutions and matrix products on TF32 tensor cores), ``bf16`` and ``fp16`` autocast (``fp16``
with the loss scaler). On the CPU ``fp32`` is native and the other three are **emulated** for
measuring their effect on training quality, not their speed: every convolution's operands are
rounded to the format and its products accumulated in fp32, as tensor cores do. ``tf32`` rounds
the inputs, weights and incoming gradients to TF32's 10-bit mantissa (outputs stay fp32);
``bf16`` and ``fp16`` round the inputs, weights, outputs and every gradient through them to the
format, as autocast's casts do (elementwise layers then run in fp32 on those values).

The CUDA default, :data:`CUDA_DEFAULT`, is fp32 (TF32 off): measured this way (docs/experiment.md,
"Precision"; width 8, 128 x 128 crops, batch 8, 800 steps, 2 seeds), fp32 scored 47.6 / 49.7 mIoU
and every lower format lost 20 or more mIoU on at least one seed (tf32 25.9 / 42.1, bf16 22.8 /
51.2, fp16 with loss scaling 28.2 / 25.6).
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from types import MethodType
from typing import Any, TypeVar

import torch
from torch import nn

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
#: ``--precision auto`` on CUDA (the CPU runs fp32).
CUDA_DEFAULT = "fp32"
_LOW = {"bf16": torch.bfloat16, "fp16": torch.float16}
ModuleT = TypeVar("ModuleT", bound=nn.Module)


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` -> :data:`CUDA_DEFAULT` on CUDA, ``fp32`` elsewhere; any other name as given."""
    if name == "auto":
        return CUDA_DEFAULT if device.type == "cuda" else "fp32"
    if name not in PRECISIONS:
        raise ValueError(f"precision {name!r} is not one of {', '.join(PRECISIONS)}")
    return name


def round_tf32(x: torch.Tensor) -> torch.Tensor:
    """fp32 values rounded (to nearest, ties to even) to TF32's 10-bit mantissa."""
    bits = x.contiguous().view(torch.int32)
    keep = (bits >> 13) & 1
    return ((bits + 0xFFF + keep) & ~0x1FFF).view(torch.float32)


def round_to(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` rounded to the values of format ``name`` (returned as ``x``'s dtype)."""
    if name == "tf32":
        return round_tf32(x)
    if name in _LOW:
        return x.to(_LOW[name]).to(x.dtype)
    return x


class _Cast(torch.autograd.Function):
    """A cast to a low-precision format and back: the value and its gradient are both rounded."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, name: str) -> torch.Tensor:
        ctx.name = name
        return round_to(x, name)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return round_to(grad, ctx.name), None


class _Operand(torch.autograd.Function):
    """A tensor-core operand: the value is rounded, the gradient that leaves it is not."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, name: str) -> torch.Tensor:
        return round_to(x, name)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class _GradOperand(torch.autograd.Function):
    """The output of a tensor-core product: its incoming gradient is an operand, so it is rounded."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, name: str) -> torch.Tensor:
        ctx.name = name
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return round_to(grad, ctx.name), None


def _emulated_forward(name: str) -> Callable[[nn.Conv2d, torch.Tensor], torch.Tensor]:
    def forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        if name == "tf32":
            out = self._conv_forward(_Operand.apply(x, name), _Operand.apply(self.weight, name), self.bias)
            return _GradOperand.apply(out, name)
        bias = None if self.bias is None else _Cast.apply(self.bias, name)
        out = self._conv_forward(_Cast.apply(x, name), _Cast.apply(self.weight, name), bias)
        return _Cast.apply(out, name)
    return forward


@dataclass(frozen=True)
class Precision:
    """One precision on one device: how to set the model up, the autocast to run it under."""

    name: str
    device: torch.device

    @property
    def emulated(self) -> bool:
        """True on the CPU for anything but fp32 (rounding in the convolutions, see the module)."""
        return self.device.type != "cuda" and self.name != "fp32"

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The CUDA autocast dtype (bf16, fp16), else None."""
        return _LOW.get(self.name) if self.device.type == "cuda" else None

    @property
    def loss_scaling(self) -> bool:
        """fp16 trains through the loss scaler (emulated fp16 too: its gradients underflow as on CUDA)."""
        return self.name == "fp16"

    def describe(self) -> str:
        """One phrase for the log, e.g. ``fp16 autocast + loss scaling`` or ``bf16 (emulated on cpu)``."""
        if self.emulated:
            return (f"{self.name} (emulated on {self.device.type}: rounded convolution operands"
                    + (", loss scaling)" if self.loss_scaling else ")"))
        if self.autocast_dtype is not None:
            return f"{self.name} autocast" + (" + loss scaling" if self.loss_scaling else "")
        return self.name

    def prepare(self, model: ModuleT) -> ModuleT:
        """Set the device's TF32 switches, or emulate the format in ``model``'s convolutions."""
        if self.device.type == "cuda":
            allow = self.name == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = allow
            torch.backends.cudnn.allow_tf32 = allow
        elif self.emulated:
            for module in model.modules():
                if isinstance(module, nn.Conv2d):
                    module.forward = MethodType(_emulated_forward(self.name), module)  # type: ignore[method-assign]
        return model

    def autocast(self) -> AbstractContextManager[Any]:
        """The autocast context of a forward pass (a no-op unless bf16/fp16 on CUDA)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)
