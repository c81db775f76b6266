"""Interpreter files: ``.safetensors`` weights with JSON metadata in the header.

Reading checks the header against its schema and the declared tensor shapes and dtypes
against the shapes the metadata implies *before* any tensor is allocated, so a small
hostile file cannot make the loader allocate gigabytes; weights that are not floating
point, non-finite weights, negative BatchNorm running variances, a label frame larger
than the Labeler takes and a crop outside the label frame are refused. Writing checks
the metadata with the reader's own rules, so a file that is written can be read back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from .._version import __version__
from ..conventions import (
    GENERATOR_CONFIG_KEY,
    INTERPRETER_FORMAT,
    MAX_FINGERPRINT_CHARS,
    check_names,
)
from ..fileio import nonempty_path, parse_json_text, require_file, save_safetensors
from ..schema import Any_, Dict, Int, IntList, ListOf, Optional, SchemaError, Str, check_document
from .context import MAX_CONTEXT, input_layout
from .resample import MAX_LABEL_SIDE

__all__ = [
    "CONTEXT_FORMAT_VERSION",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "InterpreterFileError",
    "expected_shapes",
    "is_interpreter_file",
    "read_interpreter_file",
    "read_interpreter_metadata",
    "write_interpreter_file",
]

#: ``format`` value in the safetensors header of a saved interpreter.
FORMAT_NAME = INTERPRETER_FORMAT
FORMAT_VERSION = 1
#: Version of files that use pixel context (image and/or neighbourhood): a reader that
#: predates it refuses them with "upgrade dgan_data" instead of misreading the weights.
CONTEXT_FORMAT_VERSION = 2

#: Plausibility bounds of a saved interpreter (far above any real one).
MAX_MODELS = 256
MAX_HIDDEN = 8192
MAX_CLASSES = 4096
MAX_MAPS = 512
MAX_CHANNELS = 65536
#: Largest side of a feature map or of the generated image.
MAX_SIDE = 16384
#: Most characters of a class name.
MAX_NAME_CHARS = 256
#: Most characters of the JSON metadata (the header's ``interpreter`` entry), checked
#: before it is parsed: parsing costs time and memory many times its size (a 16 MB list of
#: empty lists in ``extra`` took 10 s and +280 MB). A real one holds a few kB (1000 classes
#: with names, palette and training record: about 70 kB); 4096 classes with 256-character
#: names (the schema's most) need about 1.2 MB.
MAX_METADATA_CHARS = 2 * 2**20
#: BatchNorm running variances (they are averages of variances: never negative).
VAR_TENSORS = ("bn1_var", "bn2_var")
#: safetensors dtypes accepted for the weights (read as float32).
FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")

METADATA_FIELDS = {
    "format": Str(choices=(FORMAT_NAME,)),
    "format_version": Int(1, None),
    "num_models": Int(1, MAX_MODELS),
    "num_classes": Int(1, MAX_CLASSES),
    "hidden": IntList(2, 1, MAX_HIDDEN),
    "class_names": Optional(ListOf(Str(MAX_NAME_CHARS, min_len=1), max_len=MAX_CLASSES)),
    "palette": Optional(ListOf(IntList(3, 0, 255), max_len=MAX_CLASSES)),
    "feature_layout": ListOf(IntList(3, 1, None), min_len=1, max_len=MAX_MAPS),
    "fingerprint": Optional(Str(MAX_FINGERPRINT_CHARS)),
    "label_size": Optional(IntList(2, 1, MAX_LABEL_SIDE)),
    "crop": Optional(IntList(4, 0, MAX_LABEL_SIDE)),
    "training": Optional(Dict()),
    "image_layout": Optional(IntList(3, 1, MAX_SIDE)),
    "context": Optional(Int(0, MAX_CONTEXT)),
    "dgan_data_version": Optional(Str(64)),
    "extra": Optional(Any_()),
}


class InterpreterFileError(ValueError):
    """An interpreter file is unreadable, inconsistent or implausible."""


def expected_shapes(
    num_models: int, hidden: tuple[int, int], in_channels: int, num_classes: int
) -> dict[str, tuple[int, ...]]:
    """Shape of every tensor of an interpreter with these sizes (its state dict)."""
    M, (h1, h2), C, K = num_models, hidden, in_channels, num_classes
    return {
        "w1": (M, h1, C), "b1": (M, h1), "bn1_weight": (M, h1), "bn1_bias": (M, h1),
        "w2": (M, h2, h1), "b2": (M, h2), "bn2_weight": (M, h2), "bn2_bias": (M, h2),
        "w3": (M, K, h2), "b3": (M, K),
        "bn1_mean": (M, h1), "bn1_var": (M, h1), "bn2_mean": (M, h2), "bn2_var": (M, h2),
    }  # fmt: skip


def write_interpreter_file(
    path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write weights (float32) and metadata atomically. The metadata is first checked
    with the reader's rules: a file :func:`read_interpreter_file` would refuse is never
    written (nor does it replace a good file at ``path``)."""
    meta = {
        **meta,
        "format": FORMAT_NAME,
        "format_version": meta.get("format_version", FORMAT_VERSION),
        "dgan_data_version": __version__,
    }
    tensors = {k: v.detach().to("cpu", torch.float32) for k, v in tensors.items()}
    try:
        text = json.dumps(meta, allow_nan=True)
        _check_metadata(text, path)
        _check_values(tensors, "its weights")
    except (TypeError, ValueError) as err:  # json's TypeError: a value JSON cannot hold
        raise ValueError(f"not writing interpreter file {path}: {err}") from None
    header = {
        "format": FORMAT_NAME,
        "format_version": str(meta["format_version"]),
        "interpreter": text,
    }
    return save_safetensors(tensors, path, header, named_by_user=True)


