"""Downstream training: a segmentation model trained on labeled batches, and its evaluation.

DatasetGAN's point is the segmentation network trained on the generated data, so the
library ships the loop the examples and ``dgan-data demo`` share:

- :func:`train_segmentation`: cross-entropy (``ignore_index`` 255), AdamW, linear
  warm-up then cosine decay, AMP on CUDA, tqdm progress, periodic evaluation and atomic
  checkpoints. It times every step in two parts, **data** (waiting for the next batch:
  stream generation, rendering, augmentation) and **optimisation** (forward, backward,
  step), so a run reports whether the model was ever starved by its data source.
- :func:`evaluate`: dataset-level mIoU through :class:`~dgan_data.metrics.ConfusionMatrix`,
  optionally with per-image matrices for the 5-fold protocol, and all-reduced over DDP
  ranks.

The models (:func:`build_deeplab`, :func:`build_unet`, saving and loading) live in
:mod:`.models`, the batch sources (:func:`real_batches`, :func:`render_batches`) in
:mod:`.batches`, the run environment record in :mod:`.runtime`; they are importable from
here too, as the one entry point of downstream training.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..conventions import (
    IGNORE_INDEX,
    as_index,
    check_bool,
    check_device,
    check_int,
    check_names,
    check_number,
    is_count,
    is_number,
    keyword_hints,
    short_list,
)
from ..fileio import atomic_torch_save, nonempty_path, output_path_problem
from ..generators.files import short_repr
from ..metrics import ConfusionMatrix, metrics_from_confusion
from ..progress import progress_bar
from .batches import _RANGE_SLACK, ResumableBatches, real_batches, render_batches, render_labeled
from .models import (
    ARCHITECTURES,
    SegmentationModel,
    _guarded_torch_load,
    _unwrap,
    build_deeplab,
    build_segmentation_model,
    build_unet,
    default_atrous_rates,
    load_segmentation_model,
    save_segmentation_model,
)
from .runtime import environment_info, torch_threads

__all__ = [
    "ARCHITECTURES",
    "IGNORE_INDEX",
    "ResumableBatches",
    "SegmentationModel",
    "TrainHistory",
    "build_deeplab",
    "build_segmentation_model",
    "build_unet",
    "default_atrous_rates",
    "environment_info",
    "evaluate",
    "load_segmentation_model",
    "metrics_summary",
    "real_batches",
    "render_batches",
    "render_labeled",
    "save_segmentation_model",
    "soft_cross_entropy",
    "torch_threads",
    "train_segmentation",
]

log = logging.getLogger(__name__)


# -------------------------------------------------------------------- training
@dataclass
class TrainHistory:
    """What :func:`train_segmentation` did, step by step.

    ``data_seconds[i]`` is the time step i waited for its batch (stream generation,
    rendering, augmentation, host-to-device copy), ``optim_seconds[i]`` the forward,
    backward and optimiser step (CUDA work synchronised, so it is counted where it
    runs). ``evals`` holds ``{"step": s, **eval_fn(model, s)}`` for every evaluation.
    """

    steps: int = 0
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    data_seconds: list[float] = field(default_factory=list)
    optim_seconds: list[float] = field(default_factory=list)
    eval_seconds: float = 0.0
    total_seconds: float = 0.0
    evals: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    skipped_steps: int = 0
    amp_dtype: str | None = None

    def timing(self, skip: int = 1) -> dict[str, float]:
        """Mean seconds per step of data and optimisation (the first ``skip`` steps,
        which include warm-up such as model loading and allocator growth, left out
        when there are more), and the share of step time spent waiting for data."""
        data = self.data_seconds[skip:] if len(self.data_seconds) > skip else self.data_seconds
        opt = self.optim_seconds[skip:] if len(self.optim_seconds) > skip else self.optim_seconds
        d = float(np.mean(data)) if data else math.nan
        o = float(np.mean(opt)) if opt else math.nan
        return {
            "data_seconds_per_step": d,
            "optim_seconds_per_step": o,
            "data_fraction": d / (d + o) if d + o > 0 else math.nan,
            "data_seconds_total": float(np.sum(self.data_seconds)),
            "optim_seconds_total": float(np.sum(self.optim_seconds)),
            "first_step_data_seconds": self.data_seconds[0] if self.data_seconds else math.nan,
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly copy, with :meth:`timing` under ``"timing"``."""
        out = asdict(self)
        out["timing"] = self.timing()
        return out


def lr_at(
    step: int, steps: int, base_lr: float, warmup: float = 0.05, final: float = 0.01
) -> float:
    """Learning rate of ``step`` (0-based): linear warm-up over ``warmup`` of the run,
    then cosine decay to ``final * base_lr`` at the last step.

    A run of two or more steps always ends at ``final * base_lr``: the warm-up is cut
    to leave the last step to the decay, however large ``warmup`` is."""
    warm = max(1, round(warmup * steps)) if warmup > 0 else 0
    if steps > 1:
        warm = min(warm, steps - 1)
    if step < warm:
        return base_lr * (step + 1) / warm
    decay_steps = steps - warm - 1
    t = (step - warm) / decay_steps if decay_steps > 0 else float(steps > 1)
    return base_lr * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _resolve_amp(
    amp: bool | None, amp_dtype: torch.dtype | None, device: torch.device
) -> torch.dtype | None:
    """The autocast dtype, or None for full precision."""
    if amp is None:
        amp = device.type == "cuda"
    if not check_bool(amp, "amp"):  # "no" is truthy
        return None
    if amp_dtype is not None:
        if amp_dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"amp_dtype must be torch.float16 or torch.bfloat16, got {amp_dtype}")
        return amp_dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_main_process() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """torch's global random state (CPU, and the device's on CUDA): dropout draws on it."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _source_states(source: Any | None) -> list[dict[str, Any]] | None:
    """Every rank's batch-source state, in rank order (None without a source)."""
    if source is None:
        return None
    state = source.state_dict()
    _, world = _dist()
    if world == 1:
        return [state]
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, state)
    return gathered


