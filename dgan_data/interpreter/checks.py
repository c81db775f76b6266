"""Argument checks of the interpreter: its sizes, labels and frame, and the settings of a
fit, as plain Python values, or a one-line ValueError naming the argument.

The limits are the file format's (``io.METADATA_FIELDS``), so whatever the constructor,
``fit`` or ``save`` accepts, ``load`` reads back; a fit's settings are all checked before
its first feature map is computed.
"""

from __future__ import annotations

from typing import Any

import torch

from ..conventions import (
    IGNORE_INDEX,
    check_fingerprint,
    check_int,
    check_names,
    check_number,
    check_palette,
    check_truncation_psi,
)
from ..seeds import check_seed
from . import io
from .resample import Layout, check_crop, check_label_size

__all__ = [
    "STORE_DTYPES",
    "check_frame",
    "check_labels",
    "check_layout",
    "check_mask_ids",
    "check_sizes",
    "check_store_dtype",
    "check_triple",
    "default_hidden",
    "sampling_settings",
    "training_settings",
]

#: Dtypes the feature store keeps maps in (an integer or bool dtype would quantise them).
STORE_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def default_hidden(num_classes: int) -> tuple[int, int]:
    """DatasetGAN's hidden sizes: (128, 32) for fewer than 32 classes, else (256, 128)."""
    return (128, 32) if num_classes < 32 else (256, 128)


def _as_list(value: Any) -> list[Any]:
    """``value``'s items; none for a string or something that is not iterable."""
    try:
        return [] if isinstance(value, (str, bytes)) else list(value)
    except TypeError:
        return []


def _items(value: Any, length: int, name: str, what: str) -> list[Any]:
    """``value``'s items when it is a sequence of ``length``, else a ValueError."""
    items = _as_list(value)
    if len(items) != length:
        raise ValueError(f"{name} must be {what}, got {value!r:.80}")
    return items


def check_triple(entry: Any, name: str) -> tuple[int, int, int]:
    """A (channels, height, width) of positive ints, sides at most ``io.MAX_SIDE``."""
    c, h, w = _items(entry, 3, name, "(channels, height, width)")
    c = check_int(c, f"{name} channels", 1)
    h, w = (check_int(v, f"{name} side", 1, io.MAX_SIDE) for v in (h, w))
    return c, h, w


def check_layout(layout: Any) -> Layout:
    """A feature layout: 1 to ``io.MAX_MAPS`` (channels, height, width) triples."""
    entries = _as_list(layout)
    if not 1 <= len(entries) <= io.MAX_MAPS:
        raise ValueError(
            f"feature_layout must be 1 to {io.MAX_MAPS} (channels, height, width) "
            f"entries, got {layout!r:.80}"
        )
    return [check_triple(e, f"feature_layout[{i}]") for i, e in enumerate(entries)]


def check_sizes(num_classes: Any, num_models: Any, hidden: Any) -> tuple[int, int, tuple[int, int]]:
    """(num_classes, num_models, (h1, h2)) as Python ints inside the file format's limits."""
    K = check_int(num_classes, "num_classes", 1, io.MAX_CLASSES)
    M = check_int(num_models, "num_models", 1, io.MAX_MODELS)
    if hidden is None:
        return K, M, default_hidden(K)
    h1, h2 = (
        check_int(v, f"hidden[{i}]", 1, io.MAX_HIDDEN)
        for i, v in enumerate(_items(hidden, 2, "hidden", "two layer sizes (h1, h2)"))
    )
    return K, M, (h1, h2)


def check_labels(
    class_names: Any, palette: Any, fingerprint: Any, num_classes: int
) -> tuple[list[str] | None, list[list[int]] | None, str | None]:
    """(class names, palette, fingerprint) checked against ``num_classes`` and the format."""
    names = check_names(class_names) if class_names is not None else None
    if names is not None and len(names) != num_classes:
        raise ValueError(f"{len(names)} class names given for {num_classes} classes")
    most = io.MAX_NAME_CHARS
    long = [n for n in names or () if len(n) > most]
    if long:
        raise ValueError(f"class names have at most {most} characters, got {long[0]!r:.60}")
    pal = check_palette(palette, num_classes) if palette is not None else None
    return names, pal, check_fingerprint(fingerprint)


#: Most pixels per model and step: each holds every feature channel of every model
#: (10**6 took 5 GB and 22 s for one step on 8,192 annotated pixels; 10**9 never ended).
MAX_PIXEL_BATCH = 65_536


def _check_batch_size(value: Any) -> int:
    """Pixels per model and step: an int in 2..MAX_PIXEL_BATCH, since training-mode
    BatchNorm normalises each unit over them (over one pixel every unit is its bias:
    nothing is learned)."""
    try:
        return check_int(value, "batch_size", 2, MAX_PIXEL_BATCH)
    except ValueError as err:
        raise ValueError(
            f"{err} (pixels per model and step: BatchNorm normalises each hidden unit over "
            "them, and over a single pixel every unit becomes its bias, so nothing is "
            f"learned; more than {MAX_PIXEL_BATCH:,} only exhaust memory)"
        ) from None


