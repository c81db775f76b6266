"""``dgan-data demo --quick`` end to end, on a tiny random preset built here (so the test
does not depend on the shipped toy weights being present)."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

pytest.importorskip("segmentation_models_pytorch")

from test_train import make_tiny_models

from dgan_data.cli import main
from dgan_data.presets import Preset
from dgan_data.presets import preset as preset_registry
from dgan_data.toy import CLASS_NAMES, PALETTE, SPLITS

NAME = "demotest-14"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def toy_like_preset(name: str = NAME, class_names=CLASS_NAMES) -> Preset:
    return Preset(
        name=name,
        class_names=tuple(class_names),
        num_classes=len(class_names),
        palette=[tuple(c) for c in PALETTE.tolist()][: len(class_names)],
        label_resolution=(64, 64),
        image_resolution=(64, 64),
        architecture="stylegan2",
        truncation_psi=0.8,
    )


@pytest.fixture
def tiny_preset(tmp_path, monkeypatch):
    """``demotest-14``: a random 64 px generator and a random 14-class interpreter in a
    temporary DGAN_DATA_HOME, registered for this test only."""
    home = tmp_path / "home"
    make_tiny_models(home / NAME, size=64, num_models=2)
    monkeypatch.setenv("DGAN_DATA_HOME", str(home))
    monkeypatch.setitem(preset_registry._REGISTRY, NAME, toy_like_preset())
    return NAME


def test_demo_quick_writes_results_and_figure(tiny_preset, tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--quick", "--preset", tiny_preset, "--out", str(out), "--threads", "1"]
    argv += ["--device", "cpu"]  # the demo defaults to CUDA where there is one
    assert main([*argv, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for label in (
        "(a) DatasetGAN",
        "(b) 16 real, exact",
        "(b') 16 real, annotator",
        "(c) 32 real",  # --quick trains arm (c) on 32 renders
        "mIoU",
        "data s/step",
    ):
        assert label in printed

    results = json.loads((out / "results.json").read_text())
    assert set(results["arms"]) == {"a", "b", "b'", "c"}
    for key, arm in results["arms"].items():
        assert set(arm["per_class_iou"]) == set(CLASS_NAMES), key
        for field in (
            "miou",
            "miou_5fold_mean",
            "miou_5fold_std",
            "pixel_accuracy",
            "train_seconds",
            "eval_seconds",
            "seconds",
            "data_seconds_per_step",
            "optim_seconds_per_step",
            "trained_on",
        ):
            assert arm[field] is not None, (key, field)
        assert 0.0 <= arm["miou"] <= 1.0
        assert arm["num_images"] == results["test"]["count"] == 10
    assert results["steps"] == 3 and results["batch_size"] == 2 and results["quick"] is True
    assert results["seeds"]["fewshot_seeds"] == list(SPLITS["pool"][9000:9016])
    assert results["seeds"]["seed"] == 0
    assert results["test"]["seeds"][0] == SPLITS["test"][0]
    assert results["hardware"]["cpu_count"] >= 1 and results["hardware"]["device"] == "cpu"
    assert {"torch", "dgan_data", "segmentation_models_pytorch"} <= set(results["versions"])
    assert results["interpreter"]["num_models"] == 2
    assert results["model"]["arch"] == "unet"
    assert results["total_seconds"] > 0

    with Image.open(out / results["figure"]) as im:
        assert im.format == "PNG"
        # 5 columns of 128 px tiles (image, ground truth, three arms)
        assert im.width >= 5 * 128 and im.height > 3 * 128


@pytest.mark.parametrize("how", ["shipped", "config"])
def test_demo_renders_the_real_arms_in_the_presets_toy_world(
    tiny_preset, tmp_path, monkeypatch, how
):
    """A preset of the wide toy world (``toyface-14-wide``, or a preset of one's own
    with ``world="wide"``) is scored on wide renders, trains (b), (b') and (c) on them
    and labels (b') with the wide world's annotator."""
    from dgan_data.downstream import demo
    from dgan_data.toy import preset as toy_preset

    if how == "shipped":
        monkeypatch.setitem(toy_preset.TOY_PRESET_WORLDS, tiny_preset, "wide")
    else:
        assert toy_preset.toy_world_of(tiny_preset) == "base"
    seen = {"render_labeled": [], "render_batches": [], "annotator": []}

    def spy(name, real):
        def call(*args, **kwargs):
            seen[name].append(kwargs.get("variation", "base"))
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(demo, "render_labeled", spy("render_labeled", demo.render_labeled))
    monkeypatch.setattr(demo, "render_batches", spy("render_batches", demo.render_batches))
    real_load = demo.load_annotator
    monkeypatch.setattr(
        demo, "load_annotator", lambda path: seen["annotator"].append(path) or real_load(path)
    )
    world = {"world": "wide"} if how == "config" else {}
    cfg = demo.DemoConfig.quick_config(
        preset=tiny_preset, out=tmp_path / "demo", device="cpu", threads=1, progress=False,
        **world,
    )  # fmt: skip
    results = demo.run_demo(cfg, report=lambda _: None)
    assert results["world"] == results["test"]["world"] == "wide"
    # the test set and the 16 real images, and every batch of the supervised arm
    assert seen["render_labeled"] == ["wide", "wide"]
    assert seen["render_batches"] == ["wide"]
    assert seen["annotator"] == [toy_preset_annotator("wide")]
    assert "wide" in results["human"]
    assert results["reference_annotator"]["test_miou"] == pytest.approx(
        json.loads(toy_preset_annotator("wide").with_suffix(".json").read_text())["test_miou"]
    )
    # a preset of no toy world keeps the base world
    assert toy_preset.toy_world_of("demotest-other") == "base"
    assert toy_preset.toy_world_of("toyface-14") == "base"
    assert toy_preset.toy_world_of("toyface-14-wide") == "wide"


def toy_preset_annotator(world):
    from dgan_data.toy import toy_annotator_path

    return toy_annotator_path(world)


def test_demo_refuses_a_preset_without_the_toy_classes(tmp_path, monkeypatch, capsys):
    names = [f"class_{k}" for k in range(14)]
    monkeypatch.setitem(preset_registry._REGISTRY, "other-14", toy_like_preset("other-14", names))
    assert main(["demo", "--quick", "--preset", "other-14", "--out", str(tmp_path)]) == 2
    assert "toy classes" in capsys.readouterr().err


def test_demo_with_missing_preset_files_says_which(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path / "empty"))
    monkeypatch.setitem(preset_registry._REGISTRY, NAME, toy_like_preset())
    assert main(["demo", "--quick", "--preset", NAME, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "generator" in err and NAME in err
    assert not (tmp_path / "o" / "results.json").exists()


def test_full_config_is_the_converged_schedule():
    from dgan_data.downstream.demo import DemoConfig

    full = DemoConfig.full_config(out="x")
    assert (full.steps, full.batch_size, full.draws) == (6000, 16, 3)
    assert full.eval_every > 0 and full.full and not full.quick
    assert DemoConfig.full_config(draws=5).draws == 5


def test_quick_and_full_exclude_each_other(capsys, tmp_path):
    assert main(["demo", "--quick", "--full", "--out", str(tmp_path)]) == 2
    assert "exclude" in capsys.readouterr().err


def test_plateau_rule_reads_the_last_fifth_of_each_curve():
    from dgan_data.downstream.demo_report import plateau

    steps = 1000
    flat = [
        {"step": s, "val_miou": 0.70 + min(s, 700) / 10_000 + (0.004 if s >= 900 else 0)}
        for s in range(100, 1001, 100)
    ]  # last fifth (steps 800-1000): 0.770, 0.774, 0.774
    rising = [{"step": s, "val_miou": s / 1000} for s in range(100, 1001, 100)]
    assert plateau([{"curve": flat}], steps)["reached"] is True
    result = plateau([{"curve": flat}, {"curve": rising}], steps)
    assert result["reached"] is False and result["spans"][1] == pytest.approx(0.2)
    assert plateau([{"curve": []}], steps) is None


def test_demo_refuses_an_unknown_world(tmp_path, capsys):
    from dgan_data.downstream.demo import DemoConfig, run_demo

    with pytest.raises(SystemExit) as exc:
        main(["demo", "--quick", "--world", "moon", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "--world" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown toy world 'moon'; valid: base, wide"):
        run_demo(DemoConfig.quick_config(world="moon", out=tmp_path / "o"))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("where", "what"),
    [("file", "exists and is not a folder"), ("file/sub", "{tmp}/file is a file, not a folder")],
)
def test_demo_refuses_an_out_that_cannot_be_a_folder_before_any_work(
    tmp_path, monkeypatch, capsys, where, what
):
    from dgan_data.downstream import demo

    def no_rendering(*args, **kwargs):
        raise AssertionError("the test renders were made before --out was checked")

    monkeypatch.setattr(demo, "render_labeled", no_rendering)
    (tmp_path / "file").write_text("mine")
    out = tmp_path / where
    what = what.format(tmp=tmp_path)
    with pytest.raises(SystemExit) as exc:  # refused by the parser
        main(["demo", "--quick", "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"dgan-data demo: error: argument --out: '{out}': {what} (see dgan-data demo --help)"
    ]
    assert (tmp_path / "file").read_text() == "mine"


def test_run_demo_names_an_out_that_cannot_be_a_folder(tmp_path):
    """The API's own check (the CLI refuses such an --out when parsing)."""
    from dgan_data.downstream.demo import DemoConfig, run_demo

    (tmp_path / "file").write_text("mine")
    for out, what in ((tmp_path / "file", "exists and is not a folder"),
                      (tmp_path / "file" / "sub", "file is a file, not a folder")):  # fmt: skip
        with pytest.raises(ValueError, match=f"{what}; the demo needs a folder for its results"):
            run_demo(DemoConfig.quick_config(out=out))
    assert (tmp_path / "file").read_text() == "mine"
