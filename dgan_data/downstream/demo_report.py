"""The demo's results: per-run summaries, per-arm means, the plateau rule of ``--full``,
the per-class table and the figure of test predictions.

Kept apart from :mod:`.demo` (which trains the arms) so the report can be read, tested
and redrawn from a ``results.json`` without any training code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..conventions import is_count, is_number
from ..fileio import atomic_write
from ..toy.render import PALETTE
from ..viz import legend, overlay, to_uint8_image
from .train import metrics_summary

__all__ = [
    "Arm",
    "aggregate_arm",
    "figure_title",
    "format_table",
    "json_ready",
    "plateau",
    "run_summary",
    "run_summary_problem",
    "write_figure",
]


def json_ready(value: Any) -> Any:
    """NaN -> None recursively (strict JSON), numpy scalars -> Python."""
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass
class Arm:
    """One arm of the demo: its key (``a``, ``b``...), label, data and stream psi."""

    key: str
    label: str
    trained_on: str
    psi: float | None = None


def run_summary(
    metrics: dict[str, Any],
    cv: Any,
    history: Any,
    class_names: list[str],
    train_seconds: float,
    eval_seconds: float,
    main_threads: int,
    workers: int,
    seed: int,
) -> dict[str, Any]:
    timing = history.timing()
    losses = [v for v in history.loss if not math.isnan(v)]
    return {
        **metrics_summary(metrics, class_names),
        "seed": seed,
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
        "stream_workers": workers,
        "loss_first": losses[0] if losses else None,
        "loss_last": float(np.mean(losses[-10:])) if losses else None,
        "curve": [{"step": e["step"], "val_miou": e["val_miou"]} for e in history.evals],
    }


#: What :func:`run_summary` writes, by kind: shares (finite, in [0, 1]); counts (ints
#: >= 0); numbers (NaN where there was nothing to time); numbers or None (no loss when
#: every step was skipped). A resumed run adds ``resumed_at_step`` (a count).
_SUMMARY_SHARES = ("miou", "pixel_accuracy")
_SUMMARY_COUNTS = ("num_images", "seed", "main_threads", "stream_workers")
_SUMMARY_NUMBERS = (
    "mean_accuracy",
    "miou_5fold_mean",
    "miou_5fold_std",
    "train_seconds",
    "eval_seconds",
    "seconds",
    "data_seconds_per_step",
    "optim_seconds_per_step",
    "data_fraction",
    "first_step_data_seconds",
)
_SUMMARY_OPTIONAL_NUMBERS = ("loss_first", "loss_last")
_SUMMARY_KEYS = frozenset(
    (*_SUMMARY_SHARES, *_SUMMARY_COUNTS, *_SUMMARY_NUMBERS, *_SUMMARY_OPTIONAL_NUMBERS)
) | {"per_class_iou", "curve"}


def _is_share(value: Any) -> bool:
    return is_number(value) and 0 <= value <= 1


def _is_any_number(value: Any) -> bool:
    """A number, NaN included (a timing where there was nothing to time)."""
    return is_number(value, finite=False)


def run_summary_problem(summary: Any, class_names: list[str]) -> str | None:
    """What keeps ``summary`` (read back from JSON) from being one :func:`run_summary`
    wrote for ``class_names``, or None: the report and ``results.json`` read every field
    (a foreign or damaged summary crashed them, or put a NaN or a str mIoU in)."""
    if not isinstance(summary, dict):
        return f"the summary is a {type(summary).__name__}, not a dict"
    keys = set(summary) - {"resumed_at_step"}
    if keys != _SUMMARY_KEYS:
        missing, extra = sorted(_SUMMARY_KEYS - keys), sorted(keys - _SUMMARY_KEYS)
        return f"summary fields missing {missing or 'none'}, unknown {extra or 'none'}"
    checks = [
        *((k, _is_share, "a number in [0, 1]") for k in _SUMMARY_SHARES),
        *((k, is_count, "an int >= 0") for k in (*_SUMMARY_COUNTS, "resumed_at_step")),
        *((k, _is_any_number, "a number") for k in _SUMMARY_NUMBERS),
        *(
            (k, lambda v: v is None or _is_any_number(v), "a number or null")
            for k in _SUMMARY_OPTIONAL_NUMBERS
        ),
    ]
    for key, check, what in checks:
        if key in summary and not check(summary[key]):
            return f"summary field {key!r} must be {what}, got {summary[key]!r:.40}"
    return _per_class_problem(summary["per_class_iou"], class_names) or _curve_problem(
        summary["curve"]
    )


def _per_class_problem(per_class: Any, class_names: list[str]) -> str | None:
    """``per_class_iou``: one IoU in [0, 1] per class name, None where the class is absent
    from the test images (as :func:`metrics_summary` writes it)."""
    if not isinstance(per_class, dict) or list(per_class) != list(class_names):
        names = list(per_class) if isinstance(per_class, dict) else per_class
        return f"summary field 'per_class_iou' must name the classes in order, got {names!r:.60}"
    bad = [n for n, v in per_class.items() if v is not None and not _is_share(v)]
    if bad:
        return f"summary field 'per_class_iou' has IoUs outside [0, 1] for {bad[:3]}"
    return None


def _curve_problem(curve: Any) -> str | None:
    """``curve``: the validation evaluations, ``{"step": int, "val_miou": number}``."""
    good = isinstance(curve, list) and all(
        isinstance(e, dict)
        and set(e) == {"step", "val_miou"}
        and is_count(e["step"])
        and (e["val_miou"] is None or _is_any_number(e["val_miou"]))
        for e in curve
    )
    return None if good else f"summary field 'curve' is not a list of evaluations: {curve!r:.60}"


def aggregate_arm(arm: Arm, runs: list[dict[str, Any]], class_names: list[str]) -> dict[str, Any]:
    """Mean (and std over draws) of an arm's runs; the per-run records kept in ``runs``."""

    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in runs]))

    mious = [r["miou"] for r in runs]
    per_class = {
        name: float(
            np.nanmean(
                [
                    r["per_class_iou"][name] if r["per_class_iou"][name] is not None else np.nan
                    for r in runs
                ]
            )
        )
        for name in class_names
    }
    return {
        "label": arm.label,
        "trained_on": arm.trained_on,
        "truncation_psi": arm.psi,
        "miou": float(np.mean(mious)),
        "miou_std_over_draws": float(np.std(mious, ddof=1)) if len(mious) > 1 else None,
        "per_class_iou": per_class,
        "pixel_accuracy": mean("pixel_accuracy"),
        "num_images": runs[0]["num_images"],
        "miou_5fold_mean": mean("miou_5fold_mean"),
        "miou_5fold_std": mean("miou_5fold_std"),
        "train_seconds": mean("train_seconds"),
        "eval_seconds": mean("eval_seconds"),
        "seconds": mean("seconds"),
        "data_seconds_per_step": mean("data_seconds_per_step"),
        "optim_seconds_per_step": mean("optim_seconds_per_step"),
        "stream_workers": runs[0]["stream_workers"],
        "runs": runs,
    }


