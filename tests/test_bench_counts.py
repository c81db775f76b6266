"""The benchmark scripts and examples/stream_quickstart.py refuse nonsense numbers and names
at parse time (one line on stderr, exit code 2, no traceback) instead of crashing after
the work or silently using a default; bench_generator.py exits 1 when a measurement
failed."""

from __future__ import annotations

import functools
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from example_scripts import EXAMPLES, assert_one_line, load_example

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
QUICKSTART = "stream_quickstart.py"
TOO_BIG_SEED = str(2**63)


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` as module ``name`` (its folder on ``sys.path``, as
    when it runs: the scripts import ``_phases`` and each other by plain name)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


@functools.cache
def load(script: str) -> ModuleType:
    stem = Path(script).stem
    return load_example(stem) if script == QUICKSTART else load_benchmark(stem)


def run_script(script: str, *argv: str) -> subprocess.CompletedProcess:
    """Run a script as the user does, with this checkout first on PYTHONPATH (as
    ``_phases.run_phase`` runs its phases); the timeout only bounds a broken refusal."""
    path = EXAMPLES / script if script == QUICKSTART else BENCHMARKS / script
    pythonpath = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=pythonpath)
    return subprocess.run(
        [sys.executable, str(path), *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


# (script, argv, the option named in the message): every count and number option.
REFUSED = [
    ("bench_augment.py", ["--sizes", "64", "0"], "--sizes"),
    ("bench_augment.py", ["--batch-size", "0"], "--batch-size"),
    ("bench_augment.py", ["--repeats", "0"], "--repeats"),
    ("bench_augment.py", ["--threads", "-1"], "--threads"),
    ("bench_context.py", ["--batch-size", "0"], "--batch-size"),
    ("bench_context.py", ["--batches", "0"], "--batches"),
    ("bench_context.py", ["--repeats", "0"], "--repeats"),
    ("bench_context.py", ["--threads", "0"], "--threads"),
    ("bench_generator.py", ["--batch-sizes", "1", "0"], "--batch-sizes"),
    ("bench_generator.py", ["--repeats", "0"], "--repeats"),
    ("bench_generator.py", ["--repeats", "1.5"], "--repeats"),
    ("bench_generator.py", ["--threads", "0"], "--threads"),
    ("bench_generator.py", ["--timeout", "0"], "--timeout"),
    ("bench_generator.py", ["--timeout", "nan"], "--timeout"),
    ("bench_interpreter.py", ["--steps", "0"], "--steps"),
    ("bench_interpreter.py", ["--batch-size", "0"], "--batch-size"),
    ("bench_interpreter.py", ["--threads", "0"], "--threads"),
    ("bench_interpreter.py", ["--naive-limit-gb", "-1"], "--naive-limit-gb"),
    ("bench_interpreter.py", ["--naive-limit-gb", "nan"], "--naive-limit-gb"),
    ("bench_interpreter.py", ["--reps", "0"], "--reps"),
    ("bench_precision.py", ["--seeds", "0"], "--seeds"),
    ("bench_precision.py", ["--batch", "0"], "--batch"),
    ("bench_precision.py", ["--js-threshold", "-0.1"], "--js-threshold"),
    ("bench_precision.py", ["--js-threshold", "inf"], "--js-threshold"),
    ("bench_precision.py", ["--threads", "0"], "--threads"),
    ("bench_stream.py", ["--batches", "0"], "--batches"),
    ("bench_stream.py", ["--batch-size", "0"], "--batch-size"),
    ("bench_stream.py", ["--warmup", "-1"], "--warmup"),
    ("bench_stream.py", ["--threads", "0"], "--threads"),
    ("bench_stream.py", ["--chunk-mib", "0"], "--chunk-mib"),
    ("bench_stream.py", ["--parity-images", "0"], "--parity-images"),
    ("bench_stream_modes.py", ["--batch-size", "0"], "--batch-size"),
    ("bench_stream_modes.py", ["--batches", "0"], "--batches"),
    ("bench_stream_modes.py", ["--repeats", "0"], "--repeats"),
    ("bench_stream_modes.py", ["--threads", "0"], "--threads"),
    ("bench_stream_modes.py", ["--workers", "-1"], "--workers"),
    ("bench_toy_render.py", ["--batch-size", "256", "0"], "--batch-size"),
    ("bench_toy_render.py", ["--repeats", "0"], "--repeats"),
    ("bench_toy_render.py", ["--size", "8"], "--size"),
    ("bench_toy_render.py", ["--threads", "0"], "--threads"),
    (QUICKSTART, ["--batches", "0"], "--batches"),
    (QUICKSTART, ["--batch-size", "0"], "--batch-size"),
    (QUICKSTART, ["--seed", "-1"], "--seed"),
    (QUICKSTART, ["--seed", TOO_BIG_SEED], "--seed"),
    ("bench_loaders.py", ["--images", "0"], "--images"),
    ("bench_loaders.py", ["--tensors", "0"], "--tensors"),
    ("bench_loaders.py", ["--repeats", "0"], "--repeats"),
    # names: unknown models, implementations, devices and augmentations
    ("bench_generator.py", ["--configs", "stylegan3-256"], "--configs"),
    ("bench_generator.py", ["--device", "gpu"], "--device"),
    ("bench_stream.py", ["--impl", "fast"], "--impl"),
    ("bench_precision.py", ["--impl", "rows", "fast"], "--impl"),
    ("bench_stream.py", ["--device", "tpu"], "--device"),
    ("bench_augment.py", ["--device", "gpu"], "--device"),
    ("bench_context.py", ["--device", "gpu"], "--device"),
    ("bench_interpreter.py", ["--device", "gpu"], "--device"),
    ("bench_precision.py", ["--device", "gpu"], "--device"),
    ("bench_stream_modes.py", ["--device", "gpu"], "--device"),
    ("bench_toy_render.py", ["--device", "gpu"], "--device"),
    (QUICKSTART, ["--device", "gpu"], "--device"),
    (QUICKSTART, ["--augment", "strong"], "--augment"),
]


@pytest.mark.parametrize(
    ("script", "argv", "option"), REFUSED, ids=[f"{s}{' '.join(a)}" for s, a, _ in REFUSED]
)
def test_parser_refuses_with_one_line(capsys, script, argv, option):
    module = load(script)
    with pytest.raises(SystemExit) as exc:
        module.parse_args(argv)
    assert exc.value.code == 2
    assert_one_line(capsys.readouterr().err, "error:", f"argument {option}:", repr(argv[-1]))


# The values at the edge that stay allowed, and the defaults (unchanged).
ACCEPTED = [
    ("bench_stream.py", ["--warmup", "0"], "warmup", 0),
    ("bench_stream.py", ["--batches", "1"], "batches", 1),
    ("bench_interpreter.py", ["--naive-limit-gb", "0"], "naive_limit_gb", 0.0),
    ("bench_precision.py", ["--js-threshold", "0"], "js_threshold", 0.0),
    ("bench_toy_render.py", ["--size", "16"], "size", 16),
    ("bench_generator.py", ["--timeout", "0.5"], "timeout", 0.5),
    (QUICKSTART, ["--seed", str(2**63 - 1)], "seed", 2**63 - 1),
    ("bench_generator.py", ["--device", "auto"], "device", "auto"),
    ("bench_generator.py", ["--device", "cpu"], "device", "cpu"),
    (QUICKSTART, ["--augment", "none"], "augment", "none"),
    ("bench_augment.py", [], "sizes", [64, 256]),
    ("bench_context.py", [], "threads", None),
    ("bench_generator.py", [], "batch_sizes", [1, 4, 16]),
    ("bench_interpreter.py", [], "steps", None),
    ("bench_precision.py", [], "seeds", 32),
    ("bench_stream.py", [], "batches", None),
    ("bench_stream_modes.py", [], "batches", 20),
    ("bench_stream_modes.py", [], "workers", 0),
    ("bench_toy_render.py", [], "size", 64),
    (QUICKSTART, [], "batches", 3),
]


@pytest.mark.parametrize(("script", "argv", "name", "value"), ACCEPTED)
def test_parser_accepts_edge_values_and_keeps_defaults(script, argv, name, value):
    assert getattr(load(script).parse_args(argv), name) == value


# One case per script, run as the user runs it: one line on stderr, exit code 2.
AS_SUBPROCESS = [
    ("bench_augment.py", "--repeats"),
    ("bench_context.py", "--batches"),
    ("bench_generator.py", "--repeats"),
    ("bench_interpreter.py", "--steps"),
    ("bench_precision.py", "--seeds"),
    ("bench_stream.py", "--batches"),  # used to run the default 3 batches silently
    ("bench_stream_modes.py", "--repeats"),
    ("bench_toy_render.py", "--repeats"),
    (QUICKSTART, "--batches"),
]


@pytest.mark.parametrize(("script", "option"), AS_SUBPROCESS)
def test_script_exits_2_with_one_line(script, option):
    done = run_script(script, option, "0")
    assert done.returncode == 2, done.stderr
    line = assert_one_line(done.stderr, f"argument {option}: '0' must be >= 1")
    assert line.startswith(f"{script}: error: "), line
    assert done.stdout == ""


# ------------------------------------------------------------ bench_generator's exit code
def _row(config: str, device: str, batch: int, error: str | None = None) -> dict:
    if error is not None:
        return {"config": config, "device": device, "batch": batch, "batch_size": batch,
                "error": error}  # fmt: skip
    return {"config": config, "device": device, "batch_size": batch,
            "seconds_per_batch_median": 0.5, "images_per_second": batch / 0.5,
            "peak_rss_mib": 100.0}  # fmt: skip


def test_failed_cells_names_only_the_failed_measurements():
    bench = load_benchmark("bench_generator")
    rows = [
        _row("stylegan2-256", "cpu", 1),
        _row("stylegan2-256", "cpu", 4, error="Killed"),
        _row("stylegan1-1024", "cuda", 16, error="timed out after 1800 s"),
    ]
    assert bench.failed_cells(rows) == ["stylegan2-256 cpu batch 4", "stylegan1-1024 cuda batch 16"]
    assert bench.failed_cells(rows[:1]) == []


@pytest.mark.parametrize("failing_batch", [None, 4])
def test_bench_generator_main_exit_code(monkeypatch, capsys, tmp_path, failing_batch):
    """main() prints every row and writes the JSON either way; 1 and a stderr line naming
    the failed cell when one failed, else 0 (the worker is faked: nothing is measured)."""
    bench = load_benchmark("bench_generator")

    def fake(spec, timeout):
        if spec["batch"] == failing_batch:
            return {**spec, "error": "RuntimeError: out of memory"}
        return _row(spec["config"], spec["device"], spec["batch"])

    monkeypatch.setattr(bench, "run_in_subprocess", fake)
    out = tmp_path / "r.json"
    argv = ["--configs", "stylegan2-256", "--device", "cpu", "--batch-sizes", "1", "4"]
    code = bench.main([*argv, "--json", str(out)])
    captured = capsys.readouterr()
    assert "stylegan2-256   cpu        1" in captured.out
    assert len(json.loads(out.read_text())["results"]) == 2
    last = captured.err.strip().splitlines()[-1]
    if failing_batch is None:
        assert code == 0 and "failed" not in last
    else:
        assert code == 1
        assert "error: RuntimeError: out of memory" in captured.out
        assert last == (
            "bench_generator.py: 1 of 2 measurements failed (see the table): "
            "stylegan2-256 cpu batch 4"
        )


def test_bench_generator_exits_1_after_the_table_when_a_measurement_fails(tmp_path):
    """A timeout far too short for the worker to start: the cell shows the error, the
    table and the JSON are still written, and the exit code is 1."""
    out = tmp_path / "r.json"
    done = run_script(
        "bench_generator.py",
        *("--configs", "stylegan2-256", "--device", "cpu", "--batch-sizes", "1"),
        *("--repeats", "1", "--timeout", "0.001", "--json", str(out)),
    )
    assert done.returncode == 1, done.stderr
    assert "error: timed out after 0.001 s" in done.stdout
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "bench_generator.py: 1 of 1 measurements failed (see the table): stylegan2-256 cpu batch 1"
    )
    (row,) = json.loads(out.read_text())["results"]
    assert row["error"] == "timed out after 0.001 s"


def test_bench_loaders_quick_run_reports_every_cost(tmp_path):
    out = tmp_path / "loaders.json"
    results = load("bench_loaders.py").main(["--quick", "--threads", "1", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    files = [r["file"] for r in results["checkpoints"]]
    assert files == ["stylegan2-64 (rosinality .pt)", "2000 tensors of 4 floats"]
    for row in results["checkpoints"]:
        assert row["mib"] > 0
        assert min(row["torch_load_s"], row["scan_s"], row["safe_torch_load_s"]) > 0
    assert results["labeled_folder"]["images"] == 8 and results["labeled_folder"]["open_s"] > 0


@pytest.mark.filterwarnings("ignore:.*set_vital.* is deprecated")
def test_bench_stream_modes_times_workers_plain_and_stateful(tmp_path):
    out = tmp_path / "modes.json"
    argv = ["--batch-size", "2", "--batches", "1", "--repeats", "1", "--workers", "1"]
    load("bench_stream_modes.py").main([*argv, "--threads", "1", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert list(saved["median"]) == ["per-sample", "whole-batch", "workers", "workers-stateful"]
    assert all(rate > 0 for rate in saved["median"].values())
    ratio = saved["median"]["workers-stateful"] / saved["median"]["workers"]
    assert saved["stateful_ratio"] == pytest.approx(ratio)
    assert saved["config"]["workers"] == 1
