"""A stream iterator's progress, and its ``state_dict`` form for exact resumption.

``Progress`` is everything an iterator has done: candidates labeled, units cut, items
yielded, the uncertainty filter's window, kept samples not yet handed out and the
class balancer. ``to_state`` turns it into plain values and CPU tensors (saved with
``torch.save`` beside a training checkpoint); ``restore`` loads one back after
``check_state`` has made sure that the stream which saved it is the same.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..augment import AlbumentationsAugment, BatchAugment, KorniaAugment, make_augment
from ..balance import ClassBalancer
from ..conventions import IGNORE_INDEX, without_keyword_hints
from ..seeds import check_seed
from ..uncertainty import StreamingQuantile
from .workers import Shard

log = logging.getLogger(__name__)

#: Version of the ``state_dict`` layout.
STATE_VERSION = 2
#: Settings added to the stream after its state layout: a state saved before one existed
#: was made with the value here (the setting's default), so it reads as holding it.
SETTINGS_ADDED_LATER: dict[str, Any] = {"soft_labels": False, "balance_min_pixels": 1}
#: Fields of a state saved by a stream that had started iterating.
PROGRESS_FIELDS = (
    "identity",
    "shard",
    "unit",
    "candidates",
    "units",
    "items",
    "quantile",
    "buffer",
    "pending",
    "offset",
    "balancer",  # None without class_balance; every version-2 state has it
)
#: Per-sample tensors of left-over samples (``probs`` too with ``soft_labels``).
SAMPLE_KEYS = frozenset({"image", "mask", "uncertainty", "seed"})

Tensors = dict[str, torch.Tensor]


@dataclass
class Progress:
    """One iterator's position in the stream and the samples it holds."""

    epoch: int
    shard: Shard
    identity: dict[str, Any]
    unit: int
    quantile: StreamingQuantile
    balancer: ClassBalancer | None
    candidates: int = 0
    units: int = 0
    items: int = 0
    buffer: Tensors = field(default_factory=dict)  # kept samples not yet cut into a unit
    pending: Tensors = field(default_factory=dict)  # the unit being handed out sample-wise
    offset: int = 0  # next sample of ``pending``

    def to_state(self, config: dict[str, Any]) -> dict[str, Any]:
        """The ``state_dict`` of a stream with settings ``config`` at this position."""
        return {
            "version": STATE_VERSION,
            "epoch": self.epoch,
            "fresh": False,
            **config,
            "identity": self.identity,
            "shard": self.shard.as_list(),
            "unit": self.unit,
            "candidates": self.candidates,
            "units": self.units,
            "items": self.items,
            "quantile": self.quantile.state_dict(),
            "buffer": {k: v.cpu().clone() for k, v in self.buffer.items()},
            "pending": {k: v.cpu().clone() for k, v in self.pending.items()},
            "offset": self.offset,
            "balancer": self.balancer.state_dict() if self.balancer is not None else None,
        }

    def restore(self, state: dict[str, Any], device: torch.device) -> None:
        """Continue from ``state`` (checked by ``check_state``) in this iterator's shard."""
        if list(state["shard"]) != self.shard.as_list():
            raise ValueError(
                f"stream state belongs to shard {list(state['shard'])} (rank, world "
                f"size, worker, workers); this iterator is {self.shard.as_list()}. Resume with "
                "the same world size and number of DataLoader workers (with workers, through "
                "torchdata's StatefulDataLoader: a plain DataLoader's stream state tracks the "
                "main process only)."
            )
        if int(state["unit"]) != self.unit:
            raise ValueError(
                f"stream state was saved with {state['unit']} samples per unit, this stream "
                f"makes {self.unit} (set generation_batch to the same value)"
            )
        self.candidates = int(state["candidates"])
        self.units = int(state["units"])
        self.items = int(state["items"])
        self.offset = int(state["offset"])
        self.quantile.load_state_dict(state["quantile"])
        self.buffer = {k: v.to(device) for k, v in state["buffer"].items()}
        self.pending = {k: v.to(device) for k, v in state["pending"].items()}
        if self.balancer is not None:
            self.balancer.load_state_dict(state["balancer"])
            # the class sets of the samples still to hand out (buffer order)
            waiting = buffer_len(self.pending) - self.offset + buffer_len(self.buffer)
            self.balancer.sync_waiting(waiting)

    def pending_left(self) -> bool:
        """Whether samples of the current unit are still to be handed out."""
        return buffer_len(self.pending) > self.offset


