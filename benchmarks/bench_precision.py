"""Label agreement under reduced precision: how many mask pixels change with bfloat16 /
float16 autocast (and, on CUDA, with the default TF32 products) against the float32
reference (``Interpreter.naive_predict`` with TF32 off), and where the changes fall.

Models: the shipped ``toyface-14`` preset (a trained interpreter, 64 px) and the
stream benchmark's calibrated random 10-model, 19-class interpreters on StyleGAN2 and
StyleGAN1 at 256 px (``bench_stream._build``). For every setting and inference path:

- ``equal``: share of mask pixels equal to the reference labels;
- ``changed_in_top10_js``: share of the changed pixels that are among their image's
  10 % most uncertain pixels (reference Jensen-Shannon divergence);
- ``changed_above_js``: share of the changed pixels whose reference JS exceeds
  ``--js-threshold`` (what ``ignore_uncertain_pixels`` would mark as ignored);
- ``above_js``: share of all pixels above that threshold, and ``equal_confident``: share
  of the pixels at or below it whose label is unchanged;
- ``score_rel_err``: largest relative change of an image's uncertainty score.

Usage::

    python benchmarks/bench_precision.py --device cpu --seeds 32 --json precision.json
    python benchmarks/bench_precision.py --device cuda --seeds 64
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from typing import Any

import torch
from _phases import json_target, save_json
from bench_stream import PSI, _build  # the stream benchmark's calibrated models

from dgan_data.cli import OneLineParser, run_script
from dgan_data.cli.common import device_name, non_negative_float, positive_int
from dgan_data.labeler import Labeler
from dgan_data.seeds import z_from_seeds

#: (label, autocast dtype, TF32 allowed): "float32" is the reference arithmetic itself.
SETTINGS = [
    ("float32", None, False),
    ("float32+tf32", None, True),  # the default on CUDA
    ("bfloat16", torch.bfloat16, True),
    ("float16", torch.float16, True),
]


@contextmanager
def full_float32():
    """TF32 off for matmuls and convolutions (the reference's arithmetic)."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    old = (matmul.allow_tf32, cudnn.allow_tf32)
    matmul.allow_tf32 = cudnn.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = old


def _labelers(name: str, device: str) -> tuple[Any, Any, dict[str, Any]]:
    """(generator, interpreter, labeler settings) of a model set."""
    if name == "toyface-14":
        lab = Labeler.from_sources(name, device=device)
        settings = {
            "truncation_psi": lab.truncation_psi,
            "truncation_cutoff": lab.truncation_cutoff,
        }
        return lab.G, lab.interpreter, settings
    arch = name.split("-")[0]
    G, interp = _build({"arch": arch, "resolution": 256, "device": device})
    return G, interp, {"truncation_psi": PSI}


@torch.no_grad()
def _reference(G, interp, settings, seeds: list[int], frame, crop) -> Any:
    with full_float32():
        z = z_from_seeds(seeds, G.z_dim, device=interp.device)
        w = G.mapping(z, settings["truncation_psi"], settings.get("truncation_cutoff"))
        img, feats = G.synthesize(w, noise="const")
        return interp.naive_predict(interp.prediction_maps(feats, img), frame, crop=crop)


def _compare(ref, batch, js_threshold: float) -> dict[str, float]:
    labels = ref.labels.to(batch.masks.device)
    js = ref.pixel_uncertainty.to(batch.masks.device)
    changed = batch.masks != labels
    k = max(1, int(0.1 * js[0].numel()))
    top = js.flatten(1) >= js.flatten(1).topk(k, dim=1).values[:, -1:]
    n = int(changed.sum())
    confident = js <= js_threshold
    score = ref.image_uncertainty.to(batch.image_uncertainty.device)
    rel = (batch.image_uncertainty - score).abs() / score.abs().clamp_min(1e-12)
    return {
        "equal": 1.0 - n / changed.numel(),
        "changed_pixels": n,
        "pixels": changed.numel(),
        "changed_in_top10_js": float((changed.flatten(1) & top).sum()) / n if n else 0.0,
        "changed_above_js": float((changed & (js > js_threshold)).sum()) / n if n else 0.0,
        "confident_pixels": int(confident.sum()),
        "changed_confident": int((changed & confident).sum()),
        "score_rel_err": float(rel.max()),
    }


def measure(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    G, interp, settings = _labelers(name, args.device)
    cuda = args.device.startswith("cuda")
    settings_list = [
        (label, dtype, tf32)
        for label, dtype, tf32 in SETTINGS
        if label in args.settings and (cuda or label != "float32+tf32")
    ]
    seeds = list(range(1000, 1000 + args.seeds))
    rows = []
    for impl in args.impl:
        ref = None
        for label, dtype, tf32 in settings_list:
            lab = Labeler(G, interp, dtype=dtype, impl=impl, device=args.device, **settings)
            interp.tf32 = tf32
            if ref is None:
                ref = [
                    _reference(G, interp, settings, seeds[i : i + args.batch], lab.frame, lab.crop)
                    for i in range(0, len(seeds), args.batch)
                ]
            parts = []
            for i, r in zip(range(0, len(seeds), args.batch), ref):
                if tf32:
                    batch = lab.label(seeds[i : i + args.batch])
                else:
                    with full_float32():
                        batch = lab.label(seeds[i : i + args.batch])
                parts.append(_compare(r, batch, args.js_threshold))
            total = sum(p["pixels"] for p in parts)
            changed = sum(p["changed_pixels"] for p in parts)
            row = {
                "models": name,
                "impl": impl,
                "setting": label,
                "equal": 1.0 - changed / total,
                "changed_pixels": changed,
                "pixels": total,
                "changed_in_top10_js": _weighted(parts, "changed_in_top10_js"),
                "changed_above_js": _weighted(parts, "changed_above_js"),
                "above_js": 1.0 - sum(p["confident_pixels"] for p in parts) / total,
                "equal_confident": 1.0
                - sum(p["changed_confident"] for p in parts)
                / max(1, sum(p["confident_pixels"] for p in parts)),
                "score_rel_err": max(p["score_rel_err"] for p in parts),
            }
            rows.append(row)
            print(_format(row), flush=True)
    interp.tf32 = True
    return rows


def _weighted(parts: list[dict[str, Any]], key: str) -> float:
    n = sum(p["changed_pixels"] for p in parts)
    return sum(p[key] * p["changed_pixels"] for p in parts) / n if n else 0.0


def _format(r: dict[str, Any]) -> str:
    return (
        f"  {r['models']:<12} {r['impl']:<12} {r['setting']:<13} {r['equal']:>9.4%} "
        f"{r['changed_pixels']:>8} / {r['pixels']:<9} {r['changed_in_top10_js']:>8.1%} "
        f"{r['changed_above_js']:>8.1%} {r['above_js']:>8.1%} {r['equal_confident']:>10.4%} "
        f"{r['score_rel_err']:>9.2e}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; a count below 1 or a negative threshold exits 2 with one line."""
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device", type=device_name, default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=("toyface-14", "stylegan1-256", "stylegan2-256"),
        default=["toyface-14", "stylegan2-256"],
        help="toyface-14 (the shipped preset) or a random generator at 256 px",
    )
    parser.add_argument(
        "--impl", nargs="+", choices=("rows", "interpolate"), default=["rows", "interpolate"]
    )
    parser.add_argument(
        "--settings",
        nargs="+",
        default=[label for label, _, _ in SETTINGS],
        choices=[label for label, _, _ in SETTINGS],
        help="float32+tf32 runs on CUDA only",
    )
    parser.add_argument("--seeds", type=positive_int, default=32, help="images per setting")
    parser.add_argument("--batch", type=positive_int, default=8)
    parser.add_argument("--js-threshold", type=non_negative_float, default=0.1)
    parser.add_argument("--threads", type=positive_int, default=None)
    parser.add_argument("--json", type=json_target)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(
        f"  {'models':<12} {'impl':<12} {'setting':<13} {'equal':>9} {'changed / pixels':>20} "
        f"{'top10 JS':>8} {'JS>' + str(args.js_threshold):>8} {'px JS>':>8} {'eq. conf.':>10} "
        f"{'score err':>9}"
    )
    rows = [r for name in args.models for r in measure(name, args)]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        save_json(args.json, {"device": args.device, "rows": rows})
    return 0


if __name__ == "__main__":
    run_script(main)
