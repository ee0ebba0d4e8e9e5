"""The U-Net + Attention Feature Fusion model (docs/method.md section 8, paper Eq. 5-6, Table II)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from sirst_synth.train.model import AttentionFeatureFusion, ChannelAttention, ConvBlock, SpatialAttention, UNetAFF, count_parameters

torch.set_num_threads(1)  # tiny tensors: threads only add overhead (and stall on a busy machine)

PAPER_PARAMETERS = 8.79e6


def test_default_width_has_the_papers_parameter_count() -> None:
    n = count_parameters(UNetAFF())
    assert abs(n - PAPER_PARAMETERS) / PAPER_PARAMETERS < 0.10
    assert n == 8_692_179  # the number the docs quote


def test_width_scales_the_model() -> None:
    small, base = count_parameters(UNetAFF(width=8)), count_parameters(UNetAFF(width=16))
    assert 3.5 < base / small < 4.5  # conv weights grow with width squared
    assert UNetAFF(width=8).encoder[0].convs[0].out_channels == 8
    assert UNetAFF(width=8).encoder[4].convs[0].out_channels == 8 * 16  # 4 down-samplings


@pytest.mark.parametrize("shape", [(32, 32), (48, 80), (64, 16)])
def test_one_logit_per_pixel_for_any_multiple_of_16(shape: tuple[int, int]) -> None:
    model = UNetAFF(width=4).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, *shape))
    assert out.shape == (2, 1, *shape)


def test_every_conv_block_has_attention_feature_fusion() -> None:
    model = UNetAFF(width=4)
    blocks = [m for m in model.modules() if isinstance(m, ConvBlock)]
    assert len(blocks) == 9  # 5 encoder + 4 decoder
    for block in blocks:
        assert isinstance(block.aff, AttentionFeatureFusion)
        channel, spatial = block.aff
        assert isinstance(channel, ChannelAttention) and isinstance(spatial, SpatialAttention)
        assert spatial.conv.kernel_size == (7, 7) and spatial.conv.in_channels == 2


def test_channel_attention_is_a_shared_mlp_on_max_and_mean() -> None:
    att = ChannelAttention(32)
    hidden = [m for m in att.mlp if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in hidden] == [(32, 2), (2, 32)]
    x = torch.randn(1, 32, 5, 5)
    expected = torch.sigmoid(att.mlp(x.amax((2, 3), keepdim=True)) + att.mlp(x.mean((2, 3), keepdim=True))) * x
    assert torch.allclose(att(x), expected)


def test_spatial_attention_weighs_pixels_by_channel_max_and_mean() -> None:
    att = SpatialAttention()
    x = torch.randn(1, 6, 9, 9)
    pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)
    assert torch.allclose(att(x), torch.sigmoid(att.conv(pooled)) * x)


def test_conv_weights_are_xavier_normal_and_biases_zero() -> None:
    torch.manual_seed(0)
    model = UNetAFF(width=16)
    conv = model.decoder[0].convs[0]  # 256 -> 128, 3x3
    fan_in, fan_out = conv.in_channels * 9, conv.out_channels * 9
    expected_std = (2.0 / (fan_in + fan_out)) ** 0.5
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.02)
    assert torch.count_nonzero(conv.bias) == 0


def test_same_seed_same_weights() -> None:
    torch.manual_seed(3)
    a = UNetAFF(width=4).state_dict()
    torch.manual_seed(3)
    b = UNetAFF(width=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
