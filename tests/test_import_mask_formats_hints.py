"""import-masks on masks saved the wrong way: JPEG files in the mask folder were
skipped without a word (``no .png files``, or left out beside PNGs), and a mask whose
colours were softened (antialiased brush, JPEG) got the same bare "colours not in the
palette" as one painted with another palette."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image
from test_annotations import TinyGenerator, problems_of, sampled_folder
from test_cli_errors import run
from test_import_palette import HAIR, ROWS, SKIN, _paint, _with_palette

from dgan_data.annotations import AnnotationError, Annotations
from dgan_data.annotations.tools import MaskImportError, import_masks


def test_a_folder_of_jpegs_is_named_with_the_reason(tmp_path):
    folder = _with_palette(tmp_path / "ann")
    (tmp_path / "painted").mkdir()
    for sample_id in ("00000", "00001"):
        Image.fromarray(np.array(ROWS, np.uint8)).save(tmp_path / "painted" / f"{sample_id}.jpg")
    with pytest.raises(MaskImportError) as err:
        import_masks(tmp_path / "painted", folder, format="palette")
    text = str(err.value)
    assert "no .png files" in text and "found 00000.jpg, 00001.jpg" in text
    assert "save or convert masks to PNG" in text


@pytest.mark.parametrize("fmt", ["palette", "png"])
def test_jpegs_beside_pngs_are_named_not_dropped_in_silence(tmp_path, caplog, fmt):
    folder = _with_palette(tmp_path / "ann")
    src = tmp_path / "painted"
    if fmt == "palette":
        _paint(src / "00000.png", ROWS)
    else:
        src.mkdir()
        Image.fromarray(np.zeros((6, 6), np.uint8)).save(src / "00000.png")
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(src / "00001.JPG")
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        report = import_masks(src, folder, format=fmt)
    assert [s.id for s in report.samples if s.status == "new"] == ["00000"]
    assert "00001.JPG left out: masks are read from .png files only" in caplog.text


def test_softened_edges_get_the_antialiasing_hint(tmp_path):
    folder = _with_palette(tmp_path / "ann")
    soft = [[HAIR, (130, 70, 30), (250, 200, 150), SKIN, SKIN, SKIN]] * 6  # blended edge
    _paint(tmp_path / "painted" / "00000.png", soft)
    with pytest.raises(MaskImportError) as err:
        import_masks(tmp_path / "painted", folder, format="palette")
    text = str(err.value)
    assert "12 of 36 pixels (33.3 %), mostly near a palette colour" in text
    assert "without antialiasing" in text and "far from" not in text


def test_another_palette_gets_the_palette_hint(tmp_path):
    folder = _with_palette(tmp_path / "ann")
    other = [[(0, 255, 0), (0, 0, 255), SKIN, SKIN, SKIN, SKIN]] * 6
    _paint(tmp_path / "painted" / "00000.png", other)
    with pytest.raises(MaskImportError) as err:
        import_masks(tmp_path / "painted", folder, format="palette")
    text = str(err.value)
    assert "12 of 36 pixels (33.3 %), mostly far from every palette colour" in text
    assert "antialiasing" not in text


def test_a_mask_saved_as_jpeg_in_the_folder_is_named_by_load(tmp_path):
    folder = sampled_folder(TinyGenerator(), tmp_path / "ann", num=2)
    ids = Annotations.load(folder).ids
    png = folder / "masks" / f"{ids[1]}.png"
    Image.open(png).convert("RGB").save(png.with_suffix(".jpg"))
    png.unlink()
    with pytest.raises(AnnotationError) as err:
        Annotations.load(folder)
    assert f"masks/{ids[1]}.png: missing ({ids[1]}.jpg is there, but only PNG is read" in (
        problems_of(err)
    )


def test_the_import_summary_counts_one_sample_in_the_singular(capsys, tmp_path):
    folder = _with_palette(tmp_path / "ann")
    for sample_id in ("00000", "00001"):
        _paint(tmp_path / "painted" / f"{sample_id}.png", ROWS)
    code, out, _ = run(capsys, "import-masks", "--format", "palette", str(tmp_path / "painted"),
                       "--annotations", str(folder))  # fmt: skip
    assert code == 1  # the third mask is still missing
    assert "1 sample without annotation (0 kept their mask)" in out
