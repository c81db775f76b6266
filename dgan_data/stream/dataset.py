"""``DatasetGANStream``: the stream's settings, its iteration and its units.

Each step draws a chunk of candidate latents, labels them with the stream's
:class:`~dgan_data.labeler.Labeler`, drops the most uncertain images with a streaming
quantile filter, optionally balances classes, and cuts the kept ones into units that
are augmented, normalised and handed out (see the package docstring for the two
patterns). Position and resumption live in ``state``; shard and device in ``workers``.
"""

from __future__ import annotations

import inspect
import logging
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset

from ..augment import BatchAugment, check_normalize, make_augment, normalize
from ..augment.batch import check_augment_output
from ..balance import ClassBalancer, present_classes, rate_as_written, resolve_targets
from ..conventions import (
    IGNORE_INDEX,
    MAX_BATCH,
    check_bool,
    check_int,
    check_number,
    check_truncation_psi,
    keyword_hints,
    settings_repr,
)
from ..generators import Generator
from ..interpreter import Interpreter, read_interpreter_metadata
from ..labeler import Labeler, check_label_size, warn_without_ensemble
from ..labeler import _check_device as check_device
from ..presets import get_preset, resolve_source
from ..seeds import check_seed, derive_seed, sample_seed
from ..uncertainty import StreamingQuantile, as_written, num_dropped
from .state import (
    Progress,
    Tensors,
    buffer_len,
    check_epoch,
    check_state,
    concat,
    describe_augment,
    fresh_state,
    plain,
)
from .workers import (
    Shard,
    current_shard,
    ends_at_start,
    in_worker,
    new_epoch_signal,
    pickling_context,
    resolve_device,
    signal_for_pickling,
    take_ended_epoch,
)

log = logging.getLogger(__name__)

__all__ = ["IGNORE_INDEX", "MAX_SAMPLES_PER_EPOCH", "DatasetGANStream", "expected_batches"]
#: Most samples one epoch may hold per rank: ``len()`` of the stream must fit an index
#: (2**63 failed at the first iteration).
MAX_SAMPLES_PER_EPOCH = sys.maxsize
#: Generation steps in a row that may keep no image before the stream gives up.
MAX_EMPTY_STEPS = 100
#: Default candidates per generation step in per-sample mode, by device type.
DEFAULT_GENERATION_BATCH = {"cpu": 8, "cuda": 32}
#: Seed purpose of the per-unit augmentation (see ``dgan_data.seeds.derive_seed``).
_SEED_AUGMENT = 0xA06


