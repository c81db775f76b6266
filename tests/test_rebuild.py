"""The toy world's one-command rebuild: bad settings refused, the plan, the GAN gate."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
from example_scripts import load_example

rebuild = load_example("toy/rebuild", "toy_rebuild")
PACKAGE = Path(__file__).resolve().parents[1] / "dgan_data"
build_preset = load_example("toy/build_preset", "toy_build_preset")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--gan-steps", "0"], "--gan-steps must be >= 1"),
        (["--annotator-steps", "-3"], "--annotator-steps must be >= 1"),
        (["--threads", "0"], "--threads must be >= 1"),
        (["--parts", "gan", "paint"], "invalid choice: 'paint'"),
        (["--gan-from", "no/such/file.pt"], "no such checkpoint"),
        (["--quality-num", "1"], "--quality-num must be >= 2"),
        (["--interpreter-drop-coarse", "-1"], "--interpreter-drop-coarse must be >= 0"),
    ],
)
def test_nonsense_settings_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        rebuild.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]


def test_dry_run_prints_every_part_in_order_and_runs_nothing(tmp_path, capsys):
    work = tmp_path / "work"
    assert rebuild.main(["--work", str(work), "--assets", str(tmp_path / "a"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    headers = [line[3:] for line in out.splitlines() if line.startswith("== ") and ":" not in line]
    assert headers == list(rebuild.PARTS)
    # the preset is gated on the psi-1.0 quality report, which the quality part writes
    preset_cmd = next(line for line in out.splitlines() if "build_preset.py" in line)
    assert f"--quality {work / 'quality_psi1.json'}" in preset_cmd
    assert "--allow-ungated" not in preset_cmd
    assert out.count("evaluate_gan.py") == 2  # psi 1.0 and the preset's psi
    # a closing table names every part and a total
    table = out.split("part")[-1]
    for part in (*rebuild.PARTS, "total"):
        assert part in table
    assert not work.exists()


def test_a_wide_rebuild_trains_and_checks_on_wide_renders_and_ships_beside_the_base_files(
    tmp_path, capsys
):
    import dgan_data

    work = tmp_path / "work"
    assert rebuild.main(["--work", str(work), "--world", "wide", "--dry-run"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("$ ")]
    by_script = {}
    for line in lines:
        script = next(w for w in line.split() if w.endswith(".py") or w == "dgan_data.cli")
        by_script.setdefault(Path(script).name, []).append(line)
    for script in ("train_annotator.py", "train_gan.py", "evaluate_gan.py"):
        assert all("--world wide" in line for line in by_script[script]), script
    package = Path(dgan_data.__file__).parent / "toy"
    base_files = f"{package / 'assets'}{os.sep}"
    assert not any(base_files in line for line in lines)  # never over the base world's
    assets = package / "assets_wide"
    assert f"--out {assets / 'annotator.safetensors'}" in by_script["train_annotator.py"][0]
    assert f"--out {assets}" in by_script["build_preset.py"][0]
    preview = by_script["dgan_data.cli"][0]
    assert "preview toyface-14-wide " in preview
    assert preview.endswith("toyface14_wide_preview.png")
    assert f"--generator {assets / 'generator.safetensors'}" in preview
    # the GAN part reproduces the shipped generator: the committed checkpoint's step
    assert "--steps 43000" in by_script["train_gan.py"][0]
    # both worlds' annotators keep the defaults (the deeper one does not fit the budget)
    assert "--encoder-depth" not in by_script["train_annotator.py"][0]
    # --assets still sends a build elsewhere
    argv = ["--work", str(work), "--world", "wide", "--parts", "preset", "--dry-run"]
    rebuild.main([*argv, "--assets", str(tmp_path / "a")])
    assert f"--out {tmp_path / 'a'}" in capsys.readouterr().out
    rebuild.main(["--work", str(work), "--dry-run", "--parts", "annotator"])
    base_annotator = [x for x in capsys.readouterr().out.splitlines() if x.startswith("$ ")]
    assert len(base_annotator) == 1 and "--encoder-depth" not in base_annotator[0]
    # an empty GAN folder starts from the wide checkpoint
    args = rebuild.parse_args(["--work", str(work), "--world", "wide"])
    assert Path(args.gan_from).name == "toygan_wide.pt" and Path(args.gan_from).is_file()
    base = rebuild.parse_args(["--work", str(work)])
    assert Path(base.gan_from).name == "toygan.pt" and base.gan_steps == 24000


def test_parts_subset_and_ungated_flag(tmp_path, capsys):
    rebuild.main(["--work", str(tmp_path), "--parts", "preset", "--allow-ungated", "--dry-run"])
    out = capsys.readouterr().out
    assert "train_gan.py" not in out and "train_annotator.py" not in out
    assert "--allow-ungated" in next(line for line in out.splitlines() if "build_preset" in line)


def test_preset_part_builds_the_shipped_interpreter_context_unless_told(tmp_path, capsys):
    argv = ["--work", str(tmp_path), "--parts", "preset", "--dry-run"]
    rebuild.main(argv)
    cmd = next(line for line in capsys.readouterr().out.splitlines() if "build_preset" in line)
    shipped = rebuild.SHIPPED_INTERPRETER["base"]
    assert f"--context {shipped['context']}" in cmd
    assert f"--drop-coarse {shipped['drop_coarse']}" in cmd
    assert ("--with-image" in cmd) == shipped["with_image"]
    # each world's preset as it ships: its preset_metrics.json records how it was built
    for world, assets in (("base", "assets"), ("wide", "assets_wide")):
        metrics = json.loads((PACKAGE / "toy" / assets / "preset_metrics.json").read_text())
        built = {"with_image": metrics["with_image"], "context": metrics["context"]}
        built["drop_coarse"] = metrics.get("drop_coarse", 0)
        assert built == rebuild.SHIPPED_INTERPRETER[world], world
    rebuild.main([*argv, "--interpreter-drop-coarse", "3"])
    cmd = next(line for line in capsys.readouterr().out.splitlines() if "build_preset" in line)
    assert "--drop-coarse 3" in cmd
    rebuild.main([*argv, "--interpreter-context", "2", "--no-interpreter-image"])
    cmd = next(line for line in capsys.readouterr().out.splitlines() if "build_preset" in line)
    assert "--context 2" in cmd and "--with-image" not in cmd
    rebuild.main([*argv, "--interpreter-image"])
    cmd = next(line for line in capsys.readouterr().out.splitlines() if "build_preset" in line)
    assert "--with-image" in cmd
    with pytest.raises(SystemExit) as exc:
        rebuild.main([*argv, "--interpreter-context", "4"])
    assert exc.value.code == 2
    assert "argument --interpreter-context: '4' must be at most 3" in capsys.readouterr().err


def _quality(tmp_path: Path, bald_ratio: float, kid_mean: float = 0.0015) -> Path:
    def stat(ratio: float) -> dict:
        return {"generated": ratio, "real": 1.0, "ratio": ratio, "ok": abs(ratio - 1) <= 0.2}

    diversity = {"face_centre_spread": stat(0.95), "bald_rate": stat(bald_ratio)}
    diversity["all_ok"] = all(v["ok"] for v in diversity.values())
    path = tmp_path / "quality.json"
    path.write_text(
        json.dumps(
            {
                "diversity": diversity,
                "kid_mean": kid_mean,
                "kid_real_mean": 0.001,
                "kid_real_std": 0.002,
                # the verdict an older, looser rule stored (2 x (floor + 2 std) = 0.01)
                "kid_within_2x_floor": kid_mean <= 0.01,
                "truncation_psi": 1.0,
            }
        )
    )
    return path


def test_gan_gate_reads_the_quality_report(tmp_path):
    good = build_preset.gan_gate(str(_quality(tmp_path, 1.1)))
    assert good["ok"] and good["diversity_ratio"]["bald_rate"] == 1.1
    assert not build_preset.gan_gate(str(_quality(tmp_path, 0.3)))["ok"]
    # KID 4x the floor: the stored (older rule's) verdict said yes, the gate says no
    bad_kid = build_preset.gan_gate(str(_quality(tmp_path, 1.0, kid_mean=0.004)))
    assert not bad_kid["ok"] and not bad_kid["kid_within_2x_floor"]
    assert bad_kid["kid_threshold"] == 0.002 and bad_kid["kid_real_std"] == 0.002
    assert build_preset.gan_gate(None) is None


def test_failed_gate_stops_the_build_before_anything_is_written(tmp_path):
    out = tmp_path / "assets"
    args = argparse.Namespace(
        quality=str(_quality(tmp_path, 0.3, kid_mean=0.004)), allow_ungated=False, out=str(out)
    )
    with pytest.raises(SystemExit) as exc:
        build_preset.build(args)
    assert "bald_rate" in str(exc.value) and "kid" in str(exc.value)
    assert "--allow-ungated" in str(exc.value)
    assert not out.exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [("4", "'4' must be at most 3"), ("-1", "'-1' must be >= 0"), ("x", "'x' is not an integer")],
)
def test_build_preset_refuses_a_context_outside_the_interpreters_range(value, message, capsys):
    with pytest.raises(SystemExit) as exc:
        build_preset.parse_args(["--generator", "g.safetensors", "--context", value])
    assert exc.value.code == 2
    assert f"argument --context: {message}" in capsys.readouterr().err
