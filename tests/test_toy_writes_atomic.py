"""The toy world's writers are atomic like every other file the library writes.

``save_annotator`` wrote its weights with safetensors' ``save_file`` and its description
with ``write_text`` (a kill left half a file), and replaced the weights before finding that
the metadata was not JSON, leaving weights and description of different models.
``save_comparison_grid`` wrote through torchvision's ``save_image`` straight to the path,
so a failed write destroyed the earlier grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision.utils

import dgan_data.toy.quality as quality
from dgan_data.toy import NUM_CLASSES
from dgan_data.toy.annotator import build_annotator, load_annotator, save_annotator


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_annotator_round_trip_leaves_no_temp_files(tmp_path):
    model = build_annotator(NUM_CLASSES, decoder_channels=[16, 8, 8])
    path = save_annotator(model, tmp_path / "a.safetensors", {"test_miou": 0.5})
    assert sorted(_files(tmp_path)) == ["a.json", "a.safetensors"]
    back = load_annotator(path)
    assert back.metadata["test_miou"] == 0.5
    assert back.metadata["class_names"][0] == "background"
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_metadata_that_is_not_json_leaves_the_old_pair_whole(tmp_path):
    old = build_annotator(NUM_CLASSES, decoder_channels=[16, 8, 8])
    path = save_annotator(old, tmp_path / "a.safetensors", {"run": 1})
    before = _files(tmp_path)
    new = build_annotator(NUM_CLASSES, decoder_channels=[16, 8, 8])
    with torch.no_grad():
        next(new.parameters()).add_(1.0)  # other weights than the saved ones
    with pytest.raises(ValueError, match=r"a\.safetensors: its metadata is not JSON"):
        save_annotator(new, path, {"run": object()})
    assert _files(tmp_path) == before
    assert json.loads((tmp_path / "a.json").read_text())["run"] == 1


def test_a_failed_comparison_grid_write_keeps_the_earlier_grid(tmp_path, monkeypatch):
    real, fake = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    path = quality.save_comparison_grid(real, fake, tmp_path / "grid.png", nrow=2)
    good = path.read_bytes()
    assert good.startswith(b"\x89PNG")

    def broken(tensor, fp, **kw):  # half a file, then the disk is full
        out = open(fp, "wb") if isinstance(fp, (str, Path)) else fp  # noqa: SIM115
        out.write(good[:20])
        out.flush()
        raise OSError("No space left on device")

    monkeypatch.setattr(torchvision.utils, "save_image", broken)  # imported when used
    with pytest.raises(OSError, match="No space left"):
        quality.save_comparison_grid(real, fake, path, nrow=2)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]  # no temp file left
