"""The interpreter-variants script: parsing, the training sets it builds, a tiny run."""

from __future__ import annotations

import json

import pytest
import torch
from example_scripts import load_example

variants = load_example("toy/interpreter_variants", "toy_interpreter_variants")


def test_parse_variant_reads_joined_settings_and_refuses_nonsense():
    assert variants.parse_variant("shipped") == {}
    assert variants.parse_variant("steps=8000+hidden=256x128") == {
        "steps": 8000,
        "hidden": (256, 128),
    }
    assert variants.parse_variant("selftrain=32+keep=0.5") == {"selftrain": 32, "keep": 0.5}
    for bad in ("steps", "colour=3", "steps=x", "hidden=256", "dropout=1.5", "noise=-1"):
        with pytest.raises(ValueError, match="variant"):
            variants.parse_variant(bad)


def test_blur_keeps_probabilities_and_spreads_a_point():
    probs = torch.zeros(1, 2, 9, 9)
    probs[:, 0] = 1.0
    probs[0, :, 4, 4] = torch.tensor([0.0, 1.0])
    out = variants._gaussian_blur(probs, 1.0)
    torch.testing.assert_close(out.sum(1), torch.ones(1, 9, 9))
    assert 0 < out[0, 1, 4, 4] < 1 and out[0, 1, 4, 5] > 0 and out[0, 1, 0, 0] == 0


def test_class_prior_counts_labeled_pixels_and_keeps_absent_classes_finite():
    masks = [torch.tensor([[0, 0, 1], [1, 255, 0]]), torch.tensor([[0, 0, 0], [0, 0, 1]])]
    prior = variants.class_prior(masks, 3)
    total = 11 + 0.5  # 8 + 3 labeled pixels; class 2 has none and counts half a pixel
    torch.testing.assert_close(prior, torch.tensor([8 / total, 3 / total, 0.5 / total]))
    assert variants.parse_variant("prior=0.5") == {"prior": 0.5}


def test_pick_rare_prefers_pixels_of_classes_the_set_lacks():
    pool = torch.tensor(
        [
            [[0, 0], [0, 0]],  # four background pixels
            [[0, 0], [0, 2]],  # three background, one of class 2
            [[1, 1], [1, 1]],  # four of class 1
            [[2, 255], [255, 255]],  # one of class 2; ignored pixels do not count
        ]
    )
    # first pick: log 4 + log 2 = 2.08 for image 1 beats log 5 = 1.61 for images 0, 2;
    # then totals (3, 0, 1): image 2 adds log 5 (class 1) to log 4 + log 2 = 3.69,
    # image 0 only log 8 + log 2 = 2.77, image 3 log 4 + log 3 = 2.48
    assert variants.pick_rare(pool, 2, 3) == [1, 2]
    assert variants.pick_rare(pool, 4, 3)[:2] == [1, 2]
    with pytest.raises(ValueError, match="cannot pick 5 of a pool of 4"):
        variants.pick_rare(pool, 5, 3)
    assert variants.parse_variant("draw=2") == {"draw": 2}
    assert variants.parse_variant("rare=1+rgb=1") == {"rare": 1, "rgb": 1}


def test_picked_annotations_draw_is_seeded_and_rare_is_greedy():
    seeds = list(range(100, 110))
    masks = torch.zeros(10, 2, 2, dtype=torch.long)
    masks[7, 0, 0] = 5  # the only image holding class 5
    pool = (seeds, masks)
    a = variants.picked_annotations({"draw": 3}, pool, 4, 0.8)
    b = variants.picked_annotations({"draw": 3}, pool, 4, 0.8)
    c = variants.picked_annotations({"draw": 4}, pool, 4, 0.8)
    assert a.seeds == b.seeds and a.seeds != c.seeds and len(set(a.seeds)) == 4
    assert set(a.seeds) <= set(seeds)
    for pick in (a, c):  # each mask belongs to its seed
        for seed, mask in zip(pick.seeds, pick.masks):
            assert torch.equal(mask, masks[seed - 100])
    rare = variants.picked_annotations({"rare": 1}, pool, 1, 0.8)
    assert rare.seeds == [107] and rare.masks[0][0, 0] == 5


