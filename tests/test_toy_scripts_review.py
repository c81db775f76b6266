"""Review of the toy GAN and preset scripts: a resume records the worlds it knows and
no more, a checkpoint or a cached bank that does not fit is refused or rebuilt without a
traceback, and ``build_preset.py`` refuses a generator, seeds or a quality file it cannot
use before it fits anything."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from example_scripts import assert_one_line, load_example

import dgan_data
from dgan_data.toy import SPLITS, render_faces

ASSETS = Path(dgan_data.__file__).parent / "toy" / "assets"

train_gan = load_example("toy/train_gan", "toy_review_train_gan")
build_preset = load_example("toy/build_preset", "toy_review_build_preset")

#: A 16 px run of two steps: seconds on one thread.
TINY_RUN = ["--size", "16", "--bank", "4", "--batch", "2", "--save-every", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run folder after two steps on the base world (checkpoint, bank, summary)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert train_gan.main(["--out", str(out), "--steps", "2", *TINY_RUN]) == 0
    return out


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    """A copy of the trained run folder, to resume or spoil."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def resume(out: Path, steps: int, *extra: str) -> int:
    return train_gan.main(["--out", str(out), "--steps", str(steps), *TINY_RUN, *extra])


def summary_worlds(out: Path) -> list[dict]:
    return json.loads((out / "summary.json").read_text())["worlds"]


# ------------------------------------------------------- train_gan: the world record
def test_a_checkpoint_without_a_world_record_is_no_fine_tune(run_copy, caplog, capsys):
    ckpt = run_copy / "checkpoint.pt"
    ck = torch.load(ckpt, weights_only=True)
    del ck["worlds"]  # as the committed checkpoints, written before the record
    torch.save(ck, ckpt)
    with caplog.at_level(logging.INFO):
        assert resume(run_copy, 3, "--world", "wide") == 0
    assert "fine-tune" not in caplog.text
    assert "does not record the world" in caplog.text
    expected = [{"from_step": 0, "world": "unknown"}, {"from_step": 2, "world": "wide"}]
    assert summary_worlds(run_copy) == expected
    assert json.loads(torch.load(ckpt, weights_only=True)["worlds"]) == expected


def test_a_checkpoint_without_a_world_record_exports_its_steps_as_unknown(run_copy, capsys):
    ckpt = run_copy / "checkpoint.pt"
    ck = torch.load(ckpt, weights_only=True)
    del ck["worlds"]
    torch.save(ck, ckpt)
    assert resume(run_copy, 2, "--export-only") == 0
    assert summary_worlds(run_copy) == [{"from_step": 0, "world": "unknown"}]
    assert "does not record its toy world" in capsys.readouterr().out


def test_a_resume_with_no_step_left_only_exports(run_copy, caplog, capsys):
    before = (run_copy / "checkpoint.pt").read_bytes()
    with caplog.at_level(logging.INFO):
        assert resume(run_copy, 1, "--world", "wide") == 0
    assert "fine-tune" not in caplog.text and "nothing to train" in caplog.text
    assert summary_worlds(run_copy) == [{"from_step": 0, "world": "base"}]
    assert json.loads((run_copy / "summary.json").read_text())["steps"] == 2
    assert not list(run_copy.glob("train_bank_*_wide.pt"))  # no bank rendered for it
    assert (run_copy / "checkpoint.pt").read_bytes() == before


# --------------------------------------------------- train_gan: checkpoints it refuses
def _all_keys_wrong_g(ck: dict) -> dict:
    return {**ck, "G": {"x": torch.zeros(1)}}


@pytest.mark.parametrize(
    ("spoil", "words"),
    [
        (lambda ck: {"model": {}, "step": 3}, ["no G, D, G_ema, opt_g, opt_d, rng, history"]),
        (lambda ck: torch.zeros(3), ["holds a Tensor"]),
        (_all_keys_wrong_g, ["its G does not fit", "1 unexpected, first x"]),
        (lambda ck: {**ck, "D": {**ck["D"], "fc2.bias": torch.zeros(5)}}, ["its D", "misshapen"]),
        (lambda ck: {**ck, "opt_g": {}}, ["its opt_g does not load"]),
        (lambda ck: {**ck, "rng": torch.zeros(3)}, ["its rng does not load"]),
        (lambda ck: {**ck, "history": "{not json"}, ["its history does not load"]),
        (lambda ck: {**ck, "worlds": "[1]"}, ["its worlds does not load"]),
    ],
    ids=["foreign", "tensor", "other-G", "misshapen-D", "opt_g", "rng", "history", "worlds"],
)
def test_a_checkpoint_this_script_cannot_resume_is_one_line(run_copy, capsys, spoil, words):
    ckpt = run_copy / "checkpoint.pt"
    torch.save(spoil(torch.load(ckpt, weights_only=True)), ckpt)
    for extra in ([], ["--export-only"]):
        with pytest.raises(SystemExit) as exc:
            train_gan.parse_args(["--out", str(run_copy), "--steps", "3", *TINY_RUN, *extra])
        assert exc.value.code == 2
        assert_one_line(capsys.readouterr().err, "train_gan.py: error:", str(ckpt), *words)


