"""Review of the user-facing scripts (examples/, benchmarks/): builds that keep --out
untouched until they pass, cache keys that carry every setting, refusals before the run
(one line, exit 2), atomic JSON results and checked resumes."""

from __future__ import annotations

import importlib
import json
import re
import resource
import shutil
import signal
import sys
from pathlib import Path

import pytest
import torch
from example_scripts import assert_one_line, load_example

import dgan_data
from dgan_data.cli.common import UsageError

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(dgan_data.__file__).parent / "toy" / "assets"

build_preset = load_example("toy/build_preset", "review_build_preset")
diagnose = load_example("toy/diagnose", "review_diagnose")
self_training = load_example("toy/self_training", "review_self_training")
conv_head = load_example("toy/conv_head", "review_conv_head")
shapes = load_example("toy/context_shapes", "review_context_shapes")
measure = load_example("toy/measure_suggest_balance", "review_measure")
evaluate_gan = load_example("toy/evaluate_gan", "review_evaluate_gan")
train_gan = load_example("toy/train_gan", "review_train_gan")
quickstart = load_example("stream_quickstart", "review_stream_quickstart")
deeplab = load_example("train_deeplab", "review_train_deeplab")
sys.path.insert(0, str(REPO / "benchmarks"))
import _phases  # noqa: E402
import bench_interpreter  # noqa: E402


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def tiny_build(generator: Path, out: Path) -> list[str]:
    """A seconds-long build_preset run whose interpreter scores 0 on most classes."""
    return [
        "--generator", str(generator), "--out", str(out), "--num", "2", "--eval-num", "2",
        "--max-steps", "1", "--num-models", "1", "--coverage", "0", "--threads", "1",
    ]  # fmt: skip


@pytest.fixture
def assets_copy(tmp_path) -> Path:
    """A copy of the package's toy assets (never the real ones)."""
    copy = tmp_path / "assets"
    shutil.copytree(ASSETS, copy)
    return copy


# ------------------------------------------------------------------ F1 build_preset
def test_a_failing_build_leaves_the_existing_assets_byte_identical(assets_copy, capsys):
    before = snapshot(assets_copy)
    with pytest.raises(SystemExit) as exc:
        build_preset.main(tiny_build(ASSETS / "generator.safetensors", assets_copy))
    assert "not shipped as is" in str(exc.value.code)
    assert snapshot(assets_copy) == before
    # the staging folder beside --out is gone too
    assert sorted(p.name for p in assets_copy.parent.iterdir()) == ["assets"]


def test_an_interrupted_fit_leaves_the_existing_assets_untouched(assets_copy, monkeypatch, capsys):
    before = snapshot(assets_copy)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_preset, "fit_without_coarse", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_preset.main(tiny_build(ASSETS / "generator.safetensors", assets_copy))
    assert snapshot(assets_copy) == before
    assert sorted(p.name for p in assets_copy.parent.iterdir()) == ["assets"]


def test_a_failing_build_into_a_new_folder_creates_nothing(tmp_path, capsys):
    with pytest.raises(SystemExit):
        build_preset.main(tiny_build(ASSETS / "generator.safetensors", tmp_path / "new"))
    assert list(tmp_path.iterdir()) == []


def test_install_moves_the_staged_build_into_place(tmp_path):
    stage, out = tmp_path / ".out.build-x", tmp_path / "out"
    (stage / "annotations").mkdir(parents=True)
    (stage / "annotations" / "manifest.json").write_text("new")
    (stage / "interpreter.safetensors").write_text("new interpreter")
    (stage / "preset_metrics.json").write_text("{}")
    (out / "annotations" / "masks").mkdir(parents=True)
    (out / "annotations" / "manifest.json").write_text("old")
    (out / "annotations" / "masks" / "0.png").write_text("old mask")
    (out / "generator.safetensors").write_text("kept")
    written = build_preset.install(stage, out)
    assert written == ["annotations", "interpreter.safetensors", "preset_metrics.json"]
    assert snapshot(out) == {
        "annotations/manifest.json": b"new",
        "interpreter.safetensors": b"new interpreter",
        "preset_metrics.json": b"{}",
        "generator.safetensors": b"kept",
    }