@pytest.fixture(scope="module")
def world():
    from dgan_data import Interpreter, load_generator
    from dgan_data.annotations import Annotations
    from dgan_data.presets import resolve_preset_file

    path = resolve_preset_file("toyface-14", "interpreter")
    return {
        "G": load_generator("toyface-14"),
        "shipped": Interpreter.load(path),
        "annotations": Annotations.load(path.parent / "annotations"),
    }


def test_training_set_adds_noise_draws_and_pseudo_labels(world):
    G, ann, shipped = world["G"], world["annotations"], world["shipped"]
    n = len(ann.masks)
    feats, masks, _ = variants.training_set(G, ann, {"noise": 2}, shipped, 0.8)
    assert len(feats) == 3 * n and masks.shape[0] == 3 * n
    assert torch.equal(masks[n], masks[0]) and torch.equal(masks[n + 1], masks[0])
    assert not torch.equal(feats[n][-1], feats[0][-1])  # other noise, other features
    feats, masks, info = variants.training_set(G, ann, {"selftrain": 4, "keep": 0.5}, shipped, 0.8)
    assert len(feats) == n + 4 and info["pseudo_labeled_images"] == 4
    ignored = (masks[n:] == 255).float().mean()
    assert 0.4 <= float(ignored) <= 0.6  # about half of the pool pixels are left out
    # with the image as an input, pseudo-labeled samples carry it too
    feats, _, _ = variants.training_set(G, ann, {"selftrain": 2, "rgb": 1}, shipped, 0.8)
    assert len(feats) == n + 2 and len(feats[n]) == len(feats[0])
    assert feats[n][-1].shape == feats[0][-1].shape == (3, 64, 64)


def test_style_mixes_keep_the_coarse_features_and_the_mask(world):
    G, ann, shipped = world["G"], world["annotations"], world["shipped"]
    n = len(ann.masks)
    feats, masks, info = variants.training_set(G, ann, {"mix": 2, "mixfrom": 8}, shipped, 0.8)
    assert len(feats) == 3 * n and masks.shape[0] == 3 * n
    assert info["style_mixes"] == {"per_annotation": 2, "from_layer": 8}
    # the first annotation's two mixes follow the n originals, with its mask
    assert torch.equal(masks[n], masks[0]) and torch.equal(masks[n + 1], masks[0])
    # layers before 8 are the annotation's own: the 4 px maps do not move ...
    torch.testing.assert_close(feats[n][0], feats[0][0])
    # ... the 64 px ones do, and differently for each donor
    assert not torch.equal(feats[n][-1], feats[0][-1])
    assert not torch.equal(feats[n][-1], feats[n + 1][-1])
    again, _, _ = variants.training_set(G, ann, {"mix": 2, "mixfrom": 8}, shipped, 0.8)
    torch.testing.assert_close(again[n + 1][-1], feats[n + 1][-1])  # seeded donors
    with pytest.raises(ValueError, match="mixfrom=10"):
        variants.training_set(G, ann, {"mix": 1, "mixfrom": 10}, shipped, 0.8)


def test_rgb_appends_the_generated_image_to_the_features(world):
    G, ann, shipped = world["G"], world["annotations"], world["shipped"]
    plain, _, _ = variants.training_set(G, ann, {}, shipped, 0.8)
    feats, masks, _ = variants.training_set(G, ann, {"rgb": 1, "noise": 1}, shipped, 0.8)
    assert len(feats) == 2 * len(plain) and masks.shape[0] == 2 * len(plain)
    assert len(feats[0]) == len(plain[0]) + 1
    regenerated = ann.generate_images(G)[0].float() / 255 * 2 - 1  # uint8 -> [-1, 1]
    assert feats[0][-1].shape == (3, *regenerated.shape[1:])
    assert (feats[0][-1].float().clamp(-1, 1) - regenerated).abs().max() < 0.01


def test_training_set_reads_picked_pool_samples(world):
    from dgan_data.seeds import z_from_seeds

    G, shipped = world["G"], world["shipped"]
    seeds = [11, 12, 13]
    picked = variants.PickedAnnotations(seeds, [torch.zeros(64, 64, dtype=torch.long)] * 3, 0.8)
    w = G.mapping(z_from_seeds(seeds, G.z_dim), truncation_psi=0.8)
    torch.testing.assert_close(picked.latents_w(G), w)
    feats, masks, _ = variants.training_set(G, picked, {}, shipped, 0.8)
    assert len(feats) == 3 and masks.shape == (3, 64, 64)
    _, direct = G.synthesize(w[1:2], noise="const")
    torch.testing.assert_close(feats[1][0].float(), direct[0][0].half().float())


