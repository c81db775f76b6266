"""File -> generator: format detection and the one entry point for generator files.

Knows architectures and file formats only; preset names are resolved one layer up
(``dgan_data.presets.load_generator``). The registry maps architecture names to classes;
an unknown name lists the valid ones.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..conventions import INTERPRETER_FORMAT, check_device, keyword_hint, with_hint
from ..fileio import parse_json_text, why_not_a_file
from ..schema import Dict, Int, SchemaError, Str, check_document
from .base import MAX_RESOLUTION, Generator
from .files import (
    CONFIG_KEY,
    CheckpointError,
    check_file,
    check_options,
    describe_keys,
    load_strict,
    read_safetensors_header,
    short_repr,
)
from .nvidia import NVIDIA_OPTIONS, load_nvidia_pickle
from .stylegan1 import StyleGAN1Generator
from .stylegan2 import StyleGAN2Generator
from .torch_files import is_zip_archive, safe_torch_load

log = logging.getLogger(__name__)

__all__ = [
    "ARCHITECTURES",
    "FORMAT_OPTIONS",
    "LOADER_OPTIONS",
    "detect_format",
    "get_architecture",
    "load_generator_file",
]

#: Architecture registry: name -> class (``Generator.arch`` is the key).
ARCHITECTURES: dict[str, type[Generator]] = {
    StyleGAN2Generator.arch: StyleGAN2Generator,
    StyleGAN1Generator.arch: StyleGAN1Generator,
}

#: Largest average-latent ``.npy`` accepted (DatasetGAN's is 37 KB).
MAX_AVG_LATENT_BYTES = 64 * 2**20

#: Bytes read from the start of a file to tell its format by content.
_SNIFF_BYTES = 64 * 2**10
#: torch.save's legacy (non-zip) files start with this number, pickled.
_TORCH_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
#: The global every NVIDIA network pickle (``torch_utils.persistence``) names near its start.
_NVIDIA_PERSISTENCE = b"torch_utils.persistence"


def _avg_latent_option(value: Any, field: str) -> Any:
    """Schema check of ``avg_latent``: a path, or an array / tensor of numbers."""
    if isinstance(value, (str, os.PathLike)) and str(value):
        return value
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value
    raise SchemaError(
        f"field '{field}' must be a path to avg_latent_stylegan1.npy or an array, "
        f"got {short_repr(value)}"
    )


def _config_options(cls: type[Generator]) -> dict[str, Any]:
    return {k: cls.CONFIG_SCHEMA[k] for k in getattr(cls, "LOADER_OPTIONS", ())}


#: Loader options per kind of file (what the file says, or ``format_options``): name -> check.
FORMAT_OPTIONS: dict[str, dict[str, Any]] = {
    ".safetensors generators": {},
    "NVIDIA .pkl networks": NVIDIA_OPTIONS,
    "rosinality StyleGAN2 .pt files": _config_options(StyleGAN2Generator),
    "DatasetGAN StyleGAN1 .pt files": {
        "avg_latent": _avg_latent_option,
        **_config_options(StyleGAN1Generator),
    },
}
#: Every loader option name, for ``dgan-data inspect --option``.
LOADER_OPTIONS: tuple[str, ...] = tuple(sorted({k for o in FORMAT_OPTIONS.values() for k in o}))

#: Most characters of a ``.safetensors`` generator's config header, checked before it is
#: parsed: a real one holds a few hundred (its architecture's settings), and JSON of
#: millions of tiny items costs seconds and hundreds of MB to parse and check.
MAX_CONFIG_CHARS = 2**20

#: The header document of our ``.safetensors`` generators.
_HEADER_SCHEMA = {
    "arch": Str(64, choices=tuple(ARCHITECTURES)),
    "config": Dict(),
    "format_version": Int(1, 1),
}


def get_architecture(name: str, source: str = "<config>") -> type[Generator]:
    """The generator class registered as ``name``; an unknown name lists the valid ones."""
    if not isinstance(name, str) or name not in ARCHITECTURES:
        raise CheckpointError(
            f"{source}: unknown architecture {short_repr(name)}; known: "
            f"{', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[name]


# ------------------------------------------------------------ our own format
def load_safetensors_generator(path: Path) -> Generator:
    """A generator written by ``Generator.save`` (config in the header).

    The header is checked against the architecture's config schema and its tensor
    shapes against what that config implies before any module is allocated.
    """
    meta, shapes = read_safetensors_header(path)
    if CONFIG_KEY not in meta:
        if meta.get("format") == INTERPRETER_FORMAT:
            raise CheckpointError(
                f"{path} is a dgan_data interpreter file, not a generator: give it as the "
                "interpreter (--interpreter, interpreter=) and the generator it was trained "
                "on as the generator"
            )
        raise CheckpointError(
            f"{path}: .safetensors file without a dgan_data generator config in its header; "
            "write generators with Generator.save()"
        )
    where = f"{path}: header {CONFIG_KEY}"
    try:
        info = parse_json_text(meta[CONFIG_KEY], where, MAX_CONFIG_CHARS)
        check_document(info, _HEADER_SCHEMA, where, allow_unknown=False)
    except ValueError as err:  # SchemaError is a ValueError
        raise CheckpointError(str(err)) from None
    cls = get_architecture(info["arch"], str(path))
    G = cls.build_checked(info["config"], shapes, str(path), f"header {CONFIG_KEY} config")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: cannot read tensors ({err})") from None
    load_strict(G, tensors, str(path))
    return G


# ------------------------------------------------------------ rosinality .pt
def load_rosinality(obj: dict[str, Any], path: Path, **options: Any) -> Generator:
    """rosinality/stylegan2-pytorch: train form (g_ema, args, ...) or converted form."""
    if not isinstance(obj.get("g_ema"), Mapping):
        raise CheckpointError(f"{path}: g_ema is a {type(obj.get('g_ema')).__name__}, not a dict")
    sd = dict(obj["g_ema"])
    if "latent_avg" in obj and "latent_avg" not in sd:
        avg = obj["latent_avg"]
        if not isinstance(avg, torch.Tensor):
            raise CheckpointError(f"{path}: latent_avg is a {type(avg).__name__}, not a tensor")
        sd["latent_avg"] = avg.reshape(-1)
    has_avg = "latent_avg" in sd
    size = _args_size(obj.get("args"), path)
    G = StyleGAN2Generator.from_state_dict(sd, source=str(path), **options)
    if size is not None and size != G.size:
        raise CheckpointError(
            f"{path}: args.size={short_repr(size)} disagrees with the weights (size {G.size})"
        )
    return _with_average_w(G, has_avg, path)


def _args_size(args: Any, path: Path) -> int | None:
    """The image size rosinality's train.py stored in ``args.size`` (None when absent): an
    int in [4, MAX_RESOLUTION]; anything else is refused naming the file."""
    size = getattr(args, "size", None)
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or not 4 <= size <= MAX_RESOLUTION:
        raise CheckpointError(
            f"{path}: args.size is {short_repr(size)}, expected the image size it was "
            f"trained at (an int in [4, {MAX_RESOLUTION}])"
        )
    return size


def _with_average_w(G: StyleGAN2Generator, has_avg: bool, path: Path) -> StyleGAN2Generator:
    """``G``, its truncation centre estimated (seeded, logged) when the file had none:
    rosinality's own ``mean_latent(4096)``, never zeros."""
    if not has_avg:
        log.info("%s: no latent_avg stored; estimating it from 4096 seeded samples", path)
        G.estimate_average_w()
    return G


