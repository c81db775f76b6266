"""Import edge cases found by reviewing import-masks against its promises:

- ``--format palette`` on ``masks/`` in place, rerun after painting more: the masks an
  earlier run wrote (single-channel class ids) were read as grey colours, so ignore
  (255) became a white class in silence and ids 1, 2, ... were refused as JPEG damage;
- a palette mask painted all in the background colour was "empty", left as an RGB
  file, and the folder check sent the user back to the same command;
- two polygons sharing an edge rounded a centre on it differently (neither or both);
- digits such as '²' passed ``str.isdigit`` and ended in a bare ``int()`` error.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from test_cli_errors import run
from test_import_masks import make_folder, mask_of, written

from dgan_data.annotations.tools import MaskImportError, import_masks, rasterize_polygon
from dgan_data.export.generate import _local_rank

WHITE_PALETTE = [[0, 0, 0], [120, 60, 20], [255, 255, 255]]  # class 2 is white
HAIR = (120, 60, 20)


def _folder(root):
    folder = make_folder(root)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["palette"] = WHITE_PALETTE
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _save(path, array, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8), mode).save(path)


def test_masks_converted_before_are_read_as_their_ids_on_a_rerun(tmp_path):
    folder = _folder(tmp_path / "ann")
    ids = np.array([[1, 1, 0, 0, 255, 255]] * 6)  # hair, background, ignore
    _save(folder / "masks" / "00000.png", ids, "L")  # written by an earlier run
    painted = np.zeros((6, 6, 3)) + np.array(HAIR)
    _save(folder / "masks" / "00001.png", painted, "RGB")  # painted since
    report = import_masks(folder / "masks", folder, format="palette", keep_empty=True)
    status = {s.id: s.status for s in report.samples}
    assert status["00000"] == "unchanged" and status["00001"] == "replaced"
    assert np.array_equal(mask_of(folder, "00000"), ids)  # 255 stays ignore, not white
    assert np.array_equal(mask_of(folder, "00001"), np.ones((6, 6)))


def test_a_single_channel_image_of_other_values_is_no_colour_mask(tmp_path):
    folder = _folder(tmp_path / "ann")
    _save(tmp_path / "painted" / "00000.png", np.full((6, 6), 40), "L")
    with pytest.raises(MaskImportError, match=r"00000\.png: a single-channel image with "
                       r"values 40 that are no class ids, not a colour mask"):  # fmt: skip
        import_masks(tmp_path / "painted", folder, format="palette")
    cvat = tmp_path / "cvat"
    (cvat / "SegmentationClass").mkdir(parents=True)
    (cvat / "labelmap.txt").write_text("background:0,0,0::\nhair:120,60,20::\n")
    _save(cvat / "SegmentationClass" / "00000.png", np.zeros((6, 6)), "L")
    with pytest.raises(MaskImportError, match=r"a single-channel image, not a colour mask: "
                       r"colours are read by labelmap\.txt"):  # fmt: skip
        import_masks(cvat, folder, format="cvat-mask")
    assert written(folder) == []


def test_a_palette_mask_all_background_is_written_and_the_rerun_works(capsys, tmp_path):
    folder = _folder(tmp_path / "ann")
    painted = np.zeros((6, 6, 3))
    painted[:3] = HAIR
    for sample_id in ("00000", "00001"):
        _save(folder / "masks" / f"{sample_id}.png", painted, "RGB")
    _save(folder / "masks" / "00002.png", np.zeros((6, 6, 3)), "RGB")  # all background
    args = ("import-masks", "--format", "palette", str(folder / "masks"),
            "--annotations", str(folder))  # fmt: skip
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert "00002  replaced   masks/00002.png <- 00002.png: 1 object; background" in out
    assert np.array_equal(mask_of(folder, "00002"), np.zeros((6, 6)))
    code, out, err = run(capsys, *args)  # in place again: every mask is already ids
    assert code == 0, err
    assert "0 masks (0 new, 0 replaced), 3 unchanged" in out


def test_an_empty_tool_mask_names_keep_empty_and_one_problem_is_singular(capsys, tmp_path):
    folder = _folder(tmp_path / "ann")
    cvat = tmp_path / "cvat"
    (cvat / "SegmentationClass").mkdir(parents=True)
    (cvat / "labelmap.txt").write_text("background:0,0,0::\nhair:120,60,20::\n")
    hair = np.zeros((6, 6, 3))
    hair[:2] = HAIR
    _save(cvat / "SegmentationClass" / "00000.png", hair, "RGB")
    _save(cvat / "SegmentationClass" / "00001.png", hair, "RGB")
    _save(cvat / "SegmentationClass" / "00002.png", np.zeros((6, 6, 3)), "RGB")
    _save(folder / "masks" / "00002.png", hair, "RGB")  # the one problem: not converted
    code, out, err = run(capsys, "import-masks", "--format", "cvat-mask", str(cvat),
                         "--annotations", str(folder))  # fmt: skip
    assert code == 1
    assert "nothing drawn in SegmentationClass/00002.png: mask not written (--keep-empty " \
        "writes it)" in out  # fmt: skip
    assert "folder check: 1 problem (not ready for fit):" in err


def _grid_triangles(rng, cells=7, step=8.0):
    """A jittered grid cut into triangles (vertices on a half-pixel grid, so centres
    often lie exactly on edges); each inner edge is run in both directions."""
    base = 4.0 + step * np.arange(cells + 1)
    jitter = rng.integers(-3, 4, (cells + 1, cells + 1, 2)) / 2
    p = np.stack(np.meshgrid(base, base, indexing="ij"), -1)[..., ::-1] + jitter
    triangles = []
    for i in range(cells):
        for j in range(cells):
            a, b, c, d = p[i, j], p[i, j + 1], p[i + 1, j + 1], p[i + 1, j]
            triangles += [np.array([a, b, c]), np.array([a, c, d])]
    outline = np.concatenate([p[0, :], p[1:, -1], p[-1, -2::-1], p[-2:0:-1, 0]])
    return triangles, outline


def test_polygons_sharing_an_edge_own_every_centre_on_it_once():
    # a centre exactly on the shared edge A-B: (28.5, 29.5) lies on it
    a, b = (58.5, 38.5), (3.5, 22.0)
    upper = rasterize_polygon(np.array([a, b, (40.0, 5.0)]), 64, 64)
    lower = rasterize_polygon(np.array([b, a, (20.0, 60.0)]), 64, 64)
    assert int(upper[29, 28]) + int(lower[29, 28]) == 1
    rng = np.random.default_rng(0)
    for _ in range(20):
        triangles, outline = _grid_triangles(rng)
        pieces = sum(rasterize_polygon(t, 64, 64).astype(int) for t in triangles)
        assert pieces.max() <= 1  # no centre in two triangles
        assert np.array_equal(pieces.astype(bool), rasterize_polygon(outline, 64, 64))


def test_digits_other_than_decimal_ones_are_refused_naming_the_input(capsys, tmp_path):
    folder = _folder(tmp_path / "ann")
    _save(tmp_path / "ids" / "00000.png", np.zeros((6, 6)), "L")
    code, _, err = run(capsys, "import-masks", "--format", "png", str(tmp_path / "ids"),
                       "--annotations", str(folder), "--map", "0=²")  # fmt: skip
    assert code == 2 and "map 0=²: '²' is not a class of manifest.json" in err
    cvat = tmp_path / "cvat"
    (cvat / "SegmentationClass").mkdir(parents=True)
    (cvat / "labelmap.txt").write_text("background:0,0,0::\nhair:1²,0,0::\n")
    _save(cvat / "SegmentationClass" / "00000.png", np.zeros((6, 6, 3)), "RGB")
    code, _, err = run(capsys, "import-masks", "--format", "cvat-mask", str(cvat),
                       "--annotations", str(folder))  # fmt: skip
    assert code == 2 and "labelmap.txt: line 2 'hair:1²,0,0::'" in err
    with pytest.raises(ValueError, match="LOCAL_RANK='²' is not a GPU index"):
        _local_rank("²")
