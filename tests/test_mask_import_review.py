"""Mask import and inspect, from a review of the README's annotation sections: a 1-bit
mask is black and white, the in-place palette conversion can be rerun, a labelmap.txt
saved with a BOM reads, ``--map 255=CLASS`` maps, and a fresh folder is described."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from test_cli_errors import run

from dgan_data.annotations import Annotations
from dgan_data.annotations.tools import MaskImportError, import_masks

NAMES = ["background", "skin", "eye_white"]
PALETTE = [[0, 0, 0], [255, 204, 153], [255, 255, 255]]  # black, skin, white
IGNORE_COLOUR = (224, 224, 192)


def folder(path, samples=1):
    Annotations.from_arrays(
        masks=np.zeros((samples, 6, 6), np.uint8),
        class_names=NAMES,
        seeds=list(range(samples)),
        images=np.zeros((samples, 3, 6, 6), np.uint8),
        palette=PALETTE,
    ).save(path)
    return path


def ids_of(path):
    with Image.open(path) as im:
        return np.asarray(im).copy()


def test_a_one_bit_mask_is_read_as_black_and_white(tmp_path):
    """Mode "1" was read as ids 0/1: white, the palette's eye_white, became skin."""
    root = folder(tmp_path / "ann")
    painted = tmp_path / "painted"
    painted.mkdir()
    white = np.zeros((6, 6), bool)
    white[:, 3:] = True
    Image.fromarray(white).convert("1").save(painted / "00000.png")
    import_masks(painted, root, "palette")
    assert np.array_equal(ids_of(root / "masks" / "00000.png"), white.astype(np.uint8) * 2)


def paint(path, rgb_by_column):
    rgb = np.zeros((6, 6, 3), np.uint8)
    for col, colour in rgb_by_column.items():
        rgb[:, col] = colour
    Image.fromarray(rgb).save(path)


def test_the_in_place_palette_conversion_reruns_over_masks_it_wrote(tmp_path):
    """A converted mask of ids {0, 255} (background, ignore) reads as palette black and
    white too, and the rerun after painting more was refused: dgan_data marks the
    masks it writes, and such a mask is read by its ids."""
    root = folder(tmp_path / "ann", samples=2)
    masks = root / "masks"
    (masks / "00001.png").unlink()
    paint(masks / "00000.png", {0: IGNORE_COLOUR})
    import_masks(masks, root, "palette")
    first = ids_of(masks / "00000.png")
    assert set(np.unique(first).tolist()) == {0, 255}
    paint(masks / "00001.png", {1: PALETTE[1], 2: PALETTE[2]})
    report = import_masks(masks, root, "palette")
    assert report.ids("unchanged") == ["00000"] and report.ids("replaced", "new") == ["00001"]
    assert np.array_equal(ids_of(masks / "00000.png"), first)
    assert ids_of(masks / "00001.png")[0].tolist() == [0, 1, 2, 0, 0, 0]
    assert report.ok


def test_a_grey_mask_not_written_by_dgan_data_is_still_refused(tmp_path):
    """The mark is what tells the two apart: the same levels saved by an editor are
    still ambiguous (white is eye_white or ignore)."""
    root = folder(tmp_path / "ann")
    painted = tmp_path / "painted"
    painted.mkdir()
    grey = np.zeros((6, 6), np.uint8)
    grey[:, 3:] = 255
    Image.fromarray(grey, "L").save(painted / "00000.png")
    with pytest.raises(MaskImportError, match="grey 255 reads as ignore"):
        import_masks(painted, root, "palette")


def test_a_labelmap_with_a_byte_order_mark_reads(tmp_path):
    """Notepad's BOM became part of the first label: background was an unknown label."""
    root = folder(tmp_path / "ann")
    cvat = tmp_path / "cvat"
    (cvat / "SegmentationClass").mkdir(parents=True)
    text = "# label:color_rgb:parts:actions\nbackground:0,0,0::\nskin:255,204,153::\n"
    (cvat / "labelmap.txt").write_bytes(b"\xef\xbb\xbf" + text.encode())
    paint(cvat / "SegmentationClass" / "00000.png", {4: PALETTE[1]})
    import_masks(cvat, root, "cvat-mask")
    assert ids_of(root / "masks" / "00000.png")[0].tolist() == [0, 0, 0, 0, 1, 0]