def fresh_state(epoch: int, config: dict[str, Any]) -> dict[str, Any]:
    """The ``state_dict`` of a stream that has not iterated yet."""
    return {"version": STATE_VERSION, "epoch": epoch, "fresh": True, **config}


def check_state(
    state: Any,
    config: dict[str, Any],
    identity: Callable[[], dict[str, Any]],
    old_augment: Callable[[], str | None] | None = None,
) -> None:
    """Refuse a state that is not a stream state, has another layout, was saved by a
    stream with other settings (``config``) or models (``identity()``, called only for
    a state that had started iterating: it loads the models), or holds left-over samples
    that this stream could not have made (another frame, unknown class ids).
    ``old_augment()``: this stream's augmentation as states described it before arrays
    were hashed (see ``_legacy_augment``)."""
    if not isinstance(state, dict) or "epoch" not in state:
        raise ValueError("not a DatasetGANStream state (expected a dict with 'epoch')")
    check_epoch(state["epoch"], "stream state: epoch")
    if state.get("version") != STATE_VERSION:
        raise ValueError(
            f"stream state has version {state.get('version')!r}; this dgan_data reads "
            f"version {STATE_VERSION} (states of older versions cannot be resumed)"
        )
    check_same(_legacy_augment(state, config, old_augment), config, "this stream")
    if state.get("fresh"):
        started = {k: state[k] for k in ("candidates", "units", "items") if state.get(k)}
        if started:  # a hand edit: resuming it would silently start the epoch over
            raise ValueError(f"stream state says fresh but records progress {started}")
        return
    missing = [k for k in PROGRESS_FIELDS if k not in state]
    if missing:
        raise ValueError(f"stream state lacks {missing}: not a DatasetGANStream state")
    check_contents(state, soft_labels=bool(config.get("soft_labels")))
    balanced = config.get("class_balance") is not None
    if state["balancer"] is not None and not balanced:
        raise ValueError("stream state holds class-balance progress, but this stream has none")
    if state["balancer"] is None and balanced:
        raise ValueError(
            "stream state holds no class-balance progress (balancer is None), but this "
            "stream balances classes"
        )
    ours = identity()
    check_same(state["identity"], ours, "this stream's models")
    # the identities match, so ours says which frame and classes the samples must have
    check_sample_values(
        state,
        frame=tuple(ours["label_size"]),
        num_classes=int(ours["num_classes"]),
        augmented=config.get("augment") is not None,
    )


def check_contents(state: dict[str, Any], soft_labels: bool = False) -> None:
    """Refuse a damaged state: negative or non-integer counters, left-over samples that
    are not tensors of one length per part, with other parts than the stream makes
    (``probs`` exactly with ``soft_labels``), images and masks of different frames,
    non-finite images, non-int64 seeds, or an offset past the pending unit (such a state
    would resume with samples that were never generated, or fail deep inside)."""
    for key in ("unit", "candidates", "units", "items", "offset"):
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"stream state: {key} must be an int >= 0, got {value!r}")
    if not isinstance(state["identity"], dict):
        raise ValueError(f"stream state: identity must be a dict, got {state['identity']!r}")
    shard = state["shard"]
    if (
        not isinstance(shard, (list, tuple))
        or len(shard) != 4
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in shard)
    ):
        raise ValueError(
            "stream state: shard must be 4 ints >= 0 (rank, world size, worker, workers), "
            f"got {shard!r}"
        )
    keys = (SAMPLE_KEYS | {"probs"}) if soft_labels else SAMPLE_KEYS
    lengths = {part: _check_samples(part, state[part], keys) for part in ("buffer", "pending")}
    if state["offset"] > lengths["pending"]:
        raise ValueError(
            f"stream state: offset {state['offset']} is past the {lengths['pending']} "
            "pending samples"
        )


