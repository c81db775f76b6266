"""``dgan-data demo``: what DatasetGAN buys, measured offline on the toy world.

The same student network (same architecture, same initial weights, same augmentation,
same number of steps and batch size) is trained several ways and scored on real toy
test renders, whose masks are exact:

(a) **DatasetGAN**: on the preset's stream, whose interpreter was trained on 16
    annotated generated images (at the preset's truncation, and with ``--full`` also
    at psi 1.0, the untruncated generator, like the real renders);
(b) **few-shot baseline**: on 16 real renders with exact masks, the same amount of
    human labeling as (a); (b') the same 16 renders labeled by the toy "human" (the
    reference annotator, a U-Net trained on 6,000 real renders), the label source of (a);
(c) **fully supervised reference**: on 5,000 real renders with exact masks.

The student is a U-Net with skips down to stride 2 (the annotator's architecture), so
2-3 px parts (pupils, nostrils, teeth) are within its reach; ``--arch deeplabv3plus``
gives the earlier DeepLab. Each arm runs ``draws`` times with different training
seeds and different 16-image draws (mean +- std over draws). It prints a per-class IoU
table with timing, writes ``results.json`` (every number, the seeds, the hardware and
versions, learning curves with ``--full``) and ``figure.png`` (test images, ground
truth and the predictions).

Real renders (arms b, b', c and the test set) come from the toy world the preset's
generator was trained on (:func:`dgan_data.toy.preset.toy_world_of`): ``toyface-14``
the base world, ``toyface-14-wide`` the wide one, with that world's annotator as the
human. A preset of one's own is compared with the base world unless
:attr:`DemoConfig.world` (``--world``) names its world.

The CPU default (one draw, :data:`DEFAULT_STEPS` steps) takes about 8 minutes on an
idle 2-core CPU; ``--full`` is the converged schedule meant for a GPU (see
:meth:`DemoConfig.full_config`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..augment import BatchAugment
from ..conventions import check_number, check_truncation_psi, is_count, keyword_hints
from ..fileio import (
    atomic_torch_save,
    file_sha256,
    folder_lock,
    output_path_problem,
    write_json,
)
from ..interpreter import Interpreter
from ..metrics import five_fold_protocol
from ..presets import get_preset, resolve_preset_file
from ..seeds import MAX_SEED
from ..stream import DatasetGANStream
from ..stream.workers import resumable_stream_loader
from ..toy.annotator import annotate, load_annotator, toy_annotator_path
from ..toy.preset import toy_world_of
from ..toy.render import CLASS_NAMES, NUM_CLASSES, SPLITS, VARIATIONS, split_seeds
from .demo_report import (
    Arm,
    aggregate_arm,
    figure_title,
    format_table,
    json_ready,
    plateau,
    run_summary,
    run_summary_problem,
    write_figure,
)
from .models import _guarded_torch_load
from .train import (
    ResumableBatches,
    build_segmentation_model,
    environment_info,
    evaluate,
    real_batches,
    render_batches,
    render_labeled,
    torch_threads,
    train_segmentation,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LR",
    "DEFAULT_STEPS",
    "DemoConfig",
    "format_table",
    "run_demo",
    "write_figure",
]

log = logging.getLogger(__name__)

#: Optimiser steps of every arm in the CPU default (about 8 minutes on 2 idle cores).
DEFAULT_STEPS = 400
#: Images per step of every arm.
DEFAULT_BATCH_SIZE = 8
#: Peak learning rate (AdamW, warm-up then cosine decay).
DEFAULT_LR = 3e-3
#: First pool seed of the few-shot draws: draw d takes pool seeds 9000 + 16 d ... The
#: annotator trained on pool seeds 0-5999, the supervised arm uses 0-4999 and the
#: validation set 8000-8199, so the 16 images are fresh to the annotator.
FEWSHOT_START = 9000
#: Validation renders (pool seeds 8000 ...) for the learning curves of ``--full``.
VALIDATION_START = 8000
_FEWSHOT = 16
#: Stream worker processes of arm (a) on a CPU when ``stream_workers`` is None.
DEFAULT_CPU_STREAM_WORKERS = 2
#: Memory bounds of the settings (a batch, the stream pool held in memory, threads).
MAX_BATCH_SIZE = 4096
MAX_STREAM_POOL = 100_000
MAX_THREADS = 1024
#: Most draws: draw d takes pool seeds FEWSHOT_START + 16 d, inside the pool split.
MAX_DRAWS = (len(SPLITS["pool"]) - FEWSHOT_START) // _FEWSHOT


@keyword_hints
@dataclass
class DemoConfig:
    """Settings of :func:`run_demo` (the CLI flags of ``dgan-data demo``)."""

    out: Path = Path("dgan-demo")
    preset: str = "toyface-14"
    #: The toy world of the real arms and the test set (and the annotator that labels
    #: (b')); None: the world the preset was built on (base for a preset not shipped).
    world: str | None = None
    steps: int = DEFAULT_STEPS
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    test_count: int = 500
    pool_count: int = 5000
    seed: int = 0
    device: str | None = None
    threads: int | None = None
    stream_workers: int | None = None
    arch: str = "unet"
    draws: int = 1
    #: Truncations of arm (a): None = the preset's; ``--full`` adds 1.0.
    stream_psi: tuple[float, ...] | None = None
    #: None: arm (a) trains on the live stream; N: on N stream samples made once.
    stream_pool: int | None = None
    #: Learning-curve evaluations on the validation renders every this many steps (0: off).
    eval_every: int = 0
    validation_count: int = 200
    figure_rows: int = 6
    quick: bool = False
    full: bool = False
    progress: bool = True

    @classmethod
    def quick_config(cls, **overrides: Any) -> DemoConfig:
        """A few steps of each arm on a tiny test subset: checks the pipeline in seconds."""
        quick = {
            "steps": 3,
            "batch_size": 2,
            "test_count": 10,
            "pool_count": 32,
            "figure_rows": 3,
            "stream_workers": 0,
            "validation_count": 8,
        }
        return cls(**{**quick, **overrides, "quick": True})

    @classmethod
    def full_config(cls, **overrides: Any) -> DemoConfig:
        """The converged schedule (meant for a GPU; hours on a CPU): 6,000 steps of 16
        images, three draws, learning curves every 500 steps on 200 validation renders
        (the fully supervised arm must plateau: within 1 mIoU over its last 20 % of
        steps, checked and reported), arm (a) at the preset's psi and at psi 1.0."""
        full = {
            "steps": 6000,
            "batch_size": 16,
            "draws": 3,
            "eval_every": 500,
            "test_count": 1000,
        }
        return cls(**{**full, **overrides, "full": True})


