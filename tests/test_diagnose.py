"""The toy chain diagnosis: cache keys follow the files they depend on, report is complete."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from example_scripts import load_example

diagnose = load_example("toy/diagnose", "toy_diagnose")


def test_file_digest_changes_with_any_byte(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"annotator")
    b.write_bytes(b"interpreter")
    before = diagnose.file_digest(a, b)
    assert before == diagnose.file_digest(a, b) and len(before) == 8
    b.write_bytes(b"interpreteR")
    assert diagnose.file_digest(a, b) != before
    assert diagnose.file_digest(b, a) != diagnose.file_digest(a, b)


def small_run(out, *extra: str) -> list[str]:
    """Arguments of a seconds-long diagnose run into ``out``, plus ``extra``."""
    common = ["--steps", "2", "--test-count", "8", "--batch-size", "4", "--no-progress"]
    return ["--out", str(out), *common, "--threads", "1", *extra]


def test_small_run_reports_every_link_and_tags_data_with_digests(tmp_path, capsys):
    argv = small_run(tmp_path, "--arms", "R,F", "--count", "8", "--eval-count", "16")
    assert diagnose.main(argv) == 0
    result = json.loads((tmp_path / "diagnose.json").read_text())
    ann, preset = result["annotator_digest"], result["preset_digest"]
    assert set(result["students"]) == {f"R_8_{ann}_steps2x4_test8", "F_16_steps2x4_test8"}
    assert (tmp_path / "cache" / f"R_8_{ann}.pt").is_file()
    assert any(p.name.endswith(f"_{preset}.pt") for p in (tmp_path / "cache").iterdir())
    for name in ("gan_usefulness", "interpreter_usefulness", "few_shot_ratio"):
        assert name in result["ratios"]
    assert result["ratios"]["gan_usefulness"] is None  # G was not trained
    u = result["uncertainty"]
    assert 0.0 <= u["pixel_js_auroc"] <= 1.0 and u["images"] == 16
    assert set(result["interpreter_vs_annotator_per_class"]) == set(diagnose.CLASS_NAMES)
    sizes = result["interpreter_vs_annotator_by_head_size"]
    assert [g["images"] for g in sizes] == [6, 5, 5]  # 16 samples in three groups
    assert sizes[0]["head_pixels"][1] <= sizes[1]["head_pixels"][0]
    out = capsys.readouterr().out
    assert "few_shot_ratio" in out and "uncertainty" in out and "by head size" in out
    # a rerun trains nothing new: the students are cached under the same keys
    mtime = (tmp_path / "diagnose.json").stat().st_mtime_ns
    assert diagnose.main(argv) == 0
    again = json.loads((tmp_path / "diagnose.json").read_text())
    assert again["students"] == result["students"]
    assert (tmp_path / "diagnose.json").stat().st_mtime_ns >= mtime


def test_head_size_groups_order_images_by_head_pixels_and_score_each_group():
    skin, hair, cloth = (diagnose.CLASS_NAMES.index(c) for c in ("skin", "hair", "cloth"))
    reference = torch.zeros(4, 4, 4, dtype=torch.long)
    reference[0, :1] = skin  # 4 head pixels
    reference[1, :3] = skin  # 12
    reference[2, :2] = hair  # 8
    reference[3, :2] = cloth  # no head pixel: cloth is not the head
    reference[3, 3, 3] = 255  # nor is an ignored pixel
    labels = reference.clone()
    labels[1, :3] = 0  # the largest head is missed entirely
    groups = diagnose.by_head_size(labels, reference, groups=2)
    assert [g["head_pixels"] for g in groups] == [[0, 4], [8, 12]]
    assert [g["images"] for g in groups] == [2, 2]
    assert groups[0]["miou"] == pytest.approx(1.0)  # images 3 and 0: labeled exactly
    # images 2 and 1: hair right; skin 0 of 12; background's 12 pixels all found, but
    # 24 predicted (the 12 skin ones too): IoU 12 / 24
    assert groups[1]["miou"] == pytest.approx((1.0 + 0.0 + 0.5) / 3)


def test_fewshot_draws_are_separate_students_and_f_is_their_mean(tmp_path, capsys):
    argv = small_run(tmp_path, "--arms", "F", "--fewshot-draws", "3", "--eval-count", "8")
    assert diagnose.main(argv) == 0
    result = json.loads((tmp_path / "diagnose.json").read_text())
    keys = ["F_16_steps2x4_test8", "F_16_draw1_steps2x4_test8", "F_16_draw2_steps2x4_test8"]
    assert sorted(result["students"]) == sorted(keys)
    draws = result["fewshot_draws"]
    assert draws["miou"] == [result["students"][k]["miou"] for k in keys]
    assert draws["mean"] == pytest.approx(sum(draws["miou"]) / 3)
    assert draws["std"] is not None and draws["std"] >= 0
    assert "3 draws" in capsys.readouterr().out


def test_another_world_trains_f_and_a_on_its_renders_under_their_own_keys(tmp_path, capsys):
    argv = small_run(tmp_path, "--arms", "F", "--eval-count", "8")
    assert diagnose.main(argv) == 0
    base_run = json.loads((tmp_path / "diagnose.json").read_text())
    assert base_run["study_skipped"] is None and base_run["uncertainty"] is not None
    capsys.readouterr()
    assert diagnose.main([*argv, "--world", "wide"]) == 0
    result = json.loads((tmp_path / "diagnose.json").read_text())
    assert result["world"] == "wide"
    # without the wide world's files the study would measure the base world's: skipped
    assert "--world wide" in result["study_skipped"]
    for name in ("annotator_miou", "interpreter_vs_annotator_miou", "uncertainty", "coverage"):
        assert result[name] is None, name
    assert "study skipped" in capsys.readouterr().out
    base, wide = (
        result["students"]["F_16_steps2x4_test8"],
        result["students"]["F_16_wide_steps2x4_test8"],
    )
    assert base["miou"] != wide["miou"]  # other training images and test set
    assert result["fewshot_draws"]["miou"] == [wide["miou"]]


def test_the_wide_preset_measures_its_own_world_with_its_shipped_files(tmp_path):
    """``--preset toyface-14-wide`` renders the wide world and studies the wide chain's
    shipped interpreter against the wide annotator, with no file flags."""
    import dgan_data.toy as toy

    argv = small_run(tmp_path, "--arms", "R", "--count", "8", "--eval-count", "8")
    assert diagnose.main([*argv, "--preset", "toyface-14-wide"]) == 0
    result = json.loads((tmp_path / "diagnose.json").read_text())
    assert result["world"] == "wide" and result["study_skipped"] is None
    wide_annotator = toy.toy_annotator_path("wide")
    assert result["annotator_digest"] == diagnose.file_digest(wide_annotator)
    meta = json.loads(wide_annotator.with_suffix(".json").read_text())
    assert result["annotator_miou"] == pytest.approx(meta["test_miou"])
    assert set(result["students"]) == {f"R_8_wide_{result['annotator_digest']}_wide_steps2x4_test8"}


def test_another_worlds_r_g_s_take_that_worlds_files_and_r_renders_it(tmp_path):
    """In the wide world R is wide renders labeled by the given annotator, and G and S use
    the given generator; the files' digests key the data, so nothing mixes with base."""
    import shutil

    import dgan_data.toy as toy
    from dgan_data import load_generator

    assets = Path(toy.__file__).parent / "assets"
    own = tmp_path / "wide_files"
    own.mkdir()
    for name in ("annotator.safetensors", "annotator.json"):
        shutil.copyfile(assets / name, own / name)
    # another generator of the same architecture (the shipped one, one layer scaled) and
    # an interpreter fitted on its features
    G = load_generator("toyface-14")
    with torch.no_grad():
        G.get_parameter("style.1.weight").mul_(1.5)
    G.save(own / "generator.safetensors")
    interpreter = own / "interpreter.safetensors"
    _tiny_interpreter(load_generator(own / "generator.safetensors"), interpreter)
    files = ["--generator", str(own / "generator.safetensors"),
             "--interpreter", str(interpreter),
             "--annotator", str(own / "annotator.safetensors")]  # fmt: skip
    argv = small_run(tmp_path / "run", "--arms", "R,G", "--count", "8", "--eval-count", "8")
    assert diagnose.main([*argv, "--world", "wide", *files]) == 0
    result = json.loads((tmp_path / "run" / "diagnose.json").read_text())
    assert result["world"] == "wide" and result["generator_file"] == "generator.safetensors"
    # with the world's own files the study runs, on them
    assert result["study_skipped"] is None and result["uncertainty"]["images"] == 8
    ann = result["annotator_digest"]  # the copy has the shipped annotator's bytes
    assert ann == diagnose.file_digest(assets / "annotator.safetensors")
    assert set(result["students"]) == {
        f"R_8_wide_{ann}_wide_steps2x4_test8",
        f"G_8_psi0.8_{result['gan_digest']}_wide_steps2x4_test8",
    }
    r = torch.load(tmp_path / "run" / "cache" / f"R_8_wide_{ann}.pt", weights_only=True)
    seeds = diagnose.SPLITS["train"][diagnose.R_START : diagnose.R_START + 8]
    wide, _ = diagnose.render_images(seeds, variation="wide")
    assert torch.equal(r["images"], wide)
    # G came from the given generator, not the preset's
    assert diagnose.main([*argv]) == 0
    base = json.loads((tmp_path / "run" / "diagnose.json").read_text())
    assert base["gan_digest"] != result["gan_digest"]
    g_wide = torch.load(
        tmp_path / "run" / "cache" / f"G_8_psi0.8_{result['gan_digest']}.pt", weights_only=True
    )
    g_base = torch.load(
        tmp_path / "run" / "cache" / f"G_8_psi0.8_{base['gan_digest']}.pt", weights_only=True
    )
    assert not torch.equal(g_wide["images"], g_base["images"])


