"""Downstream training: a DeepLab trained on labeled batches, and its evaluation.

DatasetGAN's point is the segmentation network trained on the generated data, so the
library ships the loop the examples and ``dgan-data demo`` share:

- :func:`build_deeplab`: DeepLabV3 / V3+ from segmentation-models-pytorch (the
  ``examples`` extra), random init by default (nothing is ever downloaded), ASPP rates
  scaled to the image size. The model takes images in [0, 1], like the stream yields.
- :func:`train_segmentation`: cross-entropy (``ignore_index`` 255), AdamW, linear
  warm-up then cosine decay, AMP on CUDA, tqdm progress, periodic evaluation and atomic
  checkpoints. It times every step in two parts, **data** (waiting for the next batch:
  stream generation, rendering, augmentation) and **optimisation** (forward, backward,
  step), so a run reports whether the model was ever starved by its data source.
- :func:`evaluate`: dataset-level mIoU through :class:`~dgan_data.metrics.ConfusionMatrix`,
  optionally with per-image matrices for the 5-fold protocol, and all-reduced over DDP
  ranks.
- :func:`real_batches` / :func:`render_batches`: endless augmented batches from a fixed
  labeled set (the few-shot baseline) or from the toy renderer's labeled renders (the
  fully supervised reference), so every arm of a comparison sees the same augmentation.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning_utilities.core.imports import RequirementCache
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from .._version import __version__
from ..augment import make_augment
from ..conventions import IGNORE_INDEX
from ..fileio import atomic_torch_save
from ..metrics import ConfusionMatrix, metrics_from_confusion
from ..seeds import derive_seed
from ..toy.render import render_faces, render_split, split_seeds

__all__ = [
    "ARCHITECTURES",
    "IGNORE_INDEX",
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
    "torch_threads",
    "train_segmentation",
]

log = logging.getLogger(__name__)

#: Architectures :func:`build_deeplab` accepts, with their segmentation-models-pytorch name.
ARCHITECTURES = {"deeplabv3": "DeepLabV3", "deeplabv3plus": "DeepLabV3Plus"}
#: ImageNet statistics: the input normalisation of every torchvision/timm encoder.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SMP = RequirementCache("segmentation-models-pytorch>=0.3")
_CHECKPOINT_FORMAT = "dgan_data.segmentation_model"


# ------------------------------------------------------------------- the model
class SegmentationModel(nn.Module):
    """A segmentation network on images in [0, 1]: normalises, then returns logits.

    ``config`` holds the keyword arguments of :func:`build_deeplab`, so a checkpoint
    rebuilds the same network (:func:`load_segmentation_model`).
    """

    def __init__(self, net: nn.Module, num_classes: int, config: dict[str, Any]) -> None:
        super().__init__()
        self.net = net
        self.num_classes = int(num_classes)
        self.config = dict(config)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1] -> logits (B, K, H, W)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"expected images (B, 3, H, W) in [0, 1], got shape {tuple(images.shape)}"
            )
        stride = int(self.config.get("divisor", 1))
        if images.shape[-2] % stride or images.shape[-1] % stride:
            raise ValueError(
                f"image size {tuple(images.shape[-2:])} must be divisible by {stride}, the "
                f"output stride of this {self.config.get('arch')}; resize or pad the images"
            )
        return self.net((images - self.mean) / self.std)


def default_atrous_rates(image_size: int, output_stride: int) -> tuple[int, int, int]:
    """ASPP dilation rates for ``image_size`` px inputs.

    DeepLab's rates, (6, 12, 18) at output stride 16 and (12, 24, 36) at 8, are for
    513 px crops: the encoder's map is then 33 (65) cells wide. At 64 px the map is only
    4 (8) cells wide and those rates would look entirely into the padding, turning
    every ASPP branch into a 1x1 conv. The rates are scaled by ``image_size / 513``
    (rounded up, at least 1): (1, 2, 3) at 64 px and output stride 16.
    """
    if output_stride not in (8, 16):
        raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
    base = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
    scale = float(image_size) / 513.0
    rates = tuple(max(1, math.ceil(r * scale - 1e-9)) for r in base)
    return rates  # type: ignore[return-value]


def build_deeplab(
    num_classes: int,
    arch: str = "deeplabv3plus",
    encoder: str = "resnet18",
    encoder_weights: str | os.PathLike | None = None,
    *,
    output_stride: int = 16,
    decoder_channels: int = 128,
    atrous_rates: Sequence[int] | None = None,
    image_size: int = 64,
) -> SegmentationModel:
    """A DeepLabV3 or DeepLabV3+ (segmentation-models-pytorch) on images in [0, 1].

    Defaults suit 64 px images on a CPU: ResNet-18 encoder, output stride 16 (V3+
    recovers detail from its stride-4 skip), 128 decoder channels, ASPP rates from
    :func:`default_atrous_rates` for ``image_size`` (11.6 M parameters; about 0.5 s
    per training step of 8 images on one CPU core). The DatasetGAN paper used
    DeepLabV3 on ResNet-101 at 512 px: ``build_deeplab(K, "deeplabv3", "resnet101",
    output_stride=8, decoder_channels=256, image_size=512)``.

    ``encoder_weights``: None (random init) or the path of a local file with encoder
    weights (``.pth``/``.pt`` state dict, or ``.safetensors``), e.g. torchvision's
    ResNet weights (the classifier head ``fc.*`` is dropped). Nothing is downloaded:
    a registry name such as ``"imagenet"`` is refused.
    """
    if not _SMP:
        raise ModuleNotFoundError(
            f"build_deeplab needs segmentation-models-pytorch: {_SMP.message} "
            "(pip install 'dgan-data[examples]')"
        )
    import segmentation_models_pytorch as smp

    key = str(arch).lower().replace("-", "").replace("_", "").replace("+", "plus")
    if key not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; valid: {', '.join(ARCHITECTURES)}")
    if not 1 <= int(num_classes) < IGNORE_INDEX:
        raise ValueError(f"num_classes must be in 1..{IGNORE_INDEX - 1}, got {num_classes}")
    weights_path = None
    if encoder_weights is not None:
        weights_path = Path(encoder_weights)
        if not weights_path.is_file():
            raise FileNotFoundError(
                f"encoder_weights={str(encoder_weights)!r} is not a file. dgan_data never "
                "downloads weights: pass the path of a local encoder state dict "
                "(e.g. torchvision's resnet18-f37072fd.pth), or None for random init"
            )
    rates = tuple(
        int(r)
        for r in (
            atrous_rates
            if atrous_rates is not None
            else default_atrous_rates(image_size, output_stride)
        )
    )
    config: dict[str, Any] = {
        "num_classes": int(num_classes),
        "arch": key,
        "encoder": encoder,
        "output_stride": int(output_stride),
        "decoder_channels": int(decoder_channels),
        "atrous_rates": list(rates),
        "image_size": int(image_size),
        "encoder_depth": 5,
        # input sides must be divisible by the encoder's output stride
        "divisor": int(output_stride),
    }
    try:
        net = smp.create_model(
            ARCHITECTURES[key],
            encoder_name=encoder,
            encoder_weights=None,
            encoder_output_stride=int(output_stride),
            decoder_channels=int(decoder_channels),
            decoder_atrous_rates=rates,
            in_channels=3,
            classes=int(num_classes),
        )
    except KeyError as err:  # smp: unknown encoder
        raise ValueError(f"segmentation-models-pytorch has no encoder {encoder!r}: {err}") from err
    if weights_path is not None:
        _load_encoder_weights(net.encoder, weights_path)
        config["encoder_weights"] = weights_path.name
    return SegmentationModel(net, int(num_classes), config)


#: The toy world's student U-Net (the reference annotator's architecture): a ResNet-18
#: encoder of depth 3 (output stride 8) and a light decoder; 0.77 M parameters.
UNET_DEFAULTS: dict[str, Any] = {
    "encoder": "tu-resnet18",
    "encoder_depth": 3,
    "decoder_channels": [32, 16, 16],
}


def build_unet(
    num_classes: int,
    encoder: str = UNET_DEFAULTS["encoder"],
    encoder_depth: int = UNET_DEFAULTS["encoder_depth"],
    decoder_channels: Sequence[int] = tuple(UNET_DEFAULTS["decoder_channels"]),
    *,
    image_size: int = 64,
) -> SegmentationModel:
    """A U-Net (segmentation-models-pytorch, random init) on images in [0, 1].

    Skip connections at strides 2, 4 and 8 keep 2-3 px parts (pupils, nostrils, teeth
    at 64 px) that a DeepLab at output stride 16 loses. The defaults are the toy
    reference annotator's architecture, so a student trained on enough labels can
    match it. Nothing is downloaded.
    """
    if not _SMP:
        raise ModuleNotFoundError(
            f"build_unet needs segmentation-models-pytorch: {_SMP.message} "
            "(pip install 'dgan-data[examples]')"
        )
    import segmentation_models_pytorch as smp

    if not 1 <= int(num_classes) < IGNORE_INDEX:
        raise ValueError(f"num_classes must be in 1..{IGNORE_INDEX - 1}, got {num_classes}")
    channels = [int(c) for c in decoder_channels]
    if len(channels) != int(encoder_depth):
        raise ValueError(
            f"decoder_channels {channels} needs one entry per encoder level "
            f"(encoder_depth={encoder_depth})"
        )
    config: dict[str, Any] = {
        "num_classes": int(num_classes),
        "arch": "unet",
        "encoder": encoder,
        "encoder_depth": int(encoder_depth),
        "decoder_channels": channels,
        "image_size": int(image_size),
        "divisor": 2 ** int(encoder_depth),
    }
    try:
        net = smp.create_model(
            "Unet",
            encoder_name=encoder,
            encoder_weights=None,
            encoder_depth=int(encoder_depth),
            decoder_channels=channels,
            in_channels=3,
            classes=int(num_classes),
        )
    except KeyError as err:
        raise ValueError(f"segmentation-models-pytorch has no encoder {encoder!r}: {err}") from err
    return SegmentationModel(net, int(num_classes), config)


def build_segmentation_model(
    num_classes: int, arch: str = "unet", **kwargs: Any
) -> SegmentationModel:
    """The student by name: ``"unet"`` (:func:`build_unet`) or ``"deeplabv3"`` /
    ``"deeplabv3plus"`` (:func:`build_deeplab`); an unknown name lists the valid ones."""
    key = str(arch).lower().replace("-", "").replace("_", "").replace("+", "plus")
    if key == "unet":
        return build_unet(num_classes, **kwargs)
    if key in ARCHITECTURES:
        return build_deeplab(num_classes, key, **kwargs)
    raise ValueError(f"unknown arch {arch!r}; valid: unet, {', '.join(ARCHITECTURES)}")


def _load_encoder_weights(encoder: nn.Module, path: Path) -> None:
    """Load a local encoder state dict, dropping a classifier head; name what did not fit."""
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    state = {k.removeprefix("encoder."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier.", "head."))}
    expected = set(encoder.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"{path}: encoder weights do not fit the {type(encoder).__name__}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    try:
        encoder.load_state_dict(state)  # smp's encoders return None here, not the key lists
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"{path}: encoder weights do not fit: {err}") from err
    log.info("loaded encoder weights from %s (%d tensors)", path, len(state))


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper."""
    return (
        model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model
    )