# --------------------------------------------------------------------- helpers
def _check_preset(name: str) -> Any:
    """The preset, which must label the toy world's classes (the test set is toy renders)."""

    preset = get_preset(name)
    if tuple(preset.class_names) != tuple(CLASS_NAMES):
        raise ValueError(
            f"the demo scores on toy renders with the toy classes {list(CLASS_NAMES)}; "
            f"preset {preset.name!r} has {list(preset.class_names)[:6]}... Use a toy preset "
            "(toyface-14) or train on your own data with examples/train_deeplab.py"
        )
    return preset


def _interpreter_info(preset_name: str) -> dict[str, Any]:
    """What the results file should say about the preset's interpreter."""

    path = resolve_preset_file(preset_name, "interpreter")
    interp = Interpreter.load(path)
    info = {
        "file": path.name,
        "num_models": interp.num_models,
        "label_size": list(interp.label_size) if interp.label_size else None,
        "fingerprint": interp.fingerprint,
    }
    for key in ("num_images", "num_annotations", "truncation_psi", "steps", "max_steps"):
        if key in interp.training_info:
            info[key] = interp.training_info[key]
    return info


def _reference_annotator(world: str) -> dict[str, Any] | None:
    """The world's shipped reference annotator's published scores (a U-Net: context, not
    an arm)."""

    meta = toy_annotator_path(world).with_suffix(".json")
    if not meta.is_file():
        return None
    data = json.loads(meta.read_text())
    return {
        "arch": f"{data.get('arch')} ({data.get('encoder')}, depth {data.get('encoder_depth')})",
        "test_miou": data.get("test_miou"),
        "train_split": data.get("train_split"),
        "steps": data.get("training", {}).get("steps"),
        "batch_size": data.get("training", {}).get("batch_size"),
        "note": "the toy 'human' that labels arm (a)'s annotations and arm (b'): context only",
    }