# ---------------------------------------------------------------- dispatcher
def detect_format(path: Path) -> str:
    """Name of the file's format: 'safetensors', 'nvidia-pkl' or 'torch'.

    ``.safetensors`` goes by its name. Otherwise the content decides where it is
    unambiguous: a zip archive (torch.save's format) is read as a PyTorch file even when
    named ``.pkl``, and a pickle naming ``torch_utils.persistence`` (an NVIDIA network)
    as an NVIDIA pickle even when named ``.pt``; other ``.pkl`` / ``.pickle`` files go to
    the NVIDIA reader, other pickles to torch's, and a legacy (pre-zip) ``torch.save``
    file, which starts with torch's magic number, to torch's whatever its name.
    """
    check_file(path)
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    name = path.name.lower()
    if name.endswith(".safetensors"):
        return "safetensors"
    pkl_name = name.endswith((".pkl", ".pickle"))
    if head.startswith(b"PK\x03\x04") or (not pkl_name and is_zip_archive(path)):
        if is_zip_archive(path):
            if pkl_name:
                log.info("%s: a zip archive (torch.save's format): read as a PyTorch file", path)
            return "torch"
        raise CheckpointError(  # a zip (torch.save's format) without its end
            f"{path}: damaged or truncated zip archive (it starts like a PyTorch .pt file, "
            "but its zip directory cannot be read; was the download or copy cut short?)"
        )
    legacy_torch = head[:1] == b"\x80" and _TORCH_LEGACY_MAGIC in head[:32]
    if pkl_name and legacy_torch:  # torch.save before 1.6 (or _use_new_zipfile_serialization)
        log.info("%s: a legacy torch.save file: read as a PyTorch file", path)
        return "torch"
    if pkl_name:
        return "nvidia-pkl"
    if head[:1] == b"\x80":
        if _TORCH_LEGACY_MAGIC not in head[:32] and _NVIDIA_PERSISTENCE in head:
            log.info("%s: an NVIDIA network pickle: read as one despite its name", path)
            return "nvidia-pkl"
        return "torch"
    raise CheckpointError(
        f"{path}: unknown checkpoint format (expected .safetensors, an NVIDIA .pkl network, "
        "or a PyTorch .pt file)"
    )


