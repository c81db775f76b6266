"""A stream iterator's progress, and its ``state_dict`` form for exact resumption.

``Progress`` is everything an iterator has done: candidates labeled, units cut, items
yielded, the uncertainty filter's window, kept samples not yet handed out and the
class balancer. ``to_state`` turns it into plain values and CPU tensors (saved with
``torch.save`` beside a training checkpoint); ``restore`` loads one back after
``check_state`` has made sure that the stream which saved it is the same.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from ..augment import AlbumentationsAugment, BatchAugment, KorniaAugment, make_augment
from ..balance import ClassBalancer
from ..conventions import without_keyword_hints
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
)

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


def check_state(state: Any, config: dict[str, Any], identity: Any) -> None:
    """Refuse a state that is not a stream state, has another layout, or was saved by a
    stream with other settings (``config``) or models (``identity()``, called only for
    a state that had started iterating: it loads the models)."""
    if not isinstance(state, dict) or "epoch" not in state:
        raise ValueError("not a DatasetGANStream state (expected a dict with 'epoch')")
    check_epoch(state["epoch"], "stream state: epoch")
    if state.get("version") != STATE_VERSION:
        raise ValueError(
            f"stream state has version {state.get('version')!r}; this dgan_data reads "
            f"version {STATE_VERSION} (states of older versions cannot be resumed)"
        )
    check_same(_legacy_augment(state), config, "this stream")
    if state.get("fresh"):
        started = {k: state[k] for k in ("candidates", "units", "items") if state.get(k)}
        if started:  # a hand edit: resuming it would silently start the epoch over
            raise ValueError(f"stream state says fresh but records progress {started}")
        return
    missing = [k for k in PROGRESS_FIELDS if k not in state]
    if missing:
        raise ValueError(f"stream state lacks {missing}: not a DatasetGANStream state")
    check_contents(state)
    if state.get("balancer") is not None and config.get("class_balance") is None:
        raise ValueError("stream state holds class-balance progress, but this stream has none")
    check_same(state["identity"], identity(), "this stream's models")


def check_contents(state: dict[str, Any]) -> None:
    """Refuse a damaged state: negative or non-integer counters, left-over samples that
    are not tensors of one length per part, images and masks of different frames, or an
    offset past the pending unit (such a state would resume with samples that were never
    generated)."""
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
    lengths = {}
    for part in ("buffer", "pending"):
        tensors = state[part]
        if not isinstance(tensors, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) and v.dim() >= 1
            for k, v in tensors.items()
        ):
            raise ValueError(f"stream state: {part} must map names to tensors of samples")
        sizes = {k: v.shape[0] for k, v in tensors.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"stream state: {part} holds parts of different lengths {sizes}")
        image, mask = tensors.get("image"), tensors.get("mask")
        if image is not None and image.dim() != 4:
            raise ValueError(f"stream state: {part} images must be (N, C, H, W)")
        if image is not None and (image.shape[1] != 3 or not image.is_floating_point()):
            raise ValueError(
                f"stream state: {part} images must be float (N, 3, H, W), got "
                f"{image.dtype} {tuple(image.shape)}"
            )
        if mask is not None and mask.dim() != 3:
            raise ValueError(f"stream state: {part} masks must be (N, H, W)")
        if mask is not None and (
            mask.is_floating_point() or mask.is_complex() or mask.dtype == torch.bool
        ):
            raise ValueError(f"stream state: {part} masks must be integer, got {mask.dtype}")
        if image is not None and mask is not None and image.shape[-2:] != mask.shape[-2:]:
            raise ValueError(
                f"stream state: {part} images are {tuple(image.shape[-2:])}, its masks "
                f"{tuple(mask.shape[-2:])}"
            )
        lengths[part] = next(iter(sizes.values()), 0)
    buffer_keys, pending_keys = set(state["buffer"]), set(state["pending"])
    if pending_keys and buffer_keys and buffer_keys != pending_keys:
        raise ValueError(
            f"stream state: pending samples hold {sorted(pending_keys)}, the buffer "
            f"{sorted(buffer_keys)}"
        )
    if state["offset"] > lengths["pending"]:
        raise ValueError(
            f"stream state: offset {state['offset']} is past the {lengths['pending']} "
            "pending samples"
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


def describe_augment(spec: Any) -> str | None:
    """A stable description of an augmentation, recorded in stream states: the repr of
    what ``make_augment(spec)`` builds, which lists the pipeline's settings (kornia's
    augmentations, albumentations' transforms), so equal pipelines ("default" and
    ``BatchAugment()``) compare equal and different ones differ. A user callable never
    by its memory address: a ``functools.partial`` as its function, arguments and
    keywords (recursively), a function by module and qualified name, code file and line,
    defaults and closure values. Where that still leaves an object known only by its
    address (its class name is used), a warning says that resume cannot verify it."""
    fn = make_augment(spec)
    if fn is None:
        return None
    if isinstance(fn, (BatchAugment, KorniaAugment, AlbumentationsAugment)):
        return repr(fn)
    unverified: list[str] = []
    text = _describe(fn, unverified, 0)
    if unverified:
        log.warning(
            "augment %s: %s %s known only by a memory address, so a stream state records "
            "only its class and resume cannot verify the augmentation (give it a __repr__ "
            "that lists its settings, or use a function or functools.partial)",
            text[:200],
            ", ".join(sorted(set(unverified))),
            "is" if len(set(unverified)) == 1 else "are",
        )
    return text


def _describe(value: Any, unverified: list[str], depth: int) -> str:
    """``value`` described without memory addresses (see ``describe_augment``); names of
    what could only be told apart by address are added to ``unverified``."""
    if depth > 8:  # a deeply nested or self-referencing value
        unverified.append(type(value).__qualname__)
        return "..."
    if isinstance(value, functools.partial):
        return (
            f"partial({_describe(value.func, unverified, depth + 1)}, "
            f"args={_describe(value.args, unverified, depth + 1)}, "
            f"keywords={_describe(value.keywords, unverified, depth + 1)})"
        )
    if inspect.ismethod(value):
        return (
            f"{_describe(value.__func__, unverified, depth + 1)} bound to "
            f"{_describe(value.__self__, unverified, depth + 1)}"
        )
    if inspect.isfunction(value):
        value = without_keyword_hints(value)  # a package method: its own code, not the wrapper's
        code = value.__code__
        text = (
            f"{value.__module__}.{value.__qualname__} "
            f"({os.path.basename(code.co_filename)}:{code.co_firstlineno})"
        )
        if value.__defaults__:
            text += f" defaults={_describe(value.__defaults__, unverified, depth + 1)}"
        if value.__kwdefaults__:
            text += f" kwdefaults={_describe(value.__kwdefaults__, unverified, depth + 1)}"
        if value.__closure__:
            cells = []
            for name, cell in zip(code.co_freevars, value.__closure__):
                try:
                    cells.append(f"{name}={_describe(cell.cell_contents, unverified, depth + 1)}")
                except ValueError:  # an empty cell
                    cells.append(f"{name}=<empty>")
            text += f" closure=({', '.join(cells)})"
        return text
    if isinstance(value, (list, tuple)):
        items = ", ".join(_describe(v, unverified, depth + 1) for v in value)
        return (
            f"[{items}]"
            if isinstance(value, list)
            else f"({items}{',' if len(value) == 1 else ''})"
        )
    if isinstance(value, (set, frozenset)):  # iteration order varies between runs
        return "{" + ", ".join(sorted(_describe(v, unverified, depth + 1) for v in value)) + "}"
    if isinstance(value, dict):
        items = ", ".join(f"{k!r}: {_describe(v, unverified, depth + 1)}" for k, v in value.items())
        return "{" + items + "}"
    text = repr(value)
    if " at 0x" not in text:  # plain values, and objects with a repr of their own
        return text
    named = value if hasattr(value, "__qualname__") else type(value)
    name = f"{getattr(named, '__module__', '?')}.{named.__qualname__}"
    unverified.append(name)
    return name


def _legacy_augment(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with an augment recorded by name (states saved before augmentations
    were described by ``describe_augment``: "default", "none") described as now, so
    such a state still resumes under the same augmentation. Other old descriptions
    (a kornia or albumentations class name) cannot tell pipelines apart and are
    refused by the usual comparison."""
    saved = state.get("augment")
    if isinstance(saved, str) and saved.strip().lower() in ("default", "none"):
        return {**state, "augment": describe_augment(saved)}
    return state


def buffer_len(buffer: Tensors) -> int:
    """Samples in a buffer of per-sample tensors (empty dict: none)."""
    return 0 if not buffer else int(buffer["seed"].shape[0])


def concat(a: Tensors, b: Tensors) -> Tensors:
    """Samples of ``a`` then ``b`` (on ``a``'s device)."""
    if not a:
        return b
    return {k: torch.cat([a[k], b[k].to(a[k].device)]) for k in a}
