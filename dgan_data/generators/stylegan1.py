"""StyleGAN (v1) in plain PyTorch, numerically matching DatasetGAN's released generators.

DatasetGAN (Zhang et al., CVPR 2021) ships its StyleGAN1 generators as the state dict of
a PyTorch port of NVIDIA's TensorFlow StyleGAN (``*.for_g_all.pt``, keys ``g_mapping.*``
and ``g_synthesis.*``) plus an average w (``avg_latent_stylegan1.npy``).
:meth:`StyleGAN1Generator.from_datasetgan_state_dict` reads that pair; the module names
used here are our own and are translated on load.

Semantics that matter for parity with those files:

- Weights are stored unscaled; the equalized learning-rate gain ``gain / sqrt(fan_in)``
  (times the learning-rate multiplier, 0.01 in the mapping network, whose biases are
  scaled by 0.01 too) is applied at run time.
- Each layer ends with: add per-pixel noise (one map per layer, a learned strength per
  channel), leaky ReLU (slope 0.2, no gain), instance norm (eps 1e-5, no affine), and
  the style modulation ``x * (1 + scale) + bias`` from an affine map of w.
- Upsampling blocks below 128 px use nearest upsampling then a 3x3 conv; from 128 px on,
  the upsampling is fused into the conv as a stride-2 transposed conv with the 3x3
  kernel spread to 4x4. Both then blur with [1, 2, 1] and add the bias. The two paths
  are not numerically equivalent, so the threshold is part of the model.
- The feature maps are DatasetGAN's ``result_list``: per block the block output, then
  the output of its second conv (bias included) before that layer's epilogue.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..conventions import check_truncation_cutoff, keyword_hints, python_scalar
from ..schema import Int, ListOf, Optional, SchemaError
from .base import (
    DEFAULT_NOISE_SEED,
    MAX_CHANNELS,
    MAX_LATENT_DIM,
    MAX_MAPPING_LAYERS,
    MAX_RESOLUTION,
    Check,
    Generator,
    MayOmit,
    NoiseSpec,
    PowerOfTwo,
    seeded_noise,
)
from .files import CheckpointError, cast_problem, check_tensors, printable

logger = logging.getLogger(__name__)

__all__ = ["StyleGAN1Generator", "default_channels"]

#: Negative slope of every leaky ReLU in StyleGAN1.
LRELU_SLOPE = 0.2
#: He-init gain of the layers followed by a leaky ReLU.
RELU_GAIN = math.sqrt(2.0)
#: Learning-rate multiplier of the mapping network (weights and biases).
MAPPING_LR_MULTIPLIER = 0.01
#: Blocks whose output is at least this large fuse the upsampling into the conv.
FUSED_UPSAMPLE_MIN_RESOLUTION = 128
#: epsilon of the pixel norm at the input of the mapping network.
PIXEL_NORM_EPS = 1e-8
#: epsilon of the instance norm in every layer epilogue (``nn.InstanceNorm2d`` default).
INSTANCE_NORM_EPS = 1e-5


def default_channels(resolution: int, fmap_base: int = 8192, fmap_max: int = 512) -> list[int]:
    """StyleGAN1's channel count per block (4 px, 8 px, ... ``resolution``)."""
    log2 = _log2_resolution(resolution)
    return [min(int(fmap_base / 2.0 ** (res - 1)), fmap_max) for res in range(2, log2 + 1)]


def _log2_resolution(resolution: int) -> int:
    log2 = int(resolution).bit_length() - 1
    if resolution < 4 or 2**log2 != resolution:
        raise ValueError(f"StyleGAN1 resolution must be a power of two >= 4, got {resolution}")
    return log2


# ------------------------------------------------------------------- layers
class EqualizedLinear(nn.Module):
    """Linear layer with raw weights and the equalized learning-rate gain applied at run time."""

    def __init__(
        self, in_features: int, out_features: int, gain: float, lr_multiplier: float = 1.0
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.zeros(out_features))
        # Same order of float operations as the reference, so the gain rounds alike.
        self.weight_gain = gain * in_features ** (-0.5) * lr_multiplier
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias if self.bias_gain == 1 else self.bias * self.bias_gain
        return F.linear(x, self.weight * self.weight_gain, bias)