def read_interpreter_file(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(metadata, tensors) of an interpreter file, validated; errors name the file."""
    path = _check_file(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            slices = {k: f.get_slice(k) for k in f.keys()}  # noqa: SIM118
            declared = {k: tuple(s.get_shape()) for k, s in slices.items()}
            if header.get("format") != FORMAT_NAME or "interpreter" not in header:
                raise InterpreterFileError(_not_an_interpreter(path, header))
            meta = _check_metadata(header["interpreter"], path)
            _check_shapes(meta, declared, path)
            _check_dtypes({k: s.get_dtype() for k, s in slices.items()}, path)
            tensors = {k: f.get_tensor(k).float() for k in declared}
    except (InterpreterFileError, FileNotFoundError):
        raise
    except Exception as exc:  # safetensors raises several types for damaged files
        raise InterpreterFileError(
            f"cannot read interpreter file {path}: not a valid .safetensors file ({exc})"
        ) from None
    _check_values(tensors, f"interpreter file {path}")
    return meta, tensors


def _check_file(path: str | Path) -> Path:
    """``path`` as a Path when it is a file; FileNotFoundError saying what it is otherwise
    (TypeError for something that is no path at all)."""
    path = nonempty_path(path, "interpreter file")
    try:
        return require_file(path, "checkpoint file")
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"interpreter file {exc}") from None


def _check_values(tensors: dict[str, torch.Tensor], where: str) -> None:
    """Weights are finite and BatchNorm running variances >= 0 (either would make every
    prediction NaN: labels all class 0, or blame put on the features)."""
    bad = [k for k, t in tensors.items() if not bool(torch.isfinite(t).all())]
    if bad:
        raise InterpreterFileError(
            f"{where} holds non-finite values (NaN or inf) in {bad}: "
            "retrain it (a NaN latent or learning rate poisons every weight)"
        )
    for name in VAR_TENSORS:
        t = tensors.get(name)
        if t is not None and bool((t < 0).any()):
            raise InterpreterFileError(
                f"{where}: {name} holds {int((t < 0).sum())} negative BatchNorm running "
                f"variance(s) (min {float(t.min()):.4g}); a variance is never negative: "
                "the weights are damaged or were edited"
            )


def read_interpreter_metadata(path: str | Path) -> dict[str, Any]:
    """The validated metadata of an interpreter file, without reading any tensor."""
    path = _check_file(path)
    header = _read_header(path)
    if header.get("format") != FORMAT_NAME or "interpreter" not in header:
        raise InterpreterFileError(_not_an_interpreter(path, header))
    return _check_metadata(header["interpreter"], path)


def is_interpreter_file(path: Path) -> bool:
    """``path`` is a ``.safetensors`` file whose header names it an interpreter (no
    tensor is read; a damaged file is left to whichever loader then reads it)."""
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    try:
        return _read_header(path).get("format") == FORMAT_NAME
    except InterpreterFileError:
        return False


def _read_header(path: Path) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file's header."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return f.metadata() or {}
    except Exception as exc:  # safetensors raises several types for damaged files
        raise InterpreterFileError(
            f"cannot read interpreter file {path}: not a valid .safetensors file ({exc})"
        ) from None


def _not_an_interpreter(path: Path, header: dict[str, str]) -> str:
    """Why a .safetensors file is no interpreter, naming a generator file as such (the
    two kinds of file are easily swapped on a command line)."""
    if GENERATOR_CONFIG_KEY in header:
        return (
            f"{path} is a dgan_data generator file, not an interpreter: give it as the "
            "generator (--generator, generator=) and an interpreter trained on it as the "
            "interpreter (dgan-data fit makes one)"
        )
    return (
        f"{path} is a .safetensors file but not a dgan_data interpreter (its header has no "
        f"format '{FORMAT_NAME}')"
    )


def _check_metadata(text: str, path: Path) -> dict[str, Any]:
    """The parsed, validated metadata of an interpreter file; InterpreterFileError naming
    the file otherwise (an oversized text is refused before it is parsed)."""
    try:
        meta = parse_json_text(text, f"{path} (interpreter metadata)", MAX_METADATA_CHARS)
        check_document(meta, METADATA_FIELDS, f"{path} (interpreter metadata)")
    except (SchemaError, ValueError) as err:
        raise InterpreterFileError(str(err)) from None
    if meta["format_version"] > CONTEXT_FORMAT_VERSION:
        raise InterpreterFileError(
            f"interpreter file {path} has format version {meta['format_version']!r:.40}; this "
            f"dgan_data reads up to {CONTEXT_FORMAT_VERSION}: upgrade dgan_data"
        )
    K = meta["num_classes"]
    if meta.get("class_names") is not None:
        # The rule every other reader of class names uses: a blank or repeated name was
        # refused by Interpreter.load without naming the file, and passed inspect.
        try:
            check_names(meta["class_names"], f"{path} (interpreter metadata): 'class_names'")
        except ValueError as err:
            raise InterpreterFileError(str(err)) from None
    for key in ("class_names", "palette"):
        if meta.get(key) is not None and len(meta[key]) != K:
            raise InterpreterFileError(
                f"{path} (interpreter metadata): '{key}' has {len(meta[key])} entries for "
                f"{K} classes"
            )
    channels = _input_channels(meta)
    if channels > MAX_CHANNELS or any(max(h, w) > MAX_SIDE for _, h, w in meta["feature_layout"]):
        raise InterpreterFileError(
            f"{path} (interpreter metadata): 'feature_layout' is implausibly large "
            f"({channels} channels in all, at most {MAX_CHANNELS}; sides at most {MAX_SIDE})"
        )
    if meta.get("crop") is not None:
        if meta.get("label_size") is None:
            raise InterpreterFileError(f"{path} (interpreter metadata): a crop needs 'label_size'")
        top, left, height, width = meta["crop"]
        frame_h, frame_w = meta["label_size"]
        if height < 1 or width < 1 or top + height > frame_h or left + width > frame_w:
            raise InterpreterFileError(
                f"{path} (interpreter metadata): 'crop' (top={top}, left={left}, "
                f"height={height}, width={width}) does not fit in 'label_size' "
                f"({frame_h}, {frame_w})"
            )
    return meta


def _input_channels(meta: dict[str, Any]) -> int:
    """Input channels of the MLP: feature maps, image and neighbourhood copies."""
    layout = [tuple(entry) for entry in meta["feature_layout"]]
    inputs = input_layout(layout, meta.get("image_layout"), meta.get("context") or 0)
    return sum(c for c, _, _ in inputs)


def _check_dtypes(dtypes: dict[str, str], path: Path) -> None:
    """Weights are floating point (we write F32; F16, BF16 and F64 are read as float32)."""
    bad = {k: d for k, d in dtypes.items() if d not in FLOAT_DTYPES}
    if bad:
        listed = ", ".join(f"{k} ({d})" for k, d in sorted(bad.items())[:8])
        raise InterpreterFileError(
            f"interpreter file {path} stores weights of a type it cannot hold: {listed}; "
            f"expected one of {', '.join(FLOAT_DTYPES)} (not integers, bool or float8/float4)"
        )


def _check_shapes(meta: dict[str, Any], declared: dict[str, tuple[int, ...]], path: Path) -> None:
    channels = _input_channels(meta)
    want = expected_shapes(meta["num_models"], tuple(meta["hidden"]), channels, meta["num_classes"])
    missing = sorted(set(want) - set(declared))
    extra = sorted(set(declared) - set(want))
    wrong = [
        f"{k} {declared[k]} (expected {want[k]})"
        for k in want
        if k in declared and declared[k] != want[k]
    ]
    if missing or extra or wrong:
        raise InterpreterFileError(
            f"interpreter file {path} does not match its metadata: missing {missing}, "
            f"unexpected {extra}, wrong shapes {wrong}"
        )
