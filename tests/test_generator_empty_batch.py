"""An empty batch gives an empty batch for StyleGAN1 generators of 128 px or more too:
the fused upsampling conv reshaped its output with -1 channels, which a tensor of 0
elements cannot resolve (RuntimeError), so ``G(torch.randn(0, z_dim))`` and
``Labeler.label([])`` crashed from 128 px on. Small generators are built here."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_stream import random_interpreter

from dgan_data.generators import StyleGAN1Generator
from dgan_data.generators.stylegan1 import UpsampleConv2d
from dgan_data.labeler import Labeler


def tiny_sg1_128() -> StyleGAN1Generator:
    """128 px StyleGAN1 with 4 channels per block: its last block uses the fused conv."""
    torch.manual_seed(0)
    G = StyleGAN1Generator(resolution=128, channels=[4] * 6, z_dim=8, w_dim=8, mapping_layers=1)
    assert G.blocks[-1].conv_up.fused
    return G.eval()


def _pre_fix_fused(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The fused path as it was (channels as -1): fine for a non-empty batch."""
    flipped = UpsampleConv2d.fused_kernel(weight).flip(2, 3)
    b, _, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1))
    phases = [
        F.conv2d(padded[:, :, ry : ry + h + 1, rx : rx + w + 1], flipped[:, :, ry::2, rx::2])
        for ry in (0, 1)
        for rx in (0, 1)
    ]
    out = torch.stack(phases, dim=2).view(b, -1, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return out.reshape(b, -1, 2 * h, 2 * w)


def test_128px_stylegan1_gives_an_empty_batch_for_an_empty_batch():
    G = tiny_sg1_128()
    with torch.no_grad():
        img, feats = G(torch.randn(0, G.z_dim))
    assert tuple(img.shape) == (0, 3, 128, 128)
    assert [tuple(f.shape[:2]) for f in feats] == [(0, c) for c in G.feature_channels]


@pytest.mark.parametrize("batch", [0, 1, 3])
def test_fused_upsample_conv_is_a_transposed_conv_for_every_batch_size(batch):
    torch.manual_seed(0)
    layer = UpsampleConv2d(3, 5, fused=True)
    x = torch.randn(batch, 3, 6, 7)
    with torch.no_grad():
        weight = layer.weight * layer.weight_gain
        ours = UpsampleConv2d._fused_upsample_conv(x, weight)
        kernel = UpsampleConv2d.fused_kernel(weight).permute(1, 0, 2, 3)
        direct = F.conv_transpose2d(x, kernel, stride=2, padding=1)
    assert ours.shape == direct.shape == (batch, 5, 12, 14)
    torch.testing.assert_close(ours, direct, atol=1e-5, rtol=0)
    if batch:  # a non-empty batch's output is exactly what the -1 reshape gave
        assert torch.equal(ours, _pre_fix_fused(x, weight))


@pytest.mark.parametrize("noise", ["const", "random"])
def test_labeler_labels_no_seeds_with_a_128px_stylegan1(noise):
    G = tiny_sg1_128()
    lab = Labeler(G, random_interpreter(G), device="cpu", noise=noise)
    empty, one = lab.label([]), lab.label([3])
    assert empty.images.shape == (0, *one.images.shape[1:])
    assert empty.masks.shape == (0, *one.masks.shape[1:])
    assert empty.image_uncertainty.shape == (0,)
