"""Sampled annotation folders in the label frame their masks will be drawn in: a preset
whose label_resolution is below its images' (face-34: 512 px masks of 1024 px images),
or an interpreter with a smaller label size; and a folder without a recorded palette
keeps the default colours its masks may be painted in."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_annotations import CLASSES, TinyGenerator
from test_cli_errors import run
from test_stream import random_interpreter, tiny_generator

import dgan_data.cli.models as cli_models
from dgan_data.annotations import AnnotationError, Annotations, sample_annotation_folder
from dgan_data.labeler import Labeler
from dgan_data.palette import make_palette
from dgan_data.presets import get_preset
from dgan_data.suggest import suggest_annotations, write_suggestions


def draw(folder, ids, hw) -> None:
    for sample_id in ids:
        Image.fromarray(np.zeros(hw, np.uint8)).save(folder / "masks" / f"{sample_id}.png")


def manifest(folder) -> dict:
    return json.loads((folder / "manifest.json").read_text())


# ------------------------------------------------------------ mask_resolution
def test_masks_can_be_a_downscale_of_the_images(tmp_path):
    G = TinyGenerator(height=12, width=16)
    out = sample_annotation_folder(
        G, 2, tmp_path / "a", class_names=CLASSES, mask_resolution=(6, 8)
    )
    assert manifest(out.root)["mask_resolution"] == [6, 8]
    assert manifest(out.root)["image_resolution"] == [12, 16]
    draw(out.root, out.ids, (6, 8))
    assert Annotations.load(out.root).mask_resolution == (6, 8)


def test_the_default_mask_size_is_the_image_size(tmp_path):
    out = sample_annotation_folder(TinyGenerator(height=12, width=16), 1, tmp_path / "a")
    assert manifest(out.root)["mask_resolution"] == [12, 16]


@pytest.mark.parametrize(
    "bad, message",
    [
        ((6, 7), "does not match the image 12x16"),  # not one factor on both axes
        ((24, 32), "does not match the image 12x16"),  # larger than the image
        ((0, 8), "mask_resolution"),
        ((6.0, 8), "mask_resolution"),
        ((6,), "mask_resolution must be \\(height, width\\)"),
        ("6x8", "mask_resolution must be \\(height, width\\)"),
    ],
)
def test_a_mask_size_that_cannot_label_the_images_is_refused(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        sample_annotation_folder(
            TinyGenerator(height=12, width=16), 1, tmp_path / "a", mask_resolution=bad
        )
    assert not (tmp_path / "a").exists()


def test_resuming_with_another_mask_size_is_refused(tmp_path):
    G = TinyGenerator(height=12, width=16)
    sample_annotation_folder(G, 1, tmp_path / "a", mask_resolution=(6, 8))
    with pytest.raises(AnnotationError, match=r"mask_resolution was \[6, 8\], now \[12, 16\]"):
        sample_annotation_folder(G, 2, tmp_path / "a")
    assert manifest(tmp_path / "a")["mask_resolution"] == [6, 8]


def test_sample_with_a_preset_draws_masks_at_its_label_size(tmp_path, capsys, monkeypatch):
    """face-34 labels its 1024 px images at 512 px: the folder must ask for 512 px masks,
    which fit accepts for the preset and which merge with the preset's annotations."""
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path / "home"))
    preset = get_preset("face-34")
    (tmp_path / "home/face-34").mkdir(parents=True)
    (tmp_path / "home/face-34/generator.pt").touch()  # found; loading it is replaced below
    big = TinyGenerator(z_dim=2, w_dim=2, num_ws=1, height=1024, width=1024)
    monkeypatch.setattr(cli_models, "load_generator", lambda *a, **k: big)
    code, _, err = run(capsys, "sample", "face-34", "--num", "1", "--out", str(tmp_path / "f"))
    assert code == 0, err
    assert (
        manifest(tmp_path / "f")["mask_resolution"] == list(preset.label_resolution) == [512, 512]
    )
    draw(tmp_path / "f", ["00000"], (512, 512))
    ann = Annotations.load(tmp_path / "f")
    own = preset.expected_paths("interpreter")[0]
    cli_models.check_fit_frame(ann, preset, tmp_path / "f", own)  # the preset's own frame


def test_suggestions_are_drawn_at_the_interpreters_label_size(tmp_path):
    torch.set_num_threads(1)
    G = tiny_generator()  # 16 px images
    interp = random_interpreter(G, num_classes=3, label_size=(8, 8))
    interp.class_names = list(CLASSES)
    labeler = Labeler(G, interp, device="cpu")
    report = suggest_annotations(labeler, 1, pool=3, seed=0)
    folder = write_suggestions(labeler, report, tmp_path / "s", preview=False)
    assert manifest(folder.root)["mask_resolution"] == [8, 8]
    draw(folder.root, folder.ids, (8, 8))  # masks of the labels' size load
    assert Annotations.load(folder.root).mask_resolution == (8, 8)


# ---------------------------------------------------------------- palette
def test_a_folder_without_a_palette_keeps_the_default_colours(tmp_path):
    """Its masks may be painted in the default colours (`sample` lists them): another
    palette would turn one class's paint into another class on import."""
    G = TinyGenerator()
    sample_annotation_folder(G, 1, tmp_path / "a", class_names=CLASSES)
    assert manifest(tmp_path / "a")["palette"] is None
    default = [tuple(int(v) for v in c) for c in make_palette(3).tolist()]
    swapped = [default[0], default[2], default[1]]
    with pytest.raises(AnnotationError, match="colour for class 'body'"):
        sample_annotation_folder(G, 2, tmp_path / "a", class_names=CLASSES, palette=swapped)
    assert manifest(tmp_path / "a")["palette"] is None
    assert len(manifest(tmp_path / "a")["samples"]) == 1
    # the default colours themselves are the folder's: accepted
    sample_annotation_folder(G, 2, tmp_path / "a", class_names=CLASSES, palette=default)
    assert [tuple(c) for c in manifest(tmp_path / "a")["palette"]] == default
    sample_annotation_folder(G, 3, tmp_path / "a", class_names=CLASSES)  # and no palette
