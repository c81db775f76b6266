"""Generator throughput and peak memory: ``G(z)`` with all feature maps, per batch size.

Every (config, device, batch size) runs in a fresh subprocess, so its peak memory is
its own: on the CPU the peak resident set size (RSS) of the process and its increase
over the RSS after building the model; on CUDA ``torch.cuda.max_memory_allocated``.
One warm-up call is excluded from the timings. Weights are random (seeded): speed and
memory depend on the architecture, not on the values.

Configs: ``stylegan2-256`` (``StyleGAN2Generator(256)``, the paper's channel table),
and, when ``dgan_data.generators.stylegan1`` is present, ``stylegan1-256`` and
``stylegan1-1024`` (DatasetGAN's face generator).

Usage: python benchmarks/bench_generator.py [--configs stylegan2-256 ...]
       [--batch-sizes 1 4 16] [--repeats 3] [--threads 2] [--device auto|cpu|cuda]
       [--quick] [--json PATH]

A measurement that fails (the worker exits with an error, or runs past ``--timeout``)
shows its error in the table and the JSON; the script then exits 1 and names the failed
measurements on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _phases import json_target, save_json

from dgan_data.cli import OneLineParser, run_script
from dgan_data.cli.common import device_name, positive_float, positive_int

MiB = 1024 * 1024


# ------------------------------------------------------------------- worker
def _build(config: str) -> Any:
    import torch

    torch.manual_seed(0)
    arch, res = config.rsplit("-", 1)
    if arch == "stylegan2":
        from dgan_data.generators.stylegan2 import StyleGAN2Generator

        return StyleGAN2Generator(int(res))
    if arch == "stylegan1":
        from dgan_data.generators.stylegan1 import StyleGAN1Generator

        return StyleGAN1Generator(int(res))
    raise SystemExit(f"unknown config {config!r}; known: {', '.join(available_configs())}")


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` memory field in KiB (Linux), else None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_kib() -> int:
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS


def run_one(config: str, device: str, batch: int, repeats: int, threads: int) -> dict[str, Any]:
    """Time ``repeats`` calls of ``G(z)`` (after one warm-up) and record peak memory."""
    import torch

    torch.set_num_threads(threads)
    G = _build(config).eval().requires_grad_(False).to(device)
    cuda = device.startswith("cuda")
    gen = torch.Generator().manual_seed(1)
    zs = [torch.randn(batch, G.z_dim, generator=gen) for _ in range(repeats + 1)]

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    rss_model = _status_kib("VmRSS")
    reset_ok = _reset_peak_rss()
    if cuda:
        torch.cuda.synchronize()
        cuda_model = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    times = []
    with torch.inference_mode():
        for i, z in enumerate(zs):
            z = z.to(device)
            sync()
            t0 = time.perf_counter()
            img, feats = G(z)
            sync()
            if i > 0:  # call 0 is the warm-up
                times.append(time.perf_counter() - t0)
            del img, feats
    med = statistics.median(times)
    row: dict[str, Any] = {
        "config": config,
        "device": device,
        "batch_size": batch,
        "repeats": repeats,
        "threads": threads,
        "parameters": G.num_parameters(),
        "feature_channels": int(sum(G.feature_channels)),
        "seconds_per_batch_median": med,
        "seconds_per_batch_min": min(times),
        "images_per_second": batch / med,
        "peak_rss_mib": _peak_rss_kib() / 1024,
        "rss_after_model_mib": None if rss_model is None else rss_model / 1024,
        "peak_rss_is_forward_only": reset_ok,
    }
    if rss_model is not None:
        row["forward_rss_increase_mib"] = row["peak_rss_mib"] - row["rss_after_model_mib"]
    if cuda:
        row["cuda_model_mib"] = cuda_model / MiB
        row["cuda_peak_allocated_mib"] = torch.cuda.max_memory_allocated() / MiB
        row["cuda_device"] = torch.cuda.get_device_name()
    return row


# ------------------------------------------------------------------- parent
def available_configs() -> list[str]:
    configs = ["stylegan2-256"]
    try:
        from dgan_data.generators.stylegan1 import StyleGAN1Generator  # noqa: F401

        configs += ["stylegan1-256", "stylegan1-1024"]
    except ImportError:
        pass
    return configs


def device_or_auto(text: str) -> str:
    """argparse type: ``auto`` or a device this machine has."""
    return text if text == "auto" else device_name(text)


def run_in_subprocess(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = dict(
        os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"])
    )
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {**spec, "error": " | ".join(tail) or f"exit code {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'config':<15} {'device':<6} {'batch':>5} {'s/batch':>9} {'img/s':>8} "
        f"{'peak RSS':>9} {'fwd +RSS':>9} {'CUDA peak':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(
                f"{r['config']:<15} {r['device']:<6} {r['batch_size']:>5}  error: {r['error']}"
            )
            continue
        inc = r.get("forward_rss_increase_mib")
        cuda = r.get("cuda_peak_allocated_mib")
        lines.append(
            f"{r['config']:<15} {r['device']:<6} {r['batch_size']:>5} "
            f"{r['seconds_per_batch_median']:>9.3f} {r['images_per_second']:>8.2f} "
            f"{r['peak_rss_mib']:>7.0f}Mi {'' if inc is None else f'{inc:.0f}Mi':>9} "
            f"{'' if cuda is None else f'{cuda:.0f}Mi':>10}"
        )
    return "\n".join(lines)


def failed_cells(rows: list[dict[str, Any]]) -> list[str]:
    """The measurements whose table cell holds an error, as ``config device batch N``."""
    return [f"{r['config']} {r['device']} batch {r['batch_size']}" for r in rows if "error" in r]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; a count below 1 or a timeout <= 0 exits 2 with one line."""
    ap = OneLineParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--configs",
        nargs="+",
        choices=available_configs(),
        default=None,
        help="default: all available",
    )
    # default None: --quick changes only the options not given (filled in below)
    ap.add_argument(
        "--batch-sizes", type=positive_int, nargs="+", default=None, help="default 1 4 16"
    )
    ap.add_argument(
        "--repeats", type=positive_int, default=None, help="timed calls after the warm-up (3)"
    )
    ap.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads")
    ap.add_argument(
        "--device",
        type=device_or_auto,
        default="auto",
        help="auto (cpu, plus cuda if present), cpu, cuda",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="defaults of stylegan2-256, batches 1 and 4, 1 repeat",
    )
    ap.add_argument("--timeout", type=positive_float, default=1800, help="seconds per measurement")
    ap.add_argument("--json", type=json_target, default=None, help="write the results here as JSON")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.batch_sizes is None:
        args.batch_sizes = [1, 4] if args.quick else [1, 4, 16]
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table (and write the JSON); 1 when any measurement failed."""
    args = parse_args(argv)

    if args.worker is not None:
        spec = json.loads(args.worker)
        print(json.dumps(run_one(**spec)))
        return 0

    import torch
    from tqdm import tqdm

    batches, repeats = args.batch_sizes, args.repeats
    configs = args.configs or (["stylegan2-256"] if args.quick else available_configs())
    if args.device == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [args.device]

    jobs = [
        {"config": c, "device": d, "batch": b, "repeats": repeats, "threads": args.threads}
        for c in configs
        for d in devices
        for b in batches
    ]
    rows = []
    with tqdm(jobs, desc="bench", unit="run") as bar:
        for spec in bar:
            bar.set_postfix_str(f"{spec['config']} {spec['device']} batch {spec['batch']}")
            try:
                row = run_in_subprocess(spec, args.timeout)
            except subprocess.TimeoutExpired:
                row = {**spec, "error": f"timed out after {args.timeout:g} s"}
            row.setdefault("batch_size", spec["batch"])
            rows.append(row)

    print(
        f"G(z) with all feature maps; threads={args.threads}, repeats={repeats} (+1 warm-up), "
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}"
    )
    print(format_table(rows))
    print(
        "peak RSS: whole process (python + torch + model + forward); fwd +RSS: its increase "
        "over the RSS after building the model. CUDA peak: torch.cuda.max_memory_allocated."
    )
    if args.json is not None:
        meta = {
            "threads": args.threads,
            "repeats": repeats,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        }
        save_json(args.json, {"meta": meta, "results": rows})
        print(f"wrote {args.json}")
    failed = failed_cells(rows)
    if failed:
        print(
            f"{Path(__file__).name}: {len(failed)} of {len(rows)} measurements failed "
            f"(see the table): {', '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    run_script(main)