def png_folder(tmp_path):
    src = tmp_path / "png"
    src.mkdir()
    mask = np.full((6, 6), 255, np.uint8)
    mask[:, 0] = 1
    Image.fromarray(mask, "L").save(src / "00000.png")
    return src


def test_png_id_255_maps_when_the_map_names_it(tmp_path):
    """255 became ignore before the map, so --map 255=skin did nothing (and warned that
    it named no label)."""
    root = folder(tmp_path / "ann")
    import_masks(png_folder(tmp_path), root, "png", mapping={"255": "eye_white"})
    assert ids_of(root / "masks" / "00000.png")[0].tolist() == [1, 2, 2, 2, 2, 2]


def test_png_id_255_is_ignore_without_a_map(tmp_path):
    root = folder(tmp_path / "ann")
    import_masks(png_folder(tmp_path), root, "png")
    assert ids_of(root / "masks" / "00000.png")[0].tolist() == [1, 255, 255, 255, 255, 255]


def test_inspect_describes_a_folder_with_no_mask_yet(tmp_path, capsys):
    """A folder fresh from `sample` was refused ("none of the 2 samples has a mask")."""
    root = folder(tmp_path / "ann", samples=2)
    for mask in (root / "masks").iterdir():
        mask.unlink()
    code, out, err = run(capsys, "inspect", str(root))
    assert code == 0, err
    assert "2 (0 with a mask)" in out and "00000, 00001" in out and "no mask drawn yet" in out
    code, out, err = run(capsys, "inspect", str(root), "--json")
    info = json.loads(out)
    assert code == 0 and info["masks_drawn"] == 0 and info["missing_masks"] == ["00000", "00001"]
    assert [c["images"] for c in info["class_statistics"]] == [0, 0, 0]
    assert info["classes"] == 3 and info["mask_size"] == [6, 6]


def test_inspect_gives_the_same_record_before_and_after_the_first_mask(tmp_path, capsys):
    """A script reading ``inspect --json`` finds the same keys, in the same order, and the
    same settings whether or not a mask is drawn yet."""
    root = folder(tmp_path / "ann", samples=2)
    code, out, err = run(capsys, "inspect", str(root), "--json")
    assert code == 0, err
    drawn = json.loads(out)
    (root / "masks" / "00000.png").unlink()
    (root / "masks" / "00001.png").unlink()
    code, out, err = run(capsys, "inspect", str(root), "--json")
    assert code == 0, err
    undrawn = json.loads(out)
    assert list(undrawn) == list(drawn)
    assert drawn["masks_drawn"] == 2 and undrawn["masks_drawn"] == 0
    settings = ("classes", "mask_size", "crop", "truncation_psi", "latents")
    assert {k: undrawn[k] for k in settings} == {k: drawn[k] for k in settings}
    assert undrawn["generator_fingerprint"] == drawn["generator_fingerprint"]
    assert [list(c) for c in undrawn["class_statistics"]] == [
        list(c) for c in drawn["class_statistics"]
    ]


def test_inspect_still_refuses_a_broken_folder_without_masks(tmp_path, capsys):
    root = folder(tmp_path / "ann")
    (root / "masks" / "00000.png").unlink()
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["mask_resolution"] = "big"
    (root / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run(capsys, "inspect", str(root))
    assert code == 2 and "mask_resolution" in err, err


def test_png_map_names_an_id_with_leading_zeros(tmp_path):
    """``--map 01=eye_white`` matched no label ("1" is the id's name): a warning, and id 1
    went to class 1 instead."""
    root = folder(tmp_path / "ann")
    import_masks(png_folder(tmp_path), root, "png", mapping={"01": "eye_white"})
    assert ids_of(root / "masks" / "00000.png")[0].tolist() == [2, 255, 255, 255, 255, 255]


def test_png_map_naming_one_id_twice_is_refused(tmp_path, capsys):
    root = folder(tmp_path / "ann")
    src = png_folder(tmp_path)
    code, _out, err = run(
        capsys, "import-masks", "--format", "png", str(src), "--annotations", str(root),
        "--map", "1=skin", "--map", "01=eye_white",
    )  # fmt: skip
    assert code == 2 and "--map 1 and --map 01 name the same png id 1" in err
    assert len(err.strip().splitlines()) == 1
    assert ids_of(root / "masks" / "00000.png").max() == 0  # nothing written