def training_settings(
    batch_size: Any,
    lr: Any,
    max_steps: Any,
    min_steps: Any,
    eval_every: Any,
    patience: Any,
    min_delta: Any,
    seed: Any,
    class_balance: Any,
) -> dict[str, Any]:
    """The training hyperparameters as plain Python numbers (saved as JSON), or a
    ValueError naming the first bad one: checked before any feature is computed."""
    lr = check_number(lr, "lr")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    min_delta = check_number(min_delta, "min_delta", low=0.0)
    if min_delta >= 1:
        raise ValueError(f"min_delta (a relative loss drop) must be in [0, 1), got {min_delta!r}")
    return {
        "batch_size": _check_batch_size(batch_size),
        "lr": lr,
        "max_steps": check_int(max_steps, "max_steps", 1),
        "min_steps": check_int(min_steps, "min_steps", 0),
        "eval_every": check_int(eval_every, "eval_every", 1),
        "patience": check_int(patience, "patience", 1),
        "min_delta": min_delta,
        "seed": check_seed(seed),
        "class_balance": check_number(class_balance, "class_balance", low=0.0, high=1.0),
    }


def check_store_dtype(dtype: Any) -> torch.dtype:
    """``dtype`` when it is one of :data:`STORE_DTYPES`, else a ValueError."""
    if not any(dtype is d for d in STORE_DTYPES):
        raise ValueError(
            f"store_dtype must be torch.float16, torch.bfloat16 or torch.float32, got {dtype!r:.80}"
        )
    return dtype


def check_frame(
    masks: torch.Tensor, output_size: Any, crop: Any
) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """(label frame, crop) of a fit: ``output_size`` (default: the masks' size), and the
    crop of it that must have the masks' size."""
    height, width = masks.shape[1:]
    if output_size is None:
        if crop is not None:
            raise ValueError("a crop needs output_size (the frame the crop is cut from)")
        frame = check_label_size((height, width), "the masks' size")
    else:
        frame = check_label_size(output_size, "output_size")
    crop_ = check_crop(crop, frame)  # type: ignore[arg-type]
    if (crop_[2], crop_[3]) != (height, width):
        raise ValueError(
            f"masks are {height} x {width} but the label frame {frame} with crop {crop} "
            f"gives {crop_[2]} x {crop_[3]}"
        )
    return frame, crop_  # type: ignore[return-value]


def sampling_settings(annotations: Any) -> dict[str, Any]:
    """The annotations' latent sampling settings (truncation, noise) as JSON values: the
    stream draws new samples the same way, from the interpreter's ``training_info``."""
    psi = getattr(annotations, "truncation_psi", None)
    cutoff = getattr(annotations, "truncation_cutoff", None)
    noise = getattr(annotations, "noise", None) or "const"
    if not isinstance(noise, str):
        raise ValueError(f"annotations.noise must be a noise mode name, got {noise!r:.80}")
    return {
        "truncation_psi": None if psi is None else check_truncation_psi(psi, "truncation_psi"),
        "truncation_cutoff": None if cutoff is None else check_int(cutoff, "truncation_cutoff", 0),
        "noise": noise,
    }


def check_mask_ids(masks: torch.Tensor, num_classes: int) -> None:
    """Every mask value is a class id in [0, num_classes) or the ignore index, and some
    pixel is annotated; with more than 255 classes the value 255 would be both, so masks
    holding it are refused."""
    if num_classes > IGNORE_INDEX:
        ambiguous = int((masks == IGNORE_INDEX).sum())
        if ambiguous:
            raise ValueError(
                f"masks hold {ambiguous} pixels of value {IGNORE_INDEX}, the ignore index, "
                f"but with num_classes={num_classes} it is also a class id: fit cannot tell "
                f"which is meant. Use at most {IGNORE_INDEX} classes (ids 0..{IGNORE_INDEX - 1}"
                f") to keep {IGNORE_INDEX} as ignore, or give masks without the value "
                f"{IGNORE_INDEX}"
            )
    if bool((masks == IGNORE_INDEX).all()):  # found after every image was stored
        raise ValueError(
            f"every mask pixel is {IGNORE_INDEX} (ignore): nothing to train on; "
            "nothing was computed"
        )
    bad = (masks != IGNORE_INDEX) & ((masks < 0) | (masks >= num_classes))
    if bad.any():
        n, y, x = (int(v) for v in bad.nonzero()[0])
        raise ValueError(
            f"mask {n} has class id {int(masks[n, y, x])} at pixel (y={y}, x={x}); "
            f"ids must be in [0, {num_classes}) or {IGNORE_INDEX} (ignore)"
        )