def test_fewshot_from_trains_only_later_draws_and_keeps_students_another_run_wrote(tmp_path):
    """Two runs in one --out split the draws; neither loses the other's students."""
    later = small_run(tmp_path, "--arms", "F", "--fewshot-draws", "2", "--fewshot-from", "1")
    assert diagnose.main([*later, "--eval-count", "8"]) == 0
    first = json.loads((tmp_path / "diagnose.json").read_text())
    assert sorted(first["students"]) == ["F_16_draw1_steps2x4_test8"]
    # a student written by a concurrent run after this one started is kept
    results = {"students": {}}
    diagnose.record_student(tmp_path / "diagnose.json", results, "X_steps2x4_test8", {"miou": 0.5})
    assert set(results["students"]) == {"F_16_draw1_steps2x4_test8", "X_steps2x4_test8"}
    both = small_run(tmp_path, "--arms", "F", "--fewshot-draws", "2", "--eval-count", "8")
    assert diagnose.main(both) == 0
    result = json.loads((tmp_path / "diagnose.json").read_text())
    assert set(result["students"]) == {
        "F_16_steps2x4_test8",
        "F_16_draw1_steps2x4_test8",
        "X_steps2x4_test8",
    }
    assert (
        result["students"]["F_16_draw1_steps2x4_test8"]
        == first["students"]["F_16_draw1_steps2x4_test8"]
    )
    assert len(result["fewshot_draws"]["miou"]) == 2


