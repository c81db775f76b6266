"""Live stream benchmark: labeled images per second against the generator alone.

Pipelines on the same random-weight generator and 10-model, 19-class interpreter (label
frame = image size), each in a fresh subprocess so its peak memory is its own:

- ``generator``: ``G(z)`` alone, batched (under the same autocast as the stream): the
  physical limit of any labeling pipeline (it counts candidates; the stream also
  generates the ~11 % it drops at the default ``drop_uncertain=0.1``).
- ``stream[rows]`` and ``stream[interpolate]``: ``DatasetGANStream`` (JS filter, no
  augmentation) with the interpreter's two inference paths (``Interpreter.impl``): the
  memory-bounded row path (the CPU default) and the whole-frame path (the CUDA default);
  with ``--compile`` also the interpolate path through ``torch.compile``.
- ``naive`` (default on the CPU only): the original DatasetGAN code's way, one image at
  a time: every feature map upsampled to the label frame and concatenated (pixels x C),
  each MLP of the ensemble run one after the other (``Interpreter.to_modules()``),
  per-pixel JS divergence and image score, labels by mode vote on the CPU.

Parity: in each stream phase the stream's labels (``stream.generate``, the path it
yields from, in the run's dtype) are compared with ``Interpreter.naive_predict`` in
full float32 (TF32 off) on the same seeds; the share of equal pixels is printed.

Architectures: StyleGAN2 256 px (rosinality's paper channel table) and StyleGAN1 256 px
(DatasetGAN's), random weights; the interpreter's BatchNorm statistics are calibrated
on generated features so that its labels vary like a trained one's.

Usage::

    python benchmarks/bench_stream.py --quick                  # 64 px, batch 2
    python benchmarks/bench_stream.py --batches 2 --json out.json [--device cuda]
    python benchmarks/bench_stream.py --device cuda --batch-size 16 --batches 5 \
        --dtype float32 bfloat16 --compile --json stream.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from _phases import current_rss_bytes, json_target, peak_rss_bytes, run_phase, save_json

from dgan_data.cli import OneLineParser, run_script
from dgan_data.cli.common import device_name, non_negative_int, positive_float, positive_int

REPO = Path(__file__).resolve().parents[1]
GB = 1e9
CLASSES = 19
MODELS = 10
PSI = 0.7


# ------------------------------------------------------------------- models
def _build(cfg: dict[str, Any]):
    """(G, interpreter) with fixed seeds: identical in every phase subprocess."""
    import torch

    from dgan_data.generators import StyleGAN2Generator
    from dgan_data.generators.stylegan1 import StyleGAN1Generator
    from dgan_data.interpreter import Interpreter, feature_layout

    device = torch.device(cfg["device"])
    torch.manual_seed(0)
    if cfg["arch"] == "stylegan2":
        G = StyleGAN2Generator(cfg["resolution"])
    else:
        G = StyleGAN1Generator(resolution=cfg["resolution"])
    G = G.to(device).eval().requires_grad_(False)
    L = cfg["resolution"]
    interp = Interpreter(feature_layout(G), CLASSES, MODELS, label_size=(L, L), seed=0)
    _calibrate(interp.to(device), G)
    return G, interp.eval()


def _calibrate(interp, G) -> None:
    """Set BatchNorm running statistics from 2 generated images at a 32 px label frame
    (what training would leave there) and sharpen the last layer, so the random ensemble
    gives varied, moderately confident labels and real disagreement."""
    import torch

    from dgan_data.interpreter import BN_EPS
    from dgan_data.seeds import z_from_seeds

    with torch.no_grad():
        _, feats = G(z_from_seeds([10**9, 10**9 + 1], G.z_dim, device=interp.device), PSI)
        h = torch.relu(interp.first_layer(feats, output_size=(32, 32)))  # (B, M, H1, h, w)
        h = h.permute(1, 0, 3, 4, 2).flatten(1, 3)  # (M, P, H1)
        interp.bn1_mean.copy_(h.mean(1))
        interp.bn1_var.copy_(h.var(1) + 1e-4)
        h = (h - interp.bn1_mean[:, None]) / (interp.bn1_var[:, None] + BN_EPS).sqrt()
        h = h * interp.bn1_weight[:, None] + interp.bn1_bias[:, None]
        h = torch.relu(torch.baddbmm(interp.b2[:, None], h, interp.w2.transpose(1, 2)))
        interp.bn2_mean.copy_(h.mean(1))
        interp.bn2_var.copy_(h.var(1) + 1e-4)
        interp.w3.mul_(30.0)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _memory(device, rss_before: int) -> dict[str, Any]:
    import torch

    out = {"rss_before_bytes": rss_before, "peak_rss_bytes": peak_rss_bytes()}
    if device.type == "cuda":
        out["peak_cuda_bytes"] = torch.cuda.max_memory_allocated()
    return out


def _timed(step, batches: int, warmup: int, device) -> list[float]:
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(batches):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


# ------------------------------------------------------------------- phases
DTYPES = ("float32", "bfloat16", "float16")


def _autocast(cfg: dict[str, Any]):
    import torch

    dtype = getattr(torch, cfg["dtype"])
    device = torch.device(cfg["device"])
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def _phase_generator(cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    from dgan_data.seeds import sample_seed, z_from_seeds

    torch.set_num_threads(cfg["threads"])
    G, _ = _build(cfg)
    device = torch.device(cfg["device"])
    bs = cfg["batch_size"]
    counter = [0]

    def step() -> None:
        seeds = [sample_seed(0, 0, counter[0] + i) for i in range(bs)]
        counter[0] += bs
        with torch.no_grad(), _autocast(cfg):
            G(z_from_seeds(seeds, G.z_dim, device=device), PSI)

    rss = current_rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = _timed(step, cfg["batches"], cfg["warmup"], device)
    return {"times": times, "images_per_batch": bs, **_memory(device, rss)}


def _phase_stream(cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    from dgan_data.seeds import sample_seed
    from dgan_data.stream import DatasetGANStream

    torch.set_num_threads(cfg["threads"])
    G, interp = _build(cfg)
    interp.impl, interp.compile_predict, interp.tf32 = cfg["impl"], cfg["compile"], cfg["tf32"]
    if cfg.get("chunk_mib"):
        interp.chunk_bytes = int(cfg["chunk_mib"] * 2**20)
    device = torch.device(cfg["device"])
    dtype = getattr(torch, cfg["dtype"])
    ds = DatasetGANStream(
        generator=G,
        interpreter=interp,
        batch_size=cfg["batch_size"],
        truncation_psi=PSI,
        drop_uncertain=0.1,
        device=device,
        dtype=None if dtype == torch.float32 else dtype,
    )
    it = iter(ds)
    rss = current_rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = _timed(lambda: next(it), cfg["batches"], cfg["warmup"], device)
    out = {"times": times, "images_per_batch": cfg["batch_size"], **_memory(device, rss)}
    out["candidates"] = ds.state_dict()["candidates"]
    out["compile_failed"] = bool(interp._compile_failed)
    out["parity"] = _parity(ds, G, interp, [sample_seed(0, 0, i) for i in range(cfg["parity"])])
    return out


def _parity(ds, G, interp, seeds: list[int]) -> dict[str, Any]:
    """The stream's labels against ``naive_predict`` in full float32 (TF32 off)."""
    import torch

    from dgan_data.seeds import z_from_seeds

    same = total = 0
    classes: set[int] = set()
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    for s in seeds:
        mask = ds.generate([s])["mask"]
        old = (matmul.allow_tf32, cudnn.allow_tf32)
        matmul.allow_tf32 = cudnn.allow_tf32 = False
        try:
            with torch.no_grad():
                _, feats = G(z_from_seeds([s], G.z_dim, device=interp.device), PSI)
                ref = interp.naive_predict(feats, output_size=mask.shape[-2:]).labels
        finally:
            matmul.allow_tf32, cudnn.allow_tf32 = old
        same += int((mask == ref).sum())
        total += ref.numel()
        classes |= set(ref.unique().tolist())
    return {"images": len(seeds), "pixels": total, "equal": same, "classes_present": len(classes)}


