"""The annotate -> suggest -> merge loop over several rounds, from the command line:
suggest writes what merges with --annotations, or refuses before scoring its pool."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dgan_data.annotations import AnnotationError, Annotations
from dgan_data.cli import main
from dgan_data.suggest import free_id_prefix

TOY_ASSETS = Path(__file__).resolve().parents[1] / "dgan_data" / "toy" / "assets"
SUGGEST = ["suggest", "--generator", "toyface-14", "--interpreter", "toyface-14"]


def draw(root) -> None:
    """Play annotator: a mask for every image of the folder."""
    for image in sorted((root / "images").iterdir()):
        with Image.open(image) as im:
            size = im.size
        Image.fromarray(np.ones(size[::-1], np.uint8)).save(root / "masks" / image.name)


def manifest_psi(root) -> float:
    return json.loads((root / "manifest.json").read_text())["truncation"]["psi"]


def test_two_rounds_of_suggestions_merge_and_fit_the_first_folder(tmp_path, capsys):
    first = tmp_path / "ann"
    assert main(["sample", "--generator", "toyface-14", "--num", "2", "--out", str(first)]) == 0
    assert manifest_psi(first) == 0.8  # the preset's truncation: its annotations use it
    draw(first)
    folders = [first]
    for round_ in (1, 2):
        merged = tmp_path / f"all{round_}"
        out = tmp_path / f"next{round_}"
        argv = [*SUGGEST, "--annotations", str(folders[-1]), "--num", "1", "--pool", "4"]
        assert main([*argv, "--out", str(out)]) == 0
        assert "wrote 1 image to annotate" in capsys.readouterr().out
        draw(out)
        assert main(["merge-annotations", str(folders[-1]), str(out), "--out", str(merged)]) == 0
        folders.append(merged)
    ids = Annotations.load(folders[-1]).ids
    assert ids == ["00000", "00001", "s00000", "s200000"]  # the second round's own prefix


def test_suggest_takes_the_truncation_of_its_annotations(tmp_path):
    first = tmp_path / "ann"
    argv = ["sample", "--generator", "toyface-14", "--num", "1", "--truncation", "0.6"]
    assert main([*argv, "--out", str(first)]) == 0
    draw(first)
    out = tmp_path / "next"
    assert (
        main(
            [*SUGGEST, "--annotations", str(first), "--num", "1", "--pool", "2", "--out", str(out)]
        )
        == 0
    )
    assert manifest_psi(out) == 0.6


def test_suggest_refuses_what_would_not_merge_before_scoring(tmp_path, capsys):
    first = tmp_path / "ann"
    argv = ["sample", "--generator", "toyface-14", "--num", "1", "--truncation", "1.0"]
    assert main([*argv, "--out", str(first)]) == 0
    draw(first)
    out = tmp_path / "next"
    argv = [*SUGGEST, "--annotations", str(first), "--num", "1", "--pool", "2"]
    assert main([*argv, "--truncation", "0.8", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not merge with --annotations: truncation_psi 0.8" in err[0]
    assert not out.exists()


def test_suggest_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    out = tmp_path / "ann"
    assert main(["sample", "--generator", "toyface-14", "--num", "1", "--out", str(out)]) == 0
    before = sorted(p.name for p in out.rglob("*"))
    assert main([*SUGGEST, "--num", "1", "--pool", "2", "--out", str(out)]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert sorted(p.name for p in out.rglob("*")) == before


def test_free_id_prefix_skips_prefixes_in_use():
    def with_ids(ids):
        masks = np.zeros((len(ids), 4, 4), np.uint8)
        return Annotations.from_arrays(
            masks=masks, class_names=["a", "b"], seeds=list(range(len(ids))), ids=ids
        )

    assert free_id_prefix(None, 3) == "s"
    assert free_id_prefix(with_ids(["00000"]), 3) == "s"
    assert free_id_prefix(with_ids(["s00002"]), 3) == "s2"  # s00002 would clash at i = 2
    assert free_id_prefix(with_ids(["s00002"]), 2) == "s"  # only s00000, s00001 written
    assert free_id_prefix(with_ids(["s00000", "s200000"]), 1) == "s3"


def test_merge_names_the_parts_that_share_ids(tmp_path, capsys):
    a = Annotations.from_arrays(
        masks=np.zeros((1, 4, 4), np.uint8), class_names=["a", "b"], seeds=[1]
    )
    b = Annotations.from_arrays(
        masks=np.zeros((1, 4, 4), np.uint8), class_names=["a", "b"], seeds=[2]
    )
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    with pytest.raises(
        AnnotationError, match=r"ids 00000 appear in more than one part \(.*a, .*b\).*--id-prefix"
    ):
        Annotations.merge(Annotations.load(tmp_path / "a"), Annotations.load(tmp_path / "b"))


@pytest.mark.parametrize("prefix", ["", "a/b", "-x"])
def test_a_bad_id_prefix_is_refused_at_parse_time(tmp_path, capsys, prefix):
    argv = ["sample", "--generator", "toyface-14", "--num", "1", "--out", str(tmp_path / "s")]
    with pytest.raises(SystemExit) as exc:
        main([*argv, f"--id-prefix={prefix}"])
    assert exc.value.code == 2 and "--id-prefix" in capsys.readouterr().err


def test_sample_keeps_the_presets_cutoff_with_an_explicit_truncation():
    """As ``Labeler.from_sources``: --truncation sets psi; the preset's cutoff stays."""
    from argparse import Namespace

    from dgan_data.cli import models

    class Preset:  # a preset that truncates only the first 8 w layers
        truncation_psi, truncation_cutoff = 0.7, 8

    assert models.sample_truncation(Namespace(truncation=None), Preset) == (0.7, 8)
    assert models.sample_truncation(Namespace(truncation=0.5), Preset) == (0.5, 8)
    assert models.sample_truncation(Namespace(truncation=None), None) == (1.0, None)