def test_stream_settings_name_the_s_data_and_student(tmp_path):
    argv = small_run(tmp_path, "--arms", "S", "--count", "8", "--eval-count", "8")
    options = ["--drop-uncertain", "0", "--class-balance", "image"]
    assert diagnose.main([*argv, *options]) == 0
    result = json.loads((tmp_path / "diagnose.json").read_text())
    assert result["stream_options"] == {"drop_uncertain": 0.0, "class_balance": "image"}
    key = f"S_8_psi0.8_drop0_balimage_{result['preset_digest']}"
    assert set(result["students"]) == {key + "_steps2x4_test8"}
    assert (tmp_path / "cache" / f"{key}.pt").is_file()
    # the default stream is other data under another key, not the cached balanced one
    assert diagnose.main(argv) == 0
    plain = json.loads((tmp_path / "diagnose.json").read_text())
    assert f"S_8_psi0.8_{result['preset_digest']}_steps2x4_test8" in plain["students"]
    assert plain["stream_options"] == {}


def test_each_seed_scores_the_interpreter_on_its_own_samples(tmp_path):
    argv = small_run(tmp_path, "--arms", "F", "--eval-count", "8")
    assert diagnose.main(argv) == 0
    assert diagnose.main([*argv, "--seed", "1"]) == 0
    evals = sorted(p.name for p in (tmp_path / "cache").glob("eval_*.pt"))
    assert len(evals) == 2 and "_seed1_" in evals[1] and "_seed" not in evals[0]
    a, b = (torch.load(tmp_path / "cache" / e, weights_only=True) for e in evals)
    assert not torch.equal(a["images"], b["images"])


