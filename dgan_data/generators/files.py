"""Safe reading and writing of generator files; nothing found in a file is executed.

``.pt`` files are read by ``torch_files.safe_torch_load``; NVIDIA ``.pkl`` networks
through the restricted unpickler in ``unpickle.py``; our own format is ``.safetensors``
with the architecture and config as JSON in its header. This module holds what they
share: the checks of files, tensors and options, and the error type.

Every tensor a generator is built from passes :func:`check_tensors` (floating point,
non-empty, finite, a view that reads each stored element at most once and stays inside
its storage), and every architecture is compared, tensor by tensor, with what the file
holds before the real module is allocated (:func:`compare_shapes`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from ..conventions import GENERATOR_CONFIG_KEY
from ..fileio import require_file, save_safetensors
from ..schema import SchemaError

log = logging.getLogger(__name__)

__all__ = [
    "CONFIG_KEY",
    "CheckpointError",
    "check_file",
    "check_options",
    "check_tensors",
    "compare_shapes",
    "describe_keys",
    "layout_problem",
    "load_strict",
    "printable",
    "read_safetensors_header",
    "read_safetensors_metadata",
    "save_generator",
    "short_repr",
]


#: Header key of our ``.safetensors`` generator files.
CONFIG_KEY = GENERATOR_CONFIG_KEY

#: Most dimensions a generator tensor may have (ours have at most 5).
MAX_TENSOR_DIMS = 8


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe, or not a known generator."""


def check_file(path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a non-empty regular file."""
    try:
        require_file(path, "checkpoint file")
    except (OSError, ValueError) as exc:
        raise CheckpointError(str(exc)) from None
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")


# ------------------------------------------------------------- messages
def short_repr(value: Any, limit: int = 40) -> str:
    """A value for an error message: short, and safe for huge ints and deep containers."""
    if isinstance(value, (str, bytes)):
        text = repr(value[: limit + 1])
    elif isinstance(value, int) and not isinstance(value, bool):
        text = repr(value) if abs(value) < 10**limit else f"<int of {value.bit_length()} bits>"
    elif isinstance(value, (float, bool, type(None))):
        text = repr(value)
    else:
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, control characters escaped (one line)."""
    text = text[:limit]
    return text if text.isprintable() else repr(text)[1:-1]


def describe_keys(keys: Iterable[Any], limit: int = 8) -> str:
    """The first keys of a mapping, each shortened, for an error message."""
    items = list(keys)
    shown = [printable(k, 40) if isinstance(k, str) else short_repr(k) for k in items[:limit]]
    head = ", ".join(shown)
    return head + (f", ... ({len(items)} in all)" if len(items) > limit else "")


# ------------------------------------------------------------- tensors
def layout_problem(
    size: Sequence[int], stride: Sequence[int], offset: int, storage_numel: int
) -> str | None:
    """What is wrong with a strided view of a storage, or None when it is sound.

    Sound: as many strides as sizes, no negative numbers, every stored element read at
    most once (no stride 0, no overlapping dimensions) and the view inside the storage.
    """
    if len(size) != len(stride):
        return f"{len(size)} sizes but {len(stride)} strides"
    if len(size) > MAX_TENSOR_DIMS:
        return f"{len(size)} dimensions (at most {MAX_TENSOR_DIMS})"
    if offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        return "negative size, stride or offset"
    if math.prod(size) == 0:
        return None
    reach = 0  # the largest element offset the dimensions seen so far can reach
    for st, sz in sorted((st, sz) for sz, st in zip(size, stride) if sz > 1):
        if st <= reach:
            return "a stride-0 or overlapping view (stored elements would be read twice)"
        reach += st * (sz - 1)
    if offset + reach + 1 > storage_numel:
        return f"the view needs {offset + reach + 1} elements, its storage holds {storage_numel}"
    return None


#: Floating dtypes a weight file may store (float8 and float4 are refused, as by the
#: interpreter's loader: no real checkpoint stores them, and float4 cannot even be read).
WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _tensor_problem(t: torch.Tensor) -> str | None:
    if t.layout != torch.strided or t.is_quantized or t.is_complex():
        return f"unsupported tensor kind ({t.layout}, {t.dtype})"
    if not t.is_floating_point():  # an int or bool weight would be converted silently
        return (
            f"{str(t.dtype).removeprefix('torch.')} values, expected floating point "
            "(generator weights are float16, bfloat16, float32, float64...)"
        )
    if t.numel() == 0:
        return f"zero-element tensor of shape {tuple(t.shape)}"
    storage_numel = t.untyped_storage().nbytes() // t.element_size()
    problem = layout_problem(tuple(t.shape), t.stride(), t.storage_offset(), storage_numel)
    if problem is not None:
        return problem
    if t.dtype not in WEIGHT_DTYPES:  # float8 / float4: lossy, and float4 cannot be read
        return (
            f"{str(t.dtype).removeprefix('torch.')} values, expected float16, bfloat16, "
            "float32 or float64"
        )
    if not _all_finite(t):
        bad = int((~torch.isfinite(t)).sum())
        return f"{bad} non-finite values (NaN or inf) in a tensor of shape {tuple(t.shape)}"
    return None


def _all_finite(t: torch.Tensor) -> bool:
    """Whether no element is NaN or inf: a finite sum proves it (one pass, no copy)."""
    if bool(torch.isfinite(t.sum())):
        return True
    return bool(torch.isfinite(t).all())  # a sum of finite values may still overflow


def check_tensors(tensors: Mapping[Any, Any], source: str) -> dict[str, torch.Tensor]:
    """The mapping as a dict of checked tensors; the first bad entry raises, by name.

    Refused: non-string names, values that are not tensors, integer and bool tensors,
    zero-element tensors, stride-0 or overlapping views, views reaching outside their
    storage, NaN and inf.
    """
    if not isinstance(tensors, Mapping):
        raise CheckpointError(
            f"{source}: expected a dict of tensors, found {type(tensors).__name__}"
        )
    out: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        if not isinstance(name, str):
            raise CheckpointError(f"{source}: tensor name {short_repr(name)} is not a string")
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(
                f"{source}: {printable(name)} is a {type(t).__name__}, not a tensor"
            )
        problem = _tensor_problem(t)
        if problem is not None:
            raise CheckpointError(f"{source}: tensor {printable(name)}: {problem}")
        out[name] = t
    return out


def compare_shapes(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]], source: str
) -> None:
    """Raise naming missing, unexpected and wrongly shaped tensors (model vs file)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [
        f"{k}: file {tuple(found[k])} vs model {tuple(expected[k])}"
        for k in expected
        if k in found and tuple(found[k]) != tuple(expected[k])
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {describe_keys(missing, 5)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {describe_keys(unexpected, 5)})")
    if wrong:
        problems.append(f"{len(wrong)} tensors of the wrong shape (e.g. {'; '.join(wrong[:3])})")
    if problems:
        raise CheckpointError(
            f"{source}: state dict does not fit the model: " + "; ".join(problems)
        )


def load_strict(module: torch.nn.Module, state_dict: Mapping[str, Any], source: str) -> None:
    """Load a state dict after :func:`check_tensors`, reporting misfits by name."""
    tensors = check_tensors(state_dict, source)
    own = module.state_dict()
    compare_shapes(
        {k: tuple(t.shape) for k, t in own.items()},
        {k: tuple(t.shape) for k, t in tensors.items()},
        source,
    )
    derived = tuple(getattr(module, "DERIVED_BUFFERS", ()))
    for k, t in own.items():
        problem = cast_problem(tensors[k], t.dtype)
        if problem is None and derived and k.endswith(derived):
            problem = _derived_problem(tensors[k], t)
        if problem is not None:
            raise CheckpointError(f"{source}: tensor {printable(k)}: {problem}")
    with torch.no_grad():
        for k, t in own.items():
            t.copy_(tensors[k].to(dtype=t.dtype))


def _derived_problem(found: torch.Tensor, built: torch.Tensor) -> str | None:
    """A buffer the config determines (a blur kernel) that the file holds otherwise:
    zeroed kernels loaded and contradicted the recorded ``blur_kernel``."""
    if torch.allclose(found.to(built.dtype), built, rtol=1e-4, atol=1e-6):
        return None
    return (
        f"differs from the values the config implies (sum {float(found.sum()):.4g}, "
        f"expected {float(built.sum()):.4g}): the file contradicts its own config"
    )


def cast_problem(t: torch.Tensor, dtype: torch.dtype) -> str | None:
    """Why ``t`` (finite) would not stay finite as ``dtype``: float64 values beyond
    float32's range loaded as inf, after the finiteness check had passed."""
    if not (t.is_floating_point() and dtype.is_floating_point):
        return None
    limit = torch.finfo(dtype).max
    if torch.finfo(t.dtype).max <= limit:
        return None
    beyond = int((t.abs() > limit).sum())
    if beyond == 0:
        return None
    name = str(dtype).removeprefix("torch.")
    return f"{beyond} values beyond the range of {name} (they would load as inf)"


