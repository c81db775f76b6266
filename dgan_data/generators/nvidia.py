"""NVIDIA stylegan2-ada-pytorch / stylegan3 network pickles, read without running their code.

NVIDIA's ``.pkl`` networks are plain pickles whose modules go through
``torch_utils.persistence``: every network object is rebuilt by a hook that receives
the Python source of its module and executes it. Plain ``pickle.load`` would therefore
run whatever source the file carries. Here a restricted unpickler resolves only a
short allow-list of globals; the persistence hook is replaced by one that keeps the
object's ``__dict__`` (parameters, buffers, sub-modules, constructor kwargs) as plain
data and never looks at the embedded source beyond a substring test. Tensor storages,
which plain pickling embeds as small legacy ``torch.save`` blobs, are read with
``torch.load(weights_only=True)``.

The reconstructed ``G_ema`` is flattened to NVIDIA parameter names and mapped onto
the rosinality names that :class:`~dgan_data.generators.stylegan2.StyleGAN2Generator`
uses. Only StyleGAN2 "skip" generators without class conditioning are supported.
"""

from __future__ import annotations

import _compat_pickle
import io
import logging
import math
import pickle
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .files import CheckpointError, check_file
from .stylegan2 import DEFAULT_BLUR_KERNEL, StyleGAN2Generator, fir_kernel

log = logging.getLogger(__name__)

#: The dotted name NVIDIA's persistence module pickles as the reconstruct function.
PERSISTENCE_HOOK = ("torch_utils.persistence", "_reconstruct_persistent_obj")


# --------------------------------------------------------------- plain data
@dataclass
class PersistentObject:
    """A persistent NVIDIA object as data: its class name and its ``__dict__``.

    ``source_mentions`` holds the marker words (see ``_SOURCE_MARKERS``) found in the
    embedded module source by substring search; the source itself is dropped.
    """

    class_name: str
    state: dict[str, Any]
    source_mentions: frozenset[str] = field(default_factory=frozenset)

    def modules(self) -> dict[str, Any]:
        return dict(self.state.get("_modules") or {})

    def attr(self, name: str, default: Any = None) -> Any:
        return self.state.get(name, default)

    def init_kwargs(self) -> dict[str, Any]:
        return dict(self.state.get("_init_kwargs") or {})


class _AttrDict(dict):
    """Stand-in for ``dnnlib.EasyDict``: a dict (with a ``__dict__`` so BUILD works)."""


#: Words whose presence in a module's embedded source identifies the architecture.
_SOURCE_MARKERS = ("SynthesisInput", "filtered_lrelu")


def _reconstruct_persistent(meta: Any) -> PersistentObject:
    """Our replacement for NVIDIA's persistence hook: keep the state, never run the source."""
    if not isinstance(meta, dict) or not isinstance(meta.get("class_name"), str):
        raise pickle.UnpicklingError("malformed persistent object (no class_name)")
    state = meta.get("state")
    if state is None:
        state = {}
    if not isinstance(state, dict):
        raise pickle.UnpicklingError(f"persistent object {meta['class_name']}: state is not a dict")
    src = meta.get("module_src")
    mentions = frozenset(m for m in _SOURCE_MARKERS if isinstance(src, str) and m in src)
    return PersistentObject(str(meta["class_name"]), dict(state), mentions)


