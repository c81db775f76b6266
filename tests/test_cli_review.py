"""Review fixes of the data commands and the demo: a diverging learning rate is a
one-line exit 2, counts have memory bounds checked before anything is created, draw-
dependent settings are checked up front, arm (c)'s label follows its real count, the
plateau rule says when it cannot be checked, a deeply nested ``classes.json`` is a
folder error, and ``suggest``'s pool is bounded."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from test_cli_errors import one_line_error, run
from test_realdata import CLASSES, make_data

from dgan_data import candidate_seeds
from dgan_data.downstream import demo as demo_module
from dgan_data.downstream.demo import DemoConfig, _arms, _check_config
from dgan_data.downstream.demo_report import plateau
from dgan_data.downstream.realdata import LabeledFolder, LabeledFolderError, write_labeled_folder
from dgan_data.suggest import MAX_POOL


def test_a_diverging_run_is_one_line_and_exit_2(capsys, monkeypatch, tmp_path):
    def diverge(config, report):
        raise FloatingPointError("step 1: the loss is nan (a learning rate too high?)")

    monkeypatch.setattr("dgan_data.cli.data.run_demo", diverge)
    code, _, err = run(capsys, "demo", "--quick", "--lr", "1e30", "--out", str(tmp_path / "d"))
    assert code == 2
    one_line_error(err, "loss is nan")


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("--batch-size", "1000000", ("--batch-size", "4096")),
        ("--threads", "2147483648", ("--threads", "1024")),
        ("--test-count", "2000", ("--test-count", "1000")),
        ("--stream-pool", str(10**11), ("--stream-pool", "100000")),
        ("--draws", "63", ("--draws", "62")),
    ],
)
def test_demo_counts_are_bounded_before_out_is_created(capsys, tmp_path, option, value, words):
    out = tmp_path / "demo"
    code, _, err = run(capsys, "demo", "--quick", option, value, "--out", str(out))
    assert code == 2
    one_line_error(err, *words)
    assert not out.exists()


def test_suggest_pool_is_bounded(capsys, tmp_path):
    code, _, err = run(
        capsys,
        "suggest",
        "toyface-14",
        "--pool",
        str(MAX_POOL + 1),
        "--out",
        str(tmp_path / "s"),
    )
    assert code == 2
    one_line_error(err, "--pool", str(MAX_POOL))
    with pytest.raises(ValueError, match=r"pool must be an int in \[0, 1000000\]"):
        candidate_seeds(0, MAX_POOL + 1)
    assert len(candidate_seeds(0, 3)) == 3


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"seed": 2**63 - 1, "draws": 2}, "seed + draws - 1"),
        ({"draws": 63}, "draws must be at most 62"),
        ({"test_count": 1001}, "test_count must be in 5..1000"),
        ({"batch_size": 4097}, "batch_size must be at most 4096"),
        ({"stream_pool": 100_001}, "stream_pool must be at most 100000"),
        ({"threads": 0}, "threads must be in 1..1024"),
        ({"stream_psi": (0.8, 0.8)}, "stream_psi values must differ"),
    ],
)
def test_library_demo_config_is_checked_up_front(tmp_path, changes, words):
    cfg = dataclasses.replace(DemoConfig(out=tmp_path / "d"), **changes)
    with pytest.raises(ValueError, match=words.replace("+", r"\+")):
        _check_config(cfg)


def test_the_last_allowed_draw_and_seed_pass():
    _check_config(DemoConfig(draws=62, seed=2**63 - 62))


def test_quick_arm_c_is_labelled_with_its_real_count():
    labels = {a.key: a.label for a in _arms(DemoConfig.quick_config(), 0.8)}
    assert labels["c"] == "32 real"
    assert {a.key: a.label for a in _arms(DemoConfig(), 0.8)}["c"] == "5,000 real"


def test_default_stream_workers_do_not_follow_threads():
    assert demo_module.DEFAULT_CPU_STREAM_WORKERS == 2
    source = inspect.unwrap(demo_module._run_demo).__code__.co_names  # past keyword_hints
    assert "DEFAULT_CPU_STREAM_WORKERS" in source


def test_plateau_with_one_tail_point_is_not_checkable():
    flat = [{"step": s, "val_miou": 0.70} for s in (500, 1000, 1500, 2000)]
    result = plateau([{"curve": flat}], 2000)
    assert result["reached"] is None and "not checkable" in result["note"]
    two = [{"step": s, "val_miou": 0.70} for s in (1600, 1800, 2000)]
    assert plateau([{"curve": two}], 2000)["reached"] is True


def test_deeply_nested_classes_json_is_a_folder_error(tmp_path):
    images, masks = make_data()
    write_labeled_folder(tmp_path, images, masks, class_names=CLASSES)
    (tmp_path / "classes.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(LabeledFolderError, match=r"classes\.json"):
        LabeledFolder(tmp_path)


# ------------------------------------------------------------ resumable demo runs
@pytest.fixture
def tiny_preset(tmp_path, monkeypatch):
    """test_demo's ``demotest-14`` (random generator and interpreter), for this test."""
    from test_demo import NAME, toy_like_preset
    from test_train import make_tiny_models

    from dgan_data.presets import preset as preset_registry

    make_tiny_models(tmp_path / "home" / NAME, size=64, num_models=2)
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(preset_registry._REGISTRY, NAME, toy_like_preset())
    return NAME