# ------------------------------------------------------------- options
def check_options(
    options: Mapping[str, Any], allowed: Mapping[str, Any], what: str, source: str
) -> dict[str, Any]:
    """Loader options checked against ``allowed`` (name -> schema check) for ``what``."""
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise CheckpointError(
                f"{source}: option {short_repr(name)} does not apply to {what} "
                f"(its options: {known})"
            )
        try:
            out[name] = allowed[name](value, name)
        except SchemaError as err:
            raise CheckpointError(f"{source}: option {str(err).removeprefix('field ')}") from None
        except ValueError:  # e.g. an int too long to print
            raise CheckpointError(
                f"{source}: option '{name}' has an unusable value {short_repr(value)}"
            ) from None
    return out


# ------------------------------------------------------------- our format
def save_generator(G: Any, path: str | Path) -> Path:
    """Write a generator (``arch``, ``config``, ``state_dict()``) as ``.safetensors``.

    ``path`` must end in ``.safetensors`` (the loaders pick the format by that name); any
    other name is a ValueError naming it, never a silently renamed file.
    """
    path = Path(path)
    if not path.name.lower().endswith(".safetensors"):
        raise ValueError(
            f"{path}: a generator is saved as a .safetensors file; give a path whose name "
            "ends in .safetensors (e.g. gen.safetensors)"
        )
    meta = {CONFIG_KEY: json.dumps({"arch": G.arch, "config": G.config, "format_version": 1})}
    return save_safetensors(dict(G.state_dict()), path, meta, named_by_user=True)


def read_safetensors_header(path: Path) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    """The string header and every tensor's shape of a ``.safetensors`` file (no data read)."""
    check_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (safe_open is no dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: not a readable .safetensors file ({err})") from None
    return meta, shapes


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The string header of a ``.safetensors`` file (no tensor is read)."""
    return read_safetensors_header(path)[0]