class EqualizedConv2d(nn.Module):
    """Same-padded conv with raw weights and the equalized learning-rate gain."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = gain * (in_channels * kernel_size**2) ** (-0.5)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)


class Blur(nn.Module):
    """Depthwise [1, 2, 1] x [1, 2, 1] / 16 low-pass filter, zero padded."""

    def __init__(self) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("kernel", (kernel / kernel.sum())[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        kernel = self.kernel.to(x.dtype).expand(channels, -1, -1, -1)
        return F.conv2d(x, kernel, padding=1, groups=channels)


class UpsampleConv2d(nn.Module):
    """2x upsampling + 3x3 conv + blur + bias, as StyleGAN1's ``conv0_up``.

    ``fused`` (used from 128 px output on) replaces nearest upsampling + conv by a
    stride-2 transposed conv whose 4x4 kernel is the 3x3 kernel summed over 2x2 shifts.
    The transposed conv is evaluated as four 2x2 convs, one per output phase, interleaved:
    the same arithmetic without ``conv_transpose2d``, whose CUDA kernels may pick
    non-deterministic algorithms.
    """

    def __init__(self, in_channels: int, out_channels: int, fused: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = RELU_GAIN * (in_channels * 9) ** (-0.5)
        self.fused = fused
        self.blur = Blur()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.weight_gain
        if self.fused:
            x = self._fused_upsample_conv(x, weight)
        else:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = F.conv2d(x, weight, padding=1)
        x = self.blur(x)
        return x + self.bias.view(1, -1, 1, 1).to(x.dtype)

    @staticmethod
    def fused_kernel(weight: torch.Tensor) -> torch.Tensor:
        """(O, I, 3, 3) -> (O, I, 4, 4): the 3x3 kernel summed over its four 2x2 shifts."""
        w = F.pad(weight, (1, 1, 1, 1))
        return w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]

    @classmethod
    def _fused_upsample_conv(cls, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # conv_transpose2d(x, k4, stride=2, padding=1): output row 2m + r reads input rows
        # m - 1 + r and m + r with taps of the flipped kernel at r and r + 2 (same for
        # columns). So each of the four output phases is a plain 2x2 conv.
        flipped = cls.fused_kernel(weight).flip(2, 3)
        batch, _, height, width = x.shape
        padded = F.pad(x, (1, 1, 1, 1))
        phases = [
            F.conv2d(
                padded[:, :, ry : ry + height + 1, rx : rx + width + 1],
                flipped[:, :, ry::2, rx::2],
            )
            for ry in (0, 1)
            for rx in (0, 1)
        ]
        # The channel count is spelt out: with -1 an empty batch (0 elements) cannot be
        # reshaped, and an empty batch must give an empty batch.
        out_channels = weight.shape[0]
        out = torch.stack(phases, dim=2)  # (B, O, 4, H, W), phase = 2 * ry + rx
        out = out.view(batch, out_channels, 2, 2, height, width).permute(0, 1, 4, 2, 5, 3)
        return out.reshape(batch, out_channels, 2 * height, 2 * width)


class NoiseInput(nn.Module):
    """Adds one noise map per pixel, scaled by a learned strength per channel.

    ``const`` is this layer's fixed noise for ``noise="const"``, saved with the weights.
    """

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels))
        self.register_buffer("const", torch.zeros(1, 1, size, size))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + (self.weight.view(1, -1, 1, 1) * noise.to(self.weight.device)).to(x.dtype)


class StyleModulation(nn.Module):
    """Adaptive instance-norm style: ``x * (1 + scale(w)) + bias(w)`` per channel."""

    def __init__(self, w_dim: int, channels: int) -> None:
        super().__init__()
        self.affine = EqualizedLinear(w_dim, 2 * channels, gain=1.0)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.affine(w).view(w.shape[0], 2, x.shape[1], 1, 1)
        return x * (style[:, 0] + 1.0) + style[:, 1]


class LayerEpilogue(nn.Module):
    """What follows every conv: noise, leaky ReLU, instance norm, style modulation."""

    def __init__(self, channels: int, w_dim: int, size: int) -> None:
        super().__init__()
        self.noise = NoiseInput(channels, size)
        self.style = StyleModulation(w_dim, channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = self.noise(x, noise)
        x = F.leaky_relu(x, LRELU_SLOPE)
        x = F.instance_norm(x, eps=INSTANCE_NORM_EPS)
        return self.style(x, w)


class ConstantInput(nn.Module):
    """The learned 4x4 input of the synthesis network (constant plus a per-channel bias)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.const = nn.Parameter(torch.ones(1, channels, 4, 4))
        self.bias = nn.Parameter(torch.ones(channels))

    def forward(self, batch: int) -> torch.Tensor:
        return self.const.expand(batch, -1, -1, -1) + self.bias.view(1, -1, 1, 1)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: two styled layers.

    The first block starts from the constant input, the others from an upsampling conv.
    Returns ``(output, second conv output before its epilogue)``: DatasetGAN's two
    feature maps of the block.
    """

    def __init__(self, in_channels: int | None, out_channels: int, size: int, w_dim: int) -> None:
        super().__init__()
        if in_channels is None:
            self.input = ConstantInput(out_channels)
        else:
            fused = size >= FUSED_UPSAMPLE_MIN_RESOLUTION
            self.conv_up = UpsampleConv2d(in_channels, out_channels, fused=fused)
        self.epilogue1 = LayerEpilogue(out_channels, w_dim, size)
        self.conv = EqualizedConv2d(out_channels, out_channels, 3, gain=RELU_GAIN)
        self.epilogue2 = LayerEpilogue(out_channels, w_dim, size)

    def forward(
        self,
        x: torch.Tensor | None,
        w1: torch.Tensor,
        w2: torch.Tensor,
        noise1: torch.Tensor,
        noise2: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.input(w1.shape[0]) if x is None else self.conv_up(x)
        x = self.epilogue1(x, w1, noise1)
        conv_out = self.conv(x)
        return self.epilogue2(conv_out, w2, noise2), conv_out


class MappingNetwork(nn.Module):
    """z -> w: pixel norm, then fully connected layers with leaky ReLU (lr multiplier 0.01)."""

    def __init__(self, z_dim: int, w_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [z_dim] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            EqualizedLinear(d_in, d_out, gain=RELU_GAIN, lr_multiplier=MAPPING_LR_MULTIPLIER)
            for d_in, d_out in itertools.pairwise(dims)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + PIXEL_NORM_EPS)
        for layer in self.layers:
            x = F.leaky_relu(layer(x), LRELU_SLOPE)
        return x


# ---------------------------------------------------------------- generator
@keyword_hints
class StyleGAN1Generator(Generator):
    """StyleGAN (v1) generator with DatasetGAN's feature taps.

    Args:
        resolution: output size (square, a power of two >= 4).
        channels: channels per block, 4 px first; None uses StyleGAN1's default table.
        z_dim, w_dim: latent sizes (512 in every released model).
        mapping_layers: depth of the mapping network (8 in every released model).
        truncation_cutoff: how many w layers truncation touches by default, an int >= 1;
            None uses DatasetGAN's ``max_layer``: 8 from 512 px on, 7 below.
        noise_seed: seed of the fixed noise used by ``noise="const"``.

    ``num_ws`` is the number of styles the synthesis network reads, ``2 * log2(res) - 2``
    (DatasetGAN's files always hold 18 rows; the extra rows are unused below 1024 px).
    """

    arch = "stylegan1"
    CONFIG_SCHEMA: ClassVar[dict[str, Check]] = {
        "resolution": MayOmit(PowerOfTwo(4, MAX_RESOLUTION)),
        "channels": Optional(ListOf(Int(1, MAX_CHANNELS), min_len=1, max_len=12)),
        "z_dim": MayOmit(Int(1, MAX_LATENT_DIM)),
        "w_dim": MayOmit(Int(1, MAX_LATENT_DIM)),
        "mapping_layers": MayOmit(Int(1, MAX_MAPPING_LAYERS)),
        "truncation_cutoff": Optional(Int(1, 64)),
        "noise_seed": MayOmit(Int(0, 2**63 - 1)),
    }
    #: Config keys that loaders accept as options (the rest comes from the weights).
    LOADER_OPTIONS: ClassVar[tuple[str, ...]] = ("truncation_cutoff", "noise_seed")

    def __init__(
        self,
        resolution: int = 1024,
        channels: Sequence[int] | None = None,
        z_dim: int = 512,
        w_dim: int = 512,
        mapping_layers: int = 8,
        truncation_cutoff: int | None = None,
        noise_seed: int = DEFAULT_NOISE_SEED,
    ) -> None:
        super().__init__()
        resolution = python_scalar(resolution)  # the config must be JSON (fingerprint, save)
        log2 = _log2_resolution(resolution)
        sizes = [2**res for res in range(2, log2 + 1)]
        channels = default_channels(resolution) if channels is None else list(channels)
        if len(channels) != len(sizes) or any(int(c) < 1 for c in channels):
            raise ValueError(
                f"channels must hold {len(sizes)} positive ints (one per block "
                f"{sizes[0]}..{sizes[-1]} px), got {channels}"
            )
        channels = [int(c) for c in channels]
        truncation_cutoff = check_truncation_cutoff(truncation_cutoff)
        if truncation_cutoff is None:
            truncation_cutoff = 8 if resolution >= 512 else 7

        self.z_dim = int(z_dim)
        self.w_dim = int(w_dim)
        self.num_ws = 2 * len(sizes)
        self.resolution = (resolution, resolution)
        self.channels = channels
        self.mapping_layers = int(mapping_layers)
        self.truncation_cutoff = int(truncation_cutoff)
        self.noise_seed = int(noise_seed)
        self.feature_channels = [c for c in channels for _ in range(2)]
        self.feature_resolutions = [(s, s) for s in sizes for _ in range(2)]

        self.mapping_network = MappingNetwork(self.z_dim, self.w_dim, self.mapping_layers)
        self.blocks = nn.ModuleList(
            SynthesisBlock(channels[i - 1] if i else None, channels[i], size, self.w_dim)
            for i, size in enumerate(sizes)
        )
        self.to_rgb = EqualizedConv2d(channels[-1], 3, 1, gain=1.0)
        self.register_buffer("avg_w", torch.zeros(self.num_ws, self.w_dim))
        with torch.no_grad():
            for layer, noise in zip(
                self._noise_inputs(), seeded_noise(self.noise_shapes(), noise_seed)
            ):
                layer.const.copy_(noise)

    # ---------------------------------------------------------------- latents
    def _mapping(self, z: torch.Tensor) -> torch.Tensor:
        return self.mapping_network(z).unsqueeze(1).expand(-1, self.num_ws, -1)

    def average_w(self) -> torch.Tensor:
        return self.avg_w

    def default_truncation_cutoff(self) -> int | None:
        return self.truncation_cutoff

    # -------------------------------------------------------------- synthesis
    def noise_shapes(self) -> list[tuple[int, int]]:
        return list(self.feature_resolutions)

    def _noise_inputs(self) -> list[NoiseInput]:
        return [
            epilogue.noise
            for block in self.blocks
            for epilogue in (block.epilogue1, block.epilogue2)
        ]

    def synthesize(
        self,
        w: torch.Tensor,
        noise: NoiseSpec = "const",
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """w -> (image (B, 3, H, W), DatasetGAN's ``result_list``: two maps per block).

        ``noise``: "const" (the stored noise), "random" (drawn from ``generator``) or a
        list of ``2 * num_blocks`` tensors (B or 1, 1, h, w) in forward order.
        """
        w = self.check_w(w)
        const = [layer.const for layer in self._noise_inputs()]
        noises = self.resolve_noise(noise, w.shape[0], const, generator, like=w)
        features: list[torch.Tensor] = []
        x = None
        for i, block in enumerate(self.blocks):
            x, conv_out = block(x, w[:, 2 * i], w[:, 2 * i + 1], noises[2 * i], noises[2 * i + 1])
            features += [x, conv_out]
        return self.to_rgb(x), features

    # ------------------------------------------------------------ persistence
    @classmethod
    def check_config_values(cls, config: dict[str, Any]) -> None:
        resolution = config.get("resolution", 1024)
        blocks = resolution.bit_length() - 2
        if config.get("channels") is not None and len(config["channels"]) != blocks:
            raise SchemaError(
                f"field 'channels' must hold {blocks} entries (one per block of a "
                f"{resolution} px generator), has {len(config['channels'])}"
            )

    @property
    def config(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution[0],
            "channels": list(self.channels),
            "z_dim": self.z_dim,
            "w_dim": self.w_dim,
            "mapping_layers": self.mapping_layers,
            "truncation_cutoff": self.truncation_cutoff,
            "noise_seed": self.noise_seed,
        }

    @classmethod
    def from_datasetgan_state_dict(
        cls,
        state_dict: Mapping[str, torch.Tensor],
        avg_latent: torch.Tensor | np.ndarray | None,
        source: str = "<file>",
        avg_source: str | None = None,
        **options: Any,
    ) -> StyleGAN1Generator:
        """Build a generator from DatasetGAN's ``*.for_g_all.pt`` state dict and average w.

        The architecture (resolution, channels per block, latent sizes) is read from the
        tensor shapes. ``avg_latent`` (``avg_latent_stylegan1.npy``, (18, w_dim)) is the
        truncation centre; its first ``num_ws`` rows are kept. ``options`` go to the
        constructor (``truncation_cutoff``, ``noise_seed``). Raises ``ValueError`` naming
        ``source`` when the dict does not fit, and :class:`CheckpointError` naming
        ``avg_source`` (the ``.npy`` file, when ``avg_latent`` came from one; else
        ``source``) when the average latent does not.
        """
        state = check_tensors(state_dict, source)
        if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
            state = {k[len("module.") :]: v for k, v in state.items()}
        what = "architecture read from the tensors"
        config = cls.check_config(
            {**_infer_datasetgan_config(state, source), **options}, source, what
        )
        with torch.device("meta"):  # names and shapes only: nothing is allocated yet
            layout = cls(**config)
        _check_datasetgan_layout(layout, state, config, source)
        model = cls(**config)
        names = _datasetgan_names(model)
        target = model.state_dict()
        for ours, theirs in names.items():
            problem = cast_problem(state[theirs], torch.float32)
            if problem is not None:
                raise CheckpointError(f"{source}: tensor {printable(theirs)}: {problem}")
            target[ours] = state[theirs].detach().to("cpu", torch.float32)
        if avg_latent is None and "truncation.avg_latent" in state:
            avg_latent = state["truncation.avg_latent"]
        if avg_latent is None:
            logger.warning(
                "%s: no average latent given; truncation will pull towards w = 0. "
                "Pass avg_latent_stylegan1.npy to truncate like DatasetGAN.",
                source,
            )
        else:
            target["avg_w"] = _average_w_rows(
                avg_latent, model.num_ws, model.w_dim, avg_source or source
            )
        model.load_state_dict(target)
        logger.info("loaded DatasetGAN StyleGAN1 generator from %s: %s", source, model.config)
        return model


def _check_datasetgan_layout(
    model: StyleGAN1Generator,
    state: Mapping[str, torch.Tensor],
    config: dict[str, Any],
    source: str,
) -> None:
    """Raise naming missing, unexpected and wrongly shaped tensors (``model`` may be meta)."""
    names = _datasetgan_names(model)
    missing = sorted(theirs for theirs in names.values() if theirs not in state)
    expected = set(names.values())
    ignored = {
        k for k in state if k.endswith(".intermediate.kernel") or k == "truncation.avg_latent"
    }
    unexpected = sorted(k for k in state if k not in expected and k not in ignored)
    target = model.state_dict()
    wrong = [
        f"{theirs} {tuple(state[theirs].shape)} (expected {tuple(target[ours].shape)})"
        for ours, theirs in names.items()
        if theirs in state and tuple(state[theirs].shape) != tuple(target[ours].shape)
    ]
    blur = Blur().kernel.to("cpu")
    bad_blur = [
        k
        for k in sorted(ignored - {"truncation.avg_latent"})
        if tuple(state[k].shape) != tuple(blur.shape) or not torch.allclose(state[k].float(), blur)
    ]
    problems = []
    for label, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("wrong shapes", wrong),
        ("blur kernels other than [1, 2, 1]", bad_blur),
    ):
        if items:
            more = f", ... ({len(items)} in all)" if len(items) > 5 else ""
            problems.append(f"{label}: {', '.join(i[:100] for i in items[:5])}{more}")
    if problems:
        raise CheckpointError(
            f"{source}: not a DatasetGAN StyleGAN1 state dict "
            f"(inferred {config['resolution']} px, channels {config['channels']}): "
            + "; ".join(problems)
        )


# -------------------------------------------------------------- DatasetGAN names
def _datasetgan_names(model: StyleGAN1Generator) -> dict[str, str]:
    """Our parameter name -> DatasetGAN's name, for every learned tensor."""
    names: dict[str, str] = {}
    for i in range(model.mapping_layers):
        for kind in ("weight", "bias"):
            names[f"mapping_network.layers.{i}.{kind}"] = f"g_mapping.dense{i}.{kind}"
    for i, (size, _) in enumerate(model.feature_resolutions[::2]):
        ours, theirs = f"blocks.{i}", f"g_synthesis.blocks.{size}x{size}"
        if i == 0:
            names[f"{ours}.input.const"] = f"{theirs}.const"
            names[f"{ours}.input.bias"] = f"{theirs}.bias"
            second_conv = "conv"
        else:
            for kind in ("weight", "bias"):
                names[f"{ours}.conv_up.{kind}"] = f"{theirs}.conv0_up.{kind}"
            second_conv = "conv1"
        for kind in ("weight", "bias"):
            names[f"{ours}.conv.{kind}"] = f"{theirs}.{second_conv}.{kind}"
        for j in (1, 2):
            names[f"{ours}.epilogue{j}.noise.weight"] = f"{theirs}.epi{j}.top_epi.noise.weight"
            for kind in ("weight", "bias"):
                names[f"{ours}.epilogue{j}.style.affine.{kind}"] = (
                    f"{theirs}.epi{j}.style_mod.lin.{kind}"
                )
    for kind in ("weight", "bias"):
        names[f"to_rgb.{kind}"] = f"g_synthesis.torgb.{kind}"
    return names


def _infer_datasetgan_config(state: Mapping[str, torch.Tensor], source: str) -> dict[str, Any]:
    """Resolution, channels and latent sizes from the shapes of a DatasetGAN state dict."""

    def need(key: str, ndim: int) -> torch.Tensor:
        if key not in state:
            raise CheckpointError(
                f"{source}: not a DatasetGAN StyleGAN1 state dict: missing key {key!r} "
                f"(found {len(state)} keys, e.g. {[k[:60] for k in sorted(state)[:3]]})"
            )
        tensor = state[key]
        if tensor.ndim != ndim:
            raise CheckpointError(
                f"{source}: {key} should be a {ndim}-d tensor, got {tuple(tensor.shape)}"
            )
        return tensor

    first = need("g_mapping.dense0.weight", 2)
    mapping_layers = 0
    while f"g_mapping.dense{mapping_layers}.weight" in state:
        mapping_layers += 1
    last = need(f"g_mapping.dense{mapping_layers - 1}.weight", 2)

    prefix = "g_synthesis.blocks."
    block = re.compile(re.escape(prefix) + r"([0-9]{1,5})x\1\.")
    sizes = sorted({int(m.group(1)) for k in state if (m := block.match(k))})
    expected_sizes = [2**r for r in range(2, 2 + len(sizes))]
    if not sizes or sizes != expected_sizes:
        raise CheckpointError(
            f"{source}: synthesis blocks should be 4x4, 8x8, ... without gaps, found "
            f"{[f'{s}x{s}' for s in sizes][:12]}"
        )
    if sizes[-1] > MAX_RESOLUTION:
        raise CheckpointError(
            f"{source}: synthesis blocks up to {sizes[-1]} px; at most {MAX_RESOLUTION} px "
            "are accepted"
        )
    channels = [int(need(f"{prefix}4x4.const", 4).shape[1])]
    channels += [int(need(f"{prefix}{s}x{s}.conv1.weight", 4).shape[0]) for s in sizes[1:]]
    return {
        "resolution": sizes[-1],
        "channels": channels,
        "z_dim": int(first.shape[1]),
        "w_dim": int(last.shape[0]),
        "mapping_layers": mapping_layers,
    }


def _average_w_rows(
    avg_latent: torch.Tensor | np.ndarray, num_ws: int, w_dim: int, source: str
) -> torch.Tensor:
    """DatasetGAN's average latent as (num_ws, w_dim) float32 (numbers, all finite)."""
    if not torch.is_tensor(avg_latent):
        arr = np.asarray(avg_latent)
        if arr.dtype.kind not in "fiu":
            raise CheckpointError(
                f"{source}: average latent of dtype {arr.dtype}, expected numbers"
            )
        avg_latent = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    avg = avg_latent.detach().to("cpu", torch.float32)
    if avg.numel() and not bool(torch.isfinite(avg).all()):
        raise CheckpointError(f"{source}: average latent has NaN or inf values")
    if avg.ndim == 3 and avg.shape[0] == 1:
        avg = avg[0]
    if avg.ndim == 1 and avg.shape[0] == w_dim:
        return avg.expand(num_ws, -1).clone()
    if avg.ndim == 2 and avg.shape[1] == w_dim and avg.shape[0] >= num_ws:
        return avg[:num_ws].clone()
    raise CheckpointError(
        f"{source}: average latent has shape {tuple(avg.shape)}, expected ({w_dim},) or "
        f"(n >= {num_ws}, {w_dim}) (DatasetGAN's avg_latent_stylegan1.npy is (18, {w_dim}))"
    )