@keyword_hints
class DatasetGANStream(IterableDataset):
    """Endless (or epoch-sized) stream of generated, labeled samples.

    Models load lazily in ``__iter__`` (in the process that iterates), so the object
    stays small and picklable and ``iter()`` may be called again; a given
    ``Generator``/``Interpreter`` object is moved to ``device`` and set to eval mode.

    Args:
        preset: preset name (e.g. ``"toyface-14"``); its generator and interpreter
            files resolve through the presets registry and cache (a missing file raises
            ``PresetFilesMissing`` here). Optional when ``generator`` and
            ``interpreter`` are given.
        generator: a ``Generator``, a checkpoint path or a preset name.
        interpreter: an ``Interpreter``, a ``.safetensors`` path or a preset name.
        batch_size: None (default): items are single samples, ``(image (3, H, W),
            mask (H, W))``, and the DataLoader batches them. An int: items are whole
            batches ``(images (B, 3, H, W), masks (B, H, W))`` made on the device in one
            piece, for ``DataLoader(stream, batch_size=None)``. Every batch is full.
        generation_batch: candidates labeled per step (per-sample mode default: 8 on the
            CPU, 32 on CUDA; whole-batch mode: ``batch_size``). Augmentation runs on
            units of this many kept samples in per-sample mode.
        truncation_psi: truncation of w; None takes the preset's, then the one the
            interpreter's ``training_info`` records, then 1.0.
        truncation_cutoff: number of w layers truncated (None: the preset's, then the
            architecture default).
        drop_uncertain: fraction of most uncertain images to drop (0 keeps all), decided
            by a sliding-window quantile of the image scores. The filter starts afresh
            with every iterator (every epoch, in every worker) and drops nothing while
            ``floor(drop_uncertain * n)`` is 0, so a short epoch drops less: at 0.1 a
            fresh filter over N candidates per worker and epoch drops 4.1 % (N = 20),
            6.8 % (50), 8.1 % (100), 8.9 % (200), 9.7 % (1000) of them (expected share
            for i.i.d. scores, ``floor(0.1 i) / i`` for the i-th). The dropped share is
            within a few percent of ``drop_uncertain`` only from about 1,000 candidates
            per worker and epoch.
        ignore_uncertain_pixels: pixels whose JS divergence exceeds this value get
            ``ignore_index`` 255 in the mask (None: off).
        augment: None, ``"default"`` (GPU batch augmentation), a kornia
            ``AugmentationSequential``, an albumentations ``Compose`` or a callable
            ``(images, masks, generator) -> (images, masks)``; seeded per unit. A
            callable's output is checked: (B, 3, H, W) float images and (B, H, W)
            integer masks for the unit's B samples, else ValueError.
        output: ``"tensor"`` yields ``(image, mask)``; ``"dict"`` yields a dict with
            ``image``, ``mask``, ``uncertainty`` (image score) and ``seed`` (CPU int64).
            Images are ``tv_tensors.Image`` and masks ``tv_tensors.Mask``, so torchvision
            transforms v2 resize masks with nearest interpolation by themselves.
        normalize: None, or ``(mean, std)`` per channel applied to images in [0, 1].
        transform: optional callable applied to every item (e.g. a transforms v2
            ``Compose``), after augmentation and normalisation.
        seed: base seed of the stream; sample seeds derive from (seed, epoch, candidate
            index), candidates interleaved over ranks and workers so streams are disjoint.
        device: where generation runs (default: CUDA when available, else CPU). CUDA is
            refused in forked DataLoader workers (use num_workers=0 or spawn).
        samples_per_epoch: samples per epoch **per rank** (whole-batch mode: rounded down
            to whole batches; split over workers); None streams forever. Each worker's
            share of an epoch warms up a fresh uncertainty filter (see
            ``drop_uncertain``): a worker sees about ``samples_per_epoch / num_workers /
            (1 - drop_uncertain)`` candidates, and below about 1,000 the filter drops
            noticeably less than ``drop_uncertain`` (8.1 % instead of 10 % at 100).
        dtype: None (float32) or ``torch.bfloat16`` / ``torch.float16`` for autocast.
        quantile_window: scores the streaming quantile keeps (see ``StreamingQuantile``).
        noise: generator noise mode (``"const"`` keeps each seed's image fixed).
        label_size: label frame (H, W) (default: the interpreter's frame and crop, else
            the generator's resolution). Images are resized to it.
        class_balance: None (off), ``"image"`` (every class but the background in at
            least 30 % of the yielded images) or ``{class name: target image rate}``
            (``{}`` is refused: use None): a candidate holding a class below its target
            is kept and handed out twice, whenever the class is short; others are
            thinned out while some class is short (see ``dgan_data.balance``); decided
            from the interpreter's labels of each candidate, never by touching pixels.
            A class that cannot reach half its target at its observed candidate rate is
            given up (a logged warning; it stops thinning the stream). That count
            restarts every epoch (an epoch's samples depend only on seed, epoch and
            shard), so an epoch or worker share of fewer than 500 candidates never gives
            a class up: a class no candidate of the epoch held is named in a warning at
            the epoch's end, as it costs extra generation every epoch.
            ``statistics()`` reports the achieved rates (``image_rates``: of the masks
            handed out, after augmentation, before ``transform``; ``decided_rates``: of
            the candidates' labels the rule counted, copies still waiting in the buffer
            included), the candidate rates and the given-up classes.
        balance_min_pixels: labeled pixels a class needs in an image to count as present
            for ``class_balance`` (decisions and reported rates); default 1, any pixel.
            Raise it (e.g. 4) so that a few stray pixels of a class do not count.
        impl: the interpreter's inference path: None/"auto" (interpolate on CUDA, rows
            elsewhere), "rows" or "interpolate" (see ``Interpreter.predict``).
        compile: run the interpolate path through ``torch.compile`` (falls back to eager
            with a warning when compilation fails).
        soft_labels: also yield the ensemble's mean class probabilities as ``probs``
            (K, H, W) float16 (soft labels for distillation; :func:`train_segmentation`
            then trains on them). Needs ``output="dict"`` and ``augment`` None or
            ``"default"`` / a ``BatchAugment``, which moves them with the mask; other
            augmentations cannot. They are a ``tv_tensors.Mask``, so a transforms v2
            ``transform`` flips, crops and resizes them with the mask.
    """

    # defaults for streams pickled by a version without these attributes
    _parent_context: tuple[int, int] | None = None
    _ended: Progress | None = None
    _ends_at_start: tuple[int, int] | None = None

    def __init__(
        self,
        preset: str | None = None,
        *,
        generator: Generator | str | Path | None = None,
        interpreter: Interpreter | str | Path | None = None,
        batch_size: int | None = None,
        generation_batch: int | None = None,
        truncation_psi: float | None = None,
        truncation_cutoff: int | None = None,
        drop_uncertain: float = 0.1,
        ignore_uncertain_pixels: float | None = None,
        augment: Any = None,
        output: str = "tensor",
        normalize: tuple[Any, Any] | None = None,
        transform: Callable[[Any], Any] | None = None,
        seed: int = 0,
        device: str | torch.device | None = None,
        samples_per_epoch: int | None = None,
        dtype: torch.dtype | None = None,
        quantile_window: int = 1024,
        noise: str = "const",
        label_size: tuple[int, int] | None = None,
        class_balance: str | dict[str, float] | None = None,
        balance_min_pixels: int = 1,
        impl: str | None = None,
        compile: bool = False,
        soft_labels: bool = False,
    ):
        super().__init__()
        if batch_size is not None:
            batch_size = check_int(batch_size, "batch_size", 1, MAX_BATCH)
        drop_uncertain = check_number(as_written(drop_uncertain), "drop_uncertain")
        if not 0.0 <= drop_uncertain < 1.0:
            raise ValueError(f"drop_uncertain must be in [0, 1), got {drop_uncertain}")
        if output not in ("tensor", "dict"):
            raise ValueError(f"output must be 'tensor' or 'dict', got {output!r}")
        if dtype not in (None, torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"dtype must be None, float32, bfloat16 or float16, got {dtype}")
        if samples_per_epoch is not None:
            samples_per_epoch = check_int(
                samples_per_epoch, "samples_per_epoch", 1, MAX_SAMPLES_PER_EPOCH
            )
            if batch_size is not None and samples_per_epoch < batch_size:
                raise ValueError(
                    f"samples_per_epoch ({samples_per_epoch}) is smaller than one batch "
                    f"({batch_size})"
                )
        if generation_batch is not None:
            generation_batch = check_int(generation_batch, "generation_batch", 1, MAX_BATCH)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        quantile_window = check_int(quantile_window, "quantile_window", 1)
        if drop_uncertain > 0:
            _check_window(quantile_window, drop_uncertain)
        seed = check_seed(seed)  # as export: seeds are stored and compared as int64
        if truncation_psi is not None:
            truncation_psi = check_truncation_psi(truncation_psi)
        if truncation_cutoff is not None:
            truncation_cutoff = check_int(truncation_cutoff, "truncation_cutoff", 1)
        if ignore_uncertain_pixels is not None:
            ignore_uncertain_pixels = check_number(
                ignore_uncertain_pixels, "ignore_uncertain_pixels", low=0.0
            )
        if normalize is not None:
            normalize = check_normalize(normalize)
        if noise not in ("const", "random"):
            raise ValueError(f"noise must be 'const' or 'random', got {noise!r}")
        self.label_size = check_label_size(label_size)
        check_device(device)
        if class_balance is not None and not isinstance(class_balance, (str, dict)):
            raise ValueError(
                f"class_balance must be None, 'image' or a dict, got {class_balance!r}"
            )
        if isinstance(class_balance, str) and class_balance != "image":
            raise ValueError(
                f"class_balance must be None, 'image' or a dict, got {class_balance!r}"
            )
        if impl not in (None, "auto", "rows", "interpolate"):
            raise ValueError(f"impl must be None, 'auto', 'rows' or 'interpolate', got {impl!r}")
        self.impl = impl
        self.compile = check_bool(compile, "compile")  # bool("no") was True
        if not isinstance(soft_labels, bool):
            raise ValueError(f"soft_labels must be True or False, got {soft_labels!r}")
        if soft_labels and output != "dict":
            raise ValueError('soft_labels=True needs output="dict" (the probabilities are "probs")')
        augment_fn = make_augment(augment)  # an unsupported spec fails here
        fill = getattr(augment_fn, "ignore_index", IGNORE_INDEX)
        if fill != IGNORE_INDEX:  # padding would be labelled as class ``fill``
            raise ValueError(
                f"augment's ignore_index is {fill}: the stream's masks mark ignored pixels "
                f"{IGNORE_INDEX}, so padding would be labelled class {fill}"
            )
        # what a state records of it: equal pipelines compare equal, different ones differ
        self._augment_description = describe_augment(augment_fn)
        if soft_labels and not (augment_fn is None or isinstance(augment_fn, BatchAugment)):
            raise ValueError(
                "soft_labels=True needs augment None, 'default' or a BatchAugment: other "
                f"augmentations cannot move class probabilities with the mask, got {augment!r}"
            )
        self.soft_labels = soft_labels
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
        self.balance_min_pixels = check_int(balance_min_pixels, "balance_min_pixels", 1)
        if class_balance is not None:  # unknown class names or bad rates: say so now
            names = _class_names(self._interpreter_src, preset)
            targets = resolve_targets(
                class_balance,
                names if names else list(class_balance),
                ignore=[k for k, n in enumerate(names or []) if n == "background"],
            )
            if isinstance(class_balance, dict):  # numpy/tensor rates -> floats (states hold them)
                class_balance = {
                    name: float(rate_as_written(rate)) for name, rate in class_balance.items()
                }
            if targets is not None and not any(targets):
                log.warning(
                    "DatasetGANStream: every class_balance target is 0, so balancing changes "
                    "nothing (statistics() still reports the per-class image rates); use "
                    "class_balance=None to turn it off"
                )
        self.class_balance = class_balance
        self.truncation_psi = truncation_psi
        self.truncation_cutoff = truncation_cutoff
        self.batch_size = batch_size
        self.drop_uncertain = drop_uncertain
        self.ignore_uncertain_pixels = ignore_uncertain_pixels
        self.augment_spec = augment
        self.output = output
        self.normalize = normalize
        self.transform = transform
        self.seed = int(seed)
        self.device = device
        self.samples_per_epoch = samples_per_epoch
        self.dtype = dtype
        self.generation_batch = generation_batch
        self.quantile_window = quantile_window
        self.noise = noise
        self.epoch = 0
        self._labeler: Labeler | None = None
        self._augment: Any = None
        self._progress: Progress | None = None
        self._finished: Progress | None = None  # the last iterator to finish an epoch
        # that iterator while nothing has moved the stream since: state_dict() then
        # records the epoch as finished, not the next one as fresh (a DataLoader that
        # collates a partial last batch runs the iterator to its end before the batch
        # is handed out, so the checkpoint of that batch must not skip ahead)
        self._ended: Progress | None = None
        self._resume: dict[str, Any] | None = None
        self._warned_restart = False
        self._parent_context: tuple[int, int] | None = None  # set when pickled
        # set_epoch writes the epoch here too, where persistent DataLoader workers (which
        # keep the copy they started with) read it at their next iter()
        self._epoch_signal: Any = new_epoch_signal()
        self._epoch_signal_seen = 0
        self._epoch_ends_seen = 0  # epoch ends signalled by workers, already taken

    def __repr__(self) -> str:
        """The sources, the seed and every setting not at its default; loads nothing."""
        names = inspect.signature(type(self).__init__).parameters
        values = {
            name: getattr(self, _HELD_AS.get(name, name))
            for name in names
            if name not in ("self", "preset")  # the preset is the first, bare argument
        }
        parts = [repr(self.preset)] if self.preset is not None else []
        parts.append(settings_repr(type(self), values, always=("seed",)))
        return f"{type(self).__name__}({', '.join(parts)})"

    @property
    def per_sample(self) -> bool:
        """True when items are single samples (``batch_size`` is None)."""
        return self.batch_size is None

    # ----------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_labeler"] = None  # models are rebuilt lazily in each process
        state["_augment"] = None
        state["_progress"] = None  # an iterator's live state belongs to its process
        state["_finished"] = None
        state["_ended"] = None
        # a spawned worker cannot find its rank itself (no process group, maybe no RANK)
        state["_parent_context"] = pickling_context()
        state["_epoch_signal"] = signal_for_pickling(self._epoch_signal)
        # a spawned worker's view of the epochs ended before it started (see
        # ``_adopt_signalled_epoch``)
        state["_ends_at_start"] = ends_at_start(state["_epoch_signal"])
        return state

    # ------------------------------------------------------------- sizing
    def __len__(self) -> int:
        """Items per epoch and rank: samples (per-sample mode) or whole batches."""
        if self.samples_per_epoch is None:
            raise TypeError("an endless DatasetGANStream has no len(); set samples_per_epoch")
        if self.per_sample:
            return self.samples_per_epoch
        return self.samples_per_epoch // self.batch_size

    def __getitem__(self, index: Any) -> Any:
        """Refused with the ways that work: the stream has no positions to index (torch's
        own message only says that subclasses should implement ``__getitem__``)."""
        raise TypeError(
            f"DatasetGANStream is an endless iterable dataset, not indexable (stream[{index!r}]):"
            " iterate it (iter(stream), or a DataLoader), label given seeds with "
            "stream.generate([seed, ...]), or write a finite, indexable dataset with "
            "dgan-data export and read it with ExportedDataset"
        )

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch (as with DistributedSampler); seeds depend on it.

        An int in [0, 2**63) (numpy and tensor integers too); anything else raises
        ValueError, since it would select another epoch's samples silently. Call it
        before ``load_state_dict``: a loaded state resumes only in its own epoch.
        """
        self.epoch = check_epoch(epoch)
        self._retire_iterator()
        self._drop_finished_resume()
        if self._epoch_signal is None:  # a copy (pickle, deepcopy) signals on its own
            self._epoch_signal = new_epoch_signal()
        self._epoch_signal[0] = self.epoch
        self._epoch_signal[1] += 1
        self._epoch_signal_seen = self._epoch_signal[1]
        self._epoch_ends_seen = self._epoch_signal[3]  # the epoch set wins over them

    def _drop_finished_resume(self) -> None:
        """A loaded state of a finished epoch that was never iterated (torchdata's
        StatefulDataLoader restores an ended epoch without calling iter()) is done with
        once the loop moves to another epoch; an unfinished one still must be resumed."""
        state = self._resume
        if state is None or state["epoch"] == self.epoch:
            return
        limit = self._items_for_shard(current_shard(self._parent_context))
        if limit is not None and state["items"] >= limit:
            self._resume = None

    def _adopt_signalled_epoch(self) -> None:
        """Take the epoch the main process set since this copy was made (persistent
        workers; their own end-of-epoch step is kept when none was set), else the next
        epoch after one that the workers of an earlier loader iteration ended."""
        signal = self._epoch_signal
        if signal is not None and signal[1] != self._epoch_signal_seen:
            self._epoch_signal_seen = signal[1]
            self.epoch = signal[0]
        # an epoch that ended in the workers of an earlier iteration (not a sibling's:
        # a worker reads the signal as it was when its process started, once)
        ended = take_ended_epoch(signal, self._ends_at_start)
        self._ends_at_start = None
        if ended is not None and ended[1] != self._epoch_ends_seen:
            self._epoch_ends_seen, self.epoch = ended[1], ended[0]

    def _signal_epoch_end(self) -> None:
        """In a DataLoader worker whose epoch ended: the next epoch goes to the main
        process's stream too, so the workers it starts next (non-persistent ones are new
        copies of it) draw that epoch's samples, as ``num_workers=0`` and persistent
        workers do without ``set_epoch`` (they repeated the first epoch forever). A
        ``set_epoch`` in the main process still wins: it signals after this."""
        signal = self._epoch_signal
        if signal is None or not in_worker():
            return
        signal[2] = self.epoch
        signal[3] += 1
        self._epoch_ends_seen = signal[3]

    def _retire_iterator(self) -> None:
        """The last iterator no longer says where the stream is: the next ``iter()``
        starts an epoch afresh, so ``state_dict`` must say so. That holds for a finished
        epoch's state and for an iterator stopped before its epoch's end (whose position
        was returned, and a resumed run went on one epoch behind). Its statistics stay
        readable."""
        self._ended = None
        if self._progress is not None:
            self._finished, self._progress = self._progress, None

    def unit_size(self, device: torch.device | None = None) -> int:
        """Kept samples per unit: the batch (whole-batch mode) or the generation batch."""
        if self.batch_size is not None:
            return self.batch_size
        return self.generation_size(device)

    def generation_size(self, device: torch.device | None = None) -> int:
        """Candidates labeled per step on ``device`` (default: the stream's device)."""
        if self.generation_batch is not None:
            return self.generation_batch
        if self.batch_size is not None:
            return self.batch_size
        dev = device if device is not None else self._resolve_device()
        return DEFAULT_GENERATION_BATCH.get(dev.type, 8)

    # ------------------------------------------------------------- models
    def _resolve_device(self) -> torch.device:
        """The stream's device (see ``workers.resolve_device``)."""
        return resolve_device(self.device)

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
            impl=self.impl,
            compile=self.compile,
        )
        self._augment = make_augment(self.augment_spec)
        lab = self._labeler
        warn_without_ensemble(
            lab,
            "DatasetGANStream",
            f"drop_uncertain={self.drop_uncertain:g} drops nothing"
            if self.drop_uncertain
            else None,
        )
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
    def _items_for_shard(self, shard: Shard) -> int | None:
        """Items this worker yields in one epoch (None: endless)."""
        if self.samples_per_epoch is None:
            return None
        total = len(self)
        return total // shard.num_workers + int(shard.worker < total % shard.num_workers)

    def _config(self) -> dict[str, Any]:
        """Settings that shape the sample sequence: a resumed stream must share them."""
        return {
            "seed": self.seed,
            "batch_size": self.batch_size,
            "generation_batch": self.generation_batch,
            "drop_uncertain": self.drop_uncertain,
            "quantile_window": self.quantile_window,
            "samples_per_epoch": self.samples_per_epoch,
            "output": self.output,
            "normalize": plain(self.normalize),
            "augment": self._augment_description,
            "class_balance": plain(self.class_balance),
            "balance_min_pixels": self.balance_min_pixels,
            "soft_labels": self.soft_labels,
        }

    def _identity(self) -> dict[str, Any]:
        """What makes two streams produce the same samples: the labeler's settings
        (model fingerprints, truncation, noise, label frame, dtype) and ours."""
        return {**self.labeler().settings(), **self._config()}

    def state_dict(self) -> dict[str, Any]:
        """Where the last iterator stopped: resume it with ``load_state_dict``.

        Valid for iteration in this process (``num_workers=0``, the recommended use);
        with DataLoader workers use torchdata's ``StatefulDataLoader``, which calls it in
        every worker with each batch and hands each worker its own state back.
        Holds plain Python values and CPU tensors (the left-over samples), so it can be
        saved with ``torch.save`` next to a training checkpoint. It records what
        identifies the stream (model fingerprints and every setting that shapes the
        output) and ``load_state_dict`` refuses a stream that differs. After an
        iterator has run its epoch to the end, and until ``set_epoch``
        or the next ``iter()``, it is that finished epoch's state: loaded, it yields
        nothing, and the loop's next ``set_epoch`` goes on.
        """
        if self._resume is not None:  # loaded but not iterated yet
            return dict(self._resume)
        if self._progress is None and self._ended is not None:
            return self._ended.to_state(self._config())
        if self._progress is None:
            return fresh_state(self.epoch, self._config())
        return self._progress.to_state(self._config())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next ``iter()`` continue exactly after the state's last item.

        The stream must have the same models and settings as the one that saved the
        state; a difference raises ValueError naming the field.
        """
        check_state(state, self._config(), self._identity, self._legacy_augment_description)
        if not state.get("fresh"):
            self._check_progress_parts(state)
        self.epoch = check_epoch(state["epoch"])
        if self._epoch_signal is not None:  # the state's epoch wins over earlier set_epoch
            self._epoch_signal_seen = self._epoch_signal[1]
            self._epoch_ends_seen = self._epoch_signal[3]
        self._resume = None if state.get("fresh") else dict(state)
        self._progress = None  # the loaded state replaces any earlier iterator's
        self._finished = None
        self._ended = None

    def _check_progress_parts(self, state: dict[str, Any]) -> None:
        """Refuse a damaged quantile filter or class balancer state here, not at the next
        ``iter()``: each is loaded into a probe of this stream's settings, which checks
        everything before it changes anything."""
        probe = StreamingQuantile(self.drop_uncertain, window=self.quantile_window)
        try:
            probe.load_state_dict(state["quantile"])
        except ValueError as exc:
            raise ValueError(f"stream state: quantile: {exc}") from None
        if state["balancer"] is not None:
            # the class names come from the interpreter's metadata (no model is loaded here)
            names = _class_names(self._interpreter_src, self.preset) or self.labeler().class_names
            self._new_balancer(names).load_state_dict(state["balancer"])

    def _legacy_augment_description(self) -> str | None:
        """This stream's augmentation as states described it before tensors and arrays
        were hashed (see ``state._legacy_augment``)."""
        return describe_augment(self.augment_spec, legacy=True)

    def __iter__(self) -> Iterator[Any]:
        # a new iterator moves the stream on at once, before its first item: the state
        # of a finished epoch must not outlive it (a StatefulDataLoader's persistent
        # worker snapshots its state when it starts the next epoch)
        self._retire_iterator()
        return self._iterate()

    def _iterate(self) -> Iterator[Any]:
        self._adopt_signalled_epoch()
        shard = current_shard(self._parent_context)
        lab = self.labeler()
        device = lab.device
        epoch = self.epoch
        if self._resume is not None and self._resume["epoch"] != epoch:
            raise ValueError(
                f"the loaded stream state is at epoch {self._resume['epoch']}, but the "
                f"stream's epoch is now {epoch} (set_epoch after load_state_dict): call "
                "set_epoch before load_state_dict (which sets the state's epoch), or "
                f"set_epoch({self._resume['epoch']}) to resume the saved position"
            )
        resume = self._resume
        self._warn_on_restart(resume, epoch)
        progress = Progress(
            epoch=epoch,
            shard=shard,
            identity=self._identity(),
            unit=self.unit_size(device),
            quantile=StreamingQuantile(self.drop_uncertain, window=self.quantile_window),
            balancer=self._make_balancer(lab),
        )
        if resume is not None:
            progress.restore(resume, device)
        limit = self._items_for_shard(shard)
        if resume is not None and limit is not None and progress.items > limit:
            raise ValueError(
                f"the loaded stream state has handed out {progress.items} items, more than "
                f"this shard's {limit} per epoch: it is not this stream's state"
            )
        # used only now: a state refused above stays loaded (state_dict() returns it and
        # the next iter() refuses it again) rather than restarting the epoch silently
        self._resume = None
        self._progress = progress
        self._ended = None
        balancer = progress.balancer
        while limit is None or progress.items < limit:
            if not self.per_sample or not progress.pending_left():
                unit = self._next_unit(progress, lab)
                if not self.per_sample:
                    progress.items += 1
                    if balancer is not None:  # its rates are those of what is handed out
                        balancer.hand_out(buffer_len(unit))
                    yield self._finish(unit)
                    continue
                progress.pending, progress.offset = unit, 0
            i = progress.offset
            sample = {k: v[i] for k, v in progress.pending.items()}
            progress.offset = i + 1
            progress.items += 1
            if balancer is not None:
                balancer.hand_out(1)
            yield self._finish(sample)
        if limit is not None:
            if balancer is not None:  # once per epoch and shard, with the whole evidence
                balancer.warn_unfound()
            self.epoch = epoch + 1
            self._signal_epoch_end()
            if self._progress is progress:
                self._progress = None
                self._finished = progress  # its statistics stay readable
                self._ended = progress

    def _make_balancer(self, lab: Labeler) -> ClassBalancer | None:
        """A new iterator's balancer, from scratch: its counts and give-up evidence are
        those of this epoch and shard only, so its decisions depend only on the seed,
        epoch and shard (not on the epochs this stream object iterated before)."""
        if self.class_balance is None:
            return None
        return self._new_balancer(lab.class_names)

    def _new_balancer(self, names: list[str]) -> ClassBalancer:
        targets = resolve_targets(
            self.class_balance, names, ignore=[k for k, n in enumerate(names) if n == "background"]
        )
        assert targets is not None  # class_balance is set
        return ClassBalancer(targets, seed=self.seed, class_names=names, count_handed_out=True)

    def statistics(self) -> dict[str, Any]:
        """What the live (or last) iterator did: candidates labeled, items yielded, the
        uncertainty filter's kept share and, with ``class_balance``, the achieved
        per-class image rates of the images handed out. An iterator that finished its
        epoch stays readable until the next one starts. With DataLoader workers, each
        worker iterates its own copy of the stream, so the main process's copy has
        nothing to report (zeros)."""
        p = self._progress if self._progress is not None else self._finished
        if p is None:  # the same keys, so code written for num_workers=0 reads them
            return self._statistics_before_any_iterator()
        # the balancer holds the class names
        balance = p.balancer.statistics() if p.balancer is not None else None
        return _statistics_record(p.candidates, p.units, p.items, p.quantile.kept_fraction, balance)

    def _statistics_before_any_iterator(self) -> dict[str, Any]:
        """Zero counts (NaN kept share, as before any score) and, with
        ``class_balance``, a fresh balancer's statistics; the class names come from the
        interpreter's metadata, so no model is loaded."""
        balance = None
        if self.class_balance is not None:
            names = _class_names(self._interpreter_src, self.preset)
            if names:
                balance = self._new_balancer(names).statistics()
        return _statistics_record(0, 0, 0, math.nan, balance)

    def _warn_on_restart(self, resume: dict[str, Any] | None, epoch: int) -> None:
        prev = self._finished  # the iterator before this one (retired by __iter__)
        if (
            resume is None
            and self.samples_per_epoch is None
            and prev is not None
            and prev.epoch == epoch
            and prev.items > 0
            and not self._warned_restart
        ):
            log.warning(
                "DatasetGANStream: a new iterator restarts the endless stream at its first "
                "sample (epoch %d), repeating what the previous one yielded. Call "
                "set_epoch(n) for fresh samples, or load_state_dict(state_dict()) to continue.",
                epoch,
            )
            self._warned_restart = True

    def _next_unit(self, progress: Progress, lab: Labeler) -> Tensors:
        """Fill the buffer with kept samples, cut one unit, augment and normalise it."""
        unit_size = progress.unit
        shard = progress.shard
        empty_steps = 0
        generation = self.generation_size(lab.device)
        while buffer_len(progress.buffer) < unit_size:
            first = progress.candidates
            seeds = [
                sample_seed(self.seed, progress.epoch, (first + i) * shard.count + shard.index)
                for i in range(generation)
            ]
            labeled = lab.label(seeds, probs=self.soft_labels)
            balancer = progress.balancer
            if balancer is None:
                scores = labeled.image_uncertainty.tolist()  # the filter reads them here
                present: list[list[int]] = []
            else:  # scores and class pixel counts in one transfer
                scores, present = _scores_and_classes(
                    labeled.masks,
                    labeled.image_uncertainty,
                    len(balancer.targets),
                    self.balance_min_pixels,
                )
            labeled.check_finite(scores)
            keep = progress.quantile.keep(scores)
            if balancer is not None:
                keep = _balance(balancer, keep, present, seeds)
            kept_any = keep.numel() > 0 if keep.dtype == torch.long else bool(keep.any())
            if kept_any:
                empty_steps = 0
            else:
                empty_steps += 1
                if empty_steps >= MAX_EMPTY_STEPS:
                    raise RuntimeError(
                        f"the uncertainty filter kept none of the last "
                        f"{empty_steps * generation} images; check drop_uncertain"
                    )
            out = {
                "image": labeled.images,
                "mask": labeled.masks,
                "uncertainty": labeled.image_uncertainty,
                "seed": labeled.seeds,
            }
            if labeled.probs is not None:
                out["probs"] = labeled.probs
            kept = {k: v[keep.to(v.device)] for k, v in out.items()}  # keep: mask or indices
            # the position moves on only with the chunk in the buffer: an interrupt while
            # labelling (where the time goes) left a state past candidates never kept
            progress.buffer = concat(progress.buffer, kept)
            progress.candidates = first + generation
        buffer = progress.buffer
        unit = {k: v[:unit_size] for k, v in buffer.items()}
        rest = {k: v[unit_size:] for k, v in buffer.items()}
        if self._augment is not None:
            g = torch.Generator().manual_seed(
                derive_seed(self.seed, _SEED_AUGMENT, progress.epoch, shard.index, progress.units)
            )
            if "probs" in unit:  # soft labels: a BatchAugment (checked in __init__)
                unit["image"], unit["mask"], unit["probs"] = self._augment.with_probabilities(
                    unit["image"], unit["mask"], unit["probs"], g
                )
            else:
                out = self._augment(unit["image"], unit["mask"], g)
                # a user callable's output would otherwise become garbage samples or
                # fail deep inside (indexing, collation)
                unit["image"], unit["mask"] = check_augment_output(
                    out, unit_size, self.labeler().interpreter.num_classes
                )
        progress.buffer = rest  # taken only now: an interrupt while augmenting lost the unit
        if self._augment is not None and progress.balancer is not None:
            # report the classes of the masks handed out
            _, classes = _scores_and_classes(
                unit["mask"], None, len(progress.balancer.targets), self.balance_min_pixels
            )
            progress.balancer.relabel_waiting(classes)
        if self.normalize is not None:
            unit["image"] = normalize(unit["image"], *self.normalize)
        progress.units += 1
        return unit

    def _finish(self, item: Tensors) -> Any:
        """One yielded item: typed tensors, in the requested output, transformed."""
        # imported on first use: torchvision's import loads torch._dynamo (about 1.2 s on
        # 2 CPU cores), which every command that never iterates a stream would wait for
        from torchvision import tv_tensors

        image = tv_tensors.Image(item["image"])
        mask = tv_tensors.Mask(item["mask"])
        if self.output == "dict":
            out: Any = {
                "image": image,
                "mask": mask,
                "uncertainty": item["uncertainty"],
                "seed": item["seed"],
            }
            if "probs" in item:
                # a Mask, so that a transforms v2 ``transform`` moves the probabilities
                # with the mask (nearest resampling keeps them distributions)
                out["probs"] = tv_tensors.Mask(item["probs"])
        else:
            out = (image, mask)
        return self.transform(out) if self.transform is not None else out