def draw_masks(root) -> None:
    """Play annotator at the folder's mask size (the crop's when it has one)."""
    manifest = json.loads((root / "manifest.json").read_text())
    h, w = manifest["mask_resolution"]
    for image in sorted((root / "images").iterdir()):
        mask = np.zeros((h, w), np.uint8)
        mask[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1
        Image.fromarray(mask).save(root / "masks" / image.name)


def test_suggestions_for_cropped_annotations_keep_the_crop_and_merge(tmp_path, capsys):
    """An interpreter fitted on annotations that label a window of the image suggests
    images annotated in the same window, so the two folders merge and fit."""
    from dgan_data import load_generator, sample_annotation_folder

    G = load_generator(TOY_ASSETS / "generator.safetensors")
    first = tmp_path / "ann"
    sample_annotation_folder(
        G, 2, first, truncation_psi=0.8, class_names=["bg", "face"], crop=(8, 4, 48, 56)
    )
    draw_masks(first)
    interp = tmp_path / "first.safetensors"
    fit = ["fit", "--generator", "toyface-14", "--annotations", str(first), "--out", str(interp)]
    assert main([*fit, "--num-models", "1", "--max-steps", "5"]) == 0
    out = tmp_path / "next"
    suggest = ["suggest", "--generator", "toyface-14", "--interpreter", str(interp)]
    argv = [*suggest, "--annotations", str(first), "--num", "1", "--pool", "2", "--out", str(out)]
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["mask_resolution"] == [48, 56]
    draw_masks(out)
    merged = tmp_path / "all"
    assert main(["merge-annotations", str(first), str(out), "--out", str(merged)]) == 0
    both = Annotations.load(merged)
    assert both.crop == (8, 4, 48, 56) and both.masks.shape == (3, 48, 56)
    fit_all = ["fit", "--generator", "toyface-14", "--annotations", str(merged)]
    final = tmp_path / "all.safetensors"
    assert main([*fit_all, "--out", str(final), "--num-models", "1", "--max-steps", "5"]) == 0
    assert final.is_file()


def test_a_crop_in_a_scaled_label_frame_cannot_be_written_as_a_folder():
    from types import SimpleNamespace

    from dgan_data.suggest import suggestion_crop

    def labeler(frame, crop):
        G = SimpleNamespace(resolution=(64, 64))
        return SimpleNamespace(G=G, frame=frame, crop=crop)

    assert suggestion_crop(labeler((64, 64), None)) is None
    assert suggestion_crop(labeler((64, 64), (8, 4, 48, 56))) == (8, 4, 48, 56)
    with pytest.raises(ValueError, match=r"crops \(4, 2, 24, 28\) out of a \(32, 32\) label"):
        suggestion_crop(labeler((32, 32), (4, 2, 24, 28)))


def test_sample_resolves_generator_as_load_generator_does(tmp_path, monkeypatch, capsys):
    """An existing file wins over a preset of the same name (it is sampled, so its
    folder must not get the preset's classes and truncation), and a file without a
    suffix is a file, not an unknown preset."""
    import shutil

    monkeypatch.chdir(tmp_path)
    checkpoint = TOY_ASSETS.parents[2] / "tests/fixtures/reference/rosinality_stylegan2_32px.pt"
    shutil.copy(checkpoint, "ffhq-34")
    shutil.copy(checkpoint, "mygen")
    # no --classes: a file has none
    assert main(["sample", "--generator", "ffhq-34", "--num", "1", "--out", "a"]) == 2
    assert "--classes is needed" in capsys.readouterr().err
    argv = ["sample", "--num", "1", "--classes", "bg,fg"]
    assert main([*argv, "--generator", "ffhq-34", "--out", "b"]) == 0
    manifest = json.loads(Path("b/manifest.json").read_text())
    assert manifest["class_names"] == ["bg", "fg"] and manifest_psi(Path("b")) == 1.0
    assert main([*argv, "--generator", "mygen", "--out", "c"]) == 0


def test_sample_takes_the_presets_crop_and_palette(tmp_path, monkeypatch):
    from dgan_data.presets import Preset
    from dgan_data.presets import preset as preset_registry
    from dgan_data.toy import CLASS_NAMES, PALETTE

    home = tmp_path / "home"
    (home / "croptoy-14").mkdir(parents=True)
    for name in ("generator.safetensors", "interpreter.safetensors"):
        (home / "croptoy-14" / name).write_bytes((TOY_ASSETS / name).read_bytes())
    monkeypatch.setenv("DGAN_DATA_HOME", str(home))
    palette = [tuple(c) for c in PALETTE.tolist()]
    preset = Preset(
        name="croptoy-14", class_names=tuple(CLASS_NAMES), num_classes=14, palette=palette,
        label_resolution=(48, 56), image_resolution=(64, 64), architecture="stylegan2",
        truncation_psi=0.8, crop=(8, 4, 48, 56),
    )  # fmt: skip
    monkeypatch.setitem(preset_registry._REGISTRY, "croptoy-14", preset)
    out = tmp_path / "s"
    assert main(["sample", "--generator", "croptoy-14", "--num", "1", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["mask_resolution"] == [48, 56]
    assert [tuple(c) for c in manifest["palette"]] == palette
    # other class names than the preset's: its palette does not fit them
    other = tmp_path / "o"
    argv = ["sample", "--generator", "croptoy-14", "--num", "1", "--classes", "a,b"]
    assert main([*argv, "--out", str(other)]) == 0
    assert json.loads((other / "manifest.json").read_text()).get("palette") is None


@pytest.mark.parametrize("psi", ["-0.1", "2.5", "1e30", "nan"])
def test_an_absurd_truncation_is_refused_when_parsed(tmp_path, capsys, psi):
    argv = ["sample", "--generator", "toyface-14", "--num", "1", "--out", str(tmp_path / "s")]
    with pytest.raises(SystemExit) as exc:
        main([*argv, f"--truncation={psi}"])
    assert exc.value.code == 2 and "--truncation" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