def save_segmentation_model(model: nn.Module, path: str | os.PathLike, **extra: Any) -> Path:
    """Write the model's config and weights (and ``extra`` values) atomically."""
    inner = _unwrap(model)
    config = getattr(inner, "config", None)
    if not isinstance(config, dict):
        raise TypeError("save_segmentation_model needs a SegmentationModel (from build_deeplab)")
    state = {k: v.detach().cpu() for k, v in inner.state_dict().items()}
    payload = {"format": _CHECKPOINT_FORMAT, "config": config, "model": state, **extra}
    return atomic_torch_save(payload, Path(path))


def load_segmentation_model(
    path: str | os.PathLike, device: torch.device | str | None = None
) -> SegmentationModel:
    """Rebuild a model written by :func:`save_segmentation_model` or a training checkpoint."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != _CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a dgan_data segmentation checkpoint")
    cfg = dict(payload["config"])
    if cfg["arch"] == "unet":
        model = build_unet(
            cfg["num_classes"],
            cfg["encoder"],
            cfg["encoder_depth"],
            cfg["decoder_channels"],
            image_size=cfg["image_size"],
        )
    else:
        model = build_deeplab(
            cfg["num_classes"],
            cfg["arch"],
            cfg["encoder"],
            output_stride=cfg["output_stride"],
            decoder_channels=cfg["decoder_channels"],
            atrous_rates=cfg["atrous_rates"],
            image_size=cfg["image_size"],
        )
    model.load_state_dict(payload["model"])
    return model.to(device) if device is not None else model


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
    then cosine decay to ``final * base_lr`` at the last step."""
    warm = max(1, round(warmup * steps)) if warmup > 0 else 0
    if step < warm:
        return base_lr * (step + 1) / warm
    t = (step - warm) / max(1, steps - warm - 1)
    return base_lr * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _resolve_amp(
    amp: bool | None, amp_dtype: torch.dtype | None, device: torch.device
) -> torch.dtype | None:
    """The autocast dtype, or None for full precision."""
    if amp is None:
        amp = device.type == "cuda"
    if not amp:
        return None
    if amp_dtype is not None:
        return amp_dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_main_process() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _next_batch(
    it: Iterator[Any], source: Iterable[Any], state: dict[str, int]
) -> tuple[Any, Iterator[Any]]:
    """Next batch; a finite re-iterable source (DataLoader, epoch-sized stream) restarts
    (after ``set_epoch(epoch)`` when it has one); a one-shot iterator that ends is an error."""
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
        if state["since_restart"] == 0:
            raise RuntimeError("the batch source is empty: it yielded no batch") from None
    state["epoch"] += 1
    dataset = getattr(source, "dataset", source)
    if callable(getattr(dataset, "set_epoch", None)):
        dataset.set_epoch(state["epoch"])
    it = iter(source)
    state["since_restart"] = 0
    return _next_batch(it, source, state)


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
    eval_fn: Callable[[nn.Module, int], dict[str, Any]] | None = None,
    eval_every: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
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
    skipped and counted in ``skipped_steps``). AdamW, linear warm-up over ``warmup`` of
    the steps, cosine decay to 1 % (:func:`lr_at`). ``amp``: None = on for CUDA
    (bfloat16 where supported, else float16 with a gradient scaler), off on the CPU.

    ``eval_fn(model, step)`` runs (model in eval mode, no grad) every ``eval_every``
    steps and after the last one; its dicts go to ``history.evals``. With
    ``checkpoint_dir``, every ``checkpoint_every`` steps (default: at evaluations, else
    only at the end) the weights go to ``step_XXXXXXX.pt`` and the full state
    (optimiser, schedule, history) to ``last.pt``, each written atomically; only rank 0
    writes in DDP. ``resume=True`` continues from ``last.pt`` (the batch source is not
    rewound: pass a resumed one). A DDP-wrapped model is fine (``eval_fn`` receives it
    as given).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if eval_every < 0:
        raise ValueError(f"eval_every must be >= 0, got {eval_every}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    dtype = _resolve_amp(amp, amp_dtype, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    history = TrainHistory(amp_dtype=str(dtype).removeprefix("torch.") if dtype else None)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if checkpoint_every is None:
        checkpoint_every = eval_every
    main = _is_main_process()

    start = 0
    if resume and ckpt_dir is not None and (ckpt_dir / "last.pt").is_file():
        state = torch.load(ckpt_dir / "last.pt", map_location="cpu", weights_only=True)
        _unwrap(model).load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        history = TrainHistory(**state["history"])
        start = int(state["step"])
        log.info("resumed from %s at step %d", ckpt_dir / "last.pt", start)
        if start >= steps:
            return history

    def checkpoint(step: int) -> None:
        if ckpt_dir is None or not main:
            return
        path = save_segmentation_model(model, ckpt_dir / f"step_{step:07d}.pt", step=step)
        history.checkpoints.append(str(path))
        full = {
            "model": {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()},
            "optimizer": opt.state_dict(),
            "scaler": scaler.state_dict(),
            "step": step,
            "history": asdict(history),
        }
        atomic_torch_save(full, ckpt_dir / "last.pt")

    def run_eval(step: int) -> None:
        if eval_fn is None:
            return
        t = time.perf_counter()
        model.eval()
        with torch.no_grad():
            result = eval_fn(model, step)
        model.train()
        history.eval_seconds += time.perf_counter() - t
        history.evals.append({"step": step, **(result or {})})
        if main and result and "miou" in result:
            log.info("step %d: mIoU %.4f", step, float(result["miou"]))

    t_start = time.perf_counter() - history.total_seconds
    model.train()
    it = iter(batches)
    source_state = {"epoch": 0, "since_restart": 0, "taken": 0}
    bar = tqdm(total=steps, initial=start, desc=desc, unit="step", disable=not (progress and main))
    loss_avg: float | None = None
    for step in range(start, steps):
        t0 = time.perf_counter()
        batch, it = _next_batch(it, batches, source_state)
        source_state["taken"] += 1
        images, masks = (batch["image"], batch["mask"]) if isinstance(batch, dict) else batch
        images = images.to(device, non_blocking=True).float()
        masks = masks.to(device, non_blocking=True).long()
        _sync(device)
        t1 = time.perf_counter()

        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup)
        if not bool((masks != ignore_index).any()):
            history.skipped_steps += 1
            loss_value = math.nan
            log.warning("step %d: batch has no labeled pixel, skipped", step)
        else:
            with torch.autocast(
                device.type, dtype=dtype or torch.float32, enabled=dtype is not None
            ):
                logits = model(images)
            if logits.shape[-2:] != masks.shape[-2:]:
                logits = F.interpolate(
                    logits.float(), size=masks.shape[-2:], mode="bilinear", align_corners=False
                )
            loss = F.cross_entropy(logits.float(), masks, ignore_index=ignore_index)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if grad_clip is not None:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            scaler.step(opt)
            scaler.update()
            loss_value = float(loss.detach())
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
        if eval_every and done % eval_every == 0 and done < steps:
            run_eval(done)
        if checkpoint_every and done % checkpoint_every == 0 and done < steps:
            history.total_seconds = time.perf_counter() - t_start
            checkpoint(done)
    bar.close()
    run_eval(steps)
    history.total_seconds = time.perf_counter() - t_start
    checkpoint(steps)
    model.eval()
    return history


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
            items = [data[int(j)] for j in idx[i : i + batch_size]]
            yield torch.stack([x[0] for x in items]), torch.stack([x[1] for x in items])
        return
    if indices is not None:
        raise ValueError("an iterable of batches cannot be sharded by index; shard it yourself")
    for batch in data:
        yield (batch["image"], batch["mask"]) if isinstance(batch, dict) else batch


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


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
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    net = _unwrap(model)
    was_training = net.training
    net.eval()
    dtype = _resolve_amp(amp, None, device)
    rank, world = _dist() if distributed else (0, 1)
    indices = None
    sized = (isinstance(data, (tuple, list)) and isinstance(data[0], torch.Tensor)) or (
        hasattr(data, "__getitem__") and hasattr(data, "__len__")
    )
    if world > 1:
        _broadcast_buffers(net)
    if world > 1 and sized and not isinstance(data, torch.utils.data.DataLoader):
        n = data[0].shape[0] if isinstance(data, (tuple, list)) else len(data)
        indices = np.arange(rank, n, world)
    conf = ConfusionMatrix(num_classes, ignore_index=ignore_index, keep_per_image=keep_per_image)
    count = 0
    for images, masks in tqdm(
        _batches_of(data, batch_size, indices), desc="evaluate", disable=not progress, leave=False
    ):
        images, masks = images.to(device).float(), masks.to(device).long()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = net(images)
        if logits.shape[-2:] != masks.shape[-2:]:
            logits = F.interpolate(
                logits.float(), size=masks.shape[-2:], mode="bilinear", align_corners=False
            )
        conf.update(logits.argmax(1), masks)
        count += images.shape[0]
    if was_training:
        net.train()
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
    """The JSON-friendly part of an :func:`evaluate` result: mIoU, named per-class IoU."""
    iou = [float(v) for v in metrics["iou"]]
    return {
        "miou": float(metrics["miou"]),
        "pixel_accuracy": float(metrics["pixel_accuracy"]),
        "mean_accuracy": float(metrics["mean_accuracy"]),
        "per_class_iou": {str(n): (None if math.isnan(v) else v) for n, v in zip(class_names, iou)},
        "num_images": int(metrics.get("num_images", 0)),
    }