def _demo(out, preset, *extra):
    from dgan_data.cli import main

    argv = ["demo", "--quick", "--preset", preset, "--out", str(out), "--threads", "1"]
    return main([*argv, "--device", "cpu", "--no-progress", *extra])


def _mious(out):
    import json

    results = json.loads((out / "results.json").read_text())
    return {k: (a["miou"], a["per_class_iou"]) for k, a in results["arms"].items()}


def test_a_rerun_reuses_every_finished_arm_and_gives_the_same_results(
    tiny_preset, tmp_path, capsys
):
    out = tmp_path / "demo"
    assert _demo(out, tiny_preset) == 0
    first = _mious(out)
    saved = sorted(p.name for p in (out / "runs").iterdir())
    assert len(saved) == 4 and any("_bp_draw0" in n for n in saved)  # (b') -> bp
    capsys.readouterr()
    assert _demo(out, tiny_preset) == 0
    printed = capsys.readouterr().out
    assert printed.count("reused from") == 4
    assert _mious(out) == first
    assert (out / "figure.png").is_file()


def test_other_settings_never_reuse_and_a_damaged_run_is_trained_again(
    tiny_preset, tmp_path, capsys
):
    out = tmp_path / "demo"
    assert _demo(out, tiny_preset) == 0
    first = _mious(out)
    default_runs = set((out / "runs").iterdir())
    capsys.readouterr()
    assert _demo(out, tiny_preset, "--steps", "4") == 0
    assert "reused from" not in capsys.readouterr().out
    assert len(list((out / "runs").iterdir())) == 8  # both settings' runs kept

    damaged = next(p for p in default_runs if "_c_draw0" in p.name)
    damaged.write_bytes(b"not a checkpoint")
    assert _demo(out, tiny_preset) == 0
    printed = capsys.readouterr().out
    assert printed.count("reused from") == 3  # the damaged (c) is trained again
    assert _mious(out) == first


# ------------------------------------------- export --merge / --verify options
def _recorded_export(tmp_path, **settings):
    import json

    out = tmp_path / "export"
    out.mkdir()
    record = {"num": 40, "drop_uncertain": 0.1, "seed": 0, "batch_size": 8, "num_shards": 2}
    record.update(settings)
    (out / "dataset.json").write_text(json.dumps({"settings": record}))
    return out


@pytest.mark.parametrize("mode", ["--merge", "--verify"])
@pytest.mark.parametrize(
    "given, words",
    [
        (["toyface-14"], ["PRESET"]),
        (["--preset", "toyface-14"], ["PRESET (--preset)"]),
        (["--generator", "g.pkl"], ["--generator"]),
        (["--shard", "1"], ["--shard"]),
        (["--drop-uncertain", "0.3"], ["--drop-uncertain 0.3", "recorded: 0.1"]),
        (["--num", "999"], ["--num 999", "recorded: 40"]),
        (["--seed", "7"], ["--seed 7", "recorded: 0"]),
    ],
)
def test_merge_and_verify_refuse_options_they_would_ignore(capsys, tmp_path, mode, given, words):
    out = _recorded_export(tmp_path)
    code, _, err = run(capsys, "export", *given, mode, "--out", str(out))
    assert code == 2
    one_line_error(err, *words)


def test_merge_accepts_the_recorded_settings_and_reads_unset_ones_from_the_record(tmp_path):
    import argparse

    from dgan_data.cli.data import check_recorded_options

    out = _recorded_export(tmp_path, drop_uncertain=0.2, seed=5)
    unset = dict.fromkeys(
        ("preset", "generator", "interpreter", "truncation", "shard", "num", "seed"), None
    )
    unset.update(drop_uncertain=None, batch_size=None, num_shards=None, out=out)
    check_recorded_options(argparse.Namespace(**unset), "--merge")  # the plain merge
    same = {**unset, "drop_uncertain": 0.2, "seed": 5, "num": 40}
    check_recorded_options(argparse.Namespace(**same), "--merge")  # the same command


@pytest.mark.parametrize("command", ["preview", "export"])
def test_preview_and_export_take_preset_as_a_flag_too(command, capsys, tmp_path):
    """``demo`` takes ``--preset NAME`` and these took only a PRESET argument, so
    ``export --preset toyface-14`` was "unrecognized arguments"."""
    from dgan_data.cli import build_parser
    from dgan_data.cli.common import merge_preset_flag, model_source

    out = str(tmp_path / "o")
    flag = build_parser().parse_args([command, "--preset", "toyface-14", "--out", out])
    positional = build_parser().parse_args([command, "toyface-14", "--out", out])
    merge_preset_flag(flag)
    merge_preset_flag(positional)
    assert model_source(flag) == model_source(positional)
    assert model_source(flag)["source"] == "toyface-14"
    code, _, err = run(capsys, command, "toyface-14", "--preset", "car-12", "--out", out)
    assert code == 2
    one_line_error(err, "PRESET 'toyface-14' and --preset 'car-12' differ")