def _brief(err: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut at ``limit`` characters (torch's
    state-dict errors list every mismatching tensor)."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    text = text or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load_training_state(
    path: Path, model: nn.Module, opt: torch.optim.Optimizer, scaler: Any, steps: int
) -> tuple[dict[str, Any], TrainHistory, int]:
    """Put ``last.pt``'s model, optimiser and scaler back; a file that is not a full
    training checkpoint, one of another model (other architecture, encoder or decoder
    width), or one whose step (0..``steps``), history or random state is damaged, is a
    ValueError naming it (and the field) instead of a traceback from inside torch, or
    from the loop later; a file that would take more memory than it holds is refused
    before it is read (see ``check_torch_file``)."""
    try:
        state = _guarded_torch_load(path)
    except Exception as err:  # legacy unpickling fails in many ways
        raise ValueError(f"{path}: not a readable training checkpoint: {_brief(err)}") from err
    keys = ("model", "optimizer", "scaler", "history", "step")
    missing = [k for k in keys if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(
            f"{path}: not a full training checkpoint (no {', '.join(missing)}; a step_*.pt "
            "holds the model only)"
        )
    start = _saved_step(state["step"], steps, path)
    _check_saved_history(state["history"], path)
    _check_saved_rng(state.get("rng"), path)
    try:
        _unwrap(model).load_state_dict(state["model"])
    except RuntimeError as err:
        raise ValueError(
            f"{path}: its model does not fit this one (another architecture, encoder or "
            f"decoder width?): {_brief(err)}"
        ) from err
    try:
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        history = TrainHistory(**state["history"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path}: damaged training state: {_brief(err)}") from err
    return state, history, start


def _saved_step(step: Any, steps: int, path: Path) -> int:
    """The saved step: a plain int in 0..``steps`` (-5 trained 9 steps of 4, 1.9 was cut
    to 1, True read as 1)."""
    if not is_count(step):
        raise ValueError(f"{path}: field 'step' must be an int >= 0, got {short_repr(step)}")
    if step > steps:
        raise ValueError(
            f"{path}: field 'step' is {step}, past this run's steps={steps}: give steps >= "
            f"{step}, or train afresh"
        )
    return step


#: TrainHistory's fields in ``last.pt``, each with its check and what it must be (the
#: loss is NaN at a skipped step, and may be inf where float16's scaler skipped one).
_HISTORY_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "steps": (is_count, "an int >= 0"),
    "loss": (lambda v: all(is_number(x, finite=False) for x in v), "a list of numbers"),
    "lr": (lambda v: all(is_number(x) and x >= 0 for x in v), "a list of numbers >= 0"),
    "data_seconds": (lambda v: all(is_number(x) for x in v), "a list of finite numbers"),
    "optim_seconds": (lambda v: all(is_number(x) for x in v), "a list of finite numbers"),
    "eval_seconds": (lambda v: is_number(v) and v >= 0, "a finite number >= 0"),
    "total_seconds": (lambda v: is_number(v) and v >= 0, "a finite number >= 0"),
    "evals": (lambda v: all(isinstance(x, dict) for x in v), "a list of dicts"),
    "checkpoints": (lambda v: all(isinstance(x, str) for x in v), "a list of str"),
    "skipped_steps": (is_count, "an int >= 0"),
    "amp_dtype": (lambda v: v is None or isinstance(v, str), "None or a str"),
}
_LIST_FIELDS = frozenset({"loss", "lr", "data_seconds", "optim_seconds", "evals", "checkpoints"})


def _check_saved_history(history: Any, path: Path) -> None:
    """Every saved TrainHistory field of the right type: a str loss, a None list of
    checkpoints failed at the first step or checkpoint after resuming."""
    if not isinstance(history, dict):
        raise ValueError(f"{path}: field 'history' must be a dict, got {short_repr(history)}")
    unknown = sorted(str(k) for k in history if k not in _HISTORY_FIELDS)
    if unknown:
        raise ValueError(f"{path}: field 'history' has unknown keys {short_list(unknown)}")
    for name, value in history.items():
        check, what = _HISTORY_FIELDS[name]
        if (name in _LIST_FIELDS and not isinstance(value, list)) or not check(value):
            raise ValueError(
                f"{path}: field 'history.{name}' must be {what}, got {short_repr(value)}"
            )


def _check_saved_rng(rng: Any, path: Path) -> None:
    """The saved random state (absent in older files): torch's CPU generator state, a
    uint8 vector of its length, and the CUDA one when saved (a uint8 vector)."""
    if rng is None:
        return
    if not isinstance(rng, dict) or "cpu" not in rng:
        keys = short_list(sorted(map(str, rng))) or "none" if isinstance(rng, dict) else None
        got = f"keys {keys}" if keys else None
        raise ValueError(
            f"{path}: field 'rng' must be a dict holding the 'cpu' random state, got "
            f"{got or short_repr(rng)}"
        )
    for key, value in rng.items():
        size = torch.get_rng_state().numel() if key == "cpu" else None
        if key not in ("cpu", "cuda") or not _is_byte_vector(value, size):
            raise ValueError(
                f"{path}: field 'rng.{key}' is not one of torch's random states (a uint8 "
                f"vector{f' of {size} bytes' if size else ''}), got {_tensor_brief(value)}"
            )


def _is_byte_vector(value: Any, size: int | None) -> bool:
    """A non-empty 1-D uint8 tensor, of ``size`` elements when given."""
    return (
        isinstance(value, torch.Tensor)
        and value.dtype == torch.uint8
        and value.dim() == 1
        and value.numel() == (size if size is not None else max(1, value.numel()))
    )


def _tensor_brief(value: Any) -> str:
    """A tensor's dtype and shape, or another value's short repr, for a message."""
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    return short_repr(value)


def _restore_source(source: Any, states: list[dict[str, Any]] | None, path: Path) -> bool:
    """Put this rank's saved source state back (True), or say why the source starts over
    (False)."""
    rank, world = _dist()
    if states is None:
        log.warning("%s holds no batch-source state: the source starts from its beginning", path)
        return False
    if not isinstance(states, list) or not all(isinstance(s, dict) for s in states):
        raise ValueError(  # a str or dict was indexed by rank: the source got a character
            f"{path}: field 'sources' must be a list of state dicts (one a process), got "
            f"{short_repr(states)}"
        )
    if len(states) != world:  # each rank owns its slice of the stream: restarting
        # them all drew the batches the first run had trained on again
        raise ValueError(
            f"{path}: holds the batch-source states of {len(states)} process(es), this run "
            f"has {world}: resume with {len(states)} process(es), or train afresh"
        )
    try:
        source.load_state_dict(states[rank])
    except (ValueError, KeyError, AssertionError) as err:  # torchdata's loader asserts
        detail = str(err) or (
            f"{type(err).__name__} (was it saved with another number of DataLoader workers?)"
        )
        raise ValueError(f"{path}: the saved batch-source state does not fit: {detail}") from err
    log.info("batch source resumed from %s", path)
    return True


def _source_epoch(source: Iterable[Any]) -> int:
    """The epoch a source is at (a stream's or a DataLoader's dataset's ``epoch``), else 0:
    the loop counts on from it, so a stream set to epoch 5 goes on with epoch 6."""
    dataset = getattr(source, "dataset", source)
    epoch = as_index(getattr(dataset, "epoch", None))
    return epoch if epoch is not None and epoch >= 0 else 0


def _next_batch(
    it: Iterator[Any], source: Iterable[Any], state: dict[str, int]
) -> tuple[Any, Iterator[Any]]:
    """Next batch; a finite re-iterable source (DataLoader, epoch-sized stream) restarts
    (after ``set_epoch(epoch + 1)`` when it has one); a one-shot iterator that ends is an
    error. A source resumed from a checkpoint taken at the end of its epoch yields
    nothing at first (``state["resumed"]``): it goes on with the next epoch, where a
    source that yields nothing after a restart is empty, an error."""
    try:
        batch = next(it)
        state["since_restart"] += 1
        return batch, it
    except StopIteration:
        if isinstance(source, Iterator):
            raise RuntimeError(
                f"the batch iterator ended after {state['taken']} batches; give an endless "
                "source or a re-iterable one (DataLoader, stream with samples_per_epoch)"
            ) from None
        if state["since_restart"] == 0 and not state["resumed"]:
            raise RuntimeError("the batch source is empty: it yielded no batch") from None
    state["resumed"] = False
    state["epoch"] += 1
    dataset = getattr(source, "dataset", source)
    if callable(getattr(dataset, "set_epoch", None)):
        dataset.set_epoch(state["epoch"])
    it = iter(source)
    state["since_restart"] = 0
    return _next_batch(it, source, state)


def _unpack_batch(batch: Any, where: str) -> tuple[Any, Any, Any]:
    """``(images, masks, probs or None)`` of an ``(images, masks)`` pair or a dict with
    ``image`` and ``mask`` (and ``probs``); any other structure is a ValueError."""
    if isinstance(batch, Mapping):
        missing = [k for k in ("image", "mask") if k not in batch]
        if missing:
            raise ValueError(
                f"{where}: a dict batch needs the keys 'image' and 'mask'; this one lacks "
                f"{' and '.join(repr(k) for k in missing)} (it has "
                f"{short_list(sorted(str(k) for k in batch)) or 'no keys'})"
            )
        return batch["image"], batch["mask"], batch.get("probs")
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1], None
    what = (
        f"a {type(batch).__name__} of {len(batch)} items"
        if isinstance(batch, (tuple, list))
        else f"a {type(batch).__name__}"
    )
    raise ValueError(
        f"{where}: a batch must be (images, masks) or a dict with 'image' and 'mask', got {what}"
    )


