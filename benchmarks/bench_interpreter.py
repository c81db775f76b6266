"""Interpreter benchmark at the scale of DatasetGAN's face-34 setup.

Feature layout of the 1024 px StyleGAN1 face generator (DatasetGAN's ``result_list``:
18 maps, 5,088 channels), 16 annotated images with random 34-class masks at 512 px,
random features stored at native resolution in float16 (what the real fit stores).

Measures, each phase in a fresh subprocess so that peak memory is its own:

- ``fit_features`` for a fixed number of steps: time and peak process memory (RSS),
  next to the memory DatasetGAN's ``train_interpreter.py`` needs to materialise every
  annotated pixel's feature vector (pixels x channels, float16 plus a float32 copy);
- per-image inference, factorized (``predict``) vs naive (upsample + concat + MLPs),
  at 256 and 512 px labels; the naive path is only run when its estimated memory fits
  ``--naive-limit-gb``, otherwise the estimate is reported.

Usage::

    python benchmarks/bench_interpreter.py [--quick] [--json out.json] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _phases import current_rss_bytes, json_target, peak_rss_bytes, run_phase, save_json

from dgan_data.cli import OneLineParser, run_script
from dgan_data.cli.common import device_name, non_negative_float, positive_int

REPO = Path(__file__).resolve().parents[1]

# DatasetGAN face (StyleGAN1, 1024 px): two maps per block.
FACE_BLOCKS = [(512, 4), (512, 8), (512, 16), (512, 32), (256, 64), (128, 128), (64, 256)]
FACE_BLOCKS += [(32, 512), (16, 1024)]
FACE_LAYOUT = [(c, r, r) for c, r in FACE_BLOCKS for _ in range(2)]
assert sum(c for c, _, _ in FACE_LAYOUT) == 5088, "face-34 layout must total 5,088 channels"
# --quick: a 256 px StyleGAN1-like layout with a quarter of the channels.
QUICK_LAYOUT = [(c // 4, r, r) for c, r in FACE_BLOCKS[:7] for _ in range(2)]

GB = 1e9


# ------------------------------------------------------------------- phases
def _phase_fit(cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    from dgan_data.interpreter import Interpreter

    torch.set_num_threads(cfg["threads"])
    device = torch.device(cfg["device"])
    layout = [tuple(e) for e in cfg["layout"]]
    N, L, K = cfg["images"], cfg["label"], cfg["classes"]
    g = torch.Generator().manual_seed(0)
    masks = torch.randint(0, K, (N, L, L), generator=g, dtype=torch.uint8)
    masks[:, :8] = 255  # a few ignored rows, as real annotations have
    rss_before = current_rss_bytes()

    gen_cpu = [0.0]

    def features(i: int) -> list[torch.Tensor]:
        """Stand-in for G.synthesize: random native-resolution maps, made one at a time."""
        c0 = time.process_time()
        gi = torch.Generator().manual_seed(1000 + i)
        maps = [torch.randn(c, h, w, generator=gi).to(device, torch.float16) for c, h, w in layout]
        gen_cpu[0] += time.process_time() - c0
        return maps

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0, cpu0 = time.perf_counter(), time.process_time()
    interp = Interpreter.fit_features(
        features,
        masks,
        K,
        num_models=cfg["models"],
        batch_size=cfg["batch_size"],
        max_steps=cfg["steps"],
        min_steps=cfg["steps"],
        eval_every=max(1, cfg["steps"] // 4),
        device=device,
        seed=0,
        progress=False,
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - t0
    fit_cpu = time.process_time() - cpu0 - gen_cpu[0]
    info = interp.training_info
    out = {
        "steps": cfg["steps"],
        "batch_size_per_model": cfg["batch_size"],
        "models": cfg["models"],
        "store_seconds": info["store_seconds"],
        "train_seconds": info["train_seconds"],
        "seconds_per_step": info["train_seconds"] / cfg["steps"],
        "total_seconds": total,
        "feature_generation_cpu_seconds": gen_cpu[0],
        "fit_cpu_seconds_excluding_generation": fit_cpu,
        "feature_store_bytes": info["feature_store_bytes"],
        "rss_before_fit_bytes": rss_before,
        "peak_rss_bytes": peak_rss_bytes(),
    }
    if device.type == "cuda":
        out["peak_cuda_bytes"] = torch.cuda.max_memory_allocated()
    return out


def _phase_infer(cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    from dgan_data.interpreter import Interpreter

    torch.set_num_threads(cfg["threads"])
    device = torch.device(cfg["device"])
    layout = [tuple(e) for e in cfg["layout"]]
    L, K = cfg["label"], cfg["classes"]
    interp = Interpreter(layout, K, cfg["models"], label_size=(L, L), seed=0).to(device)
    g = torch.Generator().manual_seed(0)
    # Features as the generator hands them over: float32, batch of 1.
    feats = [torch.randn(1, c, h, w, generator=g).to(device) for c, h, w in layout]
    rss_before = current_rss_bytes()
    run = interp.naive_predict if cfg["mode"] == "naive" else interp.predict
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, cpu_times = [], []
    result = None
    for _ in range(cfg["reps"]):
        t0, c0 = time.perf_counter(), time.process_time()
        result = run(feats)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    out = {
        "mode": cfg["mode"],
        "label": L,
        "seconds": min(times),
        "cpu_seconds": min(cpu_times),
        "times": times,
        "rss_before_bytes": rss_before,
        "peak_rss_bytes": peak_rss_bytes(),
        "labels_checksum": int(result.labels.sum()),
    }
    if device.type == "cuda":
        out["peak_cuda_bytes"] = torch.cuda.max_memory_allocated()
    return out


def _run_phase(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    return run_phase(__file__, name, cfg)


# ------------------------------------------------------------------- driver
def _naive_inference_bytes(layout: list[tuple[int, int, int]], label: int) -> int:
    """Naive path, float32: the upsampled maps and their concatenation (both alive)."""
    C = sum(c for c, _, _ in layout)
    return 2 * label * label * C * 4


def pixel_batch(text: str) -> int:
    """argparse type of ``--batch-size``: an int >= 2 (the interpreter refuses fewer
    pixels per step: BatchNorm over one pixel learns nothing)."""
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be >= 2 (the interpreter's BatchNorm needs two pixels per step)"
        )
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; a count below 1 (a batch below 2) or a negative limit exits 2 with
    one line."""
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small layout, few steps")
    parser.add_argument("--json", type=json_target, help="also write the results here")
    parser.add_argument("--device", type=device_name, default="cpu")
    parser.add_argument("--steps", type=positive_int, help="fit steps (default 20, quick 10)")
    parser.add_argument(
        "--batch-size",
        type=pixel_batch,
        default=512,
        help="pixels per model and step (>= 2: the interpreter's BatchNorm needs two)",
    )
    parser.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads")
    parser.add_argument("--naive-limit-gb", type=non_negative_float, default=4.0)
    parser.add_argument(
        "--reps", type=positive_int, default=2, help="factorized runs (best is kept)"
    )
    parser.add_argument("--_phase", help=argparse.SUPPRESS)
    parser.add_argument("--_config", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    if args._phase:
        cfg = json.loads(args._config)
        fn = {"fit": _phase_fit, "infer": _phase_infer}[args._phase]
        print(json.dumps(fn(cfg)))
        return 0

    layout = QUICK_LAYOUT if args.quick else FACE_LAYOUT
    images, label_fit = (4, 128) if args.quick else (16, 512)
    labels_infer = [64, 128] if args.quick else [256, 512]
    steps = args.steps if args.steps is not None else (10 if args.quick else 20)
    C = sum(c for c, _, _ in layout)
    base = {
        "layout": layout,
        "classes": 34,
        "models": 10,
        "device": args.device,
        "threads": args.threads,
    }
    results: dict[str, Any] = {
        "config": {
            **base,
            "channels": C,
            "maps": len(layout),
            "images": images,
            "fit_label": label_fit,
            "quick": args.quick,
        }
    }

    pixels = images * label_fit * label_fit
    naive_fit = {
        "float16_bytes": pixels * C * 2,
        "float32_copy_bytes": pixels * C * 4,
    }
    naive_fit["total_bytes"] = naive_fit["float16_bytes"] + naive_fit["float32_copy_bytes"]
    results["naive_fit_memory"] = naive_fit

    print(f"fit_features: {images} images, labels {label_fit} px, {steps} steps ...", flush=True)
    results["fit"] = _run_phase(
        "fit",
        {
            **base,
            "images": images,
            "label": label_fit,
            "steps": steps,
            "batch_size": args.batch_size,
        },
    )

    results["inference"] = []
    for label in labels_infer:
        for mode in ("factorized", "naive"):
            need = _naive_inference_bytes(layout, label)
            if mode == "naive" and need > args.naive_limit_gb * GB:
                results["inference"].append(
                    {"mode": mode, "label": label, "skipped": True, "estimated_bytes": need}
                )
                continue
            print(f"inference: {mode} at {label} px ...", flush=True)
            reps = args.reps if mode == "factorized" else 1
            r = _run_phase("infer", {**base, "label": label, "mode": mode, "reps": reps})
            if mode == "naive":
                r["estimated_bytes"] = need
            results["inference"].append(r)

    _print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        save_json(args.json, results)
    return 0


def _print_table(res: dict[str, Any]) -> None:
    cfg, fit, naive = res["config"], res["fit"], res["naive_fit_memory"]
    print()
    print(
        f"layout: {cfg['maps']} maps, {cfg['channels']} channels; {cfg['models']} models, "
        f"{cfg['classes']} classes; device {cfg['device']}, {cfg['threads']} CPU threads"
    )
    print()
    print(f"fit_features ({cfg['images']} images, labels {cfg['fit_label']} px)")
    rows = [
        ("steps x pixels per model", f"{fit['steps']} x {fit['batch_size_per_model']}"),
        ("generate + store features (s)", f"{fit['store_seconds']:.1f}"),
        (
            "train wall (s) / per step (s)",
            f"{fit['train_seconds']:.1f} / {fit['seconds_per_step']:.3f}",
        ),
        (
            "fit CPU (s) / per step (s)",
            f"{fit['fit_cpu_seconds_excluding_generation']:.1f} / "
            f"{fit['fit_cpu_seconds_excluding_generation'] / fit['steps']:.3f}",
        ),
        ("feature store (GB, float16)", f"{fit['feature_store_bytes'] / GB:.2f}"),
        ("peak RSS (GB)", f"{fit['peak_rss_bytes'] / GB:.2f}"),
    ]
    if "peak_cuda_bytes" in fit:
        rows.append(("peak CUDA (GB)", f"{fit['peak_cuda_bytes'] / GB:.2f}"))
    rows += [
        ("naive: pixels x C float16 (GB)", f"{naive['float16_bytes'] / GB:.1f}"),
        ("naive: + float32 copy (GB)", f"{naive['total_bytes'] / GB:.1f}"),
    ]
    for k, v in rows:
        print(f"  {k:<34} {v:>14}")
    print()
    print("inference, 1 image")
    print(
        f"  {'path':<11} {'labels':>6} {'wall (s)':>10} {'CPU (s)':>9} {'peak RSS (GB)':>14} "
        f"{'note':>28}"
    )
    for r in res["inference"]:
        if r.get("skipped"):
            note = f"not run: needs ~{r['estimated_bytes'] / GB:.1f} GB"
            print(f"  {r['mode']:<11} {r['label']:>6} {'-':>10} {'-':>9} {'-':>14} {note:>28}")
            continue
        note = f"est. {r['estimated_bytes'] / GB:.1f} GB" if "estimated_bytes" in r else ""
        if "peak_cuda_bytes" in r:
            note = f"CUDA peak {r['peak_cuda_bytes'] / GB:.2f} GB " + note
        print(
            f"  {r['mode']:<11} {r['label']:>6} {r['seconds']:>10.2f} {r['cpu_seconds']:>9.2f} "
            f"{r['peak_rss_bytes'] / GB:>14.2f} {note:>28}"
        )


if __name__ == "__main__":
    run_script(main)
