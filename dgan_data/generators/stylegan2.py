"""StyleGAN2 generator in plain PyTorch, with feature taps.

Parameter names follow rosinality/stylegan2-pytorch, so its checkpoints load as they
are and NVIDIA network pickles are mapped onto the same names. No custom CUDA ops:
FIR filtering uses depthwise ``conv2d``, so the module runs on CPU and CUDA, in
float32 and under autocast.

Features are the outputs of every modulated conv layer (after noise, bias and
activation), forward order; ``include_const_input=True`` adds the 4x4 constant
first, as EditGAN does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..conventions import keyword_hints, python_scalar
from ..schema import Bool, Float, Int, Optional, SchemaError
from .base import (
    MAX_CHANNELS,
    MAX_LATENT_DIM,
    MAX_MAPPING_LAYERS,
    MAX_RESOLUTION,
    Check,
    Generator,
    MayOmit,
    NoiseSpec,
    PowerOfTwo,
)
from .files import CheckpointError, check_tensors, load_strict, short_repr

DEFAULT_BLUR_KERNEL = (1, 3, 3, 1)
LRELU_GAIN = math.sqrt(2.0)
#: Most taps of the FIR resampling filter (StyleGAN2 uses 4).
MAX_BLUR_TAPS = 16


def paper_channels(size: int, channel_multiplier: int = 2) -> dict[int, int]:
    """The channel table of the StyleGAN2 paper config (rosinality's defaults)."""
    table = {4: 512, 8: 512, 16: 512, 32: 512}
    cm = channel_multiplier
    for res, ch in ((64, 256), (128, 128), (256, 64), (512, 32), (1024, 16)):
        table[res] = ch * cm
    return {r: c for r, c in table.items() if r <= size}


# ------------------------------------------------------------------ filtering
def fir_kernel(taps: Sequence[float]) -> torch.Tensor:
    """Separable 2-D FIR kernel from 1-D taps, normalised to sum 1."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """Upsample by zero insertion, pad, FIR-filter and downsample, per channel.

    ``pad`` = (before, after), the same on both axes. The kernel is applied as a true
    convolution (flipped), matching the reference implementations.
    """
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(b, c, h * up, w * up)
    p0, p1 = pad
    x = F.pad(x, (max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)))
    if p0 < 0 or p1 < 0:
        hh, ww = x.shape[-2:]
        x = x[..., max(-p0, 0) : hh - max(-p1, 0), max(-p0, 0) : ww - max(-p1, 0)]
    weight = torch.flip(kernel, [0, 1]).to(dtype=x.dtype, device=x.device)
    weight = weight.view(1, 1, *kernel.shape).expand(c, 1, -1, -1)
    x = F.conv2d(x, weight, groups=c)
    if down > 1:
        x = x[..., ::down, ::down]
    return x


class Blur(nn.Module):
    """FIR low-pass filter; ``gain`` scales the kernel (up-sampling needs factor**2)."""

    def __init__(self, taps: Sequence[float], pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps) * gain)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x FIR up-sampling used on the RGB skip path."""

    def __init__(self, taps: Sequence[float], factor: int = 2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", fir_kernel(taps) * factor**2)
        p = len(taps) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


# -------------------------------------------------------------- basic layers
class PixelNorm(nn.Module):
    """Normalise each latent vector to unit second moment."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor, gain: float = LRELU_GAIN) -> torch.Tensor:
    """Bias + leaky ReLU(0.2) + sqrt(2) gain, bias broadcast over the channel dim."""
    shape = [1, -1] + [1] * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape).to(x.dtype), 0.2) * gain


class FusedLeakyReLU(nn.Module):
    """Per-channel bias then leaky ReLU with gain; optional clamp (NVIDIA ``conv_clamp``)."""

    def __init__(self, channels: int, clamp: float | None = None):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.clamp = clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = fused_leaky_relu(x, self.bias)
        if self.clamp is not None:
            out = out.clamp(-self.clamp, self.clamp)
        return out


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate (weights scaled at run time)."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: bool = False,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class ModulatedConv2d(nn.Module):
    """Style-modulated (and optionally demodulated) convolution, optional 2x up-sampling."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_taps: Sequence[float] = DEFAULT_BLUR_KERNEL,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
        )
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        if upsample:
            factor = 2
            p = (len(blur_taps) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_taps, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), gain=factor**2)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != 1:  # an empty batch too: the grouped path needs groups >= 1
            return self._forward_batched(x, style)
        return self._forward_grouped(x, style)

    def _forward_batched(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Modulate the input, convolve with the shared weight, demodulate the output.

        Mathematically equal to the per-sample (grouped) weights, and much faster for
        batches: one ordinary convolution instead of ``batch`` groups.
        """
        s = self.modulation(style)  # (B, in)
        weight = (self.scale * self.weight[0]).to(x.dtype)  # (out, in, k, k)
        x = x * s.to(x.dtype)[:, :, None, None]
        if self.upsample:
            out = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            w2 = (self.scale * self.weight[0]).pow(2).sum(dim=(2, 3))  # (out, in)
            demod = torch.rsqrt(s.pow(2) @ w2.t() + 1e-8)  # (B, out)
            out = out * demod.to(out.dtype)[:, :, None, None]
        return self.blur(out) if self.upsample else out

    def _forward_grouped(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Per-sample modulated weights applied as a grouped convolution."""
        b, c, h, w = x.shape
        s = self.modulation(style).view(b, 1, c, 1, 1)
        weight = self.scale * self.weight * s  # (B, out, in, k, k)
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4)) + 1e-8)
            weight = weight * demod.view(b, self.out_channels, 1, 1, 1)
        k = self.kernel_size
        x = x.reshape(1, b * c, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(b * c, self.out_channels, k, k)
            out = F.conv_transpose2d(x, weight.to(x.dtype), stride=2, groups=b)
            out = out.view(b, self.out_channels, *out.shape[-2:])
            return self.blur(out)
        weight = weight.reshape(b * self.out_channels, c, k, k)
        out = F.conv2d(x, weight.to(x.dtype), padding=self.padding, groups=b)
        return out.view(b, self.out_channels, *out.shape[-2:])


class NoiseInjection(nn.Module):
    """Adds per-pixel noise scaled by a learned strength."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + self.weight.to(x.dtype) * noise.to(x.dtype)


class ConstantInput(nn.Module):
    """The learned 4x4 input of the synthesis network."""

    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


class StyledConv(nn.Module):
    """Modulated conv -> noise -> bias + leaky ReLU: one synthesis layer."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        style_dim: int,
        upsample: bool = False,
        blur_taps: Sequence[float] = DEFAULT_BLUR_KERNEL,
        clamp: float | None = None,
    ):
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channels, out_channels, 3, style_dim, upsample=upsample, blur_taps=blur_taps
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels, clamp=clamp)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB, added to the up-sampled skip image."""

    def __init__(
        self,
        in_channels: int,
        style_dim: int,
        upsample: bool = True,
        blur_taps: Sequence[float] = DEFAULT_BLUR_KERNEL,
        clamp: float | None = None,
    ):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_taps)
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.clamp = clamp

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None
    ) -> torch.Tensor:
        out = self.conv(x, style) + self.bias.to(x.dtype)
        if self.clamp is not None:
            out = out.clamp(-self.clamp, self.clamp)
        if skip is not None:
            out = out + self.upsample(skip)
        return out


# ------------------------------------------------------------------ config checks
class ChannelTable:
    """Schema check of ``channels``: resolution (int or decimal string) -> channel count."""

    def __call__(self, value: Any, field: str) -> dict[Any, int]:
        if not isinstance(value, dict) or not 1 <= len(value) <= 12:
            raise SchemaError(
                f"field '{field}' must be an object of 1..12 resolution -> channels entries, "
                f"got {short_repr(value)}"
            )
        for key, channels in value.items():
            if _resolution_key(key) is None:
                raise SchemaError(f"field '{field}' has key {short_repr(key)}, not a resolution")
            Int(1, MAX_CHANNELS)(channels, f"{field}.{key}")
        return value


def _resolution_key(key: Any) -> int | None:
    if isinstance(key, int) and not isinstance(key, bool) and 0 < key <= MAX_RESOLUTION:
        return key
    if isinstance(key, str) and re.fullmatch(r"[0-9]{1,5}", key):
        return int(key)
    return None


class FilterTaps:
    """Schema check of ``blur_kernel``: 1..16 finite numbers (list or tuple), sum not 0."""

    def __call__(self, value: Any, field: str) -> Any:
        if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_BLUR_TAPS:
            raise SchemaError(
                f"field '{field}' must be a list of 1..{MAX_BLUR_TAPS} numbers, "
                f"got {short_repr(value)}"
            )
        taps = [Float(-1e6, 1e6)(t, f"{field}[{i}]") for i, t in enumerate(value)]
        if abs(sum(taps)) < 1e-8:
            raise SchemaError(f"field '{field}' must not sum to 0 (the filter is normalised)")
        return value


# ------------------------------------------------------------------ generator
@keyword_hints
class StyleGAN2Generator(Generator):
    """StyleGAN2 (config F, skip generator) with every layer's output as a feature map.

    ``channels`` maps resolution -> channel count (4 .. size); default is the paper's
    table. ``conv_clamp`` reproduces NVIDIA networks trained with it (None for rosinality).
    """

    arch = "stylegan2"
    #: buffers that follow from the config (blur_kernel): a file must hold the same values
    DERIVED_BUFFERS: ClassVar[tuple[str, ...]] = (".kernel",)
    CONFIG_SCHEMA: ClassVar[dict[str, Check]] = {
        "size": PowerOfTwo(4, MAX_RESOLUTION),
        "style_dim": MayOmit(Int(1, MAX_LATENT_DIM)),
        "n_mlp": MayOmit(Int(1, MAX_MAPPING_LAYERS)),
        "channels": Optional(ChannelTable()),
        "channel_multiplier": MayOmit(Int(1, 64)),
        "lr_mlp": MayOmit(Float(1e-6, 1e3)),
        "blur_kernel": MayOmit(FilterTaps()),
        "conv_clamp": Optional(Float(1e-6, 1e9)),
        "include_const_input": MayOmit(Bool()),
    }
    #: Config keys that loaders accept as options (the rest comes from the weights).
    LOADER_OPTIONS: ClassVar[tuple[str, ...]] = (
        "include_const_input",
        "lr_mlp",
        "conv_clamp",
        "blur_kernel",
    )

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channels: dict[int, int] | None = None,
        channel_multiplier: int = 2,
        lr_mlp: float = 0.01,
        blur_kernel: Sequence[float] = DEFAULT_BLUR_KERNEL,
        conv_clamp: float | None = None,
        include_const_input: bool = False,
    ):
        super().__init__()
        # numpy numbers as Python ones: the config must be JSON (fingerprint, save)
        size, style_dim, n_mlp, lr_mlp, conv_clamp, include_const_input = map(
            python_scalar, (size, style_dim, n_mlp, lr_mlp, conv_clamp, include_const_input)
        )
        log_size = int(math.log2(size))
        if 2**log_size != size or size < 4:
            raise ValueError(f"StyleGAN2 size must be a power of two >= 4, got {size}")
        table = {
            int(k): int(v)
            for k, v in (channels or paper_channels(size, channel_multiplier)).items()
        }
        missing = [2**i for i in range(2, log_size + 1) if 2**i not in table]
        if missing:
            raise ValueError(f"channels table lacks resolutions {missing}")
        self.size = size
        self.style_dim = style_dim
        self.n_mlp = n_mlp
        self.channels = {2**i: table[2**i] for i in range(2, log_size + 1)}
        self.lr_mlp = lr_mlp
        self.blur_kernel = tuple(float(t) for t in blur_kernel)
        self.conv_clamp = conv_clamp
        self.include_const_input = include_const_input

        self.style = nn.Sequential(
            PixelNorm(),
            *[
                EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation=True)
                for _ in range(n_mlp)
            ],
        )
        c4 = self.channels[4]
        self.input = ConstantInput(c4)
        self.conv1 = StyledConv(c4, c4, style_dim, blur_taps=self.blur_kernel, clamp=conv_clamp)
        self.to_rgb1 = ToRGB(c4, style_dim, upsample=False, clamp=conv_clamp)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_ch = c4
        for i in range(3, log_size + 1):
            out_ch = self.channels[2**i]
            self.convs.append(
                StyledConv(
                    in_ch,
                    out_ch,
                    style_dim,
                    upsample=True,
                    blur_taps=self.blur_kernel,
                    clamp=conv_clamp,
                )
            )
            self.convs.append(
                StyledConv(out_ch, out_ch, style_dim, blur_taps=self.blur_kernel, clamp=conv_clamp)
            )
            self.to_rgbs.append(
                ToRGB(out_ch, style_dim, blur_taps=self.blur_kernel, clamp=conv_clamp)
            )
            in_ch = out_ch

        self.num_layers = (log_size - 2) * 2 + 1
        self.noises = nn.Module()
        for i, (h, w) in enumerate(self.noise_shapes()):
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, h, w))
        self.register_buffer("latent_avg", torch.zeros(style_dim))

        self.z_dim = style_dim
        self.w_dim = style_dim
        self.num_ws = log_size * 2 - 2
        self.resolution = (size, size)
        layer_res = [4] + [2 ** (3 + i // 2) for i in range(2 * (log_size - 2))]
        layer_ch = [c4] + [self.channels[r] for r in layer_res[1:]]
        if include_const_input:
            layer_res, layer_ch = [4, *layer_res], [c4, *layer_ch]
        self.feature_channels = layer_ch
        self.feature_resolutions = [(r, r) for r in layer_res]

    # ------------------------------------------------------------- protocol
    def noise_shapes(self) -> list[tuple[int, int]]:
        return [(2 ** ((i + 5) // 2),) * 2 for i in range(self.num_layers)]

    def _mapping(self, z: torch.Tensor) -> torch.Tensor:
        w = self.style(z)
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def average_w(self) -> torch.Tensor:
        return self.latent_avg

    @torch.no_grad()
    def estimate_average_w(self, num_samples: int = 4096, seed: int = 0) -> torch.Tensor:
        """Set ``latent_avg`` to the mean w of ``num_samples`` seeded z (for fresh models)."""
        g = torch.Generator().manual_seed(seed)
        z = self.to_own_device(torch.randn(num_samples, self.z_dim, generator=g))
        # autocast off: the same file must get the same centre (and fingerprint) wherever
        # it is loaded; under a caller's bfloat16 autocast the centre moved by up to 0.01
        with torch.autocast(z.device.type, enabled=False):
            w = self.style(z)  # the mean in float32 at least (float16 / bfloat16 models)
        self.latent_avg.copy_(w.to(torch.promote_types(w.dtype, torch.float32)).mean(0))
        return self.latent_avg

    def const_noise(self) -> list[torch.Tensor]:
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    def synthesize(
        self,
        w: torch.Tensor,
        noise: NoiseSpec = "const",
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        w = self.check_w(w)
        b = w.shape[0]
        noises = self.resolve_noise(noise, b, self.const_noise(), generator, w)
        features: list[torch.Tensor] = []
        x = self.input(b)
        if self.include_const_input:  # a copy: the input is a view of the weights
            features.append(x.clone(memory_format=torch.contiguous_format))
        x = self.conv1(x, w[:, 0], noises[0])
        features.append(x)
        skip = self.to_rgb1(x, w[:, 1])
        i = 1
        for k, to_rgb in enumerate(self.to_rgbs):
            up_conv, conv = self.convs[2 * k], self.convs[2 * k + 1]
            x = up_conv(x, w[:, i], noises[1 + 2 * k])
            features.append(x)
            x = conv(x, w[:, i + 1], noises[2 + 2 * k])
            features.append(x)
            skip = to_rgb(x, w[:, i + 2], skip)
            i += 2
        return skip, features

    @property
    def config(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "style_dim": self.style_dim,
            "n_mlp": self.n_mlp,
            "channels": {str(k): v for k, v in self.channels.items()},
            "lr_mlp": self.lr_mlp,
            "blur_kernel": list(self.blur_kernel),
            "conv_clamp": self.conv_clamp,
            "include_const_input": self.include_const_input,
        }

    @classmethod
    def check_config_values(cls, config: dict[str, Any]) -> None:
        size = config["size"]
        if config.get("channels") is not None:
            keys = sorted(_resolution_key(k) or 0 for k in config["channels"])
            want = [2**i for i in range(2, size.bit_length())]
            if keys != want:
                raise SchemaError(
                    f"field 'channels' must have the resolutions {want} (for size {size}), "
                    f"has {keys}"
                )

    @classmethod
    def from_state_dict(
        cls,
        state_dict: dict[str, torch.Tensor],
        source: str = "<state dict>",
        **options: Any,
    ) -> StyleGAN2Generator:
        """Build a generator whose architecture is inferred from rosinality-named tensors.

        The tensors are checked first (:func:`check_tensors`), then the inferred config
        and ``options`` against the architecture's limits, then every tensor shape the
        config implies against the tensors given; only then is the module allocated.
        """
        sd = check_tensors(state_dict, source)
        what = "architecture read from the tensors"
        config = cls.check_config({**_infer_config(sd, source), **options}, source, what)
        if "latent_avg" not in sd:
            sd["latent_avg"] = torch.zeros(config["style_dim"])
        G = cls.build_checked(config, {k: tuple(t.shape) for k, t in sd.items()}, source, what)
        load_strict(G, sd, source)
        return G


def _infer_config(sd: dict[str, torch.Tensor], source: str) -> dict[str, Any]:
    """size, style_dim, n_mlp and channels from the shapes of rosinality-named tensors."""

    def dim(key: str, ndim: int, axis: int) -> int:
        t = sd.get(key)
        if t is None:
            raise CheckpointError(
                f"{source}: not a StyleGAN2 generator state dict (missing {key!r})"
            )
        if t.ndim != ndim:
            raise CheckpointError(
                f"{source}: {key} has shape {tuple(t.shape)}; a StyleGAN2 generator has a "
                f"{ndim}-d tensor there"
            )
        return int(t.shape[axis])

    style_dim = dim("conv1.conv.modulation.weight", 2, 1)
    n_mlp = sum(1 for k in sd if re.fullmatch(r"style\.[0-9]{1,3}\.weight", k))
    num_to_rgbs = sum(1 for k in sd if re.fullmatch(r"to_rgbs\.[0-9]{1,3}\.bias", k))
    size = 2 ** (num_to_rgbs + 2)
    if size > MAX_RESOLUTION:
        raise CheckpointError(
            f"{source}: {num_to_rgbs} to_rgbs layers make a {size} px generator; at most "
            f"{MAX_RESOLUTION} px are accepted"
        )
    channels = {4: dim("input.input", 4, 1)}
    for k in range(num_to_rgbs):
        channels[2 ** (k + 3)] = dim(f"convs.{2 * k}.conv.weight", 5, 1)
    return {"size": size, "style_dim": style_dim, "n_mlp": n_mlp, "channels": channels}