def _check_samples(part: str, tensors: Any, keys: frozenset[str]) -> int:
    """The number of samples in ``state[part]`` (buffer or pending), after checking
    that it is empty or maps exactly ``keys`` to per-sample tensors of one length whose
    shapes and dtypes are those the stream makes."""
    if not isinstance(tensors, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) and v.dim() >= 1
        for k, v in tensors.items()
    ):
        raise ValueError(f"stream state: {part} must map names to tensors of samples")
    if not tensors:
        return 0
    if set(tensors) != keys:
        raise ValueError(
            f"stream state: {part} holds {sorted(tensors)}; the stream's samples hold "
            f"{sorted(keys)}"
        )
    sizes = {k: v.shape[0] for k, v in tensors.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"stream state: {part} holds parts of different lengths {sizes}")
    image, mask = tensors["image"], tensors["mask"]
    if image.dim() != 4 or image.shape[1] != 3 or not image.is_floating_point():
        raise ValueError(
            f"stream state: {part} images must be float (N, 3, H, W), got "
            f"{image.dtype} {tuple(image.shape)}"
        )
    if mask.dim() != 3:
        raise ValueError(f"stream state: {part} masks must be (N, H, W)")
    if mask.is_floating_point() or mask.is_complex() or mask.dtype == torch.bool:
        raise ValueError(f"stream state: {part} masks must be integer, got {mask.dtype}")
    if image.shape[-2:] != mask.shape[-2:]:
        raise ValueError(
            f"stream state: {part} images are {tuple(image.shape[-2:])}, its masks "
            f"{tuple(mask.shape[-2:])}"
        )
    _check_sample_scalars(part, tensors)
    if "probs" in tensors:
        probs = tensors["probs"]
        if probs.dim() != 4 or probs.shape[-2:] != mask.shape[-2:] or not probs.is_floating_point():
            raise ValueError(
                f"stream state: {part} probs must be float (N, K, H, W) in the masks' frame "
                f"{tuple(mask.shape[-2:])}, got {probs.dtype} {tuple(probs.shape)}"
            )
    if not bool(image.isfinite().all()):  # once per load, not per batch
        raise ValueError(f"stream state: {part} images hold NaN or infinite values")
    return int(sizes["image"])


def _check_sample_scalars(part: str, tensors: Tensors) -> None:
    """One float score and one int64 seed per sample (a float seed loses digits)."""
    score, seed = tensors["uncertainty"], tensors["seed"]
    if score.dim() != 1 or not score.is_floating_point():
        raise ValueError(
            f"stream state: {part} uncertainty must be one float per sample (N,), got "
            f"{score.dtype} {tuple(score.shape)}"
        )
    if seed.dim() != 1 or seed.dtype != torch.int64:
        raise ValueError(
            f"stream state: {part} seed must be one int64 per sample (N,), got "
            f"{seed.dtype} {tuple(seed.shape)}"
        )


def check_sample_values(
    state: dict[str, Any], frame: tuple[int, int], num_classes: int, augmented: bool
) -> None:
    """Refuse left-over samples (checked by ``check_contents``) that this stream could
    not have made: a frame other than its label frame ``frame`` (pending samples only
    without ``augmented``: an augmentation may crop or resize), or mask ids that are
    neither a class (``0..num_classes-1``) nor the ignore index 255."""
    for part in ("buffer", "pending"):
        tensors = state[part]
        if not tensors:
            continue
        mask = tensors["mask"]
        size = tuple(mask.shape[-2:])
        if size != frame and (part == "buffer" or not augmented):
            raise ValueError(
                f"stream state: {part} samples are {size} (H, W), this stream makes {frame}"
            )
        ids = mask.long()
        wrong = (ids < 0) | ((ids >= num_classes) & (ids != IGNORE_INDEX))
        if bool(wrong.any()):
            found = ids[wrong].unique()[:5].tolist()  # sorted
            raise ValueError(
                f"stream state: {part} masks hold ids {found}, neither a class of this "
                f"stream (0..{num_classes - 1}) nor the ignore index {IGNORE_INDEX}"
            )
        probs = tensors.get("probs")
        if probs is not None and probs.shape[1] != num_classes:
            raise ValueError(
                f"stream state: {part} probs hold {probs.shape[1]} classes, this stream "
                f"{num_classes}"
            )