# ------------------------------------------------------------------ F2 diagnose
def test_diagnose_keys_carry_seed_lr_and_test_count_and_reruns_train_anew(tmp_path, capsys):
    common = ["--out", str(tmp_path), "--arms", "F,G", "--count", "2", "--steps", "1"]
    common += ["--batch-size", "2", "--eval-count", "3", "--threads", "1", "--no-progress"]
    assert diagnose.main([*common, "--test-count", "2"]) == 0
    first = json.loads((tmp_path / "diagnose.json").read_text())
    gan = first["gan_digest"]
    assert set(first["students"]) == {"F_16_steps1x2_test2", f"G_2_psi0.8_{gan}_steps1x2_test2"}
    assert (first["seed"], first["lr"], first["test_count"]) == (0, 3e-3, 2)
    argv = [*common, "--test-count", "3", "--seed", "7", "--lr", "0.01"]
    assert diagnose.main(argv) == 0
    second = json.loads((tmp_path / "diagnose.json").read_text())
    suffix = "_steps1x2_lr0.01_seed7_test3"
    new = {f"F_16{suffix}", f"G_2_psi0.8_seed7_{gan}{suffix}"}
    assert set(second["students"]) == set(first["students"]) | new
    assert (second["seed"], second["lr"], second["test_count"]) == (7, 0.01, 3)
    # the G data of seed 7 are other samples, cached under their own key
    assert (tmp_path / "cache" / f"G_2_psi0.8_seed7_{gan}.pt").is_file()
    assert (tmp_path / "cache" / f"G_2_psi0.8_{gan}.pt").is_file()


# ------------------------------------------------------------------ F3 self_training
def _samples(path: Path, n: int, seed: int) -> Path:
    g = torch.Generator().manual_seed(seed)
    data = {"images": torch.rand(n, 3, 64, 64, generator=g)}
    data["labels"] = torch.randint(0, 14, (n, 64, 64), generator=g)
    torch.save(data, path)
    return path


def test_self_training_reuses_students_only_for_the_same_settings_and_data(tmp_path):
    data_a, data_b = _samples(tmp_path / "a.pt", 4, 0), _samples(tmp_path / "b.pt", 4, 1)
    fresh = _samples(tmp_path / "e.pt", 2, 2)
    base = ["--eval", str(fresh), "--out", str(tmp_path / "out"), "--steps", "1"]
    base += ["--batch-size", "2", "--test-count", "2", "--no-progress"]
    results = tmp_path / "out" / "self_training.json"
    assert self_training.main(["--data", str(data_a), *base]) == 0
    first = json.loads(results.read_text())
    assert first["settings"]["data_digest"] == diagnose.file_digest(data_a)
    # the same settings: nothing is trained again
    assert self_training.main(["--data", str(data_a), *base]) == 0
    assert json.loads(results.read_text())["student0"] == first["student0"]
    # other data (same file name, other content), then another seed: both students anew
    shutil.copyfile(data_b, data_a)
    assert self_training.main(["--data", str(data_a), *base]) == 0
    second = json.loads(results.read_text())
    for key in ("student0", "student1_flip"):
        assert second[key]["train_seconds"] != first[key]["train_seconds"]
    assert self_training.main(["--data", str(data_a), *base, "--seed", "3"]) == 0
    third = json.loads(results.read_text())
    assert third["settings"]["seed"] == 3
    assert third["student0"]["train_seconds"] != second["student0"]["train_seconds"]


