"""Live stream benchmark: labeled batches per second and peak memory.

Three pipelines on the same random-weight generator and 10-model, 19-class interpreter
(label frame = image size), each in a fresh subprocess so its peak memory is its own:

- ``generator``: ``G(z)`` alone, batched: the physical limit of any labeling pipeline
  (it counts candidates; the stream also generates the ~11 % it drops at the default
  ``drop_uncertain=0.1``).
- ``stream``: ``DatasetGANStream`` (factorized interpreter, JS filter, no augmentation).
- ``naive``: the original DatasetGAN code's way, one image at a time: every feature map
  upsampled to the label frame and concatenated (pixels x C), each MLP of the ensemble
  run one after the other (``Interpreter.to_modules()``), per-pixel JS divergence and
  image score, labels by mode vote of the models' argmaxes on the CPU.

Parity: the stream's labels (``stream.generate``, the path it yields from) are compared
with ``Interpreter.naive_predict`` (mean-softmax vote, as the stream) on the same seeds;
the count of differing pixels is printed (and, for information, the count against the
naive pipeline's mode vote, which is a different rule).

Architectures: StyleGAN2 256 px (rosinality's paper channel table) and StyleGAN1 256 px
(DatasetGAN's), random weights; the interpreter's BatchNorm statistics are calibrated
on generated features so that its labels vary like a trained one's.

Usage::

    python benchmarks/bench_stream.py --quick                  # 64 px, batch 2
    python benchmarks/bench_stream.py --batches 2 --json out.json [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _phases import current_rss_bytes, peak_rss_bytes, run_phase

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
        with torch.no_grad():
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
    device = torch.device(cfg["device"])
    dtype = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
    ds = DatasetGANStream(
        generator=G,
        interpreter=interp,
        batch_size=cfg["batch_size"],
        truncation_psi=PSI,
        drop_uncertain=0.1,
        device=device,
        dtype=dtype[cfg["dtype"]],
    )
    it = iter(ds)
    rss = current_rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = _timed(lambda: next(it), cfg["batches"], cfg["warmup"], device)
    out = {"times": times, "images_per_batch": cfg["batch_size"], **_memory(device, rss)}
    out["candidates"] = ds.state_dict()["candidates"]
    # Parity labels: the stream's labeling path on the naive phase's seeds.
    seeds = [sample_seed(0, 0, i) for i in range(cfg["parity_images"])]
    masks = torch.cat([ds.generate([s])["mask"].cpu() for s in seeds])
    torch.save(masks, cfg["parity_file"])
    return out


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
    mode_labels: list[torch.Tensor] = []

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
            labels = one_image(sample_seed(0, 0, counter[0] + i))
            if len(mode_labels) < cfg["parity_images"]:
                mode_labels.append(labels)
        counter[0] += bs

    rss = current_rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = _timed(step, cfg["batches"], cfg["warmup"], device)
    out = {"times": times, "images_per_batch": bs, **_memory(device, rss)}
    # Reference labels for the parity check (not timed): mean-softmax vote, as the stream.
    seeds = [sample_seed(0, 0, i) for i in range(cfg["parity_images"])]
    mean_labels = []
    for s in seeds:
        with torch.no_grad():
            _, feats = G(z_from_seeds([s], G.z_dim, device=device), PSI)
            mean_labels.append(interp.naive_predict(feats, output_size=(L, L)).labels.cpu())
    if len(mode_labels) < len(seeds):  # warm-up and timed steps covered fewer images
        mode_labels += [one_image(s) for s in seeds[len(mode_labels) :]]
    torch.save(
        {"mean": torch.cat(mean_labels), "mode": torch.stack(mode_labels[: len(seeds)])},
        cfg["parity_file"],
    )
    return out


def _run_phase(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    return run_phase(__file__, name, cfg)


# ------------------------------------------------------------------- driver
def _summarise(r: dict[str, Any]) -> dict[str, Any]:
    t = sum(r["times"]) / len(r["times"])
    r["seconds_per_batch"] = t
    r["batches_per_second"] = 1.0 / t
    r["images_per_second"] = r["images_per_batch"] / t
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 px, batch 2")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--device", default=None, help="default: cuda when available")
    parser.add_argument("--batches", type=int, default=None, help="timed batches (default 3)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 4 (quick: 2)")
    parser.add_argument("--warmup", type=int, default=None, help="default 1 on CUDA, 0 on CPU")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--arch", nargs="+", default=["stylegan2", "stylegan1"])
    parser.add_argument("--parity-images", type=int, default=2)
    parser.add_argument("--_phase", help=argparse.SUPPRESS)
    parser.add_argument("--_config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._phase:
        cfg = json.loads(args._config)
        fn = {"generator": _phase_generator, "stream": _phase_stream, "naive": _phase_naive}
        print(json.dumps(fn[args._phase](cfg)))
        return 0

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    warmup = args.warmup if args.warmup is not None else (1 if device.startswith("cuda") else 0)
    base = {
        "resolution": 64 if args.quick else 256,
        "batch_size": args.batch_size or (2 if args.quick else 4),
        "batches": args.batches or (2 if args.quick else 3),
        "warmup": warmup,
        "device": device,
        "threads": args.threads,
        "dtype": args.dtype,
        "parity_images": args.parity_images,
    }
    results: dict[str, Any] = {
        "config": {
            **base,
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
    if device.startswith("cuda"):
        results["config"]["gpu"] = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.arch:
            cfg = {**base, "arch": arch}
            run: dict[str, Any] = {"arch": arch}
            for phase in ("generator", "stream", "naive"):
                print(f"{arch} {base['resolution']} px: {phase} ...", flush=True)
                file = str(Path(tmp) / f"{arch}_{phase}.pt")
                run[phase] = _summarise(_run_phase(phase, {**cfg, "parity_file": file}))
            stream_masks = torch.load(Path(tmp) / f"{arch}_stream.pt")
            naive = torch.load(Path(tmp) / f"{arch}_naive.pt")
            run["parity"] = {
                "images": int(stream_masks.shape[0]),
                "pixels": int(stream_masks.numel()),
                "differing_vs_naive_mean_vote": int((stream_masks != naive["mean"]).sum()),
                "differing_vs_naive_mode_vote": int((stream_masks != naive["mode"]).sum()),
                "classes_present": int(stream_masks.unique().numel()),
            }
            results["runs"].append(run)
    results["config"]["load_average_after"] = os.getloadavg()
    _print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _print_table(res: dict[str, Any]) -> None:
    cfg = res["config"]
    print()
    print(
        f"{cfg['resolution']} px, batch {cfg['batch_size']}, {cfg['batches']} timed batches "
        f"(+{cfg['warmup']} warm-up), {cfg['models']} models, {cfg['classes']} classes, "
        f"psi {cfg['truncation_psi']}, device {cfg['device']}"
        + (f" ({cfg['gpu']})" if "gpu" in cfg else f", {cfg['threads']} CPU thread(s)")
        + f", stream dtype {cfg['dtype']}; load average {cfg['load_average'][0]:.1f} "
        f"on {cfg['cpu_count']} cores"
    )
    cuda = cfg["device"].startswith("cuda")
    mem_head = "peak CUDA (GB)" if cuda else "peak RSS (GB)"
    print()
    print(
        f"  {'generator':<10} {'pipeline':<10} {'batches/s':>10} {'images/s':>9} "
        f"{'s/batch':>8} {mem_head:>15} {'+ over models (GB)':>19}"
    )
    for run in res["runs"]:
        for phase in ("generator", "stream", "naive"):
            r = run[phase]
            if cuda:
                peak, extra = r["peak_cuda_bytes"], "-"
            else:
                peak = r["peak_rss_bytes"]
                extra = f"{(r['peak_rss_bytes'] - r['rss_before_bytes']) / GB:.2f}"
            print(
                f"  {run['arch']:<10} {phase:<10} {r['batches_per_second']:>10.4f} "
                f"{r['images_per_second']:>9.3f} {r['seconds_per_batch']:>8.2f} "
                f"{peak / GB:>15.2f} {extra:>19}"
            )
        s, n, g = run["stream"], run["naive"], run["generator"]
        p = run["parity"]
        print(
            f"    stream vs naive: {s['images_per_second'] / n['images_per_second']:.1f}x "
            f"images/s; stream reaches {s['images_per_second'] / g['images_per_second']:.0%} of "
            f"G(z) ({s['candidates']} candidates for "
            f"{len(s['times']) * s['images_per_batch']} kept + warm-up)"
        )
        print(
            f"    parity on {p['images']} seeds ({p['pixels']} pixels, {p['classes_present']} "
            f"classes): {p['differing_vs_naive_mean_vote']} pixels differ from naive_predict; "
            f"{p['differing_vs_naive_mode_vote']} from the mode vote (another rule)"
        )


if __name__ == "__main__":
    sys.exit(main())