def load_generator_file(
    path: str | Path, device: str | torch.device | None = None, **options: Any
) -> Generator:
    """Load a generator from a file of any supported format; architecture from the weights.

    Options pass to the format's loader (see ``FORMAT_OPTIONS``), e.g. ``avg_latent=``
    (StyleGAN1 average w file), ``include_const_input=True`` (StyleGAN2 features),
    ``lr_mlp=`` (StyleGAN2 mapping), ``network=`` (NVIDIA pickle entry). An option that
    no loader knows, one the file's format does not take, or a value of the wrong type
    raises :class:`CheckpointError` naming the option. ``device`` must be usable here:
    no CUDA, a CUDA index out of range or "meta" is a ValueError before the file is read.
    """
    path = Path(path)
    unknown = [k for k in options if k not in LOADER_OPTIONS]
    if unknown:
        raise CheckpointError(
            with_hint(
                f"{path}: unknown loader option(s) {describe_keys(unknown)} "
                f"(known: {', '.join(LOADER_OPTIONS)})",
                keyword_hint(str(unknown[0]), [*LOADER_OPTIONS, "device"]),
            )
        )
    device = check_device(device)  # before the file is read: a device usable here
    fmt = detect_format(path)
    # building the modules initialises weights the file then replaces: that draws from
    # torch's global generator, which a user's seeded run must not see move
    with torch.random.fork_rng(devices=[]):
        if fmt == "safetensors":
            check_options(
                options, FORMAT_OPTIONS[".safetensors generators"], ".safetensors", str(path)
            )
            G = load_safetensors_generator(path)
        elif fmt == "nvidia-pkl":
            G = load_nvidia_pickle(path, **options)
        else:
            obj = safe_torch_load(path)
            G = _from_torch_object(obj, path, **options)
    G.eval().requires_grad_(False)
    G.source = str(path)  # an interpreter that does not fit it names this file
    if device is not None:
        G.to(device)
    log.info("loaded %s generator from %s (%d px)", G.arch, path, G.resolution[0])
    return G


def _from_torch_object(obj: Any, path: Path, **options: Any) -> Generator:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    keys = list(obj)
    names = [k for k in keys if isinstance(k, str)]
    if "g_ema" in obj:
        kind = "rosinality StyleGAN2 .pt files"
        return load_rosinality(obj, path, **_options(options, kind, path))
    if any(k.startswith(("g_mapping.", "g_synthesis.", "module.g_")) for k in names):
        kind = "DatasetGAN StyleGAN1 .pt files"
        options = _options(options, kind, path)
        stored = any(k in obj for k in ("truncation.avg_latent", "module.truncation.avg_latent"))
        avg, avg_source = _find_avg_latent(path, options.pop("avg_latent", None), stored)
        return StyleGAN1Generator.from_datasetgan_state_dict(
            obj, avg, source=str(path), avg_source=avg_source, **options
        )
    if "conv1.conv.modulation.weight" in obj:  # a bare state dict (g_ema.state_dict())
        kind = "rosinality StyleGAN2 .pt files"
        G = StyleGAN2Generator.from_state_dict(obj, str(path), **_options(options, kind, path))
        return _with_average_w(G, "latent_avg" in obj, path)
    raise CheckpointError(
        f"{path}: a PyTorch file, but not a generator this library knows "
        f"(top-level keys: {describe_keys(keys)}). Supported: rosinality StyleGAN2 "
        "(.pt with 'g_ema'), DatasetGAN StyleGAN1 (*.for_g_all.pt), NVIDIA .pkl, .safetensors"
    )