#: constructor arguments held under another attribute name (``repr`` reads the rest
#: under their own)
_HELD_AS = {
    "generator": "_generator_src",
    "interpreter": "_interpreter_src",
    "augment": "augment_spec",
}


def _class_names(interpreter: Any, preset: str | None) -> list[str] | None:
    """The interpreter's class names without loading its weights: its own, else the
    Labeler's ``class_k`` for each of its classes (an interpreter without names had no
    class_balance block in the statistics before any iterator); None if unknown."""
    if isinstance(interpreter, Interpreter):
        names, count = interpreter.class_names, interpreter.num_classes
    elif interpreter is None and preset is not None:
        return list(get_preset(preset).class_names)
    else:
        path, _ = resolve_source(interpreter, "interpreter")
        meta = read_interpreter_metadata(path)
        names, count = meta.get("class_names"), meta.get("num_classes")
    if names:
        return list(names)
    return [f"class_{k}" for k in range(count)] if isinstance(count, int) else None


def _scores_and_classes(
    masks: torch.Tensor,
    scores: torch.Tensor | None,
    num_classes: int,
    min_pixels: int = 1,
) -> tuple[list[float], list[list[int]]]:
    """Image scores (if given) and, per image, the classes with at least ``min_pixels``
    labeled pixels, in one transfer to the host."""
    flat = masks.flatten(1).long().clamp(min=0, max=num_classes)  # ignore (255) -> K
    counts = torch.zeros(flat.shape[0], num_classes + 1, device=flat.device)
    counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=counts.dtype))
    columns = [counts[:, :num_classes]]
    if scores is not None:
        columns.insert(0, scores.float().to(counts.device)[:, None])
    values = torch.cat(columns, 1).tolist()
    offset = 0 if scores is None else 1
    present = present_classes([r[offset:] for r in values], min_pixels)
    return [r[0] for r in values] if scores is not None else [], present