def test_a_folder_named_checkpoint_or_bank_is_refused(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--steps", "1", *TINY_RUN]
    bank = tmp_path / "train_bank_4_16px.pt"
    bank.mkdir()
    with pytest.raises(SystemExit) as exc:
        train_gan.parse_args(argv)
    assert exc.value.code == 2
    assert_one_line(capsys.readouterr().err, str(bank), "not a file")
    bank.rmdir()
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.mkdir()
    for extra in ([], ["--export-only"]):
        with pytest.raises(SystemExit) as exc:
            train_gan.parse_args([*argv, *extra])
        assert exc.value.code == 2
        assert_one_line(capsys.readouterr().err, str(ckpt), "not a file")


def test_a_checkpoint_of_the_right_settings_still_resumes(trained):
    args = train_gan.parse_args(["--out", str(trained), "--steps", "3", *TINY_RUN])
    assert args.steps == 3 and args.size == 16


# ---------------------------------------------------------- train_gan: the bank cache
@pytest.mark.parametrize(
    "cached",
    [b"garbage", torch.zeros(2, 3, 16, 16), torch.zeros(3, 3, 16, 16, dtype=torch.uint8)],
    ids=["not-torch", "float", "other-count"],
)
def test_a_damaged_or_other_bank_cache_is_rendered_again(tmp_path, caplog, cached):
    path = tmp_path / "train_bank_2_16px.pt"
    if isinstance(cached, bytes):
        path.write_bytes(cached)
    else:
        torch.save(cached, path)
    with caplog.at_level(logging.WARNING):
        bank = train_gan.load_bank(tmp_path, 2, 16)
    expected, _ = render_faces(SPLITS["train"][:2], size=16)
    assert torch.equal(bank, (expected * 255).round().to(torch.uint8))
    assert str(path) in caplog.text and "rendering it again" in caplog.text
    assert torch.equal(torch.load(path, weights_only=True), bank)  # the cache is mended


# ---------------------------------------------------------------------- build_preset
def tiny_build(generator: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--generator", str(generator), "--out", str(out), "--num", "2", "--eval-num", "2",
        "--max-steps", "1", "--num-models", "1", "--coverage", "0", "--threads", "1", *extra,
    ]  # fmt: skip


def test_a_generator_of_another_size_is_refused_before_the_fit(tmp_path, monkeypatch, capsys):
    small = train_gan.build_generator(16).eval().save(tmp_path / "g16.safetensors")

    def fit(*args, **kwargs):
        raise AssertionError("fitted before the generator's size was checked")

    monkeypatch.setattr(build_preset, "fit_without_coarse", fit)
    assert build_preset.main(tiny_build(small, tmp_path / "out")) == 2
    assert_one_line(
        capsys.readouterr().err, "build_preset.py: error:", str(small), "16x16", "64x64"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g16.safetensors"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--start-seed", "99998", "--num", "4"], ["99998..100001", "100000..100001"]),
        (["--start-seed", "100001"], ["100001..100002", "100000..100001"]),
        (
            ["--start-seed", "98000", "--coverage", "3", "--coverage-search", "2000"],
            ["98000..100001", "100000..100001"],
        ),
    ],
    ids=["annotated", "inside", "coverage-search"],
)
def test_annotation_seeds_meeting_the_evaluation_seeds_are_refused(tmp_path, capsys, extra, words):
    with pytest.raises(SystemExit) as exc:
        build_preset.parse_args(tiny_build(ASSETS / "generator.safetensors", tmp_path, *extra))
    assert exc.value.code == 2
    assert_one_line(capsys.readouterr().err, "build_preset.py: error:", "evaluation", *words)


def test_annotation_seeds_beside_the_evaluation_seeds_are_allowed(tmp_path):
    for extra in (
        ["--start-seed", "99998"],  # 99998, 99999
        ["--start-seed", "100002"],  # just after the two evaluation seeds
        ["--start-seed", "98000", "--coverage", "3", "--coverage-search", "1998"],
    ):
        args = build_preset.parse_args(
            tiny_build(ASSETS / "generator.safetensors", tmp_path, *extra)
        )
        assert args.start_seed == int(extra[1])


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--seed", str(2**63)], ["--seed", "below 2**63"]),
        (["--start-seed", str(2**63)], ["--start-seed", "below 2**63"]),
        (["--start-seed", str(2**63 - 1)], ["annotation seeds", "past 2**63 - 1"]),
        (
            ["--start-seed", str(2**63 - 100), "--coverage", "1", "--coverage-search", "200"],
            ["annotation seeds", "past 2**63 - 1"],
        ),
    ],
    ids=["seed", "start-seed", "num", "coverage-search"],
)
def test_seeds_past_the_seed_range_are_refused_when_parsed(tmp_path, capsys, extra, words):
    with pytest.raises(SystemExit) as exc:
        build_preset.parse_args(tiny_build(ASSETS / "generator.safetensors", tmp_path, *extra))
    assert exc.value.code == 2
    assert_one_line(capsys.readouterr().err, "build_preset.py: error:", *words)


def test_the_last_seeds_of_the_range_are_allowed(tmp_path):
    argv = tiny_build(ASSETS / "generator.safetensors", tmp_path)
    args = build_preset.parse_args(
        [*argv, "--seed", str(2**63 - 1), "--start-seed", str(2**63 - 2)]
    )
    assert args.seed == 2**63 - 1 and args.start_seed == 2**63 - 2


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"], ids=["invalid", "list"])
def test_a_quality_file_that_is_no_json_object_is_named(tmp_path, text):
    path = tmp_path / "q.json"
    path.write_text(text)
    with pytest.raises(ValueError) as exc:
        build_preset.gan_gate(str(path))
    assert str(exc.value).startswith(str(path))