def _check_batch(images: Any, masks: Any, where: str) -> None:
    """The one rule of a batch for :func:`train_segmentation` and :func:`evaluate`:
    images (B, 3, H, W) floating (in [0, 1]) and masks (B, H, W) of integer class ids,
    checked before any cast (``.long()`` would truncate float masks, ``.float()`` would
    feed uint8 images as 0..255). Anything else is a ValueError naming ``where``."""
    if not isinstance(images, torch.Tensor) or not isinstance(masks, torch.Tensor):
        raise ValueError(
            f"{where}: a batch needs images and masks as torch tensors, got "
            f"{type(images).__name__} and {type(masks).__name__}"
        )
    if not images.is_floating_point() or masks.is_floating_point() or masks.is_complex():
        hint = " (uint8 images: pass images.float() / 255)" if images.dtype == torch.uint8 else ""
        raise ValueError(
            f"{where}: a batch needs float images in [0, 1] and integer masks (class "
            f"ids), got {images.dtype} images and {masks.dtype} masks{hint}"
        )
    if images.dim() != 4 or images.shape[1] != 3:
        hint = ""
        if images.dim() == 4 and images.shape[-1] == 3:
            hint = " (channels-last? pass images.permute(0, 3, 1, 2))"
        elif images.dim() == 3 and images.shape[0] == 3:
            hint = " (one image? add a batch dimension with image[None])"
        elif images.dim() == 5 and images.shape[2] == 3:
            hint = (
                " (whole batches in a list or dataset? it is read as single items: pass "
                "the batches as a DataLoader or an iterator, iter(batches))"
            )
        raise ValueError(
            f"{where}: images must be (B, 3, H, W), got shape {tuple(images.shape)}{hint}"
        )
    if masks.dim() != 3:
        hint = ""
        if masks.dim() == 4 and masks.shape[1] == 1:
            hint = " (a channel dimension? drop it with masks[:, 0])"
        elif masks.dim() == 2:
            hint = " (one mask? add a batch dimension with mask[None])"
        raise ValueError(
            f"{where}: masks must be (B, H, W) class ids, got shape {tuple(masks.shape)}{hint}"
        )
    if masks.shape[0] != images.shape[0]:
        raise ValueError(
            f"{where}: {images.shape[0]} images but {masks.shape[0]} masks in the batch"
        )