def _statistics_record(
    candidates: int, units: int, items: int, kept: float, balance: dict[str, Any] | None
) -> dict[str, Any]:
    """The one record ``statistics()`` gives, before and after an iterator alike."""
    stats: dict[str, Any] = {
        "candidates": candidates,
        "units": units,
        "items": items,
        "kept_by_uncertainty": kept,
    }
    if balance is not None:
        stats["class_balance"] = balance
    return stats


def _balance(
    balancer: ClassBalancer, keep: torch.Tensor, present: list[list[int]], seeds: list[int]
) -> torch.Tensor:
    """Indices of the candidates to hand out (repeats included), in candidate order."""
    index: list[int] = []
    for i, ok in enumerate(keep.tolist()):
        if ok:
            index += [i] * balancer.decide(present[i], seeds[i])
    return torch.tensor(index, dtype=torch.long)


def expected_batches(samples_per_epoch: int, batch_size: int) -> int:
    """Batches per rank and epoch for a given ``samples_per_epoch`` (rounded down), in
    integer arithmetic (exact for any size); ValueError for a non-int or negative
    ``samples_per_epoch`` or a ``batch_size`` below 1."""
    samples_per_epoch = check_int(samples_per_epoch, "samples_per_epoch", 0)
    batch_size = check_int(batch_size, "batch_size", 1)
    return samples_per_epoch // batch_size