def test_soft_labels_are_cached_with_the_s_data_and_name_its_student(tmp_path):
    argv = small_run(tmp_path, "--arms", "S", "--count", "8", "--eval-count", "8")
    assert diagnose.main([*argv, "--soft-labels"]) == 0
    result = json.loads((tmp_path / "diagnose.json").read_text())
    assert result["stream_options"] == {"soft_labels": True}
    key = f"S_8_psi0.8_soft_{result['preset_digest']}"
    assert set(result["students"]) == {key + "_steps2x4_test8"}
    data = torch.load(tmp_path / "cache" / f"{key}.pt", weights_only=True)
    assert data["probs"].shape == (8, 14, 64, 64)
    # each label is its pixel's likeliest class (float16 may break a near tie)
    agree = (data["probs"].float().argmax(1) == data["labels"]).float().mean()
    assert agree > 0.999


def _tiny_interpreter(G, path: Path) -> None:
    """A 3-step interpreter for ``G`` on two of the shipped annotations, saved at ``path``."""
    from dgan_data import Interpreter
    from dgan_data.annotations import Annotations
    from dgan_data.presets import resolve_preset_file

    shipped = resolve_preset_file("toyface-14", "interpreter")
    ann = Annotations.load(shipped.parent / "annotations")
    w = ann.latents_w(G)
    feats = [[f[0].half() for f in G.synthesize(w[i : i + 1], noise="const")[1]] for i in range(2)]
    masks = torch.stack([torch.as_tensor(m).long() for m in ann.masks[:2]])
    other = Interpreter.fit_features(
        feats, masks, 14, 2, max_steps=3, min_steps=1, seed=0, fingerprint=G.fingerprint(),
        class_names=list(diagnose.CLASS_NAMES), progress=False,
    )  # fmt: skip
    other.save(path)


def test_another_interpreter_makes_its_own_s_but_shares_g(tmp_path):
    from dgan_data import load_generator

    path = tmp_path / "other" / "interpreter.safetensors"
    path.parent.mkdir()
    _tiny_interpreter(load_generator("toyface-14"), path)
    argv = small_run(tmp_path / "run", "--arms", "S,G", "--count", "8", "--eval-count", "8")
    assert diagnose.main(argv) == 0
    default = json.loads((tmp_path / "run" / "diagnose.json").read_text())
    assert diagnose.main([*argv, "--interpreter", str(path)]) == 0
    result = json.loads((tmp_path / "run" / "diagnose.json").read_text())
    assert result["interpreter_file"] == "interpreter.safetensors"
    assert result["gan_digest"] == default["gan_digest"] == default["preset_digest"]
    assert result["preset_digest"] != default["preset_digest"]
    gan_key = f"G_8_psi0.8_{default['gan_digest']}_steps2x4_test8"
    s_keys = {f"S_8_psi0.8_{r['preset_digest']}_steps2x4_test8" for r in (default, result)}
    assert set(result["students"]) == {gan_key, *s_keys}  # G trained once, S twice
    assert result["coverage"] == {"folder": None}  # no annotations beside the file
    assert result["interpreter_vs_annotator_miou"] != default["interpreter_vs_annotator_miou"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--steps", "0"],
        ["--arms", "R,X"],
        ["--fewshot-draws", "0"],
        ["--fewshot-draws", "2", "--fewshot-from", "2"],
        ["--fewshot-from", "-1"],
        ["--drop-uncertain", "1"],
        ["--class-balance", "rare"],
        ["--interpreter", "no-such-file.safetensors"],
        ["--world", "narrow"],
        ["--world", "wide", "--arms", "F,S"],
        ["--world", "wide", "--arms", "R", "--annotator", "a.safetensors"],
        ["--preset", "toyface-14-wide", "--world", "base", "--arms", "S"],
        ["--generator", "no-such-file.safetensors"],
        ["--annotator", "no-such-file.safetensors"],
    ],
)
def test_bad_settings_exit_2(argv, tmp_path):
    with pytest.raises(SystemExit) as exc:
        diagnose.main(["--out", str(tmp_path), *argv])
    assert exc.value.code == 2