def test_patch_features_reach_training_and_prediction(world, tmp_path, monkeypatch):
    G, ann, shipped = world["G"], world["annotations"], world["shipped"]
    plain, _, _ = variants.training_set(G, ann, {}, shipped, 0.8)
    feats, _, _ = variants.training_set(G, ann, {"patch": 1, "rgb": 1}, shipped, 0.8)
    assert len(feats[0]) == len(plain[0]) + 1  # the image; the interpreter adds the rest
    argv = ["--out", str(tmp_path), "--eval", "8", "--steps", "5", "--num-models", "2",
            "--threads", "1", "--variants", "patch=1"]  # fmt: skip
    assert variants.main(argv) == 0
    doc = json.loads((tmp_path / "variants.json").read_text())
    assert 0.0 < doc["results"]["patch=1"]["miou"] <= 1.0
    fitted = []
    monkeypatch.setattr(
        variants.Interpreter,
        "fit_features",
        classmethod(lambda cls, *a, **k: fitted.append(k) or shipped),
    )
    variants.main([*argv[:-1], "rgb=1+patch=2"])
    assert fitted[0]["with_image"] is True and fitted[0]["context"] == 2


def test_tiny_run_with_a_pool_records_the_picked_annotations(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--eval", "8", "--steps", "5", "--num-models", "2",
            "--threads", "1", "--pool", "20", "--variants", "draw=1", "rare=1"]  # fmt: skip
    assert variants.main(argv) == 0
    doc = json.loads((tmp_path / "variants.json").read_text())
    assert doc["pool"] == 20
    draw, rare = doc["results"]["draw=1"], doc["results"]["rare=1"]
    assert len(draw["annotation_seeds"]) == 16
    assert draw["annotation_seeds"] != rare["annotation_seeds"]
    assert sum(rare["annotated_pixels"].values()) == 16 * 64 * 64
    # the greedy pick holds at least as many pixels of the rarest classes as a random one
    assert rare["annotated_pixels"]["teeth"] >= draw["annotated_pixels"]["teeth"]
    with pytest.raises(ValueError, match="draw and rare"):
        variants.main([*argv[:-2], "draw=1+rare=1"])


def test_tiny_run_caches_each_variant(tmp_path, capsys, monkeypatch):
    argv = ["--out", str(tmp_path), "--eval", "8", "--steps", "5", "--num-models", "2",
            "--threads", "1", "--variants", "shipped", "dropout=0.3", "smooth=0.7",
            "rgb=1"]  # fmt: skip
    assert variants.main(argv) == 0
    doc = json.loads((tmp_path / "variants.json").read_text())
    assert set(doc["results"]) == {"shipped", "dropout=0.3", "smooth=0.7", "rgb=1"}
    for r in doc["results"].values():
        assert 0.0 <= r["miou"] <= 1.0 and set(r["per_class"]) == set(variants.CLASS_NAMES)
    assert doc["results"]["shipped"]["miou"] != doc["results"]["dropout=0.3"]["miou"]
    assert "dropout=0.3" in capsys.readouterr().out

    def no_fit(*args, **kwargs):
        raise AssertionError("a cached variant was fitted again")

    monkeypatch.setattr(variants.Interpreter, "fit_features", no_fit)
    assert variants.main(argv) == 0  # everything cached
    with pytest.raises(AssertionError, match="fitted again"):
        variants.main([*argv, "steps=6"])