def _mask_id_error(
    step: int, masks: torch.Tensor, valid: torch.Tensor, K: int | None, ignore_index: int
) -> ValueError:
    """The error of a batch whose mask ids (other than ``ignore_index``) fall outside
    0..K-1 (``K`` None: only negative ids are known to be wrong)."""
    wrong = valid & (masks < 0)
    if K is not None:
        wrong |= valid & (masks >= K)
    bad = short_list(torch.unique(masks[wrong]).tolist())
    where = (
        "are negative" if K is None else f"outside 0..{K - 1} (the model predicts K = {K} classes)"
    )
    return ValueError(
        f"step {step}: mask ids {bad} {where} and not ignore_index={ignore_index}: a batch "
        "source with other classes than the model, or another ignore index?"
    )


def soft_cross_entropy(
    logits: torch.Tensor, probs: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy against per-pixel class probabilities (soft labels), averaged over
    the ``valid`` pixels: ``-sum_k p_k log softmax(logits)_k``. Equals
    ``F.cross_entropy`` with ``ignore_index`` when ``probs`` is one-hot.

    ``logits`` and ``probs`` (B, K, H, W), ``valid`` (B, H, W) bool.
    """
    if probs.shape != logits.shape:
        raise ValueError(
            f"soft labels {tuple(probs.shape)} do not match the model's logits "
            f"{tuple(logits.shape)}: the model must predict the stream's K classes at the "
            "label size"
        )
    per_pixel = -(probs.float() * F.log_softmax(logits.float(), dim=1)).sum(1)
    return (per_pixel * valid).sum() / valid.sum().clamp_min(1)


@keyword_hints
def train_segmentation(
    model: nn.Module,
    batches: Iterable[Any],
    steps: int,
    *,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    warmup: float = 0.05,
    device: torch.device | str | None = None,
    amp: bool | None = None,
    amp_dtype: torch.dtype | None = None,
    eval_fn: Callable[[nn.Module, int], Mapping[str, Any] | None] | None = None,
    eval_every: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    resumable_source: Any | None = None,
    grad_clip: float | None = None,
    ignore_index: int = IGNORE_INDEX,
    progress: bool = True,
    desc: str = "train",
) -> TrainHistory:
    """Train ``model`` for ``steps`` optimiser steps on ``(images, masks)`` batches.

    ``batches``: any iterable of ``(images, masks)`` (or dicts with ``image``/``mask``):
    a ``DataLoader(DatasetGANStream(...), batch_size=None)``, :func:`real_batches`,
    :func:`render_batches`. A finite re-iterable source is restarted (with
    ``set_epoch``) when exhausted. Images (B, 3, H, W) in [0, 1], masks (B, H, W) int64
    with ``ignore_index``.

    Loss: cross-entropy ignoring ``ignore_index`` (a batch with no labeled pixel is
    skipped and counted in ``skipped_steps``); a dict batch with ``probs`` (B, K, H, W),
    the stream's ``soft_labels``, trains on them instead (:func:`soft_cross_entropy` over
    the pixels the mask labels). AdamW, linear warm-up over ``warmup`` of
    the steps, cosine decay to 1 % (:func:`lr_at`). ``amp``: None = on for CUDA
    (bfloat16 where supported, else float16 with a gradient scaler), off on the CPU.

    ``eval_fn(model, step)`` runs (model in eval mode, no grad) every ``eval_every``
    steps and after the last one; its dicts (or None) go to ``history.evals``, anything
    else is a TypeError. With ``checkpoint_dir`` (a folder, made when missing; a file at
    it or among its parents is a ValueError before step 0), every ``checkpoint_every``
    steps (default: at evaluations, else only at the end) the weights go to
    ``step_XXXXXXX.pt`` and the full state (optimiser, schedule, history) to
    ``last.pt``, each written atomically; only rank 0 writes in DDP. ``resume=True``
    continues from ``last.pt`` (the batch source is not rewound unless
    ``resumable_source`` is given); it needs ``checkpoint_dir`` (ValueError without),
    and a ``checkpoint_dir`` without ``last.pt`` starts at step 0 with a logged warning
    (a fresh start, as ``--resume`` in the examples). A DDP-wrapped model is fine
    (``eval_fn`` receives it as given).

    ``resumable_source``: what holds the batch source's position, an object with
    ``state_dict()`` and ``load_state_dict()`` (the ``DatasetGANStream`` behind a
    ``num_workers=0`` DataLoader, or torchdata's ``StatefulDataLoader`` itself when the
    stream runs in its workers). Its state goes into ``last.pt`` (every rank's, in DDP)
    and ``resume`` restores it before the first batch, so a resumed run draws the
    batches the interrupted one would have drawn next. A ``last.pt`` without a source
    state (saved without one, or by another number of ranks) restarts the source, with
    a warning; a state the source refuses (other models or settings) raises ValueError.
    ``last.pt`` also keeps the loop's epoch, so an epoch-sized source (``set_epoch``)
    resumed mid-epoch goes on with the next epoch, and one checkpointed at the end of
    an epoch starts the next one (a ``last.pt`` from before this was kept takes the
    epoch from the restored source).

    Checked before the first step: ``steps`` (int >= 1), ``eval_every`` (int >= 0),
    ``checkpoint_every`` (None or int >= 0), ``lr``, ``weight_decay``, ``warmup`` and
    ``grad_clip`` (finite numbers), ``ignore_index`` (int); bools, floats such as 2.5
    and strings are a ValueError naming the argument. Each batch is checked before the
    forward pass: its structure, images (B, 3, H, W) floating, masks (B, H, W) integer
    ids in 0..K-1 or ``ignore_index`` (K: the model's ``num_classes``, else the logits'
    channels, checked before the loss). Non-finite images, or a non-finite loss, raise
    FloatingPointError before the optimiser step, so the model keeps the weights of its
    last good step.
    """
    steps = check_int(steps, "steps", 1)
    eval_every = check_int(eval_every, "eval_every", 0)
    if checkpoint_every is not None:
        checkpoint_every = check_int(checkpoint_every, "checkpoint_every", 0)
    ignore_index = check_int(ignore_index, "ignore_index")
    lr = check_number(lr, "lr", low=0.0)
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    weight_decay = check_number(weight_decay, "weight_decay", low=0.0)
    if not 0 <= check_number(warmup, "warmup", low=0.0) < 1:
        raise ValueError(f"warmup (a share of the steps) must be in [0, 1), got {warmup}")
    warmup = float(warmup)
    if grad_clip is not None and check_number(grad_clip, "grad_clip", low=0.0) <= 0:
        raise ValueError(f"grad_clip must be None or > 0, got {grad_clip}")
    resume = check_bool(resume, "resume")  # "no" is truthy: it resumed
    progress = check_bool(progress, "progress")
    if resume and checkpoint_dir is None:
        raise ValueError(
            "resume=True needs checkpoint_dir (the folder whose last.pt the run continues from)"
        )
    device = check_device(device) or next(model.parameters()).device
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    dtype = _resolve_amp(amp, amp_dtype, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    history = TrainHistory(amp_dtype=str(dtype).removeprefix("torch.") if dtype else None)
    ckpt_dir = (
        nonempty_path(checkpoint_dir, "checkpoint_dir") if checkpoint_dir is not None else None
    )
    problem = ckpt_dir is not None and output_path_problem(ckpt_dir, folder=True)
    if problem:  # else refused at the first checkpoint, after the steps before it
        raise ValueError(f"checkpoint_dir={str(ckpt_dir)!r} {problem}")
    if checkpoint_every is None:
        checkpoint_every = eval_every
    main = _is_main_process()
    model_classes = as_index(getattr(_unwrap(model), "num_classes", None))
    if model_classes is not None and 0 <= ignore_index < model_classes:  # as evaluate
        raise ValueError(
            f"ignore_index={ignore_index} is a class id of the model (0..{model_classes - 1}): "
            "its pixels would never be learned; use an id outside the classes (255)"
        )

    start = 0
    saved_rng: dict[str, torch.Tensor] | None = None
    source_restored, saved_epoch = False, None
    if resume and ckpt_dir is not None and not (ckpt_dir / "last.pt").is_file():
        log.warning(
            "resume=True, but %s does not exist: training starts at step 0",
            ckpt_dir / "last.pt",
        )
    elif resume and ckpt_dir is not None:
        state, history, start = _load_training_state(
            ckpt_dir / "last.pt", model, opt, scaler, steps
        )
        for group in opt.param_groups:  # the saved optimiser state overwrote it; lr is
            group["weight_decay"] = weight_decay  # set at every step anyway
        log.info("resumed from %s at step %d", ckpt_dir / "last.pt", start)
        if start >= steps:
            return history
        if resumable_source is not None:
            source_restored = _restore_source(
                resumable_source, state.get("sources"), ckpt_dir / "last.pt"
            )
        loop = state.get("loop")
        if loop is not None:  # saved since the loop's epoch is kept
            saved_epoch = as_index(loop.get("epoch")) if isinstance(loop, dict) else None
            if saved_epoch is None or saved_epoch < 0:
                raise ValueError(
                    f"{ckpt_dir / 'last.pt'}: 'loop' holds no valid epoch, got {loop!r:.80}"
                )
        saved_rng = state.get("rng")

    def checkpoint(step: int) -> None:
        if ckpt_dir is None:
            return
        sources = _source_states(resumable_source)  # a collective in DDP: every rank
        if not main:
            return
        path = save_segmentation_model(
            model, ckpt_dir / f"step_{step:07d}.pt", named_by_user=False, step=step
        )
        history.checkpoints.append(str(path))
        full = {
            "model": {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()},
            "optimizer": opt.state_dict(),
            "scaler": scaler.state_dict(),
            "step": step,
            "history": asdict(history),
            "loop": {"epoch": int(source_state["epoch"])},  # the epoch the source is in
        }
        if sources is not None:
            full["sources"] = sources
        full["rng"] = _rng_state(device)
        atomic_torch_save(full, ckpt_dir / "last.pt")

    def run_eval(step: int) -> None:
        if eval_fn is None:
            return
        t = time.perf_counter()
        model.eval()
        with torch.no_grad():
            result = eval_fn(model, step)
        model.train()
        if result is not None and not isinstance(result, Mapping):
            raise TypeError(
                f"eval_fn must return a dict of scores (or None), got "
                f"{type(result).__name__} at step {step}"
            )
        history.eval_seconds += time.perf_counter() - t
        history.evals.append({"step": step, **(result or {})})
        if main and result and "miou" in result:
            log.info("step %d: mIoU %.4f", step, float(result["miou"]))

    t_start = time.perf_counter() - history.total_seconds
    model.train()
    it = iter(batches)
    if saved_rng is not None:  # after iter(): a DataLoader draws its base seed from it
        _set_rng_state(saved_rng, device)  # dropout draws on it: the same continuation
    # the epoch the source is in: the saved one when its position was restored (a
    # StatefulDataLoader's dataset in this process does not know it), else its own
    epoch = saved_epoch if source_restored and saved_epoch is not None else _source_epoch(batches)
    source_state = {"epoch": epoch, "since_restart": 0, "taken": 0, "resumed": source_restored}
    bar = progress_bar(
        total=steps, initial=start, desc=desc, unit="step", progress=progress and main
    )
    loss_avg: float | None = None
    for step in range(start, steps):
        t0 = time.perf_counter()
        batch, it = _next_batch(it, batches, source_state)
        source_state["taken"] += 1
        images, masks, probs = _unpack_batch(batch, f"step {step}")
        _check_batch(images, masks, f"step {step}")
        if images.shape[0] == 0:
            raise ValueError(f"step {step}: an empty batch (0 images)")
        images = images.to(device, non_blocking=True).float()
        masks = masks.to(device, non_blocking=True).long()
        if probs is not None:
            probs = probs.to(device, non_blocking=True)
        # one host sync checks the batch: labeled pixels, their id range, finite images
        valid = masks != ignore_index
        ids = torch.where(valid, masks, 0)
        checks = [valid.sum(), ids.amin(), ids.amax(), (~torch.isfinite(images)).sum()]
        if probs is not None:  # soft labels: probabilities, finite and >= 0
            checks.append((~(probs >= 0)).sum())  # NaN fails >= 0 too
        n_valid, low_id, high_id, n_bad, *n_bad_probs = torch.stack(checks).tolist()
        _sync(device)
        t1 = time.perf_counter()

        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup)
        if n_bad:
            raise FloatingPointError(
                f"step {step}: the batch's images hold {n_bad} non-finite values (NaN or "
                "inf), so the loss is nan: refused before the forward pass, the model keeps "
                "the weights of its last good step"
            )
        if n_bad_probs and n_bad_probs[0]:
            raise ValueError(
                f"step {step}: the batch's soft labels hold {n_bad_probs[0]} values that are "
                "negative or NaN; class probabilities are in [0, 1]"
            )
        if not n_valid:
            history.skipped_steps += 1
            loss_value = math.nan
            log.warning("step %d: batch has no labeled pixel, skipped", step)
        else:
            if low_id < 0 or (model_classes is not None and high_id >= model_classes):
                raise _mask_id_error(step, masks, valid, model_classes, ignore_index)
            with torch.autocast(
                device.type, dtype=dtype or torch.float32, enabled=dtype is not None
            ):
                logits = model(images)
            if high_id >= logits.shape[1]:
                raise _mask_id_error(step, masks, valid, logits.shape[1], ignore_index)
            if logits.shape[-2:] != masks.shape[-2:]:
                logits = F.interpolate(
                    logits.float(), size=masks.shape[-2:], mode="bilinear", align_corners=False
                )
            if probs is None:
                loss = F.cross_entropy(logits.float(), masks, ignore_index=ignore_index)
            else:
                loss = soft_cross_entropy(logits, probs, valid)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value) and not scaler.is_enabled():
                # before backward and step: the model keeps its last good weights
                # (float16 autocast skips such steps through its grad scaler)
                raise FloatingPointError(
                    f"step {step}: the loss is {loss_value} (non-finite images, or a learning "
                    "rate too high?); the model keeps the weights of its last good step"
                )
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if grad_clip is not None:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            scaler.step(opt)
            scaler.update()
        _sync(device)
        t2 = time.perf_counter()

        history.steps = step + 1
        history.loss.append(loss_value)
        history.lr.append(opt.param_groups[0]["lr"])
        history.data_seconds.append(t1 - t0)
        history.optim_seconds.append(t2 - t1)
        if not math.isnan(loss_value):
            loss_avg = loss_value if loss_avg is None else 0.9 * loss_avg + 0.1 * loss_value
        bar.update(1)
        bar.set_postfix(
            loss=f"{loss_avg:.3f}" if loss_avg is not None else "-",
            data=f"{t1 - t0:.2f}s",
            opt=f"{t2 - t1:.2f}s",
        )
        done = step + 1
        evaluate = bool(eval_every) and done % eval_every == 0 and done < steps
        save = bool(checkpoint_every) and done % checkpoint_every == 0 and done < steps
        if evaluate or save:
            _check_finite_weights(model, done)
        if evaluate:
            run_eval(done)
        if save:
            history.total_seconds = time.perf_counter() - t_start
            checkpoint(done)
    bar.close()
    _check_finite_weights(model, steps)
    run_eval(steps)
    history.total_seconds = time.perf_counter() - t_start
    checkpoint(steps)
    model.eval()
    return history


def _check_finite_weights(model: nn.Module, step: int) -> None:
    """Raise FloatingPointError when a parameter of ``model`` holds inf or NaN after
    ``step`` steps: the loss check sees such weights only at the next forward pass, so
    a learning rate of 1e308 over one or two steps returned a model that labels every
    pixel one class (checked before each evaluation, checkpoint and the return)."""
    bad = [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise FloatingPointError(
            f"after step {step}: {len(bad)} parameter tensor(s) of the model are not finite "
            f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); a learning rate too "
            "high?"
        )


# ------------------------------------------------------------------- evaluation
def _batches_of(
    data: Any, batch_size: int, indices: np.ndarray | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, masks) batches of a tensor pair, a map-style dataset, or an iterable."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        images, masks = data
        if images.shape[0] != masks.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {masks.shape[0]} masks")
        idx = np.arange(images.shape[0]) if indices is None else indices
        for i in range(0, len(idx), batch_size):
            sel = torch.as_tensor(idx[i : i + batch_size])
            yield images[sel], masks[sel]
        return
    if (
        hasattr(data, "__getitem__")
        and hasattr(data, "__len__")
        and not isinstance(data, torch.utils.data.DataLoader)
    ):
        idx = np.arange(len(data)) if indices is None else indices
        for i in range(0, len(idx), batch_size):
            chosen = [int(j) for j in idx[i : i + batch_size]]
            items = [_item(data, j) for j in chosen]
            for j, (image, mask) in zip(chosen[1:], items[1:]):
                if image.shape != items[0][0].shape or mask.shape != items[0][1].shape:
                    raise ValueError(
                        f"evaluate: items {chosen[0]} and {j} differ in size (images "
                        f"{tuple(items[0][0].shape)} and {tuple(image.shape)}, masks "
                        f"{tuple(items[0][1].shape)} and {tuple(mask.shape)}), so they cannot "
                        "share a batch: resize them (LabeledFolder(..., size=...)) or pass "
                        "batch_size=1"
                    )
            yield torch.stack([x[0] for x in items]), torch.stack([x[1] for x in items])
        return
    if indices is not None:
        raise ValueError("an iterable of batches cannot be sharded by index; shard it yourself")
    for batch in data:
        images, masks, _ = _unpack_batch(batch, "evaluate")
        yield images, masks


def _item(data: Any, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Item ``index`` of a map-style dataset, which must be an (image, mask) tensor pair."""
    item = data[index]
    if isinstance(item, Mapping):
        item = _unpack_batch(item, f"evaluate: item {index}")[:2]
    if (
        not isinstance(item, (tuple, list))
        or len(item) < 2
        or not all(isinstance(x, torch.Tensor) for x in item[:2])
    ):
        raise ValueError(
            f"evaluate: item {index} of the dataset must be an (image, mask) pair of tensors, "
            f"got {type(item).__name__}"
        )
    return item[0], item[1]


@contextlib.contextmanager
def _eval_mode(net: nn.Module) -> Iterator[None]:
    """``net`` in eval mode for the block, then in the mode it had (a refused batch left
    a training model in eval mode: BatchNorm then froze its statistics)."""
    was_training = net.training
    net.eval()
    try:
        yield
    finally:
        net.train(was_training)


def _class_count_error(logits: torch.Tensor, num_classes: int) -> str:
    """Why logits that are not (B, ``num_classes``, H, W) cannot be scored as
    ``num_classes`` classes: a 3-class model scored as 14 gave an mIoU silently, a
    14-class model scored as 3 blamed the predicted ids."""
    if logits.dim() != 4:
        return (
            f"evaluate: the model must return logits (B, K, H, W), got shape {tuple(logits.shape)}"
        )
    return (
        f"evaluate: the model predicts K = {logits.shape[1]} classes, but "
        f"num_classes={num_classes}: score it with num_classes={logits.shape[1]}, or "
        "evaluate the model of those classes"
    )


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@keyword_hints
@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Any,
    num_classes: int,
    *,
    device: torch.device | str | None = None,
    batch_size: int = 64,
    keep_per_image: bool = False,
    amp: bool | None = None,
    distributed: bool = True,
    ignore_index: int = IGNORE_INDEX,
    exclude: Iterable[int] = (),
    progress: bool = False,
) -> dict[str, Any]:
    """Dataset-level segmentation scores of ``model`` on ``data``.

    ``data``: a pair of tensors ``(images (N, 3, H, W) in [0, 1], masks (N, H, W))``, a
    map-style dataset of ``(image, mask)`` (e.g. :class:`~dgan_data.realdata.LabeledFolder`),
    or an iterable of batches (a DataLoader). Logits whose size differs from the masks'
    are resized bilinearly. Returns :func:`~dgan_data.metrics.metrics_from_confusion`'s
    dict (``miou``, ``iou``, ``pixel_accuracy``, ``confusion``, ...) plus ``num_images``,
    and with ``keep_per_image`` ``per_image``: (N, K, K) int64 in dataset order (for
    :func:`~dgan_data.metrics.five_fold_protocol`).

    Under ``torch.distributed`` (and ``distributed=True``) each rank scores the images
    ``rank::world_size`` of a tensor pair or dataset (an iterable must already be
    sharded), then the counts are all-reduced and per-image matrices gathered, so every
    rank returns the same result. Call it on every rank. The model's buffers are first
    broadcast from rank 0: DDP syncs BatchNorm running statistics only at the start of
    each training forward, so after the last step every rank holds its own; without
    this, ranks would score their shards with slightly different models.

    ``batch_size``: images per forward pass of a tensor pair or dataset, an int >= 1
    (anything else is a ValueError, also with an iterable of batches).

    Every batch follows :func:`train_segmentation`'s rule, checked before any cast:
    float images (B, 3, H, W) in [0, 1] and integer masks (B, H, W); uint8 images or
    float masks are a ValueError (convert uint8 images with ``images.float() / 255``).
    No images at all (an empty tensor pair, dataset or DataLoader) is a ValueError, and
    so are dataset items of different sizes in one batch (resize them, or
    ``batch_size=1``), and float images of 0..255 values (none negative, some above 1;
    normalised images, with negative values, pass for models trained on them). ``num_classes``:
    an int >= 1, the model's own class count (logits (B, num_classes, H, W)); a model
    of another K is a ValueError at the first batch.
    """
    batch_size = check_int(batch_size, "evaluate: batch_size", 1)
    num_classes = check_int(num_classes, "num_classes", 1)
    distributed = check_bool(distributed, "distributed")  # "no" is truthy: it all-reduced
    progress = check_bool(progress, "progress")
    device = check_device(device) or next(model.parameters()).device
    net = _unwrap(model)
    with _eval_mode(net):  # the caller's mode back, also when a batch is refused
        dtype = _resolve_amp(amp, None, device)
        rank, world = _dist() if distributed else (0, 1)
        indices = None
        pair = (
            isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor)
        )
        sized = pair or (hasattr(data, "__getitem__") and hasattr(data, "__len__"))
        if world > 1:
            _broadcast_buffers(net)
        if world > 1 and sized and not isinstance(data, torch.utils.data.DataLoader):
            n = data[0].shape[0] if pair else len(data)
            indices = np.arange(rank, n, world)
        conf = ConfusionMatrix(
            num_classes, ignore_index=ignore_index, keep_per_image=keep_per_image
        )
        count = 0
        for images, masks in progress_bar(
            _batches_of(data, batch_size, indices), desc="evaluate", progress=progress, leave=False
        ):
            _check_batch(images, masks, "evaluate")
            images, masks = images.to(device).float(), masks.to(device).long()
            if not bool(torch.isfinite(images).all()):  # scored as if they were an image
                raise ValueError(
                    f"evaluate: images {count}..{count + images.shape[0] - 1} hold NaN or "
                    "inf values"
                )
            lo, hi = (float(v) for v in torch.aminmax(images)) if images.numel() else (0.0, 0.0)
            # 0..255 values were scored silently; normalised images (a model trained on a
            # stream with normalize=, negative values) are the caller's to give
            if lo >= -_RANGE_SLACK and hi > 1 + _RANGE_SLACK:
                raise ValueError(
                    f"evaluate: images {count}..{count + images.shape[0] - 1}: float images must "
                    f"be in [0, 1], got values in [{lo:.3g}, {hi:.3g}] (0..255 values? pass "
                    "images / 255)"
                )
            with torch.autocast(
                device.type, dtype=dtype or torch.float32, enabled=dtype is not None
            ):
                logits = net(images)
            if logits.dim() != 4 or logits.shape[1] != num_classes:  # else scored as other ids
                raise ValueError(_class_count_error(logits, num_classes))
            if logits.shape[-2:] != masks.shape[-2:]:
                logits = F.interpolate(
                    logits.float(), size=masks.shape[-2:], mode="bilinear", align_corners=False
                )
            conf.update(logits.argmax(1), masks)
            count += images.shape[0]
    per_image = conf.per_image() if keep_per_image else None
    if world > 1:
        conf.all_reduce()
        counts = [None] * world
        dist.all_gather_object(counts, count)
        count = int(sum(counts))
        if keep_per_image:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, (indices, per_image))
            if indices is not None:
                full = torch.zeros(count, num_classes, num_classes, dtype=torch.int64)
                for idx, mats in gathered:
                    full[torch.as_tensor(idx)] = mats
                per_image = full
            else:
                per_image = torch.cat([m for _, m in gathered])
    if count == 0:  # the total over the ranks: every rank raises alike
        raise ValueError(
            "evaluate: no images to score (an empty tensor pair, dataset or DataLoader)"
        )
    out = metrics_from_confusion(conf.matrix.cpu(), exclude=exclude)
    out["num_images"] = count
    if keep_per_image:
        out["per_image"] = per_image
    return out


