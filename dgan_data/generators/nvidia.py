"""NVIDIA stylegan2-ada-pytorch / stylegan3 network pickles, read without running their code.

NVIDIA's ``.pkl`` networks are plain pickles whose modules go through
``torch_utils.persistence``: every network object is rebuilt by a hook that receives
the Python source of its module and executes it. ``unpickle.py`` reads such a file as
plain data (:class:`PersistentObject` for networks, checked tensors for parameters);
nothing in it runs.

The selected network (``G_ema``) is walked once, every sub-module visited once (a
network that contains itself, or shares a sub-module, is refused), its settings read
with type checks, and its tensors flattened to NVIDIA parameter names and mapped onto
the rosinality names that :class:`~dgan_data.generators.stylegan2.StyleGAN2Generator`
uses. Only StyleGAN2 "skip" generators without class conditioning are supported.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import torch

from ..schema import Float, Int, Optional, SchemaError, Str
from .base import MAX_LATENT_DIM, MAX_RESOLUTION
from .files import CheckpointError, check_options, check_tensors, describe_keys, short_repr
from .stylegan2 import (
    DEFAULT_BLUR_KERNEL,
    MAX_BLUR_TAPS,
    FilterTaps,
    StyleGAN2Generator,
    fir_kernel,
)
from .unpickle import PERSISTENCE_HOOK, PersistentObject, RestrictedUnpickler, read_nvidia_pickle

log = logging.getLogger(__name__)

__all__ = [
    "NVIDIA_OPTIONS",
    "PERSISTENCE_HOOK",
    "PersistentObject",
    "RestrictedUnpickler",
    "convert_nvidia_generator",
    "load_nvidia_pickle",
    "nvidia_state_dict",
    "read_nvidia_pickle",
    "walk_modules",
]

#: Deepest nesting of sub-modules accepted (StyleGAN2's generator has 4 levels).
MAX_MODULE_DEPTH = 16
#: Most sub-modules accepted in one network (StyleGAN2 at 1024 px has about 100).
MAX_MODULES = 10_000
#: Loader options of NVIDIA pickles: the entry to load, and StyleGAN2 overrides.
NVIDIA_OPTIONS = {
    "network": Str(64),
    **{k: StyleGAN2Generator.CONFIG_SCHEMA[k] for k in StyleGAN2Generator.LOADER_OPTIONS},
}

_MODULE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


# ------------------------------------------------------------- walking
def walk_modules(net: PersistentObject, source: str = "<network>") -> list[tuple[str, Any]]:
    """Every module of ``net`` once, as (dotted prefix, object); the root's prefix is "".

    Refused with :class:`CheckpointError`: ``_modules`` that are not dicts of named
    networks, a network that contains itself, a sub-module that appears under two
    names, more than ``MAX_MODULE_DEPTH`` levels or ``MAX_MODULES`` modules.
    """
    seen: dict[int, str] = {id(net): "the network itself"}
    out: list[tuple[str, PersistentObject]] = []
    stack: list[tuple[PersistentObject, str, tuple[int, ...]]] = [(net, "", (id(net),))]
    while stack:
        obj, prefix, ancestors = stack.pop()
        out.append((prefix, obj))
        if len(out) > MAX_MODULES:
            raise CheckpointError(f"{source}: more than {MAX_MODULES} sub-modules")
        modules = obj.state.get("_modules")
        if modules is None:
            continue
        if not isinstance(modules, dict):
            where = prefix.rstrip(".") or obj.class_name
            raise CheckpointError(f"{source}: {where}: _modules is a {type(modules).__name__}")
        for name, child in modules.items():
            if child is None:
                continue
            if not isinstance(name, str) or not _MODULE_NAME.fullmatch(name):
                raise CheckpointError(f"{source}: sub-module name {describe_keys([name])}")
            path = prefix + name
            if not isinstance(child, PersistentObject):
                raise CheckpointError(
                    f"{source}: sub-module {path} is a {type(child).__name__}, not a network"
                )
            if id(child) in ancestors:
                raise CheckpointError(
                    f"{source}: the network contains itself ({path} is {seen[id(child)]})"
                )
            if id(child) in seen:
                raise CheckpointError(
                    f"{source}: sub-module {path} is the same object as {seen[id(child)]}; "
                    "shared sub-modules are not supported"
                )
            if len(ancestors) >= MAX_MODULE_DEPTH:
                raise CheckpointError(
                    f"{source}: sub-modules nested deeper than {MAX_MODULE_DEPTH} levels"
                )
            seen[id(child)] = path
            stack.append((child, path + ".", (*ancestors, id(child))))
    return out


def nvidia_state_dict(
    net: PersistentObject, prefix: str = "", source: str = "<network>"
) -> dict[str, torch.Tensor]:
    """Flatten a network's parameters and buffers to NVIDIA's dotted names."""
    out: dict[str, torch.Tensor] = {}
    for path, obj in walk_modules(net, source):
        for group in ("_parameters", "_buffers"):
            tensors = obj.state.get(group)
            if tensors is None:
                continue
            if not isinstance(tensors, dict):
                raise CheckpointError(
                    f"{source}: {path or obj.class_name} {group} is a {type(tensors).__name__}"
                )
            for name, t in tensors.items():
                if t is None:
                    continue
                if not isinstance(name, str) or not _MODULE_NAME.fullmatch(name):
                    raise CheckpointError(f"{source}: tensor name {describe_keys([name])}")
                if not isinstance(t, torch.Tensor):
                    raise CheckpointError(
                        f"{source}: {prefix}{path}{name} is a {type(t).__name__}, not a tensor"
                    )
                out[prefix + path + name] = t.detach()
    return out


def _select_network(data: Any, key: str, source: str) -> PersistentObject:
    if isinstance(data, PersistentObject):
        return data
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{source}: expected a dict of networks (G, D, G_ema), found {type(data).__name__}"
        )
    net = data.get(key)
    if net is None and key == "G_ema" and isinstance(data.get("G"), PersistentObject):
        log.warning("%s: no G_ema in the pickle; using G (the non-averaged generator)", source)
        net = data["G"]
    if net is None:
        raise CheckpointError(
            f"{source}: no network {key!r} in the pickle (keys: {describe_keys(data)})"
        )
    if not isinstance(net, PersistentObject):
        raise CheckpointError(
            f"{source}: {key!r} in the pickle is a {type(net).__name__}, not a network"
        )
    return net


def _is_stylegan3(net: PersistentObject, modules: list[tuple[str, Any]]) -> bool:
    for _, obj in modules:
        if obj.class_name == "SynthesisInput" or obj.source_mentions:
            return True
    synthesis = net.modules().get("synthesis")
    return isinstance(synthesis, PersistentObject) and "input" in synthesis.modules()


def _setting(obj: PersistentObject, name: str, check: Any, default: Any, source: str) -> Any:
    """``obj``'s attribute ``name`` (else its constructor argument, else ``default``), checked."""
    value = obj.attr(name, obj.init_kwargs().get(name, default))
    try:
        return check(value, name)
    except SchemaError as err:
        raise CheckpointError(f"{source}: {obj.class_name} {err}") from None
    except ValueError:  # e.g. an int too long to print
        raise CheckpointError(
            f"{source}: {obj.class_name} field '{name}' has an unusable value {short_repr(value)}"
        ) from None