def _default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, torch.get_num_threads()))


# ------------------------------------------------------------------------ demo
def _psi_text(psi: float) -> str:
    """A truncation as arm names and labels show it (6 significant digits)."""
    return f"{psi:g}"


def _arms(cfg: DemoConfig, preset_psi: float) -> list[Arm]:
    psis = list(cfg.stream_psi) if cfg.stream_psi else [preset_psi]
    if cfg.full and not cfg.stream_psi and 1.0 not in psis:
        psis.append(1.0)
    arms = []
    for psi in psis:
        key = "a" if psi == psis[0] else f"a@{_psi_text(psi)}"
        arms.append(
            Arm(
                key,
                f"DatasetGAN psi {_psi_text(psi)}",
                f"DatasetGAN stream at truncation psi {_psi_text(psi)} (interpreter trained on "
                "16 annotated generated samples)",
                psi,
            )
        )
    arms += [
        Arm("b", "16 real, exact", "16 real renders with exact masks"),
        Arm(
            "b'",
            "16 real, annotator",
            "the same 16 real renders labeled by the toy annotator (the human of (a))",
        ),
        Arm("c", f"{cfg.pool_count:,} real", f"{cfg.pool_count:,} real renders with exact masks"),
    ]
    return arms


def _check_config(cfg: DemoConfig) -> None:
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.draws < 1:
        raise ValueError(
            f"steps, batch size and draws must be >= 1, got {cfg.steps}, {cfg.batch_size}, "
            f"{cfg.draws}"
        )
    if not 5 <= cfg.test_count <= len(SPLITS["test"]):
        raise ValueError(
            f"test_count must be in 5..{len(SPLITS['test'])} (5-fold protocol; the toy test "
            f"split holds {len(SPLITS['test'])} renders), got {cfg.test_count}"
        )
    if cfg.batch_size > MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be at most {MAX_BATCH_SIZE}, got {cfg.batch_size}")
    if cfg.draws > MAX_DRAWS:
        raise ValueError(
            f"draws must be at most {MAX_DRAWS} (draw d takes pool seeds {FEWSHOT_START} + "
            f"16 d of {len(SPLITS['pool'])}), got {cfg.draws}"
        )
    if cfg.seed + cfg.draws - 1 >= MAX_SEED:
        raise ValueError(
            f"seed + draws - 1 must be below 2**63 (draw d uses seed + d), got seed "
            f"{cfg.seed} with {cfg.draws} draws"
        )
    if cfg.threads is not None and not 1 <= cfg.threads <= MAX_THREADS:
        raise ValueError(f"threads must be in 1..{MAX_THREADS}, got {cfg.threads}")
    if cfg.stream_pool is not None and cfg.stream_pool > MAX_STREAM_POOL:
        raise ValueError(f"stream_pool must be at most {MAX_STREAM_POOL}, got {cfg.stream_pool}")
    if cfg.pool_count < _FEWSHOT or cfg.pool_count > VALIDATION_START:
        raise ValueError(
            f"pool_count must be in {_FEWSHOT}..{VALIDATION_START}, got {cfg.pool_count}"
        )
    if cfg.stream_pool is not None and cfg.stream_pool < cfg.batch_size:
        raise ValueError(f"stream_pool must hold at least one batch, got {cfg.stream_pool}")
    if cfg.stream_pool and cfg.stream_workers:
        # the pool is made once in the main process: workers were recorded but never ran
        raise ValueError(
            f"stream_workers ({cfg.stream_workers}) is for the live stream; with stream_pool "
            "arm (a) trains on a fixed set made once, without workers: leave it out or 0"
        )
    if cfg.world is not None and cfg.world not in VARIATIONS:
        raise ValueError(f"unknown toy world {cfg.world!r}; valid: {', '.join(VARIATIONS)}")
    # the API's settings that the command line checks when parsed: lr=0 rendered the test
    # set into a new out folder before train_segmentation refused it
    lr = check_number(cfg.lr, "lr", low=0.0)
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {cfg.lr}")
    if cfg.eval_every < 0:
        raise ValueError(f"eval_every must be >= 0 (0: no learning curve), got {cfg.eval_every}")
    if cfg.figure_rows < 1:
        raise ValueError(f"figure_rows must be >= 1, got {cfg.figure_rows}")
    most = FEWSHOT_START - VALIDATION_START  # beyond it, validation takes the 16 images
    if cfg.eval_every and not 1 <= cfg.validation_count <= most:
        raise ValueError(
            f"validation_count must be in 1..{most} (validation renders are pool seeds "
            f"{VALIDATION_START}.., the 16 images of each draw {FEWSHOT_START}..), got "
            f"{cfg.validation_count}"
        )
    psis = [check_truncation_psi(psi, "stream_psi values") for psi in cfg.stream_psi or ()]
    if len(set(psis)) != len(psis):
        raise ValueError(f"stream_psi values must differ (one arm each), got {psis}")
    named: dict[str, float] = {}
    for psi in psis:  # arms are named by psi:g: 0.5 and 0.5000001 made one arm of two runs
        other = named.setdefault(_psi_text(psi), psi)
        if other != psi:
            raise ValueError(
                f"stream_psi values {other!r} and {psi!r} share the arm name "
                f"a@{_psi_text(psi)} (6 significant digits): give values that differ there"
            )