def check_same(saved: dict[str, Any], ours: dict[str, Any], what: str) -> None:
    """Raise naming every setting of ``ours`` that ``saved`` lacks or holds otherwise."""
    saved = {**{k: v for k, v in SETTINGS_ADDED_LATER.items() if k in ours}, **saved}
    diffs = [
        f"{k}={saved[k]!r} ({what}: {v!r})"
        for k, v in ours.items()
        if k in saved and plain(saved[k]) != plain(v)
    ]
    missing = [k for k in ours if k not in saved]
    if diffs or missing:
        detail = ", ".join(diffs + [f"{k} missing" for k in missing])
        raise ValueError(f"stream state was saved by a stream with other settings: {detail}")


def plain(value: Any) -> Any:
    """Tuples as lists (states go through torch.save and JSON); tensors as lists."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def check_epoch(value: Any, name: str = "epoch") -> int:
    """``value`` as an epoch: epochs are mixed into int64 seeds, so they follow the seed
    rule (an int, numpy and tensor ints too, in [0, 2**63)); else ValueError naming
    ``name``. A float, a string or an epoch past 2**64 would otherwise select another
    epoch's samples without a word."""
    return check_seed(value, name)


def describe_augment(spec: Any, legacy: bool = False) -> str | None:
    """A stable description of an augmentation, recorded in stream states: the repr of
    what ``make_augment(spec)`` builds, which lists the pipeline's settings (kornia's
    augmentations, albumentations' transforms), so equal pipelines ("default" and
    ``BatchAugment()``) compare equal and different ones differ. A user callable never
    by its memory address: a ``functools.partial`` as its function, arguments and
    keywords (recursively), a function by module and qualified name, code file and line,
    defaults and closure values. Where that still leaves an object known only by its
    address (its class name is used), a warning says that resume cannot verify it.
    Tensors and arrays by dtype, shape and content hash; ``legacy``: by their repr, as
    states saved before recorded them (no warning then: it was given already)."""
    fn = make_augment(spec)
    if fn is None:
        return None
    if isinstance(fn, (BatchAugment, KorniaAugment, AlbumentationsAugment)):
        return repr(fn)
    unverified: list[str] = []
    text = _describe(fn, unverified, 0, legacy)
    if unverified and not legacy:
        log.warning(
            "augment %s: %s %s known only by a memory address, so a stream state records "
            "only its class and resume cannot verify the augmentation (give it a __repr__ "
            "that lists its settings, or use a function or functools.partial)",
            text[:200],
            ", ".join(sorted(set(unverified))),
            "is" if len(set(unverified)) == 1 else "are",
        )
    return text


def _describe(value: Any, unverified: list[str], depth: int, legacy: bool = False) -> str:
    """``value`` described without memory addresses (see ``describe_augment``); names of
    what could only be told apart by address are added to ``unverified``. ``legacy``:
    tensors and arrays by their repr, as states recorded them before ``_describe_array``."""
    if depth > 8:  # a deeply nested or self-referencing value
        unverified.append(type(value).__qualname__)
        return "..."
    if isinstance(value, functools.partial):
        return (
            f"partial({_describe(value.func, unverified, depth + 1, legacy)}, "
            f"args={_describe(value.args, unverified, depth + 1, legacy)}, "
            f"keywords={_describe(value.keywords, unverified, depth + 1, legacy)})"
        )
    if inspect.ismethod(value):
        return (
            f"{_describe(value.__func__, unverified, depth + 1, legacy)} bound to "
            f"{_describe(value.__self__, unverified, depth + 1, legacy)}"
        )
    if inspect.isfunction(value):
        value = without_keyword_hints(value)  # a package method: its own code, not the wrapper's
        code = value.__code__
        text = (
            f"{value.__module__}.{value.__qualname__} "
            f"({os.path.basename(code.co_filename)}:{code.co_firstlineno})"
        )
        if value.__defaults__:
            text += f" defaults={_describe(value.__defaults__, unverified, depth + 1, legacy)}"
        if value.__kwdefaults__:
            text += f" kwdefaults={_describe(value.__kwdefaults__, unverified, depth + 1, legacy)}"
        if value.__closure__:
            cells = []
            for name, cell in zip(code.co_freevars, value.__closure__):
                try:
                    cells.append(
                        f"{name}={_describe(cell.cell_contents, unverified, depth + 1, legacy)}"
                    )
                except ValueError:  # an empty cell
                    cells.append(f"{name}=<empty>")
            text += f" closure=({', '.join(cells)})"
        return text
    if isinstance(value, (list, tuple)):
        items = ", ".join(_describe(v, unverified, depth + 1, legacy) for v in value)
        return (
            f"[{items}]"
            if isinstance(value, list)
            else f"({items}{',' if len(value) == 1 else ''})"
        )
    if isinstance(value, (set, frozenset)):  # iteration order varies between runs
        return (
            "{"
            + ", ".join(sorted(_describe(v, unverified, depth + 1, legacy) for v in value))
            + "}"
        )
    if isinstance(value, dict):
        items = ", ".join(
            f"{k!r}: {_describe(v, unverified, depth + 1, legacy)}" for k, v in value.items()
        )
        return "{" + items + "}"
    if isinstance(value, (torch.Tensor, np.ndarray)) and not legacy:
        return _describe_array(value, unverified, depth, legacy)
    text = repr(value)
    if " at 0x" not in text:  # plain values, and objects with a repr of their own
        return text
    named = value if hasattr(value, "__qualname__") else type(value)
    name = f"{getattr(named, '__module__', '?')}.{named.__qualname__}"
    unverified.append(name)
    return name


