"""``dgan-data demo``: what DatasetGAN buys, measured offline on the toy world.

The same DeepLab (same architecture, same initial weights, same augmentation, same
number of steps and batch size) is trained three ways and scored on real toy test
renders, whose masks are exact:

(a) **DatasetGAN**: on the live stream of the preset, whose interpreter was trained on
    16 annotated generated images;
(b) **few-shot baseline**: on 16 real labeled renders (the first 16 seeds of the
    ``pool`` split), the same amount of human labeling as (a);
(c) **fully supervised reference**: on 5,000 real labeled renders of the ``pool`` split.

It prints a per-class IoU table with the wall time and the split of every step into
data time (stream generation, rendering) and optimisation time, writes
``results.json`` (every number, the seeds, the hardware and versions) and
``figure.png`` (test images, ground truth and the three predictions).

The defaults take about 12 minutes on an idle 2-core CPU (see :data:`DEFAULT_STEPS`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch.utils.data import DataLoader

from ..augment import BatchAugment
from ..fileio import atomic_write, write_json
from ..interpreter import Interpreter
from ..metrics import five_fold_protocol
from ..presets import get_preset, resolve_preset_file
from ..stream import DatasetGANStream
from ..toy.annotator import DEFAULT_ANNOTATOR_PATH
from ..toy.render import CLASS_NAMES, NUM_CLASSES, PALETTE, split_seeds
from ..viz import legend, overlay, to_uint8_image
from .train import (
    build_deeplab,
    environment_info,
    evaluate,
    metrics_summary,
    real_batches,
    render_batches,
    render_labeled,
    torch_threads,
    train_segmentation,
)

__all__ = [
    "ARMS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LR",
    "DEFAULT_STEPS",
    "DemoConfig",
    "format_table",
    "run_demo",
    "write_figure",
]

log = logging.getLogger(__name__)

#: Optimiser steps of every arm. From a 20-step probe of all three arms on an idle
#: 2-core CPU (1.67 s per step of the three arms together, 25 s of rendering,
#: evaluation and set-up): about 11.5 minutes in all, leaving 20 % of the 15-minute
#: budget for slower machines (see the README's demo section).
DEFAULT_STEPS = 400
#: Images per step of every arm.
DEFAULT_BATCH_SIZE = 8
#: Peak learning rate (AdamW). Short runs from random init: 3e-3 beat 1e-3 on the toy
#: renders (test mIoU 0.25 vs 0.23 after 200 steps of arm (c)).
DEFAULT_LR = 3e-3
#: The three arms: key, short label, what the DeepLab trains on.
ARMS: tuple[tuple[str, str, str], ...] = (
    ("a", "DatasetGAN", "live DatasetGAN stream (interpreter trained on 16 annotated samples)"),
    ("b", "few-shot", "16 real labeled renders (pool split, first 16 seeds), same augmentation"),
    ("c", "supervised", "5,000 real labeled renders (pool split), same augmentation"),
)
_FEWSHOT = 16


@dataclass
class DemoConfig:
    """Settings of :func:`run_demo` (the CLI flags of ``dgan-data demo``)."""

    out: Path = Path("dgan-demo")
    preset: str = "toyface-14"
    steps: int = DEFAULT_STEPS
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    test_count: int = 500
    pool_count: int = 5000
    seed: int = 0
    device: str | None = None
    threads: int | None = None
    stream_workers: int | None = None
    arch: str = "deeplabv3plus"
    encoder: str = "resnet18"
    figure_rows: int = 6
    quick: bool = False
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
        }
        return cls(**{**quick, **overrides, "quick": True})


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


def _reference_annotator() -> dict[str, Any] | None:
    """The shipped reference annotator's published scores (a U-Net: context, not an arm)."""

    meta = DEFAULT_ANNOTATOR_PATH.with_suffix(".json")
    if not meta.is_file():
        return None
    data = json.loads(meta.read_text())
    return {
        "arch": f"{data.get('arch')} ({data.get('encoder')}, depth {data.get('encoder_depth')})",
        "test_miou": data.get("test_miou"),
        "train_split": data.get("train_split"),
        "steps": data.get("training", {}).get("steps"),
        "batch_size": data.get("training", {}).get("batch_size"),
        "note": "a U-Net with Dice loss, not the DeepLab of the three arms: context only",
    }