def test_assets_folder_replaces_the_preset_files_and_the_annotator(tmp_path, capsys):
    """``--assets`` reads a chain's own files: an annotator that labels differently moves
    the score of the very same interpreter, and a folder missing a file is refused."""
    import shutil

    from dgan_data.presets import resolve_preset_file
    from dgan_data.toy.annotator import DEFAULT_ANNOTATOR_PATH, load_annotator, save_annotator

    shipped = resolve_preset_file("toyface-14", "interpreter")
    assets = tmp_path / "assets"
    shutil.copytree(shipped.parent / "annotations", assets / "annotations")
    for name in ("generator.safetensors", "interpreter.safetensors"):
        shutil.copyfile(shipped.parent / name, assets / name)
    other = load_annotator()
    with torch.no_grad():
        next(p for p in other.parameters() if p.ndim == 4).mul_(-1.0)
    meta = json.loads(DEFAULT_ANNOTATOR_PATH.with_suffix(".json").read_text())
    save_annotator(other, assets / "annotator.safetensors", meta)
    common = ["--eval", "8", "--threads", "1", "--variants", "shipped"]
    assert variants.main(["--out", str(tmp_path / "preset"), *common]) == 0
    assert variants.main(["--out", str(tmp_path / "own"), "--assets", str(assets), *common]) == 0
    preset = json.loads((tmp_path / "preset" / "variants.json").read_text())
    own = json.loads((tmp_path / "own" / "variants.json").read_text())
    assert preset["assets"] is None and own["assets"] == str(assets)
    assert own["results"]["shipped"]["miou"] != preset["results"]["shipped"]["miou"]
    for name in ("annotator.json", "annotator.safetensors"):  # each one is needed
        (assets / name).unlink()
        with pytest.raises(SystemExit) as exit_info:
            variants.parse_args(["--assets", str(assets)])
        assert exit_info.value.code == 2
        assert name in capsys.readouterr().err


def _record_maps(monkeypatch, shipped):
    """Lists that collect the maps each fit receives (the fit returns ``shipped``) and
    those each prediction receives."""
    fitted, labeled = [], []
    monkeypatch.setattr(
        variants.Interpreter,
        "fit_features",
        classmethod(lambda cls, feats, *a, **k: fitted.append(feats) or shipped),
    )
    real_maps = variants.Interpreter.prediction_maps
    monkeypatch.setattr(
        variants.Interpreter,
        "prediction_maps",
        lambda self, feats, img: labeled.append(feats) or real_maps(self, feats, img),
    )
    return fitted, labeled


def test_drop_zeroes_the_coarse_maps_when_fitting_and_labeling(
    world, tmp_path, monkeypatch, capsys
):
    maps = [torch.ones(2, 4, 4), torch.ones(2, 8, 8), torch.ones(3, 64, 64)]
    out = variants.drop_coarse(maps, 2)
    assert not out[0].any() and not out[1].any() and torch.equal(out[2], maps[2])
    assert variants.parse_variant("rgb=1+drop=3") == {"rgb": 1, "drop": 3}
    shipped = world["shipped"]
    fitted, labeled = _record_maps(monkeypatch, shipped)
    argv = ["--out", str(tmp_path), "--eval", "8", "--threads", "1", "--variants", "drop=3"]
    assert variants.main(argv) == 0
    for feats in (fitted[0][0], labeled[0]):  # one annotation's maps; a batch being labeled
        assert all(not m.any() for m in feats[:3])
        assert all(m.any() for m in feats[3:])
    with pytest.raises(SystemExit) as exc:  # refused when parsed, before any variant runs
        variants.main([*argv[:-1], "drop=9"])
    assert exc.value.code == 2
    assert "leave a feature map" in capsys.readouterr().err