def _tensor(obj: PersistentObject, name: str) -> torch.Tensor | None:
    params = obj.state.get("_parameters")
    value = params.get(name) if isinstance(params, dict) else None
    return value if isinstance(value, torch.Tensor) else None


def _single(values: list[Any], what: str, source: str) -> Any:
    distinct = {repr(v) for v in values}
    if len(distinct) > 1:
        raise CheckpointError(
            f"{source}: layers disagree on {what} ({', '.join(sorted(distinct)[:4])})"
        )
    return values[0] if values else None


# ------------------------------------------------------------- conversion
def convert_nvidia_generator(
    net: PersistentObject, source: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """NVIDIA ``G`` -> (rosinality-named state dict, StyleGAN2Generator options).

    Raises :class:`CheckpointError` for networks this library cannot run exactly.
    """
    modules = walk_modules(net, source)
    if _is_stylegan3(net, modules):
        raise CheckpointError(
            f"{source}: StyleGAN3 networks are not supported yet (found SynthesisInput); "
            "use a StyleGAN2 / StyleGAN2-ADA pickle"
        )
    mods = net.modules()
    mapping, synthesis = mods.get("mapping"), mods.get("synthesis")
    if not isinstance(mapping, PersistentObject) or not isinstance(synthesis, PersistentObject):
        raise CheckpointError(
            f"{source}: network {net.class_name!r} has no mapping/synthesis sub-networks; "
            "not a StyleGAN2 generator"
        )
    c_dim = _setting(net, "c_dim", Optional(Int(0, 2**31)), 0, source) or 0
    if c_dim > 0:
        raise CheckpointError(
            f"{source}: class-conditional generator (c_dim={c_dim}) is not supported"
        )
    img_channels = _setting(net, "img_channels", Int(1, 2**31), 3, source)
    if img_channels != 3:
        raise CheckpointError(f"{source}: img_channels={img_channels}; only RGB (3) is supported")

    blocks = {
        int(m.group(1)): b
        for name, b in synthesis.modules().items()
        if (m := re.fullmatch(r"b([0-9]{1,5})", name)) and isinstance(b, PersistentObject)
    }
    if 4 not in blocks:
        raise CheckpointError(f"{source}: synthesis network without a b4 block")
    archs = [_setting(b, "architecture", Str(32), "skip", source) for b in blocks.values()]
    arch = _single(archs, "architecture", source)
    if arch != "skip":
        raise CheckpointError(
            f"{source}: synthesis architecture {arch!r} is not supported (only 'skip', the "
            "StyleGAN2 config-F generator)"
        )
    convs, torgbs = (
        [
            layer
            for b in blocks.values()
            for n in names
            if isinstance(layer := b.modules().get(n), PersistentObject)
        ]
        for names in (("conv0", "conv1"), ("torgb",))
    )
    for layer in convs:
        act = _setting(layer, "activation", Str(32), "lrelu", source)
        if act != "lrelu":
            raise CheckpointError(f"{source}: synthesis activation {act!r} is not supported")
    conv_clamp = _single(
        [_setting(x, "conv_clamp", Optional(Float()), None, source) for x in convs + torgbs],
        "conv_clamp",
        source,
    )
    fc_layers = _mapping_layers(mapping, source)
    last_fc = _tensor(fc_layers[-1], "weight")
    fallback_w_dim = int(last_fc.shape[0]) if last_fc is not None and last_fc.ndim == 2 else 0
    w_dim = _setting(net, "w_dim", Int(0, MAX_LATENT_DIM), fallback_w_dim, source)
    for fc in fc_layers:
        weight = _tensor(fc, "weight")
        shape = tuple(weight.shape) if weight is not None else None
        if shape != (w_dim, w_dim):
            raise CheckpointError(
                f"{source}: mapping layer of shape {shape}; only z_dim = w_dim = layer width "
                f"({w_dim}) is supported"
            )
    lr_mlp = _single(
        [_setting(fc, "bias_gain", Float(), 0.01, source) for fc in fc_layers],
        "lr_multiplier",
        source,
    )
    taps = _setting(blocks[4], "resample_filter", FilterTaps(), DEFAULT_BLUR_KERNEL, source)
    taps = [float(t) for t in taps]

    nv = check_tensors(nvidia_state_dict(net, source=source), source)
    sd = _rename(nv, sorted(blocks), source)
    _check_filter(nv, taps, source)
    options: dict[str, Any] = {"lr_mlp": lr_mlp, "conv_clamp": conv_clamp, "blur_kernel": taps}
    _log_fp16(net, synthesis, source)
    return sd, options


def _mapping_layers(mapping: PersistentObject, source: str) -> list[PersistentObject]:
    """The mapping network's fc layers in order; each must be a leaky-ReLU layer."""
    numbered = {
        int(name[2:]): layer
        for name, layer in mapping.modules().items()
        if re.fullmatch(r"fc[0-9]{1,3}", name) and isinstance(layer, PersistentObject)
    }
    if not numbered:
        raise CheckpointError(f"{source}: mapping network without fc layers")
    fc_layers = [numbered[i] for i in sorted(numbered)]
    for fc in fc_layers:
        act = _setting(fc, "activation", Str(32), "lrelu", source)
        if act != "lrelu":
            raise CheckpointError(f"{source}: mapping activation {act!r} is not supported")
    return fc_layers


def _log_fp16(net: PersistentObject, synthesis: PersistentObject, source: str) -> None:
    """Say so when the network ran some resolutions in float16 (we compute in float32)."""
    synthesis_kwargs = net.init_kwargs().get("synthesis_kwargs")
    candidates = [
        synthesis.init_kwargs().get("num_fp16_res"),
        synthesis_kwargs.get("num_fp16_res") if isinstance(synthesis_kwargs, dict) else None,
        net.init_kwargs().get("num_fp16_res"),
    ]
    fp16 = next((c for c in candidates if isinstance(c, int) and c > 0), 0)
    if fp16:
        log.info(
            "%s: the network ran its %s highest resolutions in float16; dgan_data computes in "
            "float32 (like NVIDIA's force_fp32=True), so outputs differ from NVIDIA's default "
            "by float16 rounding",
            source,
            fp16,
        )


def _rename(
    nv: dict[str, torch.Tensor], resolutions: list[int], source: str
) -> dict[str, torch.Tensor]:
    """NVIDIA names/shapes -> rosinality names/shapes."""
    sd: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(name: str) -> torch.Tensor:
        if name not in nv:
            raise CheckpointError(f"{source}: missing tensor {name!r} in G_ema")
        used.add(name)
        return nv[name].float()

    def reshaped(name: str, *shape: int) -> torch.Tensor:
        t = take(name)
        if t.numel() != math.prod(shape):
            raise CheckpointError(
                f"{source}: {name} has shape {tuple(t.shape)}, expected {math.prod(shape)} elements"
            )
        return t.reshape(shape)

    i = 0
    while f"mapping.fc{i}.weight" in nv:
        sd[f"style.{i + 1}.weight"] = take(f"mapping.fc{i}.weight")
        sd[f"style.{i + 1}.bias"] = take(f"mapping.fc{i}.bias")
        i += 1
    if "mapping.w_avg" in nv:
        sd["latent_avg"] = take("mapping.w_avg").reshape(-1)
    sd["input.input"] = take("synthesis.b4.const").unsqueeze(0)

    def layer(nvname: str, ours: str, noise_index: int) -> None:
        weight = take(f"{nvname}.weight")
        sd[f"{ours}.conv.weight"] = weight.unsqueeze(0)
        sd[f"{ours}.conv.modulation.weight"] = take(f"{nvname}.affine.weight")
        sd[f"{ours}.conv.modulation.bias"] = take(f"{nvname}.affine.bias")
        sd[f"{ours}.activate.bias"] = take(f"{nvname}.bias")
        if f"{nvname}.noise_strength" in nv:  # use_noise=False layers have neither tensor
            sd[f"{ours}.noise.weight"] = reshaped(f"{nvname}.noise_strength", 1)
            shape = nv.get(f"{nvname}.noise_const", torch.empty(1, 1)).shape
            h, w = shape[-2:] if len(shape) >= 2 else (1, math.prod(shape))
            sd[f"noises.noise_{noise_index}"] = reshaped(f"{nvname}.noise_const", 1, 1, h, w)
        else:
            res = int(nvname.split(".")[1][1:])
            sd[f"{ours}.noise.weight"] = torch.zeros(1)
            sd[f"noises.noise_{noise_index}"] = torch.zeros(1, 1, res, res)

    def torgb(nvname: str, ours: str) -> None:
        sd[f"{ours}.conv.weight"] = take(f"{nvname}.weight").unsqueeze(0)
        sd[f"{ours}.conv.modulation.weight"] = take(f"{nvname}.affine.weight")
        sd[f"{ours}.conv.modulation.bias"] = take(f"{nvname}.affine.bias")
        sd[f"{ours}.bias"] = take(f"{nvname}.bias").reshape(1, -1, 1, 1)

    expected = [4 * 2**i for i in range(len(resolutions))]
    if resolutions != expected or resolutions[-1] > MAX_RESOLUTION:
        raise CheckpointError(
            f"{source}: synthesis blocks {resolutions[:12]} are not the chain 4, 8, 16, ... "
            f"up to at most {MAX_RESOLUTION}"
        )
    layer("synthesis.b4.conv1", "conv1", 0)
    torgb("synthesis.b4.torgb", "to_rgb1")
    for res in resolutions[1:]:
        k = int(math.log2(res))
        layer(f"synthesis.b{res}.conv0", f"convs.{2 * k - 6}", 2 * k - 5)
        layer(f"synthesis.b{res}.conv1", f"convs.{2 * k - 5}", 2 * k - 4)
        torgb(f"synthesis.b{res}.torgb", f"to_rgbs.{k - 3}")
        name = f"synthesis.b{res}.resample_filter"
        if name not in nv:
            raise CheckpointError(f"{source}: missing tensor {name!r} in G_ema")
        kernel = _kernel_from_filter(nv[name], source) * 4
        sd[f"convs.{2 * k - 6}.conv.blur.kernel"] = kernel
        sd[f"to_rgbs.{k - 3}.upsample.kernel"] = kernel.clone()

    ignored = {n for n in nv if n.endswith("resample_filter")}
    left = sorted(set(nv) - used - ignored)
    if left:
        raise CheckpointError(
            f"{source}: tensors with no StyleGAN2 counterpart ({len(left)}, e.g. "
            f"{describe_keys(left, 5)}); this generator variant is not supported"
        )
    return sd


def _kernel_from_filter(f: torch.Tensor, source: str) -> torch.Tensor:
    """NVIDIA's normalised resample filter (1-D separable or 2-D) as a 2-D kernel."""
    f = f.float()
    if f.ndim not in (1, 2) or max(f.shape) > MAX_BLUR_TAPS:
        raise CheckpointError(
            f"{source}: resample_filter of shape {tuple(f.shape)} (1-d or 2-d, at most "
            f"{MAX_BLUR_TAPS} taps)"
        )
    if f.ndim == 1:
        f = f[:, None] * f[None, :]
    return f


def _check_filter(nv: dict[str, torch.Tensor], taps: list[float], source: str) -> None:
    """Every resample filter that is used must be the network's ``taps``.

    NVIDIA's ``SynthesisBlock`` does not pass its filter to ``conv1`` (the layers that do
    not up-sample): their buffer keeps the default [1, 3, 3, 1] whatever the network's
    filter is, and is never read, so it is not compared (as ``_rename`` ignores it).
    """
    want = fir_kernel(taps)
    for name, f in nv.items():
        if name.endswith("resample_filter") and not name.endswith(".conv1.resample_filter"):
            got = _kernel_from_filter(f, source)
            if got.shape != want.shape or not torch.allclose(got, want, atol=1e-6):
                raise CheckpointError(
                    f"{source}: {name} does not match the resample filter {taps} from the "
                    "network's constructor arguments"
                )


# ----------------------------------------------------------------- entry
def load_nvidia_pickle(
    path: str | Path, network: str = "G_ema", **options: Any
) -> StyleGAN2Generator:
    """Load a StyleGAN2(-ADA) generator from an NVIDIA ``.pkl`` without executing its code.

    ``network`` picks the entry (``G_ema`` by default). Other options go to
    :meth:`StyleGAN2Generator.from_state_dict` and override what the file says
    (``include_const_input``, ``conv_clamp``, ``lr_mlp``, ``blur_kernel``).
    The truncation centre is the network's ``mapping.w_avg``.
    """
    path = Path(path)
    source = str(path)
    options = check_options(
        {"network": network, **options}, NVIDIA_OPTIONS, "NVIDIA .pkl networks", source
    )
    data = read_nvidia_pickle(path)
    net = _select_network(data, options.pop("network"), source)
    sd, file_options = convert_nvidia_generator(net, source)
    has_avg = "latent_avg" in sd
    G = StyleGAN2Generator.from_state_dict(sd, source=source, **{**file_options, **options})
    if not has_avg:
        log.info("%s: no mapping.w_avg stored; estimating it from 4096 seeded samples", source)
        G.estimate_average_w()
    return G