def _phase_naive(cfg: dict[str, Any]) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    from dgan_data.seeds import sample_seed, z_from_seeds
    from dgan_data.uncertainty import image_scores, js_divergence

    torch.set_num_threads(cfg["threads"])
    G, interp = _build(cfg)
    device = torch.device(cfg["device"])
    mlps = interp.to_modules()
    L = cfg["resolution"]
    bs = cfg["batch_size"]
    counter = [0]

    def one_image(seed: int) -> torch.Tensor:
        with torch.no_grad():
            img, feats = G(z_from_seeds([seed], G.z_dim, device=device), PSI)
            x = torch.cat(
                [
                    F.interpolate(f, size=(L, L), mode="bilinear", align_corners=False)
                    for f in feats
                ],
                dim=1,
            )
            x = x[0].flatten(1).t()  # (pixels, C): every pixel's full feature vector
            probs, votes = [], []
            for mlp in mlps:  # one model after the other
                logits = mlp(x)
                probs.append(torch.softmax(logits, dim=1))
                votes.append(logits.argmax(dim=1))
            js = js_divergence(torch.stack(probs), model_dim=0, class_dim=2).view(1, L, L)
            image_scores(js).item()
            labels = torch.mode(torch.stack(votes).cpu(), dim=0).values.view(L, L)
            ((img.clamp(-1, 1) + 1) / 2).cpu()
        return labels

    def step() -> None:
        for i in range(bs):
            one_image(sample_seed(0, 0, counter[0] + i))
        counter[0] += bs

    rss = current_rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = _timed(step, cfg["batches"], cfg["warmup"], device)
    return {"times": times, "images_per_batch": bs, **_memory(device, rss)}