@keyword_hints
def run_demo(config: DemoConfig, report: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Train and score every arm ``draws`` times; write ``results.json`` and
    ``figure.png`` in ``config.out``; return the results dict.

    One demo per folder at a time: the folder is locked (``fileio.folder_lock``) while
    the demo runs, and a second demo into it raises ``FolderBusyError`` (two shared the
    run records and the partial checkpoints, which each one deleted when it finished).
    """
    _check_config(config)
    out = Path(config.out)
    problem = output_path_problem(out, folder=True)
    if problem is not None:
        raise ValueError(f"{out}: {problem}; the demo needs a folder for its results")
    with folder_lock(out, "demo folder"):
        return _run_demo(config, report)


def _run_demo(config: DemoConfig, report: Callable[[str], None]) -> dict[str, Any]:
    """:func:`run_demo` in its locked folder (config and folder checked, folder made)."""
    t_start = time.perf_counter()
    cfg = config
    preset = _check_preset(cfg.preset)
    out = Path(cfg.out)
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    threads = cfg.threads or _default_threads()
    torch.set_num_threads(threads)
    workers = cfg.stream_workers
    if workers is None:
        # Arm (a)'s batches depend on the worker count (workers hand out the samples in
        # another order), so the default does not follow --threads: 2 generating
        # processes on any CPU, none on a GPU or for a stream pool.
        workers = 0 if device.type != "cpu" or cfg.stream_pool else DEFAULT_CPU_STREAM_WORKERS
    if workers and device.type != "cpu":
        raise ValueError("stream workers are for CPU streams; on CUDA the stream runs on the GPU")
    augment = BatchAugment()
    class_names = list(CLASS_NAMES)
    size = 64
    frame = tuple(preset.label_resolution)
    if frame != (size, size):
        raise ValueError(f"the toy demo needs 64x64 labels; preset {preset.name} has {frame}")
    # Fail early (missing preset files) before any training.
    DatasetGANStream(preset.name, batch_size=cfg.batch_size, device=device)
    interp_info = _interpreter_info(preset.name)
    world = cfg.world or toy_world_of(preset.name)
    annotator = load_annotator(toy_annotator_path(world))

    t0 = time.perf_counter()
    test_images, test_masks = render_labeled("test", cfg.test_count, size=size, variation=world)
    val = None
    if cfg.eval_every:
        val = render_labeled(
            "pool", cfg.validation_count, start=VALIDATION_START, size=size, variation=world
        )
    render_seconds = time.perf_counter() - t0
    arms = _arms(cfg, preset.truncation_psi)
    report(
        f"dgan-data demo: {cfg.steps} steps x {cfg.batch_size} images per arm, {cfg.draws} "
        f"draw(s), {cfg.arch} student, test on {cfg.test_count} toy renders ({world} world), "
        f"{device}, {threads} thread(s)" + (f", {workers} stream worker(s)" if workers else "")
    )
    rows = np.unique(np.linspace(0, cfg.test_count - 1, cfg.figure_rows).round().astype(int))
    files = {
        "generator": file_sha256(resolve_preset_file(preset.name, "generator")),
        # its weights: the fingerprint in interp_info is the generator's
        "interpreter": file_sha256(resolve_preset_file(preset.name, "interpreter")),
        "annotator": file_sha256(toy_annotator_path(world)),
    }
    finished = FinishedRuns(out, _run_digest(cfg, device, workers, world, interp_info, files))
    runs: dict[str, list[dict[str, Any]]] = {a.key: [] for a in arms}
    predictions: dict[str, torch.Tensor] = {}
    with torch.random.fork_rng(devices=[]):  # the config only (a rerun may train nothing)
        model_config = dict(build_segmentation_model(NUM_CLASSES, cfg.arch, image_size=size).config)
    fewshot_draws = []
    for draw in range(cfg.draws):
        seed = cfg.seed + draw
        start = FEWSHOT_START + _FEWSHOT * draw
        few_images, few_masks = render_labeled(
            "pool", _FEWSHOT, start=start, size=size, variation=world
        )
        few_annotated = annotate(annotator, few_images)
        fewshot_draws.append([int(s) for s in split_seeds("pool", start, _FEWSHOT)])
        for arm in arms:
            done = finished.load(arm.key, draw, class_names, (len(rows), size, size))
            if done is not None:
                summary, prediction = done
                runs[arm.key].append(summary)
                if draw == 0 and prediction is not None:
                    predictions[arm.key] = prediction
                report(
                    f"({arm.key}) {arm.label}, draw {draw}: mIoU {100 * summary['miou']:.1f}, "
                    f"reused from {finished.path(arm.key, draw)}"
                )
                continue
            torch.manual_seed(seed)  # identical initial weights in every arm of a draw
            net = build_segmentation_model(NUM_CLASSES, cfg.arch, image_size=size).to(device)
            source, position = _source(
                arm,
                cfg,
                preset.name,
                world,
                seed,
                device,
                augment,
                workers,
                (few_images, few_masks, few_annotated),
            )
            main_threads = (
                max(1, threads - workers) if arm.key.startswith("a") and workers else threads
            )
            eval_fn = None
            if val is not None:

                def eval_fn(model: torch.nn.Module, step: int) -> dict[str, Any]:
                    m = evaluate(model, val, NUM_CLASSES)
                    return {"val_miou": m["miou"]}

            checkpoints: dict[str, Any] = {}  # an arm whose source keeps no position: none
            if position is not None:  # checkpoints while it trains: it resumes exactly
                checkpoints = {
                    "checkpoint_dir": finished.partial(arm.key, draw),
                    "checkpoint_every": checkpoint_interval(cfg.steps),
                    "resumable_source": position,
                }
            resumed_at = finished.resume_step(arm.key, draw) if checkpoints else None
            if resumed_at is not None:
                report(f"({arm.key}) {arm.label}, draw {draw}: resuming at step {resumed_at}")
            with torch_threads(main_threads):
                t_arm = time.perf_counter()
                history = train_segmentation(
                    net,
                    source,
                    cfg.steps,
                    lr=cfg.lr,
                    device=device,
                    progress=cfg.progress,
                    desc=f"({arm.key}) draw {draw}",
                    eval_fn=eval_fn,
                    eval_every=cfg.eval_every,
                    resume=resumed_at is not None,
                    **checkpoints,
                )
                train_seconds = time.perf_counter() - t_arm
                if resumed_at is not None:  # its time before the interruption included
                    train_seconds = history.total_seconds
            t_eval = time.perf_counter()
            metrics = evaluate(net, (test_images, test_masks), NUM_CLASSES, keep_per_image=True)
            cv = five_fold_protocol({cfg.steps: metrics["per_image"]}, seed=seed)
            if draw == 0:
                with torch.no_grad():
                    predictions[arm.key] = net(test_images[rows].to(device)).argmax(1).cpu()
            eval_seconds = time.perf_counter() - t_eval
            summary = run_summary(
                metrics,
                cv,
                history,
                class_names,
                train_seconds,
                eval_seconds,
                main_threads,
                workers if arm.key.startswith("a") else 0,
                seed,
            )
            if resumed_at is not None:
                summary["resumed_at_step"] = resumed_at
            runs[arm.key].append(summary)
            finished.save(arm.key, draw, summary, predictions.get(arm.key) if draw == 0 else None)
            report(
                f"({arm.key}) {arm.label}, draw {draw}: mIoU {100 * metrics['miou']:.1f} "
                f"(5-fold {100 * cv.mean:.1f} +- {100 * cv.std:.1f}), train {train_seconds:.0f} s"
            )
            del net

    results = {
        "demo": "dgan-data demo",
        "quick": cfg.quick,
        "full": cfg.full,
        "config": config_dict(cfg),
        "preset": preset.name,
        "world": world,
        "interpreter": interp_info,
        "steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "draws": cfg.draws,
        "lr": cfg.lr,
        "model": model_config,
        "optimizer": "AdamW, weight decay 1e-4, 5 % linear warm-up, cosine decay to 1 %",
        "loss": "cross-entropy, ignore_index 255",
        "augment": repr(augment),
        "test": {
            "split": "test",
            "world": world,
            "count": cfg.test_count,
            "seeds": [
                int(split_seeds("test", 0, 1)[0]),
                int(split_seeds("test", 0, 1)[0]) + cfg.test_count - 1,
            ],
            "masks": "exact (rendered)",
            "five_fold": "final model; mean +- std of the mIoU on the 4 other folds, per fold",
        },
        "class_names": class_names,
        "arms": {a.key: aggregate_arm(a, runs[a.key], class_names) for a in arms},
        "plateau": plateau(runs.get("c", []), cfg.steps),
        "reference_annotator": _reference_annotator(world),
        "human": (
            f"the toy annotator: a U-Net trained on 6,000 real {world}-world renders with "
            "exact masks"
        ),
        "seeds": {
            "seed": cfg.seed,
            "model_init": [cfg.seed + d for d in range(cfg.draws)],
            "stream_seed": [cfg.seed + d for d in range(cfg.draws)],
            "fewshot_seeds": fewshot_draws[0],
            "fewshot_draws": fewshot_draws,
            "pool_seeds": [
                int(split_seeds("pool", 0, 1)[0]),
                int(split_seeds("pool", 0, 1)[0]) + cfg.pool_count - 1,
            ],
            "pool_count": cfg.pool_count,
        },
        "threads": threads,
        "render_seconds": render_seconds,
        **environment_info(device),
    }
    results["hardware"]["torch_threads"] = threads
    figure = write_figure(
        out / "figure.png",
        test_images[rows],
        test_masks[rows],
        predictions,
        class_names,
        title=figure_title(results),
    )
    results["figure"] = figure.name
    results["total_seconds"] = time.perf_counter() - t_start
    path = out / "results.json"
    write_json(path, json_ready(results))
    report("\n" + format_table(results))
    report(f"\nwrote {path} and {figure} in {results['total_seconds'] / 60:.1f} min")
    return results


def checkpoint_interval(steps: int) -> int:
    """Steps between an arm's checkpoints: every 5 % of its steps, at least 50 (a
    checkpoint writes the student, its optimiser and the batch source's position)."""
    return max(50, steps // 20)


def _run_digest(
    cfg: DemoConfig,
    device: torch.device,
    workers: int,
    world: str,
    interpreter: Any,
    files: dict[str, str],
) -> str:
    """What a finished run's numbers depend on: every setting but the output folder,
    progress bars and threads, and the device type, stream workers (as used, not as
    set), world, the preset's interpreter, the generator, interpreter and annotator files
    (sha256) and the package version."""
    settings = {k: v for k, v in config_dict(cfg).items() if k not in _NOT_IN_DIGEST}
    record = {
        "config": settings,
        "device": device.type,
        "stream_workers": workers,
        "world": world,
        "interpreter": json_ready(interpreter),
        "files": files,
        "version": __version__,
    }
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# device and stream_workers as set (None, "cpu", 0 ...): the digest holds the values used
_NOT_IN_DIGEST = frozenset({"out", "progress", "threads", "device", "stream_workers"})


class FinishedRuns:
    """Each finished (arm, draw) of a demo, saved as ``<out>/runs/<digest>_<arm>_<draw>.pt``
    (its summary and, for draw 0, its figure predictions) the moment it ends, so a rerun
    of the same settings into the same ``--out`` trains only what is missing; a run of
    other settings has another digest and never reuses them."""

    def __init__(self, out: Path, digest: str) -> None:
        self.folder = Path(out) / "runs"
        self.digest = digest

    def path(self, arm: str, draw: int) -> Path:
        name = arm.replace("'", "p")  # (b') -> bp: no quotes in file names
        return self.folder / f"{self.digest}_{name}_draw{draw}.pt"

    def partial(self, arm: str, draw: int) -> Path:
        """The checkpoint folder of an (arm, draw) still in training."""
        return self.path(arm, draw).with_suffix(".partial")

    def resume_step(self, arm: str, draw: int) -> int | None:
        """The step a checkpoint of an unfinished (arm, draw) reached, or None (no
        checkpoint; a damaged one is logged and removed, the arm starts over)."""
        last = self.partial(arm, draw) / "last.pt"
        if not last.is_file():
            return None
        try:
            state = _guarded_torch_load(last)  # a file that would take more memory is refused
            step = state["step"] if isinstance(state, dict) else None
            if not is_count(step):
                raise ValueError(f"no valid step ({step!r:.40})")
        except Exception as err:  # damaged or foreign: the arm starts over
            log.warning("%s: unusable checkpoint (%s); the arm starts over", last, err)
            shutil.rmtree(self.partial(arm, draw), ignore_errors=True)
            return None
        return step

    def save(
        self, arm: str, draw: int, summary: dict[str, Any], prediction: torch.Tensor | None
    ) -> None:
        record: dict[str, Any] = {"summary": json.dumps(_plain(summary))}
        if prediction is not None:
            record["prediction"] = prediction.cpu()
        atomic_torch_save(record, self.path(arm, draw))
        shutil.rmtree(self.partial(arm, draw), ignore_errors=True)  # its checkpoints

    def load(
        self,
        arm: str,
        draw: int,
        class_names: Iterable[str] = CLASS_NAMES,
        prediction_shape: tuple[int, int, int] | None = None,
    ) -> tuple[dict[str, Any], torch.Tensor | None] | None:
        """The saved run, or None when there is none (a damaged file, or one whose summary
        or prediction is not what :meth:`save` writes for ``class_names`` and a figure of
        ``prediction_shape`` ``(rows, H, W)``, is logged and trained again)."""
        class_names = list(class_names)
        path = self.path(arm, draw)
        if not path.is_file():
            return None
        try:
            record = _guarded_torch_load(path)  # a file that would take more memory is refused
            if not isinstance(record, dict) or not isinstance(record.get("summary"), str):
                raise ValueError("no run summary")
            summary = json.loads(record["summary"])
            problem = run_summary_problem(summary, class_names)
            prediction = record.get("prediction")
            problem = problem or _prediction_problem(
                prediction, draw, len(class_names), prediction_shape
            )
            if problem:
                raise ValueError(problem)
        except Exception as err:  # damaged or foreign: train the arm again
            log.warning("%s: unusable finished run (%s); training it again", path, err)
            return None
        return summary, prediction


def _prediction_problem(
    prediction: Any, draw: int, num_classes: int, shape: tuple[int, int, int] | None
) -> str | None:
    """Draw 0's figure predictions: an int64 tensor of ``shape`` (rows, H, W), as the
    student's argmax, with class ids in 0..K-1; other draws save none."""
    if prediction is None:
        return "no figure predictions" if draw == 0 else None
    if not isinstance(prediction, torch.Tensor) or prediction.dtype != torch.int64:
        return f"the prediction is not an int64 tensor ({_tensor_kind(prediction)})"
    if prediction.dim() != 3 or (shape is not None and tuple(prediction.shape) != shape):
        return f"the prediction has shape {tuple(prediction.shape)}, not {shape or '(rows, H, W)'}"
    if prediction.numel() and not 0 <= int(prediction.min()) <= int(prediction.max()) < num_classes:
        return f"the prediction holds ids outside 0..{num_classes - 1}"
    return None


def _tensor_kind(value: Any) -> str:
    """A tensor's dtype, or another value's type, for a message."""
    return str(value.dtype) if isinstance(value, torch.Tensor) else type(value).__name__


def _plain(value: Any) -> Any:
    """numpy scalars -> Python, recursively (NaN kept: JSON text round-trips it)."""
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _source(
    arm: Arm,
    cfg: DemoConfig,
    preset: str,
    world: str,
    seed: int,
    device: torch.device,
    augment: Any,
    workers: int,
    few: tuple[torch.Tensor, ...],
) -> tuple[Iterable[Any], Any | None]:
    """The batches an arm trains on (real ones rendered in the toy world ``world``), and
    what holds their position for a checkpoint (None: the arm cannot resume mid-way)."""
    few_images, few_masks, few_annotated = few

    def fixed_set(images: torch.Tensor, masks: torch.Tensor) -> tuple[Any, Any]:
        batches = ResumableBatches(
            lambda start: real_batches(
                images, masks, cfg.batch_size, augment, seed=seed, device=device,
                start_batch=start,
            )
        )  # fmt: skip
        return batches, batches

    if arm.key in ("b", "b'"):
        return fixed_set(few_images, few_masks if arm.key == "b" else few_annotated)
    if arm.key == "c":
        batches = ResumableBatches(
            lambda start: render_batches(
                "pool", cfg.batch_size, count=cfg.pool_count, augment=augment, seed=seed,
                size=64, device=device, variation=world, start_batch=start,
            )
        )  # fmt: skip
        return batches, batches
    if cfg.stream_pool:  # a finite set of stream samples, made once (DatasetGAN's own way)
        stream = DatasetGANStream(
            preset,
            batch_size=min(64, cfg.stream_pool),
            seed=seed,
            truncation_psi=arm.psi,
            device=device,
        )
        images, masks, n = [], [], 0
        for batch_images, batch_masks in stream:
            images.append(batch_images.cpu())
            masks.append(batch_masks.cpu())
            n += len(batch_images)
            if n >= cfg.stream_pool:
                break
        return fixed_set(torch.cat(images)[: cfg.stream_pool], torch.cat(masks)[: cfg.stream_pool])
    stream = DatasetGANStream(
        preset,
        batch_size=cfg.batch_size,
        augment=augment,
        seed=seed,
        truncation_psi=arm.psi,
        device=device,
    )
    return resumable_stream_loader(stream, workers)


def config_dict(config: DemoConfig) -> dict[str, Any]:
    """The config as plain JSON values."""
    return json_ready(asdict(config))