#: How many windows past the first candidate ``_smallest_window`` tries.
_MAX_WINDOW_SEARCH = 1 << 20


def _check_window(window: int, drop: float) -> None:
    """Refuse a ``quantile_window`` too small for ``drop_uncertain``: the filter drops
    ``uncertainty.num_dropped(n, drop) = floor(drop * n)`` of n window scores (the very
    count it uses), none when window * drop < 1, and every one when the product rounds up
    to the window (a drop within 1e-9 of 1: 0.9999999999 of 5 scores is 5)."""
    dropped = num_dropped(window, drop)
    if 0 < dropped < window:
        return
    smallest = _smallest_window(drop)
    if dropped >= window:
        raise ValueError(
            f"quantile_window={window} is too small for drop_uncertain={drop}: it would drop "
            f"all {window} scores of the window, so every image. Use quantile_window >= "
            f"{smallest}, or a smaller drop_uncertain"
        )
    raise ValueError(
        f"quantile_window={window} is too small for drop_uncertain={drop}: a window under "
        f"1 / drop_uncertain never drops an image (the filter would be off). Use "
        f"quantile_window >= {smallest}, or drop_uncertain=0"
    )


def _smallest_window(drop: float) -> int:
    """The smallest window n whose filter drops some but not all of its scores
    (``0 < num_dropped(n, drop) < n``), searched from about ``1 / drop``."""
    start = max(1, math.ceil(1.0 / drop) - 1)
    n = start
    while not 0 < num_dropped(n, drop) < n and n < start + _MAX_WINDOW_SEARCH:
        n += 1
    return n
