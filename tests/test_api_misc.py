"""Smaller API gaps: drawing sizes that asked for terabytes, an ``alpha`` tensor, a
suggestion report written with another labeler than the one that scored it (other
images than it describes), an export dataset given a non-callable transform or a
slice, and an unknown labeler option blamed on ``Labeler.__init__``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgan_data import Labeler, load_generator, load_interpreter, viz
from dgan_data.viz import MAX_CANVAS_SIDE


def test_overlay_takes_a_tensor_alpha_and_bounds_it():
    img, mask = np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.int64)
    out = viz.overlay(img, mask, [(200, 0, 0)], alpha=torch.tensor(0.5))
    assert out[0, 0].tolist() == [100, 0, 0]
    with pytest.raises(ValueError, match="alpha must be in"):
        viz.overlay(img, mask, [(200, 0, 0)], alpha=1.5)


def test_drawing_sizes_are_bounded(tmp_path):
    with pytest.raises(ValueError, match=f"width must be at most {MAX_CANVAS_SIDE}"):
        viz.legend(["a", "b"], [(0, 0, 0), (255, 255, 255)], width=10**9)
    images, masks = torch.rand(1, 3, 8, 8), torch.zeros(1, 8, 8, dtype=torch.long)
    with pytest.raises(ValueError, match="use a smaller scale"):
        viz.preview_grid(images, masks, torch.zeros(1, 8, 8), ["a"], [(0, 0, 0)],
                         tmp_path / "g.png", scale=10**5)  # fmt: skip
    assert not (tmp_path / "g.png").exists()
    viz.preview_grid(images, masks, torch.zeros(1, 8, 8), ["a"], [(0, 0, 0)], tmp_path / "g.png")
    assert (tmp_path / "g.png").is_file()


@pytest.fixture(scope="module")
def labeler() -> Labeler:
    return Labeler(load_generator("toyface-14", device="cpu"), load_interpreter("toyface-14"))


def test_suggestions_are_written_with_the_labeler_that_scored_them(labeler, tmp_path):
    from dgan_data.suggest import suggest_annotations, write_suggestions

    report = suggest_annotations(labeler, 1, pool=2, weights=(1.0, 0.0, 0.0, 0.0))
    assert report.labeler_settings["truncation_psi"] == labeler.truncation_psi
    other = Labeler(labeler.G, labeler.interpreter, truncation_psi=0.3)
    with pytest.raises(ValueError, match=r"labeler differs .* in truncation_psi"):
        write_suggestions(other, report, tmp_path / "next")
    assert not (tmp_path / "next").exists()
    folder = write_suggestions(labeler, report, tmp_path / "ok", preview=False)
    assert folder.ids and (tmp_path / "ok" / "suggestions.json").is_file()


def test_unknown_labeler_options_are_named():
    with pytest.raises(
        TypeError, match=r"keyword argument 'soft_labels': neither its own nor a labeler option"
    ):
        Labeler.from_sources("toyface-14", soft_labels=True)


def test_export_dataset_unknown_option_is_named(tmp_path):
    from dgan_data.export import export_dataset

    with pytest.raises(
        TypeError, match=r"keyword argument 'soft_labels': neither its own nor a labeler option"
    ):
        export_dataset("toyface-14", 2, tmp_path / "d", soft_labels=True, progress=False)


def test_exported_dataset_transform_and_index(tmp_path):
    from dgan_data.export import ExportedDataset, export_dataset

    out = tmp_path / "d"
    export_dataset("toyface-14", 2, out, device="cpu", batch_size=2, progress=False,
                   drop_uncertain=0.0)  # fmt: skip
    with pytest.raises(TypeError, match="transform must be callable"):
        ExportedDataset(out, transform=5)
    ds = ExportedDataset(out)
    with pytest.raises(TypeError, match="item index must be an int, got slice"):
        ds[0:2]
    image, mask = ds[np.int64(1)]
    assert image.shape[0] == 3 and mask.ndim == 2
