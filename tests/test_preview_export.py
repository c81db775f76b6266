"""``preview_export`` / ``dgan-data preview --export``: the first samples of an export on
disk, each image above its mask, read through ``ExportedDataset``; an annotation folder
and an export given to the wrong option are named."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_cli_errors import run

from dgan_data import ExportedDataset, export_dataset, preview_export
from dgan_data.viz import GRID_PAD, grid_layout, overlay, to_uint8_image


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "data"
    export_dataset("toyface-14", 6, out, drop_uncertain=0.0, progress=False, device="cpu")
    return out


def test_the_first_samples_are_drawn_as_the_dataset_reads_them(export, tmp_path):
    path, ids = preview_export(export, tmp_path / "e.png", 3)
    data = ExportedDataset(export)
    assert ids == [str(e["id"]) for e in data.entries[:3]]
    grid = np.asarray(Image.open(path))
    _, groups, gw, gh = grid_layout(3, (64, 64), rows=2)
    assert groups == 1 and grid.shape[1] >= gw and grid.shape[0] > gh
    for b in range(3):
        image, mask = data[b]
        x = GRID_PAD + b * (64 + GRID_PAD)
        np.testing.assert_array_equal(grid[GRID_PAD : GRID_PAD + 64, x : x + 64],
                                      to_uint8_image(image))  # fmt: skip
        y = 2 * GRID_PAD + 64
        np.testing.assert_array_equal(grid[y : y + 64, x : x + 64],
                                      overlay(image, mask, data.palette))  # fmt: skip


def test_cli_defaults_and_wrong_folders(export, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "preview", "--export", str(export))
    assert code == 0, err
    assert "6 exported samples (000000 .. 000005, left to right)" in out  # all 6 < 16
    assert (tmp_path / "export.png").exists()

    code, _, err = run(capsys, "preview", "--annotations", str(export))
    assert code == 2 and f"{export} is an export: preview it with --export {export}" in err
    code, _, err = run(capsys, "preview", "--export", str(export), "--annotations", str(export))
    assert code == 2 and "not both" in err
    code, _, err = run(capsys, "preview", "--export", str(export), "--seed", "1")
    assert code == 2 and "leave out --seed" in err
    code, _, err = run(capsys, "preview", "--export", str(tmp_path / "nowhere"))
    assert code == 2 and "not a dgan_data export" in err
