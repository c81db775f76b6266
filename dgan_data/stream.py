"""``DatasetGANStream``: an endless stream of labeled batches, generated live.

Each step draws a chunk of candidate latents, runs the generator and the interpreter
on the stream's device, drops the most uncertain images with a streaming quantile
filter, and yields full batches of (image, mask), optionally augmented. Nothing is
written to disk. Use it as ``DataLoader(stream, batch_size=None)``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from .augment import make_augment, normalize
from .conventions import IGNORE_INDEX, check_finite_number
from .generators import Generator
from .interpreter import Interpreter
from .labeler import Labeler, check_label_size
from .labeler import _check_device as check_device
from .presets import get_preset, resolve_source
from .seeds import derive_seed, distributed_context, sample_seed
from .uncertainty import StreamingQuantile

log = logging.getLogger(__name__)

__all__ = ["IGNORE_INDEX", "DatasetGANStream", "expected_batches"]
#: Process that imported this module. A forked DataLoader worker inherits the value, a
#: spawned one imports the module afresh: a different pid means "forked from a parent".
_IMPORT_PID = os.getpid()
#: Generation steps in a row that may keep no image before the stream gives up.
MAX_EMPTY_STEPS = 100


@dataclass
class _Shard:
    """Which slice of the global candidate sequence this iterator owns."""

    rank: int
    world_size: int
    worker: int
    num_workers: int

    @property
    def index(self) -> int:
        return self.rank * self.num_workers + self.worker

    @property
    def count(self) -> int:
        return self.world_size * self.num_workers


class DatasetGANStream(IterableDataset):
    """Endless (or epoch-sized) stream of generated, labeled batches.

    Use as ``DataLoader(stream, batch_size=None)``: every item is a whole batch, already
    on ``device``. Models load lazily in ``__iter__`` (in the process that iterates), so
    the object stays small and picklable and ``iter()`` may be called again; a given
    ``Generator``/``Interpreter`` object is moved to ``device`` and set to eval mode.

    Args:
        preset: preset name (e.g. ``"toyface-14"``); its generator and interpreter
            files resolve through the presets registry and cache (a missing file raises
            ``PresetFilesMissing`` here). Optional when ``generator`` and
            ``interpreter`` are given.
        generator: a ``Generator`` or a checkpoint path (overrides the preset's).
        interpreter: an ``Interpreter`` or a ``.safetensors`` path (overrides the preset's).
        batch_size: images per yielded batch; every batch is full.
        truncation_psi: truncation of w; None takes the preset's, then the one the
            interpreter's ``training_info`` records, then 1.0.
        truncation_cutoff: number of w layers truncated (None: the preset's, then the
            architecture default).
        drop_uncertain: fraction of most uncertain images to drop (0 keeps all), decided
            by a sliding-window quantile of the image scores (warms up on the first
            images of each iterator).
        ignore_uncertain_pixels: pixels whose JS divergence exceeds this value get
            ``ignore_index`` 255 in the mask (None: off).
        augment: None, ``"default"`` (GPU batch augmentation), a kornia
            ``AugmentationSequential``, an albumentations ``Compose`` or a callable
            ``(images, masks, generator) -> (images, masks)``; seeded per batch.
        output: ``"tensor"`` yields ``(images, masks)``; ``"dict"`` yields a dict with
            ``image``, ``mask``, ``uncertainty`` (per image) and ``seed`` (CPU int64).
        normalize: None, or ``(mean, std)`` per channel applied to images in [0, 1].
        seed: base seed of the stream; sample seeds derive from (seed, epoch, candidate
            index), candidates interleaved over ranks and workers so streams are disjoint.
        device: where generation runs (default: CUDA when available, else CPU). CUDA is
            refused in forked DataLoader workers (use num_workers=0 or spawn).
        samples_per_epoch: samples per epoch **per rank** (rounded down to whole
            batches, split over workers); None streams forever.
        dtype: None (float32) or ``torch.bfloat16`` / ``torch.float16`` for autocast.
        generation_batch: candidates generated per step (default ``batch_size``).
        quantile_window: scores the streaming quantile keeps (see ``StreamingQuantile``).
        noise: generator noise mode (``"const"`` keeps each seed's image fixed).
        label_size: label frame (H, W) (default: the interpreter's frame and crop, else
            the generator's resolution). Images are resized to it.
    """

    def __init__(
        self,
        preset: str | None = None,
        *,
        generator: Generator | str | Path | None = None,
        interpreter: Interpreter | str | Path | None = None,
        batch_size: int = 8,
        truncation_psi: float | None = None,
        truncation_cutoff: int | None = None,
        drop_uncertain: float = 0.1,
        ignore_uncertain_pixels: float | None = None,
        augment: Any = None,
        output: str = "tensor",
        normalize: tuple[Any, Any] | None = None,
        seed: int = 0,
        device: str | torch.device | None = None,
        samples_per_epoch: int | None = None,
        dtype: torch.dtype | None = None,
        generation_batch: int | None = None,
        quantile_window: int = 1024,
        noise: str = "const",
        label_size: tuple[int, int] | None = None,
    ):
        super().__init__()
        _check_int(batch_size, "batch_size", 1)
        drop_uncertain = check_finite_number(drop_uncertain, "drop_uncertain", low=0.0)
        if not drop_uncertain < 1.0:
            raise ValueError(f"drop_uncertain must be in [0, 1), got {drop_uncertain}")
        if output not in ("tensor", "dict"):
            raise ValueError(f"output must be 'tensor' or 'dict', got {output!r}")
        if dtype not in (None, torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"dtype must be None, float32, bfloat16 or float16, got {dtype}")
        if samples_per_epoch is not None:
            _check_int(samples_per_epoch, "samples_per_epoch", 1)
            if samples_per_epoch < batch_size:
                raise ValueError(
                    f"samples_per_epoch ({samples_per_epoch}) is smaller than one batch "
                    f"({batch_size})"
                )
        if generation_batch is not None:
            _check_int(generation_batch, "generation_batch", 1)
        _check_int(quantile_window, "quantile_window", 1)
        _check_int(seed, "seed", 0)
        if truncation_psi is not None:
            truncation_psi = check_finite_number(truncation_psi, "truncation_psi", low=0.0)
        if truncation_cutoff is not None:
            _check_int(truncation_cutoff, "truncation_cutoff", 1)
        if ignore_uncertain_pixels is not None:
            ignore_uncertain_pixels = check_finite_number(
                ignore_uncertain_pixels, "ignore_uncertain_pixels", low=0.0
            )
        self.label_size = check_label_size(label_size)
        check_device(device)
        self.preset = preset
        self._generator_src = generator
        self._interpreter_src = interpreter
        if preset is not None:
            preset_info = get_preset(preset)
            # resolve now: a missing preset file fails here, not in a worker
            if self._generator_src is None:
                resolve_source(preset_info.name, "generator")
            if self._interpreter_src is None:
                resolve_source(preset_info.name, "interpreter")
        elif self._generator_src is None or self._interpreter_src is None:
            raise ValueError(
                "DatasetGANStream needs a preset name, or both generator= and interpreter="
            )
        for src, kind in (
            (self._generator_src, "generator"),
            (self._interpreter_src, "interpreter"),
        ):
            if isinstance(src, (str, Path)):
                resolve_source(src, kind)  # no such file / unknown preset: say so now
        self.truncation_psi = truncation_psi
        self.truncation_cutoff = truncation_cutoff
        self.batch_size = batch_size
        self.drop_uncertain = drop_uncertain
        self.ignore_uncertain_pixels = ignore_uncertain_pixels
        self.augment_spec = augment
        self.output = output
        self.normalize = normalize
        self.seed = int(seed)
        self.device = device
        self.samples_per_epoch = samples_per_epoch
        self.dtype = dtype
        self.generation_batch = generation_batch or batch_size
        self.quantile_window = quantile_window
        self.noise = noise
        self.epoch = 0
        self._labeler: Labeler | None = None
        self._augment: Any = None
        self._progress: dict[str, Any] | None = None
        self._resume: dict[str, Any] | None = None
        self._warned_restart = False
        make_augment(augment)  # fail early on an unsupported spec

    # ----------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_labeler"] = None  # models are rebuilt lazily in each process
        state["_augment"] = None
        state["_progress"] = None  # an iterator's live state belongs to its process
        return state

    # ------------------------------------------------------------- sizing
    def __len__(self) -> int:
        if self.samples_per_epoch is None:
            raise TypeError("an endless DatasetGANStream has no len(); set samples_per_epoch")
        return self.samples_per_epoch // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch (as with DistributedSampler); seeds depend on it."""
        self.epoch = int(epoch)

    # ------------------------------------------------------------- models
    def _resolve_device(self) -> torch.device:
        """The given device, else CUDA when available (the current device; under torchrun
        ``cuda:LOCAL_RANK`` when ``torch.cuda.set_device`` was not called), else CPU."""
        if self.device is not None:
            device = torch.device(self.device)
            self._check_worker_device(device)
            return device
        if not torch.cuda.is_available():
            return torch.device("cpu")
        self._check_worker_device(torch.device("cuda"))  # before anything initialises CUDA
        index = torch.cuda.current_device()
        local = os.environ.get("LOCAL_RANK")
        if index == 0 and local and local.isdigit() and int(local) < torch.cuda.device_count():
            index = int(local)
        return torch.device("cuda", index)

    @staticmethod
    def _check_worker_device(device: torch.device) -> None:
        """Refuse CUDA in a forked DataLoader worker, with the fix in the message.

        A forked worker inherits this module from its parent (so ``_IMPORT_PID`` is the
        parent's pid); a spawned one imports it afresh. CUDA in a forked child fails
        with a cryptic error as soon as the parent has touched CUDA, so it is refused
        whether or not the parent has (the behaviour must not depend on the order).
        """
        if device.type != "cuda" or get_worker_info() is None:
            return
        bad_fork = getattr(torch.cuda, "_is_in_bad_fork", lambda: False)()
        if bad_fork or os.getpid() != _IMPORT_PID:
            raise RuntimeError(
                f"DatasetGANStream on {device} cannot run in a forked DataLoader worker "
                "(CUDA does not survive fork). Use num_workers=0 (recommended: the stream "
                "already generates whole batches on the GPU), or "
                "DataLoader(..., multiprocessing_context='spawn'), or device='cpu'."
            )

    def labeler(self) -> Labeler:
        """The stream's :class:`Labeler` on the current device, built on first use.

        Built in the process that iterates (models are not pickled with the stream).
        """
        device = self._resolve_device()
        lab = self._labeler
        if lab is not None and lab.device == device:
            return lab
        self._labeler = Labeler.from_sources(
            self.preset,
            generator=self._generator_src,
            interpreter=self._interpreter_src,
            truncation_psi=self.truncation_psi,
            truncation_cutoff=self.truncation_cutoff,
            device=device,
            noise=self.noise,
            label_size=self.label_size,
            dtype=self.dtype,
            ignore_uncertain_pixels=self.ignore_uncertain_pixels,
        )
        self._augment = make_augment(self.augment_spec)
        lab = self._labeler
        log.info(
            "DatasetGANStream: %s generator %s px, %d classes, labels %s%s, psi %s, on %s",
            lab.G.arch or type(lab.G).__name__,
            "x".join(map(str, lab.G.resolution)),
            lab.interpreter.num_classes,
            "x".join(map(str, lab.frame)),
            f" cropped to {lab.crop}" if lab.crop is not None else "",
            lab.truncation_psi,
            device,
        )
        return lab

    # ---------------------------------------------------------- generation
    def generate(self, seeds: list[int]) -> dict[str, torch.Tensor]:
        """Images in [0, 1], masks, per-image scores, pixel uncertainty and seeds.

        The stream's labeling path without filtering, augmentation and normalisation
        (``labeler().label(seeds)`` as a dict).
        """
        out = self.labeler().label(seeds)
        return {
            "image": out.images,
            "mask": out.masks,
            "uncertainty": out.image_uncertainty,
            "pixel_uncertainty": out.pixel_uncertainty,
            "seed": out.seeds,
        }

    # ------------------------------------------------------------ iteration
    def _shard(self) -> _Shard:
        rank, world = distributed_context()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return _Shard(rank, world, worker, workers)

    def _batches_for_shard(self, shard: _Shard) -> int | None:
        """Batches this worker yields in one epoch (None: endless)."""
        if self.samples_per_epoch is None:
            return None
        total = self.samples_per_epoch // self.batch_size
        return total // shard.num_workers + int(shard.worker < total % shard.num_workers)

    def _config(self) -> dict[str, Any]:
        """Settings that shape the sample sequence: a resumed stream must share them."""
        return {
            "seed": self.seed,
            "batch_size": self.batch_size,
            "generation_batch": self.generation_batch,
            "drop_uncertain": self.drop_uncertain,
            "quantile_window": self.quantile_window,
        }

    def state_dict(self) -> dict[str, Any]:
        """Where the last iterator stopped: resume it with ``load_state_dict``.

        Valid for iteration in this process (``num_workers=0``, the recommended use).
        Holds plain Python values and CPU tensors (the batch left-overs), so it can be
        saved with ``torch.save`` next to a training checkpoint.
        """
        if self._resume is not None:  # loaded but not iterated yet
            return dict(self._resume)
        if self._progress is None:
            return {"version": 1, "epoch": self.epoch, "fresh": True, **self._config()}
        p = self._progress
        return {
            "version": 1,
            "epoch": p["epoch"],
            "fresh": False,
            **self._config(),
            "shard": [
                p["shard"].rank,
                p["shard"].world_size,
                p["shard"].worker,
                p["shard"].num_workers,
            ],
            "candidates": p["candidates"],
            "batches": p["batches"],
            "quantile": p["quantile"].state_dict(),
            "buffer": {k: v.cpu().clone() for k, v in p["buffer"].items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next ``iter()`` continue exactly after the state's last batch.

        The stream must have the same seed, batch size, generation batch, filter
        fraction and window as the one that saved the state (ValueError otherwise).
        """
        if not isinstance(state, dict) or "epoch" not in state:
            raise ValueError("not a DatasetGANStream state (expected a dict with 'epoch')")
        ours = self._config()
        diffs = [
            f"{k}={state[k]!r} (this stream: {v!r})"
            for k, v in ours.items()
            if k in state and state[k] != v
        ]
        if diffs:
            raise ValueError(
                "stream state was saved by a stream with other settings: " + ", ".join(diffs)
            )
        if not state.get("fresh"):
            missing = [
                k
                for k in ("shard", "candidates", "batches", "quantile", "buffer")
                if k not in state
            ]
            if missing:
                raise ValueError(f"stream state lacks {missing}: not a DatasetGANStream state")
        self.epoch = int(state["epoch"])
        self._resume = None if state.get("fresh") else dict(state)
        self._progress = None  # the loaded state replaces any earlier iterator's

    def __iter__(self) -> Iterator[Any]:
        shard = self._shard()
        lab = self.labeler()
        device = lab.device
        resume, self._resume = self._resume, None
        epoch = self.epoch
        prev = self._progress
        if (
            resume is None
            and self.samples_per_epoch is None
            and prev is not None
            and prev["epoch"] == epoch
            and prev["batches"] > 0
            and not self._warned_restart
        ):
            log.warning(
                "DatasetGANStream: a new iterator restarts the endless stream at its first "
                "sample (epoch %d), repeating what the previous one yielded. Call "
                "set_epoch(n) for fresh samples, or load_state_dict(state_dict()) to continue.",
                epoch,
            )
            self._warned_restart = True
        quantile = StreamingQuantile(self.drop_uncertain, window=self.quantile_window)
        buffer: dict[str, torch.Tensor] = {}
        candidates = batches = 0
        if resume is not None:
            here = [shard.rank, shard.world_size, shard.worker, shard.num_workers]
            if list(resume["shard"]) != here:
                raise ValueError(
                    f"stream state belongs to shard {list(resume['shard'])} (rank, world "
                    f"size, worker, workers); this iterator is {here}. Resume with the same "
                    "world size and num_workers=0 (state_dict() tracks the main process only)."
                )
            candidates, batches = int(resume["candidates"]), int(resume["batches"])
            quantile.load_state_dict(resume["quantile"])
            buffer = {k: v.to(device) for k, v in resume["buffer"].items()}
        progress = {
            "epoch": epoch,
            "shard": shard,
            "candidates": candidates,
            "batches": batches,
            "quantile": quantile,
            "buffer": buffer,
        }
        self._progress = progress
        limit = self._batches_for_shard(shard)
        augment = self._augment
        empty_steps = 0
        while limit is None or batches < limit:
            while _buffer_len(buffer) < self.batch_size:
                seeds = [
                    sample_seed(self.seed, epoch, (candidates + i) * shard.count + shard.index)
                    for i in range(self.generation_batch)
                ]
                candidates += self.generation_batch
                labeled = self.labeler().label(seeds)
                scores = labeled.image_uncertainty.tolist()  # the filter needs them here
                labeled.check_finite(scores)
                out = {
                    "image": labeled.images,
                    "mask": labeled.masks,
                    "uncertainty": labeled.image_uncertainty,
                    "seed": labeled.seeds,
                }
                keep = quantile.keep(scores)
                if bool(keep.any()):
                    empty_steps = 0
                else:
                    empty_steps += 1
                    if empty_steps >= MAX_EMPTY_STEPS:
                        raise RuntimeError(
                            f"the uncertainty filter kept none of the last "
                            f"{empty_steps * self.generation_batch} images (last scores: "
                            f"{out['uncertainty'][:4].tolist()}). NaN scores mean the "
                            "generator or interpreter output is not finite, e.g. float16 "
                            "overflow: try dtype=torch.bfloat16 or dtype=None."
                        )
                kept = {k: v[keep.to(v.device)] for k, v in out.items()}
                buffer = _concat(buffer, kept)
            batch = {k: v[: self.batch_size] for k, v in buffer.items()}
            buffer = {k: v[self.batch_size :] for k, v in buffer.items()}
            if augment is not None:
                g = torch.Generator().manual_seed(
                    derive_seed(self.seed, 0xA06, epoch, shard.index, batches)
                )
                batch["image"], batch["mask"] = augment(batch["image"], batch["mask"], g)
            if self.normalize is not None:
                batch["image"] = normalize(batch["image"], *self.normalize)
            batches += 1
            progress.update(candidates=candidates, batches=batches, buffer=buffer)
            if self.output == "dict":
                yield batch
            else:
                yield batch["image"], batch["mask"]
        if limit is not None:
            self.epoch = epoch + 1
            if self._progress is progress:
                self._progress = None


def _buffer_len(buffer: dict[str, torch.Tensor]) -> int:
    return 0 if not buffer else int(buffer["seed"].shape[0])


def _concat(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if not a:
        return b
    return {k: torch.cat([a[k], b[k].to(a[k].device)]) for k in a}


def expected_batches(samples_per_epoch: int, batch_size: int) -> int:
    """Batches per rank and epoch for a given ``samples_per_epoch`` (rounded down)."""
    return math.floor(samples_per_epoch / batch_size)


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value