def test_norm_standardises_generator_maps_and_leaves_the_image(world, tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(0)
    batch = [torch.randn(2, 4, 8, 8, generator=g) * 5 + 3, torch.rand(2, 3, 64, 64)]
    out = variants.adjust_maps(batch, {"norm": 1}, 1)
    torch.testing.assert_close(out[0].mean((-2, -1)), torch.zeros(2, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0].std((-2, -1)), torch.ones(2, 4), atol=1e-5, rtol=0)
    assert torch.equal(out[1], batch[1])  # the image
    half = variants.adjust_maps([batch[0][0].half()], {"norm": 1, "drop": 0}, 1)[0]
    assert half.dtype == torch.float16 and half.shape == (4, 8, 8)
    shipped = world["shipped"]
    fitted, labeled = _record_maps(monkeypatch, shipped)
    argv = ["--out", str(tmp_path), "--eval", "8", "--threads", "1", "--variants",
            "rgb=1+norm=1"]  # fmt: skip
    assert variants.main(argv) == 0
    plain, _, _ = variants.training_set(world["G"], world["annotations"], {"rgb": 1}, shipped, 0.8)
    assert torch.equal(fitted[0][0][-1], plain[0][-1])  # the image as generated
    for m in [*fitted[0][0][:-1], *labeled[0]]:  # one annotation's maps; a labeled batch
        assert float(m.float().mean((-2, -1)).abs().max()) < 0.01


def test_saved_drop_variant_labels_real_maps_as_the_variant_did_zeroed_ones(world, tmp_path):
    """``--save-interpreters`` writes a refitted ``drop`` variant as an ordinary file
    that, fed the generator's unchanged features, scores exactly what the variant
    scored on zeroed ones; a variant a file cannot express is not written."""
    from dgan_data import Interpreter
    from dgan_data.toy.annotator import load_annotator

    argv = ["--out", str(tmp_path), "--eval", "8", "--steps", "5", "--num-models", "2",
            "--threads", "1", "--variants", "rgb=1+drop=2", "norm=1"]  # fmt: skip
    assert variants.main(argv) == 0  # fitted and scored, not saved
    folder = tmp_path / "interpreters"
    assert not folder.exists()
    assert variants.main([*argv, "--save-interpreters"]) == 0  # refits the unsaved one
    saved = folder / "rgb=1+drop=2" / "interpreter.safetensors"
    assert saved.is_file() and not (folder / "norm=1").exists()
    assert (saved.parent / "annotations" / "manifest.json").is_file()
    interp = Interpreter.load(saved)
    feats, _, _ = variants.training_set(world["G"], world["annotations"], {}, world["shipped"], 0.8)
    coarse = sum(int(m.shape[0]) for m in feats[0][:2])
    assert not interp.w1[:, :, :coarse].any() and interp.w1[:, :, coarse:].any()
    doc = json.loads((tmp_path / "variants.json").read_text())
    plain = variants.score(world["G"], interp, load_annotator(), 0.8, 8)  # real maps
    assert plain["miou"] == doc["results"]["rgb=1+drop=2"]["miou"]


def test_fold_drop_makes_zeroed_inputs_unnecessary():
    from dgan_data import Interpreter

    g = torch.Generator().manual_seed(0)
    maps = [torch.randn(4, 4, 4, generator=g), torch.randn(3, 16, 16, generator=g)]
    masks = torch.randint(0, 3, (1, 16, 16), generator=g)
    zeroed = variants.drop_coarse(maps, 1)
    interp = Interpreter.fit_features([zeroed], masks, 3, 2, max_steps=5, min_steps=5, seed=0,
                                      progress=False)  # fmt: skip
    before = interp.predict([m[None] for m in zeroed], output_size=(16, 16), return_probs=True)
    unfolded = interp.predict([m[None] for m in maps], output_size=(16, 16), return_probs=True)
    variants.fold_drop(interp, maps, 1)
    after = interp.predict([m[None] for m in maps], output_size=(16, 16), return_probs=True)
    torch.testing.assert_close(after.probs, before.probs)
    assert not torch.allclose(unfolded.probs, before.probs)  # the coarse map did matter


def test_count_sets_how_many_pool_samples_are_annotated(tmp_path, capsys):
    assert variants.parse_variant("draw=2+count=32") == {"draw": 2, "count": 32}
    for bad in ("count=32", "rgb=1+count=8", "draw=1+count=0"):
        with pytest.raises(ValueError, match="count needs draw or rare"):
            variants.parse_variant(bad)
    argv = ["--out", str(tmp_path), "--eval", "8", "--steps", "5", "--num-models", "2",
            "--threads", "1", "--pool", "20", "--variants", "draw=1+count=4",
            "draw=1"]  # fmt: skip
    assert variants.main(argv) == 0
    results = json.loads((tmp_path / "variants.json").read_text())["results"]
    four, sixteen = results["draw=1+count=4"], results["draw=1"]
    assert len(four["annotation_seeds"]) == 4 and len(sixteen["annotation_seeds"]) == 16
    assert four["annotation_seeds"] == sixteen["annotation_seeds"][:4]  # one seeded order
    assert sum(four["annotated_pixels"].values()) == 4 * 64 * 64
    with pytest.raises(ValueError, match="count must lie in"):
        variants.main([*argv[:-2], "draw=1+count=21"])