# ------------------------------------------------------------ labeled batches
def _index_batches(n: int, batch_size: int, seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """Endless (batch number, indices): epoch-wise random permutations of 0..n-1, seeded by
    (seed, epoch), batches running on across epoch boundaries (every index once per epoch)."""
    if n < 1:
        raise ValueError("cannot draw batches from an empty set")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    epoch, pos, number = 0, 0, 0
    perm = np.random.default_rng(derive_seed(seed, 0xE90C, epoch)).permutation(n)
    while True:
        take: list[np.ndarray] = []
        need = batch_size
        while need > 0:
            if pos == n:
                epoch, pos = epoch + 1, 0
                perm = np.random.default_rng(derive_seed(seed, 0xE90C, epoch)).permutation(n)
            chunk = perm[pos : pos + need]
            take.append(chunk)
            pos += len(chunk)
            need -= len(chunk)
        yield number, np.concatenate(take)
        number += 1


def _augmenter(augment: Any, seed: int) -> Callable[[torch.Tensor, torch.Tensor, int], Any]:
    fn = make_augment(augment)

    def apply(images: torch.Tensor, masks: torch.Tensor, number: int) -> Any:
        if fn is None:
            return images, masks
        g = torch.Generator().manual_seed(derive_seed(seed, 0xA06, number))
        return fn(images, masks, g)

    return apply


def real_batches(
    images: torch.Tensor,
    masks: torch.Tensor,
    batch_size: int,
    augment: Any = "default",
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless augmented batches from a fixed labeled set (the few-shot baseline).

    ``images``: (N, 3, H, W) float in [0, 1] or uint8; ``masks``: (N, H, W). Each epoch
    visits every image once in a random order (seeded by (seed, epoch)); ``augment``
    takes the stream's specs (``"default"`` = :class:`~dgan_data.augment.BatchAugment`),
    its random draws seeded per batch, so the sequence is reproducible.
    """
    if images.dim() != 4 or images.shape[1] != 3 or masks.dim() != 3:
        raise ValueError(
            f"expected images (N, 3, H, W) and masks (N, H, W), got {tuple(images.shape)} "
            f"and {tuple(masks.shape)}"
        )
    if images.shape[0] != masks.shape[0] or images.shape[-2:] != masks.shape[-2:]:
        raise ValueError(f"images {tuple(images.shape)} and masks {tuple(masks.shape)} differ")
    dev = torch.device(device) if device is not None else images.device
    aug = _augmenter(augment, seed)
    for number, idx in _index_batches(images.shape[0], batch_size, seed):
        sel = torch.as_tensor(idx)
        img = images[sel].to(dev)
        img = img.float() / 255 if img.dtype == torch.uint8 else img.float()
        yield aug(img, masks[sel].to(dev).long(), number)


def render_labeled(
    split: str, count: int, start: int = 0, size: int = 64, batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` toy renders of ``split`` from its ``start``-th seed: float images in
    [0, 1] (N, 3, size, size) and int64 masks (N, size, size), exact by construction."""

    images, masks = [], []
    for _, img, mask in render_split(split, start, count, batch_size=batch_size, size=size):
        images.append(img)
        masks.append(mask)
    return torch.cat(images), torch.cat(masks)


def render_batches(
    split: str,
    batch_size: int,
    count: int = 5000,
    start: int = 0,
    augment: Any = "default",
    seed: int = 0,
    size: int = 64,
    device: torch.device | str | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless augmented batches of toy renders with exact masks (the fully supervised
    reference): the ``count`` seeds of ``split`` from ``start``, visited epoch by epoch in
    a seeded random order, each batch rendered on demand (about 5 ms per 64 px image on
    one core, so nothing is held in memory) and augmented like :func:`real_batches`."""

    seeds = split_seeds(split, start, count)
    aug = _augmenter(augment, seed)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    for number, idx in _index_batches(len(seeds), batch_size, seed):
        images, masks = render_faces([seeds[int(i)] for i in idx], size=size)
        yield aug(images.to(dev), masks.to(dev), number)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Temporarily use ``threads`` intra-op CPU threads (None: leave as is)."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_info(device: torch.device | str | None = None) -> dict[str, Any]:
    """Hardware and library versions, for results files (timings mean little without)."""

    device = torch.device(device) if device is not None else torch.device("cpu")
    hardware: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        hardware["gpu"] = torch.cuda.get_device_name(device)
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "dgan_data": __version__,
    }
    if _SMP:
        import segmentation_models_pytorch as smp

        versions["segmentation_models_pytorch"] = smp.__version__
    return {"hardware": hardware, "versions": versions}
