"""The suggest/balancing measurement script: a tiny run of every part."""

from __future__ import annotations

import json

import pytest
import torch
from example_scripts import load_example

measure = load_example("toy/measure_suggest_balance", "toy_measure_suggest_balance")


def tiny_argv(out, *extra: str, reps: int = 1) -> list[str]:
    """The smallest run of the script (pool 10, 4 evaluation and test images, 1 step),
    plus ``extra`` options."""
    return [
        "--out", str(out), "--reps", str(reps), "--pool", "10", "--eval", "4",
        "--stream-count", "4", "--steps", "1", "--batch-size", "4", "--fit-steps", "3",
        "--test-count", "4", "--threads", "1", *extra,
    ]  # fmt: skip


def test_auroc_counts_pairs_and_ties():
    scores = torch.tensor([0.9, 0.5, 0.5, 0.1])
    positive = torch.tensor([True, True, False, False])
    # pairs (pos, neg): 0.9>0.5, 0.9>0.1, 0.5=0.5 (half), 0.5>0.1 -> 3.5 / 4
    assert measure.auroc(scores, positive) == 3.5 / 4
    assert measure.auroc(scores, torch.zeros(4, dtype=torch.bool)) is None


def test_tiny_run_writes_every_part(tmp_path, capsys):
    argv = [
        "--out", str(tmp_path), "--reps", "1", "--pool", "12", "--eval", "8",
        "--stream-count", "8", "--steps", "2", "--batch-size", "4", "--fit-steps", "5",
        "--test-count", "8", "--study-pool", "12", "--balance-seeds", "2", "--threads", "1",
    ]  # fmt: skip
    assert measure.main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    run = results["suggest"][0]
    assert len(run["suggested_seeds"]) == 8 and len(set(run["suggested_seeds"])) == 8
    assert not set(run["suggested_seeds"]) & set(run["random_seeds"][:8])
    for name in ("random", "suggested"):
        assert set(run[name]["coverage"]) == set(measure.CLASS_NAMES)
        assert 0.0 <= run[name]["student"]["miou"] <= 1.0
    study = results["novelty"][0]
    assert study["pool"] == 12 and 0 <= study["images_holding_them"] <= 12
    assert 0 <= study["top8_novelty"] <= min(8, study["images_holding_them"])
    assert set(results["balance"]) == {"None", "image", "None_seed1", "image_seed1"}
    out = capsys.readouterr().out
    assert "active annotation" in out and "absent from the first 8" in out
    assert "mIoU over 2 seeds" in out


