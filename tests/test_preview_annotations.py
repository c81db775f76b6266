"""``preview_annotations`` / ``dgan-data preview --annotations``: an annotation folder's
own images with its masks over them, so masks drawn or imported by hand can be checked
by eye (a wrong class, a shifted mask). Before, only ``inspect``'s counts showed them."""

from __future__ import annotations

import dataclasses
import json
import logging
import shlex
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from test_annotations import TinyGenerator, sampled_folder
from test_cli_errors import run

from dgan_data import Annotations, make_palette, preview_annotations
from dgan_data.annotations import AnnotationError
from dgan_data.presets import resolve_preset_file
from dgan_data.viz import GRID_PAD, grid_layout, legend, overlay, to_uint8_image

NAMES = ["background", "skin", "hair"]


def _annotations(n=3, size=(64, 64), mask_size=None, crop=None) -> Annotations:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, *size), generator=g, dtype=torch.uint8)
    masks = torch.randint(0, 3, (n, *(mask_size or size)), generator=g)
    masks[:, 0, :5] = 255
    return Annotations(masks=masks, class_names=NAMES, seeds=list(range(n)), images=images,
                       crop=crop)  # fmt: skip


def _tile(grid, row, col, h, w):
    y, x = GRID_PAD + row * (h + GRID_PAD), GRID_PAD + col * (w + GRID_PAD)
    return grid[y : y + h, x : x + w]


def test_each_image_is_drawn_above_its_mask_with_the_legend(tmp_path):
    ann = _annotations()
    path, ids = preview_annotations(ann, tmp_path / "a.png")
    assert ids == ["00000", "00001", "00002"]
    grid = np.asarray(Image.open(path))
    _, groups, gw, gh = grid_layout(3, (64, 64), rows=2)
    key = legend(NAMES, make_palette(3), width=gw)
    assert groups == 1 and grid.shape == (gh + key.shape[0], max(gw, key.shape[1]), 3)
    for b in range(3):
        image = ann.images[b].float() / 255
        np.testing.assert_array_equal(_tile(grid, 0, b, 64, 64), to_uint8_image(image))
        want = overlay(image, ann.masks[b], make_palette(3))
        np.testing.assert_array_equal(_tile(grid, 1, b, 64, 64), want)
    np.testing.assert_array_equal(grid[gh:, : key.shape[1]], key)


def test_the_image_is_cut_to_the_crop_and_scaled_to_the_mask(tmp_path):
    crop = (8, 4, 48, 56)
    ann = _annotations(n=1, mask_size=(48, 56), crop=crop)
    path, _ = preview_annotations(ann, tmp_path / "c.png", 1)
    grid = np.asarray(Image.open(path))
    window = ann.images[0, :, 8:56, 4:60].float() / 255
    # tiles of 48 px are drawn twice as large (at least 64 px high)
    tile = _tile(grid, 0, 0, 96, 112)[::2, ::2]
    np.testing.assert_array_equal(tile, to_uint8_image(window))

    half = _annotations(n=1, size=(64, 64), mask_size=(32, 32))
    path, _ = preview_annotations(half, tmp_path / "h.png")
    grid = np.asarray(Image.open(path))
    small = torch.nn.functional.interpolate(
        half.images[:1].float() / 255, size=(32, 32), mode="bilinear", antialias=True,
        align_corners=False,
    )[0]  # fmt: skip
    np.testing.assert_array_equal(_tile(grid, 0, 0, 64, 64)[::2, ::2], to_uint8_image(small))


def test_a_folder_drawn_part_of_the_way_shows_what_is_drawn(tmp_path, caplog):
    folder = sampled_folder(TinyGenerator(), tmp_path / "ann", num=3)
    ids = Annotations.load(folder).ids
    (folder / "masks" / f"{ids[1]}.png").unlink()
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        _, drawn = preview_annotations(folder, tmp_path / "p.png")
    assert drawn == [ids[0], ids[2]]
    assert f"left out: {ids[1]}" in caplog.text


def test_bad_input_is_refused_before_drawing(tmp_path):
    ann = _annotations()
    no_images = Annotations(masks=ann.masks, class_names=NAMES, seeds=[0, 1, 2])
    with pytest.raises(ValueError, match="stores no images"):
        preview_annotations(no_images, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"ending in \.png"):
        preview_annotations(ann, tmp_path / "x.jpg")
    with pytest.raises(ValueError, match=r"num must be an int in 1\.\.256"):
        preview_annotations(ann, tmp_path / "x.png", 0)
    assert not list(tmp_path.iterdir())


