"""import-masks --format palette: colour masks painted in any image editor with the
annotation folder's own palette. Before, an RGB mask in ``masks/`` was refused with no
way forward but a script, and ``cvat-mask`` needed a hand-written ``labelmap.txt``."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
from PIL import Image
from test_import_masks import CLASSES, make_folder, mask_of, written

from dgan_data.annotations import AnnotationError, Annotations
from dgan_data.annotations.tools import MaskImportError, import_masks
from dgan_data.cli import main

PALETTE = [[0, 0, 0], [120, 60, 20], [255, 204, 153]]  # background, hair, skin
IGNORE = (224, 224, 192)
BLACK, HAIR, SKIN = (0, 0, 0), (120, 60, 20), (255, 204, 153)


def _with_palette(root, palette=PALETTE):
    folder = make_folder(root)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["palette"] = palette
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _paint(path, rows, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.array(rows, np.uint8), mode).save(path)


ROWS = [[HAIR, HAIR, SKIN, SKIN, BLACK, IGNORE]] * 6  # one row repeated, 6x6 like the images


def test_colours_become_the_classes_of_the_palette(tmp_path):
    folder = _with_palette(tmp_path / "ann")
    for sample_id in ("00000", "00001", "00002"):
        _paint(tmp_path / "painted" / f"{sample_id}.png", ROWS)
    report = import_masks(tmp_path / "painted", folder, format="palette")
    assert [s.status for s in report.samples] == ["new", "new", "new"]
    expected = np.array([[1, 1, 2, 2, 0, 255]] * 6, np.uint8)
    assert np.array_equal(mask_of(folder, "00000"), expected)
    assert Annotations.load(folder).class_names == CLASSES


def test_a_colour_outside_the_palette_is_named_and_nothing_is_written(tmp_path):
    folder = _with_palette(tmp_path / "ann")
    _paint(tmp_path / "painted" / "00000.png", ROWS)
    _paint(tmp_path / "painted" / "00001.png", [[HAIR, (121, 60, 20)] * 3] * 6)  # antialiased
    with pytest.raises(MaskImportError, match=r"00001\.png: colours not in the folder's "
                       r"palette: \(121, 60, 20\)"):  # fmt: skip
        import_masks(tmp_path / "painted", folder, format="palette")
    assert written(folder) == []


def test_a_class_may_use_the_ignore_colour(tmp_path):
    folder = _with_palette(tmp_path / "ann", [[0, 0, 0], list(IGNORE), [255, 204, 153]])
    _paint(tmp_path / "painted" / "00000.png", [[SKIN, SKIN, IGNORE, BLACK, BLACK, IGNORE]] * 6)
    import_masks(tmp_path / "painted", folder, format="palette")
    assert mask_of(folder, "00000")[0].tolist() == [2, 2, 1, 0, 0, 1]  # class 1, not ignore


@pytest.mark.parametrize(
    ("palette", "words"),
    [([[0, 0, 0], [9, 9, 9]], "not a list of one \\[r, g, b\\]"),  # two colours, three classes
     ([[0, 0, 0], [9, 9, 9], [9, 9, 9]], r"used by more than one class: \(9, 9, 9\)")],
    ids=["malformed", "shared-colour"],
)  # fmt: skip
def test_a_folder_without_a_usable_palette_is_refused(tmp_path, palette, words):
    folder = _with_palette(tmp_path / "ann", palette)
    _paint(tmp_path / "painted" / "00000.png", ROWS)
    with pytest.raises(MaskImportError, match=words):
        import_masks(tmp_path / "painted", folder, format="palette")


def test_see_through_pixels_are_refused(tmp_path):
    folder = _with_palette(tmp_path / "ann")
    rgba = [[(*HAIR, 255)] * 5 + [(*SKIN, 0)]] * 6
    _paint(tmp_path / "painted" / "00000.png", rgba, "RGBA")
    with pytest.raises(MaskImportError, match="6 pixels are not fully opaque"):
        import_masks(tmp_path / "painted", folder, format="palette")


def test_masks_painted_in_place_convert_with_the_command_load_names(capsys, tmp_path):
    folder = _with_palette(tmp_path / "my ann")
    for sample_id in ("00000", "00001", "00002"):
        _paint(folder / "masks" / f"{sample_id}.png", ROWS)
    with pytest.raises(AnnotationError) as err:
        Annotations.load(folder)
    text = "\n".join(err.value.problems)
    assert "got mode RGB" in text
    command = text.split("converts in place with `", 1)[1].split("`", 1)[0]
    argv = shlex.split(command)
    assert argv[:2] == ["dgan-data", "import-masks"]
    assert main(argv[1:]) == 0
    loaded = Annotations.load(folder)
    assert loaded.masks[0, 0].tolist() == [1, 1, 2, 2, 0, 255]


def test_a_folder_without_a_palette_reads_the_default_palette(tmp_path):
    from dgan_data import make_palette

    folder = make_folder(tmp_path / "ann")  # no palette in its manifest
    assert json.loads((folder / "manifest.json").read_text()).get("palette") is None
    default = [tuple(c) for c in make_palette(len(CLASSES)).tolist()]
    _paint(tmp_path / "painted" / "00000.png", [[default[2], default[1], default[0]] * 2] * 6)
    import_masks(tmp_path / "painted", folder, format="palette")
    assert mask_of(folder, "00000")[0].tolist() == [2, 1, 0, 2, 1, 0]