def plateau(runs: list[dict[str, Any]], steps: int) -> dict[str, Any] | None:
    """Whether the fully supervised arm's validation mIoU moved by less than 1 point over
    its last 20 % of steps (in every draw); None without learning curves. ``reached`` is
    None (not checkable, with a ``note``) when a draw has fewer than 2 evaluations in
    that span: one point cannot show a plateau, nor its absence."""
    curves = [r["curve"] for r in runs if r["curve"]]
    if not curves:
        return None
    spans = []
    few = with_nan = False
    for curve in curves:
        tail = [float(e["val_miou"]) for e in curve if e["step"] >= 0.8 * steps]
        if any(math.isnan(v) for v in tail):  # max/min over a NaN is order-dependent
            with_nan = True
            spans.append(math.nan)
        elif len(tail) < 2:
            few = True
            spans.append(math.nan)
        else:
            spans.append(max(tail) - min(tail))
    result: dict[str, Any] = {
        "rule": "validation mIoU of (c) within 1 point over its last 20 % of steps",
        "spans": spans,
    }
    if few or with_nan:
        result["reached"] = None
        notes = []
        if with_nan:
            notes.append("a validation mIoU in the last 20 % of steps is NaN")
        if few:
            notes.append(
                "fewer than 2 evaluations in the last 20 % of steps "
                "(evaluate more often than every 0.1 x steps)"
            )
        result["note"] = "not checkable: " + "; ".join(notes)
    else:
        # 0.71 - 0.70 is 0.010000000000000009 in floats: exactly 1 point is within it
        result["reached"] = bool(all(s <= 0.01 + 1e-9 for s in spans))
    return result


def figure_title(results: dict[str, Any]) -> str:
    scores = ", ".join(f"({k}) {100 * a['miou']:.1f}" for k, a in results["arms"].items())
    return (
        f"{results['preset']}: {results['model']['arch']} ({results['model']['encoder']}), "
        f"{results['steps']} steps x {results['batch_size']}; test mIoU: {scores}"
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
    if results.get("draws", 1) > 1:
        lines.append(
            row(
                f"std over {results['draws']} draws",
                [pct(arms[k]["miou_std_over_draws"]) for k in keys],
            )
        )
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
            f"on {(ref.get('train_split') or {}).get('count', '?')} real renders): test mIoU "
            f"{100 * ref['test_miou']:.1f} (the toy 'human'; context)"
        )
    hw = results["hardware"]
    lines.append(
        f"{results['steps']} steps x {results['batch_size']} per arm on {hw['device']} "
        f"({hw['cpu']}, {hw['torch_threads']} thread(s)); data = waiting for the next batch "
        "(stream generation / rendering), optimisation = forward + backward + step"
    )
    return "\n".join(lines)


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
    columns = ["image", "ground truth", *[f"({k})" for k in predictions]]
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