def test_coverage_counts_the_shipped_annotations_by_the_build_rule():
    """diagnose's coverage of the shipped preset agrees with what build_preset wrote into
    preset_metrics.json (a class counts from 4 pixels on), and lists any-pixel counts."""
    import dgan_data.toy as toy

    assets = Path(toy.__file__).parent / "assets"
    cov = diagnose.coverage(assets / "interpreter.safetensors")
    built = json.loads((assets / "preset_metrics.json").read_text())
    assert cov["images_per_class"] == built["annotated_images_per_class"]
    assert cov["images"] == 16 and cov["all_classes_in_3_images"]
    for name, count in cov["images_per_class"].items():
        assert count <= cov["images_with_any_pixel"][name] <= 16
    assert cov["images_with_any_pixel"] != cov["images_per_class"]  # teeth: few pixels


def test_ignore_uncertain_pixels_names_the_s_student_and_ignores_by_label_class():
    from types import SimpleNamespace

    names = list(diagnose.CLASS_NAMES)
    assert diagnose.ignore_thresholds("hair=0.01,ear=0") == {"hair": 0.01, "ear": 0.0}
    assert diagnose.ignore_thresholds("0.02") == dict.fromkeys(names, 0.02)
    for bad in ("hat=0.1", "hair", "hair=-1", "hair=nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            diagnose.ignore_thresholds(bad)
    hair, ear = names.index("hair"), names.index("ear")
    labels = torch.tensor([[[hair, hair, ear, 0]]])  # one 1 x 4 image
    js = torch.tensor([[[0.5, 0.001, 0.5, 0.5]]])

    class Relabel:  # labels the seeds again as the stream did, with their pixel JS
        def label(self, seeds):
            return SimpleNamespace(masks=labels[: len(seeds)], pixel_uncertainty=js)

    samples = {"labels": labels.clone(), "seeds": torch.tensor([7])}
    out = diagnose.ignore_uncertain(samples, Relabel(), {"hair": 0.01})
    assert out["labels"].tolist() == [[[255, hair, ear, 0]]]  # only the uncertain hair pixel
    assert samples["labels"].tolist() == labels.tolist()  # the cached samples untouched
    other = SimpleNamespace(
        label=lambda seeds: SimpleNamespace(masks=labels * 0, pixel_uncertainty=js)
    )
    with pytest.raises(RuntimeError, match="other labels than the stream"):
        diagnose.ignore_uncertain(samples, other, {"hair": 0.01})


def test_ignore_uncertain_pixels_gets_its_own_s_student(tmp_path):
    argv = small_run(tmp_path, "--arms", "S", "--count", "8", "--eval-count", "8")
    assert diagnose.main([*argv, "--ignore-uncertain-pixels", "hair=0.001"]) == 0
    result = json.loads((tmp_path / "diagnose.json").read_text())
    assert result["ignore_uncertain_pixels"] == {"hair": 0.001}
    key = f"S_8_psi0.8_ignhair0.001_{result['preset_digest']}_steps2x4_test8"
    assert set(result["students"]) == {key}
