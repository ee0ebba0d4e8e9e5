"""U-Net with Attention Feature Fusion (the paper's Eq. 5-6) on every conv block.

Encoder: five conv blocks of ``w, 2w, 4w, 8w, 16w`` channels with 4 max-pool down-samplings.
Decoder: at each of the 4 levels, bilinear 2x up-sampling and a 3x3 conv (``up-conv``) to the
skip's channel count, concatenation with the skip, and a conv block. A conv block is
conv3x3-BN-ReLU-conv3x3-BN, then channel attention, spatial attention, then ReLU. A final 1x1
conv gives one logit per pixel. Input: one channel (normalised gray); the input side must be a
multiple of 16. The default width 32 has 8.69 M parameters (the paper reports 8.79 M).
"""
from __future__ import annotations

import torch
from torch import nn

from sirst_synth.train.config import DEFAULT_WIDTH

#: hidden layer of the channel-attention MLP = channels // REDUCTION (at least 1).
REDUCTION = 16
#: down-samplings: input sides must be multiples of 2 ** DEPTH.
DEPTH = 4


class ChannelAttention(nn.Module):
    """Eq. 5: sigmoid(MLP(maxpool F) + MLP(avgpool F)) * F, one shared MLP with one hidden layer."""

    def __init__(self, channels: int, reduction: int = REDUCTION) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled_max = torch.amax(x, dim=(2, 3), keepdim=True)
        pooled_avg = torch.mean(x, dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.mlp(pooled_max) + self.mlp(pooled_avg)) * x


class SpatialAttention(nn.Module):
    """Eq. 6: sigmoid(conv7x7([max_c F, mean_c F])) * F."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([torch.amax(x, dim=1, keepdim=True), torch.mean(x, dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled)) * x


class AttentionFeatureFusion(nn.Sequential):
    """Channel attention then spatial attention (Fig. 8)."""

    def __init__(self, channels: int) -> None:
        super().__init__(ChannelAttention(channels), SpatialAttention())


class ConvBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, Attention Feature Fusion, ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
        )
        self.aff = AttentionFeatureFusion(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.aff(self.convs(x)))


class UpConv(nn.Sequential):
    """Bilinear 2x up-sampling, conv3x3-BN-ReLU to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UNetAFF(nn.Module):
    """U-Net, 4 down-samplings, Attention Feature Fusion on every conv block; 1 logit per pixel."""

    def __init__(self, width: int = DEFAULT_WIDTH, in_channels: int = 1) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.width = width
        self.in_channels = in_channels
        chans = [width * 2**level for level in range(DEPTH + 1)]
        self.encoder = nn.ModuleList(
            ConvBlock(c_in, c_out) for c_in, c_out in zip([in_channels, *chans[:-1]], chans)
        )
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList(UpConv(chans[i + 1], chans[i]) for i in reversed(range(DEPTH)))
        self.decoder = nn.ModuleList(ConvBlock(2 * chans[i], chans[i]) for i in reversed(range(DEPTH)))
        self.head = nn.Conv2d(chans[0], 1, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x if level == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, block in zip(self.ups, self.decoder):
            x = block(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)


def init_weights(model: nn.Module) -> None:
    """Xavier-normal conv weights, zero conv biases (BatchNorm keeps weight 1, bias 0)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.xavier_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