def _run_phase(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    return _summarise(run_phase(__file__, name, cfg))


# ------------------------------------------------------------------- driver
def _summarise(r: dict[str, Any]) -> dict[str, Any]:
    t = sum(r["times"]) / len(r["times"])
    r["seconds_per_batch"] = t
    r["batches_per_second"] = 1.0 / t
    r["images_per_second"] = r["images_per_batch"] / t
    return r


def _stream_runs(impls: list[str], compile_: bool) -> list[tuple[str, str, bool]]:
    """(label, impl, compile) of every stream pipeline asked for."""
    runs = [(impl, impl, False) for impl in impls]
    if compile_:
        runs.append(("interpolate+compile", "interpolate", True))
    return runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; a count below 1 (a warm-up below 0) or a chunk budget <= 0 exits 2
    with one line."""
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 px, batch 2")
    parser.add_argument("--json", type=json_target, help="also write the results here")
    parser.add_argument(
        "--device", type=device_name, default=None, help="default: cuda when available"
    )
    parser.add_argument(
        "--batches",
        type=positive_int,
        default=None,
        help="timed batches (default 3; 2 with --quick)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=None, help="default 4 (quick: 2)"
    )
    parser.add_argument(
        "--warmup", type=non_negative_int, default=None, help="default 1 on CUDA, 0 on CPU"
    )
    parser.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads")
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=DTYPES)
    parser.add_argument(
        "--arch", nargs="+", choices=("stylegan1", "stylegan2"), default=["stylegan2", "stylegan1"]
    )
    parser.add_argument(
        "--impl", nargs="+", choices=("rows", "interpolate"), default=["rows", "interpolate"]
    )
    parser.add_argument("--compile", action="store_true", help="also interpolate + compile")
    parser.add_argument("--no-tf32", action="store_true", help="full float32 products on CUDA")
    parser.add_argument(
        "--chunk-mib", type=positive_float, default=None, help="interpreter chunk budget"
    )
    parser.add_argument(
        "--naive",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time the naive pipeline (default: on the CPU only)",
    )
    parser.add_argument("--parity-images", type=positive_int, default=2)
    parser.add_argument("--_phase", help=argparse.SUPPRESS)
    parser.add_argument("--_config", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._phase:
        cfg = json.loads(args._config)
        fn = {"generator": _phase_generator, "stream": _phase_stream, "naive": _phase_naive}
        print(json.dumps(fn[args._phase](cfg)))
        return 0

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    warmup = args.warmup if args.warmup is not None else (1 if cuda else 0)
    naive = args.naive if args.naive is not None else not cuda
    base = {
        "resolution": 64 if args.quick else 256,
        "batch_size": args.batch_size if args.batch_size is not None else (2 if args.quick else 4),
        "batches": args.batches if args.batches is not None else (2 if args.quick else 3),
        "warmup": warmup,
        "device": device,
        "threads": args.threads,
        "parity": args.parity_images,
        "tf32": not args.no_tf32,
        "chunk_mib": args.chunk_mib,
    }
    results: dict[str, Any] = {
        "config": {
            **base,
            "dtypes": args.dtype,
            "classes": CLASSES,
            "models": MODELS,
            "truncation_psi": PSI,
            "drop_uncertain": 0.1,
            "torch": torch.__version__,
            "load_average": os.getloadavg(),
            "cpu_count": os.cpu_count(),
        },
        "runs": [],
    }
    if cuda:
        results["config"]["gpu"] = torch.cuda.get_device_name(0)
    for arch in args.arch:
        for dtype in args.dtype:
            cfg = {**base, "arch": arch, "dtype": dtype}
            run: dict[str, Any] = {"arch": arch, "dtype": dtype, "stream": {}}
            print(f"{arch} {base['resolution']} px {dtype}: generator ...", flush=True)
            run["generator"] = _run_phase("generator", cfg)
            for label, impl, comp in _stream_runs(args.impl, args.compile):
                print(f"{arch} {base['resolution']} px {dtype}: stream[{label}] ...", flush=True)
                stream_cfg = {**cfg, "impl": impl, "compile": comp}
                if comp:
                    stream_cfg["warmup"] = max(2, warmup)  # compilation happens there
                r = _run_phase("stream", stream_cfg)
                r["ratio_to_generator"] = (
                    r["images_per_second"] / run["generator"]["images_per_second"]
                )
                run["stream"][label] = r
            if naive and dtype == "float32":
                print(f"{arch} {base['resolution']} px: naive ...", flush=True)
                run["naive"] = _run_phase("naive", cfg)
            results["runs"].append(run)
    results["config"]["load_average_after"] = os.getloadavg()
    _print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        save_json(args.json, results)
    return 0


def _print_table(res: dict[str, Any]) -> None:
    cfg = res["config"]
    cuda = cfg["device"].startswith("cuda")
    print()
    print(
        f"{cfg['resolution']} px, batch {cfg['batch_size']}, {cfg['batches']} timed batches "
        f"(+{cfg['warmup']} warm-up), {cfg['models']} models, {cfg['classes']} classes, "
        f"psi {cfg['truncation_psi']}, device {cfg['device']}"
        + (f" ({cfg['gpu']}, TF32 {'on' if cfg['tf32'] else 'off'})" if cuda else "")
        + (f", {cfg['threads']} CPU thread(s)" if not cuda else "")
        + f"; load average {cfg['load_average'][0]:.1f} -> {cfg['load_average_after'][0]:.1f} "
        f"on {cfg['cpu_count']} cores"
    )
    mem_head = "peak CUDA (GB)" if cuda else "peak RSS (GB)"
    print()
    print(
        f"  {'generator':<10} {'dtype':<9} {'pipeline':<20} {'images/s':>9} {'s/batch':>8} "
        f"{'x G(z)':>7} {mem_head:>15} {'labels = ref':>13}"
    )
    for run in res["runs"]:
        rows = [("generator", run["generator"])]
        rows += [(f"stream[{k}]", v) for k, v in run["stream"].items()]
        if "naive" in run:
            rows.append(("naive", run["naive"]))
        g = run["generator"]["images_per_second"]
        for name, r in rows:
            peak = r["peak_cuda_bytes"] if cuda else r["peak_rss_bytes"]
            parity = r.get("parity")
            agree = f"{parity['equal'] / parity['pixels']:.4%}" if parity else "-"
            if r.get("compile_failed"):
                agree += " (compile failed)"
            print(
                f"  {run['arch']:<10} {run['dtype']:<9} {name:<20} {r['images_per_second']:>9.2f} "
                f"{r['seconds_per_batch']:>8.3f} {r['images_per_second'] / g:>7.2f} "
                f"{peak / GB:>15.2f} {agree:>13}"
            )
    print()
    print(
        "  x G(z): kept images/s over the generator's images/s (same dtype); labels = ref: "
        "share of mask pixels equal to naive_predict in full float32"
    )


if __name__ == "__main__":
    run_script(main)