def _options(options: dict[str, Any], kind: str, path: Path) -> dict[str, Any]:
    return check_options(options, FORMAT_OPTIONS[kind], kind, str(path))


def _find_avg_latent(path: Path, given: Any, stored: bool = False) -> tuple[Any, str | None]:
    """The StyleGAN1 truncation centre (given array/path, or the release's file beside it)
    and the file it came from, which messages about its values name. ``stored``: the
    checkpoint holds its own ``truncation.avg_latent``, used when no file is found (so
    no warning that truncation will use zeros)."""
    if given is not None and not isinstance(given, (str, os.PathLike)):
        return given, None
    if given is not None:
        candidates = [Path(given)]
    else:
        stem = path.name.removesuffix(".pt").removesuffix(".for_g_all")
        candidates = [
            path.with_name(f"{stem}.avg_latent_stylegan1.npy"),
            path.with_name("avg_latent_stylegan1.npy"),
        ]
    for c in candidates:
        if c.is_file():
            return _read_avg_latent(c, path), f"{c} (the average latent for {path})"
        if os.path.lexists(c):  # a link to nothing, a folder, a pipe: not "none found"
            raise CheckpointError(f"{c}: the average latent for {path} {why_not_a_file(c)}")
    if given is not None:
        raise CheckpointError(f"{given}: average latent file not found")
    if stored:
        log.info("%s: no average latent file beside it; using its truncation.avg_latent", path)
        return None, None
    log.warning(
        "%s: no avg_latent_stylegan1.npy found beside it (looked for %s); truncation will use "
        "zeros. Pass avg_latent=PATH.",
        path,
        ", ".join(c.name for c in candidates),
    )
    return None, None


def _read_avg_latent(path: Path, generator: Path | None = None) -> np.ndarray:
    """A ``.npy`` of finite floats (never pickled objects), at most ``MAX_AVG_LATENT_BYTES``.

    ``generator`` (the checkpoint it is for) is named in messages too. The header is
    read first: its shape and dtype must account for exactly the bytes that follow it
    (``np.load`` would allocate whatever shape a 200-byte file declares).
    """
    where = f"{path} (the average latent for {generator})" if generator else str(path)
    size = path.stat().st_size
    if size > MAX_AVG_LATENT_BYTES:
        raise CheckpointError(
            f"{where}: {size} bytes; an average latent is far smaller "
            f"(at most {MAX_AVG_LATENT_BYTES} accepted)"
        )
    try:
        with open(path, "rb") as f:
            shape, fortran, dtype = _npy_header(f, where)
            nbytes = math.prod(shape) * dtype.itemsize
            body = size - f.tell()
            if nbytes != body:
                raise CheckpointError(
                    f"{where}: its header declares a {dtype} array of shape {shape} "
                    f"({nbytes} bytes), the file holds {body} bytes after the header"
                )
            data = f.read(nbytes)
    except OSError as err:
        raise CheckpointError(f"{where}: cannot read the average latent ({err})") from None
    if len(data) != nbytes:
        raise CheckpointError(f"{where}: the file changed while it was read")
    arr = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    if not bool(np.isfinite(arr).all()):
        raise CheckpointError(f"{where}: NaN or inf values")
    return arr.astype(np.float32)


def _npy_header(f: Any, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) of an ``.npy`` header; a float dtype is required."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
    except (ValueError, EOFError) as err:  # not .npy (e.g. an .npz archive), bad header
        msg = " ".join(str(err).split())[:200] or type(err).__name__
        raise CheckpointError(f"{where}: not a readable .npy array ({msg})") from None
    if dtype.kind != "f" or dtype.hasobject or dtype.fields is not None or dtype.subdtype:
        raise CheckpointError(f"{where}: a .npy array of {dtype}, expected floating point numbers")
    if len(shape) > 3:
        raise CheckpointError(f"{where}: a .npy array of shape {shape}, expected 1 to 3 dimensions")
    return shape, fortran, dtype