def test_cli_draws_the_folder_and_refuses_a_model(capsys, tmp_path):
    folder = sampled_folder(TinyGenerator(), tmp_path / "ann", num=3)
    ids = Annotations.load(folder).ids
    code, out, err = run(capsys, "preview", "--annotations", str(folder), "--num", "2",
                         "--out", str(tmp_path / "check.png"))  # fmt: skip
    assert code == 0, err
    assert f"2 annotated samples ({ids[0]} .. {ids[1]}, left to right)" in out
    width = Image.open(tmp_path / "check.png").size[0]
    assert width >= grid_layout(2, (64, 64), rows=2)[2]
    code, _, err = run(capsys, "preview", "toyface-14", "--annotations", str(folder),
                       "--seed", "3", "--out", str(tmp_path / "no.png"))  # fmt: skip
    assert code == 2 and "leave out PRESET, --seed" in err
    assert not (tmp_path / "no.png").exists()
    code, _, err = run(capsys, "preview", "--export", str(folder))
    assert code == 2 and f"is an annotation folder: preview it with --annotations {folder}" in err


def test_a_generated_preview_keeps_its_defaults(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "preview", "toyface-14", "--num", "1")
    assert code == 0, err
    assert (tmp_path / "grid.png").exists() and "wrote grid.png" in out


def test_import_masks_ends_with_the_check_command_and_it_runs(capsys, tmp_path, monkeypatch):
    folder = sampled_folder(TinyGenerator(), tmp_path / "my ann", num=2)
    shutil.copytree(folder / "masks", tmp_path / "drawn")
    code, out, err = run(capsys, "import-masks", "--format", "png", str(tmp_path / "drawn"),
                         "--annotations", str(folder))  # fmt: skip
    assert code == 0, err
    last = out.strip().splitlines()[-1]
    assert last.startswith("to look at the masks over their images: dgan-data preview")
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(last.split(": ", 1)[1])[1:]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert (tmp_path / "check.png").exists() and "2 annotated samples" in out


def test_inspect_on_a_folder_ends_with_the_check_command(capsys, tmp_path, monkeypatch):
    folder = sampled_folder(TinyGenerator(), tmp_path / "ann", num=2)
    code, out, err = run(capsys, "inspect", str(folder))
    assert code == 0, err
    last = out.strip().splitlines()[-1]
    assert last == (
        "to look at the masks over their images: dgan-data preview --annotations "
        f"{shlex.quote(str(folder))} --out check.png"
    )
    code, out, _ = run(capsys, "inspect", str(folder), "--json")  # JSON stays JSON
    assert code == 0 and json.loads(out)["kind"] == "annotation folder"


def test_a_generator_redraws_the_images_of_a_folder_that_stores_none(tmp_path):
    tiny = TinyGenerator()
    stored = Annotations.load(sampled_folder(tiny, tmp_path / "ann", num=2))
    latents_only = dataclasses.replace(stored, images=None)
    with pytest.raises(ValueError, match=r"stores no images .* give the generator"):
        preview_annotations(latents_only, tmp_path / "x.png")
    redrawn, _ = preview_annotations(latents_only, tmp_path / "r.png", generator=tiny)
    kept, _ = preview_annotations(stored, tmp_path / "s.png")
    # the folder's latents regenerate exactly the images it stored
    assert np.array_equal(np.asarray(Image.open(redrawn)), np.asarray(Image.open(kept)))
    with pytest.raises(AnnotationError, match="annotations were made with generator"):
        preview_annotations(latents_only, tmp_path / "w.png", generator="toyface-14")


def test_a_generator_redraws_only_the_samples_drawn(tmp_path):
    tiny = TinyGenerator()
    stored = Annotations.load(sampled_folder(tiny, tmp_path / "ann", num=5))
    latents_only = dataclasses.replace(stored, images=None)
    drawn = []
    synthesize = tiny.synthesize

    def counting(w, *args, **kwargs):
        drawn.append(len(w))
        return synthesize(w, *args, **kwargs)

    tiny.synthesize = counting
    path, ids = preview_annotations(latents_only, tmp_path / "r.png", 2, generator=tiny)
    assert sum(drawn) == 2 and ids == stored.ids[:2]
    kept, _ = preview_annotations(stored, tmp_path / "s.png", 2)
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(kept)))


def test_cli_redraws_with_generator_and_refuses_it_for_an_export(capsys, tmp_path):
    folder = tmp_path / "ann"
    shutil.copytree(resolve_preset_file("toyface-14", "interpreter").parent / "annotations",
                    folder)  # fmt: skip
    code, out, err = run(capsys, "preview", "--annotations", str(folder), "--generator",
                         "toyface-14", "--num", "2", "--out", str(tmp_path / "g.png"))  # fmt: skip
    assert code == 0, err
    assert "2 annotated samples (00000 .. 00001" in out
    code, _, err = run(capsys, "preview", "--export", str(tmp_path / "data"), "--generator",
                       "toyface-14")  # fmt: skip
    assert code == 2 and "leave out --generator" in err