# ------------------------------------------------------------------ F4 context_shapes
@pytest.mark.parametrize("shape", ["dilated", "coarse"])
def test_context_shapes_refuses_saving_interpreters_of_another_shape(shape, tmp_path, capsys):
    argv = ["--shape", shape, "--variants", "patch=1", "--save-interpreters"]
    with pytest.raises(SystemExit) as exc:
        shapes.parse_args([*argv, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert_one_line(capsys.readouterr().err, "context_shapes.py: error:", "--save-interpreters")
    args = shapes.parse_args(["--variants", "patch=1", "--save-interpreters"])  # finest: fine
    assert args.shape == "finest" and args.save_interpreters


def test_context_shapes_never_reuse_another_shapes_scores(tmp_path, monkeypatch, capsys):
    measured = []

    def fake(name, args, world):
        measured.append(name)
        per_class = {"teeth": 0.5, "ear": 0.5}
        return {"variant": name, "miou": 0.5, "per_class": per_class, "fit_seconds": 0.0}

    # the module context_shapes imports when it runs (another test may have loaded a
    # fresh one since this file imported it)
    variants = importlib.import_module("interpreter_variants")
    monkeypatch.setattr(variants, "run_variant", fake)
    argv = ["--out", str(tmp_path), "--variants", "patch=1", "--eval", "2", "--threads", "1"]
    assert shapes.main(["--shape", "dilated", *argv]) == 0
    assert json.loads((tmp_path / "variants.json").read_text())["context_shape"] == "dilated"
    assert shapes.main(["--shape", "dilated", *argv]) == 0  # the same shape: cached
    assert measured == ["patch=1"]
    assert shapes.main(["--shape", "coarse", *argv]) == 0
    assert shapes.main(["--shape", "finest", *argv]) == 0
    assert measured == ["patch=1"] * 3


# ------------------------------------------------------------------ F5/F6 refusals
def test_train_deeplab_refuses_json_device_and_resume_before_the_run(tmp_path, capsys):
    base = ["--preset", "toyface-14", "--eval-toy-test", "4", "--max-steps", "2"]
    (tmp_path / "afile").write_text("x")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "last.pt").write_bytes(b"junk")
    cases = [
        (["--json", str(tmp_path)], ["--json", "is a folder"]),
        (["--json", str(tmp_path / "afile" / "r.json")], ["--json", "afile is a file"]),
        (["--device", "gpu"], ["--device", "'gpu' is not a device"]),
        (["--decoder-channels", "2049"], ["--decoder-channels", "'2049' must be in 1..2048"]),
        (["--resume", "--checkpoint-dir", str(ckpt)], ["--resume", "last.pt", "not a checkpoint"]),
    ]
    for extra, words in cases:
        with pytest.raises(SystemExit) as exc:
            deeplab.parse_args([*base, *extra])
        assert exc.value.code == 2, extra
        assert_one_line(capsys.readouterr().err, *words)


def test_json_outputs_in_an_unwritable_folder_are_refused_when_parsed(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr("os.access", lambda path, mode: False)
    target = str(tmp_path / "r.json")
    with pytest.raises(SystemExit) as exc:
        deeplab.parse_args(["--preset", "toyface-14", "--eval-toy-test", "4", "--json", target])
    assert exc.value.code == 2
    assert_one_line(capsys.readouterr().err, "--json", "is not writable")
    with pytest.raises(SystemExit) as exc:
        evaluate_gan.parse_args(["--generator", "g.safetensors", "--json", target])
    assert exc.value.code == 2
    assert_one_line(capsys.readouterr().err, "--json", "is not writable")


def test_evaluate_gan_refuses_bad_outputs_and_missing_files_in_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    gen = str(ASSETS / "generator.safetensors")
    for option, value, words in [
        ("--json", str(tmp_path), ["--json", "is a folder"]),
        ("--grid", str(tmp_path / "afile" / "g.png"), ["--grid", "afile is a file"]),
    ]:
        with pytest.raises(SystemExit) as exc:
            evaluate_gan.parse_args(["--generator", gen, option, value])
        assert exc.value.code == 2
        assert_one_line(capsys.readouterr().err, *words)
    for argv, words in [
        (["--generator", str(tmp_path / "none.safetensors")], ["none.safetensors"]),
        (["--generator", gen, "--annotator", str(tmp_path / "a.safetensors")], ["a.json"]),
    ]:
        with pytest.raises(SystemExit) as exc:
            evaluate_gan.main([*argv, "--num", "2", "--threads", "1"])
        assert exc.value.code == 2
        assert_one_line(capsys.readouterr().err, "evaluate_gan.py: error:", *words)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--preset", "nope"], ["unknown preset 'nope'"]),
        (["--generator", "missing.pt", "--interpreter", "m.safetensors"], ["missing.pt"]),
    ],
)
def test_stream_quickstart_refuses_bad_sources_in_one_line(argv, words, capsys):
    assert quickstart.main(argv) == 2
    assert_one_line(capsys.readouterr().err, "stream_quickstart.py: error:", *words)


