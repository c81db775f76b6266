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
import torch.nn.functional as F
from torch.utils.data import IterableDataset, get_worker_info

from .augment import make_augment, normalize
from .generators import Generator, load_generator
from .interpreter import Interpreter
from .latents import z_from_seeds
from .uncertainty import StreamingQuantile

log = logging.getLogger(__name__)

IGNORE_INDEX = 255
_MASK64 = (1 << 64) - 1
#: Process that imported this module. A forked DataLoader worker inherits the value, a
#: spawned one imports the module afresh: a different pid means "forked from a parent".
_IMPORT_PID = os.getpid()
#: Generation steps in a row that may keep no image before the stream gives up.
MAX_EMPTY_STEPS = 100


def _splitmix64(x: int) -> int:
    """A bijective 64-bit mixer: distinct inputs give distinct, well-spread outputs."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def derive_seed(*parts: int) -> int:
    """A non-negative 63-bit seed from integer parts (order matters)."""
    h = 0
    for p in parts:
        h = _splitmix64(h ^ (int(p) & _MASK64))
    return h >> 1


def sample_seed(base_seed: int, epoch: int, candidate: int) -> int:
    """Seed of candidate ``candidate`` (global over ranks and workers) of an epoch."""
    return derive_seed(base_seed, epoch, candidate)


def distributed_context() -> tuple[int, int]:
    """(rank, world size): from torch.distributed when initialised, else torchrun's env."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


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
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0.0 <= drop_uncertain < 1.0:
            raise ValueError(f"drop_uncertain must be in [0, 1), got {drop_uncertain}")
        if output not in ("tensor", "dict"):
            raise ValueError(f"output must be 'tensor' or 'dict', got {output!r}")
        if dtype not in (None, torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"dtype must be None, float32, bfloat16 or float16, got {dtype}")
        if samples_per_epoch is not None and samples_per_epoch < batch_size:
            raise ValueError(
                f"samples_per_epoch ({samples_per_epoch}) is smaller than one batch ({batch_size})"
            )
        self.preset = preset
        self._generator_src = generator
        self._interpreter_src = interpreter
        self._generator_options: dict[str, Any] = {}
        preset_info = None
        if preset is not None:
            from .presets import get_preset, preset_generator_options, resolve_preset_file

            preset_info = get_preset(preset)
            if self._generator_src is None:
                self._generator_src = resolve_preset_file(preset, "generator")
                self._generator_options = preset_generator_options(preset)
            if self._interpreter_src is None:
                self._interpreter_src = resolve_preset_file(preset, "interpreter")
        if self._generator_src is None or self._interpreter_src is None:
            raise ValueError(
                "DatasetGANStream needs a preset name, or both generator= and interpreter="
            )
        for src in (self._generator_src, self._interpreter_src):
            if isinstance(src, (str, Path)) and not Path(src).is_file():
                raise FileNotFoundError(f"{src}: no such file")
        if preset_info is not None:
            if truncation_psi is None:
                truncation_psi = preset_info.truncation_psi
            if truncation_cutoff is None:
                truncation_cutoff = preset_info.truncation_cutoff
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
        self.label_size = label_size
        self.epoch = 0
        self._runtime: dict[str, Any] | None = None
        self._progress: dict[str, Any] | None = None
        self._resume: dict[str, Any] | None = None
        self._warned_restart = False
        make_augment(augment)  # fail early on an unsupported spec

    # ----------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_runtime"] = None  # models are rebuilt lazily in each process
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

    def _label_frame(
        self, G: Generator, interp: Interpreter
    ) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
        """(label frame, crop or None): the stream's ``label_size``, else the
        interpreter's frame and crop, else the generator's resolution."""
        if self.label_size is not None:
            frame = (int(self.label_size[0]), int(self.label_size[1]))
            if interp.crop is not None and frame != tuple(interp.label_size or ()):
                raise ValueError(
                    f"label_size={frame} cannot be used with this interpreter: it crops "
                    f"{tuple(interp.crop)} (top, left, height, width) out of its label frame "
                    f"{tuple(interp.label_size)}; leave label_size=None"
                )
            return frame, interp.crop
        if interp.label_size is not None:
            return tuple(interp.label_size), interp.crop
        return (int(G.resolution[0]), int(G.resolution[1])), None

    def _models(self) -> dict[str, Any]:
        device = self._resolve_device()
        rt = self._runtime
        if rt is not None and rt["device"] == device:
            return rt
        G = self._generator_src
        if not isinstance(G, Generator):
            G = load_generator(G, **self._generator_options)
        interp = self._interpreter_src
        if not isinstance(interp, Interpreter):
            interp = Interpreter.load(interp)
        if interp.num_classes > IGNORE_INDEX:
            raise ValueError(
                f"{interp.num_classes} classes collide with the mask's ignore index "
                f"{IGNORE_INDEX}: the stream supports at most {IGNORE_INDEX} classes"
            )
        G = G.to(device).eval().requires_grad_(False)
        interp = interp.to(device).eval()
        interp.check_compatible(G)
        frame, crop = self._label_frame(G, interp)
        psi = self.truncation_psi
        if psi is None:
            psi = float(interp.training_info.get("truncation_psi") or 1.0)
        self._runtime = {
            "device": device,
            "G": G,
            "interp": interp,
            "frame": frame,
            "crop": crop,
            "label_size": (crop[2], crop[3]) if crop is not None else frame,  # mask size
            "psi": psi,
            "augment": make_augment(self.augment_spec),
        }
        log.info(
            "DatasetGANStream: %s generator %s px, %d classes, labels %s%s, psi %s, on %s",
            G.arch or type(G).__name__,
            "x".join(map(str, G.resolution)),
            interp.num_classes,
            "x".join(map(str, frame)),
            f" cropped to {crop}" if crop is not None else "",
            psi,
            device,
        )
        return self._runtime

    # ---------------------------------------------------------- generation
    @torch.no_grad()
    def generate(self, seeds: list[int]) -> dict[str, torch.Tensor]:
        """Images in [0, 1], masks, per-image scores and seeds for the given seeds.

        This is the stream's labeling path without filtering, augmentation and
        normalisation; tests compare it with ``Interpreter.predict`` on the same seeds.
        Images come out in the label frame (resized, then cropped like the masks).
        """
        rt = self._models()
        G, interp, device = rt["G"], rt["interp"], rt["device"]
        z = z_from_seeds(seeds, G.z_dim, device=device)
        autocast = self.dtype is not None and self.dtype != torch.float32
        with torch.autocast(device.type, dtype=self.dtype, enabled=autocast):
            w = G.mapping(z, rt["psi"], self.truncation_cutoff)
            img, feats = G.synthesize(w, noise=self.noise)
            pred = interp.predict(feats, output_size=rt["frame"], crop=rt["crop"])
        images = self._images_for_labels(img.float(), rt["frame"], rt["crop"])
        masks = pred.labels
        if self.ignore_uncertain_pixels is not None:
            masks = masks.masked_fill(
                pred.pixel_uncertainty > self.ignore_uncertain_pixels, IGNORE_INDEX
            )
        return {
            "image": images,
            "mask": masks,
            "uncertainty": pred.image_uncertainty.float(),
            "seed": torch.tensor(seeds, dtype=torch.int64),
        }

    @staticmethod
    def _images_for_labels(
        img: torch.Tensor,
        frame: tuple[int, int],
        crop: tuple[int, int, int, int] | None,
    ) -> torch.Tensor:
        """Generator output in [-1, 1] -> [0, 1], resized to the label frame, then cropped
        like the labels (the crop is in label-frame pixels)."""
        img = (img.clamp(-1, 1) + 1) / 2
        size = tuple(img.shape[-2:])
        if size != tuple(frame):
            if frame[0] <= size[0] and frame[1] <= size[1]:
                img = F.interpolate(img, size=frame, mode="area")
            else:
                img = F.interpolate(img, size=frame, mode="bilinear", align_corners=False)
                img = img.clamp(0, 1)
        if crop is not None:
            top, left, h, w = crop
            img = img[..., top : top + h, left : left + w]
        return img

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
        rt = self._models()
        device = rt["device"]
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
        augment = rt["augment"]
        empty_steps = 0
        while limit is None or batches < limit:
            while _buffer_len(buffer) < self.batch_size:
                seeds = [
                    sample_seed(self.seed, epoch, (candidates + i) * shard.count + shard.index)
                    for i in range(self.generation_batch)
                ]
                candidates += self.generation_batch
                out = self.generate(seeds)
                keep = quantile.keep(out["uncertainty"])
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