def _broadcast_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank."""
    for buf in model.buffers():
        if dist.get_backend() == "nccl" and buf.device.type != "cuda":
            tmp = buf.cuda()
            dist.broadcast(tmp, 0)
            buf.copy_(tmp)
        else:
            dist.broadcast(buf, 0)


def metrics_summary(metrics: dict[str, Any], class_names: Sequence[str]) -> dict[str, Any]:
    """The JSON-friendly part of an :func:`evaluate` result: mIoU, named per-class IoU.

    ``class_names``: one name per class, in id order; a plain string, or another number
    of names than the result has classes, is a ValueError (a class would silently drop
    out of ``per_class_iou`` while ``miou`` still counts it)."""
    names = check_names(class_names)
    iou = [float(v) for v in metrics["iou"]]
    if len(names) != len(iou):
        raise ValueError(
            f"metrics_summary: class_names has {len(names)} names for {len(iou)} classes"
        )
    return {
        "miou": float(metrics["miou"]),
        "pixel_accuracy": float(metrics["pixel_accuracy"]),
        "mean_accuracy": float(metrics["mean_accuracy"]),
        "per_class_iou": {n: (None if math.isnan(v) else v) for n, v in zip(names, iou)},
        "num_images": int(metrics.get("num_images", 0)),
    }