def test_stream_quickstart_refuses_a_preset_whose_files_are_not_installed(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert quickstart.main(["--preset", "bedroom-19"]) == 2
    assert_one_line(capsys.readouterr().err, "stream_quickstart.py: error:", "bedroom-19")


# ------------------------------------------------------------------ F7 histogram
def test_stream_quickstart_histogram_has_every_class_of_the_interpreter(tmp_path, capsys):
    _, interp, _ = quickstart.stand_in_models()
    names = ["sky", "wall", "floor", "bed", "lamp", "rare"]
    interp.class_names = names
    with torch.no_grad():
        interp.b3[:, 5] -= 1e4  # the last class never wins: every batch's labels stop at 4
    path = interp.save(tmp_path / "interp.safetensors")
    argv = ["--generator", str(quickstart.FIXTURE), "--interpreter", str(path)]
    assert quickstart.main([*argv, "--batches", "2", "--batch-size", "1"]) == 0
    out = capsys.readouterr().out
    rows = out.split("class histogram")[1].strip().splitlines()[1:]
    assert [row.split()[1] for row in rows] == names
    assert rows[-1].split()[2] == "0.00%"


# ------------------------------------------------------------------ F8 conv_head
def test_conv_head_keys_carry_eval_test_count_and_world():
    def args(*extra):
        return conv_head.parse_args(["--out", "o", "--student-steps", "2", *extra])

    assert conv_head.settings_key(args("--eval", "2")) != conv_head.settings_key(
        args("--eval", "6")
    )
    a = args()
    assert conv_head.student_key(a, "base") == "student_2000_2000_2x16"
    assert conv_head.student_key(a, "wide") == "student_2000_2000_2x16_wide"
    assert conv_head.student_key(args("--test-count", "4"), "base").endswith("_test4")


# ------------------------------------------------------------------ F9 measure
def test_measure_refuses_adding_results_of_other_settings(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--parts", "suggest", "--arms", "random", "--no-students"]
    argv += ["--reps", "1", "--pool", "10", "--eval", "4", "--fit-steps", "2", "--threads", "1"]
    assert measure.main(argv) == 0
    path = tmp_path / "results.json"
    before = path.read_text()
    assert json.loads(before)["settings"]["suggest"]["eval"] == 4
    capsys.readouterr()
    assert measure.main([*argv, "--eval", "6"]) == 2
    assert_one_line(capsys.readouterr().err, "error:", "--eval 4", "--eval 6", "another --out")
    assert path.read_text() == before


def test_measure_reads_a_folder_without_a_record_as_the_defaults():
    results = {"balance": {"None": {"miou": 0.5}}}
    default = measure.parse_args(["--parts", "balance"])
    assert measure.settings_conflict(results, default) is None
    other = measure.parse_args(["--parts", "balance", "--stream-count", "8"])
    assert "--stream-count 2000" in measure.settings_conflict(results, other)
    # a part this run does not measure is not checked
    assert measure.settings_conflict(results, measure.parse_args(["--parts", "novelty"])) is None


# ------------------------------------------------------------------ F10 atomic JSON
def _with_file_size_limit(write, limit: int = 4096) -> None:
    """Run ``write()`` with files limited to ``limit`` bytes (a full disk); the write's
    OSError (or a script's exit on it) is swallowed."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        write()
    except (OSError, SystemExit):
        pass
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


def test_benchmark_json_survives_a_failed_write(tmp_path):
    path = tmp_path / "bench.json"
    _phases.save_json(path, {"rows": ["previous"]})
    before = path.read_bytes()
    _with_file_size_limit(lambda: _phases.save_json(path, {"rows": ["x" * 100] * 1000}))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]  # no temp file left


def test_evaluate_gan_json_survives_a_failed_write(tmp_path, monkeypatch, capsys):
    path = tmp_path / "q.json"
    path.write_text('{"previous": true}')

    def fake_evaluate(G, annotator, **kwargs):
        return {"kid_mean": 0.0, "kid_std": 0.0, "kid_real_mean": 0.0, "kid_real_std": 0.0,
                "validity_generated": 1.0, "validity_real": 1.0, "validity_real_exact": 1.0,
                "num": 2, "num_subsets": 1, "subset_size": 2, "truncation_psi": 1.0,
                "world": "base", "failures_generated": {}, "big": ["x" * 100] * 1000}  # fmt: skip

    monkeypatch.setattr(evaluate_gan, "evaluate_generator", fake_evaluate)
    argv = ["--generator", str(ASSETS / "generator.safetensors"), "--json", str(path)]
    argv += ["--num", "2", "--device", "cpu"]
    _with_file_size_limit(lambda: evaluate_gan.main(argv))
    assert json.loads(path.read_text()) == {"previous": True}
    evaluate_gan.main(argv)  # without the limit, the whole result
    assert len(json.loads(path.read_text())["big"]) == 1000


# ------------------------------------------------------------------ F11 train_gan
def test_train_gan_records_its_settings_and_refuses_a_mismatch_on_resume(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--steps", "1", "--size", "16", "--batch", "2"]
    argv += ["--bank", "4", "--save-every", "1", "--threads", "1"]
    assert train_gan.main(argv) == 0
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    settings = json.loads(ck["settings"])
    assert settings == {"size": 16, "lr": 2e-3, "r1_every": 16, "batch": 2, "seed": 0}
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == 1
    capsys.readouterr()
    for extra, words in [
        (["--size", "32"], ["--size 32", "--size 16"]),
        (["--lr", "1e-5"], ["--lr 1e-05", "--lr 0.002"]),
        (["--r1-every", "4"], ["--r1-every 4", "--r1-every 16"]),
        (["--size", "32", "--export-only"], ["--size 32", "--size 16"]),
    ]:
        with pytest.raises(SystemExit) as exc:
            train_gan.parse_args([*argv, "--steps", "2", *extra])
        assert exc.value.code == 2
        assert_one_line(capsys.readouterr().err, "train_gan.py: error:", *words)
    # another batch size is allowed
    assert train_gan.parse_args([*argv, "--steps", "2", "--batch", "4"]).batch == 4


def test_the_committed_checkpoint_keeps_resuming_and_is_checked_by_its_tensors(tmp_path, capsys):
    shutil.copyfile(
        REPO / "examples" / "toy" / "checkpoint" / "toygan.pt", tmp_path / "checkpoint.pt"
    )
    for extra, words in [
        (["--size", "32"], ["--size 32", "--size 64"]),
        (["--lr", "0.001"], ["--lr 0.001", "--lr 0.002"]),
    ]:
        with pytest.raises(SystemExit) as exc:
            train_gan.parse_args(["--out", str(tmp_path), "--steps", "24001", *extra])
        assert exc.value.code == 2
        assert_one_line(capsys.readouterr().err, *words)
    args = train_gan.parse_args(["--out", str(tmp_path), "--steps", "24001", "--batch", "8"])
    assert args.size == 64  # the defaults (and rebuild.py's --batch 8) resume it
    ck = train_gan.load_checkpoint(tmp_path / "checkpoint.pt")
    assert "settings" not in ck
    assert train_gan.checkpoint_settings(ck) == {"size": 64, "lr": 2e-3, "r1_every": 16}


# ------------------------------------------------------------------ follow-ups
def test_bench_interpreter_needs_two_pixels_per_step(capsys):
    with pytest.raises(SystemExit) as exc:
        bench_interpreter.parse_args(["--batch-size", "1"])
    assert exc.value.code == 2
    assert_one_line(capsys.readouterr().err, "--batch-size", "'1' must be >= 2")
    assert bench_interpreter.parse_args(["--batch-size", "2"]).batch_size == 2


def test_train_deeplab_holdout_shows_its_validation_score_as_a_percentage(tmp_path, capsys):
    from test_train import make_tiny_models

    from dgan_data.downstream.realdata import write_labeled_folder
    from dgan_data.downstream.train import render_labeled
    from dgan_data.toy import CLASS_NAMES

    gen, interp = make_tiny_models(tmp_path / "m", size=32)
    images, masks = render_labeled("test", 4, size=32)
    write_labeled_folder(tmp_path / "real", images, masks, class_names=list(CLASS_NAMES))
    out = tmp_path / "r.json"
    argv = [
        "--generator", str(gen), "--interpreter", str(interp),
        "--eval-folder", str(tmp_path / "real"), "--max-steps", "2", "--batch-size", "2",
        "--eval-every", "1", "--protocol", "holdout", "--val-samples", "4",
        "--threads", "1", "--no-progress", "--json", str(out),
    ]  # fmt: skip
    deeplab.run(deeplab.parse_args(argv))
    val = json.loads(out.read_text())["selection"]["val_miou"]
    assert val > 0.001
    shown = re.search(r"validation score ([0-9.]+)\)", capsys.readouterr().out)
    assert float(shown.group(1)) == pytest.approx(100 * val, abs=0.06)


# ------------------------------------------- train_deeplab / train_lightning, review 5
# What the earlier fix of the resume and option checks (tests/test_resume_checks.py) left.
CLASSES = 14  # the toy world's


def test_train_deeplab_resume_refuses_other_model_options_when_parsed(tmp_path, capsys):
    """Another --output-stride loaded last.pt without an error (same weights, other
    dilations) and mixed two models in one run; the step_*.pt beside last.pt records
    the model's config."""
    from dgan_data.downstream.train import build_deeplab, save_segmentation_model

    model = build_deeplab(CLASSES, image_size=32, output_stride=16, decoder_channels=16)
    save_segmentation_model(model, tmp_path / "step_0000002.pt", step=2)
    state = {k: {} for k in ("model", "optimizer", "scaler", "history")}
    torch.save({**state, "step": 2}, tmp_path / "last.pt")
    argv = [
        "--preset", "toyface-14", "--eval-toy-test", "4", "--max-steps", "4",
        "--resume", "--checkpoint-dir", str(tmp_path), "--decoder-channels", "16",
    ]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        deeplab.parse_args([*argv, "--output-stride", "8"])
    assert exc.value.code == 2
    assert_one_line(
        capsys.readouterr().err, "--resume", "step_0000002.pt", "--output-stride 16 (this run: 8)"
    )
    assert deeplab.parse_args(argv).resume_step == 2  # the same options continue


@pytest.mark.parametrize(
    "saved",
    [
        {"per_image": {2: 5}, "val": {}},  # TypeError traceback
        {
            "per_image": {2: torch.zeros(4)},
            "val": {},
            "eval_set": {"description": "x", "images": 4},
        },
    ],
    ids=["number", "one-dim-with-matching-eval-set"],
)
def test_train_deeplab_refuses_a_scores_file_without_confusions(tmp_path, saved):
    """Such entries gave a traceback, or passed and failed the checkpoint choice after
    all the training."""
    torch.save(saved, tmp_path / "scores.pt")
    with pytest.raises(UsageError, match=r"scores\.pt: not a scores file of this script"):
        deeplab.EvalScores(tmp_path, True, "x", 4).load(2)


def test_encoder_weights_with_keys_that_are_not_names_are_refused(tmp_path):
    """weights_only loads a dict with int keys; it escaped as AttributeError."""
    from dgan_data.downstream.train import build_deeplab

    path = tmp_path / "enc.pth"
    torch.save({0: torch.zeros(1)}, path)
    with pytest.raises(ValueError, match=r"enc\.pth: not a weights-only torch state dict"):
        build_deeplab(CLASSES, encoder_weights=path)


def test_train_lightning_names_a_damaged_preset_file_in_one_line(
    lightning, tmp_path, monkeypatch, capsys
):
    """The stream loads the preset's files on first use, after the data module is
    built: a damaged generator gave a CheckpointError traceback, exit 1."""
    lightning_example = load_example("train_lightning", "review_train_lightning")
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path))
    folder = tmp_path / "car-12"
    folder.mkdir()
    for name in ("generator.safetensors", "interpreter.safetensors"):
        (folder / name).write_text("not a checkpoint")
    argv = ["--preset", "car-12", "--device", "cpu", "--epochs", "1", "--steps-per-epoch", "1"]
    assert lightning_example.main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith("train_lightning.py: error: ") and "generator.safetensors" in err[0]
