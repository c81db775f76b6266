"""Review of the toy and benchmark scripts: strict JSON from the GAN evaluation and its
gate, measure_suggest_balance's student settings after --no-students and its report,
gpu_check.sh's time budget, --quick beside explicit options, rebuild.py's failed step."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from example_scripts import load_example
from test_bench_counts import load_benchmark

from dgan_data.toy.quality import compare_diversity

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO / "dgan_data" / "toy" / "assets" / "generator.safetensors"

evaluate_gan = load_example("toy/evaluate_gan", "toy_evaluate_gan_scripts_fixes")
build_preset = load_example("toy/build_preset", "toy_build_preset_scripts_fixes")
measure = load_example("toy/measure_suggest_balance", "toy_measure_scripts_fixes")
rebuild = load_example("toy/rebuild", "toy_rebuild_scripts_fixes")


def strict_loads(text: str) -> Any:
    """json.loads refusing the NaN / Infinity / -Infinity tokens strict JSON lacks."""

    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------------- 1. strict JSON, GAN gate
def test_compare_diversity_stores_null_for_ratios_with_no_number():
    out = compare_diversity(
        {"bald_rate": 0.0, "open_mouth_rate": 0.2, "face_centre_spread": math.nan},
        {"bald_rate": 0.0, "open_mouth_rate": 0.0, "face_centre_spread": 1.0},
    )
    back = strict_loads(json.dumps(out))
    assert back["bald_rate"]["ratio"] is None and back["bald_rate"]["ok"] is True
    assert back["open_mouth_rate"]["ratio"] is None and back["open_mouth_rate"]["ok"] is False
    assert back["face_centre_spread"]["generated"] is None
    assert back["face_centre_spread"]["ok"] is False
    assert all("reason" in back[k] for k in ("bald_rate", "open_mouth_rate", "face_centre_spread"))


def test_evaluate_gan_json_is_strict_json(tmp_path):
    """A tiny evaluation (4 images; the real bald rate is 0, whose ratio has no number)."""
    out = tmp_path / "q.json"
    argv = ["--generator", str(GENERATOR), "--num", "4", "--num-subsets", "1"]
    evaluate_gan.main([*argv, "--subset-size", "2", "--batch-size", "4", "--json", str(out)])
    result = strict_loads(out.read_text())
    assert set(result["diversity"]) >= {"bald_rate", "all_ok"}


def test_the_json_writers_of_script_results_refuse_nan(tmp_path):
    phases = load_benchmark("_phases")
    path = tmp_path / "r.json"
    with pytest.raises(ValueError):
        phases.save_json(path, {"ratio": math.inf})
    assert not path.exists()


def _quality_text(ratio: str, ok: str) -> str:
    """An evaluate_gan.py JSON whose bald rate has a real value of 0 (its ratio as given:
    ``null`` now, ``NaN`` or ``Infinity`` in files written before)."""
    return (
        '{"diversity": {"face_centre_spread": {"generated": 1.0, "real": 1.0, "ratio": 1.0, '
        '"ok": true}, "bald_rate": {"generated": 0.1, "real": 0.0, "ratio": ' + ratio + ', '
        '"ok": ' + ok + ', "reason": "the real value is 0"}, "all_ok": ' + ok + '}, '
        '"kid_mean": 0.0015, "kid_real_mean": 0.001, "kid_real_std": 0.002, '
        '"truncation_psi": 1.0}'
    )  # fmt: skip


@pytest.mark.parametrize(("ratio", "ok"), [("null", "true"), ("null", "false"),
                                           ("NaN", "true"), ("Infinity", "false")])  # fmt: skip
def test_gan_gate_reads_null_and_older_nan_ratios_and_records_strict_json(tmp_path, ratio, ok):
    path = tmp_path / "quality.json"
    path.write_text(_quality_text(ratio, ok))
    gate = build_preset.gan_gate(str(path))
    back = strict_loads(json.dumps(gate))
    assert back["diversity_ratio"] == {"face_centre_spread": 1.0, "bald_rate": None}
    # judged by the stored verdicts, as before
    assert back["diversity_ok"]["bald_rate"] is (ok == "true")
    assert back["ok"] is (ok == "true")


# ------------------------------------ 2. measure_suggest_balance after --no-students
def _arm(student: dict | None) -> dict:
    return {"coverage": {}, "interpreter_vs_annotator": {"miou": 0.5}, "student": student}


def _after_no_students_run(tmp_path) -> dict:
    """results.json as a --no-students run leaves it (students null)."""
    args = measure.parse_args(["--out", str(tmp_path), "--parts", "suggest", "--no-students"])
    results = {"suggest": [{"rep": 0, "random": _arm(None), "suggested": _arm(None)}]}
    measure.record_settings(results, args)
    return results


def test_the_run_after_no_students_trains_them_with_its_own_settings(tmp_path):
    results = _after_no_students_run(tmp_path)
    argv = ["--out", str(tmp_path), "--parts", "suggest"]
    students = measure.parse_args([*argv, "--stream-count", "8", "--steps", "2"])
    assert measure.settings_conflict(results, students) is None
    measure.record_settings(results, students)
    recorded = results["settings"][measure.suggest_key(students)]
    assert (recorded["stream_count"], recorded["steps"]) == (8, 2)


def test_stored_students_still_refuse_other_student_settings(tmp_path):
    results = _after_no_students_run(tmp_path)
    argv = ["--out", str(tmp_path), "--parts", "suggest"]
    first = measure.parse_args([*argv, "--steps", "2"])
    measure.record_settings(results, first)
    results["suggest"][0]["random"]["student"] = {"miou": 0.3, "per_class_iou": {}}
    conflict = measure.settings_conflict(results, measure.parse_args([*argv, "--steps", "3"]))
    assert conflict is not None and "--steps 2" in conflict
    # another --no-students run trains none: its student settings do not matter
    more = measure.parse_args([*argv, "--no-students", "--steps", "3"])
    assert measure.settings_conflict(results, more) is None


# ------------------------------------------------- 5. measure_suggest_balance report
def test_one_value_has_no_spread_to_show():
    assert "0.0" not in measure.mean_std([0.8]).split("+-")[1]


def test_balancing_table_header_heads_its_columns():
    iou = {n: 0.5 for n in measure.RARE}
    results = {"balance": {"None": {"per_class_iou": iou, "miou": 0.7},
                           "image": {"per_class_iou": iou, "miou": 0.7}}}  # fmt: skip
    lines = measure.report(results).splitlines()
    h = lines.index("balancing (student per-class IoU %):")
    ends = [[m.end() for m in re.finditer(r"\S+", line)] for line in lines[h + 1 : h + 4]]
    assert ends[0] == ends[1] == ends[2], lines[h + 1 : h + 4]


# --------------------------------------------------- 3. gpu_check.sh's time budget
def test_gpu_check_budget_skips_only_the_optional_step_and_records_it(tmp_path):
    """Every step runs a stub python (exit 0 at once); with the budget spent at the start
    the core steps still run and the compile step is recorded as skipped."""
    stub = tmp_path / "python"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), PYTHON=str(stub), BUDGET_S="0", SKIP="tests")
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu-dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    summary = strict_loads((out / "gpu_check.json").read_text())
    steps = {s["step"]: s for s in summary["steps"]}
    for core in ("bench-stream-fp32", "bench-precision", "bench-generator", "demo"):
        assert steps[core]["exit"] == 0, done.stdout
    assert "BUDGET_S" in steps["bench-stream-compile"]["skipped"]
    assert "SKIP" in steps["cuda-tests"]["skipped"]
    assert done.returncode == 0 and summary["failed"] == 0


# ------------------------------------------------ 4. --quick beside explicit options
def test_bench_loaders_quick_keeps_explicit_options(monkeypatch, tmp_path, capsys):
    bench = load_benchmark("bench_loaders")
    seen = {}

    def checkpoint_rows(tmp, resolution, tensors, repeats):
        seen.update(resolution=resolution, tensors=tensors, repeats=repeats)
        return []

    def folder_row(folder, images, size, repeats):
        seen.update(images=images, size=size)
        return {"images": images, "size": size, "open_s": 0.1, "ms_per_megapixel": 1.0}

    monkeypatch.setattr(bench, "checkpoint_rows", checkpoint_rows)
    monkeypatch.setattr(bench, "folder_row", folder_row)
    bench.main(["--quick", "--tensors", "200", "--repeats", "5"])
    assert seen["tensors"] == 200 and seen["repeats"] == 5
    assert seen["resolution"] == 64 and seen["images"] == 8  # --quick for the rest


@pytest.mark.parametrize(
    ("argv", "batches", "repeats"),
    [(["--batch-sizes", "1", "--repeats", "3"], {1}, 3), ([], {1, 4}, 1)],
)
def test_bench_generator_quick_keeps_explicit_options(monkeypatch, capsys, argv, batches, repeats):
    bench = load_benchmark("bench_generator")
    specs = []

    def fake(spec, timeout):
        specs.append(spec)
        return {"config": spec["config"], "device": spec["device"], "batch_size": spec["batch"],
                "seconds_per_batch_median": 0.5, "images_per_second": 2.0,
                "peak_rss_mib": 100.0}  # fmt: skip

    monkeypatch.setattr(bench, "run_in_subprocess", fake)
    assert bench.main(["--quick", "--device", "cpu", *argv]) == 0
    assert {s["batch"] for s in specs} == batches
    assert {s["repeats"] for s in specs} == {repeats}
    assert {s["config"] for s in specs} == {"stylegan2-256"}


# ------------------------------------------------------- 6. rebuild.py's failed step
def test_rebuild_names_the_failed_part_and_its_command(capfd, tmp_path):
    argv = ["--assets", str(tmp_path / "none"), "--parts", "quality", "--work", str(tmp_path)]
    assert rebuild.main([*argv, "--quality-num", "2"]) == 2
    last = capfd.readouterr().err.strip().splitlines()[-1]
    assert last == "rebuild.py: error: part quality (evaluate_gan.py) exited with code 2"


def test_rebuild_names_a_cli_command_as_the_user_types_it():
    cmd = [sys.executable, "-m", "dgan_data.cli", "preview", "toyface-14", "--num", "16"]
    assert rebuild.command_name(cmd) == "dgan-data preview"