def test_balanced_rerun_reuses_the_cached_interpreters(tmp_path, capsys, monkeypatch):
    argv = [
        "--out", str(tmp_path), "--reps", "1", "--pool", "12", "--eval", "8",
        "--stream-count", "8", "--steps", "2", "--batch-size", "4", "--fit-steps", "5",
        "--test-count", "8", "--parts", "suggest", "--threads", "1",
    ]  # fmt: skip
    assert measure.main(argv) == 0
    cached = sorted(p.name for p in (tmp_path / "interpreters" / "fit5").iterdir())
    assert cached == [
        "rep0_first8.safetensors",
        "rep0_random.safetensors",
        "rep0_suggested.safetensors",
    ]

    def no_fit(*args, **kwargs):
        raise AssertionError("a cached interpreter was fitted again")

    monkeypatch.setattr(measure.Interpreter, "fit", no_fit)
    assert measure.main([*argv, "--stream-balance", "image"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    plain, balanced = results["suggest"][0], results["suggest_balance_image"][0]
    assert plain["suggested_seeds"] == balanced["suggested_seeds"]
    stats = balanced["suggested"]["student"]["stream_statistics"]
    assert stats.get("class_balance")
    assert "balanced streams" in capsys.readouterr().out
    # the novelty study reads the same first-8 interpreter from the cache
    assert measure.main([*argv, "--parts", "novelty", "--study-pool", "8"]) == 0
    study = json.loads((tmp_path / "results.json").read_text())["novelty"][0]
    assert 0 <= study["labeled_holding_them"] <= 8
    for name in ("class_mass", "class_peak", "label_pixels"):
        assert 0 <= study[f"top8_{name}"] <= min(8, study["images_holding_them"])
        assert study[f"auroc_{name}"] is None or 0 <= study[f"auroc_{name}"] <= 1


def test_pixel_context_interpreters_get_their_own_results_and_cache(tmp_path, capsys):
    context = ["--with-image", "--context", "1"]
    argv = tiny_argv(tmp_path, "--parts", "suggest,novelty", "--study-pool", "8", *context)
    assert measure.main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    keys = {"suggest_image_ctx1", "novelty_image_ctx1"}
    assert set(results) == {*keys, "preset", "world", "settings"}
    assert set(results["settings"]) == keys
    folder = tmp_path / "interpreters" / "fit3_image_ctx1"
    for path in folder.iterdir():
        interp = measure.Interpreter.load(path)
        assert interp.with_image and interp.context == 1
    out = capsys.readouterr().out
    assert "interpreters image ctx1" in out


def test_nonsense_settings_exit_2(capsys):
    for bad, message in (
        (["--context", "4"], "argument --context: '4' must be at most 3"),
        (["--context", "-1"], "argument --context: '-1' must be >= 0"),
        (["--reps", "0"], "--reps must be >= 1"),
        (["--pool", "0"], "--pool must be >= 1"),
        (["--arms", "random,best"], "--arms must name random and/or suggested, got ['best']"),
        (["--arms", ","], "--arms must name random and/or suggested, got none"),
        (["--reps", "2", "--rep", "2"], "--rep must be in 0..1 (--reps 2), got 2"),
        (["--coverage-by", "pixels"], "argument --coverage-by: invalid choice: 'pixels'"),
        (["--coverage-target", "0"], "--coverage-target must be >= 1"),
        (["--no-students"], "--no-students: part balance is students only"),
    ):
        with pytest.raises(SystemExit) as exc:
            measure.parse_args(bad)
        assert exc.value.code == 2
        assert message in capsys.readouterr().err


def test_side_by_side_saves_join_arms_by_repetition(tmp_path):
    """Two processes with one arm each write the same results.json: each save joins the
    other's arms of a repetition instead of overwriting them."""
    args = measure.parse_args(["--out", str(tmp_path)])
    random_proc = {"suggest": [{"rep": 0, "random_seeds": [1], "random": {"m": 1}}]}
    suggest_proc = {"suggest": [{"rep": 0, "random_seeds": [1], "suggested": {"m": 2}}]}
    measure.save(args, random_proc)
    measure.save(args, suggest_proc)
    random_proc["suggest"].append({"rep": 1, "random_seeds": [3], "random": {"m": 3}})
    random_proc["balance"] = {"None": 0.5}
    measure.save(args, random_proc)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["suggest"] == [
        {"rep": 0, "random_seeds": [1], "random": {"m": 1}, "suggested": {"m": 2}},
        {"rep": 1, "random_seeds": [3], "random": {"m": 3}},
    ]
    assert saved["balance"] == {"None": 0.5}


def test_one_arm_per_run_fills_the_other_arm_later(tmp_path, capsys):
    argv = tiny_argv(tmp_path, "--parts", "suggest")
    assert measure.main([*argv, "--arms", "random"]) == 0
    run = json.loads((tmp_path / "results.json").read_text())["suggest"][0]
    assert "random" in run and "suggested" not in run and "suggested_seeds" not in run
    assert "random (1 reps)" in capsys.readouterr().out
    assert measure.main([*argv, "--arms", "suggested"]) == 0
    run2 = json.loads((tmp_path / "results.json").read_text())["suggest"][0]
    assert run2["random"] == run["random"]  # kept, not measured again
    assert len(run2["suggested_seeds"]) == 8 and "suggested" in run2
    out = capsys.readouterr().out
    assert "random (1 reps)" in out and "suggested (1 reps)" in out


def test_one_repetition_per_run_with_its_coverage_rule(tmp_path, capsys, monkeypatch):
    targets = []

    def spy(*args, **kwargs):
        targets.append(kwargs["coverage_target"])
        return real_suggest(*args, **kwargs)

    real_suggest = measure.suggest_annotations
    monkeypatch.setattr(measure, "suggest_annotations", spy)
    argv = tiny_argv(tmp_path, "--parts", "suggest", "--arms", "suggested", reps=2)
    rep1 = ["--rep", "1", "--coverage-by", "labels", "--coverage-target", "5"]
    assert measure.main([*argv, *rep1]) == 0
    runs = json.loads((tmp_path / "results.json").read_text())["suggest"]
    assert [r["rep"] for r in runs] == [1] and runs[0]["coverage_by"] == "labels"
    assert measure.main([*argv, "--rep", "0"]) == 0
    runs = json.loads((tmp_path / "results.json").read_text())["suggest"]
    assert [r["rep"] for r in runs] == [0, 1]
    assert [r["coverage_by"] for r in runs] == ["mass", "labels"]
    assert [r["coverage_target"] for r in runs] == [3, 5] and targets == [5, 3]
    assert "suggested (2 reps)" in capsys.readouterr().out


def test_the_wide_preset_measures_in_its_own_world(tmp_path, monkeypatch):
    from dgan_data.toy.annotator import toy_annotator_path

    annotators, worlds = [], []
    real_load, real_render = measure.load_annotator, measure.render_labeled

    def load_spy(path=None):
        annotators.append(path)
        return real_load(path)

    def render_spy(split, count, **kwargs):
        worlds.append(kwargs.get("variation"))
        return real_render(split, count, **kwargs)

    monkeypatch.setattr(measure, "load_annotator", load_spy)
    monkeypatch.setattr(measure, "render_labeled", render_spy)
    argv = tiny_argv(tmp_path, "--parts", "suggest", "--arms", "random")
    assert measure.main([*argv, "--preset", "toyface-14-wide"]) == 0
    assert annotators == [toy_annotator_path("wide")] and worlds == ["wide"]
    results = json.loads((tmp_path / "results.json").read_text())
    assert (results["preset"], results["world"]) == ("toyface-14-wide", "wide")
    assert results["suggest"][0]["random"]["coverage"]["background"] == 16  # 16 annotated


def test_a_folder_of_another_preset_is_refused(tmp_path, capsys):
    argv = tiny_argv(tmp_path, "--parts", "suggest", "--arms", "random")
    assert measure.main(argv) == 0
    before = (tmp_path / "results.json").read_text()
    assert measure.main([*argv, "--preset", "toyface-14-wide"]) == 2
    err = capsys.readouterr().err
    assert "holds results of preset toyface-14, not toyface-14-wide" in err
    assert (tmp_path / "results.json").read_text() == before


def test_no_students_measures_interpreters_and_a_later_run_adds_the_students(
    tmp_path, capsys, monkeypatch
):
    argv = tiny_argv(tmp_path, "--parts", "suggest")
    assert measure.main([*argv, "--no-students"]) == 0
    run = json.loads((tmp_path / "results.json").read_text())["suggest"][0]
    for name in ("random", "suggested"):
        assert run[name]["student"] is None
        assert 0.0 <= run[name]["interpreter_vs_annotator"]["miou"] <= 1.0
    assert "student on real -" in capsys.readouterr().out
    # a rerun with the flag measures nothing; one without it trains the students only

    def no_fit(*args, **kwargs):
        raise AssertionError("a cached interpreter was fitted again")

    monkeypatch.setattr(measure.Interpreter, "fit", no_fit)
    assert measure.main([*argv, "--no-students"]) == 0
    assert json.loads((tmp_path / "results.json").read_text())["suggest"][0] == run
    assert measure.main(argv) == 0
    again = json.loads((tmp_path / "results.json").read_text())["suggest"][0]
    assert again["suggested_seeds"] == run["suggested_seeds"]
    for name in ("random", "suggested"):
        assert 0.0 <= again[name]["student"]["miou"] <= 1.0
        assert again[name]["coverage"] == run[name]["coverage"]