def _default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, torch.get_num_threads()))


def _clean(value: Any) -> Any:
    """NaN -> None recursively (strict JSON), numpy scalars -> Python."""
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# ------------------------------------------------------------------------ demo
def run_demo(config: DemoConfig, report: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Train and score the three arms; write ``results.json`` and ``figure.png`` in
    ``config.out``; return the results dict."""

    t_start = time.perf_counter()
    cfg = config
    if cfg.steps < 1 or cfg.batch_size < 1:
        raise ValueError(f"steps and batch size must be >= 1, got {cfg.steps}, {cfg.batch_size}")
    if cfg.test_count < 5:
        raise ValueError(f"test_count must be >= 5 (5-fold protocol), got {cfg.test_count}")
    if cfg.pool_count < _FEWSHOT:
        raise ValueError(f"pool_count must be >= {_FEWSHOT}, got {cfg.pool_count}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    threads = cfg.threads or _default_threads()
    torch.set_num_threads(threads)
    workers = cfg.stream_workers
    if workers is None:  # on 2 cores: 2 generating processes + training on 1 thread
        workers = 0 if device.type != "cpu" or threads < 2 else max(2, threads // 2)
    if workers and device.type != "cpu":
        raise ValueError("stream workers are for CPU streams; on CUDA the stream runs on the GPU")
    preset = _check_preset(cfg.preset)
    augment = BatchAugment()
    class_names = list(CLASS_NAMES)
    size = 64

    # Fail early (missing preset files) before any training.
    stream = DatasetGANStream(
        preset.name, batch_size=cfg.batch_size, augment=augment, seed=cfg.seed, device=device
    )
    frame = tuple(preset.label_resolution)
    if frame != (size, size):
        raise ValueError(f"the toy demo needs 64x64 labels; preset {preset.name} has {frame}")
    interp_info = _interpreter_info(preset.name)

    t0 = time.perf_counter()
    test_images, test_masks = render_labeled("test", cfg.test_count, size=size)
    fewshot_seeds = list(split_seeds("pool", 0, _FEWSHOT))
    few_images, few_masks = render_labeled("pool", _FEWSHOT, size=size)
    render_seconds = time.perf_counter() - t0
    report(
        f"dgan-data demo: {cfg.steps} steps x {cfg.batch_size} images per arm, "
        f"{cfg.arch} ({cfg.encoder}), test on {cfg.test_count} toy renders, "
        f"{device}, {threads} thread(s)" + (f", {workers} stream worker(s)" if workers else "")
    )

    def model() -> torch.nn.Module:
        torch.manual_seed(cfg.seed)  # identical initial weights in every arm
        return build_deeplab(NUM_CLASSES, cfg.arch, cfg.encoder, image_size=size)

    sources = {
        "a": lambda: DataLoader(
            stream, batch_size=None, num_workers=workers, persistent_workers=False
        ),
        "b": lambda: real_batches(
            few_images, few_masks, cfg.batch_size, augment, seed=cfg.seed, device=device
        ),
        "c": lambda: render_batches(
            "pool",
            cfg.batch_size,
            count=cfg.pool_count,
            augment=augment,
            seed=cfg.seed,
            size=size,
            device=device,
        ),
    }
    rows = np.unique(np.linspace(0, cfg.test_count - 1, cfg.figure_rows).round().astype(int))
    arms: dict[str, dict[str, Any]] = {}
    predictions: dict[str, torch.Tensor] = {}
    model_config: dict[str, Any] = {}
    for key, label, description in ARMS:
        net = model().to(device)
        model_config = dict(net.config)
        main_threads = max(1, threads - workers) if key == "a" and workers else threads
        with torch_threads(main_threads):
            t_arm = time.perf_counter()
            history = train_segmentation(
                net,
                sources[key](),
                cfg.steps,
                lr=cfg.lr,
                device=device,
                progress=cfg.progress,
                desc=f"({key}) {label}",
            )
            train_seconds = time.perf_counter() - t_arm
        t_eval = time.perf_counter()
        metrics = evaluate(net, (test_images, test_masks), NUM_CLASSES, keep_per_image=True)
        cv = five_fold_protocol({cfg.steps: metrics["per_image"]}, seed=cfg.seed)
        with torch.no_grad():
            predictions[key] = net(test_images[rows].to(device)).argmax(1).cpu()
        eval_seconds = time.perf_counter() - t_eval
        timing = history.timing()
        losses = [v for v in history.loss if not math.isnan(v)]
        arms[key] = {
            "label": label,
            "trained_on": description,
            **metrics_summary(metrics, class_names),
            "miou_5fold_mean": cv.mean,
            "miou_5fold_std": cv.std,
            "train_seconds": train_seconds,
            "eval_seconds": eval_seconds,
            "seconds": train_seconds + eval_seconds,
            "data_seconds_per_step": timing["data_seconds_per_step"],
            "optim_seconds_per_step": timing["optim_seconds_per_step"],
            "data_fraction": timing["data_fraction"],
            "first_step_data_seconds": timing["first_step_data_seconds"],
            "main_threads": main_threads,
            "stream_workers": workers if key == "a" else 0,
            "loss_first": losses[0] if losses else None,
            "loss_last": float(np.mean(losses[-10:])) if losses else None,
        }
        report(
            f"({key}) {label}: mIoU {100 * metrics['miou']:.1f} "
            f"(5-fold {100 * cv.mean:.1f} ± {100 * cv.std:.1f}), train {train_seconds:.0f} s"
        )
        del net

    results = {
        "demo": "dgan-data demo",
        "quick": cfg.quick,
        "config": config_dict(cfg),
        "preset": preset.name,
        "interpreter": interp_info,
        "steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "model": model_config,
        "optimizer": "AdamW, weight decay 1e-4, 5 % linear warm-up, cosine decay to 1 %",
        "loss": "cross-entropy, ignore_index 255",
        "augment": repr(augment),
        "drop_uncertain": stream.drop_uncertain,
        "test": {
            "split": "test",
            "count": cfg.test_count,
            "seeds": [
                int(split_seeds("test", 0, 1)[0]),
                int(split_seeds("test", 0, 1)[0]) + cfg.test_count - 1,
            ],
            "masks": "exact (rendered)",
            "five_fold": "final model; mean ± std of the mIoU on the 4 other folds, per fold",
        },
        "class_names": class_names,
        "arms": arms,
        "reference_annotator": _reference_annotator(),
        "seeds": {
            "seed": cfg.seed,
            "model_init": cfg.seed,
            "stream_seed": cfg.seed,
            "fewshot_seeds": fewshot_seeds,
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
        title=_figure_title(results),
    )
    results["figure"] = figure.name
    results["total_seconds"] = time.perf_counter() - t_start
    path = out / "results.json"
    write_json(path, _clean(results))
    report("\n" + format_table(results))
    report(f"\nwrote {path} and {figure} in {results['total_seconds'] / 60:.1f} min")
    return results


def _figure_title(results: dict[str, Any]) -> str:
    scores = ", ".join(
        f"({k}) {a['label']} {100 * a['miou']:.1f}" for k, a in results["arms"].items()
    )
    return (
        f"{results['model']['arch']} ({results['model']['encoder']}), {results['steps']} steps "
        f"x {results['batch_size']}; test mIoU: {scores}"
    )


def format_table(results: dict[str, Any]) -> str:
    """The per-class IoU table of a results dict, with timing rows."""
    arms = results["arms"]
    keys = list(arms)
    heads = [f"({k}) {arms[k]['label']}" for k in keys]
    name_w = max(len(n) for n in [*results["class_names"], "optimisation s/step"])
    col_w = max(14, *(len(h) for h in heads))

    def row(name: str, cells: list[str]) -> str:
        return f"{name:<{name_w}}  " + "  ".join(f"{c:>{col_w}}" for c in cells)

    def pct(v: Any) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"

    lines = [row("IoU %", heads)]
    for name in results["class_names"]:
        lines.append(row(name, [pct(arms[k]["per_class_iou"].get(name)) for k in keys]))
    lines.append(row("-" * name_w, ["-" * col_w] * len(keys)))
    lines.append(row("mIoU", [pct(arms[k]["miou"]) for k in keys]))
    lines.append(
        row(
            "5-fold mean ± std",
            [f"{pct(arms[k]['miou_5fold_mean'])} ± {pct(arms[k]['miou_5fold_std'])}" for k in keys],
        )
    )
    lines.append(row("train seconds", [f"{arms[k]['train_seconds']:.0f}" for k in keys]))
    lines.append(row("data s/step", [f"{arms[k]['data_seconds_per_step']:.3f}" for k in keys]))
    lines.append(
        row("optimisation s/step", [f"{arms[k]['optim_seconds_per_step']:.3f}" for k in keys])
    )
    ref = results.get("reference_annotator")
    if ref and ref.get("test_miou") is not None:
        lines.append(
            f"\nreference annotator ({ref['arch']}, {ref['steps']} steps x {ref['batch_size']} "
            f"on pool renders): test mIoU {100 * ref['test_miou']:.1f} (context; not a DeepLab)"
        )
    hw = results["hardware"]
    lines.append(
        f"{results['steps']} steps x {results['batch_size']} per arm on {hw['device']} "
        f"({hw['cpu']}, {hw['torch_threads']} thread(s)); data = waiting for the next batch "
        "(stream generation / rendering), optimisation = forward + backward + step"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------- figure
def write_figure(
    path: Path,
    images: torch.Tensor,
    masks: torch.Tensor,
    predictions: dict[str, torch.Tensor],
    class_names: list[str],
    title: str = "",
    scale: int = 2,
) -> Path:
    """A PNG grid: one row per test image; columns image, ground truth and each arm's
    prediction as palette overlays; a title and a class legend. Pillow only."""
    palette = PALETTE.numpy()
    labels = {"a": "(a) DatasetGAN", "b": "(b) few-shot", "c": "(c) supervised"}
    columns = ["image", "ground truth", *[labels.get(k, k) for k in predictions]]
    n, h, w = masks.shape
    th, tw = h * scale, w * scale
    pad, head = 4, 18
    font = ImageFont.load_default()
    width = len(columns) * (tw + pad) + pad
    key = legend(class_names, palette, width=width)
    title_h = 18 if title else 0
    height = title_h + head + n * (th + pad) + pad + key.shape[0]
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, 3), title, fill=(0, 0, 0), font=font)
    for c, name in enumerate(columns):
        draw.text((pad + c * (tw + pad), title_h + 2), name, fill=(0, 0, 0), font=font)
    for r in range(n):
        tiles = [to_uint8_image(images[r]), overlay(images[r], masks[r], palette, alpha=0.6)]
        tiles += [overlay(images[r], p[r], palette, alpha=0.6) for p in predictions.values()]
        y = title_h + head + r * (th + pad)
        for c, tile in enumerate(tiles):
            im = Image.fromarray(tile).resize((tw, th), Image.NEAREST)
            canvas.paste(im, (pad + c * (tw + pad), y))
    canvas.paste(Image.fromarray(key), (0, height - key.shape[0]))
    path = Path(path)
    atomic_write(path, lambda f: canvas.save(f, format="PNG"))
    return path


def config_dict(config: DemoConfig) -> dict[str, Any]:
    """The config as plain JSON values."""
    return _clean(asdict(config))