# ----------------------------------------------------------- safe callables
def _load_storage_bytes(data: bytes) -> Any:
    """A tensor storage that plain pickling wrote as a legacy ``torch.save`` blob.

    torch's own ``torch.storage._load_from_bytes`` uses ``weights_only=False``; this one
    goes through torch's restricted loader and always maps to the CPU.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("storage payload is not bytes")
    try:
        return torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if "global" in ln.lower()]
        detail = lines[-1] if lines else "not plain tensor data"
        raise pickle.UnpicklingError(
            f"refused a tensor storage blob (torch's weights-only loader: {detail})"
        ) from None


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, latin-1 only."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() not in ("latin1", "latin"):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct`` for plain ``ndarray`` only."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"refused numpy array subtype {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _np_scalar(dtype: Any, *args: Any) -> Any:
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("numpy scalar without a dtype")
    if dtype.hasobject:
        raise pickle.UnpicklingError("refused numpy object scalar")
    raw = args[0] if args else b"\0" * dtype.itemsize
    if isinstance(raw, str):  # protocol-2 pickles of bytes come back as latin-1 text
        raw = raw.encode("latin1")
    return np.frombuffer(bytes(raw), dtype=dtype, count=1)[0]


def _np_dtype(spec: Any, align: bool = False, copy: bool = False) -> np.dtype:
    return np.dtype(spec, align, copy)


def _rebuild_from_type_v2(func: Callable, new_type: Any, args: tuple, state: Any) -> Any:
    """``torch._tensor._rebuild_from_type_v2`` restricted to plain tensors and Parameters."""
    if func not in _TENSOR_REBUILDERS:
        raise pickle.UnpicklingError(f"refused tensor rebuild function {func!r}")
    ret = func(*args)
    if new_type is torch.nn.Parameter and not isinstance(ret, torch.nn.Parameter):
        ret = torch.nn.Parameter(ret, requires_grad=False)
    elif new_type is not torch.Tensor and new_type is not torch.nn.Parameter:
        raise pickle.UnpicklingError(f"refused tensor subclass {new_type!r}")
    return ret


_TENSOR_REBUILDERS = (
    torch._utils._rebuild_tensor_v2,
    torch._utils._rebuild_tensor,
    torch._utils._rebuild_parameter,
)


def _rebuild_parameter_with_state(
    data: Any, requires_grad: bool, backward_hooks: Any, state: Any
) -> Any:
    return torch._utils._rebuild_parameter(data, requires_grad, OrderedDict())


def _safe_globals() -> dict[tuple[str, str], Any]:
    """The complete allow-list: (module, name) -> the object our unpickler returns."""
    allowed: dict[tuple[str, str], Any] = {
        PERSISTENCE_HOOK: _reconstruct_persistent,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
        ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
        ("torch", "Tensor"): torch.Tensor,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("collections", "OrderedDict"): OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("_codecs", "encode"): _latin1_encode,
        ("dnnlib.util", "EasyDict"): _AttrDict,
        ("dnnlib", "EasyDict"): _AttrDict,
        ("numpy", "dtype"): _np_dtype,
        ("numpy", "ndarray"): np.ndarray,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _np_reconstruct
        allowed[(mod, "scalar")] = _np_scalar
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            allowed[("torch", name)] = getattr(torch, name)
    return allowed


_ALLOWED = _safe_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in the allow-list; everything else is refused by name."""

    def __init__(self, file: Any, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        # Protocol < 3 pickles spell some names the Python 2 way (__builtin__.set).
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        obj = _ALLOWED.get((module, name))
        if obj is not None:
            return obj
        if module.startswith("dnnlib.tflib"):
            raise CheckpointError(
                f"{self.source}: a TensorFlow StyleGAN pickle ({module}.{name}), which is not "
                "supported; convert it to PyTorch first (in an environment you trust), e.g. with "
                "rosinality/stylegan2-pytorch convert_weight.py, and load the resulting .pt"
            )
        raise CheckpointError(
            f"{self.source}: refused global {module}.{name}: NVIDIA network pickles are read "
            "with an allow-list and this file needs something outside it (dgan_data never runs "
            "code from checkpoints)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(f"{self.source}: refused persistent id {str(pid)[:60]!r}")


def read_nvidia_pickle(path: str | Path) -> Any:
    """Unpickle an NVIDIA network pickle as plain data (``PersistentObject`` for networks)."""
    path = Path(path)
    check_file(path)
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, str(path)).load()
    except CheckpointError:
        raise
    except Exception as err:  # UnpicklingError, EOFError, RuntimeError from torch.load...
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: cannot read as an NVIDIA network pickle: {msg}") from None


# ------------------------------------------------------------- flattening
def nvidia_state_dict(net: PersistentObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a network's parameters and buffers to NVIDIA's dotted names."""
    out: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, t in (net.state.get(group) or {}).items():
            if t is None:
                continue
            if not isinstance(t, torch.Tensor):
                raise CheckpointError(f"{prefix}{name} is a {type(t).__name__}, not a tensor")
            out[prefix + name] = t.detach()
    for name, child in net.modules().items():
        if child is None:
            continue
        if not isinstance(child, PersistentObject):
            raise CheckpointError(f"sub-module {prefix}{name} is a {type(child).__name__}")
        out.update(nvidia_state_dict(child, f"{prefix}{name}."))
    return out


def _walk(net: PersistentObject) -> list[PersistentObject]:
    objs = [net]
    for child in net.modules().values():
        if isinstance(child, PersistentObject):
            objs.extend(_walk(child))
    return objs


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
    if not isinstance(net, PersistentObject):
        raise CheckpointError(
            f"{source}: no network {key!r} in the pickle (keys: {', '.join(map(str, data))})"
        )
    return net


def _is_stylegan3(net: PersistentObject) -> bool:
    for obj in _walk(net):
        if obj.class_name == "SynthesisInput" or obj.source_mentions:
            return True
    synthesis = net.modules().get("synthesis")
    return isinstance(synthesis, PersistentObject) and "input" in synthesis.modules()


def _single(values: list[Any], what: str, source: str) -> Any:
    distinct = {repr(v) for v in values}
    if len(distinct) > 1:
        raise CheckpointError(
            f"{source}: layers disagree on {what} ({', '.join(sorted(distinct))})"
        )
    return values[0] if values else None


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


# ------------------------------------------------------------- conversion
def convert_nvidia_generator(
    net: PersistentObject, source: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """NVIDIA ``G`` -> (rosinality-named state dict, StyleGAN2Generator options).

    Raises :class:`CheckpointError` for networks this library cannot run exactly.
    """
    if _is_stylegan3(net):
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
    kw = net.init_kwargs()
    c_dim = int(net.attr("c_dim", kw.get("c_dim", 0)) or 0)
    if c_dim > 0:
        raise CheckpointError(
            f"{source}: class-conditional generator (c_dim={c_dim}) is not supported"
        )
    img_channels = int(net.attr("img_channels", kw.get("img_channels", 3)))
    if img_channels != 3:
        raise CheckpointError(f"{source}: img_channels={img_channels}; only RGB (3) is supported")

    blocks = {
        int(m.group(1)): b
        for name, b in synthesis.modules().items()
        if (m := re.fullmatch(r"b(\d+)", name)) and isinstance(b, PersistentObject)
    }
    if 4 not in blocks:
        raise CheckpointError(f"{source}: synthesis network without a b4 block")
    archs = [str(b.attr("architecture", "skip")) for b in blocks.values()]
    arch = _single(archs, "architecture", source)
    if arch != "skip":
        raise CheckpointError(
            f"{source}: synthesis architecture {arch!r} is not supported (only 'skip', the "
            "StyleGAN2 config-F generator)"
        )
    layers = [
        b.modules()[n] for b in blocks.values() for n in ("conv0", "conv1") if n in b.modules()
    ]
    for layer in layers:
        act = layer.attr("activation", "lrelu")
        if act != "lrelu":
            raise CheckpointError(f"{source}: synthesis activation {act!r} is not supported")
    conv_clamp = _num(
        _single(
            [layer.attr("conv_clamp") for layer in layers]
            + [
                b.modules()["torgb"].attr("conv_clamp")
                for b in blocks.values()
                if "torgb" in b.modules()
            ],
            "conv_clamp",
            source,
        )
    )
    fc_layers = [
        mapping.modules()[n]
        for n in sorted(
            (n for n in mapping.modules() if re.fullmatch(r"fc\d+", n)), key=lambda n: int(n[2:])
        )
    ]
    if not fc_layers:
        raise CheckpointError(f"{source}: mapping network without fc layers")
    for fc in fc_layers:
        if fc.attr("activation", "lrelu") != "lrelu":
            raise CheckpointError(
                f"{source}: mapping activation {fc.attr('activation')!r} is not supported"
            )
    last_fc = fc_layers[-1].state.get("_parameters", {}).get("weight")
    fallback_w_dim = last_fc.shape[0] if isinstance(last_fc, torch.Tensor) else 0
    w_dim = int(net.attr("w_dim", kw.get("w_dim", fallback_w_dim)) or 0)
    for fc in fc_layers:
        shape = tuple(fc.state.get("_parameters", {}).get("weight", torch.empty(0)).shape)
        if shape != (w_dim, w_dim):
            raise CheckpointError(
                f"{source}: mapping layer of shape {shape}; only z_dim = w_dim = layer width "
                f"({w_dim}) is supported"
            )
    lr_mlp = _num(
        _single([_num(fc.attr("bias_gain", 0.01)) for fc in fc_layers], "lr_multiplier", source)
    )
    taps = [float(t) for t in blocks[4].init_kwargs().get("resample_filter", DEFAULT_BLUR_KERNEL)]

    nv = nvidia_state_dict(net)
    sd = _rename(nv, sorted(blocks), source)
    _check_filter(nv, taps, source)
    options: dict[str, Any] = {
        "lr_mlp": lr_mlp,
        "conv_clamp": conv_clamp,
        "blur_kernel": tuple(taps),
    }
    fp16 = (
        synthesis.init_kwargs().get("num_fp16_res")
        or kw.get("synthesis_kwargs", {}).get("num_fp16_res")
        or kw.get("num_fp16_res")
        or 0
    )
    if fp16:
        log.info(
            "%s: the network ran its %s highest resolutions in float16; dgan_data computes in "
            "float32 (like NVIDIA's force_fp32=True), so outputs differ from NVIDIA's default "
            "by float16 rounding",
            source,
            fp16,
        )
    return sd, options


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
            sd[f"{ours}.noise.weight"] = take(f"{nvname}.noise_strength").reshape(1)
            noise = take(f"{nvname}.noise_const")
            sd[f"noises.noise_{noise_index}"] = noise.reshape(1, 1, *noise.shape[-2:])
        else:
            res = int(nvname.split(".")[1][1:])
            sd[f"{ours}.noise.weight"] = torch.zeros(1)
            sd[f"noises.noise_{noise_index}"] = torch.zeros(1, 1, res, res)

    def torgb(nvname: str, ours: str) -> None:
        sd[f"{ours}.conv.weight"] = take(f"{nvname}.weight").unsqueeze(0)
        sd[f"{ours}.conv.modulation.weight"] = take(f"{nvname}.affine.weight")
        sd[f"{ours}.conv.modulation.bias"] = take(f"{nvname}.affine.bias")
        sd[f"{ours}.bias"] = take(f"{nvname}.bias").reshape(1, -1, 1, 1)

    layer("synthesis.b4.conv1", "conv1", 0)
    torgb("synthesis.b4.torgb", "to_rgb1")
    expected = [2**k for k in range(2, int(math.log2(max(resolutions))) + 1)]
    if resolutions != expected:
        raise CheckpointError(
            f"{source}: synthesis blocks {resolutions} are not the chain {expected}"
        )
    for res in resolutions[1:]:
        k = int(math.log2(res))
        layer(f"synthesis.b{res}.conv0", f"convs.{2 * k - 6}", 2 * k - 5)
        layer(f"synthesis.b{res}.conv1", f"convs.{2 * k - 5}", 2 * k - 4)
        torgb(f"synthesis.b{res}.torgb", f"to_rgbs.{k - 3}")
        kernel = _kernel_from_filter(nv[f"synthesis.b{res}.resample_filter"], source) * 4
        sd[f"convs.{2 * k - 6}.conv.blur.kernel"] = kernel
        sd[f"to_rgbs.{k - 3}.upsample.kernel"] = kernel.clone()

    ignored = {n for n in nv if n.endswith("resample_filter")}
    left = sorted(set(nv) - used - ignored)
    if left:
        raise CheckpointError(
            f"{source}: tensors with no StyleGAN2 counterpart ({len(left)}, e.g. "
            f"{', '.join(left[:5])}); this generator variant is not supported"
        )
    return sd


def _kernel_from_filter(f: torch.Tensor, source: str) -> torch.Tensor:
    """NVIDIA's normalised resample filter (1-D separable or 2-D) as a 2-D kernel."""
    f = f.float()
    if f.ndim == 1:
        f = f[:, None] * f[None, :]
    if f.ndim != 2:
        raise CheckpointError(f"{source}: resample_filter of shape {tuple(f.shape)}")
    return f


def _check_filter(nv: dict[str, torch.Tensor], taps: list[float], source: str) -> None:
    want = fir_kernel(taps)
    for name, f in nv.items():
        if name.endswith("resample_filter"):
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
    data = read_nvidia_pickle(path)
    net = _select_network(data, network, source)
    sd, file_options = convert_nvidia_generator(net, source)
    has_avg = "latent_avg" in sd
    G = StyleGAN2Generator.from_state_dict(sd, source=source, **{**file_options, **options})
    if not has_avg:
        log.info("%s: no mapping.w_avg stored; estimating it from 4096 seeded samples", source)
        G.estimate_average_w()
    return G
