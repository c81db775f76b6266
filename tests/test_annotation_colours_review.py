"""Colours in annotation folders: a resumed folder keeps its palette, an indexed mask
painted in the folder's palette in another order is not read as class ids, and a grey
black-and-white mask met where colours are read is not half turned into ignore."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dgan_data import load_generator, sample_annotation_folder
from dgan_data.annotations import AnnotationError, Annotations
from dgan_data.annotations.tools import MaskImportError, import_masks

NAMES = [f"c{i}" for i in range(14)]  # the toy generator's folder, any 14 names
RED = [[10 * i, 0, 0] for i in range(14)]
GREEN = [[0, 10 * i, 0] for i in range(14)]


@pytest.fixture(scope="module")
def toy_generator():
    return load_generator("toyface-14", device="cpu")


def manifest_palette(root):
    return json.loads((root / "manifest.json").read_text())["palette"]


def test_a_resumed_sample_folder_keeps_its_palette(toy_generator, tmp_path):
    root = tmp_path / "ann"
    sample_annotation_folder(toy_generator, 1, root, class_names=NAMES, palette=RED)
    sample_annotation_folder(toy_generator, 2, root, class_names=NAMES)  # no palette given
    assert manifest_palette(root) == RED
    assert len(json.loads((root / "manifest.json").read_text())["samples"]) == 2


def test_a_resumed_sample_folder_refuses_another_palette(toy_generator, tmp_path):
    root = tmp_path / "ann"
    sample_annotation_folder(toy_generator, 1, root, class_names=NAMES, palette=RED)
    sample_annotation_folder(toy_generator, 1, root, class_names=NAMES, palette=RED)  # same
    with pytest.raises(AnnotationError, match=r"colour for class 'c1' was \(10, 0, 0\), now"):
        sample_annotation_folder(toy_generator, 2, root, class_names=NAMES, palette=GREEN)
    assert manifest_palette(root) == RED


def test_a_ragged_palette_is_named():
    with pytest.raises(ValueError, match="palette must hold one"):
        Annotations.from_arrays(
            masks=np.zeros((1, 4, 4), np.uint8),
            class_names=["a", "b"],
            palette=[[0, 0, 0], [1, 2]],
        )


FOLDER_PALETTE = [[0, 0, 0], [17, 0, 255], [0, 255, 0]]  # background, hair, skin


def three_class_folder(path, palette=FOLDER_PALETTE):
    masks = np.zeros((1, 6, 6), np.uint8)
    images = np.zeros((1, 3, 6, 6), np.uint8)
    Annotations.from_arrays(
        masks=masks,
        class_names=["background", "hair", "skin"],
        seeds=[0],
        images=images,
        palette=palette,
    ).save(path)
    return path


def save_indexed(path, indices, colours):
    im = Image.fromarray(np.asarray(indices, np.uint8), "P")
    im.putpalette([v for c in colours for v in c] + [0, 0, 0] * (256 - len(colours)))
    im.save(path)


LEFT_SKIN_RIGHT_HAIR = [[2, 2, 2, 1, 1, 1]] * 6


def test_an_indexed_mask_in_the_palette_of_another_order_is_refused_and_converts(tmp_path):
    root = three_class_folder(tmp_path / "ann")
    indices = [[0, 0, 0, 1, 1, 1]] * 6  # the editor's own order: 0 = skin, 1 = hair
    save_indexed(root / "masks" / "00000.png", indices, [FOLDER_PALETTE[2], FOLDER_PALETTE[1]])
    with pytest.raises(AnnotationError) as info:
        Annotations.load(root)
    text = str(info.value)
    assert "masks/00000.png" in text and "another order" in text
    assert "import-masks --format palette" in text
    # the command the message gives reads the colours: the classes painted
    import_masks(root / "masks", root, "palette")
    assert Annotations.load(root).masks[0].tolist() == LEFT_SKIN_RIGHT_HAIR


def test_an_indexed_mask_in_the_folder_palette_order_loads(tmp_path):
    root = three_class_folder(tmp_path / "ann")
    save_indexed(root / "masks" / "00000.png", LEFT_SKIN_RIGHT_HAIR, FOLDER_PALETTE)
    assert Annotations.load(root).masks[0].tolist() == LEFT_SKIN_RIGHT_HAIR


def test_an_indexed_mask_of_other_colours_is_read_by_its_indices(tmp_path):
    root = three_class_folder(tmp_path / "ann")
    grey_ramp = [[i, i, i] for i in range(3)]  # ids as indices, colours of no class
    save_indexed(root / "masks" / "00000.png", LEFT_SKIN_RIGHT_HAIR, grey_ramp)
    assert Annotations.load(root).masks[0].tolist() == LEFT_SKIN_RIGHT_HAIR


def binary_folder(path):
    Annotations.from_arrays(
        masks=np.zeros((1, 6, 6), np.uint8),
        class_names=["background", "fg"],
        seeds=[0],
        images=np.zeros((1, 3, 6, 6), np.uint8),
        palette=[[0, 0, 0], [255, 255, 255]],
    ).save(path)
    return path


def test_a_black_and_white_mask_saved_as_greyscale_is_refused_not_half_ignored(tmp_path):
    root = binary_folder(tmp_path / "ann")
    painted = tmp_path / "painted"
    painted.mkdir()
    grey = np.zeros((6, 6), np.uint8)
    grey[:, 3:] = 255  # painted white = fg
    Image.fromarray(grey, "L").save(painted / "00000.png")
    with pytest.raises(MaskImportError) as info:
        import_masks(painted, root, "palette")
    text = str(info.value)
    assert "00000.png" in text and "grey 255 reads as ignore" in text and "class 1" in text
    assert not np.asarray(Image.open(root / "masks" / "00000.png")).any()  # untouched


def test_a_greyscale_mask_of_class_ids_still_imports_by_its_ids(tmp_path):
    root = binary_folder(tmp_path / "ann")
    ids = tmp_path / "ids"
    ids.mkdir()
    mask = np.zeros((6, 6), np.uint8)
    mask[:, 3:] = 1
    mask[0, 0] = 255  # as an earlier import wrote it: 1 = fg, 255 = ignore
    Image.fromarray(mask, "L").save(ids / "00000.png")
    import_masks(ids, root, "palette")
    assert np.array_equal(Annotations.load(root).masks[0].numpy(), mask)