def _describe_array(
    value: torch.Tensor | np.ndarray, unverified: list[str], depth: int, legacy: bool
) -> str:
    """A tensor or array by dtype, shape and a sha256 of its bytes: their repr shortens
    more than 1000 values to "..." and rounds floats, so different tables read equal."""
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:  # its bytes are addresses: describe the objects
            return f"ndarray({_describe(value.tolist(), unverified, depth + 1, legacy)})"
        data = np.ascontiguousarray(value).tobytes()
        return f"ndarray(dtype={value.dtype}, shape={value.shape}, sha256={_sha256(data)})"
    try:
        flat = value.detach().resolve_conj().resolve_neg().cpu().contiguous().reshape(-1)
        data = flat.view(torch.uint8).numpy().tobytes()
    except (RuntimeError, TypeError, NotImplementedError):  # sparse, meta, quantized ...
        unverified.append(f"torch.Tensor({value.layout}, {value.device.type})")
        return f"tensor(dtype={value.dtype}, shape={tuple(value.shape)}, unhashed)"
    return f"tensor(dtype={value.dtype}, shape={tuple(value.shape)}, sha256={_sha256(data)})"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _legacy_augment(
    state: dict[str, Any],
    config: dict[str, Any] | None = None,
    old_augment: Callable[[], str | None] | None = None,
) -> dict[str, Any]:
    """``state`` with an augment recorded by name (states saved before augmentations
    were described by ``describe_augment``: "default", "none") described as now, so
    such a state still resumes under the same augmentation. Other old descriptions
    (a kornia or albumentations class name) cannot tell pipelines apart and are
    refused by the usual comparison. So is a description of a tensor or array by its
    repr (before they were hashed: ``old_augment()`` is ours so described) that is this
    stream's and complete, i.e. not shortened to "..." (its floats are rounded, as
    they were when that state was checked on resume then)."""
    saved = state.get("augment")
    if isinstance(saved, str) and saved.strip().lower() in ("default", "none"):
        return {**state, "augment": describe_augment(saved)}
    ours = config.get("augment") if config is not None else None
    if (
        old_augment is not None
        and isinstance(saved, str)
        and saved != ours
        and "..." not in saved  # an abbreviated repr (or depth cut) cannot be verified
        and saved == old_augment()
    ):
        return {**state, "augment": ours}
    return state


def buffer_len(buffer: Tensors) -> int:
    """Samples in a buffer of per-sample tensors (empty dict: none)."""
    return 0 if not buffer else int(buffer["seed"].shape[0])


def concat(a: Tensors, b: Tensors) -> Tensors:
    """Samples of ``a`` then ``b`` (on ``a``'s device)."""
    if not a:
        return b
    return {k: torch.cat([a[k], b[k].to(a[k].device)]) for k in a}
